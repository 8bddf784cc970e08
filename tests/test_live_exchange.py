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


def feed(ex: LiveExchange, *reports, ts: int = 2_000) -> list:
    """Reports through on_user, each produced event applied (as the live session does)."""
    out = []
    for data in reports:
        for event in ex.on_user(data, ts):
            out.append(event)
            ex.apply(event)
    return out


def new_report(cid: str, qty: str, price: str) -> dict:
    return report(cid, "NEW", "NEW") | {"q": qty, "p": price, "z": "0.00000000"}


def test_amend_is_cancel_then_a_new_order_under_the_next_client_id():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    ex.outbox.clear()
    assert ex.amend("g1", 59_000.0, 3_000) == ([], None)
    o = ex.orders["g1"]
    assert o.amend_price == 59_000.0 and ex.outbox == [("amend", o)]
    assert ex.amend("g1", 58_000.0, 3_000) == ([], "an amend of order g1 is already under way")
    ex.cancel("g1", 3_100, manual=True)                    # waits for the amend's outcome
    assert ex.outbox == [("amend", o)] and o.cancel_requested
    # the old order's cancel (the amend's own) is not the end of g1
    assert feed(ex, report("x-c", "CANCELED", "CANCELED") | {"C": "Gab12-g1", "z": "0.00000000"}) == []
    assert "g1" in ex.open_orders
    # the replacement's first report: amended first, then the cancel asked for meanwhile goes to it
    (amended,) = feed(ex, new_report("Gab12-g1.a1", "0.00200000", "59000.00000000"))
    assert amended.kind == "order_amended"
    assert {k: amended.fields[k] for k in ("amendments", "price", "old_price", "manual", "notional_usd")} == \
        {"amendments": 1, "price": 59_000.0, "old_price": 60_000.0, "manual": False, "notional_usd": 118.0}
    assert (o.amendments, o.price, o.amend_price) == (1, 59_000.0, None)
    assert ex.exchange_id("g1") == "Gab12-g1.a1" and ex.engine_id("Gab12-g1.a1") == "g1"
    assert ex.exchange_id("g1", 0) == "Gab12-g1" and ex.engine_id("Gab12-g1") == "g1"
    assert ex.outbox == [("amend", o), ("cancel", o)]
    assert ex.on_amend_answer(o, "placed", {"orderId": 8, "origQty": "0.00200000"}, None, 2_100) == []   # settled
    (closed,) = feed(ex, report("x-c2", "CANCELED", "CANCELED") | {"C": "Gab12-g1.a1", "z": "0.00000000"})
    assert closed.kind == "order_canceled" and closed.fields["manual"] is True and not closed.fields["by_exchange"]
    assert ex.open_orders == {}


def test_a_fill_that_raced_the_amend_counts_and_the_replacement_is_for_the_rest():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    ex.amend("g1", 61_000.0, 3_000)
    o = ex.orders["g1"]
    # the REST answer comes before the stream's reports: the old order had 0.0005 executed
    (amended,) = ex.on_amend_answer(o, "placed", {"orderId": 8, "origQty": "0.00150000", "status": "NEW"}, None,
                                    2_000)
    ex.apply(amended)
    assert amended.fields["notional_usd"] == 0.0015 * 61_000 and o.exchange_id == 8
    events = feed(ex,
                  report("Gab12-g1", "TRADE", "PARTIALLY_FILLED", 5, "0.0005", "60000", "0.0000005", "BTC"),
                  report("x-c", "CANCELED", "CANCELED") | {"C": "Gab12-g1", "z": "0.00050000"},   # the old one's
                  new_report("Gab12-g1.a1", "0.00150000", "61000.00000000"),
                  report("Gab12-g1.a1", "TRADE", "FILLED", 6, "0.0015", "61000", "0.0000015", "BTC")
                  | {"q": "0.00150000", "z": "0.00150000"})
    assert [(e.kind, e.fields.get("qty")) for e in events] == [("fill", 0.0005), ("fill", 0.0015)]
    assert events[-1].fields["_remaining"] == 0.0 and ex.open_orders == {}
    assert abs(ex.net["BTC"] - (0.002 - 0.000002)) < 1e-12


def test_an_amend_of_an_order_that_had_filled_is_refused_and_nothing_is_lost():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    ex.amend("g1", 59_000.0, 3_000)
    o = ex.orders["g1"]
    (refused,) = ex.on_amend_answer(o, "refused", None, "the order had already filled or ended", 2_000)
    ex.apply(refused)
    assert refused.kind == "order_amend_rejected" and refused.fields["_reason"].startswith("the order had already")
    assert o.amend_price is None and o.amendments == 0 and "g1" in ex.open_orders
    (fill,) = feed(ex, report("Gab12-g1", "TRADE", "FILLED", 5, "0.002", "60000", "0.000002", "BTC"))
    assert fill.fields["_remaining"] == 0.0 and ex.open_orders == {}
    # the fill came first this time: the refusal still says so
    ex2 = LiveExchange(Markets.load(), prefix="Gab12-")
    ex2.live = True
    resting(ex2)
    ex2.amend("g1", 59_000.0, 3_000)
    feed(ex2, report("Gab12-g1", "TRADE", "FILLED", 5, "0.002", "60000", "0.000002", "BTC"))
    (refused,) = ex2.on_amend_answer(ex2.orders["g1"], "refused", None, "filled first", 2_000)
    assert refused.kind == "order_amend_rejected"


def test_an_amend_whose_new_order_is_refused_ends_the_order_once_its_fills_are_in():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    resting(ex)
    behind = []
    ex.on_behind = lambda: behind.append(1)
    ex.amend("g1", 61_000.0, 3_000)
    o = ex.orders["g1"]
    cancel = {"status": "CANCELED", "origQty": "0.00200000", "executedQty": "0.00050000"}
    assert ex.on_amend_answer(o, "rejected", cancel, "insufficient balance", 2_000) == []   # a fill not in yet
    assert behind == [1] and o.amend_price == 61_000.0
    feed(ex, report("Gab12-g1", "TRADE", "PARTIALLY_FILLED", 5, "0.0005", "60000", "0.0000005", "BTC"))
    (closed,) = ex.on_amend_answer(o, "rejected", cancel, "insufficient balance", 2_000)
    assert closed.kind == "order_canceled" and closed.fields["by_exchange"] is True
    assert closed.fields["_reason"] == "amend failed, the new order was refused: insufficient balance"
    assert closed.fields["_remaining"] == 0.0015


def test_amend_refusals_and_replay_rebuilds_the_amended_order():
    ex = LiveExchange(Markets.load(), prefix="Gab12-")
    ex.live = True
    ex.submit(OrderRequest("g1", "BTCUSDT", "buy", "limit", 0.002, price=60_000.0), 1_000)
    assert ex.amend("g1", 59_000.0, 1_000)[1] == "order g1 is still being placed; amend it once the exchange " \
                                                "has acknowledged it"
    ex.submit(OrderRequest("g2", "BTCUSDT", "buy", "market", 0.002, decision_price=60_000.0), 1_000)
    assert ex.amend("g2", 59_000.0, 1_000)[1] == "order g2 is not a resting limit order"
    assert ex.amend("g9", 59_000.0, 1_000)[1] == "no open order 'g9'"
    log = ex.on_rest(ex.orders["g1"], {"orderId": 7}, None, False, 3.0, 1_000)
    for event in log:
        ex.apply(event)
    assert ex.amend("g1", 0.0, 1_000)[1] == "the new price must be positive"
    assert ex.amend("g1", 59_000.0, 2_000) == ([], None)
    for event in ex.on_amend_answer(ex.orders["g1"], "placed", {"orderId": 8, "origQty": "0.00200000"}, None,
                                    2_500):
        ex.apply(event)
        log.append(event)
    # replay: the same command at the same point, then the logged events, nothing sent
    again = LiveExchange(Markets.load(), prefix="Gab12-")
    again.submit(OrderRequest("g1", "BTCUSDT", "buy", "limit", 0.002, price=60_000.0), 1_000)
    again.apply(log[0])
    assert again.amend("g1", 59_000.0, 2_000) == ([], None)
    again.apply(log[1])
    a, b = again.orders["g1"], ex.orders["g1"]
    assert (a.amendments, a.price, a.amend_price, a.exchange_id) == (b.amendments, b.price, b.amend_price, 8)
    assert again.outbox == [] and again.exchange_id("g1") == "Gab12-g1.a1"
