"""Replay driver: feeds recorded records to the books, the matching engine and the
websocket hub, in step mode (driven by ``step``), at N times real time, or as fast as
possible.

Recorded ``E`` / ``T`` are shifted by ``shift_ms`` (wall clock at start minus the first
replayed event time) unless timestamps are kept; update ids and trade ids are never
changed, so depth streams stay resyncable against ``GET /api/v3/depth``. Records before
every recorded snapshot has been applied are a silent pre-roll that builds the books."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

from .book import Book
from .replay import Capture, Record

if TYPE_CHECKING:
    from .server import Simulator


class DepthMerger:
    """Merges 100 ms diffs of one symbol into one diff per second of event time
    (the ``@depth`` / ``@depth@1000ms`` streams)."""

    def __init__(self):
        self.bucket = None
        self.first = self.last = self.time = 0
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def add(self, data: dict) -> dict | None:
        """Take one shifted diff; returns the finished previous second, if any."""
        bucket = data["E"] // 1000
        done = None
        if self.bucket is not None and bucket != self.bucket:
            done = self.flush(data["s"])
        if self.bucket is None:
            self.bucket, self.first = bucket, data["U"]
        self.last, self.time = data["u"], data["E"]
        self.bids.update((p, q) for p, q in data["b"])
        self.asks.update((p, q) for p, q in data["a"])
        return done

    def flush(self, symbol: str) -> dict | None:
        """The merged diff so far (None if empty); starts a new second."""
        if self.bucket is None:
            return None
        out = {"e": "depthUpdate", "E": self.time, "s": symbol, "U": self.first, "u": self.last,
               "b": [[p, q] for p, q in self.bids.items()], "a": [[p, q] for p, q in self.asks.items()]}
        self.bucket = None
        self.bids, self.asks = {}, {}
        return out


class Replayer:
    """Position in the capture and the per-record processing."""

    def __init__(self, sim: Simulator, capture: Capture, keep_timestamps: bool):
        self.sim = sim
        self.records = capture.records
        self.pos = 0
        self.shift_ms = 0
        self.keep = keep_timestamps
        self.mergers: dict[str, DepthMerger] = {}
        self.fills = 0
        self.last_event_ms: int | None = None
        self.preroll = 0

    @property
    def finished(self) -> bool:
        return self.pos >= len(self.records)

    def start(self, now_ms: int) -> None:
        """Pre-roll until every recorded snapshot is applied, then fix the time shift."""
        with_snapshot = {r.symbol for r in self.records if r.kind == "snapshot"}
        while self.pos < len(self.records) and with_snapshot:
            rec = self.records[self.pos]
            self._apply(rec)
            if rec.kind == "snapshot":
                with_snapshot.discard(rec.symbol)
            self.pos += 1
        self.preroll = self.pos
        first = next((r.data.get("E") for r in self.records[self.pos:self.pos + 1000] if "E" in r.data), None)
        if first is None and self.pos < len(self.records):
            first = self.records[self.pos].recv_ns // 1_000_000
        self.shift_ms = 0 if self.keep or first is None else now_ms - first

    def _apply(self, rec: Record, symbol: str | None = None) -> Book:
        """Apply one record to the book (and trade tape) of `symbol` (default: its own)."""
        symbol = symbol or rec.symbol
        book = self.sim.book(symbol)
        d = rec.data
        kind = rec.kind
        if kind == "depth":
            book.apply_diff(d["U"], d["u"], d["b"], d["a"])
        elif kind == "bookTicker":
            book.apply_ticker(d["u"], d["b"], d["B"], d["a"], d["A"])
        elif kind in ("trade", "aggTrade"):
            book.last_price = Decimal(d["p"])
            if kind == "trade":
                self.sim.tape(symbol).add(d["T"], d["p"], d["q"], d["m"])
        elif kind == "snapshot":
            book.apply_snapshot(d["lastUpdateId"], d["bids"], d["asks"])
        return book

    def _next_ns(self) -> int:
        """Recorded receive time of the next record to replay (not finished)."""
        return self.records[self.pos].recv_ns

    def step_one(self) -> None:
        """Replay the next record: book, websocket subscribers, then own resting orders."""
        rec = self.records[self.pos]
        self.pos += 1
        self._apply(rec)
        self._emit(rec, rec.symbol, self.shift_ms)

    def _emit(self, rec: Record, symbol: str, shift: int) -> None:
        """Publish one applied record as `symbol`'s events, times moved by `shift` ms, then
        match own resting orders against it."""
        d = rec.data
        hub = self.sim.hub
        low = symbol.lower()
        renamed = symbol != rec.symbol
        if "E" in d or renamed:
            d = dict(d)             # the record is never changed
            if renamed and "s" in d:
                d["s"] = symbol
            if "E" in d:
                d["E"] += shift
                if "T" in d:
                    d["T"] += shift
                self.last_event_ms = d["E"]
        kind = rec.kind
        if kind in ("depth", "bookTicker", "snapshot"):
            self.sim.exchange.on_book_change(symbol)
        if kind == "depth":
            hub.publish(f"{low}@depth@100ms", d)
            merged = self.mergers.setdefault(symbol, DepthMerger()).add(d)
            if merged is not None:
                hub.publish(f"{low}@depth", merged)
                hub.publish(f"{low}@depth@1000ms", merged)
        elif kind == "bookTicker":
            hub.publish(f"{low}@bookTicker", d)
        elif kind == "trade":
            hub.publish(f"{low}@trade", d)
            if hub.wants(f"{low}@aggTrade"):
                hub.publish(f"{low}@aggTrade", {"e": "aggTrade", "E": d["E"], "s": d["s"], "a": d["t"],
                                                 "p": d["p"], "q": d["q"], "f": d["t"], "l": d["t"],
                                                 "T": d["T"], "m": d["m"], "M": d.get("M", True)})
            self.fills += self.sim.exchange.on_market_trade(symbol, Decimal(d["p"]), Decimal(d["q"]),
                                                             self.sim.now_ms())
        elif kind == "aggTrade":
            hub.publish(f"{low}@aggTrade", d)

    def step(self, n: int | None = None, ms: int | None = None, until_fill: bool = False) -> dict:
        """Replay `n` records, or `ms` of recorded time, or until an own order fills
        (bounded by `n` when given). Returns the position report."""
        done = 0
        start_fills = self.fills
        limit_ns = None
        if ms is not None and not self.finished:
            limit_ns = self._next_ns() + int(ms) * 1_000_000
        while not self.finished:
            if n is not None and done >= n:
                break
            if limit_ns is not None and self._next_ns() >= limit_ns:
                break
            if n is None and limit_ns is None and not until_fill:
                break
            self.step_one()
            done += 1
            if until_fill and self.fills > start_fills:
                break
        if self.finished:
            self.flush_mergers()
        report = self.report()
        report.update(stepped=done, fills=self.fills - start_fills)
        return report

    def flush_mergers(self) -> None:
        for sym, merger in self.mergers.items():
            merged = merger.flush(sym)
            if merged is not None:
                self.sim.hub.publish(f"{sym.lower()}@depth", merged)
                self.sim.hub.publish(f"{sym.lower()}@depth@1000ms", merged)

    def report(self) -> dict:
        """Where the replay is."""
        return {"position": self.pos, "total": len(self.records), "preroll": self.preroll,
                "finished": self.finished, "shift_ms": self.shift_ms, "last_event_ms": self.last_event_ms}

    async def run(self, speed: float | str) -> None:
        """Replay in the background at `speed` (a number, or 'max')."""
        loop = asyncio.get_running_loop()
        if self.finished:
            return
        t0, r0 = loop.time(), self._next_ns()
        while not self.finished:
            if speed == "max":
                for _ in range(200):
                    if self.finished:
                        break
                    self.step_one()
                await asyncio.sleep(0)
                continue
            due = t0 + (self._next_ns() - r0) / 1e9 / speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            while not self.finished and t0 + (self._next_ns() - r0) / 1e9 / speed <= now:
                self.step_one()
        self.flush_mergers()
