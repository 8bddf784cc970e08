"""Promotion gates: each condition of the current tier's promotion rules, with the tier's
values written in and the metrics it reads (for `genesis tier`, `genesis status`, the
daily report and the dashboard)."""
from __future__ import annotations

import re

from genesis.engine.engine import Engine

_TIER_REF = re.compile(r"tier\.([a-z0-9_]+(?:\.[a-z0-9_]+)*)")
NOT_MEASURED = "not measured yet"


def _tier_value(tier: dict, dotted: str):
    cur = tier
    for key in dotted.split("."):
        cur = cur[key]
    return cur


def _shown_value(engine: Engine, name: str):
    """A metric's value, or NOT_MEASURED while its sample count (`measured_by`) is 0."""
    metric = engine.config.metrics.get(name)
    count = metric.spec.get("measured_by") if metric is not None else None
    if count and not engine.metrics.m.get(count):
        return NOT_MEASURED
    return engine.metrics.m.get(name)


def gates(engine: Engine) -> list:
    """[(rule id, [(condition text with tier values, passed, {name: value})])] for the
    promotion rules of the engine's current tier; a value is NOT_MEASURED for a metric
    with no samples yet (the condition then does not hold: it requires the count)."""
    tier = engine.config.tiers[engine.tier]
    out = []
    for rule in engine.ruleset.rules.get("tier", []):
        if not any(a.action.name == "promote" for a in rule.then):
            continue
        rows = []
        for cond in rule.conditions:
            text = _TIER_REF.sub(lambda mt: repr(_tier_value(tier, mt.group(1))), cond.checked.source)
            try:
                passed = bool(cond.fn(engine.metrics.m, None, None))
            except (ArithmeticError, TypeError, ValueError):
                passed = False
            rows.append((text, passed, {n: _shown_value(engine, n) for n in sorted(cond.reads)}))
        out.append((rule.rule.id, rows))
    return out
