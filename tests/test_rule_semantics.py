"""The evaluator's semantics through the real engine: rule state per symbol, stages in
order with chains of actions run to a fixed point, and expressions that fail at run time
(journaled, alerted, fail-closed)."""
from __future__ import annotations

from genesis.config.checks import check_config
from genesis.engine.events import Event
from genesis.engine.state import ACTIVE
from tests.test_engine_actions import (BTC, ETH, S, T0, buy, config_dir, dial, dial2, entries, make_engine,
                                       open_position, sell, submit, ticker)

PRICES = """\
flags:
  t_flag: {default: 0}
  t_regime: {default: calm, values: [calm, storm]}
  t_sym: {default: quiet, values: [quiet, loud], by: symbol}
metrics:
  dial: {last: journal_entry, field: words, default: 0}
  dial2: {last: life_event, field: days, default: 0}
  dial_count: {count: journal_entry}
  px: {last: book_ticker, field: mid, by: symbol}
  ticks_10s: {count: book_ticker, window: 10s, by: symbol}
"""


def interleave(engine, start: int, seconds: int, btc: float = 200.0, eth: float = 50.0) -> None:
    """One BTCUSDT and one ETHUSDT ticker each second, alternating."""
    for i in range(seconds):
        engine.process(ticker(start + i * S, BTC, btc))
        engine.process(ticker(start + i * S + 500, ETH, eth))


def fires(engine, rule: str) -> list:
    """(kind, symbol) of every fire/resolve of `rule` in the journal."""
    return [(k, sym) for k, rid, sym, _ in entries(engine) if rid == rule and k in ("fire", "resolve")]


# ============================================================================ state per symbol
FOR_RULE = """\
rules:
  - id: t_high
    stage: market_state
    when: "px > 100"
    for: 10s
    then: [{notify: "${symbol} price ${px} held above 100"}]
  - id: t_high_now
    stage: market_state
    when: "px > 100"
    then: [{notify: "${symbol} is above 100"}]
"""


def test_a_per_symbol_for_rule_fires_while_symbols_interleave(tmp_path):
    engine = make_engine(tmp_path, FOR_RULE, header=PRICES)
    interleave(engine, T0, 12)
    assert fires(engine, "t_high") == [("fire", BTC)]           # BTCUSDT held above 100 for 10 s
    assert fires(engine, "t_high_now") == [("fire", BTC)]       # once, no flapping on every alternation
    texts = [n.text for n in engine.notifications]
    assert "BTCUSDT price 200 held above 100" in texts
    assert set(engine.rules.firing()) == {f"t_high@{BTC}", f"t_high_now@{BTC}"}


def test_a_per_symbol_rule_resolves_for_its_own_symbol_only(tmp_path):
    engine = make_engine(tmp_path, FOR_RULE, header=PRICES)
    interleave(engine, T0, 3, btc=200, eth=300)                 # both above
    assert sorted(fires(engine, "t_high_now")) == [("fire", BTC), ("fire", ETH)]
    engine.process(ticker(T0 + 5 * S, ETH, 50))                 # ETHUSDT falls back
    interleave(engine, T0 + 6 * S, 2, btc=200, eth=50)
    assert fires(engine, "t_high_now")[-1] == ("resolve", ETH)
    assert set(engine.rules.firing()) == {f"t_high_now@{BTC}"}


def test_a_window_of_another_symbol_expiring_is_evaluated_for_that_symbol(tmp_path):
    rules = """\
rules:
  - id: t_busy
    stage: market_state
    when: "ticks_10s >= 3"
    then: [{notify: "${symbol} busy"}]
"""
    engine = make_engine(tmp_path, rules, header=PRICES)
    for i in range(3):
        engine.process(ticker(T0 + i * S, BTC, 200))
    assert fires(engine, "t_busy") == [("fire", BTC)]
    for i in range(20):                                        # only ETHUSDT from now on: BTCUSDT's window empties
        engine.process(ticker(T0 + 5 * S + i * S, ETH, 50))
    assert [f for f in fires(engine, "t_busy") if f[1] == BTC] == [("fire", BTC), ("resolve", BTC)]
    assert ("fire", ETH) in fires(engine, "t_busy")             # ETHUSDT got busy on its own


def test_a_per_symbol_rule_is_evaluated_when_its_symbols_values_move_not_on_every_alternation(tmp_path):
    """Every evaluation of a failing rule is counted, so the count is the number of
    evaluations: one per symbol on its first event, then one per change of that symbol's
    own price; the other symbol's events in between are not changes."""
    rules = """\
rules:
  - id: t_ratio
    stage: market_state
    when: "dial >= 0 and px / dial2 > 1"
    then: [{notify: "${symbol} ratio"}]
"""
    engine = make_engine(tmp_path, rules, header=PRICES)
    interleave(engine, T0, 10, btc=200, eth=50)                 # 20 events, prices steady
    assert engine.rules.errors["t_ratio"] == 2
    engine.process(ticker(T0 + 20 * S, BTC, 201))               # BTCUSDT's own price moves
    interleave(engine, T0 + 21 * S, 3, btc=201, eth=50)
    assert engine.rules.errors["t_ratio"] == 3
    engine.process(dial(T0 + 30 * S, 7))                        # an account-wide name it reads: every symbol
    assert engine.rules.errors["t_ratio"] == 5


def test_a_per_symbol_size_cut_applies_to_that_symbols_orders_only(tmp_path):
    rules = """\
rules:
  - id: t_cut
    stage: market_state
    when: "px > 100"
    then: [{scale_size: {slot: t_regime_size, factor: 0.5}}]
"""
    engine = make_engine(tmp_path, rules, tier="hunter", header=PRICES)
    interleave(engine, T0, 2, btc=200, eth=50)
    assert engine.state.size_factor(engine.now, BTC) == 0.5
    assert engine.state.size_factor(engine.now, ETH) == 1.0
    submit(engine, buy(40.0, ETH, 50.0))
    submit(engine, buy(40.0, BTC, 200.0))
    intents = {sym: data for k, _, sym, data in entries(engine, "intent")}
    assert intents[ETH]["notional_final"] == 40.0
    assert intents[BTC]["notional_final"] == 20.0


def test_a_per_symbol_flag_keeps_a_value_per_symbol(tmp_path):
    rules = """\
rules:
  - id: t_loud
    stage: market_state
    when: "px > 100 and t_sym == 'quiet'"
    then: [{set: {t_sym: loud}}, {lock: {scope: symbol, duration: 1h, reason: "loud"}}]
"""
    engine = make_engine(tmp_path, rules, header=PRICES)
    interleave(engine, T0, 2, btc=200, eth=50)
    assert engine.metrics.symbol_flag(BTC, "t_sym") == "loud"
    assert engine.metrics.symbol_flag(ETH, "t_sym") == "quiet"
    locks = engine.state.active_locks(engine.now)
    assert [(lk.symbol, lk.reason) for lk in locks] == [(BTC, "loud")]


def test_validate_refuses_a_per_symbol_rule_that_sets_an_account_wide_flag(tmp_path):
    rules = """\
rules:
  - id: t_ambiguous
    stage: market_state
    when: "px > 100"
    then: [{set: {t_regime: storm}}]
"""
    result = check_config(config_dir(tmp_path, rules, header=PRICES))
    messages = [f"{p.file}:{p.line}: {p.message}" for p in result.problems]
    assert len(messages) == 1
    assert "rules/test_actions.yaml:15:" in messages[0].replace("\\", "/")
    assert "evaluated per symbol (it reads px)" in messages[0]
    assert "account-wide flag 't_regime'" in messages[0] and "by: symbol" in messages[0]


# ============================================================================ stages in order, fixed point
CHAIN = """\
flags:
  c1: {default: 0}
  c2: {default: 0}
  c3: {default: 0}
  c4: {default: 0}
  c5: {default: 0}
metrics:
  dial: {last: journal_entry, field: words, default: 0}
rules:
  - id: chain_5
    stage: alerts
    when: "c4 >= 1"
    then: [{set: {c5: 1}}, {notify: "end of the chain"}]
  - id: chain_4
    stage: risk
    when: "c3 >= 1"
    then: [{set: {c4: 1}}]
  - id: chain_3
    stage: tilt
    when: "c2 >= 1"
    then: [{set: {c3: 1}}]
  - id: chain_2
    stage: market_state
    when: "c1 >= 1"
    then: [{set: {c2: 1}}]
  - id: chain_1
    stage: tier
    when: "dial >= 1"
    then: [{set: {c1: 1}}]
"""


def test_a_five_step_chain_of_set_rules_completes_in_one_event(tmp_path):
    engine = make_engine(tmp_path, "", header=CHAIN)
    engine.process(ticker(T0))
    engine.process(dial(T0 + S, 1))
    assert [engine.metrics.m[f"c{i}"] for i in range(1, 6)] == [1, 1, 1, 1, 1]
    assert [r for k, r, _, _ in entries(engine, "fire")] == [f"chain_{i}" for i in range(1, 6)]
    assert [n.text for n in engine.notifications] == ["end of the chain"]
    assert engine.notifications[0].ts == T0 + S                  # the same event, not a later one


def test_a_market_state_decision_is_seen_by_the_risk_stage_in_the_same_event(tmp_path):
    rules = """\
rules:
  - id: t_regime_storm
    stage: market_state
    when: "dial >= 1 and t_regime == 'calm'"
    then: [{set: {t_regime: storm}}]
  - id: t_risk_reads_regime
    stage: risk
    when: "t_regime == 'storm'"
    then: [halt]
"""
    engine = make_engine(tmp_path, rules)
    engine.process(ticker(T0))
    engine.process(dial(T0 + S, 1))
    assert engine.state.mode == "HALTED"
    order = [r for k, r, _, _ in entries(engine, "fire")]
    assert order == ["t_regime_storm", "t_risk_reads_regime"]


# ============================================================================ errors speak
ERRORS = """\
rules:
  - id: t_ratio_alert
    stage: risk
    when: "dial / dial2 > 1"
    then: [{notify: "ratio high"}]
  - id: t_ratio_gate
    stage: pre_trade
    when: "order.notional_usd / dial2 > 1000"
    then: [{reject: "too large for the ratio"}]
"""


def test_a_rule_that_fails_at_run_time_is_journaled_counted_alerted_and_fails_closed(tmp_path):
    engine = make_engine(tmp_path, ERRORS)
    engine.process(dial2(T0, 1))
    engine.process(ticker(T0 + S // 2))
    open_position(engine, 40.0)                                  # dial2 = 1: every rule evaluates
    engine.process(dial2(T0 + 2 * S, 0))                         # now dial / dial2 divides by zero
    engine.process(dial(T0 + 3 * S, 5))
    engine.process(dial(T0 + 4 * S, 6))
    errors = entries(engine, "rule_error")
    risk = [e for e in errors if e[1] == "t_ratio_alert"]
    assert len(risk) == 1                                        # journaled once when it starts failing
    data = risk[0][3]
    assert data["expression"] == "dial / dial2 > 1" and data["stage"] == "risk"
    assert data["error"].startswith("ZeroDivisionError")
    assert data["values"]["dial2"] == 0
    assert engine.rules.errors["t_ratio_alert"] >= 2            # counted per rule, every evaluation
    assert any("t_ratio_alert" in n.text and "could not be evaluated" in n.text and n.severity == "critical"
               for n in engine.notifications)                   # the shipped alert pages
    submit(engine, buy(40.0))
    refused = entries(engine, "refused")[-1]
    assert refused[1] == "t_ratio_gate"                          # the pre-trade rule fails closed first
    assert "could not be evaluated" in refused[3]["refused"]
    submit(engine, sell(engine))                                 # an exit is not new exposure ...
    assert entries(engine, "refused")[-1][1] == "t_ratio_gate"   # ... but the failing pre-trade rule refuses it too
    engine.process(dial2(T0 + 5 * S, 2))                         # the rule evaluates again
    assert [e[1] for e in entries(engine, "rule_recovered")] == ["t_ratio_alert"]
    assert engine.state.mode == ACTIVE


def test_a_risk_rule_in_error_refuses_new_exposure_but_lets_exits_out(tmp_path):
    rules = """\
rules:
  - id: t_ratio_alert
    stage: risk
    when: "dial / dial2 > 1"
    then: [{notify: "ratio high"}]
"""
    engine = make_engine(tmp_path, rules, tier="hunter")
    engine.process(dial2(T0, 1))
    engine.process(ticker(T0 + S))
    open_position(engine, 40.0)
    engine.process(dial2(T0 + 2 * S, 0))
    submit(engine, buy(40.0, ETH, 3000.0))
    refused = entries(engine, "refused")[-1]
    assert refused[1] == "t_ratio_alert" and "new exposure is refused" in refused[3]["refused"]
    orders_before = len(entries(engine, "order"))
    submit(engine, sell(engine))
    assert len(entries(engine, "order")) == orders_before + 1     # the exit went out
    engine.process(dial2(T0 + 3 * S, 2))
    submit(engine, buy(40.0, ETH, 3000.0))
    assert entries(engine, "refused")[-1][1] == "t_ratio_alert"  # no new refusal: the last is the old one
    assert len(entries(engine, "refused")) == 1


def test_a_derived_metric_that_fails_is_journaled_with_its_id(tmp_path):
    header = PRICES + "  t_ratio: {expr: \"dial / dial2\"}\n"
    engine = make_engine(tmp_path, "rules: []\n", header=header)
    engine.process(ticker(T0))
    engine.process(dial(T0 + S, 3))
    errors = [e for e in entries(engine, "rule_error") if e[1] == "t_ratio"]
    assert errors and errors[0][3]["what"] == "metric" and errors[0][3]["expression"] == "dial / dial2"
    assert engine.metrics.errors["t_ratio"] >= 1


def test_an_interleaved_market_keeps_m_showing_the_events_symbol(tmp_path):
    engine = make_engine(tmp_path, FOR_RULE, header=PRICES)
    interleave(engine, T0, 3)
    engine.process(Event("book_ticker", T0 + 10 * S, BTC, {"bid": 199.99, "bid_qty": 1.0, "ask": 200.01,
                                                            "ask_qty": 1.0, "mid": 200.0, "spread_bps": 1.0}))
    assert engine.metrics.m["px"] == 200.0
    engine.process(ticker(T0 + 11 * S, ETH, 50))
    assert engine.metrics.m["px"] == 50


def test_validate_refuses_an_account_wide_rule_that_sets_a_per_symbol_flag(tmp_path):
    rules = """\
rules:
  - id: t_which_symbol
    stage: risk
    when: "dial >= 1"
    then: [{set: {t_sym: loud}}]
"""
    result = check_config(config_dir(tmp_path, rules, header=PRICES))
    messages = [p.message for p in result.problems]
    assert messages == ["rule 't_which_symbol' is account-wide (it reads no per-symbol name) but sets 't_sym', a flag "
                        "kept per symbol: it would not be clear for which symbol"]
