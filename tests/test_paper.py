"""Markets (exchangeInfo rules) and the paper exchange filling against a recorded book."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from genesis.engine.events import Event
from genesis.engine.markets import Markets
from genesis.engine.paper import OrderRequest, PaperExchange


def _symbol(name, base, quote, tick, step, min_qty, min_notional, status="TRADING", notional_filter="MIN_NOTIONAL"):
    notional = ({"filterType": "MIN_NOTIONAL", "minNotional": min_notional, "applyToMarket": True, "avgPriceMins": 5}
                if notional_filter == "MIN_NOTIONAL" else
                {"filterType": "NOTIONAL", "minNotional": min_notional, "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5})
    return {
        "symbol": name, "status": status, "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "5", "multiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": "9000.00000000", "stepSize": step},
            notional,
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.0", "stepSize": "0.00000000"},
        ],
    }


# A tiny exchangeInfo in Binance's 2021 schema (values as in the real 2021 file),
# plus one symbol in the newer NOTIONAL schema and one symbol not trading.
EXCHANGE_INFO = {
    "timezone": "UTC", "serverTime": 1633998511098, "rateLimits": [], "exchangeFilters": [],
    "symbols": [
        _symbol("BTCUSDT", "BTC", "USDT", "0.01000000", "0.00001000", "0.00001000", "10.00000000"),
        _symbol("ETHUSDT", "ETH", "USDT", "0.01000000", "0.00010000", "0.00010000", "10.00000000"),
        _symbol("ETHBTC", "ETH", "BTC", "0.00000100", "0.00010000", "0.00010000", "0.00010000"),
        _symbol("BNBUSDT", "BNB", "USDT", "0.10000000", "0.00100000", "0.00100000", "5.00000000",
                notional_filter="NOTIONAL"),
        _symbol("OLDUSDT", "OLD", "USDT", "0.01000000", "1.00000000", "1.00000000", "10.00000000", status="BREAK"),
    ],
}


@pytest.fixture
def markets(tmp_path) -> Markets:
    p = tmp_path / "exchange_info.json"
    p.write_text(json.dumps(EXCHANGE_INFO))
    return Markets.load(p)


BIDS = [(30000.0, 0.5), (29999.0, 1.0), (29990.0, 2.0)]
ASKS = [(30001.0, 0.2), (30002.0, 0.3), (30010.0, 1.0)]


def depth_snapshot(ts=1_000, symbol="BTCUSDT", bids=BIDS, asks=ASKS, last_id=100):
    return Event("depth", ts, symbol, {"_snapshot": True, "_last_update_id": last_id,
                                       "_bids": list(bids), "_asks": list(asks)})


def trade(ts, price, qty, symbol="BTCUSDT", aggressor="sell"):
    return Event("trade", ts, symbol, {"price": price, "qty": qty, "notional_usd": price * qty,
                                       "aggressor": aggressor})


def exchange(markets, usdt=20_000.0, btc=0.0, **fees) -> PaperExchange:
    ex = PaperExchange(markets, {"USDT": usdt, "BTC": btc}, **fees)
    assert ex.on_market(depth_snapshot()) == []
    return ex


# ----------------------------------------------------------------- markets


def test_markets_reads_symbol_rules(markets):
    btc = markets["BTCUSDT"]
    assert (btc.base, btc.quote, btc.status) == ("BTC", "USDT", "TRADING")
    assert (btc.tick_size, btc.step_size, btc.min_qty, btc.max_qty, btc.min_notional) == (0.01, 0.00001, 0.00001, 9000.0, 10.0)
    assert markets["ETHBTC"].quote == "BTC" and markets["ETHBTC"].tick_size == 0.000001
    bnb = markets["BNBUSDT"]                    # newer schema: NOTIONAL filter
    assert bnb.min_notional == 5.0 and bnb.max_notional == 9_000_000.0
    assert "XRPUSDT" not in markets and markets.get("XRPUSDT") is None


def test_markets_loads_a_capture_line(tmp_path):
    p = tmp_path / "BINANCE.0"
    p.write_text("http://127.0.0.1:8080/api/v3/exchangeInfo -> 1633998511.132921: " + json.dumps(EXCHANGE_INFO) + "\n")
    assert Markets.load(p)["ETHUSDT"].step_size == 0.0001


def test_markets_rounding(markets):
    assert markets.round_qty_down("BTCUSDT", 0.123456789) == 0.12345
    assert markets.round_qty_down("BTCUSDT", 0.1 + 0.2) == 0.3          # float residue is not a step
    assert markets.round_qty_down("ETHUSDT", 1.99999) == 1.9999
    assert markets.round_qty_down("BTCUSDT", 0.000004) == 0.0
    assert markets.round_price("BTCUSDT", 30000.017, "buy") == 30000.01
    assert markets.round_price("BTCUSDT", 30000.011, "sell") == 30000.02
    assert markets.round_price("BTCUSDT", 30000.015001) == 30000.02
    assert markets.round_price("BTCUSDT", 30000.02, "sell") == 30000.02   # on the grid stays put
    assert markets.round_price("ETHBTC", 0.0654321, "buy") == 0.065432


def test_markets_check(markets):
    assert markets.check("BTCUSDT", 0.001, 30000.0) is None
    assert markets.check("BTCUSDT", 0.0003, 30000.0) == "below minimum notional 10.0"
    assert markets.check("BTCUSDT", 0.000001, 30000.0) == "quantity below lot size minimum"
    assert markets.check("BTCUSDT", 0.0, 30000.0) == "quantity below lot size minimum"
    assert markets.check("BTCUSDT", 9001.0, 30000.0) == "quantity above lot size maximum"
    assert markets.check("BTCUSDT", 0.0010001, 30000.0) == "quantity not a multiple of the step size"
    assert markets.check("BTCUSDT", 0.001, 30000.001) == "price not a multiple of the tick size"
    assert markets.check("XRPUSDT", 1.0, 1.0) == "unknown symbol"
    assert markets.check("OLDUSDT", 100.0, 1.0) == "symbol not trading"
    assert markets.check("BNBUSDT", 0.01, 400.0) == "below minimum notional 5.0"
    assert markets.check("BTCUSDT", 0.001, None) is None


def test_bundled_exchange_info_when_present():
    from genesis.engine.markets import DEFAULT_PATH
    if not DEFAULT_PATH.is_file():
        pytest.skip("bundled exchange_info.json not there yet")
    m = Markets.load()
    assert {"BTCUSDT", "ETHUSDT", "ETHBTC"} <= set(m.symbols)
    assert m["BTCUSDT"].min_notional > 0 and m["BTCUSDT"].tick_size == 0.01


# ------------------------------------------------------------- market orders


def test_market_buy_walks_levels(markets):
    ex = exchange(markets)
    ev = ex.submit(OrderRequest("b1", "BTCUSDT", "buy", "market", 0.4, decision_price=30000.5), ts=2_000)
    assert [e.kind for e in ev] == ["fill"]
    f = ev[0].fields
    # 0.2 @ 30001 + 0.2 @ 30002 = 12000.60
    assert f["qty"] == 0.4 and f["price"] == pytest.approx(30001.5)
    assert f["notional_usd"] == pytest.approx(12000.60, abs=1e-8)
    assert f["fee_usd"] == pytest.approx(12.0006, abs=1e-8)
    assert f["slippage_pct"] == pytest.approx((30001.5 - 30000.5) / 30000.5 * 100)
    assert f["maker"] is False and f["side"] == "buy"
    assert f["_client_id"] == "b1" and f["_order_type"] == "market" and f["_remaining"] == 0.0
    assert f["_worst_price"] == 30002.0
    assert ev[0].ts == 2_000 and ev[0].symbol == "BTCUSDT"
    assert round(ex.balances["USDT"], 2) == 7987.40          # 20000 - 12000.60 - 12.0006
    assert ex.balances["USDT"] == pytest.approx(7987.3994, abs=1e-8)
    assert ex.balances["BTC"] == 0.4
    assert ex.open_orders == {}
    # the liquidity taken is gone from the local book until the exchange updates it
    assert ex.books["BTCUSDT"].levels("ask", 1) == [(30002.0, pytest.approx(0.1))]


def test_market_sell_walks_levels_and_better_price_is_negative_slippage(markets):
    ex = exchange(markets, usdt=0.0, btc=1.0)
    ev = ex.submit(OrderRequest("s1", "BTCUSDT", "sell", "market", 0.6, decision_price=29999.0), ts=2_000)
    f = ev[0].fields
    # 0.5 @ 30000 + 0.1 @ 29999 = 17999.90
    assert f["price"] == pytest.approx(17999.9 / 0.6)
    assert f["notional_usd"] == pytest.approx(17999.90, abs=1e-8)
    assert f["fee_usd"] == pytest.approx(17.9999, abs=1e-8)
    assert f["slippage_pct"] < 0                                  # sold above the decision price
    assert f["slippage_pct"] == pytest.approx((29999.0 - 17999.9 / 0.6) / 29999.0 * 100)
    assert ex.balances["USDT"] == pytest.approx(17981.9001, abs=1e-8)
    assert ex.balances["BTC"] == pytest.approx(0.4, abs=1e-12)


def test_no_decision_price_means_zero_slippage(markets):
    ex = exchange(markets)
    (e,) = ex.submit(OrderRequest("b", "BTCUSDT", "buy", "market", 0.1), ts=1)
    assert e.fields["slippage_pct"] == 0.0


def test_market_order_partial_fill_on_thin_book(markets):
    ex = exchange(markets, usdt=50_000.0)
    ev = ex.submit(OrderRequest("b1", "BTCUSDT", "buy", "market", 2.0, manual=True), ts=3_000)
    assert [e.kind for e in ev] == ["fill", "order_canceled"]
    fill, cancel = ev[0].fields, ev[1].fields
    assert fill["qty"] == 1.5 and fill["_remaining"] == 0.5
    assert fill["notional_usd"] == pytest.approx(45010.8, abs=1e-8)
    assert cancel["_reason"] == "insufficient liquidity" and cancel["_client_id"] == "b1"
    assert cancel["age_s"] == 0.0 and cancel["_remaining"] == 0.5
    assert cancel["notional_usd"] == pytest.approx(0.5 * 30001.0)
    assert ex.balances["USDT"] == pytest.approx(50_000 - 45010.8 * 1.001, abs=1e-8)
    assert ex.balances["BTC"] == 1.5
    # the ask side is now empty: a second buy has no price
    (rej,) = ex.submit(OrderRequest("b2", "BTCUSDT", "buy", "market", 0.1), ts=3_001)
    assert rej.kind == "order_rejected" and rej.fields["_reason"] == "no market price"


def test_ticker_fallback_fills_best_level_only(markets):
    ex = PaperExchange(markets, {"USDT": 10_000.0})
    ex.on_market(Event("book_ticker", 1_000, "ETHUSDT", {"bid": 2000.0, "bid_qty": 3.0, "ask": 2000.5,
                                                         "ask_qty": 0.3, "mid": 2000.25, "spread_bps": 2.5}))
    assert ex.best("ETHUSDT") == (2000.0, 2000.5)
    ev = ex.submit(OrderRequest("e1", "ETHUSDT", "buy", "market", 1.0), ts=1_001)
    assert [e.kind for e in ev] == ["fill", "order_canceled"]
    assert ev[0].fields["qty"] == 0.3 and ev[0].fields["price"] == 2000.5
    assert ev[1].fields["_remaining"] == 0.7
    assert ex.balances["ETH"] == 0.3
    assert ex.balances["USDT"] == pytest.approx(10_000 - 600.15 * 1.001, abs=1e-8)


def test_rejections(markets):
    ex = exchange(markets, usdt=100.0, btc=0.001)

    def reject(req):
        (e,) = ex.submit(req, ts=5_000)
        assert e.kind == "order_rejected" and e.fields["rule"] == "exchange"
        assert e.fields["_client_id"] == req.client_id and e.fields["manual"] is req.manual
        return e.fields["_reason"]

    assert reject(OrderRequest("r1", "BTCUSDT", "buy", "market", 0.01)).startswith("insufficient USDT balance")
    assert reject(OrderRequest("r2", "BTCUSDT", "sell", "market", 0.002)).startswith("insufficient BTC balance")
    assert reject(OrderRequest("r3", "BTCUSDT", "buy", "market", 0.0003, manual=True)) == "below minimum notional 10.0"
    assert reject(OrderRequest("r4", "BTCUSDT", "buy", "limit", 0.0003, price=29000.0)) == "below minimum notional 10.0"
    assert reject(OrderRequest("r5", "BTCUSDT", "buy", "market", 0.000004)) == "quantity below lot size minimum"
    assert reject(OrderRequest("r6", "XRPUSDT", "buy", "market", 1.0)) == "unknown symbol"
    assert reject(OrderRequest("r7", "OLDUSDT", "buy", "limit", 10.0, price=1.0)) == "symbol not trading"
    assert reject(OrderRequest("r8", "BTCUSDT", "buy", "limit", 0.001, price=None)).startswith("limit order needs")
    assert reject(OrderRequest("r9", "ETHUSDT", "buy", "market", 1.0)) == "no market price"
    # nothing moved
    assert ex.balances == {"USDT": 100.0, "BTC": 0.001} and ex.open_orders == {}


def test_quantity_is_rounded_down_to_the_step(markets):
    ex = exchange(markets)
    (e,) = ex.submit(OrderRequest("b", "BTCUSDT", "buy", "market", 0.1234567), ts=1)
    assert e.fields["qty"] == 0.12345 and ex.balances["BTC"] == 0.12345


# -------------------------------------------------------------- limit orders


def test_limit_rests_then_fills_as_maker_on_trades_through_it(markets):
    ex = exchange(markets, taker_fee_pct=0.1, maker_fee_pct=0.02)
    assert ex.submit(OrderRequest("L1", "BTCUSDT", "buy", "limit", 0.1, price=29995.004,
                                  decision_price=30000.0), ts=10_000) == []
    o = ex.open_orders["L1"]
    assert o.price == 29995.0 and o.remaining == 0.1        # price rounded down for a buy
    locked = 0.1 * 29995.0 * 1.0002
    assert ex.locked["USDT"] == pytest.approx(locked, abs=1e-8)
    assert ex.balances["USDT"] == pytest.approx(20_000 - locked, abs=1e-8)
    # trades above the limit, and in other symbols, do not touch it
    assert ex.on_market(trade(11_000, 29995.01, 5.0)) == []
    assert ex.on_market(trade(11_000, 100.0, 5.0, symbol="ETHUSDT")) == []
    # a trade at the limit fills up to the trade's quantity
    (f1,) = ex.on_market(trade(12_000, 29995.0, 0.04))
    assert f1.kind == "fill" and f1.ts == 12_000
    assert f1.fields["maker"] is True and f1.fields["price"] == 29995.0 and f1.fields["qty"] == 0.04
    assert f1.fields["fee_usd"] == pytest.approx(0.04 * 29995.0 * 0.0002, abs=1e-8)
    assert f1.fields["_remaining"] == 0.06 and f1.fields["_client_id"] == "L1"
    assert f1.fields["slippage_pct"] == pytest.approx((29995.0 - 30000.0) / 30000.0 * 100)
    # a trade through it fills the rest and closes the order
    (f2,) = ex.on_market(trade(13_000, 29990.0, 1.0))
    assert f2.fields["qty"] == 0.06 and f2.fields["_remaining"] == 0.0
    assert ex.open_orders == {}
    assert ex.locked["USDT"] == pytest.approx(0.0, abs=1e-8)
    assert ex.balances["BTC"] == 0.1
    assert round(ex.balances["USDT"], 2) == 16999.90          # 20000 - 2999.50 - 0.5999
    assert ex.balances["USDT"] == pytest.approx(20_000 - 2999.5 - 0.5999, abs=1e-8)
    assert ex.on_market(trade(14_000, 29000.0, 1.0)) == []


def test_sell_limit_rests_and_one_trade_is_shared_in_price_time_priority(markets):
    ex = exchange(markets, usdt=0.0, btc=1.0)
    assert ex.submit(OrderRequest("S2", "BTCUSDT", "sell", "limit", 0.3, price=30006.0), ts=1) == []
    assert ex.submit(OrderRequest("S1", "BTCUSDT", "sell", "limit", 0.3, price=30005.0), ts=2) == []
    assert ex.submit(OrderRequest("S3", "BTCUSDT", "sell", "limit", 0.3, price=30006.0), ts=3) == []
    assert ex.balances["BTC"] == pytest.approx(0.1) and ex.locked["BTC"] == pytest.approx(0.9)
    ev = ex.on_market(trade(10, 30006.0, 0.5, aggressor="buy"))
    assert [(e.fields["_client_id"], e.fields["qty"]) for e in ev] == [("S1", 0.3), ("S2", 0.2)]
    assert set(ex.open_orders) == {"S2", "S3"} and ex.open_orders["S2"].remaining == 0.1
    assert ex.balances["USDT"] == pytest.approx((0.3 * 30005 + 0.2 * 30006) * 0.999, abs=1e-8)


def test_marketable_limit_fills_as_taker_up_to_its_price_then_rests(markets):
    ex = exchange(markets)
    ev = ex.submit(OrderRequest("M1", "BTCUSDT", "buy", "limit", 0.4, price=30001.5), ts=20_000)
    assert [e.kind for e in ev] == ["fill"]
    f = ev[0].fields
    assert f["maker"] is False and f["qty"] == 0.2 and f["price"] == 30001.0
    assert f["fee_usd"] == pytest.approx(0.2 * 30001.0 * 0.001, abs=1e-8)
    assert f["_remaining"] == 0.2 and f["_order_type"] == "limit"
    o = ex.open_orders["M1"]
    assert o.remaining == 0.2 and o.price == 30001.5
    (g,) = ex.on_market(trade(21_000, 30001.5, 1.0))
    assert g.fields["maker"] is True and g.fields["qty"] == 0.2 and g.fields["price"] == 30001.5
    assert ex.open_orders == {} and ex.balances["BTC"] == 0.4
    spent = 0.2 * 30001.0 * 1.001 + 0.2 * 30001.5 * 1.001
    assert ex.balances["USDT"] == pytest.approx(20_000 - spent, abs=1e-8)


def test_marketable_sell_limit_walks_bids_down_to_its_price(markets):
    ex = exchange(markets, usdt=0.0, btc=2.0)
    ev = ex.submit(OrderRequest("M2", "BTCUSDT", "sell", "limit", 2.0, price=29999.0), ts=1)
    assert [e.kind for e in ev] == ["fill"]
    assert ev[0].fields["qty"] == 1.5 and ev[0].fields["_worst_price"] == 29999.0
    assert ex.open_orders["M2"].remaining == 0.5 and ex.locked["BTC"] == 0.5
    assert ex.balances["BTC"] == pytest.approx(0.0, abs=1e-12)


def test_cancel_reports_age_and_releases_funds(markets):
    ex = exchange(markets)
    ex.submit(OrderRequest("C1", "BTCUSDT", "buy", "limit", 0.1, price=29000.0, manual=True), ts=1_000)
    assert ex.balances["USDT"] < 20_000
    (c,) = ex.cancel("C1", ts=4_500)
    assert c.kind == "order_canceled" and c.ts == 4_500 and c.symbol == "BTCUSDT"
    assert c.fields["age_s"] == 3.5 and c.fields["manual"] is True
    assert c.fields["notional_usd"] == pytest.approx(2900.0) and c.fields["_client_id"] == "C1"
    assert ex.balances["USDT"] == 20_000.0 and ex.locked["USDT"] == 0.0 and ex.open_orders == {}
    assert ex.cancel("C1", ts=5_000) == [] and ex.cancel("nope", ts=5_000) == []
    # a cancelled order is no longer filled by trades
    assert ex.on_market(trade(6_000, 28000.0, 1.0)) == []


def test_duplicate_client_id_is_rejected_while_open(markets):
    ex = exchange(markets)
    ex.submit(OrderRequest("D", "BTCUSDT", "buy", "limit", 0.1, price=29000.0), ts=1)
    (e,) = ex.submit(OrderRequest("D", "BTCUSDT", "buy", "limit", 0.1, price=29000.0), ts=2)
    assert e.kind == "order_rejected" and e.fields["_reason"] == "duplicate client order id"


def test_cancel_all(markets):
    ex = exchange(markets)
    ex.submit(OrderRequest("A", "BTCUSDT", "buy", "limit", 0.1, price=29000.0), ts=1)
    ex.submit(OrderRequest("B", "BTCUSDT", "buy", "limit", 0.1, price=28000.0), ts=2)
    ev = ex.cancel_all(ts=10)
    assert [e.fields["_client_id"] for e in ev] == ["A", "B"]
    assert ex.balances["USDT"] == 20_000.0


# ------------------------------------------------------- market data plumbing


def test_depth_events_get_best_prices(markets):
    ex = PaperExchange(markets, {})
    e0 = Event("depth", 1, "BTCUSDT", {"_first_id": 5, "_last_id": 6, "_bids": [(1.0, 1.0)], "_asks": []})
    ex.on_market(e0)
    assert e0.fields["best_bid"] == 0.0 and e0.fields["best_ask"] == 0.0    # before any snapshot
    e1 = depth_snapshot(ts=2)
    ex.on_market(e1)
    assert (e1.fields["best_bid"], e1.fields["best_ask"]) == (30000.0, 30001.0)
    e2 = Event("depth", 3, "BTCUSDT", {"_first_id": 101, "_last_id": 102,
                                       "_bids": [(30000.5, 1.0)], "_asks": [(30001.0, 0.0)]})
    ex.on_market(e2)
    assert (e2.fields["best_bid"], e2.fields["best_ask"]) == (30000.5, 30002.0)
    assert ex.best("BTCUSDT") == (30000.5, 30002.0)
    assert ex.best("ETHUSDT") is None


def _scenario(markets):
    ex = PaperExchange(markets, {"USDT": 50_000.0, "BTC": 1.0, "ETH": 0.0})
    events = []
    stream = [
        depth_snapshot(ts=1_000),
        Event("book_ticker", 1_001, "ETHUSDT", {"bid": 2000.0, "bid_qty": 5.0, "ask": 2000.1, "ask_qty": 4.0,
                                                "mid": 2000.05, "spread_bps": 0.5}),
        Event("depth", 1_100, "BTCUSDT", {"_first_id": 101, "_last_id": 103,
                                          "_bids": [(29998.0, 0.7)], "_asks": [(30003.0, 0.4)]}),
    ]
    orders = [
        OrderRequest("o1", "BTCUSDT", "buy", "market", 0.45, decision_price=30000.5),
        OrderRequest("o2", "BTCUSDT", "sell", "limit", 0.2, price=30020.0),
        OrderRequest("o3", "ETHUSDT", "buy", "market", 1.33333, decision_price=2000.0),
        OrderRequest("o4", "BTCUSDT", "buy", "limit", 0.3, price=29999.5),
    ]
    for ev in stream:
        events += ex.on_market(ev)
    for i, req in enumerate(orders):
        events += ex.submit(req, ts=2_000 + i)
    events += ex.on_market(trade(3_000, 30020.0, 0.15, aggressor="buy"))
    events += ex.on_market(trade(3_001, 29999.0, 0.1))
    events += ex.cancel("o2", ts=4_000)
    events += ex.cancel("o4", ts=4_100)
    return [(e.kind, e.ts, e.symbol, e.fields) for e in events], dict(ex.balances), dict(ex.locked)


def test_determinism(markets):
    a = _scenario(markets)
    b = _scenario(markets)
    assert a == b
    kinds = [k for k, *_ in a[0]]
    assert kinds.count("fill") == 4 and kinds.count("order_canceled") == 2
    assert repr(a) == repr(b)


# ------------------------------------------------------------ recorded sample


SAMPLE_DIR = Path(__file__).resolve().parent.parent / "genesis" / "data" / "sample"


def test_sample_replay_keeps_the_book_synced(markets):
    samples = sorted(SAMPLE_DIR.glob("*.gz")) if SAMPLE_DIR.is_dir() else []
    if not samples:
        pytest.skip("bundled sample not there yet")
    feeds = pytest.importorskip("genesis.engine.feeds")
    ex = PaperExchange(markets, {"USDT": 1_000.0})
    for path in samples:
        seen_snapshot = False
        depth_after = 0
        for event in feeds.open_feed(path):
            if getattr(event, "kind", None) is None:
                continue
            ex.on_market(event)
            if event.kind != "depth":
                continue
            if event.fields.get("_snapshot"):
                seen_snapshot = True
            elif seen_snapshot:
                depth_after += 1
                book = ex.books[event.symbol]
                assert book.synced, f"{path.name}: lost sync at ts {event.ts}"
                bid, ask = event.fields["best_bid"], event.fields["best_ask"]
                assert 0 < bid < ask, f"{path.name}: bid {bid} ask {ask} at ts {event.ts}"
        assert seen_snapshot and depth_after > 0, path.name
    for book in ex.books.values():
        assert book.gaps == 0


def test_amend_moves_a_resting_order_relocks_funds_and_counts(markets):
    ex = exchange(markets, usdt=3_000.0, taker_fee_pct=0.1, maker_fee_pct=0.1)
    ex.submit(OrderRequest("A1", "BTCUSDT", "buy", "limit", 0.05, price=29000.0, manual=True), ts=1_000)
    events, problem = ex.amend("A1", 29100.004, ts=2_000)
    assert problem is None and [e.kind for e in events] == ["order_amended"]
    f = events[0].fields
    assert f["amendments"] == 1 and f["price"] == 29100.0 and f["old_price"] == 29000.0 and f["manual"] is True
    o = ex.open_orders["A1"]
    assert o.price == 29100.0 and o.amendments == 1 and o.created_ts == 1_000   # age counts from placing
    assert ex.locked["USDT"] == pytest.approx(0.05 * 29100.0 * 1.001, abs=1e-8)
    assert ex.balances["USDT"] == pytest.approx(3_000.0 - 0.05 * 29100.0 * 1.001, abs=1e-8)
    # more than the account holds: refused, the order untouched
    events, problem = ex.amend("A1", 60_000.0, ts=3_000)
    assert events == [] and problem.startswith("insufficient USDT balance")
    assert ex.open_orders["A1"].price == 29100.0 and ex.open_orders["A1"].amendments == 1
    # a filter failure is refused too
    assert ex.amend("A1", 0.001, ts=3_000)[1] is not None and ex.amend("nope", 1.0, ts=3_000)[1] == "no open order 'nope'"
    # loses time priority: a later order at the same price fills first after the amend
    ex.submit(OrderRequest("B1", "BTCUSDT", "buy", "limit", 0.01, price=29200.0), ts=3_500)
    ex.amend("A1", 29200.0, ts=4_000)
    (fill,) = ex.on_market(trade(5_000, 29200.0, 0.01))
    assert fill.fields["_client_id"] == "B1"
    # moved across the book it fills at once as a taker, up to its price
    events, problem = ex.amend("A1", 30001.0, ts=6_000)
    assert problem is None and [e.kind for e in events] == ["order_amended", "fill"]
    assert events[0].fields["amendments"] == 3
    assert events[1].fields["maker"] is False and events[1].fields["price"] == 30001.0
    assert events[1].fields["qty"] == 0.05 and "A1" not in ex.open_orders
    assert ex.locked["USDT"] == pytest.approx(0.0, abs=1e-8)
