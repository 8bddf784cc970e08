"""Rule evaluation with Prometheus-style `for:` durations, cooldowns and resolution.

Each rule keeps its state per group, as Prometheus keeps alert state per label set: a
rule that reads a per-symbol name (genesis/config/groups.py) has one state per symbol,
every other rule one state for the account (group ''). State rules (no `on:`) are
re-evaluated for a group only when a name they read changed in it, or when a timer they
set (a `for:` or a cooldown running out) comes due. Event rules (`on:`) are evaluated on
each event of their kind, for the event's symbol. Pre-trade rules are evaluated per
order intent by `check_intent`.

An expression that fails at run time is recorded per rule (`errors`, `health`): the rule
does not fire, `new_errors` holds what the engine must journal and raise, and a
`pre_trade` or `risk` rule in error fails closed (`blocking`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from genesis.config.ruleset import CompiledRule, Ruleset
from genesis.engine.metrics import Timers
from genesis.vocabulary import STAGES

FAIL_CLOSED_STAGES = ("pre_trade", "risk")
EVAL_ERRORS = (ArithmeticError, TypeError, ValueError, KeyError)


@dataclass
class RuleState:
    """Where one rule stands for one group."""

    pending_since: int | None = None
    firing: bool = False
    last_fire: int | None = None


@dataclass
class Firing:
    """A rule fired (or resolved) for a group, with the values its condition saw."""

    rule: CompiledRule
    kind: str                     # 'fire' or 'resolve'
    ts: int
    values: dict = field(default_factory=dict)
    group: str = ""               # the symbol of a per-symbol rule, '' for an account-wide one


@dataclass
class ExpressionError:
    """A rule or metric whose expression could not be evaluated."""

    source: str                   # rule or metric id
    what: str                     # 'rule' or 'metric'
    stage: str                    # the rule's stage ('' for a metric)
    group: str                    # symbol, '' for account-wide
    expression: str
    error: str                    # exception type and message
    values: dict
    ts: int

    def record(self) -> dict:
        """Plain form for the journal."""
        return {"what": self.what, "stage": self.stage, "expression": self.expression, "error": self.error,
                "values": self.values}


def seen_values(rule: CompiledRule, m, e, o) -> dict:
    """The values a rule's condition read, for the audit trail."""
    values = {name: m.get(name) for name in sorted(rule.reads)}
    for cond in rule.conditions:
        for ns, name in cond.checked.fields:
            source = e if ns == "event" else o
            if source is not None:
                values[f"{ns}.{name}"] = source.get(name)
    return values


def failing_expression(rule: CompiledRule, m, e, o) -> tuple[str, str]:
    """(source text, error) of the first condition of `rule` that raises."""
    for cond in rule.conditions:
        try:
            cond.fn(m, e, o)
        except EVAL_ERRORS as exc:
            return cond.checked.source, f"{type(exc).__name__}: {exc}"
    return " and ".join(c.checked.source for c in rule.conditions), "error"


class RuleRunner:
    """Evaluates the state and event rules of one rule set, per group."""

    # attributes in slots, not a dict: an attribute read is a slot read, compiled or not
    __slots__ = (
        "states", "order", "readers", "event_rules", "state_rules", "by_stage", "pre_trade",
        "by_id", "stages", "symbol_names", "has_symbol_rules", "symbol_rule_reads", "symbol_stages",
        "read_names", "kind_readers", "kind_reads", "event_stages", "pre_trade_per_symbol",
        "timers", "due", "errors", "health", "new_errors", "recovered", "started_groups", "_plans",
        "_steps"
    )

    def __init__(self, ruleset: Ruleset):
        self.states: dict[tuple, RuleState] = {}     # (rule id, group) -> state
        self.order: dict[str, tuple] = {}
        self.readers: dict[str, list[CompiledRule]] = {}
        self.event_rules: dict[str, list[CompiledRule]] = {}
        self.state_rules: list[CompiledRule] = []
        self.by_stage: dict[str, list[CompiledRule]] = {}
        self.pre_trade: list[CompiledRule] = ruleset.rules.get("pre_trade", [])
        self.by_id: dict[str, CompiledRule] = {}
        self.stages = [s for s in STAGES if s != "pre_trade"]
        for s, stage in enumerate(STAGES):
            for i, rule in enumerate(ruleset.rules.get(stage, [])):
                rid = rule.rule.id
                self.by_id[rid] = rule
                self.order[rid] = (s, i)
                if stage == "pre_trade":
                    continue
                if rule.rule.on:
                    self.event_rules.setdefault(rule.rule.on, []).append(rule)
                else:
                    self.state_rules.append(rule)
                    self.by_stage.setdefault(stage, []).append(rule)
                    for name in rule.reads:
                        self.readers.setdefault(name, []).append(rule)
        self.symbol_names = ruleset.symbol_names
        self.has_symbol_rules = any(r.per_symbol for r in self.state_rules)
        self.symbol_rule_reads = frozenset().union(*(r.reads for r in self.state_rules if r.per_symbol))
        self.symbol_stages = frozenset(r.rule.stage for r in self.state_rules if r.per_symbol)
        self.read_names = frozenset(self.readers)   # every name some state rule reads
        # per-symbol? -> name -> the state rules of that kind that read it
        self.kind_readers: dict[bool, dict[str, list[CompiledRule]]] = {False: {}, True: {}}
        for rule in self.state_rules:
            for name in rule.reads:
                self.kind_readers[rule.per_symbol].setdefault(name, []).append(rule)
        self.kind_reads = {k: frozenset(v) for k, v in self.kind_readers.items()}
        self.event_stages = {kind: frozenset(r.rule.stage for r in rules) for kind, rules in self.event_rules.items()}
        self.pre_trade_per_symbol = any(r.per_symbol for r in self.pre_trade)
        self.timers = Timers()
        self.due: dict[str, set] = {}               # group -> ids whose timer came due this event
        self.errors: Counter = Counter()            # rule id -> evaluations that raised
        self.health: dict[tuple, ExpressionError] = {}   # (rule id, group) -> its current error
        self.new_errors: list[ExpressionError] = []
        self.recovered: list[tuple] = []            # (rule id, group) healthy again
        self.started_groups: set = set()
        self._plans: dict[tuple, dict] = {}          # (per-symbol?, names) -> plan, for groups that started
        self._steps: dict[frozenset, tuple | None] = {}   # changed names -> `steps`

    # ------------------------------------------------------------------ state
    def state(self, rid: str, group: str) -> RuleState:
        """The state of one rule for one group (created on first use)."""
        st = self.states.get((rid, group))
        if st is None:
            st = self.states[(rid, group)] = RuleState()
        return st

    def group_of(self, rule: CompiledRule, symbol: str) -> str:
        """The group a rule keeps its state in when evaluated for `symbol`."""
        return symbol if rule.per_symbol else ""

    def _check(self, rule: CompiledRule, group: str, now: int, m, e, o) -> bool | None:
        """The rule's condition; None when it cannot be evaluated (recorded)."""
        key = (rule.rule.id, group)
        try:
            result = rule.check(m, e, o)
        except EVAL_ERRORS:
            self.errors[rule.rule.id] += 1
            if key not in self.health:
                expression, error = failing_expression(rule, m, e, o)
                err = ExpressionError(rule.rule.id, "rule", rule.rule.stage, group, expression, error,
                                      seen_values(rule, m, e, o), now)
                self.health[key] = err
                self.new_errors.append(err)
            return None
        if key in self.health:
            del self.health[key]
            self.recovered.append(key)
        return result

    def blocking(self) -> list[ExpressionError]:
        """Errors of fail-closed (pre_trade, risk) state rules: new exposure is refused while any holds."""
        return [err for err in self.health.values() if err.stage == "risk"]

    # ------------------------------------------------------------------ evaluation
    def begin_event(self, now: int, kind: str, changed: set, group: str) -> bool:
        """Collect the rules whose timers come due at `now`, before any stage runs.
        True when the event needs no rule evaluation at all: no rule runs on `kind`, no
        timer is due, no state rule reads a name in `changed`, and the account-wide
        group and `group` have both been evaluated before."""
        heap = self.timers.heap
        if not heap or heap[0][0] > now:   # the common case: nothing due
            if self.due:
                self.due = {}
            started = self.started_groups
            return kind not in self.event_rules and changed.isdisjoint(self.read_names) and "" in started \
                and group in started
        self.due = {}
        for rid, group_due in self.timers.pop_due(now):
            self.due.setdefault(group_due, set()).add(rid)
        return False

    def groups_due(self) -> list:
        """Groups with a timer due this event."""
        return list(self.due)

    def plan(self, group: str, changed: set) -> dict[str, list[CompiledRule]]:
        """State rules to evaluate for `group` ('' = account-wide rules) after the names
        in `changed` changed, by stage, each in rule-book order: readers of those names,
        rules whose timer is due, and every rule on the first evaluation of the group."""
        per_symbol = group != ""
        if group not in self.started_groups:
            picked = [r for r in self.state_rules if r.per_symbol == per_symbol]
        else:
            due = self.due.get(group)
            names = changed.intersection(self.kind_reads[per_symbol]) if changed else ()
            if not names and not due:
                return {}
            if not due:   # the same few names change again and again (a clock tick): plan them once
                key = (per_symbol, frozenset(names))
                cached = self._plans.get(key)
                if cached is None:
                    if len(self._plans) >= 512:
                        self._plans.clear()
                    cached = self._plans[key] = self._by_stage(self._readers_of(names, per_symbol))
                return cached
            picked = self._readers_of(names, per_symbol)
            for rid in due:
                rule = self.by_id.get(rid)
                if rule is not None and rule.per_symbol == per_symbol and rule not in picked:
                    picked.append(rule)
        return self._by_stage(picked)

    def steps(self, changed: set, symbol_names) -> tuple | None:
        """The sweep for `changed` when only the symbol in view can have work (every group
        started, no timer due): (stage position, account-wide rules, the symbol's rules)
        for each stage with work, in order, as `plan` gives them. None when an
        account-wide name that per-symbol rules read changed: every symbol has work."""
        key = frozenset(changed)
        if key in self._steps:
            return self._steps[key]
        account_names = key - symbol_names
        steps = None
        if account_names.isdisjoint(self.symbol_rule_reads):
            account = self._by_stage(self._readers_of(account_names & self.kind_reads[False], False))
            own = self._by_stage(self._readers_of(key & self.kind_reads[True], True))
            steps = tuple((position, account.get(stage, ()), own.get(stage, ()))
                          for position, stage in enumerate(self.stages) if stage in account or stage in own)
        if len(self._steps) >= 512:
            self._steps.clear()
        self._steps[key] = steps
        return steps

    def _readers_of(self, names, per_symbol: bool) -> list[CompiledRule]:
        readers = self.kind_readers[per_symbol]
        chosen: dict = {}
        for name in names:
            for rule in readers[name]:
                chosen[rule.rule.id] = rule
        return list(chosen.values())

    def _by_stage(self, rules: list) -> dict[str, list[CompiledRule]]:
        """`rules` by stage, each stage's in rule-book order (stages in order, too)."""
        rules.sort(key=lambda r: self.order[r.rule.id])
        out: dict[str, list[CompiledRule]] = {}
        for rule in rules:
            out.setdefault(rule.rule.stage, []).append(rule)
        return out

    def mark_started(self, groups) -> None:
        """Every rule of each of `groups` has been evaluated once."""
        self.started_groups.update(groups)

    def evaluate(self, rules: list, group: str, event, m) -> list[Firing]:
        """Evaluate state rules for one group, in rule-book order: each rule's state moves
        (pending while its condition holds for less than `for:`, firing, resolved) and
        what fires or resolves is returned."""
        out: list[Firing] = []
        now, fields = event.ts, event.fields
        states, health = self.states, self.health
        for rule in rules:
            spec = rule.rule
            key = (spec.id, group)
            st = states.get(key)
            if st is None:
                st = states[key] = RuleState()
            try:   # _check() inlined for the common case: the condition evaluates
                holds = rule.check(m, fields, None)
            except EVAL_ERRORS:
                holds = self._check(rule, group, now, m, fields, None)   # records the error
            else:
                if health and key in health:
                    del health[key]
                    self.recovered.append(key)
            if holds is None:
                continue               # an error is not a decision: the state stays as it was
            if not holds:
                st.pending_since = None
                if st.firing:
                    st.firing = False
                    out.append(Firing(rule, "resolve", now, seen_values(rule, m, fields, None), group))
                continue
            if st.firing:
                continue
            if st.pending_since is None:
                st.pending_since = now
            due = st.pending_since + int(spec.for_s * 1000)
            if spec.cooldown_s and st.last_fire is not None:
                due = max(due, st.last_fire + int(spec.cooldown_s * 1000))
            if now >= due:
                st.firing = True
                st.last_fire = now
                out.append(Firing(rule, "fire", now, seen_values(rule, m, fields, None), group))
            else:
                self.timers.add(due, key)
        return out

    def evaluate_events(self, stage: str, event, m) -> list[Firing]:
        """Event rules (`on:` this event's kind) of one stage, for the event's symbol."""
        out: list[Firing] = []
        now, fields = event.ts, event.fields
        for rule in self.event_rules.get(event.kind, ()):
            if rule.rule.stage != stage:
                continue
            group = self.group_of(rule, event.symbol)
            st = self.state(rule.rule.id, group)
            cooldown = int(rule.rule.cooldown_s * 1000)
            if st.last_fire is not None and now - st.last_fire < cooldown:
                continue
            if self._check(rule, group, now, m, fields, None):
                st.last_fire = now
                out.append(Firing(rule, "fire", now, seen_values(rule, m, fields, None), group))
        return out

    def check_intent(self, order_fields: dict, m, now: int, symbol: str = "") -> tuple[list[Firing], list]:
        """Pre-trade rules that match one order intent, and the errors of those that
        cannot be evaluated (each refuses the order: pre-trade rules fail closed)."""
        out, failed = [], []
        for rule in self.pre_trade:
            group = self.group_of(rule, symbol)
            holds = self._check(rule, group, now, m, None, order_fields)
            if holds is None:
                failed.append(self.health[(rule.rule.id, group)])
            elif holds:
                self.state(rule.rule.id, group).last_fire = now
                out.append(Firing(rule, "fire", now, seen_values(rule, m, None, order_fields), group))
        return out, failed

    def firing(self) -> list[str]:
        """Rules currently firing: the id, with `@SYMBOL` for a per-symbol rule."""
        return [rid if not group else f"{rid}@{group}" for (rid, group), st in self.states.items() if st.firing]

    def adopt(self, old: "RuleRunner") -> None:
        """Carry rule states, health and start-up over from the runner this one replaces."""
        for (rid, group), st in old.states.items():
            if rid in self.by_id:
                self.states[(rid, group)] = st
        self.health = {k: v for k, v in old.health.items() if k[0] in self.by_id}
        self.errors = old.errors
        # every group is evaluated in full once more: tier values may have changed
