"""Every action of the closed vocabulary, rule timing (`for`, cooldown, resolve, event
rules) and the shipped risk and alert rules, through the real Engine.

Each test builds a configuration folder in tmp_path: the shipped files plus a small
rule book of its own (rules/test_actions.yaml) whose rules fire on crafted events.
Most test rules read `dial`, the word count of the latest journal_entry event (an
event kind no shipped rule reads), so a test turns a condition on and off by feeding
Event('journal_entry', ts, '', {'words': n}).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.journal import Journal
from genesis.engine.operator import apply_command
from genesis.engine.paper import OrderRequest
from genesis.engine.state import ACTIVE, HALTED, REDUCING
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
MIDNIGHT = 1_723_161_600_000    # 2024-08-09 00:00:00 UTC
S, M, H = 1000, 60_000, 3_600_000
BTC, ETH = "BTCUSDT", "ETHUSDT"

DIALS = """\
flags:
  t_flag: {default: 0}
  t_regime: {default: calm, values: [calm, storm]}
metrics:
  dial: {last: journal_entry, field: words, default: 0}
  dial2: {last: life_event, field: days, default: 0}
  dial_count: {count: journal_entry}
"""


def config_dir(tmp_path: Path, rules: str, header: str = DIALS) -> Path:
    """The shipped configuration copied into tmp_path, plus rules/test_actions.yaml."""
    root = tmp_path / "config"
    root.mkdir()
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "rules", root / "rules")
    shutil.copytree(ROOT / "tiers", root / "tiers")
    (root / "rules" / "test_actions.yaml").write_text(header + rules, encoding="utf-8")
    return root


def make_engine(tmp_path: Path, rules: str = "rules: []\n", tier: str = "sniper", header: str = DIALS) -> Engine:
    result = check_config(config_dir(tmp_path, rules, header))
    assert result.ok, "\n".join(f"{p.file}:{p.line}:{p.col}: {p.message}" for p in result.problems)
    journal = Journal("sqlite://")
    journal.open_run(tier, "test", "test", [], "test")
    return Engine(result, tier, journal=journal)


def ticker(ts: int, symbol: str = BTC, mid: float = 60_000.0) -> Event:
    return Event("book_ticker", ts, symbol, {"bid": mid - 0.01, "bid_qty": 5.0, "ask": mid + 0.01, "ask_qty": 5.0,
                                             "mid": mid, "spread_bps": 0.02 / mid * 1e4})


def dial(ts: int, n: float, symbol: str = "") -> Event:
    return Event("journal_entry", ts, symbol, {"words": n})


def dial2(ts: int, n: float) -> Event:
    return Event("life_event", ts, "", {"days": n})


def buy(notional: float = 40.0, symbol: str = BTC, price: float = 60_000.0, manual: bool = False) -> OrderIntent:
    return OrderIntent("" if manual else "test", symbol, "buy", notional, price, "manual" if manual else "entry",
                       True, manual)


def sell(engine: Engine, symbol: str = BTC) -> OrderIntent:
    pos = engine.account.positions[symbol]
    mid = engine.account.mids[symbol]
    return OrderIntent("test", symbol, "sell", pos.qty * mid, mid, "signal", False)


def submit(engine: Engine, intent: OrderIntent) -> None:
    """Submit an intent and run what it caused (fills, rejections) through the pipeline."""
    engine.submit(intent)


def entries(engine: Engine, kind: str | None = None) -> list:
    """Journal entries as (kind, rule, symbol, data) after a flush."""
    engine.journal.flush()
    out = [(r.kind, r.rule, r.symbol, json.loads(r.data)) for r in engine.journal.entries()]
    return [e for e in out if kind is None or e[0] == kind]


def last(engine: Engine, kind: str) -> tuple:
    found = entries(engine, kind)
    assert found, f"no {kind!r} entry in the journal"
    return found[-1]


def started(engine: Engine, ts: int = T0) -> Engine:
    engine.process(ticker(ts))
    assert engine.state.mode == ACTIVE
    return engine


def open_position(engine: Engine, notional: float = 40.0, symbol: str = BTC) -> None:
    submit(engine, buy(notional, symbol))
    assert engine.account.positions.get(symbol) and engine.account.positions[symbol].qty > 0


# ============================================================================ halt, reduce_only, resume
HALT_RULE = """\
rules:
  - id: t_halt
    stage: risk
    when: "dial >= 1"
    then: [halt]
"""


def test_halt_refuses_an_opening_intent(tmp_path):
    engine = started(make_engine(tmp_path, HALT_RULE))
    engine.process(dial(T0 + S, 1))
    assert engine.state.mode == HALTED
    assert engine.state.holds == {"t_halt": "halt"}
    assert engine.stats.firings["t_halt"] == 1
    submit(engine, buy())
    kind, rule, symbol, data = last(engine, "refused")
    assert (rule, symbol, data["refused"]) == ("trading_state", BTC, "trading is halted")
    assert not entries(engine, "order")
    assert engine.stats.by_kind["order_rejected"] == 1
    state = [d for k, _, _, d in entries(engine, "state") if "mode" in d]
    assert state[-1]["mode"] == HALTED and state[-1]["from"] == ACTIVE


def test_halt_also_refuses_a_closing_order(tmp_path):
    engine = started(make_engine(tmp_path, HALT_RULE))
    open_position(engine)
    engine.process(dial(T0 + S, 1))
    submit(engine, sell(engine))
    assert last(engine, "refused")[3]["refused"] == "trading is halted"
    assert BTC in engine.account.positions


REDUCE_RULE = """\
rules:
  - id: t_reduce
    stage: risk
    when: "dial >= 1"
    then: [reduce_only]
"""


def test_reduce_only_lets_a_closing_sell_out_and_refuses_an_opening_buy(tmp_path):
    engine = started(make_engine(tmp_path, REDUCE_RULE))
    open_position(engine)
    engine.process(dial(T0 + S, 1))
    assert engine.state.mode == REDUCING
    assert engine.state.holds == {"t_reduce": "reduce_only"}
    submit(engine, sell(engine))
    assert BTC not in engine.account.positions
    kind, rule, symbol, data = last(engine, "intent")
    assert (data["side"], data["opens_position"]) == ("sell", False)
    assert last(engine, "order")[3]["side"] == "sell"
    assert engine.stats.by_kind["position_closed"] == 1
    submit(engine, buy())
    kind, rule, symbol, data = last(engine, "refused")
    assert rule == "trading_state"
    assert data["refused"] == "only exposure-reducing orders pass (reduce-only)"


TWO_HALTS = """\
rules:
  - id: t_halt_a
    stage: risk
    when: "dial >= 1"
    then: [halt]
    resolve: [resume]
  - id: t_halt_b
    stage: alerts
    when: "dial2 >= 1"
    then: [halt]
    resolve: [resume]
  - id: t_resume_other
    stage: alerts
    on: operator_connect
    then: [resume]
"""


def test_resume_releases_only_the_rules_own_hold(tmp_path):
    engine = started(make_engine(tmp_path, TWO_HALTS))
    engine.process(dial(T0 + S, 1))
    engine.process(dial2(T0 + 2 * S, 1))
    assert engine.state.holds == {"t_halt_a": "halt", "t_halt_b": "halt"}
    engine.process(dial(T0 + 3 * S, 0))            # t_halt_a resolves and resumes
    assert engine.stats.firings["t_halt_a"] == 1
    assert ("resolve", "t_halt_a") in [(k, r) for k, r, _, _ in entries(engine)]
    assert engine.state.holds == {"t_halt_b": "halt"}
    assert engine.state.mode == HALTED
    engine.process(Event("operator_connect", T0 + 4 * S))  # another rule's `resume` lifts nothing it did not hold
    assert engine.stats.firings["t_resume_other"] == 1
    assert engine.state.mode == HALTED
    engine.process(dial2(T0 + 5 * S, 0))
    assert engine.state.holds == {} and engine.state.mode == ACTIVE
    modes = [d["mode"] for k, _, _, d in entries(engine, "state") if "mode" in d]
    assert modes == [HALTED, ACTIVE]


def test_halt_is_not_weakened_by_a_later_reduce_only_of_the_same_rule(tmp_path):
    rules = """\
rules:
  - id: t_both
    stage: risk
    when: "dial >= 1"
    then: [halt, reduce_only]
"""
    engine = started(make_engine(tmp_path, rules))
    engine.process(dial(T0 + S, 1))
    assert engine.state.mode == HALTED


# ============================================================================ cancel_all, close_positions
def test_cancel_all_cancels_a_resting_order(tmp_path):
    rules = """\
rules:
  - id: t_cancel
    stage: risk
    on: journal_entry
    then: [cancel_all]
"""
    engine = started(make_engine(tmp_path, rules))
    free_before = engine.exchange.balances["USDT"]
    produced = engine.exchange.submit(OrderRequest("rest1", BTC, "buy", "limit", 0.001, price=30_000.0), T0 + S)
    assert produced == []
    assert "rest1" in engine.exchange.open_orders
    assert engine.exchange.balances["USDT"] < free_before      # the resting order locks quote
    engine.process(dial(T0 + 2 * S, 1))
    assert engine.exchange.open_orders == {}
    assert engine.exchange.balances["USDT"] == pytest.approx(free_before)
    kind, rule, symbol, data = last(engine, "order_canceled")
    assert (symbol, data["reason"], data["manual"]) == (BTC, "canceled", False)
    assert engine.stats.by_kind["order_canceled"] == 1
    assert last(engine, "action")[3] == {"action": "cancel_all"}


def test_cancel_all_by_a_rule_is_not_a_cancel_by_the_exchange(tmp_path):
    rules = """\
rules:
  - id: t_cancel
    stage: risk
    on: journal_entry
    then: [cancel_all]
"""
    engine = started(make_engine(tmp_path, rules))
    engine.exchange.submit(OrderRequest("rest1", BTC, "buy", "limit", 0.001, price=30_000.0), T0 + S)
    engine.process(dial(T0 + 2 * S, 1))
    assert last(engine, "order_canceled")[3]["by_exchange"] is False


def test_close_positions_sells_what_is_held(tmp_path):
    rules = """\
rules:
  - id: t_close
    stage: risk
    when: "dial >= 1"
    then: [halt, close_positions]
"""
    engine = started(make_engine(tmp_path, rules))
    open_position(engine)
    qty = engine.account.positions[BTC].qty
    engine.process(dial(T0 + S, 1))
    assert engine.state.mode == HALTED                     # the risk exit goes out even while halted
    assert BTC not in engine.account.positions
    kind, rule, symbol, data = last(engine, "intent")
    assert (rule, symbol, data["side"], data["reason"]) == ("t_close", BTC, "sell", "risk")
    fills = entries(engine, "fill")
    assert [f[3]["side"] for f in fills] == ["buy", "sell"]
    assert fills[-1][3]["qty"] == pytest.approx(qty)
    closed = entries(engine, "position_closed")
    assert closed and closed[-1][3]["exit_reason"] == "risk"
    assert engine.metrics.m["open_positions"] == 0


def test_close_positions_with_nothing_held_sends_nothing(tmp_path):
    rules = """\
rules:
  - id: t_close
    stage: risk
    on: journal_entry
    then: [close_positions]
"""
    engine = started(make_engine(tmp_path, rules))
    engine.process(dial(T0 + S, 1))
    assert engine.stats.firings["t_close"] == 1
    assert not entries(engine, "intent") and not entries(engine, "order")


# ============================================================================ lock
LOCKS = """\
rules:
  - id: t_lock_all
    stage: risk
    on: journal_entry
    when: "event.words == 1"
    then: [{lock: {scope: all, duration: 10m, reason: "test all"}}]
  - id: t_lock_sym
    stage: risk
    on: journal_entry
    when: "event.words == 2"
    then: [{lock: {scope: symbol, duration: 10m, reason: "test symbol"}}]
  - id: t_lock_esc
    stage: tilt
    on: journal_entry
    when: "event.words == 3"
    then: [{lock: {scope: all, duration: [5m, 30m, 24h], repeat_window: 24h, reason: "escalating"}}]
  - id: t_lock_midnight
    stage: risk
    on: journal_entry
    when: "event.words == 4"
    then: [{lock: {scope: all, until: utc_midnight, reason: "until midnight"}}]
  - id: t_lock_journal
    stage: tilt
    on: journal_entry
    when: "event.words == 5"
    then:
      - lock: {scope: all, duration: 5m, reason: "write first"}
      - require: {kind: journal_entry, min_words: 100}
  - id: t_lock_journal_first
    stage: tilt
    on: operator_disconnect
    then:
      - require: {kind: journal_entry, min_words: 100}
      - lock: {scope: all, duration: 5m, reason: "write first"}
  - id: t_on_release
    stage: alerts
    on: lock_released
    when: "event.rule == 't_lock_all'"
    then: [{notify: "the lock ended"}]
"""


def lock_events(engine: Engine) -> list:
    return [d["lock"] for k, _, _, d in entries(engine, "action") if "lock" in d]


def test_lock_all_blocks_every_symbol_for_its_duration_then_is_released(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    engine.process(ticker(T0, ETH, 3_000.0))
    engine.process(dial(T0 + S, 1))
    assert [(lk.rule, lk.symbol, lk.until, lk.reason) for lk in engine.state.locks] == \
        [("t_lock_all", "", T0 + S + 10 * M, "test all")]
    for symbol, price in ((BTC, 60_000.0), (ETH, 3_000.0)):
        submit(engine, buy(20.0, symbol, price))
        assert last(engine, "refused")[3]["refused"] == "locked: test all"
    engine.process(ticker(T0 + S + 10 * M - 1))
    assert len(engine.state.locks) == 1
    engine.process(ticker(T0 + S + 10 * M))
    assert engine.state.locks == []
    kind, rule, symbol, data = last(engine, "lock_released")
    assert data["rule"] == "t_lock_all"
    assert engine.stats.by_kind["lock_released"] == 1
    assert engine.stats.firings["t_on_release"] == 1    # rules see the lock_released event
    submit(engine, buy(20.0))
    assert last(engine, "intent")[2] == BTC and len(entries(engine, "refused")) == 2


def test_a_lock_lets_closing_orders_out(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    open_position(engine)
    engine.process(dial(T0 + S, 1))
    submit(engine, sell(engine))
    assert BTC not in engine.account.positions and not entries(engine, "refused")


def test_lock_scope_symbol_blocks_only_the_events_symbol(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    engine.process(ticker(T0, ETH, 3_000.0))
    engine.process(dial(T0 + S, 2, symbol=BTC))
    assert [(lk.symbol, lk.until) for lk in engine.state.locks] == [(BTC, T0 + S + 10 * M)]
    submit(engine, buy(20.0, BTC))
    assert last(engine, "refused")[3]["refused"] == "locked: test symbol"
    submit(engine, buy(20.0, ETH, 3_000.0))
    assert last(engine, "intent")[2] == ETH
    assert ETH in engine.account.positions


def test_escalating_lock_durations_within_the_repeat_window(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    fired = [T0 + S, T0 + M, T0 + 2 * M, T0 + 3 * M]
    for ts in fired:
        engine.process(dial(ts, 3))
    lengths = [lk["until"] - ts for lk, ts in zip(lock_events(engine), fired)]
    assert lengths == [5 * M, 30 * M, 24 * H, 24 * H]          # the last step repeats
    # beyond the repeat window the ladder starts again
    again = T0 + 3 * M + 24 * H + M
    engine.process(dial(again, 3))
    assert lock_events(engine)[-1]["until"] - again == 5 * M


def test_lock_until_utc_midnight_ends_at_the_next_midnight(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    engine.process(dial(T0 + S, 4))
    assert [lk.until for lk in engine.state.locks] == [MIDNIGHT]
    engine.process(ticker(MIDNIGHT - S))
    submit(engine, buy())
    assert last(engine, "refused")[3]["refused"] == "locked: until midnight"
    engine.process(ticker(MIDNIGHT + S))
    assert engine.state.locks == []
    assert last(engine, "lock_released")[3]["rule"] == "t_lock_midnight"
    assert engine.stats.by_kind["day_closed"] == 1
    submit(engine, buy())
    assert last(engine, "intent")[2] == BTC


def test_lock_with_a_journal_requirement_waits_for_the_entry(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    engine.process(dial(T0 + S, 5))
    assert engine.state.requirements == {"t_lock_journal": {"kind": "journal_entry", "min_words": 100}}
    [lock] = engine.state.locks
    assert (lock.until, lock.needs_journal_words) == (T0 + S + 5 * M, 100)
    engine.process(ticker(T0 + 30 * M))                      # long after its time: still locked
    assert engine.state.locks == [lock]
    submit(engine, buy())
    assert last(engine, "refused")[3]["refused"] == "locked: write first"
    assert engine.change_state("journal_written", "journal_entry", words=99) == []    # too short
    engine.process(ticker(T0 + 31 * M))
    assert engine.state.locks == [lock]
    [accepted] = engine.change_state("journal_written", "journal_entry", words=150)
    assert (accepted.change, accepted.rule, lock.needs_journal_words) == ("journal_entry_accepted", "t_lock_journal", 0)
    engine.process(ticker(T0 + 32 * M))
    assert engine.state.locks == []
    assert last(engine, "lock_released")[3]["rule"] == "t_lock_journal"
    submit(engine, buy())
    assert last(engine, "intent")[2] == BTC


def test_require_journal_entry_before_lock_in_the_same_rule_still_holds_the_lock(tmp_path):
    engine = started(make_engine(tmp_path, LOCKS))
    engine.process(Event("operator_disconnect", T0 + S))
    [lock] = engine.state.locks
    assert lock.needs_journal_words == 100


# ============================================================================ scale_size
SIZES = """\
rules:
  - id: t_half
    stage: risk
    when: "dial >= 1"
    then: [{scale_size: {slot: t_half, factor: 0.5}}]
    resolve: [{scale_size: {slot: t_half, factor: 1.0}}]
  - id: t_tier_factor
    stage: tilt
    when: "dial2 >= 1"
    then: [{scale_size: {slot: t_tier, factor: "tier.limits.losing_days_size_factor"}}]
  - id: t_brief
    stage: alerts
    on: operator_connect
    then: [{scale_size: {slot: t_brief, factor: 0.8, duration: 1m}}]
"""


def test_scale_size_slots_multiply_and_cut_the_intent(tmp_path):
    engine = started(make_engine(tmp_path, SIZES))
    engine.process(dial(T0 + S, 1))
    assert engine.state.sizes == {"t_half": (0.5, None)}
    assert engine.metrics.m["size_factor"] == 0.5
    engine.process(dial2(T0 + 2 * S, 1))           # factor from an expression: sniper's 0.5
    assert engine.state.sizes["t_tier"] == (0.5, None)
    assert engine.metrics.m["size_factor"] == 0.25
    submit(engine, buy(48.0))
    data = last(engine, "intent")[3]
    assert data["notional_usd"] == 48.0
    assert data["size_factor"] == 0.25 and data["notional_final"] == pytest.approx(12.0)
    assert last(engine, "order")[3]["qty"] * 60_000.01 == pytest.approx(12.0)
    # a closing order is never scaled down: the whole holding is sold
    submit(engine, sell(engine))
    assert BTC not in engine.account.positions
    assert "size_factor" not in last(engine, "intent")[3]


def test_order_new_carries_the_size_chosen_before_the_engine_cut_it(tmp_path):
    """The tilt size baseline reads `chosen_notional_usd`: the intent's size, before the
    5% resize and the size multipliers; `notional_usd` is what was sent."""
    header = DIALS + "  t_sent: {last: order_new, field: notional_usd}\n  t_chosen: {last: order_new, field: chosen_notional_usd}\n"
    engine = started(make_engine(tmp_path, SIZES, header=header))
    engine.process(dial(T0 + S, 1))                 # sizes halved
    submit(engine, buy(48.0))
    assert engine.metrics.m["t_sent"] == pytest.approx(24.0)
    assert engine.metrics.m["t_chosen"] == 48.0
    assert engine.metrics.m["size_mean_24h"] == 48.0   # the shipped tilt metric reads the chosen size
    submit(engine, sell(engine))
    engine.process(dial(T0 + 2 * S, 0))             # full size again; a strategy's $60 is resized to 5%
    submit(engine, buy(60.0))
    assert 49.9 < engine.metrics.m["t_sent"] == pytest.approx(engine.metrics.m["equity_usd"] * 0.05, rel=1e-4)
    assert engine.metrics.m["t_chosen"] == 60.0


def test_scale_size_resolve_and_duration(tmp_path):
    engine = started(make_engine(tmp_path, SIZES))
    engine.process(dial(T0 + S, 1))
    engine.process(Event("operator_connect", T0 + 2 * S))
    assert engine.metrics.m["size_factor"] == pytest.approx(0.4)
    assert engine.state.sizes["t_brief"] == (0.8, T0 + 2 * S + M)
    engine.process(dial(T0 + 3 * S, 0))            # t_half resolves: factor 1.0 removes the slot
    assert "t_half" not in engine.state.sizes
    assert engine.metrics.m["size_factor"] == pytest.approx(0.8)
    engine.process(ticker(T0 + 2 * S + M))         # the timed multiplier has run out
    assert engine.state.size_factor(engine.now) == 1.0
    assert engine.metrics.m["size_factor"] == 1.0


# ============================================================================ reject and resize (shipped rules)
def test_manual_intent_over_five_percent_is_refused_by_the_rule(tmp_path):
    engine = started(make_engine(tmp_path))
    assert engine.metrics.m["equity_usd"] == 1000.0
    submit(engine, buy(60.0, manual=True))
    kind, rule, symbol, data = last(engine, "refused")
    assert rule == "max_position_manual"
    assert data["refused"] == ("This order is larger than 5% of equity, counted with the position and the orders "
                               "in flight. Try a smaller size.")
    assert last(engine, "fire")[1] == "max_position_manual"
    assert not entries(engine, "order")
    assert engine.metrics.m["position_rule_violations_14d"] == 1   # counted for the promotion gate
    submit(engine, buy(50.0, manual=True))                          # exactly 5% passes
    assert last(engine, "intent")[3]["notional_final"] == 50.0


def test_strategy_intent_over_five_percent_is_resized_to_five_percent(tmp_path):
    engine = started(make_engine(tmp_path))
    submit(engine, buy(80.0))
    data = last(engine, "intent")[3]
    assert data["notional_usd"] == 80.0
    assert data["resized_to"] == pytest.approx(50.0) and data["notional_final"] == pytest.approx(50.0)
    assert last(engine, "fire")[1] == "max_position_strategy"
    assert not entries(engine, "refused")
    fill = last(engine, "fill")[3]
    assert 49.0 < fill["notional_usd"] <= 50.0


def test_max_open_positions_refuses_a_second_position_on_sniper(tmp_path):
    engine = started(make_engine(tmp_path))
    engine.process(ticker(T0, ETH, 3_000.0))
    open_position(engine)
    submit(engine, buy(20.0, ETH, 3_000.0))
    kind, rule, symbol, data = last(engine, "refused")
    assert (rule, symbol) == ("max_open_positions", ETH)
    assert data["refused"] == "Open positions are at this tier's limit of 1 (orders in flight included)."
    assert ETH not in engine.account.positions


# ============================================================================ notify
NOTES = """\
rules:
  - id: t_note_warn
    stage: alerts
    on: journal_entry
    when: "event.words >= 10"
    severity: warning
    then:
      - notify: >-
          dial ${dial} of ${event.words} words; limit ${tier.limits.daily_loss_usd} USD;
          equity ${equity_usd}; flag ${t_flag > 0}
  - id: t_note_crit
    stage: alerts
    on: operator_disconnect
    severity: critical
    then: [{notify: "disconnected at hour ${event.hour_utc}"}]
  - id: t_note_info
    stage: alerts
    on: life_event
    then: [{notify: "plain"}]
"""


def test_notify_renders_values_and_routes_by_severity(tmp_path):
    engine = started(make_engine(tmp_path, NOTES))
    heard = []
    engine.notify_callback = heard.append
    engine.process(dial(T0 + S, 12))
    note = engine.notifications[-1]
    assert (note.rule, note.severity, note.ts) == ("t_note_warn", "warning", T0 + S)
    assert note.text == "dial 12 of 12 words; limit 25 USD; equity 1,000; flag no"
    assert note.channels == ["console", "log"]
    engine.process(Event("operator_disconnect", T0 + 2 * S))
    note = engine.notifications[-1]
    assert note.text == "disconnected at hour 12"
    assert (note.severity, note.channels) == ("critical", ["console", "log", "pager"])
    engine.process(dial2(T0 + 3 * S, 1))
    assert (engine.notifications[-1].severity, engine.notifications[-1].channels) == ("info", ["console", "log"])
    assert heard == engine.notifications[-3:]
    data = last(engine, "action")[3]
    assert data == {"action": "notify", "severity": "info", "text": "plain", "channels": ["console", "log"]}


def test_notify_channels_come_from_the_alerts_routing(tmp_path):
    root = config_dir(tmp_path, NOTES)
    alerts = (root / "alerts.yaml").read_text()
    assert "  info: [console, log]\n" in alerts
    (root / "alerts.yaml").write_text(alerts.replace("  info: [console, log]\n", "  info: [log]\n"))
    result = check_config(root)
    assert result.ok, result.problems
    engine = started(Engine(result, "sniper"))
    engine.process(dial2(T0 + S, 1))
    assert engine.notifications[-1].channels == ["log"]


# ============================================================================ require
REQUIRE = """\
rules:
  - id: t_reason
    stage: tilt
    when: "dial >= 1"
    then: [{require: {kind: reason, min_words: 5}}]
  - id: t_confirm
    stage: risk
    when: "dial2 >= 1"
    then: [halt, {require: {kind: confirmation, phrase: "I have read the risk note"}}]
"""


def test_a_reason_is_dropped_when_its_rule_resolves_a_confirmation_waits_for_the_reset(tmp_path):
    engine = started(make_engine(tmp_path, REQUIRE))
    engine.process(dial(T0 + S, 1))
    assert engine.state.requirements == {"t_reason": {"kind": "reason", "min_words": 5}}
    engine.process(dial2(T0 + 2 * S, 1))
    assert engine.state.requirements["t_confirm"] == {"kind": "confirmation", "phrase": "I have read the risk note",
                                                      "min_words": 1}   # the schema's default, filled in
    assert engine.state.snapshot()["requirements"].keys() == {"t_reason", "t_confirm"}
    engine.process(dial(T0 + 3 * S, 0))
    assert set(engine.state.requirements) == {"t_confirm"}
    engine.process(dial2(T0 + 4 * S, 0))
    assert set(engine.state.requirements) == {"t_confirm"}   # the halt still waits for its typed reset
    assert engine.state.mode == HALTED             # no resume in its resolve: the halt stays
    assert apply_command(engine, "reset", {"phrase": "I have read the risk note"})[0] == "applied"
    assert engine.state.requirements == {} and engine.state.mode == ACTIVE


# ============================================================================ set
SETS = """\
rules:
  - id: t_set
    stage: alerts
    on: journal_entry
    when: "event.words == 1"
    then: [{set: {t_flag: 1, t_regime: storm}}]
  - id: t_unset
    stage: alerts
    on: journal_entry
    when: "event.words == 2"
    then: [{set: {t_flag: 0, t_regime: calm}}]
  - id: t_read_flag
    stage: market_state
    when: "t_flag == 1"
    then: [reduce_only]
    resolve: [resume]
  - id: t_read_regime
    stage: risk
    when: "t_regime == 'storm'"
    then: [{notify: "storm"}]
"""


def test_set_changes_flags_and_readers_fire_in_the_same_event(tmp_path):
    engine = started(make_engine(tmp_path, SETS))
    assert (engine.metrics.m["t_flag"], engine.metrics.m["t_regime"]) == (0, "calm")
    engine.process(dial(T0 + S, 1))
    assert (engine.metrics.m["t_flag"], engine.metrics.m["t_regime"]) == (1, "storm")
    assert engine.stats.firings["t_read_flag"] == 1      # an earlier stage, still in this event
    assert engine.stats.firings["t_read_regime"] == 1
    assert engine.state.mode == REDUCING
    fires = [(r, d["values"]) for k, r, _, d in entries(engine, "fire")]
    assert ("t_read_flag", {"t_flag": 1}) in fires and ("t_read_regime", {"t_regime": "storm"}) in fires
    actions = [d for _, _, _, d in entries(engine, "action")]
    assert {"action": "set", "set": {"t_flag": 1, "t_regime": "storm"}} in actions
    engine.process(dial(T0 + 2 * S, 2))
    assert (engine.metrics.m["t_flag"], engine.metrics.m["t_regime"]) == (0, "calm")
    assert engine.state.mode == ACTIVE
    assert [r for k, r, _, _ in entries(engine, "resolve")] == ["t_read_flag", "t_read_regime"]


def test_an_event_rule_that_sets_a_flag_fires_once_per_event(tmp_path):
    engine = started(make_engine(tmp_path, SETS))
    engine.process(dial(T0 + S, 1))
    assert engine.stats.firings["t_set"] == 1
    assert [r for k, r, _, _ in entries(engine, "fire")].count("t_set") == 1


def test_an_event_rule_notifies_once_per_event(tmp_path):
    engine = started(make_engine(tmp_path, NOTES))
    engine.process(dial(T0 + S, 12))
    engine.process(dial(T0 + S + 500, 12))     # the same second: the account figures refresh inside the loop
    assert engine.stats.firings["t_note_warn"] == 2
    assert len(engine.notifications) == 2


def test_promote_from_an_event_rule_moves_up_exactly_one_tier(tmp_path):
    rules = """\
rules:
  - id: t_promote_now
    stage: tier
    on: journal_entry
    when: "event.words == 1"
    then: [promote]
"""
    engine = started(make_engine(tmp_path, rules))
    engine.process(dial(T0 + S, 1))
    assert engine.tier == "hunter"


# ============================================================================ promote and demote
TIERS = """\
metrics:
  dial: {last: journal_entry, field: words, default: 0}
  dial_count: {count: journal_entry}
  loss_limit: {expr: "tier.limits.daily_loss_usd"}
rules:
  - id: t_promote
    stage: tier
    when: "dial == 1"
    then: [promote]
  - id: t_demote
    stage: tier
    when: "dial == 2"
    then: [demote]
  - id: t_threshold
    stage: risk
    when: "dial >= tier.limits.daily_loss_usd"
    then: [{notify: "dial over the tier's daily loss number"}]
"""


def test_promote_and_demote_switch_the_tier_and_keep_metric_history(tmp_path):
    engine = started(make_engine(tmp_path, TIERS, header=""))
    assert [s.id for s in engine.strategies] == ["btc_eth_spread"]
    for i in range(3):
        engine.process(dial(T0 + (i + 1) * S, 5))
    assert engine.metrics.m["dial_count"] == 3
    engine.process(dial(T0 + 10 * S, 1))
    assert engine.tier == "hunter" and engine.ruleset.tier == "hunter"
    assert engine.metrics.m["dial_count"] == 4                    # history survives the switch
    assert [s.id for s in engine.strategies] == ["btc_eth_spread", "btc_mean_reversion"]
    assert last(engine, "tier")[3] == {"tier": "hunter"}
    assert {"action": "promote", "tier": "hunter", "from": "sniper"} in [d for *_, d in entries(engine, "action")]
    engine.process(dial(T0 + 11 * S, 50))                         # over sniper's 25, under hunter's 100
    assert engine.metrics.m["dial_count"] == 5
    assert engine.stats.firings["t_threshold"] == 0
    engine.process(dial(T0 + 12 * S, 2))
    assert engine.tier == "sniper" and engine.metrics.m["dial_count"] == 6
    engine.process(dial(T0 + 13 * S, 50))
    assert engine.stats.firings["t_threshold"] == 1
    assert engine.state.mode == ACTIVE
    assert (engine.stats.firings["t_promote"], engine.stats.firings["t_demote"]) == (1, 1)
    engine.process(dial(T0 + 14 * S, 2))                          # demote at the lowest tier: halt instead
    assert engine.tier == "sniper"
    assert engine.state.mode == HALTED and engine.state.holds == {"t_demote": "halt"}
    assert last(engine, "action")[3]["note"] == "already at the lowest tier: halted instead"


def test_derived_metric_reading_tier_values_follows_the_new_tier(tmp_path):
    engine = started(make_engine(tmp_path, TIERS, header=""))
    assert engine.metrics.m["loss_limit"] == 25
    engine.process(dial(T0 + S, 1))
    assert engine.tier == "hunter"
    assert engine.metrics.m["loss_limit"] == 100


def test_promote_at_the_top_tier_stays(tmp_path):
    engine = started(make_engine(tmp_path, TIERS, header="", tier="strategist"))
    engine.process(dial(T0 + S, 1))
    assert engine.tier == "strategist" and engine.state.mode == ACTIVE
    assert last(engine, "action")[3]["note"] == "already at the top tier"


# ============================================================================ for, cooldown, resolve, event rules
TIMING = """\
rules:
  - id: t_for
    stage: risk
    when: "dial >= 1"
    for: 30s
    then: [halt]
    resolve: [resume, {notify: "dial back to ${dial}"}]
  - id: t_cool
    stage: alerts
    when: "dial2 >= 1"
    cooldown: 10m
    then: [{notify: "cool"}]
  - id: t_cool_event
    stage: alerts
    on: operator_connect
    cooldown: 5m
    then: [{notify: "cool event"}]
  - id: t_every
    stage: alerts
    on: operator_disconnect
    then: [{notify: "every one"}]
  - id: t_words
    stage: alerts
    on: journal_entry
    when: "event.words > 10 and event.symbol == 'BTCUSDT'"
    then: [{notify: "${event.words} words on ${event.hour_utc}h"}]
"""


def fire_times(engine: Engine, rule: str, kind: str = "fire") -> list:
    engine.journal.flush()
    return [r.ts for r in engine.journal.entries() if r.kind == kind and r.rule == rule]


def test_for_needs_the_condition_to_hold_for_its_duration_in_event_time(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(dial(T0 + S, 1))
    for ts in (T0 + 10 * S, T0 + 30 * S, T0 + 31 * S - 1):
        engine.process(ticker(ts))
        assert engine.state.mode == ACTIVE, ts - T0
    engine.process(ticker(T0 + 31 * S))
    assert engine.state.mode == HALTED
    assert fire_times(engine, "t_for") == [T0 + 31 * S]
    engine.process(ticker(T0 + 40 * S))
    assert engine.stats.firings["t_for"] == 1               # fires once while it holds


def test_for_fires_on_its_timer_at_the_next_event_of_any_kind(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(dial(T0 + S, 1))
    engine.process(Event("system_probe", T0 + 5 * M, "", {"memory_pct": 10.0, "disk_free_mb": 50_000.0,
                                                           "cpu_pct": 5.0}))
    assert engine.state.mode == HALTED
    assert fire_times(engine, "t_for") == [T0 + 5 * M]


def test_for_restarts_when_the_condition_breaks(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(dial(T0 + S, 1))
    engine.process(dial(T0 + 20 * S, 0))
    engine.process(dial(T0 + 40 * S, 1))
    engine.process(ticker(T0 + 60 * S))                      # 59 s after the first, 20 s after the restart
    assert engine.state.mode == ACTIVE
    engine.process(ticker(T0 + 70 * S))
    assert engine.state.mode == HALTED
    assert fire_times(engine, "t_for") == [T0 + 70 * S]


def test_resolve_runs_when_the_condition_stops_holding(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(dial(T0 + S, 1))
    engine.process(ticker(T0 + 31 * S))
    assert engine.state.mode == HALTED
    engine.process(dial(T0 + 40 * S, 0))
    assert engine.state.mode == ACTIVE
    assert fire_times(engine, "t_for", "resolve") == [T0 + 40 * S]
    assert engine.notifications[-1].text == "dial back to 0"
    assert engine.stats.firings["t_for"] == 1                # a resolution is not a firing
    engine.process(dial(T0 + 41 * S, 0))
    assert len(fire_times(engine, "t_for", "resolve")) == 1


def test_a_rule_that_never_fired_does_not_resolve(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(dial(T0 + S, 1))
    engine.process(dial(T0 + 2 * S, 0))                      # broke before its `for` was over
    assert fire_times(engine, "t_for", "resolve") == [] and engine.notifications == []


def test_cooldown_of_a_state_rule(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(dial2(T0 + S, 1))
    engine.process(dial2(T0 + M, 0))
    engine.process(dial2(T0 + 2 * M, 1))                     # holds again within the cooldown
    engine.process(ticker(T0 + 5 * M))
    assert fire_times(engine, "t_cool") == [T0 + S]
    engine.process(ticker(T0 + 10 * M + S))                  # the cooldown is over and it still holds
    assert fire_times(engine, "t_cool") == [T0 + S, T0 + 10 * M + S]
    # an alerts-stage rule that notified says when it clears (docs/notifications.md)
    assert [(n.text, n.status) for n in engine.notifications] == [
        ("cool", "firing"), ("Resolved: t_cool (dial2 >= 1 no longer holds).", "resolved"), ("cool", "firing")]


def test_cooldown_of_an_event_rule(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    for ts in (T0 + S, T0 + M, T0 + 5 * M, T0 + 5 * M + S, T0 + 6 * M, T0 + 11 * M):
        engine.process(Event("operator_connect", ts))
    assert fire_times(engine, "t_cool_event") == [T0 + S, T0 + 5 * M + S, T0 + 11 * M]


def test_event_rules_fire_on_each_matching_event_and_read_its_fields(tmp_path):
    engine = started(make_engine(tmp_path, TIMING))
    engine.process(Event("operator_disconnect", T0 + S))
    engine.process(Event("operator_disconnect", T0 + 2 * S))
    assert engine.stats.firings["t_every"] == 2
    engine.process(dial(T0 + 3 * S, 25, symbol=BTC))
    engine.process(dial(T0 + 4 * S, 5, symbol=BTC))          # event.words too small
    engine.process(dial(T0 + 5 * S, 30, symbol=ETH))         # another symbol
    engine.process(dial(T0 + 6 * S, 11, symbol=BTC))
    assert [n.text for n in engine.notifications if n.rule == "t_words"] == ["25 words on 12h", "11 words on 12h"]
    values = [d["values"] for k, r, _, d in entries(engine, "fire") if r == "t_words"]
    assert values[0]["event.words"] == 25 and values[0]["event.symbol"] == BTC


# ============================================================================ shipped rules end to end
def test_position_mismatch_halts_and_pages(tmp_path):
    engine = started(make_engine(tmp_path))
    engine.process(Event("position_mismatch", T0 + S, BTC, {"diff_usd": 5.0}))
    assert engine.state.mode == HALTED
    assert engine.state.holds == {"position_mismatch": "halt"}
    note = engine.notifications[-1]
    assert (note.rule, note.severity) == ("position_mismatch", "critical")
    assert "pager" in note.channels
    assert note.text == "Positions disagree with the exchange by 5 USD. Trading is halted until reconciled."
    submit(engine, buy())
    assert last(engine, "refused")[3]["refused"] == "trading is halted"


def test_exchange_unreachable_for_30_seconds_halts_then_resolves(tmp_path):
    engine = started(make_engine(tmp_path))
    engine.process(Event("api_status", T0 + S, "", {"reachable": False}))
    engine.process(ticker(T0 + 30 * S))
    assert engine.state.mode == ACTIVE
    engine.process(ticker(T0 + 31 * S))
    assert engine.state.mode == HALTED and engine.state.holds == {"exchange_unreachable": "halt"}
    note = engine.notifications[-1]
    assert (note.rule, note.severity, note.channels) == ("exchange_unreachable", "critical",
                                                         ["console", "log", "pager"])
    assert note.text == "The exchange API has been unreachable for 30 s. New orders are halted."
    engine.process(Event("api_status", T0 + 60 * S, "", {"reachable": True}))
    assert engine.state.mode == ACTIVE
    assert engine.notifications[-1].text == "The exchange API is reachable again."
    assert fire_times(engine, "exchange_unreachable", "resolve") == [T0 + 60 * S]


def test_drawdown_critical_on_sniper_allows_only_reducing_orders(tmp_path):
    engine = started(make_engine(tmp_path))
    open_position(engine, 50.0)
    mid = 60_000.0
    ts = T0 + S
    while mid < 90_000.0:                                      # a new equity peak first
        mid += 5_000.0
        ts += S
        engine.process(ticker(ts, BTC, mid))
    peak = engine.metrics.m["peak_equity_usd"]
    assert peak > 1_020.0
    while engine.metrics.m["drawdown_usd"] < 50.0:
        assert engine.state.mode == ACTIVE and engine.stats.firings["drawdown_critical"] == 0
        mid -= 500.0
        ts += S
        engine.process(ticker(ts, BTC, mid))
        assert mid > 1_000.0
    assert engine.metrics.m["drawdown_usd"] == pytest.approx(peak - engine.metrics.m["equity_usd"])
    assert engine.state.mode == REDUCING
    assert engine.state.holds["drawdown_critical"] == "reduce_only"
    assert engine.stats.firings["drawdown_critical"] == 1
    note = [n for n in engine.notifications if n.rule == "drawdown_critical"][-1]
    assert note.severity == "critical" and note.text.startswith("Drawdown is ")
    assert "Only orders that reduce exposure will go out." in note.text
    submit(engine, sell(engine))                               # reducing exposure passes
    assert BTC not in engine.account.positions
    assert engine.metrics.m["drawdown_usd"] >= 50.0 and engine.state.mode == REDUCING
    engine.process(ticker(ts + S, ETH, 3_000.0))
    submit(engine, buy(20.0, ETH, 3_000.0))                    # opening does not
    kind, rule, symbol, data = last(engine, "refused")
    assert (rule, data["refused"]) == ("trading_state", "only exposure-reducing orders pass (reduce-only)")


def test_daily_loss_limit_locks_until_midnight(tmp_path):
    engine = started(make_engine(tmp_path))
    engine.process(ticker(T0, ETH, 3_000.0))
    open_position(engine, 50.0)
    engine.process(ticker(T0 + M, BTC, 45_000.0))
    assert engine.stats.firings["daily_loss_limit"] == 0
    engine.process(ticker(T0 + 2 * M, BTC, 29_000.0))
    assert engine.metrics.m["daily_pnl_usd"] <= -25.0
    assert engine.stats.firings["daily_loss_limit"] == 1
    locks = [lk for lk in engine.state.locks if lk.rule == "daily_loss_limit"]
    assert [(lk.symbol, lk.until, lk.reason) for lk in locks] == [("", MIDNIGHT, "daily loss limit")]
    note = [n for n in engine.notifications if n.rule == "daily_loss_limit"][-1]
    assert note.text == "Today's loss reached the 25 USD limit. Trading resumes at 00:00 UTC."
    assert note.severity == "critical"
    assert engine.state.mode == ACTIVE                         # a lock, not a halt; the drawdown is under 50
    assert engine.state.sizes.get("drawdown") == (0.5, None)   # the warning step halves sizes for the day
    submit(engine, sell(engine))                               # closing passes the lock
    assert BTC not in engine.account.positions
    assert engine.stats.firings["drawdown_info"] == 1          # that trade lost more than $10
    submit(engine, buy(20.0, ETH, 3_000.0))
    assert last(engine, "refused")[3]["refused"] == "locked: daily loss limit"
    engine.process(ticker(MIDNIGHT - S, ETH, 3_000.0))
    assert engine.state.locks
    engine.process(ticker(MIDNIGHT + S, ETH, 3_000.0))
    assert engine.state.locks == []
    assert last(engine, "lock_released")[3]["rule"] == "daily_loss_limit"
    assert engine.metrics.m["daily_pnl_usd"] == pytest.approx(0.0, abs=1e-6)
    assert "drawdown" not in engine.state.sizes                # the day reset: the warning resolved
    submit(engine, buy(20.0, ETH, 3_000.0))
    assert last(engine, "intent")[2] == ETH


def test_a_journal_entry_event_long_enough_ends_a_journal_gated_lock(tmp_path):
    """The shipped tilt lockout waits for 500 words: a shorter entry keeps it, a long one lifts it
    once its time has passed, and the lock_released event follows."""
    engine = Engine(check_config(Path(__file__).resolve().parents[1]), "sniper", journal=Journal("sqlite://"))
    t0 = 1_723_161_255_000
    engine.process(Event("operator_connect", t0))
    engine.change_state("lock", "tilt_level_3", rule="tilt_level_3", symbol="", until=t0 + 60_000,
                        reason="tilt level 3", journal_words=500)
    [lock] = engine.state.locks
    engine.process(Event("journal_entry", t0 + 1000, "", {"words": 120}))
    assert lock.needs_journal_words == 500
    engine.process(Event("journal_entry", t0 + 2000, "", {"words": 640}))
    assert lock.needs_journal_words == 0
    assert lock in engine.state.active_locks(t0 + 3000)        # its 60 s still run
    engine.process(Event("operator_connect", t0 + 61_000))
    assert engine.state.active_locks(t0 + 61_000) == []
    assert engine.stats.by_kind["lock_released"] == 1
