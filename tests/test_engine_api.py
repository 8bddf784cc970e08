"""The engine's public surface: events go in through `process`, decisions come out to
observers, the trading state changes only through `change_state`, and the exchange is
one Protocol that the paper and live exchanges both implement."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.exchange import Exchange
from genesis.engine.markets import Markets
from genesis.engine.operator import apply_command
from genesis.engine.paper import PaperExchange
from genesis.engine.state import STATE_CHANGES
from genesis.live.exchange import LiveExchange
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
BTC = "BTCUSDT"


def ticker(ts: int, mid: float = 60_000.0) -> Event:
    return Event("book_ticker", ts, BTC, {"bid": mid - 0.01, "bid_qty": 5.0, "ask": mid + 0.01, "ask_qty": 5.0,
                                          "mid": mid, "spread_bps": 0.02 / mid * 1e4})


def observed(engine: Engine) -> list:
    """Every entry the engine tells its observers of, as (ts, kind, rule, symbol, data)."""
    seen: list = []
    engine.observers.append(lambda *entry: seen.append(entry))
    return seen


def buy(notional: float) -> OrderIntent:
    return OrderIntent("test", BTC, "buy", notional, 60_000.0, "entry", True)


def test_an_observer_sees_firings_refusals_orders_notifications_and_state_changes_without_a_journal():
    engine = Engine(check_config(ROOT), "sniper")   # no journal: observers alone see the decisions
    seen = observed(engine)
    engine.process(ticker(T0))
    sent = engine.submit(buy(50.0))
    assert len(sent.sent) == 1 and not sent.refused_by
    [order] = [e for e in seen if e[1] == "order"]
    assert order[3] == BTC and order[4]["client_id"] == sent.sent[0] and order[4]["side"] == "buy"

    engine.process(ticker(T0 + 60_000, 29_000.0))   # the day's loss passes Sniper's $25: locked until midnight
    fired = [e for e in seen if e[1] == "fire" and e[2] == "daily_loss_limit"]
    assert len(fired) == 1 and fired[0][0] == T0 + 60_000
    [lock] = [e for e in seen if e[1] == "state" and e[4].get("change") == "lock"]
    assert (lock[2], lock[4]["by"], lock[4]["lock"]["reason"]) == ("daily_loss_limit", "daily_loss_limit",
                                                                  "daily loss limit")
    notes = [e for e in seen if e[1] == "action" and e[4]["action"] == "notify" and e[2] == "daily_loss_limit"]
    assert len(notes) == 1 and "Trading resumes at 00:00 UTC" in notes[0][4]["text"]

    refused = engine.submit(OrderIntent("test", "ETHUSDT", "buy", 20.0, 3_000.0, "entry", True))
    assert refused.refused_by and not refused.sent   # Sniper holds one position at most, and is locked
    [refusal] = [e for e in seen if e[1] == "refused"]
    assert (refusal[2], refusal[3], refusal[4]["refused"]) == (refused.refused_by, "ETHUSDT", refused.reason)

    engine.process(Event("position_mismatch", T0 + 61_000, BTC, {"diff_usd": 5.0}))   # a rule halts
    [mode] = [e for e in seen if e[1] == "state" and "mode" in e[4]]
    assert (mode[4]["mode"], mode[4]["from"], mode[4]["by"]) == ("HALTED", "ACTIVE", "position_mismatch")
    [hold] = [e for e in seen if e[1] == "state" and e[4].get("change") == "hold"]
    assert (hold[2], hold[4]["hold"]) == ("position_mismatch", "halt")


def test_the_override_changes_the_state_through_the_one_door_and_says_so():
    """An accepted override lifts holds and locks as journaled `state` transitions by
    'override', and the lifted lock ends like an expired one (lock_released runs)."""
    config = check_config(ROOT)
    engine = Engine(config, "sniper")
    engine.process(ticker(T0))
    engine.change_state("hold", "position_mismatch", rule="position_mismatch", kind="halt")
    engine.change_state("lock", "daily_loss_limit", rule="daily_loss_limit", symbol="", until=T0 + 3_600_000,
                        reason="daily loss limit")
    seen = observed(engine)
    phrase = config.files.settings.data["safety"]["override_phrase"]
    assert apply_command(engine, "override", {"phrase": phrase})[0] == "applied"
    changes = [(e[2], e[4].get("change"), e[4].get("mode"), e[4]["by"]) for e in seen if e[1] == "state"]
    assert changes == [("position_mismatch", "release", None, "override"),
                       ("daily_loss_limit", "lock_released", None, "override"), ("", None, "ACTIVE", "override")]
    assert [e[4]["rule"] for e in seen if e[1] == "lock_released"] == ["daily_loss_limit"]
    assert engine.stats.by_kind["lock_released"] == 1
    assert engine.state.mode == "ACTIVE" and engine.state.locks == []


def test_a_change_that_changes_nothing_is_not_journaled_and_an_unknown_change_is_refused():
    engine = Engine(check_config(ROOT), "sniper")
    engine.process(ticker(T0))
    seen = observed(engine)
    assert len(engine.change_state("hold", "r", rule="r", kind="halt")) == 1
    assert engine.change_state("hold", "r", rule="r", kind="reduce_only") == []   # a halt is not weakened
    assert engine.change_state("release", "r", rule="other") == []
    assert len([e for e in seen if e[1] == "state"]) == 2        # the hold and the mode it moved
    try:
        engine.change_state("escalation", "r", rule="r")
    except ValueError as exc:
        assert "unknown trading-state change 'escalation'" in str(exc)
    else:
        raise AssertionError("an unknown change was accepted")


def test_an_event_at_the_current_time_is_stamped_now_and_not_counted_as_an_input():
    engine = Engine(check_config(ROOT), "sniper")
    engine.process(ticker(T0 + 5_000))
    seen = observed(engine)
    engine.process(Event("config_edit", 0, "", {"risk": True, "_files": ["tiers/sniper.yaml"]}), at_now=True)
    assert engine.stats.events == 1 and engine.stats.by_kind["config_edit"] == 1
    assert engine.now == T0 + 5_000 and engine.metrics.m["risk_edits_session"] == 1   # the rules saw it
    engine.process(Event("operator_connect", T0 + 6_000))      # an input: counted, moves time on
    assert engine.stats.events == 2 and engine.now == T0 + 6_000
    assert all(e[0] >= T0 + 5_000 for e in seen)


def _signature(cls, name: str) -> list:
    return [(p.name, p.default) for p in inspect.signature(getattr(cls, name)).parameters.values()]


def test_the_paper_and_live_exchanges_implement_the_exchange_protocol_and_the_engine_takes_one():
    markets = Markets.load()
    paper, live = PaperExchange(markets, {"USDT": 1000.0}), LiveExchange(markets, prefix="Gtest-")
    methods = [n for n, v in vars(Exchange).items() if callable(v) and not n.startswith("_")]
    assert set(methods) == {"on_market", "book", "best", "submit", "cancel", "cancel_all", "amend"}
    for exchange in (paper, live):
        assert isinstance(exchange, Exchange)
        for name in methods:
            assert _signature(type(exchange), name) == _signature(Exchange, name), (type(exchange).__name__, name)
    engine = Engine(check_config(ROOT), "sniper", markets=markets, exchange=live)
    assert engine.exchange is live and live.lazy_depth is True   # nothing in the shipped rules reads depth
    engine.process(ticker(T0))
    assert engine.submit(buy(50.0)).sent == ["g1"] and "g1" in live.open_orders   # queued for the live session


# ------------------------------------------------------------------ the surface stays public

SOURCES = [p for d in ("genesis", "tests", "bench") for p in sorted((ROOT / d).rglob("*.py"))]
ENGINE_FILE = ROOT / "genesis" / "engine" / "engine.py"
STATE_FILE = ROOT / "genesis" / "engine" / "state.py"
STATE_PARTS = ("holds", "locks", "sizes", "symbol_sizes", "requirements")


def _names_engine(node: ast.AST) -> bool:
    """The expression is an engine: `engine`, `eng`, `x.engine`, `self.engine`."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name in ("engine", "eng") or name.endswith("_engine") and name != "_engine"


def _is_state(node: ast.AST) -> bool:
    """The expression is a trading state: `x.state`."""
    return isinstance(node, ast.Attribute) and node.attr == "state"


def test_no_module_outside_the_engine_uses_its_private_members_or_its_event_queue():
    found = []
    for path in SOURCES:
        if path == ENGINE_FILE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and _names_engine(node.value) and \
                    (node.attr.startswith("_") and not node.attr.startswith("__") or node.attr == "pending"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "exchange"
                                                    and _names_engine(t.value) for t in node.targets):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: engine.exchange replaced")
    assert found == []


def test_the_trading_state_changes_only_through_engine_change_state():
    """No code calls a TradingState method that changes the state, or writes its holds,
    locks, size slots or requirements, except `Engine.change_state` (by name)."""
    found = []
    for path in SOURCES:
        if path == STATE_FILE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in STATE_CHANGES and _is_state(node.func.value):
                found.append(f"{where}: state.{node.func.attr}()")
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else \
                [node.target] if isinstance(node, ast.AugAssign) else []
            for target in targets:
                part = target.value if isinstance(target, ast.Subscript) else target
                if isinstance(part, ast.Attribute) and part.attr in STATE_PARTS and _is_state(part.value):
                    found.append(f"{where}: state.{part.attr} written")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("clear", "pop", "append", "update", "setdefault", "remove") and \
                    isinstance(node.func.value, ast.Attribute) and node.func.value.attr in STATE_PARTS and \
                    _is_state(node.func.value.value):
                found.append(f"{where}: state.{node.func.value.attr}.{node.func.attr}()")
    assert found == []
