"""Checks that need more than one file or more than a schema: names and references,
expressions, derived-metric cycles, tier ladders, strategy unlocks.

`check_config` returns a `CheckedConfig`: every definition with its checked
expressions (ready for the compiler), and every problem found.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from genesis import vocabulary as voc
from genesis.config.actiongraph import describe_cycle, rule_cycles
from genesis.config.loader import ConfigFiles, Document, load_config_files
from genesis.config.groups import per_symbol_reads, symbol_names
from genesis.config.problems import Problem, suggestion
from genesis.config.schemas import all_schemas
from genesis.durations import parse_duration
from genesis.expr.checker import NUM, TEXT, Checked, ExprError, Scope, check
from genesis.notify.channels import NEEDS, SECRET_KEYS
from genesis.expr.folding import constant_condition, offset_of, source_of, zero_divisors
from genesis.strategies import registry as strategy_kinds   # importing the package registers the plugins

EVENT_PRIMITIVES = ("count", "sum", "mean", "std", "min", "max", "last", "rate", "ewma", "zscore",
                    "since", "streak", "distinct")
METRIC_PRIMITIVES = ("baseline", "percentile")
PRIMITIVES = EVENT_PRIMITIVES + METRIC_PRIMITIVES + ("expr",)
_COMMON = {"description", "unit", "measured_by"}
_EVENT_OPTS = {"where", "by"}
# primitive -> (required options, optional options); "field|value" means exactly one of the two
_OPTIONS = {
    "count": (set(), _EVENT_OPTS | {"window", "samples", "reset_on"}),
    "sum": ({"field|value"}, _EVENT_OPTS | {"window", "samples", "reset_on", "floor"}),
    "mean": ({"field|value"}, _EVENT_OPTS | {"window", "samples", "reset_on", "default"}),
    "std": ({"field|value"}, _EVENT_OPTS | {"window", "samples", "reset_on"}),
    "min": ({"field|value"}, _EVENT_OPTS | {"window", "samples", "reset_on", "default"}),
    "max": ({"field|value"}, _EVENT_OPTS | {"window", "samples", "reset_on", "default"}),
    "last": ({"field"}, _EVENT_OPTS | {"default", "reset_on"}),
    "rate": ({"window"}, _EVENT_OPTS),
    "ewma": ({"field|value", "halflife"}, _EVENT_OPTS | {"default"}),
    "zscore": ({"field|value", "window|samples"}, _EVENT_OPTS),
    "since": (set(), _EVENT_OPTS | {"default"}),
    "streak": ({"while"}, {"where", "by", "reset_on"}),
    "distinct": ({"field"}, _EVENT_OPTS | {"window", "samples", "reset_on"}),
    "baseline": ({"window"}, {"stat", "k", "sample_every", "sample_on", "calibration", "default"}),
    "percentile": ({"window"}, {"sample_every", "sample_on", "default"}),
    "expr": (set(), set()),
}
RESERVED = {"tier", "event", "order", "True", "False", "None", *voc.FUNCTIONS}
_TEMPLATE = re.compile(r"\$\{([^}]*)\}")


def _expr_type(kind: str) -> str:
    return TEXT if kind == voc.TEXT else NUM


def unavailable_kind(kind: str) -> str | None:
    """Why a strategy kind cannot run here (no plugin registers it), naming the kinds that
    can; None when it is available. The plugins' registry decides, not the schema's list."""
    if kind in strategy_kinds:
        return None
    available = ", ".join(sorted(strategy_kinds)) or "none"
    return f"strategy kind '{kind}' is not available: no strategy plugin provides it (available kinds: {available})"


@dataclass
class MetricDef:
    """A declared metric and its checked expressions ('expr', 'where', 'value', 'while')."""

    name: str
    primitive: str
    source: str | None
    spec: dict
    doc: Document
    path: tuple
    exprs: dict = field(default_factory=dict)


@dataclass
class FlagDef:
    """A declared flag."""

    name: str
    default: object
    values: tuple | None
    doc: Document
    path: tuple
    by_symbol: bool = False       # one value per symbol (`by: symbol`)


@dataclass
class ActionDef:
    """One action of a rule: its name, raw argument, checked parameter expressions and
    checked notify templates."""

    name: str
    arg: object
    exprs: dict = field(default_factory=dict)
    templates: list = field(default_factory=list)


@dataclass
class RuleDef:
    """A rule with its checked conditions and actions."""

    id: str
    stage: str
    on: str | None
    when: list
    for_s: float
    cooldown_s: float
    severity: str
    tiers: tuple | None
    then: list
    resolve: list
    doc: Document
    path: tuple
    description: str = ""


@dataclass
class CheckedConfig:
    """Everything `genesis validate` knows about a configuration folder."""

    files: ConfigFiles
    problems: list
    metrics: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    rules: list = field(default_factory=list)
    tiers: dict = field(default_factory=dict)      # name -> data, only tiers that passed
    metric_order: list = field(default_factory=list)  # derived metrics in dependency order
    warnings: list = field(default_factory=list)      # worth knowing, not wrong (an unset environment variable)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


class _Checker:
    def __init__(self, files: ConfigFiles):
        self.files = files
        self.problems: list[Problem] = []
        self.out = CheckedConfig(files, self.problems)
        self.names: dict[str, str] = {n: NUM for n in voc.ACCOUNT_METRICS}
        self.enums: dict[str, tuple] = {}
        self.metric_origin: dict[str, tuple] = {}

    def add(self, doc: Document, path, message: str, key: bool = False, offset: int | None = None) -> None:
        self.problems.append(doc.problem(path, message, key=key, offset=offset))

    # ---------------------------------------------------------------- expressions
    def expr(self, doc: Document, path, source, scope: Scope, start: int = 0) -> Checked | None:
        """Check one expression; `start` is its offset in the text value (a ${...} in a message)."""
        try:
            checked = check(source, scope)
        except ExprError as exc:
            self.add(doc, path, f"bad expression: {exc.message}", offset=start + exc.offset)
            return None
        self.zero_divisions(doc, path, checked, scope.tiers, start)
        return checked

    def zero_divisions(self, doc: Document, path, checked: Checked, tiers: dict | None, start: int = 0) -> None:
        """A division, // or % by a divisor that is 0 (written so, or so in a tier)."""
        for divisor, zero_in in zero_divisors(checked, tiers):
            where = f" in tier {', '.join(repr(t) for t in zero_in)}" if zero_in else ""
            self.add(doc, path, f"division by zero: '{source_of(checked, divisor)}' is always 0{where}",
                     offset=start + offset_of(checked, divisor))

    def constant_when(self, doc: Document, path, checked: Checked, tiers: dict | None) -> None:
        """A condition that reads no metric, flag or field is always true or always false."""
        truths = constant_condition(checked, tiers)
        if truths is None:
            return
        if len(set(truths.values())) == 1:
            truth = "true" if next(iter(truths.values())) else "false"
            self.add(doc, path, f"condition is always {truth}: it reads no metric, flag or field",
                     offset=offset_of(checked, checked.tree.body))
            return
        by_truth = {v: ", ".join(repr(t) for t, w in truths.items() if w == v) for v in (True, False)}
        self.add(doc, path, f"condition reads only tier values: true in tier {by_truth[True]}, false in tier "
                            f"{by_truth[False]}; limit the rule with `tiers:` instead",
                 offset=offset_of(checked, checked.tree.body))

    def scope(self, namespaces=None, tiers=None, event_kind: str | None = None) -> Scope:
        names = dict(self.names)
        event_names = frozenset()
        if event_kind:
            fields = voc.event_fields(event_kind)
            names.update({f: _expr_type(t) for f, (t, _) in fields.items()})
            event_names = frozenset(fields)
        tiers = self.out.tiers if tiers is None else tiers
        return Scope(names=names, enums=dict(self.enums), namespaces=namespaces or {},
                     tiers=tiers or None, event_names=event_names)

    def event_expr(self, doc, path, source, kind: str) -> Checked | None:
        checked = self.expr(doc, path, source, self.scope(event_kind=kind))
        if checked:
            clash = sorted(n for n in checked.names if n in voc.event_fields(kind) and n in self.names)
            if clash:
                self.add(doc, path, f"bad expression: '{clash[0]}' is both a field of {kind} events and a "
                                    "metric; rename the metric")
                return None
        return checked

    # ---------------------------------------------------------------- tiers
    def _tier_part(self, name: str, *path):
        """A section of a tier file, or None when missing or broken by a schema error."""
        doc = self.files.tiers.get(name)
        return None if doc is None else doc.part(*path)

    def check_tiers(self) -> None:
        self.out.tiers = {stem: doc.data for stem, doc in self.files.tiers.items() if doc.ok()}
        # Tier references are checked against every tier whose file is sound; when none
        # of a rule's tiers is sound, references are left unchecked (None) rather than
        # reported as errors that are only echoes of the schema problems.
        ranked = []
        for stem, doc in self.files.tiers.items():
            name = self._tier_part(stem, "name")
            if name is not None and name != stem:
                self.add(doc, ("name",), f"tier name '{name}' must match the file name '{stem}'")
            rank = self._tier_part(stem, "rank")
            if isinstance(rank, int):
                ranked.append((rank, stem))
        ranked.sort()
        by_rank: dict[int, list] = {}
        for rank, stem in ranked:
            by_rank.setdefault(rank, []).append(stem)
        ladder_ok = len(ranked) == len(self.files.tier_files)
        for rank, stems in by_rank.items():
            for stem in stems if len(stems) > 1 else ():
                others = ", ".join(f"'{o}'" for o in stems if o != stem)
                self.add(self.files.tiers[stem], ("rank",), f"rank {rank} is also used by tier {others}; "
                                                            "each tier needs its own rank")
                ladder_ok = False
        if ladder_ok and [r for r, _ in ranked] != list(range(1, len(ranked) + 1)):
            for i, (rank, stem) in enumerate(ranked):
                if rank != i + 1:
                    self.add(self.files.tiers[stem], ("rank",),
                             f"rank {rank} leaves a gap: ranks run 1, 2, 3 ... (expected {i + 1})")
                    break
            ladder_ok = False
        if not ladder_ok:
            ranked = []  # the ladder order is unknown: no cross-tier checks would be meaningful
        for i, (rank, stem) in enumerate(ranked):
            doc = self.files.tiers[stem]
            top = i == len(ranked) - 1
            band = self._tier_part(stem, "capital_usd")
            if band:
                if band["max"] is None and not top:
                    self.add(doc, ("capital_usd", "max"), "only the top tier may have no capital ceiling (max: null)")
                    self.out.tiers.pop(stem, None)   # reported once here, not again by every rule reading its band
                if band["max"] is not None and band["max"] <= band["min"]:
                    self.add(doc, ("capital_usd", "max"), f"capital max {band['max']} must be above min {band['min']}")
                nxt_band = self._tier_part(ranked[i + 1][1], "capital_usd") if not top else None
                if nxt_band and band["max"] is not None and nxt_band["min"] != band["max"]:
                    self.add(doc, ("capital_usd", "max"),
                             f"capital bands must touch: max {band['max']} here but tier '{ranked[i + 1][1]}' "
                             f"starts at {nxt_band['min']}")
            steps = ["info_usd", "warning_usd", "critical_usd", "halt_usd"]
            dd = self._tier_part(stem, "drawdown")
            if dd:
                for a, b in zip(steps, steps[1:]):
                    if not dd[b] > dd[a]:
                        self.add(doc, ("drawdown", b), f"drawdown ladder must rise: {b} ({dd[b]}) must be larger "
                                                       f"than {a} ({dd[a]})")
                prev = self._tier_part(ranked[i - 1][1], "drawdown") if i > 0 else None
                for step in steps if prev else ():
                    if dd[step] < prev[step]:
                        self.add(doc, ("drawdown", step),
                                 f"drawdown ladder must not shrink up the tiers: {step} {dd[step]} is below "
                                 f"'{ranked[i - 1][1]}' ({prev[step]})")
            execution = self._tier_part(stem, "execution")
            if execution:
                self._check_execution(doc, execution)
            promo = self._tier_part(stem, "promotion")
            if promo:
                if promo["to"] not in self.files.tier_files:
                    self.add(doc, ("promotion", "to"),
                             f"unknown tier '{promo['to']}'{suggestion(promo['to'], self.files.tier_files)}")
                else:
                    target_rank = self._tier_part(promo["to"], "rank")
                    if isinstance(target_rank, int) and target_rank != rank + 1:
                        self.add(doc, ("promotion", "to"),
                                 f"promotion goes one tier up: '{promo['to']}' has rank {target_rank}, "
                                 f"expected {rank + 1}")
                if top:
                    self.add(doc, ("promotion",), "the top tier cannot have a promotion section")

    def check_tier_kinds(self) -> None:
        """Each kind a tier unlocks must be a strategy plugin of this installation."""
        for doc in self.files.tiers.values():
            kinds = doc.data.get("strategies") if isinstance(doc.data, dict) else None
            for j, kind in enumerate(kinds if isinstance(kinds, list) else []):
                why = unavailable_kind(kind) if isinstance(kind, str) and doc.ok("strategies", j) else None
                if why:   # entry by entry: a misspelt neighbour (a schema problem) hides nothing here
                    self.add(doc, ("strategies", j), f"{why}; remove it from the tier's strategies")

    def _check_execution(self, doc: Document, ex: dict) -> None:
        ts = ex["three_slice"]
        if ts["max_usd"] <= ts["min_usd"]:
            self.add(doc, ("execution", "three_slice", "max_usd"), "three_slice max_usd must be above min_usd")
        ice = ex["iceberg"]
        if ice["max_slices"] < ice["min_slices"]:
            self.add(doc, ("execution", "iceberg", "max_slices"), "iceberg max_slices must be at least min_slices")
        if ice["max_interval_s"] < ice["min_interval_s"]:
            self.add(doc, ("execution", "iceberg", "max_interval_s"),
                     "iceberg max_interval_s must be at least min_interval_s")

    # ---------------------------------------------------------------- declarations
    def declare(self) -> None:
        rule_ids: dict[str, tuple] = {}
        for doc in self.files.rulebooks:
            data = doc.data if isinstance(doc.data, dict) else {}
            for name, spec in (data.get("flags") or {}).items() if isinstance(data.get("flags"), dict) else ():
                if not self._new_name(doc, ("flags", name), name):
                    continue
                spec = spec if isinstance(spec, dict) else {}
                if not doc.ok("flags", name):  # declared, but its shape is reported by the schema
                    self.names[name] = TEXT if isinstance(spec.get("default"), str) else NUM
                    continue
                values = tuple(spec["values"]) if isinstance(spec.get("values"), list) else None
                default = spec["default"]
                is_text = values is not None or isinstance(default, str)
                self.names[name] = TEXT if is_text else NUM
                if values:
                    self.enums[name] = values
                    if default not in values:
                        self.add(doc, ("flags", name, "default"),
                                 f"default {default!r} is not one of the flag's values: {', '.join(values)}")
                elif is_text and doc.ok("flags", name):
                    self.add(doc, ("flags", name), "a text flag must list its `values`")
                self.out.flags[name] = FlagDef(name, default, values, doc, ("flags", name), spec.get("by") == "symbol")
            metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
            for name in metrics:
                if self._new_name(doc, ("metrics", name), name):
                    self.names[name] = NUM
            for i, rule in enumerate(data.get("rules") or [] if isinstance(data.get("rules"), list) else []):
                rid = rule.get("id") if isinstance(rule, dict) else None
                if isinstance(rid, str):
                    if rid in rule_ids:
                        first_doc, first_path = rule_ids[rid]
                        line = first_doc.mark(first_path).line
                        self.add(doc, ("rules", i, "id"), f"duplicate rule id '{rid}' (first in {first_doc.file}:{line})")
                    else:
                        rule_ids[rid] = (doc, ("rules", i, "id"))

    def _new_name(self, doc: Document, path, name: str) -> bool:
        if name in RESERVED:
            self.add(doc, path, f"'{name}' is a reserved word; choose another name", key=True)
            return False
        if name in voc.ACCOUNT_METRICS:
            self.add(doc, path, f"'{name}' is an account metric the engine computes; choose another name", key=True)
            return False
        if name in self.metric_origin:
            first_doc, first_path = self.metric_origin[name]
            line = first_doc.mark(first_path, key=True).line
            self.add(doc, path, f"'{name}' is already declared in {first_doc.file}:{line}", key=True)
            return False
        self.metric_origin[name] = (doc, path)
        return True

    # ---------------------------------------------------------------- metrics
    def check_metrics(self) -> None:
        for doc in self.files.rulebooks:
            data = doc.data if isinstance(doc.data, dict) else {}
            metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
            for name, spec in metrics.items():
                path = ("metrics", name)
                if self.metric_origin.get(name, (None,))[0] is not doc or not doc.ok(*path):
                    continue
                metric = self._metric(doc, path, name, spec)
                if metric:
                    self.out.metrics[name] = metric

    def _metric(self, doc: Document, path, name: str, spec: dict) -> MetricDef | None:
        prims = [p for p in PRIMITIVES if p in spec]
        if len(prims) != 1:
            if prims:
                self.add(doc, path, f"metric '{name}' has several primitives ({', '.join(prims)}); use one", key=True)
            else:
                self.add(doc, path, f"metric '{name}' needs one primitive: {', '.join(PRIMITIVES)}", key=True)
            return None
        prim = prims[0]
        required, optional = _OPTIONS[prim]
        given = doc.written(*path) or {}   # options the user wrote (spec has the defaults filled in)
        for opt in given:
            if opt in PRIMITIVES or opt in _COMMON:
                continue
            allowed = optional | {r for group in required for r in group.split("|")}
            if opt not in allowed:
                self.add(doc, path + (opt,), f"'{opt}' does not apply to a {prim} metric"
                                             f" (it takes: {', '.join(sorted(allowed)) or 'no options'})", key=True)
        for group in required:
            choices = group.split("|")
            present = [c for c in choices if c in given]
            if not present:
                self.add(doc, path, f"a {prim} metric needs {' or '.join(repr(c) for c in choices)}", key=True)
            elif len(present) > 1:
                self.add(doc, path + (present[1],), f"give either {' or '.join(repr(c) for c in choices)}, not both",
                         key=True)
        if "window" in given and "samples" in given:
            self.add(doc, path + ("samples",), "give either 'window' or 'samples', not both", key=True)
        if "sample_every" in given and "sample_on" in given:
            self.add(doc, path + ("sample_on",), "give either 'sample_every' or 'sample_on', not both", key=True)
        metric = MetricDef(name, prim, None, spec, doc, path)
        self._check_measured_by(doc, path, name, spec)
        if prim == "expr":
            checked = self.expr(doc, path + ("expr",), spec["expr"], self.scope())
            if checked is None:
                return None
            if checked.kind == TEXT:
                self.add(doc, path + ("expr",), "a metric must be a number, not text")
                return None
            metric.exprs["expr"] = checked
            return metric
        if prim in METRIC_PRIMITIVES:
            source = spec[prim]
            if source not in self.metric_origin and source not in voc.ACCOUNT_METRICS:
                self.add(doc, path + (prim,), f"unknown metric '{source}'"
                                              f"{suggestion(source, list(self.metric_origin) + list(voc.ACCOUNT_METRICS))}")
                return None
            metric.source = source
            for opt in ("sample_on",):
                if opt in spec and spec[opt] not in voc.EVENTS:
                    self.add(doc, path + (opt,), f"unknown event kind '{spec[opt]}'{suggestion(spec[opt], voc.EVENTS)}")
            return metric
        kind = spec[prim]
        if kind not in voc.EVENTS:
            self.add(doc, path + (prim,), f"unknown event kind '{kind}'{suggestion(kind, voc.EVENTS)}")
            return None
        metric.source = kind
        fields = voc.event_fields(kind)
        if "field" in spec:
            fname = spec["field"]
            if fname not in fields:
                self.add(doc, path + ("field",), f"{kind} events have no field '{fname}'{suggestion(fname, fields)}"
                                                 f" (fields: {', '.join(sorted(fields))})")
                return None
            if prim != "distinct" and fields[fname][0] == voc.TEXT:
                self.add(doc, path + ("field",), f"field '{fname}' is text; a {prim} metric needs a number")
                return None
        if "reset_on" in spec and spec["reset_on"] not in voc.EVENTS:
            self.add(doc, path + ("reset_on",), f"unknown event kind '{spec['reset_on']}'"
                                                f"{suggestion(spec['reset_on'], voc.EVENTS)}")
        for opt in ("where", "value", "while"):
            if opt in spec:
                checked = self.event_expr(doc, path + (opt,), spec[opt], kind)
                if checked is None:
                    return None
                if checked.kind == TEXT:
                    self.add(doc, path + (opt,), f"'{opt}' must be a number or a condition, not text")
                    return None
                metric.exprs[opt] = checked
        return metric

    def _check_measured_by(self, doc: Document, path, name: str, spec: dict) -> None:
        """`measured_by` names another declared metric (its sample count)."""
        count = spec.get("measured_by")
        if count is None:
            return
        if count == name:
            self.add(doc, path + ("measured_by",), f"metric '{name}' cannot count its own samples; name a count metric")
        elif count not in self.metric_origin:
            self.add(doc, path + ("measured_by",), f"unknown metric '{count}'{suggestion(count, self.metric_origin)}")

    def _check_condition_measured(self, doc: Document, path, checked: Checked) -> None:
        """A condition reading a metric that has a sample count (`measured_by`) also reads
        that count: with no samples, the gate must not pass on the metric's empty value."""
        for name in sorted(checked.names):
            metric = self.out.metrics.get(name)
            count = metric.spec.get("measured_by") if metric is not None else None
            if count and count not in checked.names:
                self.add(doc, path, f"'{name}' has no data while {count} is 0: require it in the same "
                                    f"condition ('{count} > 0 and ...')")

    def check_cycles(self) -> None:
        graph = {}
        for name, m in self.out.metrics.items():
            deps = set()
            for checked in m.exprs.values():
                deps |= {n for n in checked.names if n in self.out.metrics}
            if m.primitive in METRIC_PRIMITIVES and m.source in self.out.metrics:
                deps.add(m.source)
            graph[name] = sorted(deps)
        order, state, reported = [], {}, set()
        for root in graph:
            if root in state:
                continue
            # iterative depth-first search: long chains of derived metrics must not recurse
            stack, path = [(root, iter(graph[root]))], [root]
            state[root] = 1
            while stack:
                node, deps = stack[-1]
                dep = next(deps, None)
                if dep is None:
                    stack.pop()
                    path.pop()
                    state[node] = 2
                    order.append(node)
                elif state.get(dep) == 1:
                    cycle = path[path.index(dep):] + [dep]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        m = self.out.metrics[dep]
                        self.add(m.doc, m.path, "metrics form a cycle: " + " -> ".join(cycle), key=True)
                elif dep not in state:
                    state[dep] = 1
                    stack.append((dep, iter(graph.get(dep, ()))))
                    path.append(dep)
        self.out.metric_order = order if not reported else []

    # ---------------------------------------------------------------- rules
    def check_rules(self) -> None:
        for doc in self.files.rulebooks:
            data = doc.data if isinstance(doc.data, dict) else {}
            rules = data.get("rules") if isinstance(data.get("rules"), list) else []
            for i, raw in enumerate(rules):
                if doc.ok("rules", i):
                    rule = self._rule(doc, ("rules", i), raw)
                    if rule:
                        self.out.rules.append(rule)

    def _rule(self, doc: Document, path, raw: dict) -> RuleDef | None:
        stage, on = raw["stage"], raw.get("on")
        if stage == "pre_trade":
            if on not in (None, "order_intent"):
                self.add(doc, path + ("on",), "pre_trade rules run on every order intent; remove 'on'")
                return None
            on = None
        elif on is not None and on not in voc.EVENTS:
            self.add(doc, path + ("on",), f"unknown event kind '{on}'{suggestion(on, voc.EVENTS)}")
            return None
        if "when" not in raw and on is None:
            self.add(doc, path, "a rule needs 'when' (or 'on' an event kind)")
            return None
        if on is not None and "for" in (doc.written(*path) or {}):
            self.add(doc, path + ("for",), "'for' applies to state rules; a rule with 'on' fires on each event", key=True)
        tiers = raw.get("tiers")
        if tiers:
            unknown = [t for t in tiers if t not in self.files.tier_files]
            for t in unknown:
                self.add(doc, path + ("tiers", tiers.index(t)),
                         f"unknown tier '{t}'{suggestion(t, self.files.tier_files)}")
            if unknown:
                return None
        tier_scope = {t: d for t, d in self.out.tiers.items() if not tiers or t in tiers}
        namespaces = {}
        if on:
            namespaces["event"] = {f: _expr_type(t) for f, (t, _) in voc.event_fields(on).items()}
        if stage == "pre_trade":
            namespaces["order"] = {f: _expr_type(t) for f, (t, _) in voc.ORDER_FIELDS.items()}
        scope = self.scope(namespaces, tier_scope)
        whens = raw.get("when", [])
        whens = [whens] if isinstance(whens, str) else whens
        checked_whens = []
        for j, source in enumerate(whens):
            wpath = path + (("when",) if isinstance(raw["when"], str) else ("when", j))
            checked = self.expr(doc, wpath, source, scope)
            if checked and checked.kind == TEXT:
                self.add(doc, wpath, "a condition must be true/false, not text")
                checked = None
            if checked:
                self.constant_when(doc, wpath, checked, scope.tiers)
                self._check_condition_measured(doc, wpath, checked)
            checked_whens.append(checked)
        then = [self._action(doc, path + ("then", k), a, stage, scope) for k, a in enumerate(raw["then"])]
        resolve = [self._action(doc, path + ("resolve", k), a, stage, scope)
                   for k, a in enumerate(raw["resolve"])]
        if on and raw.get("resolve"):
            self.add(doc, path + ("resolve",), "'resolve' applies to state rules; a rule with 'on' never resolves",
                     key=True)
        if None in checked_whens or None in then or None in resolve:
            return None
        return RuleDef(raw["id"], stage, on, checked_whens, parse_duration(raw["for"]),
                       parse_duration(raw["cooldown"]), raw["severity"],
                       tuple(tiers) if tiers else None, then, resolve, doc, path, raw["description"])

    def _action(self, doc: Document, path, raw, stage: str, scope: Scope) -> ActionDef | None:
        if isinstance(raw, str):
            return ActionDef(raw, None)
        name, arg = next(iter(raw.items()))
        action = ActionDef(name, arg)
        apath = path + (name,)
        ok = True
        if name in ("reject", "resize") and stage != "pre_trade":
            self.add(doc, path, f"'{name}' only works in the pre_trade stage (this rule is in '{stage}')", key=False)
            ok = False
        if name == "set":
            for flag, value in arg.items():
                if flag not in self.out.flags:
                    self.add(doc, apath + (flag,), f"unknown flag '{flag}'{suggestion(flag, self.out.flags)}; declare "
                                                   "it under 'flags'", key=True)
                    ok = False
                    continue
                fdef = self.out.flags[flag]
                if fdef.values and value not in fdef.values:
                    self.add(doc, apath + (flag,), f"flag '{flag}' cannot be {value!r}; its values are "
                                                   f"{', '.join(fdef.values)}{suggestion(value, fdef.values)}")
                    ok = False
                elif not fdef.values and isinstance(value, str):
                    self.add(doc, apath + (flag,), f"flag '{flag}' holds numbers, not text")
                    ok = False
        for param in ("factor", "max_notional_usd"):
            if isinstance(arg, dict) and isinstance(arg.get(param), str):
                checked = self.expr(doc, apath + (param,), arg[param], scope)
                if checked is None:
                    ok = False
                else:
                    action.exprs[param] = checked
            elif isinstance(arg, dict) and param == "factor" and isinstance(arg.get(param), (int, float)):
                if not 0 <= arg[param] <= 1:
                    self.add(doc, apath + (param,), f"a size factor must be between 0 and 1, got {arg[param]}")
                    ok = False
        if name == "require" and arg.get("kind") == "confirmation" and "phrase" not in arg:
            self.add(doc, apath, "a confirmation requirement needs the 'phrase' to type")
            ok = False
        if name == "lock":
            durations = arg["duration"]
            if arg["until"] == "utc_midnight" and "duration" in (doc.written(*apath) or {}):
                self.add(doc, apath + ("duration",), "give either 'duration' or until: utc_midnight, not both",
                         key=True)
                ok = False
            elif isinstance(durations, list) and len(durations) > 1:
                secs = [parse_duration(d) for d in durations]
                if secs != sorted(secs):
                    self.add(doc, apath + ("duration",), "escalating lock durations must not get shorter")
                    ok = False
        if name in ("notify", "reject"):
            text = arg
            if text.count("${") != len(_TEMPLATE.findall(text)):
                self.add(doc, apath, "unclosed '${' in message; write ${name}")
                return None
            for match in _TEMPLATE.finditer(text):
                if match.group(1).strip() == "symbol":   # the symbol the rule fired for (empty: account-wide)
                    action.templates.append(None)
                    continue
                checked = self.expr(doc, apath, match.group(1), scope, start=match.start(1))
                if checked is None:
                    ok = False
                else:
                    action.templates.append(checked)
        return action if ok else None

    def check_symbol_groups(self) -> None:
        """A rule evaluated per symbol may set only flags kept per symbol: a global flag
        set from several symbols' states would hold whichever symbol fired last."""
        per_symbol = symbol_names(self.out.metrics, self.out.flags, self.out.metric_order)
        for rule in self.out.rules:
            reads = per_symbol_reads(rule, per_symbol)
            for key, actions in (("then", rule.then), ("resolve", rule.resolve)):
                for k, action in enumerate(actions):
                    if action.name != "set":
                        continue
                    for flag in action.arg:
                        fdef = self.out.flags.get(flag)
                        if fdef is not None and fdef.by_symbol and not reads and not rule.on:
                            self.add(rule.doc, rule.path + (key, k, "set", flag),
                                     f"rule '{rule.id}' is account-wide (it reads no per-symbol name) but sets "
                                     f"'{flag}', a flag kept per symbol: it would not be clear for which symbol",
                                     key=True)
                        if fdef is not None and not fdef.by_symbol and reads:
                            self.add(rule.doc, rule.path + (key, k, "set", flag),
                                     f"rule '{rule.id}' is evaluated per symbol (it reads {', '.join(sorted(reads))}) "
                                     f"but sets the account-wide flag '{flag}'; declare the flag with `by: symbol` "
                                     f"({fdef.doc.file}:{fdef.doc.mark(fdef.path).line})", key=True)

    def check_action_cycles(self) -> None:
        """Rules whose actions wake each other in the same event without end."""
        for cycle, rest in rule_cycles(self.out.rules, self.out.metrics, self.files.tier_files):
            first = cycle[0]
            self.add(first.doc, first.path + ("id",), describe_cycle(cycle, rest))

    # ---------------------------------------------------------------- strategies & settings
    def check_strategies(self) -> None:
        doc = self.files.strategies
        if doc is None or not isinstance(doc.data, dict):
            return
        instances = doc.data.get("strategies")
        if not isinstance(instances, list):
            return
        symbols = self._settings_part("symbols") or []
        seen = {}
        active_per_tier: dict[str, list] = {}
        for i, inst in enumerate(instances):
            path = ("strategies", i)
            if not doc.ok(*path):
                continue
            sid, kind = inst["id"], inst["kind"]
            if sid in seen:
                self.add(doc, path + ("id",), f"duplicate strategy id '{sid}' (first at line {seen[sid]})")
            seen.setdefault(sid, doc.mark(path + ("id",)).line)
            for j, sym in enumerate(inst["symbols"]):
                if symbols and sym not in symbols:
                    self.add(doc, path + ("symbols", j),
                             f"symbol '{sym}' is not in genesis.yaml symbols{suggestion(sym, symbols)}")
            self._check_params(doc, path, kind, inst["params"])
            why = unavailable_kind(kind)
            if why:   # which tiers unlock it matters no more: it cannot run in any
                self.add(doc, path + ("kind",), f"{why}; remove the instance '{sid}'")
                continue
            unlocks = {t: self._tier_part(t, "strategies") for t in self.files.tier_files}
            unlocking = [t for t, kinds in unlocks.items() if kinds and kind in kinds]
            if not unlocking and all(k is not None for k in unlocks.values()):
                self.add(doc, path + ("kind",), f"no tier unlocks '{kind}'; add it to a tier's strategies list")
            for j, t in enumerate(inst.get("tiers") or []):
                if t not in self.files.tier_files:
                    self.add(doc, path + ("tiers", j), f"unknown tier '{t}'{suggestion(t, self.files.tier_files)}")
                elif unlocks[t] is not None and kind not in unlocks[t]:
                    unlocked = ", ".join(unlocks[t]) or "nothing"
                    self.add(doc, path + ("tiers", j),
                             f"tier '{t}' does not unlock '{kind}' (it unlocks: {unlocked})")
            if inst["enabled"]:
                for t in inst.get("tiers") or unlocking:
                    if t in unlocking:  # a tier that does not unlock the kind never runs it
                        active_per_tier.setdefault(t, []).append(sid)
        for t, ids in active_per_tier.items():
            multi = self._tier_part(t, "multi_pair")
            if self._tier_part(t, "strategies") is not None and not multi and len(ids) > 1:
                self.add(self.files.tiers[t], ("strategies",),
                         f"tier '{t}' is not multi_pair but {len(ids)} strategies would run in it: {', '.join(ids)}; "
                         "limit them with `tiers:` in strategies.yaml or set multi_pair: true")

    def _check_params(self, doc: Document, path, kind: str, params: dict) -> None:
        """The cross-parameter checks a kind's schema declares (x-rising, x-same-length,
        x-sums-to, x-non-decreasing): no strategy kind is named here."""
        shape = all_schemas()["strategies.schema.json"]["$defs"].get(kind, {})
        ppath = path + ("params",)
        rising = shape.get("x-rising", [])
        values = [params[k] for k in rising]
        if any(not a < b for a, b in zip(values, values[1:])):
            self.add(doc, ppath, f"{' < '.join(rising)} must hold (got {', '.join(map(str, values))})", key=True)
        same = shape.get("x-same-length", [])
        lengths = [len(params[k]) for k in same]
        if len(set(lengths)) > 1:
            self.add(doc, ppath + (same[-1],), f"{lengths[-1]} {same[-1]} for {lengths[0]} {same[0]}; give one "
                                               f"{same[-1]} item per {same[0]} item")
        for key, total in shape.get("x-sums-to", {}).items():
            if len(set(lengths)) <= 1 and abs(sum(params[key]) - total) > 1e-9:
                self.add(doc, ppath + (key,), f"{key} must add up to {total:g}, they add up to {sum(params[key]):g}")
        for key in shape.get("x-non-decreasing", []):
            if params[key] != sorted(params[key]):
                self.add(doc, ppath + (key,), f"{key} must rise item by item")

    def _settings_part(self, *path):
        """A section of genesis.yaml, or None when missing or broken by a schema error."""
        doc = self.files.settings
        return None if doc is None else doc.part(*path)

    def check_settings(self) -> None:
        doc = self.files.settings
        if doc is None or not isinstance(doc.data, dict):
            return
        tier = self._settings_part("tier")
        if tier is not None and tier not in self.files.tier_files:
            self.add(doc, ("tier",), f"unknown tier '{tier}'{suggestion(tier, self.files.tier_files)}")
        channels = self._settings_part("notifications", "channels")
        for name, ch in (channels or {}).items():
            for needed in NEEDS.get(ch["kind"], ()):
                if ch.get(needed) in (None, ""):
                    self.add(doc, ("notifications", "channels", name), f"channel {name} ({ch['kind']}) needs {needed}",
                             key=True)
            fallback = ch.get("fallback")
            if fallback is not None and fallback not in channels:
                self.add(doc, ("notifications", "channels", name, "fallback"),
                         f"unknown channel '{fallback}'{suggestion(fallback, channels)}")
            elif fallback == name:
                self.add(doc, ("notifications", "channels", name, "fallback"), "a channel cannot fall back to itself")
            for key in SECRET_KEYS:
                variable = ch.get(key)
                if variable and not os.environ.get(variable):
                    self.out.warnings.append(doc.problem(("notifications", "channels", name, key),
                                                         f"channel {name}: environment variable {variable} is not "
                                                         "set; messages to it will fail until it is"))
        interval = self._settings_part("health_probe", "interval")
        if isinstance(interval, str) and parse_duration(interval) < 1:
            self.add(doc, ("health_probe", "interval"), f"a health probe every {interval} would load the host it "
                                                        "measures; use 1s or more, or null for none")
        interval = self._settings_part("backup", "interval")
        if isinstance(interval, str) and parse_duration(interval) < 60:
            self.add(doc, ("backup", "interval"), f"a backup every {interval} would copy the journal over and over; "
                                                  "use 1m or more, or null for none")
        url = self._settings_part("storage", "url")
        if url and re.search(r"://[^/@\s]*:[^/@\s]*@", url):
            self.add(doc, ("storage", "url"), "the storage URL contains a password; remove it and name an "
                                              "environment variable in storage.password_env")
        if channels is None:
            return
        for rb in self.files.rulebooks:
            if rb.kind != "alerts" or not rb.ok("routing"):
                continue
            for severity, names in rb.data["routing"].items():
                for j, ch in enumerate(names):
                    if ch not in channels:
                        self.add(rb, ("routing", severity, j),
                                 f"unknown channel '{ch}'{suggestion(ch, channels)} (genesis.yaml defines: "
                                 f"{', '.join(channels)})")

    def check_unemitted(self) -> None:
        """Warn about a rule that reads, by `on:` or through its metrics, an event kind
        nothing emits yet (vocabulary.NOT_EMITTED): it can never fire."""
        for rule in self.out.rules:
            kinds = {rule.on} if rule.on else set()
            names = [n for checked in rule.when for n in checked.names]
            seen: set = set()
            while names:
                name = names.pop()
                metric = self.out.metrics.get(name)
                if name in seen or metric is None:
                    continue
                seen.add(name)
                if metric.source:
                    kinds.add(metric.source)
                names.extend(n for checked in metric.exprs.values() for n in checked.names)
            for kind in sorted(kinds & set(voc.NOT_EMITTED)):
                self.out.warnings.append(rule.doc.problem(rule.path + ("id",), f"rule {rule.id} reads {kind} events, "
                                                          f"which nothing emits yet ({voc.NOT_EMITTED[kind]}), "
                                                          "so it cannot fire"))

    def run(self) -> CheckedConfig:
        self.check_tiers()
        self.check_tier_kinds()
        self.declare()
        self.check_metrics()
        self.check_cycles()
        self.check_rules()
        self.check_symbol_groups()
        self.check_action_cycles()
        self.check_strategies()
        self.check_settings()
        self.check_unemitted()
        return self.out


def check_config(root: Path) -> CheckedConfig:
    """Read, schema-check and cross-check a configuration folder."""
    files = load_config_files(Path(root))
    checker = _Checker(files)
    checker.problems.extend(files.problems)
    result = checker.run()
    result.problems.sort(key=lambda p: (p.file, p.line, p.col, p.message))
    return result
