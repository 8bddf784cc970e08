"""Start-up: how long a `genesis` command takes before it does its work.

Each case is a whole process (python started, imports, configuration read, command
run, exit), timed from this script's clock, the median of --rounds runs after one
warm-up run. The baseline, measured in the same run, is the interpreter's floor:
`python -c pass`. Each case is printed with its ratio to the floor and to the target
(0.3 s, issue 17):

- `genesis --help`: importing the command line (no command's modules);
- `genesis validate`: every configuration file checked and the rules of every tier compiled;
- `genesis replay` of a one-event file (the first line of the bundled BTCUSDT sample),
  report and all: an upper bound of start-up to the first event (configuration read and
  compiled, journal opened in memory, feed opened, the event processed).

`validate` and `replay` are timed on a configuration read before (its checked documents
and compiled rule sets kept in a cache folder of this run, genesis/config/checkcache.py and
genesis/expr/codecache.py: what a trader's second command gets) and with the cache off
(GENESIS_CACHE_DIR empty: a first run, or an edited configuration); `validate` also with
the checked documents kept but no compiled rule set (the *.code files removed before each
run), which shows what keeping the compiled rules saves. The configuration is the
checkout's own.

    python bench/bench_startup.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "genesis" / "data" / "sample" / "btcusdt_20240808_sample.gz"
TARGET_S = 0.3


def one_event_file(folder: Path) -> Path:
    """A capture file holding the sample's first message only."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as source:
        first = source.readline()
    path = folder / "one_event.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(first)
    return path


def timed(argv: list[str], env: dict, before=None) -> float:
    """Wall seconds of one whole process (after `before()`, untimed); exits with its error when it fails."""
    if before is not None:
        before()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[2:]) or 'python'} failed ({done.returncode}): {done.stderr[-1000:]}")
    return elapsed


def median_time(argv: list[str], env: dict, rounds: int, before=None) -> float:
    """Median wall seconds of `rounds` runs, after one warm-up run (.pyc files, the kept documents)."""
    timed(argv, env, before)
    return statistics.median(timed(argv, env, before) for _ in range(rounds))


def forget_compiled(cache: Path):
    """A `before` that removes the kept compiled rule sets (the checked documents stay)."""
    def remove() -> None:
        for store in cache.glob("*.code"):
            store.unlink()
    return remove


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="Timed runs per case (the median is shown).")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    python = [sys.executable]
    genesis = [sys.executable, "-m", "genesis"]
    with tempfile.TemporaryDirectory() as tmp:
        one = one_event_file(Path(tmp))
        cache = Path(tmp) / "cache"
        kept = {**os.environ, "GENESIS_CONFIG": str(ROOT), "GENESIS_CACHE_DIR": str(cache)}
        kept.pop("GENESIS_DEBUG", None)
        # an installed Genesis runs from compiled modules (pip or the first run writes them):
        # a PYTHONDONTWRITEBYTECODE inherited from the shell would time Python's compiler
        kept.pop("PYTHONDONTWRITEBYTECODE", None)
        fresh = {**kept, "GENESIS_CACHE_DIR": ""}
        replay_one = genesis + ["replay", "--json", str(one)]
        cases = [
            ("floor: python -c pass (baseline)", python + ["-c", "pass"], kept),
            ("genesis --help", genesis + ["--help"], kept),
            ("genesis validate", genesis + ["validate"], kept),
            ("genesis validate, rule sets compiled afresh (documents kept)", genesis + ["validate"], kept,
             forget_compiled(cache)),
            ("genesis validate, cache off (first run)", genesis + ["validate"], fresh),
            ("genesis replay, one event (start-up to the first event, upper bound)", replay_one, kept),
            ("genesis replay, one event, cache off (first run)", replay_one, fresh),
        ]
        results = [(label, median_time(argv, env, args.rounds, *before)) for label, argv, env, *before in cases]
    floor = results[0][1]
    print(f"start-up, whole processes, median of {args.rounds} (configuration: {ROOT})")
    print(f"{'case':<72} {'seconds':>8} {'x floor':>8} {'/ target':>9}")
    for label, seconds in results:
        print(f"{label:<72} {seconds:8.3f} {seconds / floor:8.1f} {seconds / TARGET_S:9.2f}")
    for label, seconds in results[1:]:
        print(f"target {TARGET_S} s, {label}: {'met' if seconds <= TARGET_S else 'not met'}")


if __name__ == "__main__":
    main()
