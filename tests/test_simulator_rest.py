"""The simulator's REST API through the real ccxt binance client (sync), on 127.0.0.1.

Expected values are computed from the simulator's own /depth answer and from the
bundled capture, never hard-coded."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

import ccxt
import pytest

from genesis.engine.feeds import exchange_info_path
from genesis.simulator import SimulatorThread, ccxt_config
from genesis.simulator.replay import load_capture

FEE = Decimal("0.001")
Q8 = Decimal("0.00000001")


def r8(x: Decimal) -> Decimal:
    return x.quantize(Q8, rounding=ROUND_HALF_UP)


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", balances={"USDT": "200000", "BTC": "0", "ETH": "0"}) as s:
        yield s


def client(sim, **kw) -> ccxt.binance:
    return ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False, **kw))


def depth(ex, symbol="BTCUSDT", limit=1000) -> dict:
    return ex.public_get_depth({"symbol": symbol, "limit": limit})


def walk(levels, qty: Decimal) -> list[tuple[Decimal, Decimal]]:
    out, left = [], qty
    for p, q in levels:
        take = min(Decimal(q), left)
        out.append((Decimal(p), take))
        left -= take
        if left <= 0:
            break
    return out


def balances(sim, key="genesis-sim-key") -> dict:
    return {a: (Decimal(b["free"]), Decimal(b["locked"]))
            for a, b in sim.state()["accounts"][key]["balances"].items()}


def future_trades(sim, symbol="BTCUSDT"):
    """(record index, price, qty) of the recorded trades not yet replayed."""
    pos = sim.state()["replay"]["position"]
    recs = sim.sim.capture.records
    return [(i, Decimal(r.data["p"]), Decimal(r.data["q"])) for i, r in enumerate(recs)
            if i >= pos and r.symbol == symbol and r.kind == "trade"]


def test_load_markets_is_one_exchange_info_call(sim):
    ex = client(sim)
    urls = []
    real_fetch = ex.fetch

    def counting(url, method="GET", headers=None, body=None):
        urls.append((method, url))
        return real_fetch(url, method, headers, body)

    ex.fetch = counting
    markets = ex.load_markets()
    assert urls == [("GET", sim.rest_url + "/api/v3/exchangeInfo")]
    info = json.loads(exchange_info_path().read_text())
    assert set(markets) == {f"{s['baseAsset']}/{s['quoteAsset']}" for s in info["symbols"]}
    assert ex.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert ex.fetch_time() == pytest.approx(sim.sim.now_ms(), abs=2000)


def test_market_buy_and_sell_fill_at_book_prices_with_exact_fees(sim):
    ex = client(sim)
    ex.load_markets()
    book = depth(ex)
    qty = Decimal(book["asks"][0][1]) + Decimal("0.5")          # more than the best level: walks two+
    expected = walk(book["asks"], qty)
    assert len(expected) >= 2
    order = ex.create_order("BTC/USDT", "market", "buy", float(qty), None, {"clientOrderId": "mb-1"})
    info = order["info"]
    assert info["status"] == "FILLED" and info["clientOrderId"] == "mb-1"
    fills = [(Decimal(f["price"]), Decimal(f["qty"])) for f in info["fills"]]
    assert fills == expected
    cost = sum(p * q for p, q in expected)
    fee = sum(r8(q * FEE) for _, q in expected)
    assert Decimal(info["cummulativeQuoteQty"]) == cost
    assert [Decimal(f["commission"]) for f in info["fills"]] == [r8(q * FEE) for _, q in expected]
    assert {f["commissionAsset"] for f in info["fills"]} == {"BTC"}
    bal = balances(sim)
    assert bal["USDT"] == (Decimal(200000) - cost, 0)
    assert bal["BTC"] == (qty - fee, 0)

    # sell part of it back into the bids
    book = depth(ex)
    sell_qty = Decimal("1.23456")
    expected = walk(book["bids"], sell_qty)
    order = ex.create_order("BTC/USDT", "market", "sell", float(sell_qty))
    got = [(Decimal(f["price"]), Decimal(f["qty"])) for f in order["info"]["fills"]]
    assert got == expected
    proceeds = sum(p * q for p, q in expected)
    sell_fee = sum(r8(p * q * FEE) for p, q in expected)
    bal2 = balances(sim)
    assert bal2["BTC"][0] == qty - fee - sell_qty
    assert bal2["USDT"][0] == Decimal(200000) - cost + proceeds - sell_fee

    # the account endpoint, ccxt's balance and myTrades agree with the exchange state
    total = ex.fetch_balance()["total"]
    assert Decimal(str(total["USDT"])) == bal2["USDT"][0]
    trades = ex.fetch_my_trades("BTC/USDT")
    state = sim.state()["accounts"]["genesis-sim-key"]
    assert sorted((t["info"] for t in trades), key=lambda t: t["id"]) == state["trades"]
    assert ex.fetch_order(order["id"], "BTC/USDT")["info"] == state["orders"][-1]


def test_market_buy_by_quote_amount(sim):
    ex = client(sim)
    ex.load_markets()
    best, best_qty = (Decimal(x) for x in depth(ex)["asks"][0])
    assert best_qty * best > 100                     # one level is enough
    order = ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "100"})
    qty = Decimal(order["executedQty"])
    assert Decimal(order["origQuoteOrderQty"]) == 100
    assert qty == (Decimal(100) / best).quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    assert Decimal(order["cummulativeQuoteQty"]) == qty * best <= 100


def test_limit_order_rests_then_fills_as_maker_when_a_trade_prints_through(sim):
    ex = client(sim)
    ex.load_markets()
    bid = Decimal(depth(ex)["bids"][0][0])
    first = next(t for t in future_trades(sim) if t[1] < bid)       # the first print through the bid
    qty = Decimal("0.002")
    order = ex.create_order("BTC/USDT", "limit", "buy", float(qty), float(bid), {"clientOrderId": "lim-1"})
    assert order["status"] == "open" and order["filled"] == 0
    assert [o["clientOrderId"] for o in ex.fetch_open_orders("BTC/USDT")] == ["lim-1"]
    assert balances(sim)["USDT"] == (Decimal(200000) - bid * qty, bid * qty)

    report = sim.step(until_fill=True)
    assert report["position"] == first[0] + 1 and report["fills"] == 1
    filled = min(qty, first[2])
    got = ex.fetch_order(order["id"], "BTC/USDT")
    assert Decimal(got["info"]["executedQty"]) == filled
    assert got["info"]["status"] == ("FILLED" if filled == qty else "PARTIALLY_FILLED")
    trade = ex.fetch_my_trades("BTC/USDT")[-1]
    assert trade["takerOrMaker"] == "maker" and Decimal(trade["info"]["price"]) == bid
    assert Decimal(trade["info"]["commission"]) == r8(filled * FEE)
    free, locked = balances(sim)["USDT"]
    assert locked == bid * (qty - filled) and free + locked == Decimal(200000) - bid * filled
    assert balances(sim)["BTC"][0] == filled - r8(filled * FEE)


def test_cancel_releases_funds_and_unknown_cancel_is_order_not_found(sim):
    ex = client(sim)
    ex.load_markets()
    bid = Decimal(depth(ex)["bids"][0][0])
    price = bid - Decimal(500)
    order = ex.create_order("BTC/USDT", "limit", "buy", 0.01, float(price), {"clientOrderId": "c-1"})
    assert balances(sim)["USDT"][1] == price * Decimal("0.01")
    canceled = ex.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert canceled["info"]["origClientOrderId"] == "c-1"
    assert balances(sim)["USDT"] == (Decimal(200000), 0)
    assert ex.fetch_open_orders("BTC/USDT") == []
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order(order["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order("999999", "BTC/USDT")
    # cancel all
    ex.create_order("ETH/USDT", "limit", "buy", 0.01, 2000.0)
    ex.create_order("ETH/USDT", "limit", "buy", 0.01, 2001.0)
    assert len(ex.cancel_all_orders("ETH/USDT")) == 2
    assert balances(sim)["USDT"] == (Decimal(200000), 0)


def test_duplicate_client_order_id_of_an_open_order_is_refused(sim):
    ex = client(sim)
    ex.load_markets()
    price = float(Decimal(depth(ex)["bids"][0][0]) - 300)
    ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "dup-1"})
    assert len(sim.state()["accounts"]["genesis-sim-key"]["orders"]) == 1
    found = ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "dup-1"})
    assert found["clientOrderId"] == "dup-1" and found["status"] == "open"


def test_ioc_fok_and_limit_maker(sim):
    ex = client(sim)
    ex.load_markets()
    book = depth(ex)
    ask0, ask0_qty = Decimal(book["asks"][0][0]), Decimal(book["asks"][0][1])
    qty = float(ask0_qty + Decimal("0.1"))
    # FOK at the best ask for more than it holds: nothing fills
    o = ex.create_order("BTC/USDT", "limit", "buy", qty, float(ask0), {"timeInForce": "FOK"})
    assert o["info"]["status"] == "EXPIRED" and Decimal(o["info"]["executedQty"]) == 0
    # IOC: fills the level, the rest expires
    o = ex.create_order("BTC/USDT", "limit", "buy", qty, float(ask0), {"timeInForce": "IOC"})
    assert o["info"]["status"] == "EXPIRED" and Decimal(o["info"]["executedQty"]) == ask0_qty
    with pytest.raises(ccxt.InvalidOrder, match="immediately match and take"):
        ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.001",
                               "price": str(ask0)})


def test_filters_and_balance_checks_use_binance_codes(sim):
    ex = client(sim, options={"createMarketBuyOrderRequiresPrice": False})
    ex.load_markets()
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        ex.private_post_order({**base, "quantity": "0.000015", "price": "60000"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        ex.private_post_order({**base, "quantity": "0.001", "price": "60000.005"})
    with pytest.raises(ccxt.BadRequest, match="MIN_NOTIONAL"):
        ex.private_post_order({**base, "quantity": "0.0001", "price": "60000"})
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "1"})
    with pytest.raises(ccxt.BadSymbol):
        ex.private_post_order({**base, "symbol": "DOGEUSDT", "quantity": "1", "price": "1"})
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USDT", "limit", "buy", 4.0, 60000.0)          # 240k > 200k USDT
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("ETH/USDT", "market", "sell", 1.0)                 # no ETH
    assert sim.state()["accounts"]["genesis-sim-key"]["orders"] == []


def test_signature_key_and_timestamp_errors_map_to_ccxt_exceptions(sim):
    good = client(sim)
    bad_secret = client(sim, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad_secret.fetch_balance()
    bad_key = client(sim, apiKey="nobody")
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        bad_key.fetch_balance()
    sim.set_clock(good.options["recvWindow"] + 5000)       # exchange clock ahead: request too old
    with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
        good.fetch_balance()
    sim.set_clock(-5000)                                    # exchange clock behind: request from the future
    with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
        good.fetch_balance()
    sim.set_clock(0)
    assert good.fetch_balance()["free"]["USDT"] == 200000
    # the secret never appears in an answer, even a refused one
    raw = urllib.request.urlopen(sim.rest_url + "/sim/state").read().decode()
    assert "genesis-sim-secret" not in raw


def test_all_orders_and_admin_state_match_the_client_view(sim):
    ex = client(sim)
    ex.load_markets()
    bid = Decimal(depth(ex)["bids"][0][0])
    ids = []
    for i in range(3):
        o = ex.create_order("BTC/USDT", "limit", "buy", 0.001, float(bid - 100 - i), {"clientOrderId": f"a-{i}"})
        ids.append(o["id"])
    ex.cancel_order(ids[1], "BTC/USDT")
    orders = ex.fetch_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in orders] == ["a-0", "a-1", "a-2"]
    assert [o["status"] for o in orders] == ["open", "canceled", "open"]
    state = json.loads(urllib.request.urlopen(sim.rest_url + "/sim/state").read())
    assert [o["info"] for o in orders] == state["accounts"]["genesis-sim-key"]["orders"]
    assert state["replay"]["position"] == state["replay"]["preroll"]


def test_public_market_data_endpoints(sim):
    ex = client(sim)
    ex.load_markets()
    ob = ex.fetch_order_book("BTC/USDT", 5)
    assert len(ob["bids"]) == len(ob["asks"]) == 5 and ob["bids"][0][0] < ob["asks"][0][0]
    ticker = ex.public_get_ticker_bookticker({"symbol": "BTCUSDT"})
    capture = load_capture(sim.sim.capture.files)
    pos = sim.state()["replay"]["position"]
    last_tick = [r for r in capture.records[:pos] if r.symbol == "BTCUSDT" and r.kind == "bookTicker"][-1]
    assert (ticker["bidPrice"], ticker["askPrice"]) == (last_tick.data["b"], last_tick.data["a"])
    sim.step(500)
    assert ex.fetch_order_book("BTC/USDT", 100)["nonce"] > ob["nonce"]
    assert ex.public_get_ping() == {}


def _post(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())


def test_admin_endpoints_over_http(sim):
    base = sim.rest_url
    start = sim.state()["replay"]["position"]
    assert _post(base + "/sim/step?n=25")["position"] == start + 25
    recs = sim.sim.capture.records
    t0 = recs[start + 25].recv_ns
    after = _post(base + "/sim/step?ms=1000")
    assert recs[after["position"] - 1].recv_ns < t0 + 1_000_000_000 <= recs[after["position"]].recv_ns
    spec = _post(base + "/sim/faults", {"reject_next": 3, "ws_drop_after": 9})
    assert (spec["reject_next"], spec["ws_drop_after"]) == (3, 9)
    assert _post(base + "/sim/faults", {"reset": True})["reject_next"] == 0
    with pytest.raises(urllib.error.HTTPError) as bad:
        _post(base + "/sim/faults", {"no_such_fault": 1})
    assert bad.value.code == 400
    clock = _post(base + "/sim/clock", {"offset_ms": 3_600_000})
    assert clock["offset_ms"] == 3_600_000
    assert client(sim).fetch_time() == pytest.approx(clock["serverTime"], abs=2000)
    assert _post(base + "/sim/limits", {"weight_limit": 100})["weight_limit"] == 100
