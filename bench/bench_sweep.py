"""Sweep throughput: trials per second on 1 and 2 local workers, and the ratio.

The same grid (sniper's `limits.max_position_pct` over --trials values) of real
replays, each validated and replayed with its journal in memory, run first on one
worker (in this process) and then on a pool of two. The input is the bundled 3-minute
sample, or --data FILES.

    python bench/bench_sweep.py [--trials 8] [--data FILE ...]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesis.sweep.sweepfile import load_sweep  # noqa: E402
from genesis.sweep.sweeprun import run_sweep  # noqa: E402
from genesis.sweep.workers import LocalPool  # noqa: E402


def timed(sweep, workers: int) -> tuple[float, list]:
    """(seconds, results) of the whole sweep on `workers` workers, pool start included."""
    started = time.perf_counter()
    with LocalPool(workers) as pool:
        outcome = run_sweep(sweep, ROOT, pool)
    return time.perf_counter() - started, outcome.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="Grid size (default 8).")
    parser.add_argument("--data", nargs="*", default=[], help="Feed files (default: the bundled sample).")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        body = {"tier": "sniper", "parameters": [{"key": "tiers/sniper.yaml: limits.max_position_pct",
                                                  "values": [1 + i * 0.5 for i in range(args.trials)]}]}
        if args.data:
            body["data"] = [str(Path(p).resolve()) for p in args.data]
        path.write_text(yaml.safe_dump(body), encoding="utf-8")
        sweep = load_sweep(path)
        print(f"grid: {args.trials} trials of sniper limits.max_position_pct, journal in memory")
        one_s, one = timed(sweep, 1)
        two_s, two = timed(sweep, 2)
    events = sum(r.metrics.get("events", 0) for r in one)
    print(f"events per trial: {events // max(1, len(one)):,}")
    print(f"1 worker : {one_s:6.2f} s  {len(one) / one_s:6.2f} trials/s")
    print(f"2 workers: {two_s:6.2f} s  {len(two) / two_s:6.2f} trials/s")
    print(f"ratio 2 workers / 1 worker: {one_s / two_s:.2f}x")
    same = [r.metrics for r in one] == [r.metrics for r in two]
    print(f"same results on 1 and 2 workers: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
