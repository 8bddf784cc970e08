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


def prevention(cid: str, order_id: int, qty: str, executed: str, price: str, counter: int, status: str = "EXPIRED_IN_MATCH",
               x: str = "TRADE_PREVENTION") -> dict:
    """An executionReport of an order that self-trade prevention expired, every field as
    Binance documents it (user-data-stream.md, 'Conditional fields in execution report'):
    `l` is 0 and `t` -1 (no trade); `A` / `B` are the prevented quantities, `pl` / `pL` /
    `pY` the match that did not happen."""
    left = f"{float(qty) - float(executed):.8f}"
    return {"e": "executionReport", "E": 2_000, "s": "BTCUSDT", "c": cid, "S": "BUY", "o": "LIMIT", "f": "GTC",
            "q": qty, "p": price, "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": x, "X": status,
            "r": "NONE", "i": order_id, "l": "0.00000000", "z": executed, "L": "0.00000000", "n": "0", "N": None,
            "T": 2_000, "t": -1, "v": 0, "I": 0, "w": False, "m": False, "M": False, "O": 1_000, "Z": "0.00000000",
            "Y": "0.00000000", "Q": "0.00000000", "W": 1_000, "V": "EXPIRE_MAKER", "A": left, "B": left,
            "U": counter, "Cs": "BTCUSDT", "pl": "0.00100000", "pL": price, "pY": f"{0.001 * float(price):.8f}"}


def resting(ex: LiveExchange, qty: float = 0.002) -> list:
    ex.submit(OrderRequest("g1", "BTCUSDT", "buy", "limit", qty, price=60_000.0, decision_price=60_010.0), 1_000)
    events = ex.on_rest(ex.orders["g1"], {"orderId": 7}, None, False, 3.0, 1_000)
    for event in events:
        ex.apply(event)
    return events


def test_self_trade_prevention_closes_the_order_at_once_and_is_never_a_fill():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    behind = []
    ex.on_behind = lambda: behind.append(1)
    (event,) = ex.on_user(prevention("Gab12-g1", 7, "0.00200000", "0.00000000", "60000.00000000", 9), 2_000)
    assert event.kind == "order_canceled"
    assert (event.fields["_reason"], event.fields["by_exchange"], event.fields["manual"]) == \
        ("expired_in_match", True, False)
    assert event.fields["_remaining"] == 0.002 and event.fields["notional_usd"] == 0.002 * 60_000
    ex.apply(event)
    assert ex.open_orders == {} and ex.orders["g1"].filled == 0 and ex.net == {} and behind == []
    # the same report again (a reconnect repeats it) changes nothing
    assert ex.on_user(prevention("Gab12-g1", 7, "0.00200000", "0.00000000", "60000.00000000", 9), 2_000) == []


def test_a_partly_filled_order_that_self_trade_prevention_ends_keeps_its_fills():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    events = []
    for data in (report("Gab12-g1", "TRADE", "PARTIALLY_FILLED", 11, "0.0005", "60000", "0.0000005", "BTC")
                 | {"z": "0.00050000"},
                 prevention("Gab12-g1", 7, "0.00200000", "0.00050000", "60000.00000000", 9)):
        for event in ex.on_user(data, 2_000):
            events.append(event)
            ex.apply(event)
    assert [e.kind for e in events] == ["fill", "order_canceled"]
    assert events[1].fields["_remaining"] == 0.0015 and events[1].fields["_reason"] == "expired_in_match"
    assert ex.open_orders == {} and abs(ex.net["BTC"] - (0.0005 - 0.0000005)) < 1e-12
    # a TRADE report whose status is already EXPIRED_IN_MATCH: the fill, then the close
    ex2 = LiveExchange(Markets.load(), prefix="Gab12-")
    ex2.live = True
    resting(ex2)
    trade = report("Gab12-g1", "TRADE", "EXPIRED_IN_MATCH", 12, "0.0005", "60000", "0.0000005", "BTC") \
        | {"z": "0.00050000"}
    got = ex2.on_user(trade, 2_000)
    assert [(e.kind, e.fields["_remaining"]) for e in got] == [("fill", 0.0015), ("order_canceled", 0.0015)]
    for event in got:
        ex2.apply(event)
    assert ex2.open_orders == {}


def test_a_closing_report_with_fills_not_yet_seen_waits_for_reconciliation():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    behind = []
    ex.on_behind = lambda: behind.append(1)
    # the TRADE report of 0.0005 was lost with a dropped stream: z says 0.0005 executed
    assert ex.on_user(prevention("Gab12-g1", 7, "0.00200000", "0.00050000", "60000.00000000", 9), 2_000) == []
    assert behind == [1] and "g1" in ex.open_orders
    assert ex.on_user(report("Gab12-g1", "CANCELED", "CANCELED") | {"z": "0.00050000"}, 2_000) == []   # likewise
    # reconciliation: the trade from myTrades, then the exchange's status
    fill = ex.on_trade_record(ex.orders["g1"], {"id": 11, "qty": "0.0005", "price": "60000", "commission": "0",
                                                "commissionAsset": "BTC", "isMaker": True}, 3_000)
    for event in fill:
        ex.apply(event)
    (closed,) = ex.finish_from_status(ex.orders["g1"], "EXPIRED_IN_MATCH", 3_000)
    assert closed.fields["_reason"] == "expired_in_match" and closed.fields["by_exchange"] is True
    assert closed.fields["_remaining"] == 0.0015


def test_a_prevention_that_leaves_the_order_open_and_the_expired_exec_type():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    # DECREMENT: prevented quantity grows, the order stays on the book (Genesis never asks for it)
    assert ex.on_user(prevention("Gab12-g1", 7, "0.00200000", "0.00000000", "60000.00000000", 9, status="NEW"),
                      2_000) == []
    assert "g1" in ex.open_orders
    # an EXPIRED report whose status is EXPIRED_IN_MATCH is self-trade prevention too
    (event,) = ex.on_user(prevention("Gab12-g1", 7, "0.00200000", "0.00000000", "60000.00000000", 9,
                                     x="EXPIRED"), 2_000)
    assert event.fields["_reason"] == "expired_in_match"
