"""Snapshot cost against symbol count: what a live run's loop stops for every
`recovery.snapshot_every`, and what its journal writer thread does after.

For 1, 10, 50 and 100 symbols (the first --symbol-lines lines of the BTCUSDT capture,
cloned under other names, as bench_memory.py builds them; the bundled sample when
../shared is absent), the engine replays its input in this process, then each snapshot
step is timed (median of --rounds):

- loop: `snapshots.freeze`, pickling the engine's whole state (what the run loop does);
- writer: `snapshots.compress` and the SHA-256 digest (the journal's writer thread);
- baseline, in the same run: the same state frozen and compressed on the loop as Genesis
  did before books packed their levels, each book swapped for a plain object holding its
  levels as dicts and sorted lists of floats (one object per price and quantity).

Prints a row per symbol count, the cost per extra symbol of each (least squares), and the
ratio of the loop's part to the baseline's.

    python bench/bench_snapshot.py [--symbols 1,10,50,100] [--symbol-lines 10000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from bench_memory import cloned_symbols, config_copy, fit, symbol_names

from genesis.config.checks import check_config
from genesis.engine.feeds import open_feed
from genesis.engine.runner import open_session
from genesis.engine.snapshots import StaticIndex, compress, freeze


def median_ms(fn, rounds: int) -> tuple[float, object]:
    """Median wall milliseconds of `rounds` calls of fn(), and its last result."""
    times, out = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), out


class LevelByLevelBook:
    """An order book's fields as snapshots pickled them before books packed their levels."""


def level_by_level(book) -> LevelByLevelBook:
    """A plain copy of `book`: its pickled state with the levels unpacked into dicts of
    floats, and the sorted price lists."""
    plain = LevelByLevelBook()
    for key, value in book.__getstate__().items():
        if key in ("bids", "asks", "pending_bids", "pending_asks"):
            prices, qtys = (struct.unpack(f"{len(b) // 8}d", b) for b in value)
            value = dict(zip(prices, qtys))
        setattr(plain, key, value)
    plain.bid_px, plain.ask_px = sorted(plain.bids), sorted(plain.asks)
    return plain


def frozen_level_by_level(engine, index: StaticIndex) -> bytes:
    """The baseline: the engine's state frozen with plain books, compressed (all on the loop)."""
    books = engine.exchange.books
    engine.exchange.books = {symbol: level_by_level(book) for symbol, book in books.items()}
    try:
        return compress(freeze(engine, index))
    finally:
        engine.exchange.books = books


def stored(frozen: bytes) -> bytes:
    """What the journal writer does with a frozen state: compress it and take its digest."""
    blob = compress(frozen)
    hashlib.sha256(blob).hexdigest()
    return blob


def point(tmp: Path, count: int, lines: int, rounds: int) -> dict:
    """Replay `count` cloned symbols, then time the snapshot steps."""
    folder = tmp / f"symbols{count}"
    folder.mkdir()
    paths = cloned_symbols(folder, count, lines)
    root = config_copy(tmp / f"config{count}", [*symbol_names(count), "ETHUSDT"])
    config = check_config(root)
    if not config.ok:
        sys.exit(f"the cloned configuration does not validate: {config.problems[0]}")
    session = open_session(root, config, "sniper", open_feed(paths), None, "replay")
    engine = session.engine
    for event in session.feed:
        engine.process(event)
    index = StaticIndex.of(engine)
    loop_ms, frozen = median_ms(lambda: freeze(engine, index), rounds)
    writer_ms, blob = median_ms(lambda: stored(frozen), rounds)
    base_ms, _ = median_ms(lambda: frozen_level_by_level(engine, index), rounds)
    levels = sum(len(book.levels("buy", 1 << 30)) + len(book.levels("sell", 1 << 30))
                 for book in engine.exchange.books.values())
    return {"count": count, "loop": loop_ms, "writer": writer_ms, "base": base_ms, "raw": len(frozen),
            "stored": len(blob), "levels": levels}


def main() -> None:
    """Measure each symbol count and print the table and the slopes."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="1,10,50,100", help="symbol counts, e.g. 1,10,50,100")
    ap.add_argument("--symbol-lines", type=int, default=10_000, help="lines of the BTCUSDT capture per symbol")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    counts = [int(c) for c in args.symbols.split(",")]
    with tempfile.TemporaryDirectory(prefix="genesis-bench-snapshot-") as tmp:
        rows = [point(Path(tmp), n, args.symbol_lines, args.rounds) for n in counts]
    print(f"snapshot of a replayed engine, the first {args.symbol_lines:,} capture lines per symbol (ms, median of "
          f"{args.rounds})")
    print(f"{'symbols':>8} {'book levels':>12} {'loop: pickle':>13} {'writer: compress+digest':>24} "
          f"{'baseline: levels one by one':>28} {'pickled':>10} {'stored':>10}")
    for r in rows:
        print(f"{r['count']:>8} {r['levels']:>12,} {r['loop']:>13.1f} {r['writer']:>24.1f} {r['base']:>28.1f} "
              f"{r['raw'] / 1024:>8.0f}KB {r['stored'] / 1024:>8.0f}KB")
    if len(rows) > 1:
        xs = [r["count"] for r in rows]
        loop, writer, base = (fit(xs, [r[k] for r in rows]) for k in ("loop", "writer", "base"))
        print(f"per extra symbol: loop {loop:.2f} ms, writer {writer:.2f} ms; baseline (levels one by one, "
              f"compressed on the loop) {base:.2f} ms")
        print(f"ratio loop/baseline: {loop / base:.2f}x per symbol, {rows[-1]['loop'] / rows[-1]['base']:.2f}x at "
              f"{rows[-1]['count']} symbols" if base > 0 else "ratio loop/baseline: n/a")


if __name__ == "__main__":
    main()
