"""LiveExchange book-keeping without a network: fates from executionReports, the same
state when its own events are applied again on replay, fees in any asset."""
from __future__ import annotations

from genesis.engine.markets import Markets
from genesis.engine.paper import OrderRequest
from genesis.live.exchange import LiveExchange


def report(cid: str, x: str, status: str, trade_id: int = 0, qty: str = "0", price: str = "0",
           fee: str = "0", fee_asset: str = "") -> dict:
    return {"e": "executionReport", "E": 1_000, "s": "BTCUSDT", "c": cid, "x": x, "X": status, "i": 7,
            "t": trade_id, "l": qty, "L": price, "n": fee, "N": fee_asset or None, "m": False}


def run(inputs: list) -> tuple[LiveExchange, list]:
    """A live exchange with one market buy, fed executionReports; (exchange, its events)."""
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    ex.submit(OrderRequest("g1", "BTCUSDT", "buy", "market", 0.002, decision_price=60_000.0), 1_000)
    events = []
    for data in inputs:
        for event in ex.on_user(data, 1_000):
            events.append(event)
            ex.apply(event)
    return ex, events


def test_fills_in_base_quote_and_bnb_fees_and_replay_gives_the_same_state():
    inputs = [report("Gab12-g1", "NEW", "NEW"),
              report("Gab12-g1", "TRADE", "PARTIALLY_FILLED", 1, "0.001", "60000", "0.000001", "BTC"),
              report("Gab12-g1", "TRADE", "PARTIALLY_FILLED", 2, "0.0005", "60010", "0.00001", "BNB"),
              report("Gab12-g1", "TRADE", "PARTIALLY_FILLED", 2, "0.0005", "60010", "0.00001", "BNB"),  # again
              report("Gab12-g1", "TRADE", "FILLED", 3, "0.0005", "60020", "0.03", "USDT")]
    ex, events = run(inputs)
    assert [e.kind for e in events] == ["fill", "fill", "fill"]     # the repeated trade 2 is dropped
    assert events[0].fields["_fee_base"] == 0.000001 and events[1].fields["_fee_other"] == ["BNB", 0.00001]
    assert events[2].fields["fee_usd"] == 0.03 and events[2].fields["_remaining"] == 0.0
    assert ex.open_orders == {} and ex.orders["g1"].status == "done"
    assert abs(ex.net["BTC"] - (0.002 - 0.000001)) < 1e-12 and ex.net["BNB"] == -0.00001
    quote = 0.001 * 60000 + 0.0005 * 60010 + 0.0005 * 60020 + 0.03
    assert abs(ex.net["USDT"] + quote) < 1e-9
    # replay: the same events applied to a fresh exchange that sends nothing
    again = LiveExchange(Markets.load(), prefix="Gab12-")
    again.submit(OrderRequest("g1", "BTCUSDT", "buy", "market", 0.002, decision_price=60_000.0), 1_000)
    for event in events:
        again.apply(event)
    assert again.net == ex.net and again.open_orders == {} and again.outbox == []
    assert again.orders["g1"].trade_ids == ex.orders["g1"].trade_ids == {1, 2, 3}


def test_a_cancel_asked_again_is_sent_again():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    ex.submit(OrderRequest("g1", "BTCUSDT", "buy", "limit", 0.002, price=50_000.0), 1_000)
    ex.cancel("g1", 2_000, manual=True)
    ex.cancel("g1", 3_000, manual=True)     # e.g. the first answer was lost in a restart
    assert [what for what, _ in ex.outbox] == ["new", "cancel", "cancel"]
    (event,) = ex.on_user(report("x-cancel", "CANCELED", "CANCELED") | {"C": "Gab12-g1"}, 4_000)
    assert event.kind == "order_canceled" and event.fields["manual"] is True and event.fields["by_exchange"] is False
