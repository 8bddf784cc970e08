"""The simulator's GET /api/v3/klines and POST /api/v3/order/test through the real ccxt
binance client (sync), on 127.0.0.1.

Expected candles are aggregated here from the bundled capture's trade records that the
simulator has replayed (their `T` shifted as the replay shifts them), never taken
from the simulator."""
from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from genesis.simulator import SimulatorThread, ccxt_config

MS = {"1s": 1000, "1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread(speed="step", maker_fee="0.0002", taker_fee="0.0007",
                         balances={"USDT": "10000", "BTC": "1", "ETH": "0"}) as s:
        s.step(ms=100_000)
        yield s


@pytest.fixture(scope="module")
def ex(sim) -> ccxt.binance:
    client = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
    client.load_markets()
    return client


def replayed_trades(sim, symbol: str) -> list[tuple[int, Decimal, Decimal, bool]]:
    """(shifted time, price, qty, buyer is taker) of every trade record replayed so far."""
    state = sim.state()["replay"]
    shift = state["shift_ms"]
    return [(r.data["T"] + shift, Decimal(r.data["p"]), Decimal(r.data["q"]), not r.data["m"])
            for r in sim.sim.capture.records[:state["position"]] if r.kind == "trade" and r.symbol == symbol]


def expected(trades, step: int) -> list[list]:
    """Candles of `step` ms from `trades`: every interval from the first trade's to the
    last trade's, an interval without trades flat at the previous close with no volume."""
    out: dict[int, list] = {}
    for t, p, q, taker_buy in trades:
        o = t - t % step
        row = out.setdefault(o, [o, p, p, p, p, Decimal(0), o + step - 1, Decimal(0), 0, Decimal(0), Decimal(0)])
        row[2], row[3], row[4] = max(row[2], p), min(row[3], p), p
        row[5] += q
        row[7] += p * q
        row[8] += 1
        if taker_buy:
            row[9] += q
            row[10] += p * q
    rows, prev = [], None
    for o in range(min(out), max(out) + 1, step):
        if o in out:
            rows.append(out[o])
        else:
            c = prev[4]
            rows.append([o, c, c, c, c, Decimal(0), o + step - 1, Decimal(0), 0, Decimal(0), Decimal(0)])
        prev = rows[-1]
    return rows


def as_wire(row) -> list:
    """Binance's form of a kline row: times and the trade count as integers, amounts as
    8-decimal strings, then the unused "0"."""
    def f8(x):
        return f"{x:.8f}"
    return [row[0], *map(f8, row[1:6]), row[6], f8(row[7]), row[8], f8(row[9]), f8(row[10]), "0"]


def test_fetch_ohlcv_is_built_from_the_replayed_trades(sim, ex):
    for symbol, market in (("BTCUSDT", "BTC/USDT"), ("ETHUSDT", "ETH/USDT")):
        want = expected(replayed_trades(sim, symbol), MS["1m"])
        got = ex.fetch_ohlcv(market, "1m")
        assert len(got) == len(want) >= 2
        assert got == [[r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])] for r in want]
        raw = ex.public_get_klines({"symbol": symbol, "interval": "1m"})
        assert raw == [as_wire(r) for r in want]


def test_seconds_klines_fill_quiet_seconds_and_page_with_since_and_limit(sim, ex):
    want = expected(replayed_trades(sim, "ETHUSDT"), MS["1s"])
    quiet = [r for r in want if r[8] == 0]
    assert quiet, "the ETH sample has seconds without trades"
    raw = ex.public_get_klines({"symbol": "ETHUSDT", "interval": "1s", "limit": 1000})
    assert raw == [as_wire(r) for r in want]
    since = want[10][0] - 400                           # inside a second: starts with the next one
    page = ex.fetch_ohlcv("ETH/USDT", "1s", since=since, limit=7)
    assert [r[0] for r in page] == [r[0] for r in want[10:17]]
    # endTime alone: the last `limit` klines opening at or before it
    end = want[30][0] + 999
    rows = ex.public_get_klines({"symbol": "ETHUSDT", "interval": "1s", "endTime": end, "limit": 5})
    assert [r[0] for r in rows] == [r[0] for r in want[26:31]]
    # both: from startTime, at most limit, none after endTime
    rows = ex.public_get_klines({"symbol": "ETHUSDT", "interval": "1s", "startTime": want[3][0],
                                 "endTime": want[5][0], "limit": 100})
    assert [r[0] for r in rows] == [r[0] for r in want[3:6]]
    # without either: the most recent `limit`, and the default limit is 500
    rows = ex.public_get_klines({"symbol": "ETHUSDT", "interval": "1s", "limit": 3})
    assert rows == [as_wire(r) for r in want[-3:]]
    assert len(ex.public_get_klines({"symbol": "ETHUSDT", "interval": "1s"})) == min(len(want), 500)


def test_longer_intervals_and_the_kline_that_is_still_open(sim, ex):
    trades = replayed_trades(sim, "BTCUSDT")
    for interval in ("5m", "1h", "1d"):
        want = expected(trades, MS[interval])
        assert ex.public_get_klines({"symbol": "BTCUSDT", "interval": interval}) == [as_wire(r) for r in want]
    # the open kline ends with the last trade replayed; trades not replayed yet are not in it
    (last,) = ex.public_get_klines({"symbol": "BTCUSDT", "interval": "1h", "limit": 1})
    assert Decimal(last[4]) == trades[-1][1]
    assert Decimal(last[5]) == sum(q for t, _, q, _ in trades if last[0] <= t <= last[6])
    sim.step(ms=5_000)
    more = replayed_trades(sim, "BTCUSDT")
    assert len(more) > len(trades)
    (now,) = ex.public_get_klines({"symbol": "BTCUSDT", "interval": "1h", "limit": 1})
    assert Decimal(now[4]) == more[-1][1] and now[8] == sum(1 for t, *_ in more if now[0] <= t <= now[6])


def test_klines_errors_are_binances(ex):
    def code(params):
        with pytest.raises(ccxt.BaseError) as err:
            ex.public_get_klines(params)
        return str(err.value)

    assert '"code":-1120' in code({"symbol": "BTCUSDT", "interval": "7m"})
    assert "Invalid interval." in code({"symbol": "BTCUSDT", "interval": "1H"})     # case-sensitive
    with pytest.raises(ccxt.BadSymbol):
        ex.public_get_klines({"symbol": "NOPEUSDT", "interval": "1m"})
    assert '"code":-1102' in code({"symbol": "BTCUSDT"})
    assert '"code":-1023' in code({"symbol": "BTCUSDT", "interval": "1m", "startTime": 2, "endTime": 1})
    assert '"code":-1100' in code({"symbol": "BTCUSDT", "interval": "1m", "startTime": "yesterday"})
    assert '"code":-1130' in code({"symbol": "BTCUSDT", "interval": "1m", "limit": 0})
    assert '"code":-1100' in code({"symbol": "BTCUSDT", "interval": "1m", "timeZone": "+15:00"})
    assert ex.public_get_klines({"symbol": "BTCUSDT", "interval": "1m", "limit": 5000})   # capped, not refused


def test_a_time_zone_moves_the_interval_boundaries(sim, ex):
    trades = replayed_trades(sim, "BTCUSDT")
    utc = ex.public_get_klines({"symbol": "BTCUSDT", "interval": "1d"})
    shifted = ex.public_get_klines({"symbol": "BTCUSDT", "interval": "1d", "timeZone": "8"})
    t0 = trades[0][0]
    assert utc[0][0] == t0 - t0 % MS["1d"]
    assert shifted[0][0] == t0 - (t0 + 8 * 3_600_000) % MS["1d"]


def _orders_and_balances(sim) -> tuple:
    acct = sim.state()["accounts"]["genesis-sim-key"]
    return acct["orders"], acct["balances"]


def test_order_test_validates_like_a_new_order_and_places_nothing(sim, ex):
    before = _orders_and_balances(sim)
    bid = float(ex.public_get_ticker_bookticker({"symbol": "BTCUSDT"})["bidPrice"])
    placed = ex.create_order("BTC/USDT", "limit", "buy", 0.001, bid, {"test": True})
    assert placed["id"] is None
    assert ex.last_http_response == "{}"
    headers = ex.last_response_headers
    assert headers["X-MBX-ORDER-COUNT-10S"] == "0"                    # no order counted
    assert _orders_and_balances(sim) == before
    # the checks are a new order's: the same error for the same bad order (raw requests:
    # ccxt would round the amounts to the market's precision first)
    for qty, price, text in (("0.00100000", f"{bid + 0.001:.8f}", "PRICE_FILTER"),
                             ("0.00000100", f"{bid:.8f}", "LOT_SIZE")):
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": qty, "price": price}
        for send in (ex.private_post_order_test, ex.private_post_order):
            with pytest.raises(ccxt.InvalidOrder, match=text):
                send(dict(order))
    # the matching engine is not asked: a LIMIT_MAKER that would take passes the test
    ask = ex.public_get_ticker_bookticker({"symbol": "BTCUSDT"})["askPrice"]
    maker = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.00100000", "price": ask}
    assert ex.private_post_order_test(dict(maker)) == {}
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        ex.private_post_order(dict(maker))
    with pytest.raises(ccxt.BadRequest, match="timeInForce"):
        ex.private_post_order_test({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001",
                                    "price": f"{bid:.2f}"})
    assert _orders_and_balances(sim) == before


def test_order_test_commission_rates_and_signature(sim, ex):
    used = int(ex.last_response_headers.get("X-MBX-USED-WEIGHT-1M", 0))
    answer = ex.private_post_order_test({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001",
                                         "computeCommissionRates": "true"})
    assert int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"]) - used == 20
    cfg = sim.sim.config
    assert answer["standardCommissionForOrder"] == {"maker": f"{Decimal(cfg.maker_fee):.8f}",
                                                    "taker": f"{Decimal(cfg.taker_fee):.8f}"}
    assert answer["taxCommissionForOrder"] == {"maker": "0.00000000", "taker": "0.00000000"}
    assert set(answer["discount"]) == {"enabledForAccount", "enabledForSymbol", "discountAsset", "discount"}
    wrong = ccxt.binance(ccxt_config(sim.rest_url, secret="not-the-secret", enableRateLimit=False))
    wrong.markets = ex.markets
    wrong.markets_by_id = ex.markets_by_id
    with pytest.raises(ccxt.AuthenticationError):
        wrong.private_post_order_test({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001"})
