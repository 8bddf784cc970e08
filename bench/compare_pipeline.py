"""Whole-pipeline throughput of this tree against an earlier revision, in one run.

    python bench/compare_pipeline.py --base REV [--rounds 3] [--limit N] [--tier sniper]

Checks REV out into a temporary git worktree, then runs `bench/bench_pipeline.py` of
each tree in turn (base, current, base, current, ...) on the same input, so both see the
same machine load, and prints each round and the median events/s, median and p99
latency of both, with the ratio current / base. A change in the engine's semantics
should show no regression beyond the spread between rounds.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^Genesis \(compiled, incremental\)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)", re.M)


def run_bench(tree: Path, limit: int, tier: str) -> tuple[float, float, float]:
    """(events/s, median µs, p99 µs) of one run of a tree's bench_pipeline.py."""
    cmd = [sys.executable, str(tree / "bench" / "bench_pipeline.py"), "--tier", tier]
    if limit:
        cmd += ["--limit", str(limit)]
    env = {**os.environ, "PYTHONPATH": str(tree)}   # the tree's own genesis package, not the installed one
    out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    match = ROW.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"bench_pipeline.py failed in {tree}:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(match.group(1).replace(",", "")), float(match.group(2)), float(match.group(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. HEAD~3, a commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N events")
    parser.add_argument("--tier", default="sniper")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            results: dict = {"base": [], "current": []}
            for i in range(args.rounds):
                for label, tree in (("base", base), ("current", ROOT)):
                    r = run_bench(tree, args.limit, args.tier)
                    results[label].append(r)
                    print(f"round {i + 1} {label:<8} {r[0]:>10,.0f} events/s  median {r[1]:6.2f} µs  p99 {r[2]:7.2f} µs",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    med = {k: [statistics.median(x[j] for x in v) for j in range(3)] for k, v in results.items()}
    spread = {k: (min(x[0] for x in v), max(x[0] for x in v)) for k, v in results.items()}
    for label in ("base", "current"):
        lo, hi = spread[label]
        print(f"{label:<8} median of {args.rounds}: {med[label][0]:>10,.0f} events/s (range {lo:,.0f}-{hi:,.0f}), "
              f"median {med[label][1]:.2f} µs, p99 {med[label][2]:.2f} µs")
    print(f"ratio current/base: {med['current'][0] / med['base'][0]:.2f}x events/s, "
          f"{med['current'][2] / med['base'][2]:.2f}x p99 latency")


if __name__ == "__main__":
    main()
