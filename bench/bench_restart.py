"""Restart time against run length: does recovery stay flat as a live run ages?

For each run length (1 hour, 1 day, 7 days of event time by default) a live-mode run
(a dry run: the paper exchange, so no exchange is needed) is built through the real
LiveRunner path: every input written to the segmented input log, processed by the
engine, snapshots every `recovery.snapshot_every` (5 min) with the log starting a new
segment at each. Then the process "dies" (nothing is finished) and a fresh process
restarts it twice, timing start-up to the end of recovery (the journal opened, the
state rebuilt, the input after the snapshot replayed):

- with snapshots: what Genesis does;
- the baseline, measured in the same run: the same journal and log with the
  snapshots removed, so the whole input log is replayed (what Genesis did before).

The input is the real capture's book tickers and trades (bundled sample, or the full
capture in ../shared/data when present), looped with its timestamps shifted. The last
10 minutes of each run are at the capture's own rate (~200 messages/s), which is what
a restart replays after the latest snapshot; the hours before are thinned to
`--bulk-rate` events per second, so that building a 7-day run takes a minute, not a
day. Thinning does not favour snapshots: the baseline replays the thinned bulk, so its
growth with run length is understated, not overstated.

    python bench/bench_restart.py [--lengths 1h,1d,7d] [--bulk-rate 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesis.config.checks import check_config  # noqa: E402
from genesis.durations import parse_duration  # noqa: E402
from genesis.engine.feeds import open_feed, sample_paths  # noqa: E402

SHARED_CAPTURE = ROOT.parent / "shared" / "data"
TAIL_S = 600          # the last 10 minutes at the capture's own rate
KINDS = ("book_ticker", "trade")


def capture_events() -> list:
    """(offset ms, kind, symbol, fields) of the capture's tickers and trades."""
    full = sorted(SHARED_CAPTURE.glob("*.gz")) if SHARED_CAPTURE.is_dir() else []
    paths = [p for p in full if "usdt" in p.name.lower() and "-1m" not in p.name] or sample_paths()
    events = [e for e in open_feed(paths) if e.kind in KINDS]
    first = events[0].ts
    return [(e.ts - first, e.kind, e.symbol, dict(e.fields)) for e in events]


def stream(capture: list, length_ms: int, bulk_rate: float, start_ts: int):
    """Events covering `length_ms`: thinned to `bulk_rate`/s, then the capture's rate for
    the last TAIL_S seconds."""
    from genesis.engine.events import Event  # noqa: PLC0415

    span = capture[-1][0] + 1
    tail_from = max(0, length_ms - TAIL_S * 1000)
    rate = len(capture) / (span / 1000.0)
    step = max(1, int(rate / bulk_rate))
    t, i = 0, 0
    while t < length_ms:
        loop, k = divmod(i, len(capture))
        offset, kind, symbol, fields = capture[k]
        t = loop * span + offset
        if t >= length_ms:
            break
        if t >= tail_from or i % step == 0:
            yield Event(kind, start_ts + t, symbol, dict(fields))
        i += 1 if t >= tail_from else step


def config_copy(tmp: Path) -> Path:
    root = tmp / "config"
    root.mkdir()
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    for name in ("rules", "tiers"):
        shutil.copytree(ROOT / name, root / name)
    with (root / "genesis.yaml").open("a") as fh:   # keep every segment: the baseline replays them all
        fh.write("\nrecovery:\n  snapshot_every: 5m\n  min_interval: 0s\n  input_log_retention: null\n")
    return root


def build(folder: Path, length: str, bulk_rate: float, capture: list) -> dict:
    """Run a dry run over `length` of input and leave it unfinished, as a kill would."""
    from genesis.live.segment import InputLog  # noqa: PLC0415
    from genesis.live.session import LiveRunner, open_live_session  # noqa: PLC0415

    root = config_copy(folder)
    config = check_config(root)
    db = f"sqlite:///{folder / 'journal.db'}"
    session, log_path = open_live_session(root, config, "sniper", db, None, "http://127.0.0.1:1", dry_run=True)
    runner = LiveRunner(session, None, None, None, log_path, ["BTCUSDT", "ETHUSDT"], say=lambda _t: None)
    runner.log = InputLog(log_path)
    inputs = 0
    began = time.perf_counter()

    async def feed() -> None:
        nonlocal inputs
        for event in stream(capture, int(parse_duration(length) * 1000), bulk_rate, 1_723_161_600_000):
            runner.process(event)
            inputs += 1
            if session.snapshots.due():
                runner._snapshot()   # noqa: SLF001 - the live loop's own step, between two inputs
        await asyncio.sleep(0.2)     # the compaction worker
    asyncio.run(feed())
    runner.log.close()
    session.journal.close()
    segments = len(list((folder / "genesis-live").glob("*.inputs*")))
    return {"inputs": inputs, "build_s": time.perf_counter() - began, "segments": segments,
            "snapshots": session.snapshots.taken}


def restart(folder: Path, rounds: int) -> float:
    """The best of `rounds` restarts in a fresh process: seconds to a recovered state."""
    code = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
began = time.perf_counter()
from pathlib import Path
from genesis.config.checks import check_config
from genesis.live.session import LiveRunner, open_live_session
folder = Path({str(folder)!r})
root = folder / "config"
session, log = open_live_session(root, check_config(root), "sniper", f"sqlite:///{{folder / 'journal.db'}}", None,
                                 "http://127.0.0.1:1", dry_run=True)
replayed = LiveRunner(session, None, None, None, log, ["BTCUSDT", "ETHUSDT"], say=lambda _t: None).recover()
print(time.perf_counter() - began, replayed, session.restored is not None and session.restored.seq > 0)
"""
    best = None
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        seconds = float(out[0])
        best = seconds if best is None else min(best, seconds)
    return best, int(out[1]), out[2] == "True"


def without_snapshots(folder: Path, into: Path) -> Path:
    """A copy of the run with its snapshots deleted: a restart replays the whole log."""
    shutil.copytree(folder, into)
    con = sqlite3.connect(into / "journal.db")
    con.execute("DELETE FROM snapshots")
    con.commit()
    con.close()
    runs = sqlite3.connect(into / "journal.db")
    paths = json.loads(runs.execute("SELECT feed_paths FROM runs").fetchone()[0])
    moved = [str(into / "genesis-live" / Path(p).name) for p in paths]
    runs.execute("UPDATE runs SET feed_paths = ?", (json.dumps(moved),))
    runs.commit()
    runs.close()
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="1h,1d,7d", help="Run lengths (event time), comma-separated.")
    parser.add_argument("--bulk-rate", type=float, default=2.0, help="Events per second before the last 10 minutes.")
    parser.add_argument("--rounds", type=int, default=3, help="Restarts timed per case (the best is shown).")
    args = parser.parse_args()
    capture = capture_events()
    span_s = (capture[-1][0] + 1) / 1000.0
    print(f"capture: {len(capture):,} tickers and trades over {span_s:.0f} s ({len(capture) / span_s:.0f}/s); "
          f"last {TAIL_S // 60} min of each run at that rate, {args.bulk_rate:g}/s before")
    print(f"{'run length':>10} {'inputs':>10} {'segments':>9} {'snapshot restart':>17} {'replayed':>9} "
          f"{'full replay':>12} {'replayed':>9} {'full/snapshot':>14}")
    flat = []
    with tempfile.TemporaryDirectory(prefix="genesis-bench-restart-") as tmp:
        for length in args.lengths.split(","):
            folder = Path(tmp) / length / "run"
            folder.mkdir(parents=True)
            built = build(folder, length, args.bulk_rate, capture)
            snap_s, snap_n, used = restart(folder, args.rounds)
            assert used, "the restart did not use a snapshot"
            full_s, full_n, _ = restart(without_snapshots(folder, Path(tmp) / length / "full"), args.rounds)
            flat.append((length, snap_s))
            print(f"{length:>10} {built['inputs']:>10,} {built['segments']:>9} {snap_s:>15.2f} s {snap_n:>9,} "
                  f"{full_s:>10.2f} s {full_n:>9,} {full_s / snap_s:>13.1f}x")
            shutil.rmtree(Path(tmp) / length)
    first, base_s = flat[0]
    print(f"snapshot restart against the {first} run's ({base_s:.2f} s): "
          + ", ".join(f"{length} {seconds / base_s:.2f}x" for length, seconds in flat[1:]) + " (flat: close to 1)")


if __name__ == "__main__":
    main()
