"""Live mode: fills arrive after the order leaves (the user-data stream of the project's
simulator on 127.0.0.1), so two operator orders applied back to back see the first in
flight, not as a position. The pre-trade limits count it: the 5% rule, Sniper's one
position, and a second sell of a position already being sold. One session, three pairs
of orders, and the journal agrees with the exchange at the end."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from live_helpers import LiveProc, account, agreement, order
from sqlalchemy import create_engine, insert

from genesis.engine.journal import commands
from genesis.simulator import SimulatorThread

START = {"USDT": Decimal("1000"), "BTC": Decimal("0"), "ETH": Decimal("0")}
FIVE_PCT = "This order is larger than 5% of equity, counted with the position and the orders in flight."


@pytest.fixture
def live(tmp_path):
    with SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}) as sim:
        proc = LiveProc(tmp_path, sim)
        yield proc, sim
        proc.stop()


def together(proc: LiveProc, *orders: dict) -> list[tuple[str, str, int]]:
    """Queue operator orders in one transaction (the engine takes them in one poll and
    applies them back to back, before any fill can arrive); wait for the answers:
    (status, result, input events processed when it applied)."""
    db = create_engine(proc.url)
    with db.begin() as conn:
        ids = [conn.execute(insert(commands).values(kind="order", payload=json.dumps(o, sort_keys=True),
                                                    status="queued", result="", run_id=0, at_event=0)
                            ).inserted_primary_key[0] for o in orders]
    db.dispose()
    proc.wait(lambda: all(proc.settled(cid) for cid in ids), f"commands {ids}")
    return [tuple(proc.rows("SELECT status, result, at_event FROM commands WHERE id = ?", (cid,))[0]) for cid in ids]


def filled(proc: LiveProc, client_id: str) -> bool:
    return any(f["client_id"] == client_id for f in proc.entries("fill"))


def test_concurrent_orders_meet_every_pre_trade_limit_live(live):
    proc, sim = live
    proc.start()
    buy = {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 30, "reason": ""}
    # the 5% rule: $30 + $30 of BTC on $1,000 (5% = $50), the second before the first fills
    first, second = together(proc, buy, buy)
    assert first[0] == "applied" and "1 order sent (g1)" in first[1]
    assert second[:2] == ("refused", f"buy BTCUSDT $30.00: {FIVE_PCT} Try a smaller size.")
    assert first[2] == second[2]              # back to back: no input event in between
    proc.wait(lambda: filled(proc, "g1"), "the first buy's fill")
    assert order(proc, "sell", usd=30)["status"] == "applied"
    proc.wait(lambda: proc.count("position_closed") >= 1, "the BTC position to close")

    # Sniper's one position: BTC and ETH at once
    btc, eth = together(proc, buy, dict(buy, symbol="ETHUSDT"))
    assert btc[0] == "applied" and "1 order sent (g3)" in btc[1]
    assert eth[:2] == ("refused", "buy ETHUSDT $30.00: Open positions are at this tier's limit of 1 "
                                  "(orders in flight included).")
    proc.wait(lambda: filled(proc, "g3"), "the BTC buy's fill")

    # two sells of the one position: the second has nothing left to sell
    sell = {"side": "sell", "symbol": "BTCUSDT", "notional_usd": 30, "reason": ""}
    one, two = together(proc, sell, sell)
    assert one[0] == "applied" and "1 order sent (g4)" in one[1]
    assert two[0] == "refused" and two[1].startswith("sell BTCUSDT $") and ": nothing left to sell: BTCUSDT " in two[1]
    assert two[1].endswith("already being sold by g4")
    proc.wait(lambda: proc.count("position_closed") >= 2, "the second round trip to close")
    assert proc.stop() == 0

    assert [e["_rule"] for e in proc.entries("refused")] == ["max_position_manual", "max_open_positions", "execution"]
    assert [e["rule"] for e in proc.entries("order_rejected")] == ["max_position_manual", "max_open_positions",
                                                                   "execution"]
    # every id an answer named was sent and journaled, and no other
    assert [e["client_id"] for e in proc.entries("order")] == ["g1", "g2", "g3", "g4"]
    assert [o["clientOrderId"].split("-", 1)[1] for o in account(sim)["orders"]] == ["g1", "g2", "g3", "g4"]
    assert agreement(proc, sim, START)["orders"] == 4
