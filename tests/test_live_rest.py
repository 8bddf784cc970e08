"""genesis.live.rest and genesis.live.ratelimit: the real ccxt async client against the
simulator on 127.0.0.1 (step mode), with its fault injection; WeightGate with a fake clock.

Every check of "what happened on the exchange" reads the simulator's own state
(``sim.state()``), never the client's view."""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest

from genesis.live.ratelimit import DEFAULT_ORDER_LIMITS, WINDOW_S, OrderGate, WeightGate, order_limits_from
from genesis.live.rest import (
    ExchangeClient,
    ExchangeError,
    ExchangeUnavailable,
    OrderRejected,
    RequestFailed,
    binance_urls,
    redact,
)
from genesis.simulator import SimulatorThread

KEY = "live-test-key-7Qk9ZtVb"
SECRET = "live-test-secret-Xw4Rp2LmNq"
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", api_key=KEY, api_secret=SECRET,
                         balances={"USDT": "100000", "BTC": "1", "ETH": "10"}) as s:
        yield s


@pytest.fixture(params=[True, False], ids=["order-connection", "ccxt-fetch"])
def via(request) -> bool:
    """Run a test with orders and cancels on Genesis's order connection, and through
    ccxt's fetch (what happens when no order connection is ready)."""
    return request.param


def make_client(sim, events=None, **kw) -> ExchangeClient:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("backoff_s", (0.02, 0.1))
    kw.setdefault("recv_window_ms", 1000)
    on_system = (lambda kind, fields: events.append((kind, fields))) if events is not None else None
    return ExchangeClient(sim.rest_url, KEY, SECRET, on_system=on_system, **kw)


def run(coro_fn, sim, events=None, **kw):
    """Start a client, run `coro_fn(client)`, close the client; returns its result."""
    async def main():
        client = make_client(sim, events, **kw)
        await client.start()
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())


def orders(sim) -> list[dict]:
    return sim.state()["accounts"][KEY]["orders"]


def by_client_id(sim, cid: str) -> list[dict]:
    return [o for o in orders(sim) if o["clientOrderId"] == cid]


def best(sim, side: str) -> Decimal:
    book = sim.state()["books"]["BTCUSDT"]
    return Decimal(book["bestBid" if side == "bid" else "bestAsk"])


# --------------------------------------------------------------------------- basics


def test_start_is_one_exchange_info_request_plus_the_clock(sim):
    sim.reset_limits()
    events = []

    async def main(c):
        return c.markets, c.ccxt_symbol("BTCUSDT"), c.clock_offset_ms, c.gate.used_pct

    markets, symbol, offset, used_pct = run(main, sim, events)
    assert "BTC/USDT" in markets and symbol == "BTC/USDT"
    assert abs(offset) < 200
    # exchangeInfo (20) + time (1): load_markets made exactly one request
    assert sim.state()["limits"]["used_weight"] == 21
    assert [f["ok"] for k, f in events if k == "api_response"] == [True, True]
    assert ("api_status", {"reachable": True}) in events
    assert used_pct == pytest.approx(21 * 100 / 6000, abs=0.01)


def test_binance_urls_point_every_family_at_one_host():
    urls = binance_urls("https://exchange.invalid")["api"]   # only strings: nothing is contacted
    assert urls["public"] == urls["private"] == "https://exchange.invalid/api/v3"
    assert {u.split("/")[2] for u in urls.values()} == {"exchange.invalid"}
    assert binance_urls("http://127.0.0.1:8765/")["api"]["sapi"] == "http://127.0.0.1:8765/sapi/v1"
    with pytest.raises(ValueError):
        binance_urls("127.0.0.1")


def test_market_and_limit_orders_cancel_query_trades_and_balances(sim, via):
    ask, bid = best(sim, "ask"), best(sim, "bid")

    async def main(c):
        market = await c.submit("m-1", "BTCUSDT", "buy", "market", 0.01)
        limit = await c.submit("l-1", "BTCUSDT", "buy", "limit", 0.01, float(bid - 500))
        opened = await c.open_orders("BTCUSDT")
        all_open = await c.open_orders()
        queried = await c.order("l-1", "BTCUSDT")
        canceled = await c.cancel("l-1", "BTCUSDT")
        again = await c.cancel("l-1", "BTCUSDT")
        unknown = await c.order("never-sent", "BTCUSDT")
        unknown_cancel = await c.cancel("never-sent", "BTCUSDT")
        trades = await c.my_trades("BTCUSDT")
        later = await c.my_trades("BTCUSDT", from_id=trades[-1]["id"] + 1)
        balances = await c.balances()
        wire_sent = c._wire.sent if c._wire is not None else None
        return market, limit, opened, all_open, queried, canceled, again, unknown, unknown_cancel, trades, later, \
            balances, wire_sent

    (market, limit, opened, all_open, queried, canceled, again, unknown, unknown_cancel, trades, later,
     balances, wire_sent) = run(main, sim, order_connection=via)
    assert wire_sent == (5 if via else None)     # 2 orders, 3 cancels on the order connection
    assert (market["clientOrderId"], market["status"], market["type"], market["side"]) == \
        ("m-1", "FILLED", "MARKET", "BUY")
    assert Decimal(market["executedQty"]) == Decimal("0.01") and market["fills"]
    assert Decimal(market["fills"][0]["price"]) >= ask
    assert (limit["status"], limit["price"], limit["timeInForce"]) == ("NEW", f"{bid - 500:.8f}", "GTC")
    assert [o["clientOrderId"] for o in opened] == ["l-1"] == [o["clientOrderId"] for o in all_open]
    assert queried["orderId"] == limit["orderId"] and queried["status"] == "NEW"
    assert canceled["status"] == "CANCELED" and canceled["origClientOrderId"] == "l-1"
    assert again is None and unknown is None and unknown_cancel is None
    state = sim.state()["accounts"][KEY]
    assert trades == state["trades"] and later == []
    assert [(o["clientOrderId"], o["status"]) for o in state["orders"]] == [("m-1", "FILLED"), ("l-1", "CANCELED")]
    assert balances == {a: (float(b["free"]), float(b["locked"])) for a, b in state["balances"].items()}
    assert balances["BTC"][0] == pytest.approx(1 + 0.01 * 0.999)


def test_quantities_are_sent_without_float_noise(sim):
    async def main(c):
        return await c.submit("f-1", "ETHUSDT", "buy", "market", 0.1 + 0.2)      # 0.30000000000000004

    assert run(main, sim)["origQty"] == "0.30000000"


# --------------------------------------------------------------------------- idempotent submit under faults


def test_5xx_after_the_order_was_placed_returns_it_without_sending_twice(sim, via):
    sim.set_faults(http_error_after_next=1, http_only=["POST /api/v3/order"])
    events = []

    async def main(c):
        return await c.submit("x5-1", "BTCUSDT", "buy", "market", 0.002)

    order = run(main, sim, events, order_connection=via)
    assert order["clientOrderId"] == "x5-1" and order["status"] == "FILLED"
    assert len(by_client_id(sim, "x5-1")) == 1                       # executed once, not twice
    assert sim.state()["faults"]["fired"] == {"http_error_after_next": 1}
    assert [f["ok"] for k, f in events if k == "api_response"][-2:] == [False, True]   # 503, then the query


def test_5xx_before_execution_resends_with_the_same_client_id(sim, via):
    sim.set_faults(http_error_next=1, http_error_status=502, http_only=["POST /api/v3/order"])
    started = time.monotonic()

    async def main(c):
        return await c.submit("x5-2", "BTCUSDT", "sell", "market", 0.002)

    order = run(main, sim, order_connection=via)
    assert order["status"] == "FILLED" and len(by_client_id(sim, "x5-2")) == 1
    # a 502 may have reached the engine: no resend before recvWindow (1 s) + 0.5 s has passed
    assert time.monotonic() - started >= 1.5


def test_timeout_after_execution_finds_the_order(sim, via):
    sim.set_faults(http_timeout_after_next=1, http_timeout_s=3, http_only=["POST /api/v3/order"])
    bid = best(sim, "bid")
    started = time.monotonic()

    async def main(c):
        return await c.submit("to-1", "BTCUSDT", "buy", "limit", 0.001, float(bid - 300))

    order = run(main, sim, timeout_s=0.3, order_connection=via)
    assert order["clientOrderId"] == "to-1" and order["status"] == "NEW"
    assert time.monotonic() - started < 1.5                       # found at once: no recvWindow wait
    assert [(o["clientOrderId"], o["status"]) for o in orders(sim)] == [("to-1", "NEW")]


def test_timeout_before_execution_and_slow_answers(sim, via):
    sim.set_faults(http_timeout_next=1, http_timeout_s=3, http_only=["POST /api/v3/order"])

    async def main(c):
        first = await c.submit("to-2", "BTCUSDT", "buy", "market", 0.001)
        sim.set_faults(http_delay_ms=150, http_only=[])                  # slow but within the timeout
        started = time.monotonic()
        second = await c.submit("to-3", "BTCUSDT", "buy", "market", 0.001)
        return first, second, time.monotonic() - started

    first, second, slow = run(main, sim, timeout_s=0.4, order_connection=via)
    assert first["status"] == second["status"] == "FILLED"
    assert 0.15 <= slow < 0.4
    assert [o["clientOrderId"] for o in orders(sim)] == ["to-2", "to-3"]


def test_cancel_whose_answer_was_lost_returns_the_canceled_order(sim, via):
    bid = best(sim, "bid")

    async def main(c):
        await c.submit("cx-1", "BTCUSDT", "sell", "limit", 0.01, float(bid + 900))
        sim.set_faults(http_timeout_after_next=1, http_timeout_s=3, http_only=["DELETE /api/v3/order"])
        return await c.cancel("cx-1", "BTCUSDT")            # canceled, answer lost; the retry says -2011

    answer = run(main, sim, timeout_s=0.3, order_connection=via)
    assert answer["clientOrderId"] == "cx-1" and answer["status"] == "CANCELED"
    assert [(o["clientOrderId"], o["status"]) for o in orders(sim)] == [("cx-1", "CANCELED")]


@pytest.mark.parametrize("status", [429, 418])
def test_429_and_418_wait_for_retry_after_then_succeed_once(sim, status, via):
    sim.set_faults(**{f"http_{status}_next": 1}, retry_after_s=1, http_only=["POST /api/v3/order"])
    started = time.monotonic()

    async def main(c):
        order = await c.submit(f"rl-{status}", "BTCUSDT", "buy", "market", 0.001)
        return order, c.gate.banned_for_s

    order, banned = run(main, sim, order_connection=via)
    elapsed = time.monotonic() - started
    assert order["status"] == "FILLED" and banned == 0
    assert 1.0 <= elapsed < 3.0                                          # Retry-After respected
    assert len(by_client_id(sim, f"rl-{status}")) == 1
    assert sim.state()["faults"]["fired"] == {f"http_{status}_next": 1}


def test_a_ban_holds_back_every_request(sim):
    async def main(c):
        sim.set_faults(http_418_next=1, retry_after_s=1)
        c.max_retries = 0
        started = time.monotonic()
        with pytest.raises(ExchangeUnavailable, match="HTTP 418, code -1003"):
            await c.balances()
        c.max_retries = 5
        await c.depth_snapshot("BTCUSDT", 5)     # another request: the gate waits out the ban first
        return time.monotonic() - started

    assert run(main, sim) >= 1.0


def test_definitive_rejections_raise_order_rejected_with_a_clear_message(sim, via):
    async def main(c):
        errors = {}
        for name, args in {
            "balance": ("r-1", "BTCUSDT", "buy", "market", 5.0),            # 5 BTC > 100k USDT
            "notional": ("r-2", "BTCUSDT", "buy", "limit", 0.0001, 50000.0),
            "symbol": ("r-3", "DOGEUSDT", "buy", "market", 1.0),
            "client_id": ("bad id with spaces", "BTCUSDT", "buy", "market", 0.001),
            "no_price": ("r-4", "BTCUSDT", "buy", "limit", 0.001),
            "side": ("r-5", "BTCUSDT", "hold", "market", 0.001),
        }.items():
            with pytest.raises(OrderRejected) as info:
                await c.submit(*args)
            errors[name] = info.value
        sim.set_faults(reject_next=1)
        with pytest.raises(OrderRejected) as info:
            await c.submit("r-6", "BTCUSDT", "buy", "market", 0.001)
        errors["fault"] = info.value
        return errors

    errors = run(main, sim, order_connection=via)
    assert errors["balance"].code == -2010 and errors["balance"].status == 400
    assert str(errors["balance"]) == ("new order BTCUSDT BUY MARKET 'r-1' rejected: HTTP 400, code -2010, "
                                      "Account has insufficient balance for requested action.")
    assert errors["notional"].code == -1013 and "Filter failure: MIN_NOTIONAL" in str(errors["notional"])
    assert "unknown symbol" in str(errors["symbol"]) and errors["symbol"].code is None
    assert "client order id" in str(errors["client_id"])
    assert "needs a price" in str(errors["no_price"]) and "side" in str(errors["side"])
    assert errors["fault"].code == -2010 and "simulated fault" in str(errors["fault"])
    assert orders(sim) == []                               # nothing placed
    assert sim.state()["limits"]["orders_1d"] == 3          # one send each for the 3 the exchange saw


def test_duplicate_client_id_resolves_by_query(sim):
    bid = best(sim, "bid")

    async def main(c):
        first = await c.submit("d-1", "BTCUSDT", "buy", "limit", 0.001, float(bid - 400))
        again = await c.submit("d-1", "BTCUSDT", "buy", "limit", 0.001, float(bid - 400))
        with pytest.raises(OrderRejected, match="already used by another order") as other:
            await c.submit("d-1", "BTCUSDT", "buy", "limit", 0.002, float(bid - 400))
        return first, again, other.value

    first, again, other = run(main, sim)
    assert again["orderId"] == first["orderId"] and again["status"] == "NEW"
    assert "quantity" in str(other)
    assert len(by_client_id(sim, "d-1")) == 1


def test_gives_up_with_exchange_unavailable(sim):
    sim.set_faults(http_error_next=50, http_only=["POST /api/v3/order"])

    async def main(c):
        with pytest.raises(ExchangeUnavailable) as order_err:
            await c.submit("u-1", "BTCUSDT", "buy", "market", 0.001)
        sim.set_faults(http_error_next=50, http_only=["/api/v3/account"])
        with pytest.raises(ExchangeUnavailable) as get_err:
            await c.balances()
        return order_err.value, get_err.value

    order_err, get_err = run(main, sim, max_retries=2, recv_window_ms=200)
    assert order_err.maybe_placed and "gave up after 3 failed attempts: HTTP 503, code -1007" in str(order_err)
    assert "GET /api/v3/account: gave up after 3 attempts: HTTP 503" in str(get_err)
    assert orders(sim) == []


def test_a_submit_that_gave_up_keeps_its_last_send_time_until_no_attempt_can_execute(sim):
    """The client gives up while its only attempt is still held by the exchange (a
    timeout, no retries): `last_sent` keeps the attempt's time, and `unseen_until` (what
    reconciliation waits for before calling the order never sent) is that time +
    recvWindow + 0.5 s. The order is not there when the client gives up, and is there by
    then. An order answered (placed or refused) leaves nothing behind."""
    sim.set_faults(http_delay_ms=1000, http_only=["POST /api/v3/order"])

    async def main(c):
        assert c.last_sent == {} and c.unseen_until("x-1") == c.started + 1.5 + 0.5
        before = time.monotonic()
        with pytest.raises(ExchangeUnavailable) as err:
            await c.submit("x-1", "BTCUSDT", "buy", "market", 0.001)
        assert err.value.maybe_placed
        sent = c.last_sent["x-1"]
        assert before <= sent < time.monotonic() and c.unseen_until("x-1") == sent + 1.5 + 0.5
        missing = await c.order("x-1", "BTCUSDT")                # still held: not there yet
        await asyncio.sleep(c.unseen_until("x-1") - time.monotonic())
        found = await c.order("x-1", "BTCUSDT")
        sim.set_faults({}, reset=True)
        placed = await c.submit("x-2", "BTCUSDT", "buy", "market", 0.001)
        with pytest.raises(OrderRejected):
            await c.submit("x-3", "BTCUSDT", "buy", "market", 1e-9)
        return missing, found, placed, dict(c.last_sent)

    missing, found, placed, left = run(main, sim, timeout_s=0.3, max_retries=0, recv_window_ms=1500)
    assert missing is None and found is not None and found["status"] == "FILLED"
    assert placed["status"] == "FILLED"
    assert set(left) == {"x-1"}          # reconciliation drops it once the order is settled
    assert len(by_client_id(sim, "x-1")) == 1


def test_unreachable_exchange_and_api_status_events(sim):
    events = []

    async def dead():
        c = ExchangeClient("http://127.0.0.1:9", KEY, SECRET, on_system=lambda k, f: events.append((k, f)),
                           timeout_s=0.5, max_retries=1, backoff_s=(0.01, 0.02))
        try:
            with pytest.raises(ExchangeUnavailable, match="GET /api/v3/exchangeInfo: gave up after 2 attempts: "
                                                          "cannot connect"):
                await c.start()
        finally:
            await c.close()

    asyncio.run(dead())
    assert [f for k, f in events if k == "api_status"] == [{"reachable": False}]

    events.clear()

    async def main(c):
        sim.set_faults(http_error_next=1, http_error_status=502)
        await c.balances()
        await c.balances()

    run(main, sim, events)
    assert [f["reachable"] for k, f in events if k == "api_status"] == [True, False, True]
    assert all(0 <= f["used_pct"] < 2 for k, f in events if k == "rate_limit")


def test_clock_offset_tracks_a_skewed_exchange_clock(sim):
    async def main(c):
        before = c.clock_offset_ms
        sim.set_clock(20_000)                    # the exchange is 20 s ahead: -1021 until re-measured
        balances = await c.balances()
        ahead = c.clock_offset_ms
        sim.set_clock(-20_000)                   # now 20 s behind: our timestamps are "ahead of the server"
        order = await c.submit("clk-1", "BTCUSDT", "buy", "market", 0.001)
        return before, balances, ahead, order, c.clock_offset_ms

    before, balances, ahead, order, behind = run(main, sim)
    assert abs(before) < 200 and abs(ahead - 20_000) < 200 and abs(behind + 20_000) < 200
    assert balances["USDT"][0] == 100000 and order["status"] == "FILLED"
    assert len(by_client_id(sim, "clk-1")) == 1


def test_a_client_started_against_a_skewed_clock_signs_in_exchange_time(sim):
    sim.set_clock(-45_000)

    async def main(c):
        return c.clock_offset_ms, await c.balances(), await c.sync_clock()

    offset, balances, again = run(main, sim)
    assert abs(offset + 45_000) < 200 and abs(again - offset) < 200 and "USDT" in balances


def test_gate_keeps_real_server_usage_within_budget():
    events = []
    with SimulatorThread(speed="step", api_key=KEY, api_secret=SECRET, weight_limit=100) as small:

        async def main(c):
            assert c.gate.limit == 100                        # announced in exchangeInfo: adopted
            done = 0

            async def burst():
                nonlocal done
                for _ in range(20):                           # 20 x weight 4 on top of 21: over 80
                    await c.order("nope", "BTCUSDT")
                    done += 1

            with pytest.raises(TimeoutError):
                await asyncio.wait_for(burst(), 1.0)           # the gate makes it wait, not the exchange
            return done, c.gate.used_pct

        done, used_pct = run(main, small, events)
        limits = small.state()["limits"]
    assert done == (80 - 21) // 4
    assert limits["used_weight"] == 21 + 4 * done <= 80 and limits["answered_429"] == 0
    assert used_pct <= 80
    assert max(f["used_pct"] for k, f in events if k == "rate_limit") <= 80


def test_new_orders_wait_for_a_slot_under_the_orders_limit_and_none_is_refused():
    """The simulator allows 5 new orders per 10 s (exchangeInfo says so): a raw burst
    gets -1015; through the client (80%: 4 per rolling 10 s) a burst of 8 is placed
    whole, the last 4 after the first 4 left the window, and a cancel meanwhile is not
    held back."""
    import ccxt  # noqa: PLC0415

    from genesis.simulator import ccxt_config  # noqa: PLC0415

    with SimulatorThread(speed="step", api_key=KEY, api_secret=SECRET, orders_per_10s=5,
                         balances={"USDT": "100000", "BTC": "1"}) as small:
        price = float(best(small, "bid") - 2000)
        raw = ccxt.binance(ccxt_config(small.rest_url, KEY, SECRET, enableRateLimit=False))
        raw.load_markets()
        refused = 0
        for n in range(6):                                    # no gate: the 6th is over the limit
            try:
                raw.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": f"raw-{n}"})
            except ccxt.DDoSProtection:
                refused += 1
        assert refused == 1 and small.state()["limits"]["answered_1015"] == 1
        raw.cancel_all_orders("BTC/USDT")
        small.reset_limits()
        events = []

        async def main(c):
            assert c.order_gate.limits == [(10.0, 5), (86400.0, 160000)] and c.order_gate.budgets == [4, 128000]
            t0 = time.monotonic()
            done: dict[str, float] = {}

            async def place(n: int):
                answer = await c.submit(f"burst-{n}", "BTCUSDT", "buy", "limit", 0.001, price)
                done[answer["clientOrderId"]] = time.monotonic() - t0
                return answer

            tasks = [asyncio.create_task(place(n)) for n in range(8)]
            await asyncio.sleep(0.5)
            assert len(done) == 4 and c.order_gate.waits == 4       # the other 4 wait for a slot
            cancel_started = time.monotonic()
            canceled = await c.cancel("burst-0", "BTCUSDT")       # a cancel is never held back
            cancel_s = time.monotonic() - cancel_started
            answers = await asyncio.gather(*tasks)
            return answers, done, canceled, cancel_s, c.order_gate.waited_s

        answers, done, canceled, cancel_s, waited_s = run(main, small, events)
        limits = small.state()["limits"]
        placed = [o for o in small.state()["accounts"][KEY]["orders"] if o["clientOrderId"].startswith("burst-")]
    assert [a["status"] for a in answers] == ["NEW"] * 8 and len(placed) == 8
    assert limits["answered_1015"] == 0 and limits["answered_429"] == 0
    assert canceled["status"] == "CANCELED" and cancel_s < 1.0
    first, later = sorted(done.values())[:4], sorted(done.values())[4:]
    assert max(first) < 1.0 and min(later) >= 9.9            # waited for the first 4 to leave the window
    times = sorted(o["time"] for o in placed)
    assert times[4] - times[0] >= 9_900                       # the exchange saw them 10 s apart too
    assert 9.5 < waited_s < 10.5, (waited_s, done)
    orders_pct = [f["orders_used_pct"] for k, f in events if k == "rate_limit"]
    assert orders_pct and max(orders_pct) <= 80.0 and max(orders_pct) == 80.0


def test_a_1015_from_orders_placed_elsewhere_holds_back_new_orders_only():
    """Another client on the account used the limit: the next order gets -1015 once, then
    waits out Retry-After in the order gate (not the weight gate) and is placed once; a
    cancel meanwhile goes straight through."""
    import ccxt  # noqa: PLC0415

    from genesis.simulator import ccxt_config  # noqa: PLC0415

    with SimulatorThread(speed="step", api_key=KEY, api_secret=SECRET, orders_per_10s=3,
                         balances={"USDT": "100000", "BTC": "1"}) as small:
        price = float(best(small, "bid") - 2000)

        async def main(c):
            await c.submit("mine-0", "BTCUSDT", "buy", "limit", 0.001, price)
            other = ccxt.binance(ccxt_config(small.rest_url, KEY, SECRET, enableRateLimit=False))
            other.load_markets()
            for n in range(2):
                other.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": f"web-{n}"})
            started = time.monotonic()
            placing = asyncio.create_task(c.submit("mine-1", "BTCUSDT", "buy", "limit", 0.001, price))
            while small.state()["limits"]["answered_1015"] == 0:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            blocked, banned = c.order_gate.blocked_for_s, c.gate.banned_for_s
            cancel_started = time.monotonic()
            canceled = await c.cancel("mine-0", "BTCUSDT")
            cancel_s = time.monotonic() - cancel_started
            placed = await placing
            return blocked, banned, canceled, cancel_s, placed, time.monotonic() - started

        blocked, banned, canceled, cancel_s, placed, placed_s = run(main, small)
        limits = small.state()["limits"]
        mine = by_client_id(small, "mine-1")
    assert limits["answered_1015"] == 1 and limits["answered_429"] == 0
    assert blocked > 1.0 and banned == 0                   # new orders wait; other requests do not
    assert canceled["status"] == "CANCELED" and cancel_s < 1.0
    assert placed["status"] == "NEW" and placed_s >= blocked and len(mine) == 1


def test_order_gate_keeps_every_rolling_window_within_budget_first_come_first_served():
    ft = FakeTime()
    gate = OrderGate(((10.0, 50), (60.0, 100)), 80.0, clock=ft.clock, sleep=ft.sleep)
    assert gate.budgets == [40, 80]
    rng = random.Random(5)
    granted: list[tuple[float, int]] = []

    async def one(n: int):
        await gate.acquire()
        granted.append((ft.now, n))

    async def main():
        tasks, n = [], 0
        for _ in range(400):                 # arrivals keep coming while earlier ones wait
            for _ in range(rng.choice([1, 1, 2, 5, 20])):
                tasks.append(asyncio.create_task(one(n)))
                n += 1
            await asyncio.sleep(0)
            ft.now += rng.random() * 0.5
        await asyncio.gather(*tasks)

    asyncio.run(main())
    times = [t for t, _ in granted]
    for t in times:
        assert sum(1 for s in times if t - 10 < s <= t) <= 40
        assert sum(1 for s in times if t - 60 < s <= t) <= 80
    assert [n for _, n in granted] == sorted(n for _, n in granted)   # first come, first served
    assert gate.waits > 0 and gate.peak_pct == 80.0 and gate.used_pct <= 80.0
    assert len(granted) > 5 * 80                                        # it kept going


def test_order_gate_waits_exactly_until_the_oldest_order_leaves_and_obeys_blocks():
    ft = FakeTime()
    gate = OrderGate(((10.0, 5),), 80.0, clock=ft.clock, sleep=ft.sleep)

    async def burst(n: int) -> list[float]:
        out = []
        for _ in range(n):
            await gate.acquire()
            out.append(ft.now - 1000.0)
            ft.now += 1.0
        return out

    assert asyncio.run(burst(6)) == [0.0, 1.0, 2.0, 3.0, 10.0, 11.0]
    assert gate.used_pct == 60.0                      # 3.0, 10.0 and 11.0 are in the window at 12.0
    gate.penalize(429, 3)                             # -1015 with Retry-After: 3 s
    assert gate.blocked_for_s == 3
    t = ft.now
    asyncio.run(burst(1))
    assert ft.now - 1 - t == 3.0
    gate.penalize(429, None)                          # without it: 1 s, 2 s, 4 s ...
    gate.penalize(429, None)
    assert gate.blocked_for_s == 4.0                  # the third penalty within a minute
    ft.now += 120
    gate.penalize(429, None)
    assert gate.blocked_for_s == 1.0                  # a minute later the backoff starts again


def test_order_gate_reads_the_exchanges_counts_and_announced_limits():
    ft = FakeTime()
    gate = OrderGate(clock=ft.clock, sleep=ft.sleep)
    assert gate.limits == list(DEFAULT_ORDER_LIMITS) and gate.budgets == [40, 128000]
    info = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "ORDERS", "interval": "FORTNIGHT", "intervalNum": 1, "limit": 9},
            "junk"]
    assert order_limits_from(info) == [(10.0, 100), (86400.0, 200000)]
    gate.set_limits(order_limits_from(info))
    gate.set_limits([])                                # nothing announced: keep what there is
    assert gate.budgets == [80, 160000]

    async def main():
        await gate.acquire()
        gate.observe_headers({"X-MBX-USED-WEIGHT-1M": "3", "x-mbx-order-count-10s": "78",
                              "X-MBX-ORDER-COUNT-1D": "1000", "X-MBX-ORDER-COUNT-7X": "5",
                              "X-MBX-ORDER-COUNT-10S ": "junk"})
        assert gate.used_pct == 78.0                   # someone else placed orders on the account
        await gate.acquire()
        await gate.acquire()                           # 78 + 2 = the budget of 80
        t = ft.now
        await gate.acquire()                           # waits until that count is 10 s old
        return ft.now - t

    assert asyncio.run(main()) == pytest.approx(10.0)
    gate.observe_headers({"X-MBX-ORDER-COUNT-10S": "1"})   # no more than its own: the rolling window decides
    assert gate.used_pct == 1.0
    gate.observe_headers(None)
    with pytest.raises(ValueError):
        OrderGate(budget_pct=0)


def test_order_gate_does_not_take_its_own_orders_at_a_window_edge_for_someone_elses():
    ft = FakeTime()
    gate = OrderGate(((10.0, 5),), 80.0, clock=ft.clock, sleep=ft.sleep)

    async def take(n: int) -> None:
        for _ in range(n):
            await gate.acquire()

    asyncio.run(take(4))
    ft.now += 10.4                  # they left the rolling window; the exchange's window may still hold them
    gate.observe_headers({"X-MBX-ORDER-COUNT-10S": "4"})
    assert gate.used_pct == 0.0
    asyncio.run(take(4))
    assert gate.waits == 0 and ft.now == 1010.4
    ft.now += 2.0
    gate.observe_headers({"X-MBX-ORDER-COUNT-10S": "5"})   # one more than its own 4: someone else's
    assert gate.used_pct == 100.0
    t = ft.now
    asyncio.run(take(1))
    assert ft.now - t == pytest.approx(10.0) and gate.waits == 1


def test_order_gate_free_slot_is_granted_without_suspending():
    gate = OrderGate(((10.0, 10_000_000), (86400.0, 10_000_000)))
    for _ in range(20000):
        step = gate.acquire()
        try:                          # a free slot: the coroutine finishes on its first step,
            step.send(None)           # so the order is never behind a loop turn or a sleep
        except StopIteration:
            continue
        step.close()
        raise AssertionError("acquire suspended although a slot was free")
    assert gate.waits == 0 and gate.granted == 20000
    assert gate.try_take() and gate.granted == 20001


# --------------------------------------------------------------------------- no secrets out


def test_no_key_secret_or_signature_in_exceptions_logs_or_reprs(sim, caplog, via):
    caplog.set_level(logging.DEBUG)
    texts = []

    async def main(c):
        texts.append(repr(c))
        sim.set_faults(http_timeout_next=1, http_timeout_s=2, http_only=["/api/v3/account"])
        c.max_retries = 0
        with pytest.raises(ExchangeError) as e:
            await c.balances()
        texts.extend([str(e.value), repr(e.value)])
        sim.set_faults(http_error_next=1, http_error_status=500, http_only=[])
        with pytest.raises(ExchangeUnavailable) as e:
            await c.my_trades("BTCUSDT")
        texts.extend([str(e.value), repr(e.value)])
        c.max_retries = 5
        with pytest.raises(OrderRejected) as e:
            await c.submit("s-1", "BTCUSDT", "buy", "market", 50.0)
        texts.extend([str(e.value), repr(e.value)])
        with pytest.raises(RequestFailed) as e:
            await c.keepalive("no-such-listen-key")
        texts.extend([str(e.value), repr(e.value)])
        sim.set_faults(http_timeout_next=1, http_timeout_s=2, http_only=["POST /api/v3/order"])
        c.max_retries = 0
        with pytest.raises(ExchangeUnavailable) as e:                   # a new order's answer never came
            await c.submit("s-2", "BTCUSDT", "buy", "market", 0.001)
        texts.extend([str(e.value), repr(e.value)])
        c.max_retries = 5
        # what ccxt itself says on a timeout: the signed url (why we never pass its texts on)
        sim.set_faults(http_timeout_next=1, http_timeout_s=2, http_only=["/api/v3/account"])
        raw = c._ex
        raw.timeout = 300
        with pytest.raises(ccxt_async.RequestTimeout) as e:
            await ccxt_async.binance.request(raw, "account", ["private"], "GET", {})
        return str(e.value)

    ccxt_text = run(main, sim, timeout_s=0.3, order_connection=via)
    assert "signature=" in ccxt_text                        # the hazard is real
    logged = [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    assert any("genesis.live.ccxt" == r.name for r in caplog.records)   # ccxt's debug lines were there
    for text in texts + logged:
        assert KEY not in text and SECRET not in text
        assert "signature=" not in text.replace("signature=<redacted>", "")
        assert not HEX64.search(text), text
    assert any("code -1125" in text for text in texts)                 # the keepalive refusal
    assert any("no answer within" in text for text in texts)            # the lost order answer
    assert redact(f"GET http://h/api?x=1&signature={'a' * 64} {KEY}") == "GET http://h/api?<redacted> <redacted>"


# --------------------------------------------------------------------------- WeightGate with a fake clock


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_gate_never_lets_the_rolling_minute_exceed_the_budget():
    ft = FakeTime()
    gate = WeightGate(1000, 80.0, clock=ft.clock, sleep=ft.sleep)
    rng = random.Random(3)
    sent = []

    async def main():
        for _ in range(600):
            w = rng.choice([1, 1, 2, 4, 5, 20, 50])
            await gate.acquire(w)
            sent.append((ft.now, w))
            assert gate.used_pct <= 80.0
            ft.now += rng.random() * 0.3

    asyncio.run(main())
    for t, _ in sent:
        window = sum(w for s, w in sent if t - WINDOW_S < s <= t)
        assert window <= 800
    assert gate.waited_s > 0 and gate.peak_pct <= 80.0
    assert sum(w for _, w in sent) > 2 * 800                  # it kept going, minute after minute


def test_gate_waits_for_the_oldest_weight_to_expire():
    ft = FakeTime()
    gate = WeightGate(100, 80.0, clock=ft.clock, sleep=ft.sleep)

    async def main():
        await gate.acquire(50)
        ft.now += 10
        await gate.acquire(30)
        assert gate.used_pct == 80.0
        await gate.acquire(40)               # must wait until the first 50 leave the window
        return ft.now

    assert asyncio.run(main()) == pytest.approx(1000 + WINDOW_S)
    with pytest.raises(ValueError):
        asyncio.run(gate.acquire(81))


def test_gate_observes_the_server_header():
    ft = FakeTime()
    gate = WeightGate(100, 80.0, clock=ft.clock, sleep=ft.sleep)

    async def main():
        await gate.acquire(5)
        gate.observe(70)                     # someone else on this IP used weight too
        assert gate.used_pct == 70.0
        await gate.acquire(10)               # 70 + 10 fits
        assert gate.used_pct == 80.0
        t = ft.now
        await gate.acquire(1)                # does not: waits until that count is over
        return ft.now - t

    assert asyncio.run(main()) == pytest.approx(WINDOW_S)
    gate.observe(None)
    gate.observe("junk")
    assert gate.used_pct <= 80


def test_gate_penalties_retry_after_and_exponential_backoff():
    ft = FakeTime()
    gate = WeightGate(6000, 80.0, clock=ft.clock, sleep=ft.sleep)

    async def wait_once() -> float:
        t = ft.now
        await gate.acquire(1)
        return ft.now - t

    gate.observe(6100)
    gate.penalize(429, 7)                    # Retry-After: also the end of the server's window
    assert gate.banned_for_s == 7
    assert asyncio.run(wait_once()) == pytest.approx(7)
    assert gate.used_pct < 1                 # the server's 6100 ended with its window
    waits = []
    for _ in range(3):
        gate.penalize(429, None)
        waits.append(asyncio.run(wait_once()))
    assert waits == [2.0, 4.0, 8.0]          # the streak continues: 1 s was the first step
    gate.note_success()
    gate.penalize(429, None)
    assert asyncio.run(wait_once()) == 1.0
    gate.note_success()
    gate.penalize(418, None)
    first = asyncio.run(wait_once())
    gate.penalize(418, None)
    assert (first, asyncio.run(wait_once())) == (120.0, 240.0)
    gate.set_limit(10_000)
    assert gate.limit == 6000
    gate.set_limit(1200)
    assert gate.limit == 1200 and gate.budget == 960
