"""Pre-trade limits count what is in flight (paper mode, through the real engine and the
operator's order command): resting limit orders and scheduled slices count with the
positions, so two orders applied back to back are held to the same limit as one order of
their combined size; a sell with nothing left to sell is refused, and every answer that
says an order was sent names exactly the orders that were sent (and journaled).

Live mode, where fills come after the order leaves, is in test_live_inflight.py."""
from __future__ import annotations

import json
from pathlib import Path

from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.journal import Journal
from genesis.engine.operator import apply_command
from genesis.engine.runner import _apply_queued_commands, open_session

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
MIN = 60_000
BTC, ETH = "BTCUSDT", "ETHUSDT"
FIVE_PCT = "This order is larger than 5% of equity, counted with the position and the orders in flight."


def engine_with(tier: str = "sniper", equity: float = 1000.0) -> Engine:
    journal = Journal("sqlite://")
    journal.open_run(tier, "test", "test", [], "test")
    return Engine(check_config(ROOT), tier, journal=journal, starting_equity=equity, start_ts=T0)


def ticker(ts: int, symbol: str, mid: float) -> Event:
    return Event("book_ticker", ts, symbol, {"bid": mid - 0.01, "bid_qty": 50.0, "ask": mid + 0.01, "ask_qty": 50.0,
                                             "mid": mid, "spread_bps": 0.02 / mid * 1e4})


def order(engine: Engine, side: str, symbol: str, usd: float, limit: float | None = None) -> tuple[str, str]:
    payload = {"side": side, "symbol": symbol, "notional_usd": usd} | ({"limit": limit} if limit else {})
    return apply_command(engine, "order", payload)


def journal(engine: Engine, kind: str) -> list[tuple[str, str, dict]]:
    """(rule, symbol, data) of the journal entries of one kind."""
    engine.journal.flush()
    return [(r.rule, r.symbol, json.loads(r.data)) for r in engine.journal.entries() if r.kind == kind]


def sent_ids(answer: str) -> list[str]:
    """The client ids an answer says were sent: '... N orders sent (g1, g2)...'."""
    inside = answer.split(" sent (", 1)[1].split(")", 1)[0]
    return [cid for cid in inside.split(", ") if cid]


def assert_answers_name_journaled_orders(engine: Engine, answers: list[tuple[str, str]]) -> None:
    journaled = [data["client_id"] for _, _, data in journal(engine, "order")]
    named = [cid for status, text in answers if status == "applied" for cid in sent_ids(text)]
    assert named == journaled, (named, journaled)


# ----------------------------------------------------------------------------- the 5% rule
def test_two_resting_buys_of_one_symbol_are_held_to_the_5pct_rule_together():
    """$1,000: 5% is $50. A resting $30 limit buy is in flight; a second $30 buy of the same
    symbol would make $60, and is refused like one $60 order; $20 more fits (on Hunter,
    whose three positions leave the 5% rule to answer; Sniper refuses adding to one)."""
    engine = engine_with("hunter")          # three positions allowed: only the 5% rule answers
    engine.process(ticker(T0, BTC, 60_000.0))
    first = order(engine, "buy", BTC, 30, limit=59_000.0)
    assert first == ("applied", "buy BTCUSDT $30.00: 1 order sent (g1); resting: g1 (amend or cancel by id)")
    assert BTC not in engine.account.positions               # nothing filled: all of it is in flight
    second = order(engine, "buy", BTC, 30)                   # a market order, right after
    assert second == ("refused", f"buy BTCUSDT $30.00: {FIVE_PCT} Try a smaller size.")
    combined = order(engine, "buy", BTC, 60)
    assert combined[0] == "refused" and FIVE_PCT in combined[1]
    fire = [data for rule, _, data in journal(engine, "fire") if rule == "max_position_manual"][0]
    assert fire["values"]["order.exposure_usd"] == 60.0 and fire["values"]["equity_usd"] == 1000.0
    fits = order(engine, "buy", BTC, 20)                     # $30 resting + $20: exactly 5%
    assert fits[0] == "applied" and sent_ids(fits[1]) == ["g2"]
    assert [(r, d["refused"][:len(FIVE_PCT)]) for r, _, d in journal(engine, "refused")] == \
        [("max_position_manual", FIVE_PCT)] * 2
    assert [d["rule"] for _, _, d in journal(engine, "order_rejected")] == ["max_position_manual"] * 2
    # the resting order fills (a trade prints through it): a position now, no longer in flight
    engine.process(Event("trade", T0 + 1000, BTC, {"price": 58_900.0, "qty": 1.0, "notional_usd": 58_900.0,
                                                   "aggressor": "sell"}))
    assert not engine.sent and engine.account.positions[BTC].qty > 0
    again = order(engine, "buy", BTC, 10)
    assert again[0] == "refused" and FIVE_PCT in again[1]   # the position counts as the order did
    assert_answers_name_journaled_orders(engine, [first, second, combined, fits, again])


def test_scheduled_slices_count_until_they_are_sent():
    """Sniper at $20,000 (5% = $1,000): a $600 order goes out in three slices a second
    apart. The answer names the slice sent and the two scheduled; while they wait they
    count, so another $600 is refused ($200 held + $400 scheduled + $600)."""
    engine = engine_with("sniper", equity=20_000.0)
    engine.process(ticker(T0, BTC, 60_000.0))
    sliced = order(engine, "buy", BTC, 600)
    assert sliced == ("applied", "buy BTCUSDT $600.00: 1 order sent (g1); 2 slices scheduled (g2, g3)")
    refused = order(engine, "buy", BTC, 600)
    assert refused[0] == "refused" and FIVE_PCT in refused[1]
    fire = [data for rule, _, data in journal(engine, "fire") if rule == "max_position_manual"][0]
    assert 1199 < fire["values"]["order.exposure_usd"] <= 1200
    assert [d["client_id"] for _, _, d in journal(engine, "order")] == ["g1"]
    for second in (1, 2):
        engine.process(ticker(T0 + second * 1000, BTC, 60_000.0))
    assert [d["client_id"] for _, _, d in journal(engine, "order")] == ["g1", "g2", "g3"]
    assert 590 < engine.account.positions[BTC].qty * 60_000.0 <= 600 and not engine.sent


# ----------------------------------------------------------------------------- max open positions
def test_a_buy_in_flight_counts_as_an_open_position():
    """Sniper allows one position: with a BTC limit buy resting, an ETH buy is refused (before
    any fill); once the BTC order is cancelled, the ETH buy goes."""
    engine = engine_with("sniper")
    engine.process(ticker(T0, BTC, 60_000.0))
    engine.process(ticker(T0, ETH, 3_000.0))
    btc = order(engine, "buy", BTC, 30, limit=59_000.0)
    eth = order(engine, "buy", ETH, 30)
    assert eth == ("refused", "buy ETHUSDT $30.00: Open positions are at this tier's limit of 1 "
                              "(orders in flight included).")
    fire = [data for rule, _, data in journal(engine, "fire") if rule == "max_open_positions"][0]
    assert fire["values"] == {"order.opens_position": True, "open_positions": 0.0, "order.pending_positions": 1.0}
    assert ETH not in engine.account.positions
    assert apply_command(engine, "cancel", {"client_id": "g1"})[0] == "applied"
    after = order(engine, "buy", ETH, 30)
    assert after[0] == "applied" and engine.account.positions[ETH].qty > 0
    assert_answers_name_journaled_orders(engine, [btc, eth, after])


# ----------------------------------------------------------------------------- correlation guard
def test_the_correlation_guard_counts_a_position_about_to_open():
    """Hunter: BTC held and an ETH limit buy resting, both up over the last minutes (100% the
    same way): another BTC buy is refused by the correlation guard, which reads the pending
    ETH position's move too. With ETH moving the other way (50%) the same buy passes."""
    for eth_later, refused in ((3_100.0, True), (2_900.0, False)):
        engine = engine_with("hunter")
        engine.process(ticker(T0, BTC, 60_000.0))
        engine.process(ticker(T0, ETH, 3_000.0))
        engine.process(ticker(T0 + 5 * MIN, BTC, 61_000.0))
        engine.process(ticker(T0 + 5 * MIN, ETH, eth_later))
        assert order(engine, "buy", BTC, 15)[0] == "applied"
        assert order(engine, "buy", ETH, 15, limit=eth_later - 100)[0] == "applied"
        assert engine.metrics.m["open_positions"] == 1 and engine.metrics.m["same_direction_pct"] == 0
        status, text = order(engine, "buy", BTC, 15)
        fires = [data for rule, _, data in journal(engine, "fire") if rule == "correlation_guard"]
        if refused:
            assert (status, text) == ("refused", "buy BTCUSDT $15.00: Open positions are moving together "
                                                 "(100% the same way); a new one would add the same risk.")
            assert fires[0]["values"] == {"order.opens_position": True, "open_positions": 1.0,
                                          "order.pending_positions": 1.0, "order.same_direction_pct": 100.0}
        else:
            assert status == "applied" and not fires


# ----------------------------------------------------------------------------- sells
def test_a_second_sell_of_what_is_already_being_sold_is_refused_and_journaled():
    """A BTC position, a resting limit sell of all of it, then a market sell: nothing is
    left to sell, so the second is refused with a reason (journaled as a refusal and an
    order_rejected by 'execution'); no order id is used that was not sent."""
    engine = engine_with("sniper")
    engine.process(ticker(T0, BTC, 60_000.0))
    bought = order(engine, "buy", BTC, 40)
    resting = order(engine, "sell", BTC, 40, limit=61_000.0)
    assert resting[0] == "applied" and sent_ids(resting[1]) == ["g2"]
    second = order(engine, "sell", BTC, 40)
    assert second[0] == "refused"
    assert second[1].startswith("sell BTCUSDT $") and ": nothing left to sell: BTCUSDT " in second[1]
    assert second[1].endswith("held, already being sold by g2")
    assert journal(engine, "refused")[-1][0] == "execution"
    assert [(d["rule"], d["reason"]) for _, _, d in journal(engine, "order_rejected")] == \
        [("execution", second[1].split(": ", 1)[1])]
    assert engine.order_seq == 2
    assert_answers_name_journaled_orders(engine, [bought, resting, second])
    # the resting sell ends (cancelled): its quantity is free to sell again
    assert apply_command(engine, "cancel", {"client_id": "g2"})[0] == "applied"
    third = order(engine, "sell", BTC, 40)
    assert third[0] == "applied" and sent_ids(third[1]) == ["g3"] and BTC not in engine.account.positions


def test_commands_queued_back_to_back_on_the_sample_feed(tmp_path):
    """The operator's queue, as `genesis order` fills it: two resting BTC buys, then two
    sells of a position, applied back to back by the running paper engine."""
    session = open_session(ROOT, check_config(ROOT), "hunter", open_feed(sample_paths()),
                           f"sqlite:///{tmp_path / 'j.db'}", "paper")
    for _, event in zip(range(3000), session.feed):
        session.engine.process(event)
    bid = session.engine.exchange.best(BTC)[0]
    for usd in (30, 30):
        session.journal.queue_command("order", {"side": "buy", "symbol": BTC, "notional_usd": usd,
                                                "limit": round(bid * 0.98, 2)})
    session.journal.queue_command("order", {"side": "buy", "symbol": ETH, "notional_usd": 40})
    session.journal.queue_command("order", {"side": "sell", "symbol": ETH, "notional_usd": 40,
                                            "limit": round(session.engine.exchange.best(ETH)[1] * 1.05, 2)})
    session.journal.queue_command("order", {"side": "sell", "symbol": ETH, "notional_usd": 40})
    said: list[str] = []
    _apply_queued_commands(session, said.append)
    assert [line.split(": ", 1)[0] for line in said] == ["operator order", "operator order refused", "operator order",
                                                         "operator order", "operator order refused"], said
    answers = [line.split(": ", 1)[1] for line in said]
    assert FIVE_PCT in answers[1] and "nothing left to sell: ETHUSDT" in answers[4]
    engine = session.engine
    named = [cid for a in answers if " sent (" in a for cid in sent_ids(a)]
    assert named == [d["client_id"] for _, _, d in journal(engine, "order")] == ["g1", "g2", "g3"]
