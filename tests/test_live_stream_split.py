"""genesis.live.streams: a MarketStream whose streams do not fit one connection spreads
them over several (at most `max_streams` each, a bounded url), each deduplicating and
reconnecting on its own, all delivering to one callback; its status is connected while
every connection is. Real websockets against the simulator on 127.0.0.1 serving derived
symbols (step mode); what should arrive is what one plain connection to all the same
streams receives."""
from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from genesis.live.streams import MAX_STREAMS_PER_CONNECTION, MarketStream, runner_streams, split_streams
from genesis.simulator import SimulatorThread

CHANNELS = ("trade", "bookTicker", "depth@100ms")
ID = {"trade": "t", "bookTicker": "u", "depth@100ms": "u"}


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", derived_symbols=5) as s:
        yield s


def symbols(sim) -> list[str]:
    return [c.symbol for c in sim.sim.clones]


async def until(pred, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def subscribed(sim, streams: list[str], per_stream: int) -> None:
    """Until every stream has `per_stream` subscribers on the simulator."""
    def ready():
        have = sim.state()["connections"]["streams"]
        return all(have.get(s, 0) >= per_stream for s in streams)
    await until(ready)


class Reference:
    """One plain combined-stream connection to every stream: what should be delivered."""

    def __init__(self, sim, streams: list[str]):
        self.url = f"{sim.ws_url}/stream?streams={'/'.join(streams)}"
        self.got: list = []
        self.task = None

    async def start(self):
        async def read():
            async with connect(self.url) as ws:
                async for raw in ws:
                    msg = json.loads(raw)
                    self.got.append((msg["stream"], msg["data"][ID[msg["stream"].split("@", 1)[1]]]))
        self.task = asyncio.create_task(read())

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def per_stream(items) -> dict:
    out: dict = {}
    for stream, i in items:
        out.setdefault(stream, []).append(i)
    return out


def test_split_streams_cuts_by_count_and_by_url_length_keeping_the_order():
    def query(group):
        return "streams=" + "/".join(group)

    streams = [f"sym{i:04d}usdt@{c}" for i in range(900) for c in CHANNELS]
    for most, chars in ((MAX_STREAMS_PER_CONNECTION, 4000), (4, 4000), (100, 300), (MAX_STREAMS_PER_CONNECTION, 10**6)):
        groups = split_streams(streams, most, chars)
        assert [s for g in groups for s in g] == streams
        assert all(len(g) <= most and len(query(g)) <= chars for g in groups)
        # each connection is as full as it can be: the next stream would not have fitted
        assert all(len(g) == most or len(query([*g, nxt[0]])) > chars for g, nxt in zip(groups, groups[1:]))
    assert [len(g) for g in split_streams(streams, MAX_STREAMS_PER_CONNECTION, 10**6)] == [1024, 1024, 652]
    with pytest.raises(ValueError):
        MarketStream("ws://127.0.0.1:9", ["BTCUSDT"], print, None, max_streams=MAX_STREAMS_PER_CONNECTION + 1)


def test_a_split_market_stream_delivers_every_streams_messages(sim):
    names = symbols(sim)
    status, got = [], []

    async def main():
        ms = MarketStream(sim.ws_url, names, lambda s, d, ns: got.append((s, d[ID[s.split("@", 1)[1]]])),
                          lambda up, why: status.append((up, why)), stale_after_s=30, max_streams=4)
        ref = Reference(sim, ms.streams)
        await ref.start()
        task = asyncio.create_task(ms.run())
        await subscribed(sim, ms.streams, 2)
        assert sim.state()["connections"]["count"] == len(ms.parts) + 1
        sim.step(4000)
        await until(lambda: len(got) >= len(ref.got) > 0 and sim.state()["replay"]["position"] > 0)
        await asyncio.sleep(0.1)
        ms.stop()
        await asyncio.wait_for(task, 3)
        await ref.stop()
        return ms, ref

    ms, ref = asyncio.run(main())
    assert len(ms.parts) == 4 and [len(p.streams) for p in ms.parts] == [4, 4, 4, 3]
    assert ms.urls == [f"{sim.ws_url}/stream?streams={'/'.join(p.streams)}" for p in ms.parts]
    assert per_stream(got) == per_stream(ref.got)                # every stream, in order, nothing lost
    assert set(per_stream(got)) == set(ms.streams)
    assert ms.messages == len(got) == sum(p.messages for p in ms.parts)
    assert status[0] == (True, "connected (4 connections)") and len(status) == 2
    assert status[1][0] is False and status[1][1].startswith("connection ") and status[1][1].endswith(": stopped")


def test_each_connection_reconnects_on_its_own_and_the_status_says_which(sim):
    names = symbols(sim)
    status, got = [], []

    async def main():
        ms = MarketStream(sim.ws_url, names, lambda s, d, ns: got.append((s, d[ID[s.split("@", 1)[1]]])),
                          lambda up, why: status.append((up, why)), stale_after_s=30, max_streams=6)
        task = asyncio.create_task(ms.run())
        await subscribed(sim, ms.streams, 1)
        victim = ms.parts[1]

        def drop():          # the simulator drops the TCP connection that carries the second part's streams
            for conn in list(sim.sim.hub.conns):
                if conn.streams == set(victim.streams):
                    conn.abort()
        sim.call(drop)
        await until(lambda: victim.reconnects == 1 and ms.connected)
        await subscribed(sim, ms.streams, 1)
        ref = Reference(sim, ms.streams)
        await ref.start()
        await subscribed(sim, ms.streams, 2)
        before = len(got)
        sim.step(3000)
        await until(lambda: len(got) - before >= len(ref.got) > 0)
        await asyncio.sleep(0.1)
        ms.stop()
        await asyncio.wait_for(task, 3)
        await ref.stop()
        return ms, ref, got[before:]

    ms, ref, after = asyncio.run(main())
    assert [p.reconnects for p in ms.parts] == [0, 1, 0] and ms.reconnects == 1
    assert status[:3] == [(True, "connected (3 connections)"),
                          (False, "connection 2 of 3: dropped (ConnectionClosedError)"),
                          (True, "connection 2 of 3: reconnected")]
    assert per_stream(after) == per_stream(ref.got)              # every connection delivers again


def test_runner_streams_split_by_streams_per_connection_report_one_market_status(sim):
    class Queue:
        def __init__(self):
            self.items = []

        def put(self, item):
            self.items.append(item)

    queue = Queue()

    async def main():
        market_for, _user_for = runner_streams(sim.ws_url, None, symbols(sim), streams_per_connection=3)
        stream = market_for(queue)
        task = asyncio.create_task(stream.run())
        await until(lambda: any(item[0] == "system" for item in queue.items))
        await subscribed(sim, stream.streams, 1)
        sim.step(2000)
        await until(lambda: {item[1] for item in queue.items if item[0] == "market"} == set(stream.streams))
        stream.stop()
        await asyncio.wait_for(task, 3)
        return stream

    stream = asyncio.run(main())
    assert len(stream.parts) == 5 and all(len(p.streams) == 3 for p in stream.parts)
    statuses = [item[2] for item in queue.items if item[:2] == ("system", "ws_status")]
    assert statuses == [{"connected": True, "stream": "market"}, {"connected": False, "stream": "market"}]
