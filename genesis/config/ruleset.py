"""Compile a checked configuration for one tier.

Tier values become constants, every expression becomes a Python function, and each
stage gets one generated function that evaluates all of its rules at once. The engine
also gets, for every name, the rules and derived metrics that read it, so that an
event re-evaluates only what its changes touch.

What is compiled is kept (genesis/expr/codecache.py) under a key of the configuration's
digest, the tier and its values, and the code that compiles (ruleset_key): the next
start with the same configuration takes each function's code from the cache.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import FunctionType

from genesis.config.checkcache import cache_dir
from genesis.config.checks import ActionDef, CheckedConfig, MetricDef, RuleDef
from genesis.config.groups import per_symbol_reads, symbol_names
from genesis.expr.codecache import CodeCache, code_digest
from genesis.expr.compiler import compile_checked, compile_stage, make_function
from genesis.vocabulary import STAGES, event_fields


@dataclass
class CompiledAction:
    """An action with its parameter expressions and message templates compiled."""

    action: ActionDef
    params: dict
    templates: list


@dataclass
class CompiledRule:
    """A rule whose conditions are one function f(m, e, o) -> bool."""

    rule: RuleDef
    conditions: list
    check: FunctionType
    reads: frozenset
    then: list
    resolve: list
    per_symbol: bool = False      # state kept per symbol (reads a per-symbol name)


@dataclass
class Ruleset:
    """Everything the engine runs for one tier."""

    tier: str
    metrics: dict                                     # name -> MetricDef
    derived: list                                     # [(name, CompiledExpr)] in dependency order
    metric_exprs: dict = field(default_factory=dict)  # (metric, option) -> CompiledExpr
    rules: dict = field(default_factory=dict)         # stage -> [CompiledRule]
    stage_functions: dict = field(default_factory=dict)  # stage -> f(m, e, o) -> tuple of bools
    readers: dict = field(default_factory=dict)       # name -> [rule ids and derived metrics reading it]
    symbol_names: frozenset = frozenset()             # metric and flag names kept per symbol

    def rule_count(self) -> int:
        """Number of rules active in this tier."""
        return sum(len(r) for r in self.rules.values())


def code_sources() -> list[Path]:
    """The modules whose source decides the compiled code (part of every key)."""
    genesis = Path(__file__).resolve().parents[1]
    return [*sorted((genesis / "expr").glob("*.py")), Path(__file__).resolve(), genesis / "vocabulary.py"]


@lru_cache(maxsize=1)
def _code_version() -> bytes:
    return code_digest(code_sources())


def ruleset_key(config: CheckedConfig, tier_name: str) -> str | None:
    """The key of `tier_name`'s compiled rule set: SHA-256 of the code version (Genesis,
    Python, the compiling modules' source), the configuration's digest (every file's
    bytes), the tier's name and its values with defaults filled in. None when caching is
    off or the key cannot be made."""
    if cache_dir() is None:
        return None
    try:
        digest = hashlib.sha256(_code_version())
        digest.update(f"\0{config.files.digest()}\0{tier_name}\0".encode())
        digest.update(json.dumps(config.tiers[tier_name], sort_keys=True, default=repr).encode())
    except (OSError, TypeError, ValueError):   # a source unreadable, a value JSON cannot order: no cache
        return None
    return digest.hexdigest()


def _compile_action(action: ActionDef, tier: dict, event_names=frozenset(), cache=None) -> CompiledAction:
    params = {k: compile_checked(c, tier, event_names, cache=cache) for k, c in action.exprs.items()}
    templates = [compile_checked(c, tier, event_names, cache=cache) if c is not None else None
                 for c in action.templates]
    return CompiledAction(action, params, templates)


def _compile_rule(rule: RuleDef, tier: dict, symbol_scoped: frozenset, cache=None) -> CompiledRule:
    conditions = [compile_checked(c, tier, cache=cache) for c in rule.when]
    body = " and ".join(f"({c.python})" for c in conditions) if conditions else "True"
    check = make_function(f"rule_{rule.id}", f"bool({body})", cache)
    reads = frozenset().union(*(c.reads for c in conditions)) if conditions else frozenset()
    return CompiledRule(rule, conditions, check, reads,
                        [_compile_action(a, tier, cache=cache) for a in rule.then],
                        [_compile_action(a, tier, cache=cache) for a in rule.resolve],
                        bool(per_symbol_reads(rule, symbol_scoped)))


def compile_ruleset(config: CheckedConfig, tier_name: str, cache: CodeCache | None = None) -> Ruleset:
    """Compile every metric and rule that applies in `tier_name`, taking the code kept
    for this configuration and tier when there is some (`cache`: that store, else the
    one under ruleset_key), and keeping what had to be compiled."""
    if not config.ok:
        raise ValueError("the configuration has problems; run `genesis validate`")
    if tier_name not in config.tiers:
        raise KeyError(f"unknown tier '{tier_name}'; known: {', '.join(sorted(config.tiers))}")
    if cache is None:
        cache = CodeCache(ruleset_key(config, tier_name))
    tier = config.tiers[tier_name]
    metrics: dict[str, MetricDef] = config.metrics
    rs = Ruleset(tier_name, metrics, [])
    rs.symbol_names = symbol_names(metrics, config.flags, config.metric_order)
    for name in config.metric_order:
        m = metrics[name]
        if m.primitive == "expr":
            rs.derived.append((name, compile_checked(m.exprs["expr"], tier, name=f"metric_{name}", cache=cache)))
        else:
            names = frozenset(event_fields(m.source)) if m.primitive not in ("baseline", "percentile") else frozenset()
            for opt, checked in m.exprs.items():
                rs.metric_exprs[(name, opt)] = compile_checked(checked, tier, names, name=f"{name}_{opt}", cache=cache)
    for stage in STAGES:
        rules = [_compile_rule(r, tier, rs.symbol_names, cache) for r in config.rules
                 if r.stage == stage and (r.tiers is None or tier_name in r.tiers)]
        rs.rules[stage] = rules
        bodies = [" and ".join(f"({c.python})" for c in r.conditions) or "True" for r in rules]
        rs.stage_functions[stage] = compile_stage(bodies, name=f"stage_{stage}", cache=cache)
    for name, expr in rs.derived:
        for read in expr.reads:
            rs.readers.setdefault(read, []).append(("metric", name))
    for rules in rs.rules.values():
        for r in rules:
            for read in r.reads:
                rs.readers.setdefault(read, []).append(("rule", r.rule.id))
    cache.save()
    return rs
