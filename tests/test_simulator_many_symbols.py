"""The simulator's derived symbols (`derived_symbols`, genesis/simulator/derived.py):
clones of the capture's symbols in exchangeInfo, on the combined streams, in depth
snapshots and in orders, through real clients on 127.0.0.1 (urllib, ``websockets``,
ccxt). What a clone sends is compared with the capture's records of its source."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import ccxt
import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect

from genesis.simulator import SimulatorThread, ccxt_config
from genesis.simulator.cli import simulate
from genesis.simulator.derived import derive
from genesis.simulator.replay import load_capture
from genesis.simulator.rules import load_exchange_info

COUNT = 4
OFFSET_MS = 250


@pytest.fixture(scope="module")
def sim():
    with SimulatorThread(speed="step", derived_symbols=COUNT, derived_offset_ms=OFFSET_MS,
                         balances={"USDT": "100000"}) as s:
        yield s


def get(sim, path: str):
    with urllib.request.urlopen(sim.rest_url + path, timeout=5) as r:
        return json.loads(r.read())


def test_exchange_info_lists_the_clones_with_their_sources_filters(sim):
    info = get(sim, "/api/v3/exchangeInfo")
    by_name = {s["symbol"]: s for s in info["symbols"]}
    clones = sim.sim.clones
    sources = sorted(sim.sim.capture.symbols())
    assert [c.symbol for c in clones] == [f"{by_name[sources[(k - 1) % len(sources)]]['baseAsset']}{k:03d}USDT"
                                          for k in range(1, COUNT + 1)]
    for clone in clones:
        entry, source = by_name[clone.symbol], by_name[clone.source]
        assert entry["baseAsset"] == clone.base and entry["quoteAsset"] == source["quoteAsset"]
        assert entry["filters"] == source["filters"] and entry["status"] == "TRADING"
    one = get(sim, f"/api/v3/exchangeInfo?symbol={clones[0].symbol}")
    assert [s["symbol"] for s in one["symbols"]] == [clones[0].symbol]


def test_clones_stream_their_sources_records_ahead_in_time(sim):
    """Each clone's trades are its source's recorded trades `k * offset` ahead, renamed,
    with event times moved by the same shift as the capture's minus that offset."""
    clones = [sim.sim.clones[0], sim.sim.clones[2]]              # both clones of the same source
    assert clones[0].source == clones[1].source
    streams = [f"{c.symbol.lower()}@{kind}" for c in clones for kind in ("trade", "bookTicker", "depth@100ms")]
    got: list = []

    async def main():
        async with connect(f"{sim.ws_url}/stream?streams={'/'.join(streams)}") as ws:
            for _ in range(200):
                if sum(sim.state()["connections"]["streams"].get(s, 0) for s in streams) == len(streams):
                    break
                await asyncio.sleep(0.01)
            sim.step(3000)
            try:
                while True:
                    got.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
            except TimeoutError:
                pass

    asyncio.run(main())
    assert {m["stream"] for m in got} == set(streams)
    replay = sim.state()["replay"]
    for clone in clones:
        trades = [m["data"] for m in got if m["stream"] == f"{clone.symbol.lower()}@trade"]
        assert trades and all(t["s"] == clone.symbol for t in trades)
        recorded = {r.data["t"]: r.data for r in sim.sim.capture.records
                    if r.symbol == clone.source and r.kind == "trade"}
        for t in trades:
            source = recorded[t["t"]]
            assert (t["p"], t["q"], t["m"]) == (source["p"], source["q"], source["m"])
            assert t["E"] == source["E"] + replay["shift_ms"] - clone.ahead_ms
        assert clone.ahead_ms == OFFSET_MS * int(clone.symbol[-7:-4])
    # the one further ahead is further on in the recording at the same moment
    first = [next(m["data"]["t"] for m in got if m["stream"] == f"{c.symbol.lower()}@trade") for c in clones]
    assert first[1] > first[0]


def test_a_clones_depth_resyncs_against_its_own_snapshot_and_its_orders_fill(sim):
    clone = sim.sim.clones[0]
    sim.step(2000)
    snap = get(sim, f"/api/v3/depth?symbol={clone.symbol}&limit=5")
    book = sim.state()["books"][clone.symbol]
    assert book["synced"] and snap["lastUpdateId"] == book["lastUpdateId"]
    assert snap["bids"][0][0] == book["bestBid"] and snap["asks"][0][0] == book["bestAsk"]
    ex = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
    ex.load_markets()
    market = f"{clone.base}/USDT"
    assert market in ex.markets
    order = ex.create_order(market, "market", "buy", 0.01)
    assert order["status"] == "closed" and order["filled"] == pytest.approx(0.01)
    assert ex.fetch_balance()[clone.base]["free"] == pytest.approx(0.01 * (1 - 0.001))
    resting = ex.create_order(market, "limit", "buy", 0.01, float(book["bestBid"]))
    assert ex.fetch_order(resting["id"], market)["status"] == "open"
    assert sim.step(until_fill=True, n=200_000)["fills"] == 1      # a replayed trade of the clone reached it
    filled = ex.fetch_order(resting["id"], market)
    assert filled["filled"] > 0 and filled["average"] == pytest.approx(float(book["bestBid"]))
    assert [t["order"] for t in ex.fetch_my_trades(market)][-1] == resting["id"]


def test_bad_derived_settings_are_refused_with_a_clear_message():
    capture = load_capture(_sample())
    info = load_exchange_info(_exchange_info())
    only_other = {**info, "symbols": [s for s in info["symbols"] if s["symbol"] not in capture.symbols()]}
    with pytest.raises(ValueError, match="nothing to clone"):
        derive(only_other, capture, 3, 100)
    result = CliRunner().invoke(simulate, ["--derived-symbols", "1000"])
    assert result.exit_code == 2 and "1000" in result.output
    result = CliRunner().invoke(simulate, ["--derived-symbols", "2", "--derived-offset-ms", "-5"])
    assert result.exit_code == 2 and "-5" in result.output


def _sample():
    from genesis.engine.feeds import sample_paths  # noqa: PLC0415

    return sample_paths()


def _exchange_info():
    from genesis.engine.feeds import exchange_info_path  # noqa: PLC0415

    return exchange_info_path()
