"""The simulator's websockets through real clients (``websockets`` and ccxt.pro):
market streams (raw, combined, SUBSCRIBE), depth resync by update id, user data over
a listenKey and over the WebSocket API, and the websocket faults."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.request
from decimal import Decimal

import ccxt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from genesis.simulator import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    Simulator,
    SimulatorThread,
    ccxt_config,
)


@pytest.fixture
def sim():
    with SimulatorThread(speed="step") as s:
        yield s


def client(sim) -> ccxt.binance:
    ex = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
    ex.load_markets()
    return ex


def upcoming(sim, symbol: str, kind: str, n: int):
    """The next `n` recorded records of one stream, from the replay position."""
    pos = sim.state()["replay"]["position"]
    return [r for r in sim.sim.capture.records[pos:] if r.symbol == symbol and r.kind == kind][:n]


async def subscribed(sim, stream: str | None = None, n: int = 1) -> None:
    """Wait until `n` connections listen to `stream` (or `n` user-data subscribers)."""
    for _ in range(200):
        conns = sim.state()["connections"]
        have = conns["streams"].get(stream, 0) if stream else conns["user"]
        if have >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no subscriber for {stream or 'user data'}")


async def recv_json(ws, timeout=2.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_all(ws, timeout=0.3) -> list:
    out = []
    while True:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        except TimeoutError:
            return out


def step_until(sim, symbol: str, kind: str, count: int) -> None:
    """Replay until `count` more records of that stream were sent."""
    recs = sim.sim.capture.records
    pos = sim.state()["replay"]["position"]
    seen = i = 0
    for i, r in enumerate(recs[pos:], start=1):
        if r.symbol == symbol and r.kind == kind:
            seen += 1
            if seen == count:
                break
    sim.step(i)


def test_raw_trade_stream_replays_recorded_trades_with_shifted_times(sim):
    async def main():
        expected = upcoming(sim, "BTCUSDT", "trade", 5)
        async with connect(sim.ws_url + "/ws/btcusdt@trade") as ws:
            await subscribed(sim, "btcusdt@trade")
            step_until(sim, "BTCUSDT", "trade", 5)
            got = [await recv_json(ws) for _ in range(5)]
        shift = sim.state()["replay"]["shift_ms"]
        for msg, rec in zip(got, expected):
            assert (msg["t"], msg["p"], msg["q"], msg["m"]) == (rec.data["t"], rec.data["p"], rec.data["q"],
                                                                 rec.data["m"])
            assert msg["E"] == rec.data["E"] + shift and msg["T"] == rec.data["T"] + shift
        assert abs(got[0]["E"] - time.time() * 1000) < 60_000          # looks current

    asyncio.run(main())


def test_combined_stream_and_subscribe_frames(sim):
    async def main():
        url = sim.ws_url + "/stream?streams=btcusdt@bookTicker/ethusdt@trade"
        async with connect(url) as combined, connect(sim.ws_url + "/ws") as plain:
            await plain.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 7}))
            assert await recv_json(plain) == {"result": None, "id": 7}
            await plain.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
            assert await recv_json(plain) == {"result": ["ethusdt@bookTicker"], "id": 8}
            await plain.send(json.dumps({"method": "SUBSCRIBE", "params": ["dogeusdt@trade"], "id": 9}))
            assert "error" in await recv_json(plain)
            await subscribed(sim, "btcusdt@bookTicker")
            await subscribed(sim, "ethusdt@trade")
            sim.step(300)
            msgs = await recv_all(combined)
            ticks = await recv_all(plain)
            await plain.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 10}))
            assert await recv_json(plain) == {"result": None, "id": 10}
            sim.step(300)
            assert await recv_all(plain, 0.1) == []
            assert await recv_all(combined, 0.1)                 # still streaming (and drained)
        pos = sim.state()["replay"]["position"] - 300
        recs = sim.sim.capture.records[pos - 300:pos]
        want = [(f"{r.symbol.lower()}@{'bookTicker' if r.kind == 'bookTicker' else 'trade'}", r.data.get("u"),
                 r.data.get("t")) for r in recs
                if (r.symbol, r.kind) in (("BTCUSDT", "bookTicker"), ("ETHUSDT", "trade"))]
        assert [(m["stream"], m["data"].get("u"), m["data"].get("t")) for m in msgs] == want
        eth_ticks = [r.data for r in recs if (r.symbol, r.kind) == ("ETHUSDT", "bookTicker")]
        assert ticks == eth_ticks                            # bookTicker has no time: sent unchanged

    asyncio.run(main())


def test_depth_stream_is_continuous_and_resyncs_with_the_rest_snapshot(sim):
    ex = client(sim)

    async def main():
        async with connect(sim.ws_url + "/ws/btcusdt@depth@100ms") as ws:
            await subscribed(sim, "btcusdt@depth@100ms")
            step_until(sim, "BTCUSDT", "depth", 10)
            buffered = await recv_all(ws, 0.2)
            snap = ex.public_get_depth({"symbol": "BTCUSDT", "limit": 1000})
            step_until(sim, "BTCUSDT", "depth", 60)
            buffered += await recv_all(ws, 0.3)
        return buffered, snap

    diffs, snap = asyncio.run(main())
    assert len(diffs) == 70
    for prev, cur in itertools.pairwise(diffs):
        assert cur["U"] == prev["u"] + 1                     # continuous ids, as recorded
    last = snap["lastUpdateId"]
    live = [d for d in diffs if d["u"] > last]
    assert live[0]["U"] <= last + 1 <= live[0]["u"]          # Binance's resync rule holds
    bids = {p: q for p, q in snap["bids"]}
    asks = {p: q for p, q in snap["asks"]}
    for d in live:
        for side, rows in ((bids, d["b"]), (asks, d["a"])):
            for p, q in rows:
                if Decimal(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
    now = ex.public_get_depth({"symbol": "BTCUSDT", "limit": 50})
    assert now["lastUpdateId"] == live[-1]["u"]
    top_bids = sorted(bids.items(), key=lambda kv: -Decimal(kv[0]))[:50]
    top_asks = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))[:50]
    assert [list(x) for x in top_bids] == now["bids"] and [list(x) for x in top_asks] == now["asks"]


def test_one_second_depth_stream_merges_the_100ms_diffs(sim):
    async def main():
        async with connect(sim.ws_url + "/ws/ethusdt@depth") as slow, \
                connect(sim.ws_url + "/ws/ethusdt@depth@100ms") as fast:
            await subscribed(sim, "ethusdt@depth@100ms")
            await subscribed(sim, "ethusdt@depth")
            step_until(sim, "ETHUSDT", "depth", 40)
            return await recv_all(slow), await recv_all(fast)

    slow, fast = asyncio.run(main())
    assert 2 <= len(slow) < len(fast)
    for prev, cur in itertools.pairwise(slow):
        assert cur["U"] == prev["u"] + 1 and cur["E"] // 1000 > prev["E"] // 1000
    assert slow[0]["U"] == fast[0]["U"]


def test_user_data_over_listen_key_new_then_trade(sim):
    ex = client(sim)
    listen_key = ex.public_post_userdatastream()["listenKey"]
    assert ex.public_post_userdatastream()["listenKey"] == listen_key      # one active key per account
    bid = Decimal(ex.public_get_depth({"symbol": "BTCUSDT"})["bids"][0][0])

    async def main():
        async with connect(sim.ws_url + "/ws/" + listen_key) as ws:
            await subscribed(sim)
            order = ex.create_order("BTC/USDT", "limit", "buy", 0.002, float(bid), {"clientOrderId": "ud-1"})
            new, pos1 = await recv_json(ws), await recv_json(ws)
            sim.step(until_fill=True)
            trade, pos2 = await recv_json(ws), await recv_json(ws)
            return order, new, pos1, trade, pos2

    order, new, pos1, trade, pos2 = asyncio.run(main())
    assert (new["e"], new["x"], new["X"], new["c"], new["i"]) == ("executionReport", "NEW", "NEW", "ud-1",
                                                                    int(order["id"]))
    assert (new["p"], new["q"], new["S"], new["o"], new["f"]) == (f"{bid:.8f}", "0.00200000", "BUY", "LIMIT", "GTC")
    assert pos1["e"] == "outboundAccountPosition"
    assert pos1["B"] == [{"a": "USDT", "f": f"{Decimal(10000) - bid * Decimal('0.002'):.8f}",
                          "l": f"{bid * Decimal('0.002'):.8f}"}]
    state = sim.state()["accounts"]["genesis-sim-key"]
    fill = state["trades"][-1]
    assert (trade["x"], trade["t"], trade["l"], trade["L"], trade["n"], trade["N"], trade["m"]) == \
        ("TRADE", fill["id"], fill["qty"], fill["price"], fill["commission"], "BTC", True)
    assert trade["X"] == state["orders"][-1]["status"] and trade["z"] == state["orders"][-1]["executedQty"]
    assert {b["a"] for b in pos2["B"]} == {"BTC", "USDT"}
    assert ex.public_put_userdatastream({"listenKey": listen_key}) == {}
    assert ex.public_delete_userdatastream({"listenKey": listen_key}) == {}
    with pytest.raises(ccxt.AuthenticationError, match="-1125"):
        ex.public_put_userdatastream({"listenKey": listen_key})


def _ws_api_params(secret=DEFAULT_API_SECRET, **extra) -> dict:
    params = {"apiKey": DEFAULT_API_KEY, "timestamp": int(time.time() * 1000), **extra}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return params


def test_ws_api_signature_subscription_delivers_wrapped_events(sim):
    ex = client(sim)

    async def main():
        async with connect(sim.ws_api_url) as ws:
            await ws.send(json.dumps({"id": "bad", "method": "userDataStream.subscribe.signature",
                                      "params": _ws_api_params(secret="wrong")}))
            bad = await recv_json(ws)
            await ws.send(json.dumps({"id": "s1", "method": "userDataStream.subscribe.signature",
                                      "params": _ws_api_params(recvWindow=5000)}))
            ok = await recv_json(ws)
            order = ex.create_order("ETH/USDT", "market", "buy", 0.01, None, {"clientOrderId": "api-1"})
            events = [await recv_json(ws) for _ in range(3)]
            return bad, ok, order, events

    bad, ok, order, events = asyncio.run(main())
    assert bad == {"id": "bad", "status": 400, "error": {"code": -1022,
                                                         "msg": "Signature for this request is not valid."}}
    assert ok == {"id": "s1", "status": 200, "result": {"subscriptionId": 0}}
    assert [e["subscriptionId"] for e in events] == [0, 0, 0]
    kinds = [(e["event"]["e"], e["event"].get("x")) for e in events]
    assert kinds == [("executionReport", "NEW"), ("executionReport", "TRADE"), ("outboundAccountPosition", None)]
    fills = order["info"]["fills"]
    assert events[1]["event"]["L"] == fills[0]["price"] and events[1]["event"]["X"] == "FILLED"


def test_ccxt_pro_watch_orders_and_balance(sim):
    import ccxt.pro as ccxtpro

    async def main():
        ex = ccxtpro.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
        try:
            await ex.load_markets()
            watching = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            balance = asyncio.create_task(ex.watch_balance())
            await subscribed(sim)
            await ex.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "pro-1"})
            orders = await asyncio.wait_for(watching, 5)
            bal = await asyncio.wait_for(balance, 5)
            return orders, bal
        finally:
            await ex.close()

    orders, bal = asyncio.run(main())
    assert orders[-1]["clientOrderId"] == "pro-1"
    state = sim.state()["accounts"]["genesis-sim-key"]["balances"]
    assert Decimal(str(bal["USDT"]["free"])) == Decimal(state["USDT"]["free"])


# --------------------------------------------------------------------------- faults


def test_drop_after_n_messages_aborts_without_close_frame(sim):
    sim.set_faults(ws_drop_after=5)

    async def main():
        got = []
        async with connect(sim.ws_url + "/ws/btcusdt@bookTicker") as ws:
            await subscribed(sim, "btcusdt@bookTicker")
            step_until(sim, "BTCUSDT", "bookTicker", 20)
            with pytest.raises(ConnectionClosedError) as closed:
                while True:
                    got.append(await recv_json(ws))
        return got, closed.value

    got, closed = asyncio.run(main())
    assert len(got) == 5 and closed.rcvd is None         # no close frame: an abrupt drop
    assert sim.state()["faults"]["fired"]["ws_drop_after"] == 1


def test_drop_every_seconds(sim):
    sim.set_faults(ws_drop_every_s=0.3, ws_targets=["market"])

    async def main():
        async with connect(sim.ws_url + "/ws/btcusdt@trade") as ws:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
            return time.monotonic() - started

    assert 0.2 < asyncio.run(main()) < 2


def test_half_open_connection_goes_silent_and_stops_answering_pings(sim):
    sim.set_faults(ws_half_open_after=3)

    async def main():
        async with connect(sim.ws_url + "/ws/btcusdt@bookTicker", ping_interval=None, close_timeout=0.2) as ws:
            await subscribed(sim, "btcusdt@bookTicker")
            step_until(sim, "BTCUSDT", "bookTicker", 10)
            got = [await recv_json(ws) for _ in range(3)]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)       # silence, but no close
            pong = await ws.ping()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pong, 0.5)            # and no pong
            return got, ws.state.name

    got, state = asyncio.run(main())
    assert len(got) == 3 and state == "OPEN"


def test_duplicate_and_out_of_order_market_messages(sim):
    expected = [r.data["t"] for r in upcoming(sim, "ETHUSDT", "trade", 8)]

    async def main():
        sim.set_faults(ws_duplicate_rate=1.0)
        async with connect(sim.ws_url + "/ws/ethusdt@trade") as ws:
            await subscribed(sim, "ethusdt@trade")
            step_until(sim, "ETHUSDT", "trade", 4)
            dup = [m["t"] for m in await recv_all(ws)]
        sim.set_faults(ws_duplicate_rate=0.0, ws_reorder_rate=1.0)
        while sim.state()["connections"]["streams"].get("ethusdt@trade"):
            await asyncio.sleep(0.01)                        # the first connection is gone
        async with connect(sim.ws_url + "/ws/ethusdt@trade") as ws:
            await subscribed(sim, "ethusdt@trade")
            step_until(sim, "ETHUSDT", "trade", 4)
            swapped = [m["t"] for m in await recv_all(ws)]
        return dup, swapped

    dup, swapped = asyncio.run(main())
    assert dup == [t for t in expected[:4] for _ in (0, 1)]
    a, b, c, d = expected[4:8]
    assert swapped == [b, a, d, c]


def test_user_streams_can_be_faulted_too(sim):
    ex = client(sim)
    listen_key = ex.public_post_userdatastream()["listenKey"]
    sim.set_faults(ws_drop_after=1, ws_targets=["user"])

    async def main():
        async with connect(sim.ws_url + "/ws/" + listen_key) as ws, \
                connect(sim.ws_url + "/ws/btcusdt@trade") as market:
            await subscribed(sim, "btcusdt@trade")
            await subscribed(sim)
            ex.create_order("BTC/USDT", "market", "buy", 0.001)
            first = await recv_json(ws)
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 2)
            step_until(sim, "BTCUSDT", "trade", 3)
            return first, await recv_all(market)

    first, trades = asyncio.run(main())
    assert first["x"] == "NEW" and len(trades) == 3                 # market streams untouched


def test_rest_and_admin_urls_answer_on_loopback_only(sim):
    assert sim.rest_url.startswith("http://127.0.0.1:")
    body = json.loads(urllib.request.urlopen(sim.rest_url + "/sim/faults").read())
    assert body["spec"]["ws_drop_after"] == 0


def test_asyncio_simulator_replays_the_whole_capture_at_max_speed():
    import aiohttp

    async def main():
        async with Simulator(speed="max") as sim:
            assert sim.rest_url == f"http://127.0.0.1:{sim.port}" and sim.ws_url == f"ws://127.0.0.1:{sim.port}"
            async with connect(sim.ws_url + "/ws/ethusdt@trade", max_queue=None) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            for _ in range(500):
                if sim.state()["replay"]["finished"]:
                    break
                await asyncio.sleep(0.02)
            async with aiohttp.ClientSession() as http, \
                    http.get(sim.rest_url + "/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "5"}) as r:
                snap = await r.json()
            return sim.state(), first, snap, sim.capture.records

    state, first, snap, records = asyncio.run(main())
    assert state["replay"]["finished"] and state["replay"]["position"] == len(records)
    last_depth = [r for r in records if r.symbol == "BTCUSDT" and r.kind == "depth"][-1]
    assert snap["lastUpdateId"] == last_depth.data["u"] == state["books"]["BTCUSDT"]["lastUpdateId"]
    assert first["e"] == "trade" and first["s"] == "ETHUSDT"


def test_self_trade_prevention_expires_the_maker_the_taker_or_both():
    """An incoming order that reaches a resting order of the same account: the taker's
    selfTradePreventionMode decides (default: the symbol's, EXPIRE_MAKER here). Every
    expired order ends EXPIRED_IN_MATCH with a TRADE_PREVENTION report carrying the
    prevented quantities; nothing of it is a fill."""
    with SimulatorThread(speed="step", balances={"USDT": "100000", "BTC": "1"}) as sim:
        ex = client(sim)
        info = ex.public_get_exchangeinfo({"symbol": "BTCUSDT"})["symbols"][0]
        assert info["defaultSelfTradePreventionMode"] == "EXPIRE_MAKER"
        assert info["allowedSelfTradePreventionModes"] == ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
        listen_key = ex.public_post_userdatastream()["listenKey"]
        book = ex.public_get_depth({"symbol": "BTCUSDT", "limit": 1000})
        ask0, bid0 = Decimal(book["asks"][0][0]), Decimal(book["bids"][0][0])

        def order(**p) -> dict:
            return ex.private_post_order({"symbol": "BTCUSDT", "newOrderRespType": "FULL", **p})

        async def main():
            async with connect(sim.ws_url + "/ws/" + listen_key) as ws:
                await subscribed(sim)
                out = {}
                # EXPIRE_MAKER (the default): the resting sell at the best ask expires, the buy goes on
                out["maker"] = order(side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01",
                                     price=str(ask0), newClientOrderId="stp-maker")
                out["taker"] = order(side="BUY", type="MARKET", quantity="0.02", newClientOrderId="stp-taker")
                out["reports1"] = [m for m in await recv_all(ws) if m["e"] == "executionReport"]
                # EXPIRE_TAKER: a sell that would reach the resting buy at the best bid expires; the buy stays
                out["bid"] = order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(bid0),
                                   newClientOrderId="stp-bid")
                out["expire_taker"] = order(side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.02",
                                            price=str(bid0 - 100), selfTradePreventionMode="EXPIRE_TAKER",
                                            newClientOrderId="stp-et")
                # EXPIRE_BOTH: both end
                out["expire_both"] = order(side="SELL", type="MARKET", quantity="0.005",
                                           selfTradePreventionMode="EXPIRE_BOTH", newClientOrderId="stp-eb")
                out["reports2"] = [m for m in await recv_all(ws) if m["e"] == "executionReport"]
                # NONE: own orders never meet
                out["bid2"] = order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(bid0),
                                    newClientOrderId="stp-bid2")
                out["none"] = order(side="SELL", type="MARKET", quantity="0.005", selfTradePreventionMode="NONE",
                                    newClientOrderId="stp-none")
                return out

        out = asyncio.run(main())
        state = sim.state()["accounts"]["genesis-sim-key"]
        by_cid = {o["clientOrderId"]: o for o in state["orders"]}
        with pytest.raises(ccxt.BadRequest, match="-1013.*does not allow the specified self-trade prevention mode"):
            order(side="BUY", type="MARKET", quantity="0.001", selfTradePreventionMode="DECREMENT")
        with pytest.raises(ccxt.BadRequest, match="-1100.*selfTradePreventionMode"):
            order(side="BUY", type="MARKET", quantity="0.001", selfTradePreventionMode="SOMETIMES")

    # EXPIRE_MAKER
    maker, taker = by_cid["stp-maker"], out["taker"]
    assert (maker["status"], maker["executedQty"], maker["preventedQuantity"], maker["preventedMatchId"]) == \
        ("EXPIRED_IN_MATCH", "0.00000000", "0.01000000", 0)
    assert taker["status"] == "FILLED" and taker["selfTradePreventionMode"] == "EXPIRE_MAKER"
    expected = []
    left = Decimal("0.02")
    for p, q in book["asks"]:
        take = min(Decimal(q), left)
        expected.append((f"{Decimal(p):.8f}", f"{take:.8f}"))
        left -= take
        if left <= 0:
            break
    assert [(f["price"], f["qty"]) for f in taker["fills"]] == expected       # the book, not the own sell
    assert taker["preventedMatches"] == [{"preventedMatchId": 0, "makerOrderId": maker["orderId"],
                                          "price": f"{ask0:.8f}", "makerPreventedQuantity": "0.01000000"}]
    prevented = [r for r in out["reports1"] if r["x"] == "TRADE_PREVENTION"]
    assert len(prevented) == 1
    r = prevented[0]
    assert (r["c"], r["X"], r["i"], r["l"], r["z"], r["t"], r["L"]) == \
        ("stp-maker", "EXPIRED_IN_MATCH", maker["orderId"], "0.00000000", "0.00000000", -1, "0.00000000")
    assert (r["v"], r["A"], r["B"], r["U"], r["Cs"], r["pl"], r["pL"]) == \
        (0, "0.01000000", "0.01000000", taker["orderId"], "BTCUSDT", "0.01000000", f"{ask0:.8f}")
    assert r["pY"] == f"{ask0 * Decimal('0.01'):.8f}" and r["V"] == "EXPIRE_MAKER"   # the maker's own mode
    kinds = [(m["c"], m["x"]) for m in out["reports1"]]
    assert kinds.index(("stp-maker", "TRADE_PREVENTION")) < kinds.index(("stp-taker", "TRADE"))
    # EXPIRE_TAKER: no fill, the taker's whole quantity prevented, the resting buy untouched
    et = out["expire_taker"]
    assert (et["status"], et["executedQty"], et["fills"], et["preventedQuantity"]) == \
        ("EXPIRED_IN_MATCH", "0.00000000", [], "0.02000000")
    assert et["preventedMatches"][0]["takerPreventedQuantity"] == "0.02000000"
    assert "makerPreventedQuantity" not in et["preventedMatches"][0]
    # EXPIRE_BOTH: the market sell and the resting buy both end
    eb = out["expire_both"]
    assert eb["status"] == "EXPIRED_IN_MATCH" and by_cid["stp-bid"]["status"] == "EXPIRED_IN_MATCH"
    assert by_cid["stp-bid"]["preventedQuantity"] == "0.01000000"
    both = [(m["c"], m["x"], m["X"]) for m in out["reports2"] if m["x"] == "TRADE_PREVENTION"]
    assert both == [("stp-et", "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
                    ("stp-bid", "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
                    ("stp-eb", "TRADE_PREVENTION", "EXPIRED_IN_MATCH")]
    # NONE: the sell fills from the book; the own bid stays
    assert out["none"]["status"] == "FILLED" and by_cid["stp-bid2"]["status"] == "NEW"
    # nothing locked by the expired orders; balances = start + the fills
    bal = state["balances"]
    assert Decimal(bal["BTC"]["locked"]) == 0 and Decimal(bal["USDT"]["locked"]) == bid0 * Decimal("0.01")
    trades = state["trades"]
    btc = Decimal(1) + sum(Decimal(t["qty"]) - Decimal(t["commission"]) if t["isBuyer"] else -Decimal(t["qty"])
                           for t in trades)
    assert Decimal(bal["BTC"]["free"]) == btc
