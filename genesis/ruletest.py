"""`genesis test`: rule unit tests written in YAML, run through the real engine.

Like `promtool test rules`: each case gives a starting state, events (and order
intents) over time, and expectations at given times — which rules fired or resolved,
the trading state, metric values, locks, size factor, refusals, notifications, tier.
A failure names the file and line of the expectation, what was expected and what
happened.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from genesis import vocabulary as voc
from genesis.config.checks import CheckedConfig
from genesis.config.problems import Problem
from genesis.config.schemas import validate_document
from genesis.config.yamlsrc import YamlError, load_yaml
from genesis.durations import parse_duration
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.strategies import OrderIntent

_DEFAULTS = {voc.NUMBER: 0.0, voc.BOOL: False, voc.TEXT: ""}


@dataclass
class CaseResult:
    """The outcome of one case."""

    file: str
    line: int
    name: str
    failures: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _ms(text: str) -> int:
    return int(parse_duration(text) * 1000)


def _start_ms(text: str) -> int:
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1000)


def _fields(kind: str, given: dict) -> dict:
    fields = {name: _DEFAULTS[t] for name, (t, _) in voc.EVENTS.get(kind, ("", {}))[1].items()}
    fields.update(given)
    return fields


def _same(actual, expected) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) if isinstance(actual, (bool, int, float)) else False
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6)
    return actual == expected


class _Recorder:
    """Counts what the engine did between two expectations."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.fired: Counter = Counter()
        self.resolved: Counter = Counter()
        self.refused: Counter = Counter()
        original_apply, original_refuse = engine._apply, engine._refuse

        def apply(firing, event, changed):
            if firing.kind == "resolve":
                self.resolved[firing.rule.rule.id] += 1
            return original_apply(firing, event, changed)

        def refuse(intent, rule, reason, record):
            self.refused[rule] += 1
            return original_refuse(intent, rule, reason, record)

        engine._apply, engine._refuse = apply, refuse
        self.notes_seen = 0
        self.firings_seen = Counter()

    def take(self):
        """What happened since the last call."""
        notes = self.engine.notifications[self.notes_seen:]
        self.notes_seen = len(self.engine.notifications)
        now = Counter(self.engine.stats.firings)  # every firing, pre-trade ones included
        fired = {rid for rid, n in now.items() if n > self.firings_seen.get(rid, 0)}
        self.firings_seen = now
        out = (fired, set(self.resolved), set(self.refused), [n.text for n in notes])
        self.fired, self.resolved, self.refused = Counter(), Counter(), Counter()
        return out


def _check_expectation(engine: Engine, exp: dict, seen, now: int, known_rules: set) -> list:
    fired, resolved, refused, notes = seen
    problems = []

    def want(cond: bool, text: str) -> None:
        if not cond:
            problems.append(text)

    for key in ("fired", "not_fired", "resolved", "firing", "refused_by"):
        for rid in exp.get(key, []):
            if rid not in known_rules:
                problems.append(f"unknown rule '{rid}' in {key}")
    for rid in exp.get("fired", []):
        want(rid in fired, f"expected {rid} to fire; fired: {sorted(fired) or 'nothing'}")
    for rid in exp.get("not_fired", []):
        want(rid not in fired, f"expected {rid} not to fire, but it fired")
    for rid in exp.get("resolved", []):
        want(rid in resolved, f"expected {rid} to resolve; resolved: {sorted(resolved) or 'nothing'}")
    firing_now = set(engine.rules.firing())
    for rid in exp.get("firing", []):
        want(rid in firing_now, f"expected {rid} to be firing; firing: {sorted(firing_now) or 'nothing'}")
    for rid in exp.get("refused_by", []):
        want(rid in refused, f"expected an intent refused by {rid}; refused by: {sorted(refused) or 'nothing'}")
    if exp.get("state") is not None:
        want(engine.state.mode == exp["state"], f"expected state {exp['state']}, was {engine.state.mode}")
    for name, value in exp.get("metrics", {}).items():
        if name not in engine.metrics.m:
            problems.append(f"unknown metric '{name}'")
            continue
        actual = engine.metrics.m[name]
        want(_same(actual, value), f"expected {name} = {value!r}, was {actual!r}")
    if exp.get("locks") is not None:
        count = len(engine.state.active_locks(now))
        want(count == exp["locks"], f"expected {exp['locks']} lock(s), found {count}")
    if exp.get("size_factor") is not None:
        factor = engine.state.size_factor(now, engine.metrics.group)  # for an order of the symbol in view
        want(_same(factor, exp["size_factor"]), f"expected size factor {exp['size_factor']}, was {factor}")
    for text in exp.get("notified", []):
        want(any(text in n for n in notes), f"expected a notification containing {text!r}; got {notes or 'none'}")
    if exp.get("tier") is not None:
        want(engine.tier == exp["tier"], f"expected tier {exp['tier']}, was {engine.tier}")
    return problems


def run_case(config: CheckedConfig, case: dict) -> list:
    """Run one case; the list of failures (empty when it passes) with expectation indexes."""
    start = _start_ms(case.get("start", "2024-08-08"))
    if case.get("tier", "sniper") not in config.tiers:
        return [(None, f"unknown tier '{case.get('tier')}'")]
    engine = Engine(config, case.get("tier", "sniper"), starting_equity=float(case.get("equity_usd", 1000)),
                    start_ts=start)
    engine.pin(dict(case.get("pin", {})))
    recorder = _Recorder(engine)
    known_rules = {r.id for r in config.rules}
    timeline = []
    for order, pin in enumerate(case.get("pins", [])):
        timeline.append((_ms(pin["at"]), 0, order, "pin", pin["values"]))
    for order, ev in enumerate(case.get("events", [])):
        every = _ms(ev.get("every", "1s"))
        for k in range(ev.get("repeat", 1)):
            timeline.append((_ms(ev["at"]) + k * every, 1, order, "event", ev))
    for order, intent in enumerate(case.get("intents", [])):
        timeline.append((_ms(intent["at"]), 2, order, "intent", intent))
    for order, exp in enumerate(case["expect"]):
        timeline.append((_ms(exp["at"]), 3, order, "expect", exp))
    timeline.sort(key=lambda item: item[:3])
    failures = []
    engine.process(Event("tick", start))
    for at, _, order, what, item in timeline:
        ts = start + at
        if what == "pin":
            engine.pin(item)
            engine.process(Event("tick", ts))
        elif what == "event":
            engine.process(Event(item["kind"], ts, item.get("symbol", ""), _fields(item["kind"], item.get("fields", {}))))
        elif what == "intent":
            engine.process(Event("tick", ts))
            engine.submit_intent(OrderIntent("rule_test", item["symbol"], item["side"], float(item["notional_usd"]),
                                             float(item.get("price", 100)), "manual" if item.get("manual") else "entry",
                                             item["side"] == "buy", manual=bool(item.get("manual"))))
            engine._drain()
        else:
            engine.process(Event("tick", ts))
            for text in _check_expectation(engine, item, recorder.take(), ts, known_rules):
                failures.append((order, f"at {item['at']}: {text}"))
    return failures


def run_file(path: Path, config: CheckedConfig) -> tuple[list, list]:
    """(problems with the file itself, case results)."""
    rel = str(path)
    try:
        data, smap = load_yaml(path.read_text(encoding="utf-8"), rel)
    except YamlError as exc:
        return [Problem(rel, exc.mark.line, exc.mark.col, exc.message)], []
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(rel, 1, 1, f"cannot read file: {exc}")], []
    problems, _ = validate_document("ruletest", data, smap, rel)
    if problems:
        return problems, []
    results = []
    for i, case in enumerate(data["cases"]):
        result = CaseResult(rel, smap.value(("cases", i)).line, case["name"])
        for order, text in run_case(config, case):
            line = smap.value(("cases", i, "expect", order)).line if order is not None else result.line
            result.failures.append(f"{rel}:{line}: {text}")
        results.append(result)
    return [], results
