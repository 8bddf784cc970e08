"""Machine instructions per event of the whole pipeline, this tree against an earlier
revision: a measure that other load on the machine does not move.

    python bench/instructions_pipeline.py --base REV [--events 10000,100000] [--tier sniper]

Wall-clock throughput on a shared machine swings by a third between identical runs;
the number of instructions executed does not. This runs each tree's pipeline (journal
on, as `bench/bench_pipeline.py` measures it) under valgrind's cachegrind at two event
counts and prints the instructions per event between them (start-up, configuration
loading and the first events' warm-up cancel out), and the ratio current / base. Feed
parsing of the events is included, the same for both trees. String hashing is seeded
the same in every run (`--seed`): the order of sets moves the count by a few percent
from one seed to another, so compare a few seeds. Needs valgrind on PATH.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from base_tree import base_worktree

ROOT = Path(__file__).resolve().parents[1]
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")

WORKLOAD = """
import gc, itertools, sys, tempfile
sys.path.insert(0, {bench!r})
from bench_pipeline import ROOT, _copy, capture_paths, open_feed
from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.journal import Journal
config = check_config(ROOT)
events = [_copy(e) for e in itertools.islice(open_feed(capture_paths()), {count})]
gc.collect()
gc.freeze()   # as bench_pipeline.py does: the held events are not garbage
with tempfile.TemporaryDirectory() as tmp:
    journal = Journal(f"sqlite:///{{tmp}}/bench.db")
    journal.open_run({tier!r}, "bench", "bench", [], "bench")
    engine = Engine(config, {tier!r}, journal=journal)
    for event in events:
        engine.process(event)
    journal.close()
"""


def instructions(tree: Path, count: int, tier: str, seed: int) -> int:
    """Instructions executed by one run of the workload on `count` events of `tree`."""
    code = WORKLOAD.format(bench=str(tree / "bench"), count=count, tier=tier)
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, "-c", code]
    out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": str(seed)})
    match = REFS.search(out.stderr)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"the workload failed in {tree}:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. HEAD~3, a commit)")
    parser.add_argument("--events", default="10000,100000", help="the two event counts, comma-separated")
    parser.add_argument("--tier", default="sniper")
    parser.add_argument("--seed", type=int, default=0,
                        help="PYTHONHASHSEED of every run: set and dict orders move counts by a few percent")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: install it (apt install valgrind) or use "
                         "bench/compare_pipeline.py, which measures wall-clock time")
    try:
        low, high = (int(n) for n in args.events.split(","))
    except ValueError:
        raise SystemExit(f"--events needs two whole numbers, comma-separated: got {args.events!r}") from None
    if not 0 <= low or high - low < 10_000:
        raise SystemExit(f"--events needs two counts at least 10,000 apart (start-up varies by millions of "
                         f"instructions from run to run): got {args.events!r}")
    per_event = {}
    with base_worktree(args.base) as base:
        for label, tree in (("base", base), ("current", ROOT)):
            a, b = instructions(tree, low, args.tier, args.seed), instructions(tree, high, args.tier, args.seed)
            per_event[label] = (b - a) / (high - low)
            print(f"{label:<8} {per_event[label]:>10,.0f} instructions/event (events {low:,}-{high:,})", flush=True)
    print(f"ratio current/base: {per_event['current'] / per_event['base']:.3f}x instructions per event")


if __name__ == "__main__":
    main()
