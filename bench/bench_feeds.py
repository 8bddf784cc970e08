"""Benchmark: open_feed over the full websocket capture against a naive reader
(gzip text mode, json.loads, heapq.merge with a key) measured in the same run.

    python bench/bench_feeds.py [--rounds 3] [FILE ...]

Without files it reads the full 11-minute capture in ../shared/data (both symbols,
both days; about 179k messages), or the bundled 3-minute sample when that folder is
missing. Prints events per second for both readers and the ratio. Both produce the
same events (kind, time and fields); the naive reader skips open_feed's checks.
"""
from __future__ import annotations

import argparse
import gzip
import heapq
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesis.engine.events import Event  # noqa: E402
from genesis.engine.feeds import open_feed, sample_paths, shared_data_dir  # noqa: E402


def naive_file(path: Path, index: int):
    """The obvious reader: every line through json.loads, floats by float()."""
    diffs, symbol = [], ""
    with gzip.open(path, "rt") as f:                   # pre-scan: clock offset and symbol
        for line in f:
            ns, js = line.split(" ", 1)
            m = json.loads(js)
            if "data" in m:
                symbol = m["stream"].split("@")[0].upper()
                if "E" in m["data"]:
                    diffs.append(m["data"]["E"] - int(ns) // 1_000_000)
                    if len(diffs) == 200:
                        break
    diffs.sort()
    offset = diffs[(len(diffs) - 1) // 2] if diffs else 0
    rows = ((int(ns) // 1_000_000, json.loads(js)) for ns, js in (line.split(" ", 1) for line in gzip.open(path, "rt")))
    for n, (loc, m) in enumerate(rows, 1):
        if "lastUpdateId" in m:
            bids = [(float(p), float(q)) for p, q in m["bids"]]
            asks = [(float(p), float(q)) for p, q in m["asks"]]
            ts = loc + offset
            yield ts, index, n, Event("depth", ts, symbol, {
                "best_bid": 0.0, "best_ask": 0.0, "levels": len(bids) + len(asks), "_bids": bids,
                "_asks": asks, "_last_update_id": m["lastUpdateId"], "_snapshot": True})
            continue
        d = m["data"]
        sym, kind = m["stream"].split("@", 1)
        sym = sym.upper()
        if kind == "trade":
            p, q = float(d["p"]), float(d["q"])
            yield d["E"], index, n, Event("trade", d["E"], sym, {
                "price": p, "qty": q, "notional_usd": p * q, "aggressor": "sell" if d["m"] else "buy",
                "_trade_id": d["t"]})
        elif kind == "bookTicker":
            b, a = float(d["b"]), float(d["a"])
            mid = (a + b) / 2
            ts = loc + offset
            yield ts, index, n, Event("book_ticker", ts, sym, {
                "bid": b, "bid_qty": float(d["B"]), "ask": a, "ask_qty": float(d["A"]), "mid": mid,
                "spread_bps": (a - b) / mid * 1e4, "_update_id": d["u"]})
        else:
            bids = [(float(p), float(q)) for p, q in d["b"]]
            asks = [(float(p), float(q)) for p, q in d["a"]]
            yield d["E"], index, n, Event("depth", d["E"], sym, {
                "best_bid": 0.0, "best_ask": 0.0, "levels": len(bids) + len(asks), "_bids": bids,
                "_asks": asks, "_first_id": d["U"], "_last_id": d["u"], "_snapshot": False})


def run_naive(paths: list[Path]) -> int:
    n = 0
    for _ in heapq.merge(*(naive_file(p, i) for i, p in enumerate(paths)), key=lambda t: t[:3]):
        n += 1
    return n


def run_feed(paths: list[Path]) -> int:
    feed = open_feed(paths)
    for _ in feed:
        pass
    return feed.events


def measure(fn, paths: list[Path], rounds: int) -> tuple[int, float]:
    rates = []
    count = 0
    for _ in range(rounds):
        start = time.perf_counter()
        count = fn(paths)
        rates.append(count / (time.perf_counter() - start))
    return count, statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = args.files
    if not paths:
        shared = shared_data_dir()
        paths = sorted((shared / "binance_spot_ws_raw").glob("*.gz")) if shared else sample_paths()
    print(f"input: {', '.join(p.name for p in paths)}")
    n_feed, feed_rate = measure(run_feed, paths, args.rounds)
    n_naive, naive_rate = measure(run_naive, paths, args.rounds)
    print(f"naive (gzip text, json.loads, heapq.merge): {naive_rate:>10,.0f} events/s  ({n_naive:,} events)")
    print(f"open_feed (zlib, msgspec, checks):          {feed_rate:>10,.0f} events/s  ({n_feed:,} events)")
    print(f"ratio: {feed_rate / naive_rate:.2f}x  (median of {args.rounds} rounds; "
          f"{1e6 / feed_rate:.2f} us per event)")


if __name__ == "__main__":
    main()
