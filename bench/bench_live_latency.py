"""Live decision latency: from a market-data message arriving on the websocket to the
order request leaving the process, through the whole live path (MarketStream ->
LiveRunner queue -> input log -> engine: metrics, every rule stage, pre-trade rules,
execution policy -> LiveExchange -> ExchangeClient -> the signed request written on a
kept-open order connection, genesis/live/order_wire.py).

Runs against the project's simulator (in its own process) on 127.0.0.1 replaying a
real capture (the 11-minute one in ../shared/data when present, else the bundled
3-minute sample). The simulator stands in for a remote exchange, so by default it runs
on a CPU of its own and this process on the others (--no-pin: all share every CPU; on
one CPU nothing is pinned). A benchmark strategy decides on the first BTCUSDT trade message at
least --gap-ms (exchange time, default 100 ms) after its previous decision: buy $30
when flat, sell when holding ($30 stays above the $10 minimum notional when the
market-state rules scale sizes down; the simulator charges no commission here, so the
ping-pong's cost never reaches the tier's daily loss limit: no decision is refused
before it leaves). With --gap-ms 0 it decides on every trade message, and
a burst of trades then queues decisions behind each other (a throughput figure).

Two baselines, measured in the same run, with no engine (message arrives -> order
request) and the same decision spacing: the libraries alone (the same websocket client,
the order sent through ccxt's aiohttp session, which is how a bot built on ccxt sends
it), and the same with Genesis's order connection, so the ratio to the second is the
cost of the engine. The Genesis path is also split into stages: queue wait (socket ->
the engine takes the message), engine (-> the order is decided), send path (-> the
signed request is handed to the HTTP layer), HTTP layer (-> socket).

    python bench/bench_live_latency.py [--speed 4] [--decisions 2000] [--gap-ms 100]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
SHARED_CAPTURE = ROOT.parent / "shared" / "data" / "binance_spot_ws_raw"
sys.path.insert(0, str(ROOT))

from genesis.config.checks import check_config  # noqa: E402
from genesis.live.credentials import Credentials, Secret  # noqa: E402
from genesis.live.rest import ExchangeClient  # noqa: E402
from genesis.live.session import LiveRunner, open_live_session  # noqa: E402
from genesis.live.streams import MarketStream, runner_streams  # noqa: E402
from genesis.simulator import DEFAULT_API_KEY, DEFAULT_API_SECRET  # noqa: E402
from genesis.strategies import OrderIntent  # noqa: E402


GAP_MS = 100


class PingPong:
    """Buy $30 of BTC when flat, sell it all when holding: one decision on the first
    BTCUSDT trade message at least GAP_MS (exchange time) after the previous decision."""

    id, kind, symbols, given = "bench", "bench", ["BTCUSDT"], {}
    last = -10**15

    def on_event(self, event, view):
        if event.kind != "trade" or event.symbol != "BTCUSDT" or event.ts - self.last < GAP_MS:
            return []
        self.last = event.ts
        price = event.fields["price"]
        if view.holding("BTCUSDT") > 0:
            return [OrderIntent("bench", "BTCUSDT", "sell", view.holding_value("BTCUSDT") * 2, price, "signal", False)]
        return [OrderIntent("bench", "BTCUSDT", "buy", 30.0, price, "entry", True)]


_CID = re.compile(rb"newClientOrderId=([^&\s]+)")
_CID_TEXT = re.compile(r"newClientOrderId=([^&\s]+)")


def tap_requests(client: ExchangeClient) -> tuple[dict, dict]:
    """Two clocks on the order path, as dicts client id -> time.time_ns(): when the
    signed request is handed to the HTTP layer (the order connection's `send`, or
    ccxt's `fetch`), and when it is written to its socket (it leaves the process:
    asyncio's socket transport sends at once when nothing is buffered)."""
    from asyncio import selector_events  # noqa: PLC0415

    handed: dict = {}
    written: dict = {}
    ex = client._ex
    original_fetch = ex.fetch

    async def fetch(url, method="GET", headers=None, body=None):
        if method == "POST":
            now = time.time_ns()
            found = _CID_TEXT.search(url) or (_CID_TEXT.search(body) if body else None)
            if found:
                handed.setdefault(unquote(found.group(1)), now)
        return await original_fetch(url, method, headers, body)

    ex.fetch = fetch
    wire = client._wire
    if wire is not None:
        original_send = wire.send

        def send(method, url, headers):
            if method == "POST":
                found = _CID_TEXT.search(url)
                if found:
                    handed.setdefault(unquote(found.group(1)), time.time_ns())
            return original_send(method, url, headers)

        wire.send = send
    transport = selector_events._SelectorSocketTransport
    original_write = getattr(transport, "_bench_original_write", transport.write)

    def write(self, data):
        # stamped as the bytes go to the kernel: the send call itself can return much
        # later on 2 cores, when the kernel runs the woken receiver (the simulator) first
        now = time.time_ns()
        if b"newClientOrderId=" in data:
            found = _CID.search(bytes(data))
            if found:
                written.setdefault(unquote(found.group(1).decode()), now)
        original_write(self, data)

    transport._bench_original_write = original_write
    transport.write = write
    return handed, written


def summary(name: str, lat_us: list[float]) -> dict:
    lat = sorted(lat_us)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    out = {"n": len(lat), "median": statistics.median(lat), "p99": p(0.99), "p999": p(0.999), "max": lat[-1]}
    print(f"{name:<40} n={out['n']:>5}  median {out['median']:7.1f} us  p99 {out['p99']:8.1f} us  "
          f"p99.9 {out['p999']:8.1f} us  max {out['max']:8.1f} us")
    return out


def latencies(arrived: dict, handed: dict, written: dict) -> dict:
    """Per decision (µs): message arrival -> handed to fetch, and -> written to the socket."""
    both = [cid for cid in arrived if cid in handed and cid in written]
    return {"fetch": [(handed[c] - arrived[c]) / 1000 for c in both],
            "socket": [(written[c] - arrived[c]) / 1000 for c in both]}


async def wait_for_decisions(count, wanted: int, done=lambda: False, quiet_s: float = 5.0) -> None:
    """Until `count()` reaches `wanted`, or no decision came for `quiet_s` (the replay is
    over), or `done()`. Nothing is asked of the simulator meanwhile: a blocking request
    from this loop would stall the path being measured."""
    last, since = count(), time.monotonic()
    deadline = since + 900
    while last < wanted and not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now_count = count()
        if now_count != last:
            last, since = now_count, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            break


async def engine_path(sim, decisions: int, tmp: Path) -> dict:
    config = check_config(ROOT)
    creds = Credentials(Secret(DEFAULT_API_KEY), Secret(DEFAULT_API_SECRET))
    session, log_path = open_live_session(ROOT, config, "strategist", f"sqlite:///{tmp / 'bench.db'}", creds,
                                          sim.rest_url)
    session.engine.strategies = [PingPong()]
    client = ExchangeClient(sim.rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET)
    await client.start()
    handed, written = tap_requests(client)

    market, user = runner_streams(sim.ws_url, client, ["BTCUSDT"])
    runner = LiveRunner(session, client, market, user, log_path, ["BTCUSDT"], say=lambda t: None,
                        config_root=None)
    runner.stages = {}
    task = asyncio.create_task(runner.run())
    await wait_for_decisions(lambda: len(written), decisions, task.done)
    runner.stop()
    await task
    runner.close(operator_left=False)
    await client.close()
    prefix = runner.exchange.prefix
    arrived = {prefix + cid: ns for cid, ns in runner.decided_from.items()}
    out = latencies(arrived, handed, written)
    out["stages"] = [(a, t, d, handed[prefix + cid], written[prefix + cid]) for cid, (a, t, d) in
                     runner.stages.items() if prefix + cid in handed and prefix + cid in written]
    return out


async def _quiet(coro) -> None:
    try:
        await coro
    except Exception:  # noqa: BLE001 - a refused order still left the process: its timing counts
        pass


async def baseline_path(sim, decisions: int, order_connection: bool) -> dict:
    client = ExchangeClient(sim.rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, order_connection=order_connection)
    await client.start()
    handed, written = tap_requests(client)
    arrived: dict = {}
    holding = [False]
    last = [-10**15]
    tasks = set()

    def on_message(stream, data, ns):
        if not stream.endswith("@trade") or len(arrived) >= decisions or data["E"] - last[0] < GAP_MS:
            return
        last[0] = data["E"]
        cid = f"B{len(arrived) + 1}"
        arrived[cid] = ns
        side = "sell" if holding[0] else "buy"
        holding[0] = not holding[0]
        qty = 0.0005   # about $30
        task = asyncio.get_running_loop().create_task(_quiet(client.submit(cid, "BTCUSDT", side, "market", qty)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    stream = MarketStream(sim.ws_url, ["BTCUSDT"], on_message=on_message, on_status=lambda up, why: None,
                          channels=("trade",))
    run = asyncio.create_task(stream.run())
    await wait_for_decisions(lambda: len(arrived), decisions)
    stream.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    await client.close()
    return latencies(arrived, handed, written)


def cpus_for(pin: bool) -> tuple[set | None, set | None]:
    """(this process's CPUs, the simulator's): one each when pinning and the machine has
    two or more, else (None, None): the scheduler decides."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


class RemoteSim:
    """The simulator in its own process (so it does not share this process's GIL), on
    `cpus` when given."""

    def __init__(self, speed: float, feeds: list[str], cpus: set | None = None):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(speed), *feeds],
                                     stdout=subprocess.PIPE, text=True)
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)
        self.rest_url = self.proc.stdout.readline().strip()
        if not self.rest_url.startswith("http://127.0.0.1:"):
            raise SystemExit("the simulator did not start")
        self.ws_url = "ws" + self.rest_url[4:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


async def serve(speed: float, feeds: list[str]) -> None:
    from genesis.simulator import Simulator  # noqa: PLC0415

    # no commission: a ping-pong that paid 0.1% a fill would reach the tier's daily loss
    # limit part-way, and the risk rules would then (rightly) refuse its decisions
    sim = Simulator(speed=speed, feeds=feeds, orders_per_10s=1_000_000, weight_limit=10_000_000,
                    maker_fee="0", taker_fee="0", balances={"USDT": "1000000", "BTC": "0", "ETH": "0"})
    await sim.start()
    print(sim.rest_url, flush=True)
    await asyncio.Event().wait()


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(float(sys.argv[2]), sys.argv[3:]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speed", type=float, default=4.0, help="Replay speed of the simulator (default 4).")
    ap.add_argument("--decisions", type=int, default=2000, help="Decisions to measure per path (default 2000).")
    ap.add_argument("--gap-ms", type=int, default=GAP_MS,
                    help=f"Least exchange time between two decisions, ms (default {GAP_MS}; 0: every trade message, "
                         "so a burst of trades queues decisions behind each other).")
    ap.add_argument("--capture", nargs="*", default=None,
                    help="Capture files to replay (default: the 11-minute capture in ../shared/data when present, "
                         "else the bundled 3-minute sample).")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="Let the simulator and the measured process share every CPU (default: the simulator, "
                         "standing in for a remote exchange, gets a CPU of its own).")
    args = ap.parse_args()
    mine, theirs = cpus_for(args.pin)
    if mine:
        os.sched_setaffinity(0, mine)
    globals()["GAP_MS"] = args.gap_ms
    feeds = args.capture if args.capture is not None else [str(p) for p in sorted(SHARED_CAPTURE.glob("*.gz"))]
    print(f"replaying {', '.join(Path(f).name for f in feeds) or 'the bundled sample'} at speed {args.speed:g}; "
          f"a decision at most every {GAP_MS} ms")
    print(f"CPUs: this process {sorted(mine)}, the simulator {sorted(theirs)}" if mine else
          "CPUs: shared by the simulator and this process")
    logging.disable(logging.WARNING)   # reconnect notices when the replay ends
    with tempfile.TemporaryDirectory(prefix="genesis-bench-") as tmp:
        with RemoteSim(args.speed, feeds, theirs) as sim:
            libs = asyncio.run(baseline_path(sim, args.decisions, order_connection=False))
        with RemoteSim(args.speed, feeds, theirs) as sim:
            base = asyncio.run(baseline_path(sim, args.decisions, order_connection=True))
        with RemoteSim(args.speed, feeds, theirs) as sim:
            full = asyncio.run(engine_path(sim, args.decisions, Path(tmp)))
    if not libs["socket"] or not base["socket"] or not full["socket"]:
        print("no decisions measured", file=sys.stderr)
        sys.exit(1)
    print("\nmarket-data message on the socket -> order request written to its socket (leaves the process):")
    lib = summary("libraries alone (websockets, ccxt)", libs["socket"])
    b = summary("baseline (no engine, order connection)", base["socket"])
    f = summary("Genesis live path (engine, journal)", full["socket"])
    print("-> the same, to the signed request handed to the HTTP layer:")
    summary("libraries alone", libs["fetch"])
    summary("baseline", base["fetch"])
    summary("Genesis", full["fetch"])
    print("Genesis, by stage:")
    stages = full["stages"]
    for name, i, j in (("queue wait (-> engine takes it)", 0, 1), ("engine (-> order decided)", 1, 2),
                       ("send path (-> HTTP layer)", 2, 3), ("HTTP layer (-> socket)", 3, 4)):
        summary(f"  {name}", [(row[j] - row[i]) / 1000 for row in stages])
    print(f"engine cost: median x{f['median'] / b['median']:.2f}, p99 x{f['p99'] / b['p99']:.2f} of the baseline "
          f"(+{f['median'] - b['median']:.0f} us median)")
    print(f"against the libraries alone: median x{f['median'] / lib['median']:.2f}, "
          f"p99 x{f['p99'] / lib['p99']:.2f}")
    print(f"target p99 < 1000 us: {'met' if f['p99'] < 1000 else 'NOT met'} ({f['p99']:.0f} us); "
          f"original requirement 10 ms: {10_000 / f['p99']:.1f}x inside it")


if __name__ == "__main__":
    main()
