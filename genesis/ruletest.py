"""`genesis test`: rule unit tests written in YAML, run through the real engine.

Like `promtool test rules`: each case gives a starting state, events, order intents and
operator commands over time, and expectations at given times — which rules fired or
resolved, what refused an order and what was sent, the trading state, metric values,
locks and pending requirements, size factor, notifications, tier. A failure names the
file and line of the expectation (or command), what was expected and what happened.

The runner watches the engine through its public observer hook (every journal entry,
journal or not) and drives it through `process`, `submit`, `pin`/`unpin` and the
operator commands exactly as `genesis run` applies them.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from genesis import vocabulary as voc
from genesis.config.checks import CheckedConfig
from genesis.config.problems import Problem
from genesis.config.schemas import schema_for, validate_document
from genesis.config.snapshot import snapshot
from genesis.config.yamlsrc import YamlError, load_yaml
from genesis.durations import format_duration, parse_duration
from genesis.engine import operator
from genesis.engine.engine import Engine
from genesis.engine.events import MS_PER_DAY, Event
from genesis.engine.runner import Session, _after_event, operate
from genesis.engine.state import next_utc_midnight
from genesis.strategies import OrderIntent

_FIELD_DEFAULTS = {voc.NUMBER: 0.0, voc.BOOL: False, voc.TEXT: ""}
TYPED_COMMANDS = ("order", "cancel", "amend", "override", "journal", "life", "set")
REFUSERS = ("trading_state", "execution", "lock")   # refused_by names besides rule ids


def _default(*path: str):
    """A default of the rule-test schema (defaults live only there)."""
    node = schema_for("ruletest")
    for key in path:
        node = node[key]
    return node["default"]


def _case_default(key: str):
    return _default("properties", "cases", "items", "properties", key)


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
    fields = {name: _FIELD_DEFAULTS[t] for name, (t, _) in voc.EVENTS.get(kind, ("", {}))[1].items()}
    fields.update(given)
    return fields


def _same(actual, expected, abs_tol: float = 1e-6) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) if isinstance(actual, (bool, int, float)) else False
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=abs_tol)
    return actual == expected


def _words(n: int) -> str:
    return " ".join(["word"] * n)


@dataclass
class _Seen:
    """What the engine did between two expectations, from its journal entries."""

    fired: set = field(default_factory=set)
    resolved: set = field(default_factory=set)
    refused: list = field(default_factory=list)   # (names it answers to, text)
    intents: list = field(default_factory=list)   # intent records that passed to execution
    orders: list = field(default_factory=list)    # order entries (+ symbol)
    notes: list = field(default_factory=list)     # notification texts


class _Observer:
    """Collects the engine's journal entries (fired, refused, sent, notified)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.seen = _Seen()
        engine.observers.append(self.on_entry)

    def on_entry(self, ts: int, kind: str, rule: str, symbol: str, data: dict | None) -> None:
        """One journal entry."""
        data = data or {}
        seen = self.seen
        if kind in ("fire", "resolve"):   # a rule id matches any symbol; rule@SYMBOL one symbol
            names = seen.fired if kind == "fire" else seen.resolved
            names.add(rule)
            if symbol:
                names.add(f"{rule}@{symbol}")
        elif kind == "refused":
            seen.refused.append((self._refusers(ts, rule, symbol, str(data.get("refused", ""))),
                                 f"{data.get('side', '')} {symbol} by {rule}: {data.get('refused', '')}"))
        elif kind == "intent":
            seen.intents.append(dict(data, symbol=symbol))
        elif kind == "order":
            seen.orders.append(dict(data, symbol=symbol))
        elif kind == "action" and data.get("action") == "notify":
            seen.notes.append(str(data.get("text", "")))

    def _refusers(self, ts: int, rule: str, symbol: str, reason: str) -> set:
        names = {rule}
        if rule == "trading_state" and reason.startswith("locked"):
            names.add("lock")   # the state admits by the first lock that covers the symbol
            lock = next((lk for lk in self.engine.state.active_locks(ts) if lk.symbol in ("", symbol)), None)
            if lock is not None:
                names.add(f"lock:{lock.rule}")
        return names

    def take(self) -> _Seen:
        """What happened since the last call."""
        seen, self.seen = self.seen, _Seen()
        return seen


# ---------------------------------------------------------------------- expectations
def _describe_lock(lock, start: int) -> str:
    where = f" on {lock.symbol}" if lock.symbol else ""
    midnight = " (00:00 UTC)" if lock.until % MS_PER_DAY == 0 else ""
    words = f", waits for a journal entry of {lock.needs_journal_words} words" if lock.needs_journal_words else ""
    return f"{lock.rule}{where} until {format_duration(lock.until - start)}{midnight}, reason {lock.reason!r}{words}"


def _lock_matches(lock, spec: dict, start: int, now: int) -> bool:
    if "rule" in spec and lock.rule != spec["rule"]:
        return False
    if "symbol" in spec and lock.symbol != spec["symbol"]:
        return False
    if "reason" in spec and spec["reason"] not in lock.reason:
        return False
    if "journal_words" in spec and lock.needs_journal_words != spec["journal_words"]:
        return False
    if "until" in spec:
        until = next_utc_midnight(now) if spec["until"] == "utc_midnight" else start + _ms(spec["until"])
        if lock.until != until:
            return False
    return True


def _check_locks(engine: Engine, want, start: int, now: int) -> list:
    locks = engine.state.active_locks(now)
    shown = "; ".join(_describe_lock(lk, start) for lk in locks) or "none"
    if isinstance(want, int):
        return [] if len(locks) == want else [f"expected {want} lock(s), was {len(locks)}: {shown}"]
    problems, left = [], list(locks)
    for spec in want:
        match = next((lk for lk in left if _lock_matches(lk, spec, start, now)), None)
        if match is None:
            problems.append(f"expected a lock {_spec(spec)}, was: {shown}")
        else:
            left.remove(match)
    if not problems and left:
        problems.append(f"expected {len(want)} lock(s), was {len(locks)}: {shown}")
    return problems


def _spec(spec: dict) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in spec.items()) + "}"


def _check_requirements(engine: Engine, want: list) -> list:
    pending = [dict(arg, rule=rid) for rid, arg in engine.state.snapshot()["requirements"].items()]
    shown = "; ".join(_spec(r) for r in pending) or "none"
    problems, left = [], list(pending)
    for spec in want:
        match = next((r for r in left if all(r.get(k) == v for k, v in spec.items())), None)
        if match is None:
            problems.append(f"expected a pending requirement {_spec(spec)}, was: {shown}")
        else:
            left.remove(match)
    if not problems and left:
        problems.append(f"expected {len(want)} pending requirement(s), was {len(pending)}: {shown}")
    return problems


def _order_value(order: dict) -> float:
    return order["qty"] * (order.get("limit_price") or order["decision_price"])


def _check_sent(want: dict, seen: _Seen) -> list:
    orders, intents, problems = seen.orders, seen.intents, []
    shown = ", ".join(f"{o['client_id']} {o['side']} {o['symbol']} ${_order_value(o):,.2f} {o['type']}"
                      for o in orders) or "nothing"
    if "orders" in want and len(orders) != want["orders"]:
        problems.append(f"expected {want['orders']} order(s) sent, was {len(orders)}: {shown}")
    for key in ("side", "symbol", "type"):
        if key in want and (not orders or any(o[key] != want[key] for o in orders)):
            problems.append(f"expected every order sent to have {key} {want[key]}, was: {shown}")
    if "notional_usd" in want:
        total = sum(_order_value(o) for o in orders)
        if not _same(total, want["notional_usd"], abs_tol=0.005):
            problems.append(f"expected orders worth ${want['notional_usd']:,.2f} sent, was ${total:,.2f}: {shown}")
    decided = ", ".join(f"{i['side']} {i['symbol']} ${i['notional_final']:,.2f} by {i['algo']} in {i['slices']} "
                        "slice(s)" for i in intents) or "no order decided"
    for key, name in (("algo", "algo"), ("slices", "slices")):
        if key in want and (not intents or any(i[name] != want[key] for i in intents)):
            problems.append(f"expected every order decided to have {key} {want[key]}, was: {decided}")
    return problems


def _known_refusers(known_rules: set) -> set:
    return known_rules | set(REFUSERS) | {f"lock:{rid}" for rid in known_rules}


def _check_expectation(engine: Engine, exp: dict, seen: _Seen, now: int, start: int, known_rules: set) -> list:
    problems = []

    def want(cond: bool, text: str) -> None:
        if not cond:
            problems.append(text)

    for key in ("fired", "not_fired", "resolved", "firing"):
        for rid in exp.get(key, []):
            if rid.split("@", 1)[0] not in known_rules:
                problems.append(f"unknown rule '{rid}' in {key}")
    for name in exp.get("refused_by", []):
        if name not in _known_refusers(known_rules):
            problems.append(f"unknown rule '{name}' in refused_by (a rule id, {', '.join(REFUSERS)} or lock:<rule>)")
    fired = seen.fired
    for rid in exp.get("fired", []):
        want(rid in fired, f"expected {rid} to fire; fired: {sorted(fired) or 'nothing'}")
    for rid in exp.get("not_fired", []):
        want(rid not in fired, f"expected {rid} not to fire, but it fired")
    for rid in exp.get("resolved", []):
        want(rid in seen.resolved, f"expected {rid} to resolve; resolved: {sorted(seen.resolved) or 'nothing'}")
    firing_now = set(engine.rules.firing())
    firing_now |= {rid.split("@", 1)[0] for rid in firing_now}
    for rid in exp.get("firing", []):
        want(rid in firing_now, f"expected {rid} to be firing; firing: {sorted(firing_now) or 'nothing'}")
    refusals = "; ".join(text for _, text in seen.refused) or "nothing"
    for name in exp.get("refused_by", []):
        want(any(name in names for names, _ in seen.refused),
             f"expected an order refused by {name}, was: {refusals}")
    if exp.get("state") is not None:
        want(engine.state.mode == exp["state"], f"expected state {exp['state']}, was {engine.state.mode}")
    for name, value in exp.get("metrics", {}).items():
        if name not in engine.metrics.m:
            problems.append(f"unknown metric '{name}'")
            continue
        actual = engine.metrics.m[name]
        want(_same(actual, value), f"expected {name} = {value!r}, was {actual!r}")
    if exp.get("locks") is not None:
        problems += _check_locks(engine, exp["locks"], start, now)
    if exp.get("requirements") is not None:
        problems += _check_requirements(engine, exp["requirements"])
    if exp.get("sent") is not None:
        problems += _check_sent(exp["sent"], seen)
    if exp.get("size_factor") is not None:
        wanted = exp["size_factor"]
        per_symbol = wanted if isinstance(wanted, dict) else {engine.metrics.group: wanted}  # the symbol in view
        for symbol, value in per_symbol.items():
            factor = engine.state.size_factor(now, symbol)
            where = f" for {symbol}" if isinstance(wanted, dict) else ""
            want(_same(factor, value), f"expected size factor {value}{where}, was {factor}")
    for text in exp.get("notified", []):
        want(any(text in n for n in seen.notes),
             f"expected a notification containing {text!r}, was: {seen.notes or 'none'}")
    if exp.get("tier") is not None:
        want(engine.tier == exp["tier"], f"expected tier {exp['tier']}, was {engine.tier}")
    return problems


# ---------------------------------------------------------------------- commands
def _command(item: dict) -> tuple[str, dict]:
    """(kind, payload) of a command item, as `genesis <kind>` would send it."""
    if "command" in item:
        payload = dict(item["command"])
        kind = payload.pop("kind")
    else:
        kind = next(k for k in TYPED_COMMANDS if k in item)
        payload = dict(item[kind])
    if "words" in payload and "text" not in payload:
        payload["text"] = _words(int(payload.pop("words")))
    if kind == "order":
        payload.setdefault("price", _default("$defs", "command", "properties", "order", "properties", "price"))
    return kind, payload


def _known_commands() -> tuple:
    return (*operator.KINDS, "set")


def _check_answer(item: dict, status: str, message: str) -> list:
    problems = []
    if item.get("expect_answer") is not None and status != item["expect_answer"]:
        problems.append(f"expected answer {item['expect_answer']}, was {status}: {message}")
    if item.get("answer_contains") is not None and item["answer_contains"] not in message:
        problems.append(f"expected an answer containing {item['answer_contains']!r}, was {status}: {message}")
    return problems


def _config_copy(config: CheckedConfig, folder: Path) -> Path:
    """A scratch copy of the configuration for cases whose commands edit files (`set`)."""
    for rel, text in snapshot(config.files.root).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


# ---------------------------------------------------------------------- a case
def _timeline(case: dict) -> list:
    """(at ms, priority, index, what, item, path) in the order they happen."""
    timeline = []
    for i, pin in enumerate(case.get("pins", [])):
        timeline.append((_ms(pin["at"]), 0, i, "pin", pin, ("pins", i)))
        if "until" in pin:
            timeline.append((_ms(pin["until"]), 0, i, "unpin", pin, ("pins", i)))
    for i, ev in enumerate(case.get("events", [])):
        every = _ms(ev.get("every", _default("$defs", "event", "properties", "every")))
        for k in range(ev.get("repeat", _default("$defs", "event", "properties", "repeat"))):
            timeline.append((_ms(ev["at"]) + k * every, 1, i, "event", ev, ("events", i)))
    for i, intent in enumerate(case.get("intents", [])):
        timeline.append((_ms(intent["at"]), 2, i, "intent", intent, ("intents", i)))
    for i, command in enumerate(case.get("commands", [])):
        timeline.append((_ms(command["at"]), 3, i, "command", command, ("commands", i)))
    for i, exp in enumerate(case["expect"]):
        timeline.append((_ms(exp["at"]), 4, i, "expect", exp, ("expect", i)))
    timeline.sort(key=lambda item: item[:3])
    return timeline


def _case_problems(case: dict) -> tuple[list, str]:
    """What is wrong with a case before it runs ([(path, text)]), and its tier."""
    problems = []
    tier = case.get("tier", _case_default("tier"))
    for i, pin in enumerate(case.get("pins", [])):
        if "until" in pin:
            if _ms(pin["until"]) <= _ms(pin["at"]):
                problems.append((("pins", i), f"a pin's until ({pin['until']}) must come after its at ({pin['at']})"))
            others = sorted(set(pin["values"]) - set(voc.ACCOUNT_METRICS))
            if others:
                problems.append((("pins", i), f"only account figures can be released with until (the engine "
                                              f"computes them again); not {', '.join(others)}"))
    for i, item in enumerate(case.get("commands", [])):
        kind, _ = _command(item)
        if kind not in _known_commands():
            problems.append((("commands", i), f"unknown command '{kind}' (known: {', '.join(_known_commands())})"))
        elif "command" in item and kind in TYPED_COMMANDS:   # its own key has a checked payload
            problems.append((("commands", i), f"the {kind} command has its own key: write it as `{kind}: {{...}}`"))
    return problems, tier


def run_case(config: CheckedConfig, case: dict) -> list:
    """Run one case; the list of failures (empty when it passes) as (path in the case, text)."""
    problems, tier = _case_problems(case)
    if tier not in config.tiers:
        problems.append(((), f"unknown tier '{tier}'"))
    if problems:
        return problems
    if not any("set" in item for item in case.get("commands", [])):
        return _run(config, case, tier, None)
    with tempfile.TemporaryDirectory(prefix="genesis-ruletest-") as scratch:
        return _run(config, case, tier, _config_copy(config, Path(scratch)))


def _run(config: CheckedConfig, case: dict, tier: str, root: Path | None) -> list:
    start = _start_ms(case.get("start", _case_default("start")))
    engine = Engine(config, tier, starting_equity=float(case.get("equity_usd", _case_default("equity_usd"))),
                    start_ts=start)
    session = Session(engine, journal=None, feed=None, resumed=False, starting_equity=engine.account.equity(),
                      config_files=snapshot(root) if root else {}, config_root=root)
    engine.pin(dict(case.get("pin", {})))
    observer = _Observer(engine)
    known_rules = {r.id for r in config.rules}
    failures = []

    def advance(event: Event) -> None:
        engine.process(event)
        _after_event(session, lambda _text: None)   # accepted `set` edits whose delay has passed

    advance(Event("tick", start))
    for at, _, _, what, item, path in _timeline(case):
        ts = start + at
        if what == "pin":
            engine.pin(item["values"])
            advance(Event("tick", ts))
        elif what == "unpin":
            engine.unpin(item["values"])
            advance(Event("tick", ts))
        elif what == "event":
            advance(Event(item["kind"], ts, item.get("symbol", ""), _fields(item["kind"], item.get("fields", {}))))
        elif what == "intent":
            advance(Event("tick", ts))
            manual = bool(item.get("manual"))
            price = float(item.get("price", _default("$defs", "intent", "properties", "price")))
            engine.submit(OrderIntent("rule_test", item["symbol"], item["side"], float(item["notional_usd"]), price,
                                      "manual" if manual else "entry", item["side"] == "buy", manual=manual))
        elif what == "command":
            advance(Event("tick", ts))
            kind, payload = _command(item)
            status, message = operate(session, kind, payload)
            failures += [(path, f"at {item['at']}: {text}") for text in _check_answer(item, status, message)]
        else:
            advance(Event("tick", ts))
            for text in _check_expectation(engine, item, observer.take(), ts, start, known_rules):
                failures.append((path, f"at {item['at']}: {text}"))
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
        for where, text in run_case(config, case):
            line = smap.value(("cases", i, *where)).line
            result.failures.append(f"{rel}:{line}: {text}")
        results.append(result)
    return [], results
