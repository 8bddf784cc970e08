"""The live path at many symbols: market updates per second sustained and the latency
from a message reaching the websocket to the engine's decision on it, for 1, 10, 50
and 100 symbols.

The simulator runs in its own process (on a CPU of its own when there are two or more,
as in bench_live_latency.py), serving N symbols derived from the real capture
(`derived_symbols`: BTC001USDT, ETH002USDT, ..., each replaying its source's recorded
trades, book tickers and 100 ms depth diffs k x 100 ms ahead, docs/simulator.md), at the
replay speed that offers --rate messages a second over the N symbols together (the
capture's own rate times the speed). A configuration covering the N symbols is written
to a temporary directory (genesis.yaml `symbols`; the repository's rules, tiers and
alerts; no configured strategy), and the live session runs on it as `genesis run
--mode dry-run` does: MarketStream (its streams split over connections as
exchange.streams_per_connection and the url length require) -> LiveRunner queue -> input
log -> engine (metrics, every rule stage) -> a probe strategy, last in line, which
notes for every market update the time since it reached the socket (the decision point:
where a strategy decides) and, once every --gap-ms of exchange time, decides (buy $30 of
the next symbol when flat, sell when holding), so pre-trade rules and paper fills run too.

Baseline, measured in the same run against a fresh simulator serving the same streams:
the websocket client alone (the same MarketStream, so the same connections, decoding and
deduplication) handing each message through an asyncio queue to a consumer, which notes
the same socket -> taken time. The ratio is the engine's cost.

Measured from --warmup-s after the session started (connections, REST snapshots of every
book) for --seconds (less when the replay ends first).

    python bench/bench_live_symbols.py [--symbols 1 10 50 100] [--rate 2000] [--seconds 60]
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_CAPTURE = ROOT.parent / "shared" / "data" / "binance_spot_ws_raw"
sys.path.insert(0, str(ROOT))

from bench_live_latency import cpus_for  # noqa: E402

from genesis.config.checks import check_config  # noqa: E402
from genesis.live.rest import ExchangeClient  # noqa: E402
from genesis.live.session import LiveRunner, open_live_session  # noqa: E402
from genesis.live.streams import MAX_STREAMS_PER_CONNECTION, MarketStream, runner_streams  # noqa: E402
from genesis.strategies import OrderIntent  # noqa: E402

MARKET = ("trade", "book_ticker", "depth")
OFFSET_S = 0.1      # derived_offset_ms, the simulator's default: clone k replays k x 0.1 s ahead
CONFIG_FILES = ("genesis.yaml", "alerts.yaml", "tiers", "rules")


class Probe:
    """Last strategy in line: the socket -> decision time of every market update, and a
    decision every `gap_ms` of exchange time, round the symbols (buy $30 when flat,
    sell when holding)."""

    id, kind, given = "bench", "bench", {}

    def __init__(self, runner: LiveRunner, symbols: list[str], gap_ms: int):
        self.runner = runner
        self.symbols = symbols
        self.gap_ms = gap_ms
        self.measuring = False
        self.lat_ns: list[int] = []
        self.updates = 0
        self.first_ns = 0          # time.time_ns() of the first update seen
        self.decisions = 0
        self.last = -10**15
        self.turn = 0
        self.holding: str | None = None

    def __getstate__(self) -> dict:
        """What an engine snapshot keeps of it: not the runner, not the figures."""
        return {k: v for k, v in self.__dict__.items() if k not in ("runner", "lat_ns")}

    def on_event(self, event, view):
        arrived = self.runner.arrival_ns
        if not arrived or event.kind not in MARKET:
            return []
        self.updates += 1
        if not self.first_ns:
            self.first_ns = time.time_ns()
        if self.measuring:
            self.lat_ns.append(time.time_ns() - arrived)
        if event.kind != "trade" or event.ts - self.last < self.gap_ms:
            return []
        self.last = event.ts
        self.decisions += self.measuring
        price = event.fields["price"]
        if self.holding is not None and view.holding(self.holding) > 0:
            symbol, self.holding = self.holding, None
            return [OrderIntent("bench", symbol, "sell", view.holding_value(symbol) * 2, price, "signal", False)]
        if event.symbol != self.symbols[self.turn % len(self.symbols)]:
            return []
        self.turn += 1
        self.holding = event.symbol
        return [OrderIntent("bench", event.symbol, "buy", 30.0, price, "entry", True)]


def percentiles(lat_us: list[float]) -> dict:
    lat = sorted(lat_us)
    if not lat:
        return {"n": 0, "median": float("nan"), "p99": float("nan"), "p999": float("nan"), "max": float("nan"),
                "over_1ms": 0}
    return {"n": len(lat), "median": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "p999": lat[min(len(lat) - 1, int(0.999 * len(lat)))], "max": lat[-1],
            "over_1ms": len(lat) - bisect.bisect_right(lat, 1000.0)}


def write_config(root: Path, symbols: list[str]) -> None:
    """The repository's configuration with genesis.yaml `symbols` = `symbols` and no strategy."""
    for name in CONFIG_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name)
        else:
            shutil.copy(src, root / name)
    settings = (root / "genesis.yaml").read_text(encoding="utf-8")
    settings, n = re.subn(r"(?m)^symbols: .*$", f"symbols: [{', '.join(symbols)}]", settings)
    if n != 1:
        raise SystemExit("genesis.yaml: no `symbols:` line to replace")
    (root / "genesis.yaml").write_text(settings, encoding="utf-8")
    (root / "strategies.yaml").write_text("strategies: []\n", encoding="utf-8")


class RemoteSim:
    """The simulator serving `derived` clones in its own process, on `cpus` when given."""

    def __init__(self, speed: float, derived: int, feeds: list[str], cpus: set | None = None):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(speed), str(derived), *feeds],
                                     stdout=subprocess.PIPE, text=True)
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)
        line = self.proc.stdout.readline().split()
        if len(line) < 2 or not line[0].startswith("http://127.0.0.1:"):
            raise SystemExit("the simulator did not start")
        self.rest_url, self.symbols = line[0], line[1].split(",")
        self.ws_url = "ws" + self.rest_url[4:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


async def serve(speed: float, derived: int, feeds: list[str]) -> None:
    from genesis.simulator import Simulator  # noqa: PLC0415

    sim = Simulator(speed=speed, feeds=feeds, derived_symbols=derived, orders_per_10s=1_000_000,
                    weight_limit=10_000_000)
    await sim.start()
    print(sim.rest_url, ",".join(c.symbol for c in sim.clones), flush=True)
    await asyncio.Event().wait()


async def measure_window(count, warmup_s: float, seconds: float, start, stop) -> tuple[float, int]:
    """Wait `warmup_s`, call start(), wait up to `seconds` (less when nothing more
    arrives for 3 s: the replay ended), call stop(); (seconds measured, messages counted)."""
    await asyncio.sleep(warmup_s)
    start()
    began, first = time.monotonic(), count()
    last, moved = first, began
    ended = None
    while ended is None and time.monotonic() - began < seconds:
        await asyncio.sleep(0.25)
        now_count = count()
        if now_count != last:
            last, moved = now_count, time.monotonic()
        elif time.monotonic() - moved > 3.0:
            ended = moved
    stop()
    ended = ended or time.monotonic()
    return max(ended - began, 1e-3), last - first


async def baseline(sim: RemoteSim, per_conn: int, warmup_s: float, seconds: float) -> dict:
    """The websocket client alone: MarketStream -> asyncio queue -> consumer."""
    queue: asyncio.Queue = asyncio.Queue()
    lat: list[int] = []
    measuring = [False]
    taken = [0]

    stream = MarketStream(sim.ws_url, sim.symbols, on_message=lambda s, d, ns: queue.put_nowait(ns),
                          on_status=lambda up, why: None, max_streams=per_conn)

    async def consume():
        while True:
            ns = await queue.get()
            taken[0] += 1
            if measuring[0]:
                lat.append(time.time_ns() - ns)

    run = asyncio.create_task(stream.run())
    consumer = asyncio.create_task(consume())
    secs, n = await measure_window(lambda: taken[0], warmup_s, seconds, lambda: measuring.__setitem__(0, True),
                                   lambda: measuring.__setitem__(0, False))
    stream.stop()
    await asyncio.gather(run, return_exceptions=True)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    return {"connections": len(stream.parts), "rate": n / secs, "seconds": secs, "backlog": queue.qsize(),
            **percentiles([x / 1000 for x in lat])}


async def genesis_path(sim: RemoteSim, per_conn: int, warmup_s: float, seconds: float, gap_ms: int,
                       tmp: Path) -> dict:
    """The live session (dry run) on a configuration of the simulator's N symbols."""
    root = tmp / f"config-{len(sim.symbols)}"
    root.mkdir()
    write_config(root, sim.symbols)
    config = check_config(root)
    if not config.ok:
        raise SystemExit(f"the benchmark's configuration is refused: {config.problems[:3]}")
    session, log_path = open_live_session(root, config, "strategist", f"sqlite:///{root / 'bench.db'}", None,
                                          sim.rest_url, dry_run=True)
    client = ExchangeClient(sim.rest_url, "", "")
    await client.start()   # the derived symbols' rules: the exchange's, taken by LiveRunner.run()
    market, user = runner_streams(sim.ws_url, client, sim.symbols, streams_per_connection=per_conn)
    runner = LiveRunner(session, client, market, user, log_path, sim.symbols, say=lambda t: None, config_root=None)
    probe = Probe(runner, sim.symbols, gap_ms)
    session.engine.strategies = [*session.engine.strategies, probe]
    started_ns = time.time_ns()
    task = asyncio.create_task(runner.run())
    secs, n = await measure_window(lambda: probe.updates, warmup_s, seconds, lambda: setattr(probe, "measuring", True),
                                   lambda: setattr(probe, "measuring", False))
    backlog = runner.queue.qsize()
    streams = [s for s in getattr(runner, "streams", ()) if isinstance(s, MarketStream)]
    runner.stop()
    await task
    runner.close(operator_left=False)
    await client.close()
    return {"connections": len(streams[0].parts) if streams else 0, "rate": n / secs, "seconds": secs,
            "backlog": backlog, "decisions": probe.decisions,
            "startup_s": (probe.first_ns - started_ns) / 1e9 if probe.first_ns else float("nan"),
            **percentiles([x / 1000 for x in probe.lat_ns])}


class CaptureRates:
    """Market messages a second of each symbol of the capture, at speed 1, over a span
    from the start."""

    def __init__(self, feeds: list[str]):
        from genesis.engine.feeds import sample_paths  # noqa: PLC0415
        from genesis.simulator.replay import load_capture  # noqa: PLC0415

        recs = load_capture(feeds or sample_paths()).records
        # the replay starts once every recorded snapshot is applied (before: a silent pre-roll)
        self.start = max((r.recv_ns for r in recs if r.kind == "snapshot"), default=recs[0].recv_ns)
        self.seconds = (recs[-1].recv_ns - self.start) / 1e9
        self.times: dict[str, list[int]] = {}
        for r in recs:
            if r.kind != "snapshot" and r.recv_ns >= self.start:
                self.times.setdefault(r.symbol, []).append(r.recv_ns)
        self.symbols = sorted(self.times)

    def rate(self, symbol: str) -> float:
        """Messages a second of `symbol` over the whole capture."""
        return len(self.times.get(symbol, ())) / self.seconds

    def count(self, symbol: str, begin_s: float, end_s: float) -> int:
        """Messages of `symbol` from `begin_s` to `end_s` seconds into the replay."""
        times = self.times.get(symbol, ())
        return (bisect.bisect_left(times, self.start + int(end_s * 1e9))
                - bisect.bisect_left(times, self.start + int(begin_s * 1e9)))

    def speed_for(self, rate: float, n: int, warmup_s: float, seconds: float) -> float:
        """The replay speed at which `n` clones (clone k replaying k x OFFSET_S ahead)
        offer `rate` messages a second over the measured part of the run, or the fastest
        at which the capture lasts the run."""
        speed = 1.0
        for _ in range(12):   # which part of the capture is replayed depends on the speed
            sent = sum(self.count(self.symbols[(k - 1) % len(self.symbols)], k * OFFSET_S + warmup_s * speed,
                                  k * OFFSET_S + (warmup_s + seconds) * speed) for k in range(1, n + 1))
            if not sent:
                break
            speed *= rate / (sent / seconds)
        # no faster than the capture lasts: fewer symbols may offer less than `rate`
        return min(speed, (self.seconds - n * OFFSET_S) / (warmup_s + seconds))


def main() -> None:
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve":
        asyncio.run(serve(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, nargs="+", default=[1, 10, 50, 100],
                    help="Symbol counts (default 1 10 50 100).")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="Market messages a second offered over all the symbols together (default 2000); the "
                         "replay speed is set to offer it.")
    ap.add_argument("--seconds", type=float, default=60.0, help="Measured seconds per run (default 60).")
    ap.add_argument("--warmup-s", type=float, default=5.0, help="Seconds before measuring (default 5).")
    ap.add_argument("--gap-ms", type=int, default=200, help="Exchange time between two decisions, ms (default 200).")
    ap.add_argument("--streams-per-connection", type=int, default=MAX_STREAMS_PER_CONNECTION,
                    help=f"Market streams one connection carries (default {MAX_STREAMS_PER_CONNECTION}).")
    ap.add_argument("--capture", nargs="*", default=None,
                    help="Capture files (default: the 11-minute capture in ../shared/data when present, else the "
                         "bundled 3-minute sample).")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="Let the simulator and the measured process share every CPU.")
    args = ap.parse_args()
    if not all(1 <= n <= 999 for n in args.symbols):
        ap.error("--symbols: counts from 1 to 999")
    if args.rate <= 0 or args.seconds <= 0 or args.warmup_s < 0 or args.gap_ms < 0:
        ap.error("--rate and --seconds must be positive, --warmup-s and --gap-ms not negative")
    if not 1 <= args.streams_per_connection <= MAX_STREAMS_PER_CONNECTION:
        ap.error(f"--streams-per-connection: 1 to {MAX_STREAMS_PER_CONNECTION}")
    mine, theirs = cpus_for(args.pin)
    if mine:
        os.sched_setaffinity(0, mine)
    feeds = args.capture if args.capture is not None else [str(p) for p in sorted(SHARED_CAPTURE.glob("*.gz"))]
    rates = CaptureRates(feeds)
    print(f"replaying {', '.join(Path(f).name for f in feeds) or 'the bundled sample'} ({rates.seconds:.0f} s): "
          + ", ".join(f"{s} {rates.rate(s):.0f} msg/s" for s in rates.symbols) + " at speed 1")
    print(f"offered: {args.rate:g} msg/s over the symbols together; measured {args.seconds:g} s after "
          f"{args.warmup_s:g} s; a decision every {args.gap_ms} ms of exchange time")
    print(f"CPUs: this process {sorted(mine)}, the simulator {sorted(theirs)}" if mine else
          "CPUs: shared by the simulator and this process")
    logging.disable(logging.WARNING)   # reconnect notices when a replay ends
    rows = []
    with tempfile.TemporaryDirectory(prefix="genesis-bench-") as tmp:
        for n in args.symbols:
            speed = rates.speed_for(args.rate, n, args.warmup_s, args.seconds)
            with RemoteSim(speed, n, feeds, theirs) as sim:
                base = asyncio.run(baseline(sim, args.streams_per_connection, args.warmup_s, args.seconds))
            with RemoteSim(speed, n, feeds, theirs) as sim:
                full = asyncio.run(genesis_path(sim, args.streams_per_connection, args.warmup_s, args.seconds,
                                                args.gap_ms, Path(tmp)))
            rows.append((n, speed, base, full))
            print(f"  {n:>3} symbols (speed {speed:.2f}): baseline {base['rate']:.0f} msg/s p99 {base['p99']:.0f} us; "
                  f"Genesis {full['rate']:.0f} msg/s p99 {full['p99']:.0f} us", flush=True)
    print("\nsocket -> decision point (Genesis: the last strategy sees the update; baseline: a consumer takes it "
          "from the queue), µs:")
    print(f"{'symbols':>7} {'conns':>5} {'updates/s':>9} {'seconds':>7} {'p50':>5} {'p99':>6} {'p99.9':>7} "
          f"{'max':>7} {'>1ms':>6} {'backlog':>7} | {'base/s':>6} {'b p50':>5} {'b p99':>6} | {'x p50':>5} "
          f"{'x p99':>5} {'p99<=1ms':>8}")
    for n, _speed, base, full in rows:
        print(f"{n:>7} {full['connections']:>5} {full['rate']:>9.0f} {full['seconds']:>7.1f} {full['median']:>5.0f} "
              f"{full['p99']:>6.0f} {full['p999']:>7.0f} {full['max']:>7.0f} {full['over_1ms']:>6} "
              f"{full['backlog']:>7} | {base['rate']:>6.0f} {base['median']:>5.0f} {base['p99']:>6.0f} | "
              f"{full['median'] / base['median']:>5.1f} {full['p99'] / base['p99']:>5.1f} "
              f"{'met' if full['p99'] <= 1000 else 'NOT met':>8}")
    decided = ", ".join(f"{n} symbols {full['decisions']}" for n, _s, _b, full in rows)
    print(f"decisions while measuring: {decided}")
    startup = ", ".join(f"{n} symbols {full['startup_s']:.2f} s" for n, _s, _b, full in rows)
    print(f"session start to the first update decided on (reconciliation, volume profiles, connections): {startup}")


if __name__ == "__main__":
    main()
