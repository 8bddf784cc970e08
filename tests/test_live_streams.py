"""genesis.live.streams: the real ``websockets`` client against the simulator's market
and user-data streams on 127.0.0.1 (step mode), with its websocket faults: drops,
half-open connections, duplicated and reordered messages, closed listenKeys.

What was sent is read from the simulator's capture (the records the replay steps
through), never hard-coded."""
from __future__ import annotations

import asyncio
import itertools
import logging
from decimal import Decimal

import pytest

from genesis.engine.book import OrderBook
from genesis.live.rest import ExchangeClient
from genesis.live.streams import MarketStream, UserStream
from genesis.simulator import SimulatorThread

KEY = "stream-test-key-4Hs8Lq"
SECRET = "stream-test-secret-9Pd2Wx"
ID_FIELD = {"trade": "t", "bookTicker": "u", "depth": "u"}
CHANNEL = {"trade": "trade", "bookTicker": "bookTicker", "depth": "depth@100ms"}


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", api_key=KEY, api_secret=SECRET) as s:
        yield s


def upcoming(sim, n: int, symbols=("BTCUSDT", "ETHUSDT"), kinds=("trade", "bookTicker", "depth")) -> list:
    """(stream, id) of what the next `n` replayed records publish on the given streams."""
    pos = sim.state()["replay"]["position"]
    return [(f"{r.symbol.lower()}@{CHANNEL[r.kind]}", r.data[ID_FIELD[r.kind]])
            for r in sim.sim.capture.records[pos:pos + n] if r.symbol in symbols and r.kind in kinds]


def step_records_of(sim, symbol: str, kind: str, count: int) -> None:
    """Replay until `count` more records of one stream were published."""
    recs = sim.sim.capture.records
    pos = sim.state()["replay"]["position"]
    seen = i = 0
    for i, r in enumerate(recs[pos:], start=1):
        if r.symbol == symbol and r.kind == kind:
            seen += 1
            if seen == count:
                break
    sim.step(i)


async def until(pred, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Recorder:
    """Collects what a stream delivers and its status changes."""

    def __init__(self):
        self.messages = []
        self.status = []

    def on_market(self, stream, data, recv_ns):
        assert isinstance(recv_ns, int) and recv_ns > 0
        self.messages.append((stream, data))

    def on_user(self, event, recv_ns):
        self.messages.append(event)

    def on_status(self, connected, reason):
        self.status.append((connected, reason))

    def ups(self) -> int:
        return sum(1 for c, _ in self.status if c)

    def ids(self) -> list:
        return [(s, d[ID_FIELD[s.split("@")[1]]]) for s, d in self.messages]


async def started(stream, rec: Recorder, ups: int = 1) -> asyncio.Task:
    task = asyncio.create_task(stream.run())
    await until(lambda: rec.ups() >= ups)
    await asyncio.sleep(0.05)            # the server has registered the subscriptions
    return task


async def stopped(stream, task) -> None:
    stream.stop()
    await asyncio.wait_for(task, 3)


# --------------------------------------------------------------------------- market streams


def test_market_stream_delivers_trade_book_ticker_and_depth_in_order(sim):
    rec = Recorder()

    async def main():
        ms = MarketStream(sim.ws_url, ["BTCUSDT", "ETHUSDT"], rec.on_market, rec.on_status, stale_after_s=30)
        assert ms.url == (sim.ws_url + "/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms/"
                          "ethusdt@trade/ethusdt@bookTicker/ethusdt@depth@100ms")
        task = await started(ms, rec)
        expected = upcoming(sim, 500)
        sim.step(500)
        await until(lambda: len(rec.messages) >= len(expected))
        await stopped(ms, task)
        return ms, expected

    ms, expected = asyncio.run(main())
    assert rec.ids() == expected
    assert {s.split("@", 1)[1] for s, _ in expected} == {"trade", "bookTicker", "depth@100ms"}
    assert (ms.duplicates, ms.out_of_order, ms.reconnects, ms.messages) == (0, 0, 0, len(expected))
    assert rec.status == [(True, "connected"), (False, "stopped")]
    trade = next(d for s, d in rec.messages if s == "btcusdt@trade")
    assert {"e", "E", "s", "t", "p", "q", "T", "m"} <= set(trade)


def test_market_stream_reconnects_and_resubscribes_after_a_drop(sim):
    rec = Recorder()
    sim.set_faults(ws_drop_after=10, ws_targets=["market"])

    async def main():
        ms = MarketStream(sim.ws_url, ["BTCUSDT"], rec.on_market, rec.on_status, stale_after_s=30)
        task = await started(ms, rec)
        first = upcoming(sim, 200, symbols=("BTCUSDT",))[:10]
        sim.step(200)                                   # the connection drops after 10 messages
        await until(lambda: rec.ups() >= 2)             # reconnected (with backoff)
        sim.set_faults(reset=True)
        await asyncio.sleep(0.05)
        later = upcoming(sim, 200, symbols=("BTCUSDT",))
        sim.step(200)
        await until(lambda: len(rec.messages) >= 10 + len(later))
        await stopped(ms, task)
        return ms, first, later

    ms, first, later = asyncio.run(main())
    assert rec.ids() == first + later                   # messages flow again on the new connection
    assert ms.reconnects == 1 and sim.state()["faults"]["fired"]["ws_drop_after"] == 1
    assert rec.status[:3] == [(True, "connected"), (False, "dropped (ConnectionClosedError)"), (True, "reconnected")]


def test_market_stream_detects_a_half_open_connection(sim):
    rec = Recorder()
    sim.set_faults(ws_half_open_after=5, ws_targets=["market"])

    async def main():
        ms = MarketStream(sim.ws_url, ["ETHUSDT"], rec.on_market, rec.on_status, stale_after_s=0.4)
        task = await started(ms, rec)
        sim.step(100)                                   # 5 messages, then silence: no close, no pong
        await until(lambda: rec.ups() >= 2)
        sim.set_faults(reset=True)
        await asyncio.sleep(0.05)
        later = upcoming(sim, 100, symbols=("ETHUSDT",))
        sim.step(100)
        await until(lambda: len(rec.messages) >= 5 + len(later))
        await stopped(ms, task)
        return ms, later

    ms, later = asyncio.run(main())
    assert rec.ids()[5:] == later
    assert ms.stale == 1 and ms.reconnects == 1
    assert (False, "stale: no message for 0.4 s") in rec.status


def test_market_stream_drops_duplicates(sim):
    rec = Recorder()
    sim.set_faults(ws_duplicate_rate=1.0)

    async def on_message(stream, data, recv_ns):           # coroutine callbacks are awaited
        await asyncio.sleep(0)
        rec.on_market(stream, data, recv_ns)

    async def main():
        ms = MarketStream(sim.ws_url, ["BTCUSDT", "ETHUSDT"], on_message, rec.on_status, stale_after_s=30)
        task = await started(ms, rec)
        expected = upcoming(sim, 150)
        sim.step(150)
        await until(lambda: ms.duplicates >= len(expected))
        await asyncio.sleep(0.05)
        await stopped(ms, task)
        return ms, expected

    ms, expected = asyncio.run(main())
    assert rec.ids() == expected and ms.duplicates == len(expected) and ms.out_of_order == 0


def test_market_stream_drops_out_of_order_messages(sim):
    rec = Recorder()
    sim.set_faults(ws_reorder_rate=1.0)                 # every pair swapped: b a d c ...

    async def main():
        ms = MarketStream(sim.ws_url, ["ETHUSDT"], rec.on_market, rec.on_status, stale_after_s=30,
                          channels=("trade",))
        task = await started(ms, rec)
        expected = [i for _, i in upcoming(sim, 5000, symbols=("ETHUSDT",), kinds=("trade",))][:8]
        step_records_of(sim, "ETHUSDT", "trade", 8)
        await until(lambda: ms.out_of_order >= 4)
        await asyncio.sleep(0.05)
        await stopped(ms, task)
        return ms, expected

    ms, expected = asyncio.run(main())
    assert [i for _, i in rec.ids()] == expected[1::2]    # the late one of each pair is dropped
    assert ms.out_of_order == 4 and ms.duplicates == 0


def test_depth_ids_are_continuous_after_a_resync_by_snapshot(sim):
    """Diffs feed genesis.engine.book.OrderBook; a reordered pair leaves a hole, the
    book notices, a REST snapshot resyncs it, and the diffs after it continue the ids
    without a gap. At the end the local book equals the exchange's."""
    book = OrderBook("BTCUSDT")
    applied = []                                         # (U, u, synced-at snapshot id) of applied diffs
    rec = Recorder()

    def on_message(stream, data, recv_ns):
        rec.on_market(stream, data, recv_ns)
        bids = [(float(p), float(q)) for p, q in data["b"]]
        asks = [(float(p), float(q)) for p, q in data["a"]]
        if book.apply_diff(data["U"], data["u"], bids, asks):
            applied.append((data["U"], data["u"]))

    async def resync(client) -> int:
        snap = await client.depth_snapshot("BTCUSDT", 1000)
        book.apply_snapshot(snap["lastUpdateId"], [(float(p), float(q)) for p, q in snap["bids"]],
                            [(float(p), float(q)) for p, q in snap["asks"]])
        applied.append(("snapshot", snap["lastUpdateId"]))
        return snap["lastUpdateId"]

    async def main():
        client = ExchangeClient(sim.rest_url, KEY, SECRET)
        await client.start()
        ms = MarketStream(sim.ws_url, ["BTCUSDT"], on_message, rec.on_status, stale_after_s=30,
                          channels=("depth@100ms",))
        task = await started(ms, rec)
        step_records_of(sim, "BTCUSDT", "depth", 5)
        await until(lambda: len(rec.messages) == 5)
        assert not book.synced and book.buffered == 5
        await resync(client)
        step_records_of(sim, "BTCUSDT", "depth", 20)
        await until(lambda: len(rec.messages) == 25)
        assert book.synced and book.gaps == 0
        sim.set_faults(ws_reorder_rate=1.0)
        step_records_of(sim, "BTCUSDT", "depth", 2)       # arrives as (newer, older): a hole, then a drop
        await until(lambda: ms.out_of_order == 1)
        sim.set_faults(reset=True)
        assert not book.synced and book.gaps == 1
        step_records_of(sim, "BTCUSDT", "depth", 3)
        await until(lambda: len(rec.messages) == 29)
        await resync(client)
        step_records_of(sim, "BTCUSDT", "depth", 40)
        await until(lambda: len(rec.messages) == 69)
        final = await client.depth_snapshot("BTCUSDT", 50)
        await stopped(ms, task)
        await client.close()
        return final

    final = asyncio.run(main())
    # after each snapshot: the first diff straddles lastUpdateId + 1, then each continues the last
    segments, cur = [], None
    for item in applied:
        if item[0] == "snapshot":
            cur = [item[1]]
            segments.append(cur)
        elif cur is not None:
            cur.append(item)
    assert len(segments) == 2
    for snap_id, *diffs in segments:
        assert diffs, "no diff applied after a snapshot"
        assert diffs[0][0] <= snap_id + 1 <= diffs[0][1]
        for (_, prev_u), (first, _) in itertools.pairwise(diffs):
            assert first == prev_u + 1
    assert book.synced and book.gaps == 1 and book.last_update_id == final["lastUpdateId"]
    assert book.levels("bids", 50) == [(float(p), float(q)) for p, q in final["bids"]]
    assert book.levels("asks", 50) == [(float(p), float(q)) for p, q in final["asks"]]


def test_market_stream_reports_a_refused_connection_and_keeps_trying():
    rec = Recorder()

    async def main():
        ms = MarketStream("ws://127.0.0.1:9", ["BTCUSDT"], rec.on_market, rec.on_status, backoff_s=(0.01, 0.05))
        task = asyncio.create_task(ms.run())
        await until(lambda: rec.status)
        await asyncio.sleep(0.2)
        await stopped(ms, task)
        return ms

    ms = asyncio.run(main())
    assert len(rec.status) == 1 and rec.status[0][0] is False and rec.status[0][1].startswith("connect failed")
    assert ms.connections == 0


# --------------------------------------------------------------------------- user data stream


async def _user_setup(sim, rec: Recorder, reconciles: list, **kw):
    client = ExchangeClient(sim.rest_url, KEY, SECRET, backoff_s=(0.02, 0.1))
    await client.start()
    us = UserStream(sim.ws_url, client, rec.on_user, rec.on_status, on_reconnected=lambda: reconciles.append(1),
                    **kw)
    task = await started(us, rec)
    return client, us, task


def test_user_stream_delivers_execution_reports_for_our_orders(sim):
    rec, reconciles = Recorder(), []

    async def main():
        client, us, task = await _user_setup(sim, rec, reconciles)
        bid = Decimal(sim.state()["books"]["BTCUSDT"]["bestBid"])
        order = await client.submit("ud-1", "BTCUSDT", "buy", "limit", 0.002, float(bid))
        await until(lambda: len(rec.messages) >= 2)
        sim.step(until_fill=True)
        await until(lambda: any(e.get("x") == "TRADE" for e in rec.messages))
        await asyncio.sleep(0.05)
        await stopped(us, task)
        await client.close()
        return order

    order = asyncio.run(main())
    reports = [e for e in rec.messages if e["e"] == "executionReport"]
    assert [(e["x"], e["c"], e["i"]) for e in reports][:2] == [("NEW", "ud-1", order["orderId"]),
                                                                ("TRADE", "ud-1", order["orderId"])]
    trade = sim.state()["accounts"][KEY]["trades"][-1]
    assert (reports[1]["t"], reports[1]["l"], reports[1]["L"]) == (trade["id"], trade["qty"], trade["price"])
    assert {e["e"] for e in rec.messages} == {"executionReport", "outboundAccountPosition"}
    assert reconciles == [1] and rec.status == [(True, "connected"), (False, "stopped")]


def test_user_stream_reconnects_after_a_drop_and_calls_on_reconnected(sim):
    rec, reconciles = Recorder(), []
    sim.set_faults(ws_drop_after=1, ws_targets=["user"])

    async def main():
        client, us, task = await _user_setup(sim, rec, reconciles)
        await client.submit("ud-2", "BTCUSDT", "buy", "market", 0.001)    # NEW, TRADE, position: 1 arrives
        await until(lambda: rec.ups() >= 2)
        sim.set_faults(reset=True)
        await asyncio.sleep(0.05)
        await client.submit("ud-3", "BTCUSDT", "buy", "market", 0.001)
        await until(lambda: len(rec.messages) >= 4)
        await asyncio.sleep(0.05)
        await stopped(us, task)
        await client.close()
        return us

    us = asyncio.run(main())
    got = [(e["e"], e.get("c"), e.get("x")) for e in rec.messages]
    assert got == [("executionReport", "ud-2", "NEW"), ("executionReport", "ud-3", "NEW"),
                   ("executionReport", "ud-3", "TRADE"), ("outboundAccountPosition", None, None)]
    assert us.reconnects == 1 and len(reconciles) == 2        # reconcile what the drop lost
    assert (False, "dropped (ConnectionClosedError)") in rec.status


def test_user_stream_gets_a_new_listen_key_when_the_old_one_is_gone(sim, caplog):
    caplog.set_level(logging.DEBUG)
    rec, reconciles = Recorder(), []

    async def main():
        client, us, task = await _user_setup(sim, rec, reconciles, keepalive_s=0.1)
        await until(lambda: us.keepalives >= 2)
        old = us.listen_key
        await client.close_listen_key(old)               # the exchange closes its streams too
        await until(lambda: rec.ups() >= 2)
        await asyncio.sleep(0.05)
        await client.submit("ud-4", "ETHUSDT", "buy", "market", 0.01)
        await until(lambda: len(rec.messages) >= 3)
        await stopped(us, task)
        await client.close()
        return us, old

    us, old = asyncio.run(main())
    assert us.listen_key != old and us.new_keys == 1 and us.reconnects == 1
    assert [e.get("x") for e in rec.messages[:2]] == ["NEW", "TRADE"]
    for r in caplog.records:                              # listenKeys never reach a log line
        assert old not in r.getMessage() and us.listen_key not in r.getMessage()


def test_user_stream_detects_a_half_open_connection_by_ping(sim):
    rec, reconciles = Recorder(), []

    async def main():
        client, us, task = await _user_setup(sim, rec, reconciles, stale_after_s=0.2, ping_timeout_s=0.2)
        await asyncio.sleep(0.6)                           # quiet but answering pings: stays connected
        assert us.reconnects == 0 and us.stale == 0
        sim.set_faults(ws_half_open_after=1, ws_targets=["user"])
        await client.submit("ud-5", "BTCUSDT", "buy", "market", 0.001)
        await until(lambda: rec.ups() >= 2)
        sim.set_faults(reset=True)
        await asyncio.sleep(0.05)
        await client.submit("ud-6", "BTCUSDT", "buy", "market", 0.001)
        await until(lambda: len(rec.messages) >= 4)
        await stopped(us, task)
        await client.close()
        return us

    us = asyncio.run(main())
    assert us.stale == 1 and us.reconnects == 1 and len(reconciles) == 2
    assert [(e.get("c"), e.get("x")) for e in rec.messages][:3] == [("ud-5", "NEW"), ("ud-6", "NEW"),
                                                                     ("ud-6", "TRADE")]
    assert (False, "stale: no message for 0.2 s and no pong") in rec.status


def test_user_stream_unwraps_ws_api_envelopes():
    got = []

    class NoClient:
        pass

    us = UserStream("ws://127.0.0.1:9", NoClient(), lambda e, n: got.append(e), lambda c, r: None)

    async def main():
        await us._handle('{"subscriptionId": 0, "event": {"e": "balanceUpdate", "a": "USDT", "d": "1.0"}}', 1)
        await us._handle('{"stream": "abc", "data": {"e": "executionReport", "x": "NEW"}}', 2)
        await us._handle('not json', 3)
        return await us._handle('{"e": "listenKeyExpired", "E": 1}', 4)

    assert asyncio.run(main()) is False
    assert [e["e"] for e in got] == ["balanceUpdate", "executionReport"] and us.bad_messages == 1


def test_each_stream_names_itself_in_its_status_events_and_an_old_log_line_reads_as_neither(sim):
    """runner_streams: the market stream's connects and drops are `ws_status` events with
    stream 'market' (the user stream's say 'user'), so the alerts keep one state per stream.
    An input log written before streams were named replays with stream ''."""
    from genesis.live.messages import system_event   # noqa: PLC0415
    from genesis.live.streams import runner_streams   # noqa: PLC0415

    class Queue:
        def __init__(self):
            self.items = []

        def put(self, item):
            self.items.append(item)

    queue = Queue()

    async def main():
        market_for, _user_for = runner_streams(sim.ws_url, None, ["BTCUSDT"])
        stream = market_for(queue)
        task = asyncio.create_task(stream.run())
        await until(lambda: any(item[0] == "system" for item in queue.items))
        await stopped(stream, task)

    asyncio.run(main())
    statuses = [item[2] for item in queue.items if item[:2] == ("system", "ws_status")]
    assert statuses == [{"connected": True, "stream": "market"}, {"connected": False, "stream": "market"}]
    old = system_event("ws_status", {"connected": False}, 1_723_118_400_000)
    assert old.fields["stream"] == "" and old.fields["connected"] is False
