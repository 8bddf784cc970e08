"""Python bytecodes executed per event by `genesis replay`, by function: a count that
the machine's load does not move, this tree against an earlier revision.

    python bench/opcodes_replay.py [--case candles|ticks] [--events N] [--base REV] [--top 25]

Wall-clock time on a shared machine moves by a third or more from one hour to the next;
the number of bytecode instructions the interpreter executes for the same input does
not. This replays a cut of real data in a child process whose tracer (`sys.settrace`
with `f_trace_opcodes`) counts, per function, every bytecode executed from the first
event to the last (start-up, the configuration check and the report are left out). It
prints the count per event and the functions that execute the most; with `--base REV`,
the same for REV checked out beside the same data, and the ratio current/base. String
hashing is seeded the same in every run, so the count of a tree is the same every time
to a few bytecodes in millions (the journal keeps the time of its slowest write).
The engine's modules run from their source (GENESIS_PURE_PYTHON=1: compiled code
executes no bytecode). The tracer slows the replay about thirty times: a cut of a few
thousand events takes seconds. Bytecodes are not all equally dear (a call or a dict lookup costs more than a
jump), so this measures the interpreter's work, not time: `bench_replay.py` times it.

Cases:
- candles (the default): `--events` rows of each pair's 1-minute candles
  (../shared/data/binance_spot_ohlcv, 2 pairs) from the third day on, when the 24-hour
  windows are full; tier Hunter. Skipped, with the reason, when ../shared is absent.
- ticks: the first `--events` lines of the BTCUSDT capture (../shared/data/binance_spot_ws_raw,
  else the bundled 3-minute sample); tier Sniper.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from base_tree import base_worktree

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CANDLES = sorted((SHARED / "binance_spot_ohlcv").glob("*.json.gz"))
CAPTURE = sorted((SHARED / "binance_spot_ws_raw").glob("btcusdt_2024080*.gz"))
SAMPLE = sorted((ROOT / "genesis" / "data" / "sample").glob("btcusdt_*.gz"))
CANDLES_FROM_ROW = 2 * 1440   # the third day: the 24-hour percentile windows are full

# the child: `python -c CHILD OUT_JSON genesis-args...`, run in the tree it measures
CHILD = r"""
import collections, json, runpy, sys
out_path = sys.argv[1]
sys.argv = ["genesis"] + sys.argv[2:]
counts, calls = collections.Counter(), collections.Counter()

def local(frame, event, arg):
    if event == "opcode":
        counts[frame.f_code] += 1
    return local

def tracer(frame, event, arg):   # a call, or a generator resumed
    calls[frame.f_code] += 1
    frame.f_trace_opcodes = True
    frame.f_trace_lines = False
    return local

from genesis.engine import runner
untraced = runner.replay

def replay(session, *args, **kwargs):
    sys.settrace(tracer)
    try:
        return untraced(session, *args, **kwargs)
    finally:
        sys.settrace(None)
        events = session.engine.stats.events
        functions = collections.defaultdict(lambda: [0, 0])
        for code, n in counts.items():
            name = code.co_filename
            name = name[name.rindex("genesis/") :] if "genesis/" in name else name
            entry = functions[f"{name} {code.co_qualname}"]
            entry[0] += n
            entry[1] += calls[code]
        with open(out_path, "w") as fh:
            json.dump({"events": events, "functions": functions}, fh)

runner.replay = replay
runpy.run_module("genesis", run_name="__main__")
"""


def cut_candles(folder: Path, rows: int) -> list[Path]:
    """Each pair's candle file cut to `rows` rows from CANDLES_FROM_ROW, named as before."""
    paths = []
    for path in CANDLES:
        with gzip.open(path, "rb") as fh:
            kept = json.loads(fh.read())[CANDLES_FROM_ROW:CANDLES_FROM_ROW + rows]
        out = folder / path.name
        with gzip.open(out, "wt") as fh:
            json.dump(kept, fh)
        paths.append(out)
    return paths


def cut_capture(folder: Path, lines: int) -> list[Path]:
    """The first `lines` lines of the capture (or of the bundled sample), in one file
    named as its first file is."""
    sources = CAPTURE or SAMPLE
    out = folder / sources[0].name
    left = lines
    with gzip.open(out, "wb") as dst:
        for path in sources:
            with gzip.open(path, "rb") as src:
                for line in src:
                    if left <= 0:
                        break
                    dst.write(line)
                    left -= 1
    return [out]


def count(tree: Path, files: list[Path], tier: str, folder: Path, tag: str) -> dict:
    """Run the traced replay of `files` in `tree`; its counts."""
    out = folder / f"{tag}.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # compiled modules execute no bytecode to count: the tracer counts their source
    env.update(PYTHONHASHSEED="0", PYTHONPATH=str(tree), GENESIS_PURE_PYTHON="1")
    argv = [sys.executable, "-c", CHILD, str(out), "replay", *map(str, files), "--tier", tier, "--config", str(tree)]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        sys.exit(f"the traced replay failed in {tree}:\n{done.stderr[-2000:]}")
    result = json.loads(out.read_text())
    result["total"] = sum(n for n, _ in result["functions"].values())
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=("candles", "ticks"), default="candles")
    ap.add_argument("--events", type=int, default=None,
                    help="candle rows per pair (default 2880, two days) or capture lines (default 20000)")
    ap.add_argument("--base", default=None, help="a revision to compare with (checked out into a temporary worktree)")
    ap.add_argument("--top", type=int, default=25, help="functions listed")
    args = ap.parse_args()
    if args.case == "candles" and not CANDLES:
        print(f"candles: skipped, no 1-minute candles in {SHARED / 'binance_spot_ohlcv'}")
        return
    tier = "hunter" if args.case == "candles" else "sniper"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.case == "candles":
            rows = args.events or 2880
            files = cut_candles(folder, rows)
            what = f"{rows:,} rows of 1-minute candles of {len(files)} pairs from day 3"
        else:
            lines = args.events or 20_000
            files = cut_capture(folder, lines)
            what = f"the first {lines:,} lines of {'the capture' if CAPTURE else 'the bundled sample'}"
        current = count(ROOT, files, tier, folder, "current")
        base = None
        if args.base:
            with base_worktree(args.base) as tree:
                base = count(tree, files, tier, folder, "base")
    events = current["events"]
    print(f"{args.case}, tier {tier}: {events:,} events ({what})")
    print(f"  this tree   {current['total'] / events:9,.1f} bytecodes an event ({current['total']:,} in all)")
    if base is not None:
        if base["events"] != events:
            print(f"  note: the base replayed {base['events']:,} events")
        per_base = base["total"] / base["events"]
        print(f"  base {args.base:<6} {per_base:9,.1f} bytecodes an event ({base['total']:,} in all)")
        print(f"  ratio current/base: {current['total'] / events / per_base:.3f}")
    print("  functions executing the most (bytecodes an event; calls an event)"
          + (", this tree / base:" if base is not None else ":"))
    ranked = sorted(current["functions"].items(), key=lambda item: -item[1][0])[:args.top]
    for name, (ops, calls) in ranked:
        line = f"    {name:<64} {ops / events:8.1f} {calls / events:6.2f}"
        if base is not None:
            theirs = base["functions"].get(name)
            line += f"   / {theirs[0] / base['events']:8.1f} {theirs[1] / base['events']:6.2f}" if theirs else "   / -"
        print(line)


if __name__ == "__main__":
    main()
