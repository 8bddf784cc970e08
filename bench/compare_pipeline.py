"""Whole-pipeline throughput of this tree against an earlier revision, in one run.

    python bench/compare_pipeline.py --base REV [--rounds 3] [--limit N] [--tier sniper]

Checks REV out into a temporary git worktree, then runs `bench/bench_pipeline.py` of
each tree in turn (base, current, base, current, ...) on the same input, so both see the
same machine load, and prints each round and the median events/s, median and p99
latency of both, with the ratio current / base. A change in the engine's semantics
should show no regression beyond the spread between rounds. The base tree is given
the same `../shared` real data as this one (the script refuses to compare runs on
different input). On a shared machine wall-clock rounds swing widely: the best round
is the least disturbed one; `bench/instructions_pipeline.py` counts instructions,
which load does not move.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from base_tree import base_worktree

ROOT = Path(__file__).resolve().parents[1]
INPUT = re.compile(r"^input: (.*)$", re.M)
ROW = re.compile(r"^Genesis \(compiled, incremental\)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)", re.M)


def run_bench(tree: Path, limit: int, tier: str) -> tuple[float, float, float, str]:
    """(events/s, median µs, p99 µs, input line) of one run of a tree's bench_pipeline.py."""
    cmd = [sys.executable, str(tree / "bench" / "bench_pipeline.py"), "--tier", tier]
    if limit:
        cmd += ["--limit", str(limit)]
    env = {**os.environ, "PYTHONPATH": str(tree)}   # the tree's own genesis package, not the installed one
    out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    match, source = ROW.search(out.stdout), INPUT.search(out.stdout)
    if out.returncode != 0 or match is None or source is None:
        raise SystemExit(f"bench_pipeline.py failed in {tree}:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(match.group(1).replace(",", "")), float(match.group(2)), float(match.group(3)), source.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. HEAD~3, a commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N events")
    parser.add_argument("--tier", default="sniper")
    args = parser.parse_args()
    results: dict = {"base": [], "current": []}
    with base_worktree(args.base) as base:
        for i in range(args.rounds):
            for label, tree in (("base", base), ("current", ROOT)):
                r = run_bench(tree, args.limit, args.tier)
                results[label].append(r)
                if r[3] != results["base"][0][3]:
                    raise SystemExit(f"the trees read different input: base {results['base'][0][3]!r}, "
                                     f"{label} {r[3]!r}")
                print(f"round {i + 1} {label:<8} {r[0]:>10,.0f} events/s  median {r[1]:6.2f} µs  p99 {r[2]:7.2f} µs",
                      flush=True)
    med = {k: [statistics.median(x[j] for x in v) for j in range(3)] for k, v in results.items()}
    spread = {k: (min(x[0] for x in v), max(x[0] for x in v)) for k, v in results.items()}
    for label in ("base", "current"):
        lo, hi = spread[label]
        print(f"{label:<8} median of {args.rounds}: {med[label][0]:>10,.0f} events/s (range {lo:,.0f}-{hi:,.0f}), "
              f"median {med[label][1]:.2f} µs, p99 {med[label][2]:.2f} µs")
    print(f"input (both trees): {results['base'][0][3]}")
    print(f"ratio current/base: {med['current'][0] / med['base'][0]:.2f}x events/s (medians), "
          f"{spread['current'][1] / spread['base'][1]:.2f}x (best rounds), "
          f"{med['current'][2] / med['base'][2]:.2f}x p99 latency")


if __name__ == "__main__":
    main()
