"""Memory: does a replay's RSS stay flat as the run gets longer, and what does a symbol cost?

Every point is a whole `genesis replay` process (journal on, in a SQLite file of this
run) over real data. It reports, as the replay ends with the engine still alive, its
RSS ("final"), its peak RSS (VmHWM), the heap's allocated blocks (sys.getallocatedblocks:
Python objects, untouched by how the allocator hands memory back) and the size of the
latest state snapshot in the journal. The baseline, measured in the same run for every
point, is a process that imports the replay's modules and reads the same files through
open_feed without an engine: "engine" is replay minus baseline, so the interpreter and
the feed reader are not counted (the feed reader's own peak is printed as its slope).

- run length, ticks: the raw websocket capture (both symbols, both days of
  ../shared/data/binance_spot_ws_raw) repeated 1x, 2x, 4x, 8x, each copy shifted in
  time (local receive time, E, T) and in ids (trade ids, depth and bookTicker update
  ids) so that it continues the copy before it: the trade ids and the depth sequence
  stay gap-free and the REST snapshot is kept in the first copy only. Tier Sniper.
- run length, candles: the first 3, 7, 15 and 30 days of the two 1-minute candle files
  of ../shared/data/binance_spot_ohlcv, sliced into files of the same format. Tier Hunter.
- symbol count: the first --symbol-lines lines of the BTCUSDT capture, cloned under
  other symbol names (S001USDT, ...) to make 1, 10, 50 and 100 symbols, with the
  configuration (a copy of the checkout's) listing them all in genesis.yaml `symbols`.
  The clones are market data only: exchangeInfo (genesis/data/exchange_info.json, which
  the replay always reads) knows BTCUSDT, ETHUSDT and ETHBTC, so the strategies keep
  trading BTCUSDT and ETHUSDT, and every clone costs what the engine keeps per symbol
  it sees (order book, merged levels of deferred depth diffs, metrics, candles, volume). Tier Sniper.

Each series prints its table and the least-squares slopes (MB of RSS and heap blocks per
million events, per day of candles, per symbol) fitted over the points after the first,
which also holds the warm-up (windows and books filling). A run-length series is "flat"
when over that range the fitted growth of the peak RSS is under NOISE_MB (the final RSS
also moves with what the allocator keeps, by a few MB either way) and the heap's under
BLOCK_NOISE, "GROWS" otherwise; one that grows is replayed once more under tracemalloc
(its first point), and the heap half-way through its input is compared with the heap at
85% (past the warm-up, both mid-stream): the allocation sites that grew most, by
file:line, and the calls that led there. For symbols (full run or --trace), the heaps
as replays of 1 and 4 symbols end are compared, per extra symbol. --trace traces every
series.

Without ../shared/data the bundled 3-minute sample is repeated instead and the candle
series is skipped.

    python bench/bench_memory.py [--quick] [--only ticks,candles,symbols] [--trace] [--db file|memory]
"""
from __future__ import annotations

import argparse
import functools
import gzip
import itertools
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "genesis" / "data" / "sample"
MB = 1 << 20
NOISE_MB = 3.0            # RSS moves this much between identical runs (allocator, arenas)
BLOCK_NOISE = 0.03        # the heap's allocated blocks (sys.getallocatedblocks) move this fraction
COPY_GAP_MS = 1000        # event time between the end of one copy of the capture and the next
TRACE_TOP = 12            # allocation sites shown per traced comparison
PROGRESS_EVERY = 2000     # the replay calls on_progress every this many inputs (genesis.engine.runner)
TRACE_BETWEEN = (0.5, 0.85)   # shares of a traced run's input where the heap is compared: past the warm-up
TRACE_SYMBOLS = (1, 4)    # symbol counts whose heaps are compared, per extra symbol

FULL = {"ticks": [1, 2, 4, 8], "days": [3, 7, 15, 30], "symbols": [1, 10, 50, 100], "symbol_lines": 10_000}
QUICK = {"ticks": [1, 2, 4], "days": [3, 7, 15], "symbols": [1, 10, 50], "symbol_lines": 3_000}

# The measured process. A replay: `genesis replay` through the command line, with the
# runner's replay wrapped to read RSS and the heap's allocated blocks as the replay ends
# (the engine still alive) and, with trace_at, to dump tracemalloc snapshots of the heap
# at those input counts ("end": as the replay ends). A baseline: the replay's modules
# imported and the same files read through open_feed, nothing else.
CHILD = r'''
import json, resource, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["root"])
import psutil
proc = psutil.Process()
out = {}
if spec["mode"] == "baseline":
    import genesis.cli, genesis.engine.runner, genesis.engine.engine   # what a replay imports
    from genesis.engine.feeds import open_feed
    feed = open_feed(spec["paths"])
    for _ in feed:
        pass
    out["events"] = feed.events
    out["final"] = proc.memory_info().rss
    out["blocks"] = sys.getallocatedblocks()
else:
    import tracemalloc
    import genesis.engine.runner as runner
    original = runner.replay
    count = 0
    trace_at = spec.get("trace_at") or []   # input counts to take the heap at; "end": as the replay ends
    taken = []
    def snap():
        keep = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__),
                                                         tracemalloc.Filter(False, "<frozen *>"),
                                                         tracemalloc.Filter(False, "<unknown>")])
        keep.dump(f"{spec['out']}.{len(taken)}")
        taken.append(count)
    def progress(n):
        global count
        count = n
        if len(taken) < len(trace_at) and trace_at[len(taken)] != "end" and n >= trace_at[len(taken)]:
            snap()
    def measured(session, on_progress=None):
        global count
        if trace_at:
            tracemalloc.start(spec["frames"])
        report = original(session, on_progress=progress)
        out["final"] = proc.memory_info().rss
        out["blocks"] = sys.getallocatedblocks()
        out["events"] = count = session.feed.events
        if trace_at:
            if trace_at[-1] == "end":
                snap()
            tracemalloc.stop()
            out["traced"] = taken
        return report
    runner.replay = measured
    from genesis.cli import main
    sys.argv = ["genesis", "replay", *spec["paths"], "--tier", spec["tier"], "--db", spec["db"],
                "--config", spec["config"]]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
try:   # this process's own high-water mark: ru_maxrss also counts the parent's RSS at the fork
    with open("/proc/self/status") as fh:
        out["peak"] = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) * 1024
except (OSError, StopIteration):
    out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with open(spec["out"], "w") as fh:
    json.dump(out, fh)
'''


def measure(mode: str, paths: list[Path], tier: str, config: Path, work: Path, db: str,
            trace_at: list | None = None) -> dict:
    """Run one measured process: its RSS final and peak (bytes), heap blocks, events, latest snapshot size;
    with `trace_at`, "traced": the input counts its heap snapshots (measured.json.0, ...) were taken at."""
    out = work / "measured.json"
    db_url = f"sqlite:///{work / 'journal.db'}" if db == "file" else "sqlite://"
    spec = {"root": str(ROOT), "mode": mode, "paths": [str(p) for p in paths], "tier": tier, "config": str(config),
            "db": db_url, "out": str(out), "trace_at": trace_at, "frames": 5}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=work)
    if done.returncode != 0 or not out.is_file():
        sys.exit(f"{mode} of {', '.join(p.name for p in paths)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(out.read_text())
    result["snapshot"] = latest_snapshot_size(work / "journal.db")
    out.unlink()   # the heap snapshots of a traced run (measured.json.0, ...) are load_traces' to read
    for leftover in work.glob("journal.db*"):
        leftover.unlink()
    return result


def latest_snapshot_size(db: Path) -> int | None:
    """Bytes of the run's latest state snapshot in a journal file (compressed pickle), None if none."""
    if not db.is_file():
        return None
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT length(state) FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        row = None
    finally:
        con.close()
    return row[0] if row else None


# --------------------------------------------------------------------------- input


def capture_paths() -> list[Path]:
    """The websocket capture: the full 11 minutes of ../shared/data, else the bundled sample."""
    full = sorted((SHARED / "binance_spot_ws_raw").glob("*.gz"))
    return full or sorted(SAMPLE.glob("*.gz"))


def _lines(path: Path):
    """(local receive ns, decoded message) of each line of a capture file."""
    with gzip.open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\n")
            if line:
                ns, _, js = line.partition(b" ")
                yield int(ns), msgspec.json.decode(js)


def _by_symbol() -> dict[str, list[Path]]:
    """The capture's files by symbol (the name's prefix), in order."""
    by_symbol: dict[str, list[Path]] = {}
    for p in capture_paths():
        by_symbol.setdefault(p.name.split("_", 1)[0], []).append(p)
    return by_symbol


@functools.cache
def _capture_ranges() -> tuple[int, dict]:
    """What a copy is shifted by: event time (ms) and, per symbol, (update ids, trade ids)."""
    first_ns, last_ns, ids = None, None, {}
    for sym, files in _by_symbol().items():
        lo_u = lo_t = 1 << 62
        hi_u = hi_t = 0
        for p in files:
            for ns, m in _lines(p):
                first_ns = ns if first_ns is None else min(first_ns, ns)
                last_ns = ns if last_ns is None else max(last_ns, ns)
                d = m.get("data", {})
                if "U" in d:
                    lo_u, hi_u = min(lo_u, d["U"]), max(hi_u, d["u"])
                if "t" in d:
                    lo_t, hi_t = min(lo_t, d["t"]), max(hi_t, d["t"])
        ids[sym] = (hi_u - lo_u + 1, hi_t - lo_t + 1)
    return (last_ns - first_ns) // 1_000_000 + COPY_GAP_MS, ids


def repeated_capture(folder: Path, copies: int) -> list[Path]:
    """`copies` copies of the capture, one file per symbol and copy (btcusdt_rep00.gz ...),
    each continuing the one before: times shifted by the capture's span (plus
    COPY_GAP_MS), trade ids and update ids by their ranges; the snapshot only in copy 0."""
    folder.mkdir(parents=True, exist_ok=True)
    shift_ms, ids = _capture_ranges()
    paths = []
    for k in range(copies):
        for sym, files in _by_symbol().items():
            path = folder / f"{sym}_rep{k:02d}.gz"
            paths.append(path)
            if path.is_file():
                continue
            du, dt, dms = ids[sym][0] * k, ids[sym][1] * k, shift_ms * k
            with gzip.open(path, "wb", compresslevel=1) as out:
                for p in files:
                    for ns, m in _lines(p):
                        if "lastUpdateId" in m:
                            if k:
                                continue
                        else:
                            d = m["data"]
                            for key, by in (("E", dms), ("T", dms), ("U", du), ("u", du), ("t", dt)):
                                if key in d:
                                    d[key] += by
                        out.write(b"%d %s\n" % (ns + dms * 1_000_000, msgspec.json.encode(m)))
    return paths


def candle_slices(folder: Path, days: int) -> list[Path]:
    """The first `days` days of each 1-minute candle file, in the same format and name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sorted((SHARED / "binance_spot_ohlcv").glob("*-1m.json.gz")):
        with gzip.open(source, "rb") as fh:
            rows = json.loads(fh.read())
        end = rows[0][0] + days * 86_400_000
        path = folder / source.name
        with gzip.open(path, "wt", compresslevel=1) as out:
            json.dump([r for r in rows if r[0] < end], out, separators=(",", ":"))
        paths.append(path)
    return paths


def symbol_names(count: int) -> list[str]:
    """BTCUSDT and count - 1 clone names."""
    return ["BTCUSDT"] + [f"S{i:03d}USDT" for i in range(1, count)]


def cloned_symbols(folder: Path, count: int, lines: int) -> list[Path]:
    """The first `lines` lines of the BTCUSDT capture, as BTCUSDT and under count - 1 other names."""
    source = capture_paths()[0]
    with gzip.open(source, "rb") as fh:
        text = b"".join(itertools.islice(fh, lines))
    paths = []
    for name in symbol_names(count):
        path = folder / f"{name.lower()}_clone.gz"
        if not path.is_file():
            clone = text.replace(b'"btcusdt@', b'"' + name.lower().encode() + b"@")
            clone = clone.replace(b'"s":"BTCUSDT"', b'"s":"' + name.encode() + b'"')
            with gzip.open(path, "wb", compresslevel=1) as out:
                out.write(clone)
        paths.append(path)
    return paths


def config_copy(folder: Path, symbols: list[str] | None = None) -> Path:
    """The checkout's configuration; with `symbols`, genesis.yaml lists those. Snapshots
    are taken at every `recovery.snapshot_every` of event time, as in a run that lasts
    (`min_interval: 0s`: a replay shorter than min_interval would take none)."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, folder / name)
    for name in ("rules", "tiers"):
        shutil.copytree(ROOT / name, folder / name)
    if symbols:
        settings = folder / "genesis.yaml"
        text, n = re.subn(r"(?m)^symbols:.*$", f"symbols: [{', '.join(symbols)}]", settings.read_text())
        if n != 1:
            sys.exit("genesis.yaml has no one-line `symbols:` list to rewrite")
        settings.write_text(text)
    with (folder / "genesis.yaml").open("a") as fh:
        fh.write("\nrecovery:\n  min_interval: 0s\n")
    return folder


# --------------------------------------------------------------------------- series


def fit(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def run_series(title: str, points: list, tier: str, work: Path, db: str, unit: str) -> dict:
    """Measure replay and baseline at each (label, x, paths, config), x None for millions of events;
    print the table; return the least-squares slopes per unit of x, fitted over the points after the
    first (the first also holds the warm-up: windows and books filling)."""
    print(f"\n{title} (tier {tier}; MB of RSS)")
    print(f"{'':>10} {'':>10} {'replay':>13} {'baseline':>13} {'engine = replay - baseline':>38}")
    print(f"{'point':>10} {'events':>10} {'final':>6} {'peak':>6} {'final':>6} {'peak':>6} {'final':>7} {'peak':>6} "
          f"{'heap blocks':>11} {'snapshot':>10} {'wall':>6}")
    xs, series, rows = [], {"final": [], "peak": [], "blocks": [], "feed": []}, []
    for label, x, paths, config in points:
        began = time.perf_counter()
        run = measure("replay", paths, tier, config, work, db)
        wall = time.perf_counter() - began
        base = measure("baseline", paths, tier, config, work, db)
        gf, gp = (run["final"] - base["final"]) / MB, (run["peak"] - base["peak"]) / MB
        gb = run["blocks"] - base["blocks"]
        xs.append(run["events"] / 1e6 if x is None else x)
        for name, value in (("final", gf), ("peak", gp), ("blocks", gb), ("feed", base["peak"] / MB)):
            series[name].append(value)
        rows.append((label, paths, config, run["events"]))
        snap = f"{run['snapshot'] / 1024:.0f} KiB" if run["snapshot"] else "-"
        print(f"{label:>10} {run['events']:>10,} {run['final'] / MB:>6.1f} {run['peak'] / MB:>6.1f} "
              f"{base['final'] / MB:>6.1f} {base['peak'] / MB:>6.1f} {gf:>+7.1f} {gp:>+6.1f} {gb:>+11,} {snap:>10} "
              f"{wall:>5.1f}s")
    steady = slice(1, None) if len(xs) > 2 else slice(None)
    fitted = {name: fit(xs[steady], ys[steady]) for name, ys in series.items()}
    span = max(xs[steady]) - min(xs[steady])
    return {**fitted, "span": span, "rows": rows, "unit": unit, "from": rows[steady][0][0],
            "rss_grown": fitted["peak"] * span,   # the final RSS also moves with what the allocator kept
            "blocks_grown": fitted["blocks"] * span / max(series["blocks"][steady][0], 1)}


def verdict(result: dict) -> str:
    """The slopes, and 'flat' or 'GROWS': peak RSS within NOISE_MB and the heap within BLOCK_NOISE."""
    grows = result["rss_grown"] >= NOISE_MB or result["blocks_grown"] >= BLOCK_NOISE
    return (f"engine, slope from {result['from']} on: RSS final {result['final']:+.2f} MB, peak {result['peak']:+.2f} "
            f"MB, heap {result['blocks']:+,.0f} blocks {result['unit']}; over that range peak RSS "
            f"{result['rss_grown']:+.1f} MB (noise {NOISE_MB:g} MB), heap {result['blocks_grown'] * 100:+.1f}% "
            f"(noise {BLOCK_NOISE * 100:g}%): {'GROWS' if grows else 'flat'}\n"
            f"feed reader (baseline peak): {result['feed']:+.2f} MB {result['unit']}")


def load_traces(run: dict, out: Path) -> list:
    """The heap snapshots a traced run dumped, in order."""
    snaps = []
    for i in range(len(run["traced"])):
        path = Path(f"{out}.{i}")
        snaps.append(tracemalloc.Snapshot.load(str(path)))
        path.unlink()
    return snaps


def print_sites(diffs: list, divide: float = 1.0) -> None:
    """The top allocation sites (file:line) and call chains of a snapshot comparison."""
    root = str(ROOT) + "/"
    by_line, by_chain = diffs
    for s in by_line[:TRACE_TOP]:
        frame = s.traceback[-1]
        print(f"  {s.size_diff / divide / 1024:>+10.1f} KiB {s.count_diff / divide:>+10,.0f} blocks  "
              f"{frame.filename.replace(root, '')}:{frame.lineno}")
    print("  the largest by call chain (innermost first):")
    for s in by_chain[:4]:
        print(f"  {s.size_diff / divide / 1024:>+10.1f} KiB  "
              + " <- ".join(f"{f.filename.replace(root, '')}:{f.lineno}" for f in reversed(s.traceback)))


def trace_growth(result: dict, tier: str, work: Path, db: str) -> None:
    """Replay the series' first point under tracemalloc; print what grew on the heap between the
    TRACE_BETWEEN shares of its input (both mid-stream, so the feed's buffers are alike)."""
    label, paths, config, events = result["rows"][0]
    at = [-(-int(events * share) // PROGRESS_EVERY) * PROGRESS_EVERY for share in TRACE_BETWEEN]
    if at[1] <= at[0] or at[1] >= events:
        print(f"\ntracemalloc, {label}: too short to trace ({events:,} events)")
        return
    began = time.perf_counter()
    run = measure("replay", paths, tier, config, work, db, trace_at=at)
    first, second = load_traces(run, work / "measured.json")
    size1, size2 = (sum(t.size for t in s.traces) for s in (first, second))
    n1, n2 = run["traced"]
    print(f"\ntracemalloc, {label} ({time.perf_counter() - began:.0f} s): traced heap {size1 / MB:.1f} MB at input "
          f"{n1:,}, {size2 / MB:.1f} MB at input {n2:,} ({(size2 - size1) / MB:+.2f} MB); the sites that grew most:")
    print_sites((second.compare_to(first, "lineno"), second.compare_to(first, "traceback")))


def trace_symbols(tmp: Path, lines: int, work: Path, db: str) -> None:
    """The heap as the replay ends with TRACE_SYMBOLS symbols, compared: what one more symbol keeps."""
    began = time.perf_counter()
    ends = []
    for n in TRACE_SYMBOLS:
        paths = cloned_symbols(tmp / "symbols", n, lines)
        config = config_copy(tmp / f"config{n}", [*symbol_names(n), "ETHUSDT"])
        run = measure("replay", paths, "sniper", config, work, db, trace_at=["end"])
        ends.append(load_traces(run, work / "measured.json")[0])
    few, many = TRACE_SYMBOLS
    print(f"\ntracemalloc ({time.perf_counter() - began:.0f} s): the heap as the replay ends, {many} symbols "
          f"against {few}, per extra symbol; the sites that grew most:")
    print_sites((ends[1].compare_to(ends[0], "lineno"), ends[1].compare_to(ends[0], "traceback")), many - few)


def symbol_series(tmp: Path, sizes: dict, work: Path, db: str) -> None:
    """RSS against the number of symbols replayed; prints the table and the cost per symbol."""
    folder = tmp / "symbols"
    folder.mkdir()
    points = [(f"{n}", n, cloned_symbols(folder, n, sizes["symbol_lines"]),
               config_copy(tmp / f"config{n}", [*symbol_names(n), "ETHUSDT"])) for n in sizes["symbols"]]
    r = run_series(f"symbol count: the first {sizes['symbol_lines']:,} lines of the BTCUSDT capture per symbol",
                   points, "sniper", work, db, "per symbol")
    print(f"per symbol, engine, from {r['from']} symbols on: RSS final {r['final'] * 1024:+.0f} KiB, peak "
          f"{r['peak'] * 1024:+.0f} KiB, heap {r['blocks']:+,.0f} blocks; feed reader (baseline peak) "
          f"{r['feed'] * 1024:+.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer, shorter points (about a minute).")
    parser.add_argument("--only", default="ticks,candles,symbols", help="Series to run, comma-separated.")
    parser.add_argument("--trace", action="store_true", help="Trace allocations for every series, flat or not.")
    parser.add_argument("--db", choices=("file", "memory"), default="file",
                        help="Journal in a SQLite file (default) or in memory (what `genesis replay` uses "
                             "without --db: the journal's rows then count as growth).")
    parser.add_argument("--ticks", help="Copies of the capture per point, e.g. 1,2,4,8.")
    parser.add_argument("--days", help="Days of candles per point, e.g. 3,7,15,30.")
    parser.add_argument("--symbols", help="Symbol counts, e.g. 1,10,50,100.")
    parser.add_argument("--symbol-lines", type=int, help="Lines of the BTCUSDT capture per symbol.")
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("ticks", "days", "symbols"):
        if getattr(args, key):
            try:
                sizes[key] = [int(v) for v in getattr(args, key).split(",")]
            except ValueError:
                parser.error(f"--{key}: whole numbers separated by commas")
            if len(sizes[key]) < 2 or min(sizes[key]) < 1:
                parser.error(f"--{key}: at least two points, each at least 1")
    if args.symbol_lines:
        sizes["symbol_lines"] = args.symbol_lines
    only = set(args.only.split(","))
    unknown = only - {"ticks", "candles", "symbols"}
    if unknown:
        parser.error(f"--only: unknown series {', '.join(sorted(unknown))} (ticks, candles, symbols)")
    shared = (SHARED / "binance_spot_ws_raw").is_dir()
    print(f"data: {'../shared/data' if shared else 'the bundled sample (../shared/data absent)'}; journal: "
          f"{'a SQLite file' if args.db == 'file' else 'in memory'}; RSS; growth = replay - baseline")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genesis-bench-memory-") as tmp:
        tmp = Path(tmp)
        work = tmp / "work"
        work.mkdir()
        config = config_copy(tmp / "config")
        series = []
        if "ticks" in only:
            points = [(f"{n}x", None, repeated_capture(tmp / "ticks", n), config) for n in sizes["ticks"]]
            result = run_series("run length: the capture repeated", points, "sniper", work, args.db,
                                "per million events")
            print(verdict(result))
            series.append((result, "sniper"))
        if "candles" in only:
            if (SHARED / "binance_spot_ohlcv").is_dir():
                points = [(f"{d} days", d, candle_slices(tmp / f"candles{d}", d), config) for d in sizes["days"]]
                result = run_series("run length: 1-minute candles, 2 pairs", points, "hunter", work, args.db,
                                    "per day of candles")
                print(verdict(result))
                series.append((result, "hunter"))
            else:
                print("\nrun length, candles: skipped (no ../shared/data/binance_spot_ohlcv)")
        if "symbols" in only:
            symbol_series(tmp, sizes, work, args.db)
        for result, tier in series:
            if args.trace or result["rss_grown"] >= NOISE_MB or result["blocks_grown"] >= BLOCK_NOISE:
                trace_growth(result, tier, work, args.db)
        if "symbols" in only and (args.trace or not args.quick):
            trace_symbols(tmp, sizes["symbol_lines"], work, args.db)
    print(f"\n(bench wall time {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
