"""Rule evaluation with Prometheus-style `for:` durations, cooldowns and resolution.

State rules (no `on:`) are re-evaluated only when a name they read changed, or when a
timer they set (a `for:` or a cooldown running out) comes due. Event rules (`on:`)
are evaluated on each event of their kind. Pre-trade rules are evaluated per order
intent by `check_intent`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from genesis.config.ruleset import CompiledRule, Ruleset
from genesis.engine.metrics import Timers
from genesis.vocabulary import STAGES


@dataclass
class RuleState:
    """Where one rule stands."""

    pending_since: int | None = None
    firing: bool = False
    last_fire: int | None = None


@dataclass
class Firing:
    """A rule fired (or resolved), with the values its condition saw."""

    rule: CompiledRule
    kind: str                     # 'fire' or 'resolve'
    ts: int
    values: dict = field(default_factory=dict)


def seen_values(rule: CompiledRule, m, e, o) -> dict:
    """The values a rule's condition read, for the audit trail."""
    values = {name: m.get(name) for name in sorted(rule.reads)}
    for cond in rule.conditions:
        for ns, name in cond.checked.fields:
            source = e if ns == "event" else o
            if source is not None:
                values[f"{ns}.{name}"] = source.get(name)
    return values


class RuleRunner:
    """Evaluates the state and event rules of one rule set."""

    def __init__(self, ruleset: Ruleset):
        self.states: dict[str, RuleState] = {}
        self.order: dict[str, tuple] = {}
        self.readers: dict[str, list[CompiledRule]] = {}
        self.event_rules: dict[str, list[CompiledRule]] = {}
        self.state_rules: list[CompiledRule] = []
        self.pre_trade: list[CompiledRule] = ruleset.rules.get("pre_trade", [])
        self.by_id: dict[str, CompiledRule] = {}
        for s, stage in enumerate(STAGES):
            for i, rule in enumerate(ruleset.rules.get(stage, [])):
                rid = rule.rule.id
                self.by_id[rid] = rule
                self.order[rid] = (s, i)
                self.states[rid] = RuleState()
                if stage == "pre_trade":
                    continue
                if rule.rule.on:
                    self.event_rules.setdefault(rule.rule.on, []).append(rule)
                else:
                    self.state_rules.append(rule)
                    for name in rule.reads:
                        self.readers.setdefault(name, []).append(rule)
        self.timers = Timers()
        self.errors = 0
        self.started = False

    def _check(self, rule: CompiledRule, m, e, o) -> bool:
        try:
            return rule.check(m, e, o)
        except (ArithmeticError, TypeError, ValueError, KeyError):
            self.errors += 1
            return False

    def _step(self, rule: CompiledRule, now: int, m, fields, out: list) -> None:
        spec = rule.rule
        st = self.states[spec.id]
        if not self._check(rule, m, fields, None):
            st.pending_since = None
            if st.firing:
                st.firing = False
                out.append(Firing(rule, "resolve", now, seen_values(rule, m, fields, None)))
            return
        if st.firing:
            return
        if st.pending_since is None:
            st.pending_since = now
        due = st.pending_since + int(spec.for_s * 1000)
        if spec.cooldown_s and st.last_fire is not None:
            due = max(due, st.last_fire + int(spec.cooldown_s * 1000))
        if now >= due:
            st.firing = True
            st.last_fire = now
            out.append(Firing(rule, "fire", now, seen_values(rule, m, fields, None)))
        else:
            self.timers.add(due, spec.id)

    def evaluate(self, event, changed: set, m, event_rules: bool = True) -> list[Firing]:
        """Rules to act on after `event` changed the names in `changed`; event rules
        (`on:`) only when `event_rules` (once per event, not on later passes)."""
        now = event.ts
        if self.started and not changed and (not event_rules or event.kind not in self.event_rules) \
                and not (self.timers.heap and self.timers.heap[0][0] <= now):
            return []
        fields = event.fields
        todo: dict[str, CompiledRule] = {}
        if not self.started:
            self.started = True
            todo = {r.rule.id: r for r in self.state_rules}
        for rid in self.timers.pop_due(now):
            todo[rid] = self.by_id[rid]
        for name in changed:
            for rule in self.readers.get(name, ()):
                todo[rule.rule.id] = rule
        out: list[Firing] = []
        for rule in sorted(todo.values(), key=lambda r: self.order[r.rule.id]) if len(todo) > 1 else todo.values():
            self._step(rule, now, m, fields, out)
        on_event = False
        for rule in self.event_rules.get(event.kind, ()) if event_rules else ():
            st = self.states[rule.rule.id]
            cooldown = int(rule.rule.cooldown_s * 1000)
            if st.last_fire is not None and now - st.last_fire < cooldown:
                continue
            if self._check(rule, m, fields, None):
                st.last_fire = now
                out.append(Firing(rule, "fire", now, seen_values(rule, m, fields, None)))
                on_event = True
        if on_event and len(out) > 1:  # stages in order: an event rule of the risk stage acts before the tier stage
            out.sort(key=lambda f: self.order[f.rule.rule.id])
        return out

    def check_intent(self, order_fields: dict, m, now: int) -> list[Firing]:
        """Pre-trade rules that match one order intent."""
        out = []
        for rule in self.pre_trade:
            if self._check(rule, m, None, order_fields):
                self.states[rule.rule.id].last_fire = now
                out.append(Firing(rule, "fire", now, seen_values(rule, m, None, order_fields)))
        return out

    def firing(self) -> list[str]:
        """Ids of the state rules currently firing."""
        return [rid for rid, st in self.states.items() if st.firing]
