"""Resting limit orders fill after the queue ahead of them; post-only (LIMIT_MAKER) orders.

The paper exchange (genesis/engine/paper.py) on the bundled BTCUSDT capture, and the
simulator (genesis/simulator/) through the real ccxt client on 127.0.0.1. Expected
values come from the capture itself (the levels the book displays, the trades that
print), never from the code under test."""
from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from genesis.engine.book import OrderBook
from genesis.engine.events import Event
from genesis.engine.feeds import exchange_info_path, open_feed, sample_paths
from genesis.engine.markets import Markets
from genesis.engine.paper import WOULD_TAKE, OrderRequest, PaperExchange
from genesis.simulator import SimulatorThread, ccxt_config
from genesis.simulator.book import Book

SYMBOL = "BTCUSDT"
QTY = 0.0002                  # BTC: above the 10 USDT minimum notional, small next to the levels
MAKER_PCT, TAKER_PCT = 0.02, 0.1


@pytest.fixture(scope="module")
def events() -> list[Event]:
    paths = [p for p in sample_paths() if p.name.startswith("btcusdt")]
    return [e for e in open_feed(paths) if getattr(e, "kind", None) and e.symbol == SYMBOL]


@pytest.fixture(scope="module")
def markets() -> Markets:
    return Markets.load(exchange_info_path())


def _snapshot_index(events) -> int:
    return next(i for i, e in enumerate(events) if e.kind == "depth" and e.fields.get("_snapshot"))


def _exchange_at(markets, events, i: int) -> PaperExchange:
    """A paper account that has seen the capture up to (not including) event `i`."""
    ex = PaperExchange(markets, {"USDT": 10_000.0, "BTC": 1.0}, taker_fee_pct=TAKER_PCT, maker_fee_pct=MAKER_PCT)
    for e in events[:i]:
        ex.on_market(e)
    return ex


def _buy_stories(events, start: int) -> list[dict]:
    """Buys at the best bid placed at every 5th bookTicker after `start`, followed
    through the capture with a plain book by the queue rule, until the first fill or a
    trade through. Each story: `at` (placed before this event), `p`, `q0` (displayed at
    placement), `trades` (index, qty) at P up to the first fill, `bound` (a level showed
    less than the volume still ahead: cancellations ahead), `fill` (index of the first
    fill, or None), `fill_at_p` (that fill came from a trade at P)."""
    book = OrderBook(SYMBOL)
    live, done = [], []
    for i, e in enumerate(events):
        book.on_event(e)
        if i > start and e.kind == "book_ticker" and book.synced and i % 5 == 0:
            p = book.best_bid()
            q0 = book.displayed("bid", p)
            live.append({"at": i + 1, "p": p, "q0": q0, "queue": q0, "trades": [], "bound": False, "fill": None})
        still = []
        for c in live:
            if e.kind == "depth" and i >= c["at"]:
                shown = book.displayed("bid", c["p"])
                if shown < c["queue"]:
                    c["queue"], c["bound"] = shown, True
            elif e.kind == "trade" and i >= c["at"] and e.fields["price"] <= c["p"]:
                q = e.fields["qty"]
                if e.fields["price"] < c["p"] or q > c["queue"]:
                    c["fill"], c["fill_at_p"] = i, e.fields["price"] == c["p"]
                    c["trades"] += [(i, q)] if c["fill_at_p"] else []
                    done.append(c)
                    continue
                c["queue"] = round(c["queue"] - q, 8)
                c["trades"].append((i, q))
            still.append(c)
        live = still
    return done


def _reference_fills(events, at: int, side: str, price: float, qty: float, markets) -> tuple[list, int]:
    """The queue rule restated for one resting order placed before event `at`, fed the
    same capture through a plain book: [(event index, filled qty)] and the number of
    trades at its price that printed before its first fill."""
    book = OrderBook(SYMBOL)
    for e in events[:at]:
        book.on_event(e)
    level = "bid" if side == "buy" else "ask"
    queue, left, fills, waited = book.displayed(level, price), qty, [], 0
    for i in range(at, len(events)):
        e = events[i]
        book.on_event(e)
        if e.kind == "depth":
            queue = min(queue, book.displayed(level, price))
        if e.kind != "trade":
            continue
        px, q = e.fields["price"], e.fields["qty"]
        if px == price:
            take = min(queue, q)
            queue, q = round(queue - take, 8), round(q - take, 8)
            if q <= 0 and not fills:
                waited += 1
        elif not (px < price if side == "buy" else px > price):
            continue
        else:
            queue = 0.0
        got = markets.round_qty_down(SYMBOL, min(left, q)) if q > 0 else 0.0
        if got > 0:
            fills.append((i, got))
            left = round(left - got, 8)
            if left <= 0:
                break
    return fills, waited


def _replay_order(ex, events, at: int, cid: str) -> list[tuple[int, Event]]:
    """Feed the capture from `at` until the order `cid` is done: its (index, fill)s."""
    got = []
    for i in range(at, len(events)):
        got += [(i, f) for f in ex.on_market(events[i]) if f.kind == "fill" and f.fields["_client_id"] == cid]
        if cid not in ex.open_orders:
            break
    return got


def test_resting_buy_waits_for_the_displayed_queue_then_fills_as_maker(markets, events):
    stories = _buy_stories(events, _snapshot_index(events))
    # no cancellation ahead, trades printed at P without filling it, then it filled at P
    c = next(c for c in stories if not c["bound"] and c["fill_at_p"] and len(c["trades"]) >= 2)
    at, price, q0 = c["at"], c["p"], c["q0"]
    ex = _exchange_at(markets, events, at)
    assert ex.best(SYMBOL)[0] == price and ex.book(SYMBOL).displayed("bid", price) == q0 > 0
    assert ex.submit(OrderRequest("Q1", SYMBOL, "buy", "limit", QTY, price=price), ts=events[at].ts) == []
    assert ex.open_orders["Q1"].queue_ahead == q0
    # from the capture: nothing while the volume at P stays within q0, then the part of
    # the trade beyond q0
    before = c["trades"][:-1]
    last_i, last_q = c["trades"][-1]
    vol = sum(q for _, q in before)
    assert vol <= q0 < vol + last_q
    got = _replay_order(ex, events, at, "Q1")
    first_i, first = got[0]
    assert first_i == last_i == c["fill"]
    assert first.fields["qty"] == pytest.approx(markets.round_qty_down(SYMBOL, min(QTY, vol + last_q - q0)), abs=1e-9)
    assert sum(f.fields["qty"] for _, f in got) == pytest.approx(QTY, abs=1e-9) and "Q1" not in ex.open_orders
    for _, f in got:
        assert f.fields["maker"] is True and f.fields["price"] == price and f.fields["_order_type"] == "limit"
        assert f.fields["fee_usd"] == pytest.approx(round(f.fields["qty"] * price * MAKER_PCT / 100, 8), abs=1e-8)
    spent = sum(f.fields["notional_usd"] + f.fields["fee_usd"] for _, f in got)
    assert ex.balances["BTC"] == pytest.approx(1.0 + QTY, abs=1e-12)
    assert ex.balances["USDT"] == pytest.approx(10_000.0 - spent, abs=1e-6)
    assert ex.locked.get("USDT", 0.0) == pytest.approx(0.0, abs=1e-8)


def test_cancellations_ahead_shorten_the_queue(markets, events):
    stories = _buy_stories(events, _snapshot_index(events))
    # filled at P before q0 had traded there: only cancellations ahead explain it
    c = next(c for c in stories if c["bound"] and c["fill_at_p"] and sum(q for _, q in c["trades"]) < c["q0"])
    ex = _exchange_at(markets, events, c["at"])
    assert ex.submit(OrderRequest("C1", SYMBOL, "buy", "limit", QTY, price=c["p"]), ts=events[c["at"]].ts) == []
    order = ex.open_orders["C1"]
    book = ex.book(SYMBOL)
    for i in range(c["at"], c["fill"]):
        assert [f for f in ex.on_market(events[i]) if f.kind == "fill"] == []
        if events[i].kind == "depth":
            assert order.queue_ahead <= book.displayed("bid", c["p"])
    (f,) = ex.on_market(events[c["fill"]])
    assert f.fields["_client_id"] == "C1" and f.fields["maker"] is True and f.fields["price"] == c["p"]


def test_fills_follow_the_queue_rule_across_the_capture(markets, events):
    """Buys at the best bid and sells at the best ask placed through the capture: every
    fill is where the queue rule puts it."""
    snap = _snapshot_index(events)
    tickers = [i for i, e in enumerate(events) if e.kind == "book_ticker" and i > snap]
    placements = tickers[:: len(tickers) // 12][:12]
    waited = 0
    for n, at in enumerate(placements):
        side = "buy" if n % 2 == 0 else "sell"
        ex = _exchange_at(markets, events, at)
        bid, ask = ex.best(SYMBOL)
        price = bid if side == "buy" else ask
        cid = f"P{n}"
        assert ex.submit(OrderRequest(cid, SYMBOL, side, "limit", QTY, price=price), ts=events[at].ts) == []
        want, w = _reference_fills(events, at, side, price, QTY, markets)
        got = [(i, f.fields["qty"]) for i, f in _replay_order(ex, events, at, cid)]
        assert got == [(i, pytest.approx(q, abs=1e-9)) for i, q in want], (n, side, price)
        waited += w > 0
    assert waited >= 2       # trades at the order's price that did not fill it (the queue ahead)


def test_a_trade_through_the_price_fills_at_once(markets, events):
    stories = _buy_stories(events, _snapshot_index(events))
    # the first trade that reaches P prints below it while quantity is still shown ahead
    c = next(c for c in stories if c["fill"] is not None and not c["fill_at_p"] and c["queue"] > 0)
    at, k, price = c["at"], c["fill"], c["p"]
    ex = _exchange_at(markets, events, at)
    assert ex.submit(OrderRequest("T1", SYMBOL, "buy", "limit", QTY, price=price), ts=events[at].ts) == []
    for e in events[at:k]:
        assert [f for f in ex.on_market(e) if f.kind == "fill"] == []
    assert ex.open_orders["T1"].queue_ahead > 0
    trade = events[k]
    (f,) = ex.on_market(trade)
    want = markets.round_qty_down(SYMBOL, min(QTY, trade.fields["qty"]))
    assert trade.fields["price"] < price
    assert f.kind == "fill" and f.ts == trade.ts and f.fields["_client_id"] == "T1"
    assert f.fields["qty"] == want and f.fields["price"] == price and f.fields["maker"] is True
    assert f.fields["fee_usd"] == pytest.approx(round(want * price * MAKER_PCT / 100, 8), abs=1e-8)


def test_queue_arithmetic_with_two_own_orders_at_one_price(markets):
    """Hand-made levels on the real BTCUSDT rules: the queue ahead, what a trade's volume
    does to each of two own orders at one price, cancellations ahead, a trade through."""
    ex = PaperExchange(markets, {"USDT": 100_000.0}, taker_fee_pct=TAKER_PCT, maker_fee_pct=MAKER_PCT)
    ex.on_market(Event("depth", 1, SYMBOL, {"_snapshot": True, "_last_update_id": 10,
                                            "_bids": [(30000.0, 0.5), (29999.0, 1.0)], "_asks": [(30001.0, 1.0)]}))
    assert ex.submit(OrderRequest("A", SYMBOL, "buy", "limit", 0.1, price=30000.0), ts=2) == []
    ex.on_market(Event("depth", 3, SYMBOL, {"_first_id": 11, "_last_id": 11, "_bids": [(30000.0, 0.8)], "_asks": []}))
    assert ex.submit(OrderRequest("B", SYMBOL, "buy", "limit", 0.1, price=30000.0), ts=4) == []
    a, b = ex.open_orders["A"], ex.open_orders["B"]
    assert (a.queue_ahead, b.queue_ahead) == (0.5, 0.8)       # growth behind A does not move A
    assert ex.on_market(Event("trade", 5, SYMBOL, {"price": 30000.0, "qty": 0.3})) == []
    assert (a.queue_ahead, b.queue_ahead) == pytest.approx((0.2, 0.5))
    # the level shows 0.4: the trade took 0.3 of 0.8 and 0.1 ahead of B was cancelled
    ex.on_market(Event("depth", 6, SYMBOL, {"_first_id": 12, "_last_id": 12, "_bids": [(30000.0, 0.4)], "_asks": []}))
    assert (a.queue_ahead, b.queue_ahead) == pytest.approx((0.2, 0.4))
    (fa,) = ex.on_market(Event("trade", 7, SYMBOL, {"price": 30000.0, "qty": 0.25}))
    assert fa.fields["_client_id"] == "A" and fa.fields["qty"] == pytest.approx(0.05)
    assert (a.queue_ahead, b.queue_ahead) == pytest.approx((0.0, 0.2))
    fills = ex.on_market(Event("trade", 8, SYMBOL, {"price": 29999.0, "qty": 1.0}))
    assert [(f.fields["_client_id"], f.fields["qty"]) for f in fills] == [("A", 0.05), ("B", 0.1)]
    assert all(f.fields["maker"] and f.fields["price"] == 30000.0 for f in fills)
    assert ex.open_orders == {}


def test_bookticker_only_queue_is_its_size_at_the_best_and_unknown_behind_it(markets):
    ex = PaperExchange(markets, {"USDT": 100_000.0}, taker_fee_pct=TAKER_PCT, maker_fee_pct=MAKER_PCT)

    def ticker(ts, bid, bid_qty):
        return Event("book_ticker", ts, SYMBOL, {"bid": bid, "bid_qty": bid_qty, "ask": 30001.0, "ask_qty": 1.0})

    ex.on_market(ticker(1, 30000.0, 2.0))
    ex.submit(OrderRequest("best", SYMBOL, "buy", "limit", 0.1, price=30000.0), ts=2)
    ex.submit(OrderRequest("behind", SYMBOL, "buy", "limit", 0.1, price=29999.0), ts=2)
    ex.submit(OrderRequest("better", SYMBOL, "buy", "limit", 0.1, price=30000.5), ts=2)
    o = ex.open_orders
    assert (o["best"].queue_ahead, o["behind"].queue_ahead, o["better"].queue_ahead) == (2.0, None, 0.0)
    assert ex.on_market(Event("trade", 3, SYMBOL, {"price": 29999.0, "qty": 0.05})) != []   # through two
    assert o["behind"].remaining == 0.1                       # at its price, its queue unknown: no fill
    ex.on_market(ticker(4, 29999.0, 1.5))                     # the best bid dropped to 29999
    assert o["best"].queue_ahead == 0.0 and o["behind"].queue_ahead == 1.5


def test_post_only_crossing_is_rejected_and_at_the_touch_rests(markets, events):
    at = _snapshot_index(events) + 50
    ex = _exchange_at(markets, events, at)
    bid, ask = ex.best(SYMBOL)
    before = dict(ex.balances)
    ts = events[at].ts
    for side, price in (("buy", ask), ("buy", ask + 5.0), ("sell", bid)):
        (r,) = ex.submit(OrderRequest(f"x-{side}-{price}", SYMBOL, side, "limit_maker", QTY, price=price), ts=ts)
        assert r.kind == "order_rejected" and r.fields["_reason"] == WOULD_TAKE
        assert r.fields["_order_type"] == "limit_maker" and r.fields["rule"] == "exchange"
    assert ex.balances == before and ex.open_orders == {}
    # at the touch it rests as a maker order, behind the level's quantity
    assert ex.submit(OrderRequest("PO", SYMBOL, "buy", "limit_maker", QTY, price=bid), ts=ts) == []
    po = ex.open_orders["PO"]
    assert po.type == "limit_maker" and po.queue_ahead == ex.book(SYMBOL).displayed("bid", bid)
    assert ex.submit(OrderRequest("PS", SYMBOL, "sell", "limit_maker", QTY, price=ask), ts=ts) == []
    # an amend keeps it post-only: onto the ask it is refused, the order untouched
    assert ex.amend("PO", ask, ts=ts + 1) == ([], WOULD_TAKE)
    assert ex.open_orders["PO"].price == bid
    tick = markets[SYMBOL].tick_size
    events_, problem = ex.amend("PO", bid - tick, ts=ts + 2)
    assert problem is None and [e.kind for e in events_] == ["order_amended"]
    assert ex.open_orders["PO"].type == "limit_maker" and ex.open_orders["PO"].price == pytest.approx(bid - tick)
    # the same price as a plain limit order takes the ask at once
    (taken,) = ex.submit(OrderRequest("L", SYMBOL, "buy", "limit", QTY, price=ask), ts=ts + 3)
    assert taken.kind == "fill" and taken.fields["maker"] is False


# -------------------------------------------------------------------- simulator


def _sim_story(records, start: int) -> dict:
    """The simulator's capture records followed by the queue rule (in decimals, with the
    simulator's recorded book): the first LIMIT buy at the best bid, placed at a
    bookTicker after record `start`, that sees trades at its price without filling and
    then fills at its price. `at` (records replayed before placing), `p`, `queue` (left
    ahead before the filling trade), `fill` (that trade's record index)."""
    book = Book(SYMBOL)
    live = []
    for i, r in enumerate(records):
        if r.symbol != SYMBOL:
            continue
        d = r.data
        if r.kind == "snapshot":
            book.apply_snapshot(d["lastUpdateId"], d["bids"], d["asks"])
        elif r.kind == "depth":
            book.apply_diff(d["U"], d["u"], d["b"], d["a"])
        elif r.kind == "bookTicker" and i >= start and book.synced and i % 5 == 0:
            p = book.best("bids")
            live.append({"at": i + 1, "p": p, "queue": book.displayed("BUY", p), "waited": 0})
        still = []
        for c in live:
            if r.kind == "depth":
                c["queue"] = min(c["queue"], book.displayed("BUY", c["p"]))
            elif r.kind == "trade" and i >= c["at"] and Decimal(d["p"]) <= c["p"]:
                px, q = Decimal(d["p"]), Decimal(d["q"])
                if px < c["p"]:
                    continue                           # through: not the story we want
                if q > c["queue"]:
                    if c["waited"] >= 2:
                        c.update(fill=i, trade_qty=q)
                        return c
                    continue
                c["queue"] -= q
                c["waited"] += 1
            still.append(c)
        live = still
    raise AssertionError("no such placement in the capture")


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", balances={"USDT": "10000", "BTC": "1", "ETH": "0"}) as s:
        yield s


def _client(sim) -> ccxt.binance:
    ex = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
    ex.load_markets()
    return ex


def test_simulator_resting_order_waits_for_the_queue(sim):
    assert sim.sim.config.maker_fill == "queue"            # the default
    records = sim.sim.capture.records
    pos = sim.state()["replay"]["position"]
    c = _sim_story(records, pos)
    sim.step(n=c["at"] - pos)
    ex = _client(sim)
    bids = ex.public_get_depth({"symbol": SYMBOL, "limit": 5})["bids"]
    assert Decimal(bids[0][0]) == c["p"]
    order = ex.create_order("BTC/USDT", "limit", "buy", QTY, float(c["p"]))
    assert order["status"] == "open" and order["filled"] == 0
    # trades print at its price (at least two) and it waits behind the queue ...
    rep = sim.step(n=c["fill"] - c["at"])
    assert rep["fills"] == 0 and ex.fetch_order(order["id"], "BTC/USDT")["filled"] == 0
    # ... until the trade that is larger than what is left ahead of it
    rep = sim.step(n=1)
    assert rep["fills"] == 1
    (trade,) = ex.fetch_my_trades("BTC/USDT")
    want = min(Decimal(str(QTY)), c["trade_qty"] - c["queue"])
    assert Decimal(str(trade["amount"])) == want and Decimal(str(trade["price"])) == c["p"]
    assert trade["takerOrMaker"] == "maker"
    fee = sim.sim.exchange.maker_fee
    assert Decimal(str(trade["fee"]["cost"])) == (want * fee).quantize(Decimal("0.00000001"))
    assert trade["fee"]["currency"] == "BTC"               # commission on the asset received


def test_simulator_post_only_through_ccxt(sim):
    sim.step(n=20)
    ex = _client(sim)
    top = ex.public_get_ticker_bookticker({"symbol": SYMBOL})
    bid, ask = float(top["bidPrice"]), float(top["askPrice"])
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        ex.create_order("BTC/USDT", "limit", "buy", QTY, ask, {"postOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="immediately match and take"):
        ex.create_order("BTC/USDT", "limit", "sell", QTY, bid, {"postOnly": True})
    rested = ex.create_order("BTC/USDT", "limit", "buy", QTY, bid, {"postOnly": True})
    assert rested["status"] == "open" and rested["filled"] == 0 and rested["postOnly"] is True
    (row,) = ex.fetch_open_orders("BTC/USDT")
    assert row["info"]["type"] == "LIMIT_MAKER" and float(row["info"]["price"]) == bid
