"""End-to-end tier and limit scenarios on 30 days of real Binance 1-minute candles
(BTCUSDT and ETHUSDT, 2021-04-20 20:41 to 2021-05-20 20:41 UTC), through the real CLI:
`genesis replay <candles> --tier T --config COPY --commands SCRIPT --db sqlite:///... --json`
on a copy of the shipped configuration, checked through the JSON report and the SQLite
journal (which rule fired, when, with which values, and what it did).

The candles are in ../shared/data (CI has them); every test is skipped without them.
Candle events are timed at the candle close, and a candle-only feed's paper book is the
candle close (both sides), so scripted orders fill at the close of the minute they apply
at. Strategies are switched off in every configuration copy except the one scenario that
needs a strategy, so the positions are the script's. Where a scenario only needs the
first days of the data it replays a prefix of the real files (same rows, cut at a time).

Times below are UTC minutes of event time. Each is a point picked from the candles (a
buy before a rise, a 15-minute window where BTC and ETH move apart, ...); the test
re-derives from the candles what makes it special, then checks the engine's timing
against that derivation.

Rules that do not fire on this data: market_dead_enter / market_dead_exit (see
test_market_dead_never_fires_on_these_candles: the DEAD condition never holds for the
rule's 15 minutes, at most for a few).
"""
from __future__ import annotations

import math
import re
from collections import deque

import pytest
import yaml
from scenario_helpers import (
    DAY,
    MINUTE,
    cli,
    closes,
    command,
    config_copy,
    feed,
    first_event,
    REPO,
    ms,
    needs_data,
    order,
    product,
    replay,
    rule_def,
    tier_file,
    utc,
)

# each rule this file makes fire -> the test that asserts its firing
COVERS = {
    "max_position_manual": "test_manual_buy_over_5pct_is_refused_and_counted_as_a_violation",
    "max_position_strategy": "test_strategy_entries_are_cut_down_to_the_5pct_rule",
    "max_open_positions": "test_sniper_refuses_a_second_open_position",
    "correlation_guard": "test_correlation_guard_refuses_a_buy_while_positions_move_together",
    "losing_days_size_cut": "test_two_losing_days_cut_sizes_until_a_winning_day",
    "override_attempt_logged": "test_five_override_attempts_in_24h_demote_hunter_to_sniper",
    "demote_override_attempts": "test_five_override_attempts_in_24h_demote_hunter_to_sniper",
    "demote_losing_days": "test_three_heavy_losing_days_demote_hunter_to_sniper",
    "demote_same_direction": "test_positions_moving_together_demote_hunter_and_mask_the_guard",
    "promote_sniper_to_hunter": "test_sniper_is_promoted_to_hunter_the_moment_every_gate_holds",
    "promote_hunter_to_strategist": "test_hunter_is_promoted_to_strategist_the_moment_every_gate_holds",
    "drawdown_reference_after_override": "test_five_override_attempts_in_24h_demote_hunter_to_sniper",
    "equity_above_tier_band": "test_a_10000_usd_account_at_sniper_is_told_it_is_above_the_band_and_stays_sniper",
    "equity_below_tier_band": "test_a_hunter_account_24_hours_below_its_band_steps_down_to_sniper",
    "demote_below_tier_band": "test_a_hunter_account_24_hours_below_its_band_steps_down_to_sniper",
}

pytestmark = needs_data
PHRASE = "I accept the risk of overriding my own limits"   # genesis.yaml safety.override_phrase


def gate_holds(condition: str, values: dict, tier: dict) -> bool:
    """A rule condition with the tier file's numbers put in, evaluated on the values the
    firing journaled (the conditions are plain comparisons of names and numbers)."""
    def number(match: re.Match) -> str:
        cur = tier
        for key in match.group(1).split("."):
            cur = cur[key]
        return repr(cur)
    return bool(eval(re.sub(r"tier\.([a-z0-9_.]+)", number, condition), {"__builtins__": {}}, dict(values)))


def holdings(run, symbol: str, before: int) -> float:
    """Base quantity of `symbol` held after the fills journaled before event time `before`."""
    return sum(f["data"]["qty"] * (1 if f["data"]["side"] == "buy" else -1)
               for f in run.of("fill") if f["symbol"] == symbol and f["ts"] < before)


@pytest.fixture(scope="module")
def two_pairs_to_may6(tmp_path_factory):
    """BTC and ETH candles up to 2021-05-06 00:00 (the promotion scenarios end before)."""
    return feed(tmp_path_factory.mktemp("feed_0506"), ("BTCUSDT", "ETHUSDT"), until="2021-05-06 00:00")


# =========================================================================== Sniper: the 5% rule,
# one open position, and the promotion to Hunter
SNIPER_EQUITY = 1_990   # a little under the Sniper -> Hunter equity gate ($2,000): the trades cross it
SNIPER_PROMOTION = {
    # The candles span 30 days from the first event to the last, so the shipped 30-day gate
    # could hold at best at the very last minute of the data: 10 days leaves room for the
    # trades after it.
    "min_days_at_tier": 10,
    # The shipped gate asks for 3 profitable pairs; the data has two (BTCUSDT, ETHUSDT).
    "min_profitable_pairs": 2,
}
# profitable trades picked from the candles (checked in the test): buy before a rise, sell after
BTC_BUY, BTC_SELL = "2021-04-26 00:05", "2021-04-26 19:00"    # BTC 48,800 -> 54,246 (+11.2%)
ETH_BUY, ETH_SELL = "2021-05-03 00:05", "2021-05-03 23:00"    # ETH 2,953 -> 3,377 (+14.4%)
OVERSIZED_BUY = "2021-04-21 12:00"   # $150 of BTC: over 5% of $1,990 ($99.50)
SECOND_POSITION = "2021-04-26 00:06"  # an ETH buy while the BTC position bought at 00:05 is open
# the written reflection a promotion waits for: too short first, then long enough
SHORT_REFLECTION, REFLECTION = "2021-05-04 08:00", "2021-05-05 13:00"
REFLECTION_TEXT = " ".join(["patience"] * 150)


@pytest.fixture(scope="module")
def sniper_runs(tmp_path_factory, two_pairs_to_may6):
    """Two Sniper replays of the same four profitable trades: 'clean' has only them;
    'violation' also has a manual buy over the 5% rule on 04-21 and, while the BTC position
    is open on 04-26, an ETH buy (Sniper allows one open position)."""
    files = two_pairs_to_may6
    first = first_event(files)
    trades = [order(first, BTC_BUY, "buy", "BTCUSDT", 99, "buying before the rally"),
              order(first, BTC_SELL, "sell", "BTCUSDT", 10_000, "taking profit"),
              order(first, ETH_BUY, "buy", "ETHUSDT", 99, "buying before the rally"),
              order(first, ETH_SELL, "sell", "ETHUSDT", 10_000, "taking profit"),
              command(first, SHORT_REFLECTION, "reflect", text="I was patient"),
              command(first, REFLECTION, "reflect", text=REFLECTION_TEXT)]
    extra = [order(first, OVERSIZED_BUY, "buy", "BTCUSDT", 150, "all in"),
             order(first, SECOND_POSITION, "buy", "ETHUSDT", 99, "and ETH too")]
    runs = {}
    for name, script in (("clean", trades), ("violation", trades + extra)):
        tmp = tmp_path_factory.mktemp(f"sniper_{name}")
        config = config_copy(tmp, equity=SNIPER_EQUITY, tier_edits={"sniper": {"promotion": SNIPER_PROMOTION}})
        runs[name] = replay(tmp, "sniper", config, files, script)
    runs["first"] = first
    return runs


def test_manual_buy_over_5pct_is_refused_and_counted_as_a_violation(sniper_runs):
    """max_position_manual: a manual buy over 5% of equity is refused with the rule's text
    (no order goes out); a buy within 5% passes. The refusal is a 5%-rule violation: the
    Sniper gate `position_rule_violations_14d <= 0` stays shut for 14 days, so the same
    trades that promote at the ETH sale without it promote only when it leaves the window."""
    run, clean = sniper_runs["violation"], sniper_runs["clean"]
    sniper = tier_file(run.config, "sniper")
    limit = SNIPER_EQUITY * sniper["limits"]["max_position_pct"] / 100
    assert limit == 99.5
    t = ms(OVERSIZED_BUY)

    fires = run.of("fire", "max_position_manual")
    assert [e["ts"] for e in fires] == [t]
    assert fires[0]["data"]["values"] == {"equity_usd": SNIPER_EQUITY, "order.manual": True,
                                          "order.exposure_usd": 150.0, "order.opens_position": True}
    text = "This order is larger than 5% of equity, counted with the position and the orders in flight. Try a smaller size."
    refused = run.of("refused", "max_position_manual")
    assert [(e["ts"], e["symbol"], e["data"]["refused"]) for e in refused] == [(t, "BTCUSDT", text)]
    rejected = run.of("order_rejected", at=t)
    assert [(e["data"]["rule"], e["data"]["manual"]) for e in rejected] == [("max_position_manual", True)]
    op = run.ops[0]
    assert (op["ts"], op["data"]["status"], op["data"]["result"]) == (t, "refused", f"buy BTCUSDT $150.00: {text}")
    assert not run.of("order", at=t) and not run.of("intent", at=t)

    # $99 is within the rule: it goes out whole (no fire), as one market order filled at the close
    t_ok = ms(BTC_BUY)
    assert not run.of("fire", "max_position_manual", at=t_ok)
    intent = run.of("intent", "operator", at=t_ok)
    assert len(intent) == 1 and intent[0]["data"]["notional_usd"] == 99 and intent[0]["data"]["side"] == "buy"
    fills = run.of("fill", at=t_ok)
    assert len(fills) == 1 and fills[0]["data"]["price"] == closes("BTCUSDT")[t_ok]

    # counted as a violation: without it, promotion came at the ETH sale; with it, exactly
    # 14 days after the refusal, when it leaves the gate's window (the other gates held since)
    assert [utc(e["ts"]) for e in clean.of("fire", "promote_sniper_to_hunter")] == [ETH_SELL]
    promoted = run.of("fire", "promote_sniper_to_hunter")
    assert [utc(e["ts"]) for e in promoted] == [utc(t + 14 * DAY)] == ["2021-05-05 12:00"]
    assert promoted[0]["data"]["values"]["position_rule_violations_14d"] == 0
    # the trades themselves went the same way in both runs
    assert [(e["ts"], e["data"]["pnl_usd"]) for e in run.of("position_closed")] == \
        [(e["ts"], e["data"]["pnl_usd"]) for e in clean.of("position_closed")]


def test_sniper_refuses_a_second_open_position(sniper_runs):
    """max_open_positions: Sniper allows one open position; with BTC held, an ETH buy is
    refused. Such a refusal is not a 5%-rule violation (it does not delay promotion)."""
    run = sniper_runs["violation"]
    assert tier_file(run.config, "sniper")["limits"]["max_open_positions"] == 1
    t = ms(SECOND_POSITION)
    assert holdings(run, "BTCUSDT", t) > 0   # the BTC bought a minute before is open

    fires = run.of("fire", "max_open_positions")
    assert [(e["ts"], e["symbol"]) for e in fires] == [(t, "ETHUSDT")]
    assert fires[0]["data"]["values"] == {"open_positions": 1.0, "order.opens_position": True,
                                          "order.pending_positions": 0.0}
    refused = run.of("refused", "max_open_positions")
    assert [(e["ts"], e["data"]["refused"]) for e in refused] == [(t, "Open positions are at this tier's limit of 1 (orders in flight included).")]
    assert [e["data"]["rule"] for e in run.of("order_rejected", at=t)] == ["max_open_positions"]
    assert not [e for e in run.of("order") if e["symbol"] == "ETHUSDT" and e["ts"] < ms(ETH_BUY)]
    # had it counted, the violation gate would have stayed shut until 14 days after it
    promoted = run.of("fire", "promote_sniper_to_hunter")[0]
    assert promoted["ts"] < t + 14 * DAY


def test_sniper_is_promoted_to_hunter_the_moment_every_gate_holds(sniper_runs):
    """promote_sniper_to_hunter fires once, at the ETH sale: that close makes ETH the second
    pair with a profitable close, the last gate to hold (every other one held already).
    The promotion then waits for the written reflection the rule requires: a 3-word one is
    refused, the 150-word one promotes one tier (to Hunter: Hunter's own gates, with the
    shipped 45 days counted from the promotion, do not hold in this run)."""
    run, first = sniper_runs["clean"], sniper_runs["first"]
    btc, eth = closes("BTCUSDT"), closes("ETHUSDT")
    assert btc[ms(BTC_SELL)] > btc[ms(BTC_BUY)] * 1.1 and eth[ms(ETH_SELL)] > eth[ms(ETH_BUY)] * 1.1
    sniper = tier_file(run.config, "sniper")
    rule = rule_def("promote_sniper_to_hunter")

    fires = run.of("fire", "promote_sniper_to_hunter")
    assert [utc(e["ts"]) for e in fires] == [ETH_SELL]
    fire = fires[0]
    values = fire["data"]["values"]
    assert len(rule["when"]) == 7 and all(gate_holds(c, values, sniper) for c in rule["when"]), values

    # the last gate: profitable pairs. One profitable close per pair; ETH's is this instant
    closed = run.of("position_closed")
    assert [(e["symbol"], utc(e["ts"])) for e in closed] == [("BTCUSDT", BTC_SELL), ("ETHUSDT", ETH_SELL)]
    assert all(e["data"]["pnl_usd"] > 0 for e in closed)
    assert closed[1]["seq"] < fire["seq"] and values["profitable_pairs_30d"] == 2
    # ... every other gate held before it
    assert first + sniper["promotion"]["min_days_at_tier"] * DAY < ms(ETH_BUY)   # days at tier: since 04-30 20:41
    assert values["days_at_tier"] == pytest.approx((fire["ts"] - first) / DAY)
    assert values["equity_usd"] == pytest.approx(SNIPER_EQUITY + sum(e["data"]["pnl_usd"] for e in closed))
    # equity was over $2,000 before the sale already (the sale applies after the BTC candle
    # of 23:00, so ETH was still marked at its 22:59 close)
    before = ms(ETH_SELL)
    cash = SNIPER_EQUITY - sum((f["data"]["notional_usd"] if f["data"]["side"] == "buy" else -f["data"]["notional_usd"])
                               + f["data"]["fee_usd"] for f in run.of("fill") if f["ts"] < before)
    assert cash + holdings(run, "ETHUSDT", before) * eth[before - MINUTE] >= sniper["promotion"]["min_equity_usd"]
    traded = [e["data"] for e in run.of("day_closed") if e["data"]["traded"] and e["ts"] <= fire["ts"]]
    assert len(traded) == 1 and traded[0]["pnl_usd"] > 0         # the 04-26 day: 100% profitable days
    assert values["profitable_days_pct_20"] == 100
    # measured: every order's decision-to-send time (paper: event time, 0 for an order sent when decided)
    assert values["fast_orders_pct_30d"] == 100 and len(run.of("order")) == 4
    sent = [e for e in run.of("order_sent") if e["ts"] <= fire["ts"]]
    assert values["sent_orders_30d"] == len(sent) == 4 and {e["data"]["latency_ms"] for e in sent} == {0.0}
    assert not run.of("refused") and values["position_rule_violations_14d"] == 0

    # the promotion waits for the reflection, then takes one tier step when it arrives
    assert [(utc(e["ts"]), e["data"]) for e in run.of("tier")] == [(REFLECTION, {"tier": "hunter"})]
    assert run.actions("promote_sniper_to_hunter") == [
        {"action": "promote", "tier": "sniper", "to": "hunter", "waits_for": "reflection", "min_words": 150},
        {"action": "require", "kind": "reflection", "min_words": 150},
        {"action": "notify", "severity": "info", "channels": ["console", "log"],
         "text": "Every gate held for Hunter. Write what got you here (genesis reflect, at least 150 words) and "
                 "the promotion takes effect."},
        {"action": "promote", "reflection_words": 150, "from": "sniper", "tier": "hunter"}]
    reflections = [(utc(o["ts"]), o["data"]["status"], o["data"]["result"]) for o in run.ops if o["rule"] == "reflect"]
    assert reflections == [
        (SHORT_REFLECTION, "refused", "the reflection has 3 words and at least 150 are asked for (promotion to "
                                      "hunter (promote_sniper_to_hunter) waits for a written reflection of at least "
                                      "150 words (genesis reflect)); nothing was recorded"),
        (REFLECTION, "applied", "reflection of 150 words recorded: promoted to hunter")]
    assert run.report["tier"] == "hunter"
    assert run.report["rule_firings"]["promote_sniper_to_hunter"] == 1
    assert "promote_hunter_to_strategist" not in run.report["rule_firings"]


def test_tier_command_shows_where_the_scripted_replay_ended(sniper_runs):
    run = sniper_runs["clean"]
    out = cli("tier", "--db", f"sqlite:///{run.db}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("tier hunter (rank 2 of 3)"), out.stdout
    assert f"equity ${run.report['final_equity_usd']:,.2f}" in out.stdout.splitlines()[0]
    assert "promotion to strategist (promote_hunter_to_strategist)" in out.stdout


# =========================================================================== Hunter -> Strategist
HUNTER_EQUITY = 9_950   # a little under the Hunter -> Strategist equity gate ($10,000)
HUNTER_PROMOTION = {
    # 45 days in the shipped file; the data has 30.
    "min_days_at_tier": 10,
    # 5 in the shipped file; the data has two pairs. A pair counts when its daily returns
    # correlate below 0.5 with every other pair's: BTC and ETH do after the day closes of
    # 2021-05-01 to 05-05 (checked below), so both count then.
    "min_uncorrelated_pairs": 2,
    # 10% in the shipped file: Hunter holds at most 3 positions of 5% of equity, so a 10%
    # account drawdown needs the coins held to lose two thirds of their value. The account
    # goes through (and recovers from) 0.19% while holding ETH on 05-03.
    "min_recovered_drawdown_pct": 0.15,
    # 0.5% in the shipped file: the iceberg buying BTC on 04-26 rests at the touch for five
    # minutes of a rising market; its fills average about 0.7% over the mid at its decision
    "max_market_impact_pct": 1.0,
}


@pytest.fixture(scope="module")
def hunter_run(tmp_path_factory, two_pairs_to_may6):
    files = two_pairs_to_may6
    first = first_event(files)
    tmp = tmp_path_factory.mktemp("hunter_promotion")
    # the trader accepts 5% of slippage in an iceberg (0.5% in the shipped file): BTC rose
    # more than 0.5% within the minutes its 04-26 buy was filling, which would abort it
    iceberg = {**tier_file(REPO, "hunter")["execution"]["iceberg"], "abort_slippage_pct": 5}
    execution = {**tier_file(REPO, "hunter")["execution"], "iceberg": iceberg}
    config = config_copy(tmp, equity=HUNTER_EQUITY,
                         tier_edits={"hunter": {"promotion": HUNTER_PROMOTION, "execution": execution}})
    script = [order(first, BTC_BUY, "buy", "BTCUSDT", 495), order(first, BTC_SELL, "sell", "BTCUSDT", 100_000),
              order(first, ETH_BUY, "buy", "ETHUSDT", 495), order(first, ETH_SELL, "sell", "ETHUSDT", 100_000),
              command(first, REFLECTION, "reflect", text=REFLECTION_TEXT)]
    run = replay(tmp, "hunter", config, files, script)
    run.first = first
    return run


def daily_log_returns(symbol: str, until: int) -> list[float]:
    """What the account records at each UTC midnight before `until`: ln(last close before
    midnight / last close before the previous midnight), the first day from the first close."""
    out, day_open, last, day = [], None, None, None
    for ts, close in sorted(closes(symbol).items()):
        if ts > until:
            break
        if day is not None and ts // DAY > day:
            for _ in range(ts // DAY - day):
                out.append(math.log(last / day_open))
                day_open = last
        day = ts // DAY
        day_open = close if day_open is None else day_open
        last = close
    return out


def pearson(a: list, b: list) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_hunter_is_promoted_to_strategist_the_moment_every_gate_holds(hunter_run):
    """promote_hunter_to_strategist (replay started at --tier hunter with $9,950): the BTC
    trade on 04-26 makes the first profitable day (Sharpe gate); from 05-01 BTC and ETH
    count as uncorrelated; holding ETH on 05-03 lifts equity over $10,000; the last gate
    is the recovered drawdown, which holds at the first recovery from a dip of at least
    0.15%: the promotion fires at that moment, once, with the reflection required."""
    run = hunter_run
    hunter = tier_file(run.config, "hunter")
    rule = rule_def("promote_hunter_to_strategist")
    recovered = run.of("drawdown_recovered")
    deep = [e for e in recovered if e["data"]["depth_pct"] >= HUNTER_PROMOTION["min_recovered_drawdown_pct"]]
    assert deep and utc(deep[0]["ts"]) == "2021-05-03 16:40"

    fires = run.of("fire", "promote_hunter_to_strategist")
    assert [e["ts"] for e in fires] == [deep[0]["ts"]]
    fire = fires[0]
    assert deep[0]["seq"] < fire["seq"]
    values = fire["data"]["values"]
    assert len(rule["when"]) == 7 and all(gate_holds(c, values, hunter) for c in rule["when"]), values
    assert values["deepest_recovered_drawdown_pct"] == pytest.approx(deep[0]["data"]["depth_pct"])

    # every other gate, re-derived from the journal and the candles
    assert values["days_at_tier"] == pytest.approx((fire["ts"] - run.first) / DAY) and values["days_at_tier"] >= 10
    pnl = [e["data"]["pnl_pct"] for e in run.of("day_closed") if e["ts"] <= fire["ts"]]
    mean = sum(pnl) / len(pnl)
    std = math.sqrt(sum((p - mean) ** 2 for p in pnl) / len(pnl))
    assert values["sharpe_30d"] == pytest.approx(mean / std * 19.1) and values["sharpe_30d"] > 1.5
    btc_r, eth_r = daily_log_returns("BTCUSDT", fire["ts"]), daily_log_returns("ETHUSDT", fire["ts"])
    assert len(btc_r) == len(eth_r) == 13 and abs(pearson(btc_r, eth_r)) < 0.5   # both pairs count
    assert abs(pearson(btc_r[:10], eth_r[:10])) >= 0.5 > abs(pearson(btc_r[:11], eth_r[:11]))  # from 05-01 00:00
    assert values["uncorrelated_pairs_30d"] == 2
    cash = HUNTER_EQUITY - sum((f["data"]["notional_usd"] if f["data"]["side"] == "buy" else -f["data"]["notional_usd"])
                               + f["data"]["fee_usd"] for f in run.of("fill") if f["ts"] <= fire["ts"])
    eth_held = holdings(run, "ETHUSDT", fire["ts"] + 1)
    assert values["equity_usd"] == pytest.approx(cash + eth_held * closes("ETHUSDT")[fire["ts"]])
    assert values["equity_usd"] >= 10_000
    assert values["sliced_orders_pct_30d"] == 100   # every execution over $200 went out as an iceberg
    assert {e["data"]["algo"] for e in run.of("intent")} == {"iceberg"}
    # measured from the executions the journal holds: slices sent, fills against the arrival mid
    done = [e["data"] for e in run.of("execution_done") if e["seq"] < fire["seq"]]
    assert values["big_executions_30d"] == len([d for d in done if d["sent_usd"] > 200]) == len(done) >= 2
    assert all(d["slices"] == d["planned_slices"] >= 3 for d in done)
    assert values["max_impact_pct_30d"] == pytest.approx(max(d["impact_pct"] for d in done))
    assert values["filled_executions_30d"] == len(done)

    # the promotion waits for the reflection; Strategist is the top tier
    assert [(utc(e["ts"]), e["data"]) for e in run.of("tier")] == [(REFLECTION, {"tier": "strategist"})]
    assert run.actions("promote_hunter_to_strategist") == [
        {"action": "promote", "tier": "hunter", "to": "strategist", "waits_for": "reflection", "min_words": 150},
        {"action": "require", "kind": "reflection", "min_words": 150},
        {"action": "notify", "severity": "info", "channels": ["console", "log"],
         "text": "Every gate held for Strategist. Write what got you here (genesis reflect, at least 150 words) "
                 "and the promotion takes effect."},
        {"action": "promote", "reflection_words": 150, "from": "hunter", "tier": "strategist"}]
    assert run.report["tier"] == "strategist" and run.report["rule_firings"]["promote_hunter_to_strategist"] == 1


# =========================================================================== positions moving together
SD_BUYS = ("2021-04-21 11:51", "2021-04-21 11:52", "2021-04-21 11:55")   # BTC, ETH, BTC again
SD_UNTIL = "2021-04-22 13:00"   # a day and an hour: past the demotion rule's 24 h cooldown


def same_direction(files, held_from: dict) -> list[tuple]:
    """[(event time, symbol, same_direction_pct)] after each candle, as the account computes
    it: each held symbol's move is its latest close minus its close 15 minutes before (the
    last 16 one-minute closes); the share of held symbols moving the majority's way, when
    at least two have moved. `held_from`: {symbol: event time its position opens}."""
    events = sorted((ts, i, sym, c) for i, sym in enumerate(("BTCUSDT", "ETHUSDT"))
                    for ts, c in closes(sym).items() if ts <= ms(SD_UNTIL))
    hist: dict = {}
    out = []
    for ts, _, sym, close in events:
        hist.setdefault(sym, deque(maxlen=16)).append(close)
        moves = [hist[s][-1] - hist[s][0] for s, t0 in held_from.items() if ts >= t0 and len(hist.get(s, ())) >= 2]
        if len(moves) < 2:
            pct = 0.0
        else:
            pct = max(sum(m > 0 for m in moves), sum(m < 0 for m in moves)) / len(moves) * 100
        out.append((ts, sym, pct))
    return out


# these scenarios run Hunter on a small account; the copies move the capital bands down
# (Sniper $50-100, Hunter from $100) so that equity_below_tier_band and its demotion stay out
SMALL_BANDS = {"sniper": {"capital_usd": {"min": 50, "max": 100}}, "hunter": {"capital_usd": {"min": 100}}}


def small_bands(edits: dict | None = None) -> dict:
    """SMALL_BANDS with further tier edits ({tier: {section: values}})."""
    out = {tier: {k: dict(v) for k, v in sections.items()} for tier, sections in SMALL_BANDS.items()}
    for tier, sections in (edits or {}).items():
        for section, values in sections.items():
            out.setdefault(tier, {}).setdefault(section, {}).update(values)
    return out


@pytest.fixture(scope="module")
def same_direction_runs(tmp_path_factory):
    """Hunter, $1,000: buy BTC at 11:51 and ETH at 11:52, when over 15 minutes BTC had
    fallen and ETH risen (50% the same way), BTC again at 11:55 (still 50%), and BTC once
    more at the first moment both move the same way (computed from the candles: 12:02, both
    up). Once with the
    shipped configuration, once with Hunter's demotion.max_same_direction_pct at 100."""
    files = feed(tmp_path_factory.mktemp("feed_0421"), ("BTCUSDT", "ETHUSDT"), until=SD_UNTIL)
    first = first_event(files)
    series = same_direction(files, {"BTCUSDT": ms(SD_BUYS[0]), "ETHUSDT": ms(SD_BUYS[1])})
    together = next(ts for ts, _, pct in series if pct > 80)
    # $15 each: three BTC buys stay within the 5% rule ($50 of $1,000, position included)
    script = [order(first, SD_BUYS[0], "buy", "BTCUSDT", 15), order(first, SD_BUYS[1], "buy", "ETHUSDT", 15),
              order(first, SD_BUYS[2], "buy", "BTCUSDT", 15), order(first, utc(together), "buy", "BTCUSDT", 15)]
    runs = {"series": series, "together": together}
    for name, edits in (("shipped", None),
                        # a share cannot exceed 100%, so demote_same_direction never fires
                        ("no_demotion", {"hunter": {"demotion": {"max_same_direction_pct": 100}}})):
        tmp = tmp_path_factory.mktemp(f"same_direction_{name}")
        config = config_copy(tmp, equity=1000, tier_edits=small_bands(edits))
        runs[name] = replay(tmp, "hunter", config, files, script)
    return runs


def pct_at(series, ts: int, symbol: str = "BTCUSDT") -> float:
    return next(p for t, s, p in series if t == ts and s == symbol)


def test_correlation_guard_refuses_a_buy_while_positions_move_together(same_direction_runs):
    """correlation_guard on Hunter (max_same_direction_pct 60): with BTC and ETH held, a
    buy while they move apart (50%) passes; a buy once both move the same way (100%) is
    refused with the rule's text.

    With the shipped configuration Hunter's demotion at >80% the same way fires first and
    masks the guard (next test): in this copy the demotion threshold is 100, so the guard
    is what answers."""
    runs = same_direction_runs
    run, series, together = runs["no_demotion"], runs["series"], runs["together"]
    hunter = tier_file(run.config, "hunter")
    assert hunter["limits"]["max_same_direction_pct"] == 60 and hunter["limits"]["max_open_positions"] == 3
    # the candles: apart at the third buy, together at the fourth (as the BTC candle of that minute is in)
    third = ms(SD_BUYS[2])
    assert pct_at(series, third) == 50 and pct_at(series, together) == 100
    assert utc(together) == "2021-04-21 12:02"

    assert [o["data"]["status"] for o in run.ops] == ["applied", "applied", "applied", "refused"]
    assert len(run.of("intent", "operator", at=third)) == 1 and not run.of("fire", "correlation_guard", at=third)
    fires = run.of("fire", "correlation_guard")
    assert [(e["ts"], e["symbol"]) for e in fires] == [(together, "BTCUSDT")]
    assert fires[0]["data"]["values"] == {"open_positions": 2.0, "order.opens_position": True,
                                          "order.pending_positions": 0.0, "order.same_direction_pct": 100.0}
    text = "Open positions are moving together (100% the same way); a new one would add the same risk."
    assert [e["data"]["refused"] for e in run.of("refused", "correlation_guard")] == [text]
    assert run.ops[3]["data"]["result"] == f"buy BTCUSDT $15.00: {text}"
    assert "demote_same_direction" not in run.report["rule_firings"] and run.report["tier"] == "hunter"


def test_positions_moving_together_demote_hunter_and_mask_the_guard(same_direction_runs):
    """demote_same_direction (shipped Hunter: demotion over 80% the same way) fires at the
    first candle at which BTC and ETH move the same way, and steps down to Sniper. A buy at
    that same minute is then refused by Sniper's one-position limit, not by the correlation
    guard: with two positions the share is 50% or 100%, and 100% demotes first, so the guard
    cannot fire on Hunter here (a share between 60% and 80%, e.g. 2 of 3, would need a third
    symbol; the data has two). At the lowest tier the next firing halts instead."""
    runs = same_direction_runs
    run, series, together = runs["shipped"], runs["series"], runs["together"]
    assert tier_file(run.config, "hunter")["demotion"]["max_same_direction_pct"] == 80

    fires = run.of("fire", "demote_same_direction")
    assert fires[0]["ts"] == together and fires[0]["data"]["values"] == {"same_direction_pct": 100.0}
    assert all(p <= 80 for ts, _, p in series if ts < together)
    assert [(e["ts"], e["data"]) for e in run.of("tier")] == [(together, {"tier": "sniper"})]
    assert run.of("tier")[0]["seq"] > fires[0]["seq"]
    assert run.actions("demote_same_direction", at=together) == [
        {"action": "demote", "from": "hunter", "tier": "sniper"},
        {"action": "notify", "severity": "critical", "channels": ["console", "log", "pager"],
         "text": "100% of positions move the same way. Genesis is stepping down one tier."}]

    # the buy at that minute: refused by Sniper's limit; correlation_guard never fires
    refused = run.of("refused", at=together)
    assert [(e["rule"], e["data"]["refused"]) for e in refused] == \
        [("max_open_positions", "Open positions are at this tier's limit of 1 (orders in flight included).")]
    assert "correlation_guard" not in run.report["rule_firings"]

    # the share falls back to 50% (the rule resolves), then rises again: already at the lowest tier;
    # the rule's 24 h cooldown allows one demotion (and one page) a day
    after = [(ts, p) for ts, _, p in series if ts > together]
    back = next(ts for ts, p in after if p <= 80)
    again = next(ts for ts, p in after if ts >= together + 86_400_000 and p > 80)
    assert [e["ts"] for e in run.of("resolve", "demote_same_direction")][:1] == [back]
    assert fires[1]["ts"] == again
    assert run.actions("demote_same_direction", at=again)[0] == {
        "action": "demote", "tier": "sniper", "note": "already at the lowest tier: halted instead"}
    halted = [e for e in run.of("state") if e["data"].get("mode") == "HALTED"]
    assert halted[0]["ts"] == again and halted[0]["data"]["holds"] == {"demote_same_direction": "halt"}
    assert run.report["final_state"] == "HALTED" and run.report["tier"] == "sniper"


# =========================================================================== a strategy's orders
def first_band_entry(lookback: int, sigma: float) -> tuple[int, float]:
    """The first BTC close below mean - sigma * std of the last `lookback` closes (itself included)."""
    window: deque = deque(maxlen=lookback)
    for ts, close in sorted(closes("BTCUSDT").items()):
        window.append(close)
        if len(window) == lookback:
            mean = sum(window) / lookback
            std = math.sqrt(max(sum(c * c for c in window) / lookback - mean * mean, 0.0))
            if std > 0 and close < mean - sigma * std:
                return ts, close
    raise AssertionError("no entry")


def test_strategy_entries_are_cut_down_to_the_5pct_rule(tmp_path):
    """max_position_strategy: the shipped mean-reversion instance (Hunter unlocks it) sized
    at 8% of equity (size_pct: 5 in the shipped file) asks for $80 of $1,000; the rule cuts
    each entry to 5% of equity instead of refusing it; the market-state size multiplier
    then applies to the cut size. Exits are not cut."""
    files = feed(tmp_path, ("BTCUSDT",), until="2021-04-21 00:00")
    config = config_copy(tmp_path, equity=1000, strategies={"btc_mean_reversion": {"size_pct": 8}})
    params = next(inst["params"] for inst in yaml.safe_load((config / "strategies.yaml").read_text())["strategies"]
                  if inst["id"] == "btc_mean_reversion")
    run = replay(tmp_path, "hunter", config, files, [])
    entry_ts, entry_price = first_band_entry(params["lookback"], params["band_sigma"])
    assert utc(entry_ts) == "2021-04-20 21:06"

    entries = [e for e in run.of("intent", "btc_mean_reversion") if e["data"]["opens_position"]]
    fires = run.of("fire", "max_position_strategy")
    assert entries and [e["ts"] for e in fires] == [e["ts"] for e in entries]   # every entry is cut
    assert fires[0]["ts"] == entry_ts
    assert fires[0]["data"]["values"] == {"equity_usd": 1000.0, "order.manual": False,
                                          "order.exposure_usd": 80.0, "order.opens_position": True}
    for fire, entry in zip(fires, entries):
        asked = fire["data"]["values"]["order.exposure_usd"]   # flat at each entry: the order alone
        equity = fire["data"]["values"]["equity_usd"]
        assert asked == pytest.approx(equity * 0.08)
        data = entry["data"]
        assert data["notional_usd"] == round(asked, 6)
        assert data["resized_to"] == pytest.approx(equity * 5 / 100, abs=1e-6)
        factor = product(run.size_slots(entry["seq"]).values())
        assert data.get("size_factor", 1.0) == factor
        assert data["notional_final"] == pytest.approx(data["resized_to"] * factor, abs=1e-5)
    first_order = run.of("order", at=entry_ts)
    assert first_order[0]["data"]["decision_price"] == entry_price
    assert first_order[0]["data"]["qty"] * entry_price == pytest.approx(entries[0]["data"]["notional_final"])
    exits = [e["data"] for e in run.of("intent", "btc_mean_reversion") if not e["data"]["opens_position"]]
    assert exits and not any("resized_to" in d for d in exits)
    assert run.report["rule_firings"]["max_position_strategy"] == len(entries)


# =========================================================================== losing days cut sizes
LOSING_DAYS = (("2021-04-21 00:05", "2021-04-21 12:00"), ("2021-04-22 00:05", "2021-04-22 20:00"))
WINNING_DAY = ("2021-04-23 08:00", "2021-04-23 20:00")
NEXT_DAY = ("2021-04-24 12:00", "2021-04-24 20:00")


def test_two_losing_days_cut_sizes_until_a_winning_day(tmp_path):
    """losing_days_size_cut on Sniper: a $40 BTC round trip on 04-21 and on 04-22, each
    bought above where it is sold, makes two losing days; at the second day's close (04-23
    00:00) sizes are cut by tier.limits.losing_days_size_factor (0.5). A buy on 04-23 goes
    out at half size (times the market-state factor); that trade wins, and at that day's
    close the cut is lifted: the 04-24 buy is not cut."""
    btc = closes("BTCUSDT")
    assert all(btc[ms(sell)] < btc[ms(buy)] for buy, sell in LOSING_DAYS)
    assert btc[ms(WINNING_DAY[1])] > btc[ms(WINNING_DAY[0])] * 1.05
    files = feed(tmp_path, ("BTCUSDT",), until="2021-04-25 01:00")
    first = first_event(files)
    script = [order(first, t, side, "BTCUSDT", 40 if side == "buy" else 1000)
              for pair in (*LOSING_DAYS, WINNING_DAY, NEXT_DAY) for t, side in zip(pair, ("buy", "sell"))]
    config = config_copy(tmp_path)
    factor = tier_file(config, "sniper")["limits"]["losing_days_size_factor"]
    assert factor == 0.5
    run = replay(tmp_path, "sniper", config, files, script)

    days = {utc(e["ts"]): e["data"] for e in run.of("day_closed")}
    assert days["2021-04-22 00:00"]["pnl_usd"] < 0 and days["2021-04-23 00:00"]["pnl_usd"] < 0
    assert days["2021-04-24 00:00"]["pnl_usd"] > 0

    fires = run.of("fire", "losing_days_size_cut")
    assert [(utc(e["ts"]), e["data"]["values"]) for e in fires] == [("2021-04-23 00:00", {"losing_days_streak": 2.0})]
    assert run.actions("losing_days_size_cut", at=fires[0]["ts"]) == [
        {"action": "scale_size", "slot": "losing_days", "factor": factor},
        {"action": "notify", "severity": "warning", "channels": ["console", "log"],
         "text": "Two losing days in a row. Sizes are reduced until a winning day."}]
    resolves = run.of("resolve", "losing_days_size_cut")
    assert [(utc(e["ts"]), e["data"]["values"]) for e in resolves] == [("2021-04-24 00:00", {"losing_days_streak": 0.0})]
    assert run.actions("losing_days_size_cut", at=resolves[0]["ts"]) == [
        {"action": "scale_size", "slot": "losing_days", "factor": 1.0}]

    buys = [e for e in run.of("intent", "operator") if e["data"]["side"] == "buy"]
    assert [utc(e["ts"]) for e in buys] == [d[0] for d in (*LOSING_DAYS, WINNING_DAY, NEXT_DAY)]
    for buy in buys:
        slots = run.size_slots(buy["seq"])   # the multipliers in force, from the journal's actions
        expected = product(slots.values())
        assert buy["data"].get("size_factor", 1.0) == expected
        assert buy["data"]["notional_final"] == pytest.approx(40 * expected)
        assert ("losing_days" in slots) == (utc(buy["ts"]) == WINNING_DAY[0])
    cut = next(b for b in buys if utc(b["ts"]) == WINNING_DAY[0])
    assert run.size_slots(cut["seq"])["losing_days"] == 0.5
    assert run.report["rule_firings"]["losing_days_size_cut"] == 1


# =========================================================================== override attempts
WRONG_PHRASE = "the confirmation phrase does not match (genesis.yaml safety.override_phrase); nothing was changed"
OVERRIDES = (("2021-04-21 01:00", "let me trade", "refused", WRONG_PHRASE),
             ("2021-04-21 02:00", PHRASE, "applied", "override accepted: every halt and lock is lifted; the next "
                                                     "override is possible after 24h (at 2021-04-22 02:00 UTC)"),
             ("2021-04-21 03:00", PHRASE, "refused", "an override was accepted within the last 24h; the next is "
                                                     "possible at 2021-04-22 02:00 UTC (in 23.0 h); nothing was changed"),
             ("2021-04-21 04:00", "I accept the risk", "refused", WRONG_PHRASE),   # a wrong phrase starts no cooldown
             ("2021-04-21 05:00", "please", "refused", WRONG_PHRASE),
             # 25 h after the accepted one: its 24-hour cooldown is over
             ("2021-04-22 03:00", PHRASE, "applied", "override accepted: every halt and lock is lifted; the next "
                                                     "override is possible after 24h (at 2021-04-23 03:00 UTC)"))


@pytest.fixture(scope="module")
def override_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("overrides")
    files = feed(tmp, ("BTCUSDT",), until="2021-04-22 04:00")
    first = first_event(files)
    script = [command(first, when, "override", phrase=phrase) for when, phrase, _, _ in OVERRIDES]
    return replay(tmp, "hunter", config_copy(tmp), files, script)


def test_five_override_attempts_in_24h_demote_hunter_to_sniper(override_run):
    """override_attempt_logged journals and notifies every attempt, accepted or not (wrong
    phrase; right phrase; right phrase inside the 24 h cooldown; ...). The fifth within
    24 h trips demote_override_attempts: Hunter steps down to Sniper and a reflection is
    required. As attempts leave the 24-hour window the rule resolves; the next accepted
    override is possible 24 h after the last."""
    run = override_run
    assert tier_file(run.config, "hunter")["demotion"]["override_attempts_24h"] == 5
    assert [(utc(o["ts"]), o["data"]["status"], o["data"]["result"]) for o in run.ops] == \
        [(when, status, result) for when, _, status, result in OVERRIDES]

    logged = run.of("fire", "override_attempt_logged")
    assert [utc(e["ts"]) for e in logged] == [when for when, *_ in OVERRIDES]
    notes = [a for e in logged for a in run.actions("override_attempt_logged", at=e["ts"])]
    assert [n["text"] for n in notes] == [
        "Emergency override " + ("accepted: halts and locks are lifted and a cooldown starts" if status == "applied"
                                 else "refused: nothing was changed") + ". Every attempt is logged."
        for _, _, status, _ in OVERRIDES]
    assert {n["severity"] for n in notes} == {"warning"}

    fifth = ms(OVERRIDES[4][0])
    fires = run.of("fire", "demote_override_attempts")
    assert [(e["ts"], e["data"]["values"]) for e in fires] == [(fifth, {"override_attempts_24h": 5.0})]
    assert [(e["ts"], e["data"]) for e in run.of("tier")] == [(fifth, {"tier": "sniper"})]
    assert run.actions("demote_override_attempts") == [
        {"action": "demote", "from": "hunter", "tier": "sniper"},
        {"action": "require", "kind": "reflection", "min_words": 150},
        {"action": "notify", "severity": "critical", "channels": ["console", "log", "pager"],
         "text": "5 override attempts in 24 hours. Genesis is stepping down one tier."}]
    # the first attempt leaves the window 24 h later: 4 remain
    assert [(e["ts"], e["data"]["values"]) for e in run.of("resolve", "demote_override_attempts")] == \
        [(ms(OVERRIDES[0][0]) + DAY, {"override_attempts_24h": 4.0})]
    assert run.report["tier"] == "sniper" and run.report["rule_firings"]["override_attempt_logged"] == 6
    # each accepted override lifted every halt: the drawdown ladder measures from the equity then
    accepted = [ms(when) for when, _, status, _ in OVERRIDES if status == "applied"]
    assert [e["ts"] for e in run.of("fire", "drawdown_reference_after_override")] == accepted
    assert {a["action"] for a in run.actions("drawdown_reference_after_override")} == {"rebase_peak"}


def test_an_override_attempt_is_logged_before_the_demotion_it_causes(override_run):
    fifth = ms(OVERRIDES[4][0])
    logged = override_run.of("fire", "override_attempt_logged", at=fifth)
    demoted = override_run.of("fire", "demote_override_attempts", at=fifth)
    assert logged and demoted
    assert logged[0]["seq"] < demoted[0]["seq"]


# =========================================================================== three heavy losing days
# Each day BTC is bought at its highest close (in a NORMAL market, so no market-state size
# cut) before that day's low and sold at the low (closes picked from the candles).
HEAVY_DAYS = (("2021-05-17 11:44", "2021-05-17 17:26"),    # -7.9%
              ("2021-05-18 06:12", "2021-05-18 23:10"),    # -7.5%
              ("2021-05-19 09:14", "2021-05-19 13:10"))    # -25.7%
HEAVY_EQUITY = 200
TARGET_LOSS_PCT = 5.15


def test_three_heavy_losing_days_demote_hunter_to_sniper(tmp_path):
    """demote_losing_days: three days in a row each losing more than
    tier.demotion.losing_day_pct (5%) of the day's opening equity demote Hunter to Sniper
    at the third day's close, with a reflection required.

    Under the shipped limits a manual order is at most 5% of equity, and a 5%-of-equity
    loss from one 5% position needs the coin to lose everything in a day (only piling many
    orders into one position could get there; the data has no three days in a row that
    would allow it with a few). So this copy loosens Hunter's max_position_pct to 100, as a
    trader would (and as test_scenarios_risk does for the 15% day). Every other limit is the
    shipped one, and the window is narrow: three days of just over 5% add up to ~14.6%,
    right under the 15% hard stop (hard_stop_drawdown) that would close and halt everything
    first. So each position is sized from the candles to lose 5.15% of the day's equity.
    $200 of equity keeps each order at most Hunter's $200 iceberg threshold (one market order
    filled at the close) and every loss under Hunter's dollar limits (daily loss $100,
    warning $100, info $50). After two losing days losing_days_size_cut halves sizes, so the
    third day asks for twice the size it needs."""
    btc = closes("BTCUSDT")
    config = config_copy(tmp_path, equity=HEAVY_EQUITY,
                         tier_edits=small_bands({"hunter": {"limits": {"max_position_pct": 100}}}))
    hunter = tier_file(config, "hunter")
    files = feed(tmp_path, ("BTCUSDT",))
    first = first_event(files)
    script, equity, expected = [], float(HEAVY_EQUITY), []
    for day, (buy, sell) in enumerate(HEAVY_DAYS):
        kept = btc[ms(sell)] / btc[ms(buy)]
        loss_per_usd = (1 - kept) + 0.001 * (1 + kept)       # price move plus 0.1% fees each way
        size = TARGET_LOSS_PCT / 100 * equity / loss_per_usd
        cut = hunter["limits"]["losing_days_size_factor"] if day == 2 else 1.0
        script += [order(first, buy, "buy", "BTCUSDT", round(size / cut, 2)),
                   order(first, sell, "sell", "BTCUSDT", 10_000)]
        expected.append(cut)
        equity -= size * loss_per_usd
    run = replay(tmp_path, "hunter", config, files, script)

    buys = [e for e in run.of("intent", "operator") if e["data"]["side"] == "buy"]
    assert [b["data"].get("size_factor", 1.0) for b in buys] == expected
    assert "losing_days" in run.size_slots(buys[2]["seq"])
    closes_at = {utc(e["ts"]): e["data"] for e in run.of("day_closed")}
    heavy = [closes_at[d] for d in ("2021-05-18 00:00", "2021-05-19 00:00", "2021-05-20 00:00")]
    limit = hunter["demotion"]["losing_day_pct"]
    assert limit == 5 and all(-5.3 < d["pnl_pct"] < -limit for d in heavy), heavy
    # independent: each day's loss is that day's round trip (bought and sold the same day)
    for (buy, _), d in zip(HEAVY_DAYS, heavy):
        day = [f["data"] for f in run.of("fill") if f["ts"] // DAY == ms(buy) // DAY]
        assert d["pnl_usd"] == pytest.approx(sum((-f["notional_usd"] if f["side"] == "buy" else f["notional_usd"])
                                                 - f["fee_usd"] for f in day))

    fires = run.of("fire", "demote_losing_days")
    assert [(utc(e["ts"]), e["data"]["values"]) for e in fires] == \
        [("2021-05-20 00:00", {"big_losing_days_streak": 3.0})]
    assert [(utc(e["ts"]), e["data"]) for e in run.of("tier")] == [("2021-05-20 00:00", {"tier": "sniper"})]
    assert run.actions("demote_losing_days") == [
        {"action": "demote", "from": "hunter", "tier": "sniper"},
        {"action": "require", "kind": "reflection", "min_words": 150},
        {"action": "notify", "severity": "critical", "channels": ["console", "log", "pager"],
         "text": "Several heavy losing days in a row. Genesis is stepping down one tier."}]
    # two days in: the size cut; and the hard stop never tripped
    assert [utc(e["ts"]) for e in run.of("fire", "losing_days_size_cut")] == ["2021-05-19 00:00"]
    assert run.report["max_drawdown_pct"] < hunter["limits"]["hard_stop_drawdown_pct"]
    assert "hard_stop_drawdown" not in run.report["rule_firings"]
    assert run.report["tier"] == "sniper"


# =========================================================================== DEAD market
def test_market_dead_never_fires_on_these_candles(tmp_path):
    """market_dead_enter needs atr_rank_24h <= 10 and volume_z_60m <= -1 (and a NORMAL
    market) to hold for 15 minutes; on these 30 days it never does, so neither it nor
    market_dead_exit (which needs a DEAD market) fires. To show how close it comes, the
    configuration copy adds a probe rule with the same condition and no `for:` (it only
    notifies): its firing spans, per symbol, are the stretches the condition held for that
    symbol, at most 7 minutes (ETHUSDT)."""
    config = config_copy(tmp_path)
    dead = rule_def("market_dead_enter", config)
    assert dead["for"] == "15m"
    probe = {"id": "dead_condition_probe", "stage": "market_state", "when": dead["when"],
             "then": [{"notify": "the DEAD condition holds"}]}
    path = config / "rules" / "market_state.yaml"
    book = yaml.safe_load(path.read_text())
    book["rules"].append(probe)
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    run = replay(tmp_path, "sniper", config, feed(tmp_path, ("BTCUSDT", "ETHUSDT")), [])

    assert "market_dead_enter" not in run.report["rule_firings"]
    assert "market_dead_exit" not in run.report["rule_firings"]
    assert not [a for a in run.of("action") if a["data"].get("set", {}).get("market_state") == "dead"]
    longest = 0
    for symbol in ("BTCUSDT", "ETHUSDT"):   # the probe, like the rule, keeps its state per symbol
        starts = [f for f in run.of("fire", "dead_condition_probe") if f["symbol"] == symbol]
        ends = [f for f in run.of("resolve", "dead_condition_probe") if f["symbol"] == symbol]
        assert len(starts) > 25 and len(ends) >= len(starts) - 1
        bounds = [s["ts"] for s in starts[1:]] + [run.of("engine_started")[0]["ts"] + 31 * DAY]
        assert all(s["ts"] <= e["ts"] <= nxt for s, e, nxt in zip(starts, ends, bounds))
        if len(ends) < len(starts):   # still holding when the data ends
            ends = [*ends, {"ts": max(closes(symbol))}]
        longest = max(longest, *((e["ts"] - s["ts"]) // MINUTE for s, e in zip(starts, ends)))
    spans = [longest]
    assert max(spans) < 15, max(spans)


# --------------------------------------------------------------------------- the capital band
@needs_data
def test_a_10000_usd_account_at_sniper_is_told_it_is_above_the_band_and_stays_sniper(tmp_path):
    """Two days of real BTC candles at --tier sniper with $10,000: the band notice comes
    at the first event, once (it stays firing while equity stays above $2,000), and the
    account stays Sniper: promotion needs its gates, not equity alone."""
    files = feed(tmp_path, until="2021-04-22 00:00")
    run = replay(tmp_path, "sniper", config_copy(tmp_path, equity=10_000), files, [])
    fires = run.of("fire", "equity_above_tier_band")
    assert len(fires) == 1 and fires[0]["ts"] == first_event(files)
    assert fires[0]["data"]["values"] == {"equity_usd": 10_000.0}
    notes = [a["text"] for a in run.actions("equity_above_tier_band") if a["action"] == "notify"]
    assert notes == ["Equity is 10,000 USD, above this tier's band (up to 2000 USD). Its limits stay in force "
                     "until every promotion gate holds; `genesis tier` shows what remains."]
    assert run.report["tier"] == "sniper" and not run.of("fire", "promote_sniper_to_hunter")
    assert run.report["final_state"] == "ACTIVE"


@needs_data
def test_a_hunter_account_24_hours_below_its_band_steps_down_to_sniper(tmp_path):
    """--tier hunter with $1,500 (Hunter's band starts at $2,000): a warning at the first
    event, then after 24 hours below the band one tier down, at that candle; at Sniper
    $1,500 is inside the band, so nothing more is said."""
    files = feed(tmp_path, until="2021-04-22 00:00")
    first = first_event(files)
    run = replay(tmp_path, "hunter", config_copy(tmp_path, equity=1_500), files, [])
    warn = run.of("fire", "equity_below_tier_band")
    assert [w["ts"] for w in warn] == [first]
    demote = run.of("fire", "demote_below_tier_band")
    assert [d["ts"] for d in demote] == [first + DAY]
    assert {"action": "demote", "tier": "sniper", "from": "hunter"} in run.actions("demote_below_tier_band")
    assert run.report["tier"] == "sniper"
    assert not run.of("fire", "equity_above_tier_band")
