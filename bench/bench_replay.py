"""Whole-process replay: `genesis replay` of real data, start-up to report, against the
floor of reading the same data, measured in the same run (issue 17's first two targets).

Two cases, each the median wall time of --rounds whole processes after one warm-up:

- ticks: the BTCUSDT websocket capture (../shared/data/binance_spot_ws_raw, 99,574
  messages in 11 minutes; the bundled 3-minute sample when ../shared is absent), tier
  Sniper, default rules, journal on (in memory, as `genesis replay` keeps it). Floor: a
  process that gunzips the same files and `json.loads` every message. Target: at most
  2x the floor and at most 1.0 s (100k events/s).
- candles: 30 days x 2 pairs of 1-minute candles (../shared/data/binance_spot_ohlcv),
  tier Hunter (mean reversion and every safety rule). Floor: a process that gunzips and
  `json.loads` both files. Target: 2.1 s (10x Freqtrade 2026.9's 21.2 s with
  protections, measured on this machine when the issue was written; Freqtrade is not
  installed here, so that figure is quoted, not re-measured).

Each line prints the wall time, events per second, the ratio to the floor and to the
target. Skips the candle case (with the reason) when ../shared is absent.

    python bench/bench_replay.py [--rounds 3] [--only ticks|candles] [--sample] [--pure]

The first line says whether the engine's modules run compiled (`genesis --version`).
`--pure` also times each replay with GENESIS_PURE_PYTHON=1 (every module from its
source) and prints the compiled/pure ratio: the compiled modules' baseline, same run.

`--sample` replays the bundled 3-minute sample instead of the capture and leaves the
candles out (a quick check that the script runs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CAPTURE = sorted((SHARED / "binance_spot_ws_raw").glob("btcusdt_2024080*.gz"))
SAMPLE = sorted((ROOT / "genesis" / "data" / "sample").glob("btcusdt_*.gz"))
CANDLES = sorted((SHARED / "binance_spot_ohlcv").glob("*.json.gz"))
FREQTRADE_PROTECTIONS_S = 21.2

# an installed Genesis runs from compiled modules (pip or the first run writes them): a
# PYTHONDONTWRITEBYTECODE inherited from the shell would time Python's compiler instead
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONHASHSEED": "0"}

FLOOR_TICKS = """
import gzip, json, sys
n = 0
for path in sys.argv[1:]:
    with gzip.open(path, "rb") as f:
        for line in f:
            json.loads(line[line.index(b" ") + 1:])
            n += 1
print(n)
"""

FLOOR_CANDLES = """
import gzip, json, sys
n = 0
for path in sys.argv[1:]:
    with gzip.open(path, "rb") as f:
        n += len(json.loads(f.read()))
print(n)
"""


def run(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one whole process; exits with its error when it fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env or CHILD_ENV)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({done.returncode}): {done.stderr[-800:]}")
    return elapsed, done.stdout


def median(argv: list[str], rounds: int, env: dict | None = None) -> tuple[float, str]:
    """Median wall seconds of `rounds` runs after one warm-up run, and the last output."""
    run(argv, env)
    times, out = [], ""
    for _ in range(rounds):
        elapsed, out = run(argv, env)
        times.append(elapsed)
    return statistics.median(times), out


def case(label: str, files: list[Path], floor_code: str, tier: str, target_s: float | None, rounds: int,
         floor_target: float | None, pure: bool) -> None:
    """Time the floor and the replay of `files` (and with `pure`, the pure-Python replay);
    print them and the ratios."""
    paths = [str(p) for p in files]
    floor_s, floor_out = median([sys.executable, "-c", floor_code, *paths], rounds)
    events = int(floor_out.strip() or 0)
    replay = [sys.executable, "-m", "genesis", "replay", *paths, "--tier", tier]
    replay_s, _ = median(replay, rounds)
    print(f"{label}: {events:,} messages, tier {tier}")
    print(f"  floor (gunzip + json.loads)  {floor_s:6.2f} s  {events / floor_s / 1000:7.0f}k/s")
    print(f"  genesis replay, whole process {replay_s:6.2f} s  {events / replay_s / 1000:7.0f}k/s")
    if pure:
        pure_s, _ = median(replay, rounds, CHILD_ENV | {"GENESIS_PURE_PYTHON": "1"})
        print(f"  the same, pure Python          {pure_s:6.2f} s  {events / pure_s / 1000:7.0f}k/s"
              f"  (compiled/pure {replay_s / pure_s:.2f}x)")
    ratio = replay_s / floor_s
    line = f"  ratio to the floor {ratio:.2f}x"
    if floor_target is not None:
        line += f" (target <= {floor_target:.1f}x)"
    print(line)
    if target_s is not None:   # the targets are for the whole capture and the 30 days of candles
        print(f"  ratio to the target {replay_s / target_s:.2f}x (target <= {target_s:.1f} s; "
              f"{'met' if replay_s <= target_s else 'not met'})")


def main() -> None:
    """Run the cases asked for and print their figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=("ticks", "candles"))
    ap.add_argument("--sample", action="store_true", help="the bundled sample only, no candles")
    ap.add_argument("--pure", action="store_true",
                    help="also time the replay with GENESIS_PURE_PYTHON=1, the baseline of the compiled modules")
    args = ap.parse_args()
    engine = subprocess.run([sys.executable, "-m", "genesis", "--version"], capture_output=True, text=True,
                            cwd=ROOT, env=CHILD_ENV).stdout.strip()
    print(engine or "genesis --version printed nothing")
    if args.only in (None, "ticks"):
        files = SAMPLE if args.sample else CAPTURE or SAMPLE
        if files is SAMPLE:
            print("ticks: the bundled 3-minute sample instead of the 11-minute capture"
                  + ("" if args.sample else " (../shared/data is absent)"))
        case("ticks", files, FLOOR_TICKS, "sniper", None if files is SAMPLE else 1.0, args.rounds, 2.0,
             args.pure)
    if args.only in (None, "candles") and not args.sample:
        if not CANDLES:
            print("candles: skipped, ../shared/data/binance_spot_ohlcv is absent")
            return
        case("candles", CANDLES, FLOOR_CANDLES, "hunter", 2.1, args.rounds, None, args.pure)
        print(f"  Freqtrade with protections (quoted from issue 17, not run here): {FREQTRADE_PROTECTIONS_S} s")


if __name__ == "__main__":
    main()
