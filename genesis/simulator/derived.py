"""Derived symbols: N more symbols cloned from the capture's, for tests and benchmarks
at many symbols (``derived_symbols`` / ``genesis simulate --derived-symbols N``).

Clone k (1-based) copies source symbol ``sources[(k - 1) % len(sources)]`` (the
capture's symbols that the exchangeInfo lists, sorted): its name is the source's base
asset, k in three digits and the source's quote asset (``BTC001USDT``, ``ETH002USDT``,
...), its base asset ``BTC001``, and its exchangeInfo entry is the source's with only
those two changed (the same filters). It replays the source's recorded messages, with
``s`` renamed, into a book of its own, ``k * offset_ms`` ahead in the recording: at any
moment it shows what its source did that much later, so no two clones send the same
message at the same time. Its event times ``E`` / ``T`` are moved to match (unless
timestamps are kept); update ids and trade ids are the source's, so its depth stream
resyncs against its own ``GET /api/v3/depth`` as any other. Its books are built by a
silent pre-roll up to where its replay starts; it ends that much earlier than its
source. Orders on a clone match its book and its replayed trades."""
from __future__ import annotations

import copy
import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .market import Replayer
from .replay import Capture, Record

if TYPE_CHECKING:
    from .server import Simulator

MAX_DERIVED = 999          # three digits in the name


@dataclass(frozen=True, slots=True)
class Clone:
    """One derived symbol: its name, the symbol it copies and how far ahead it replays."""

    symbol: str
    base: str
    source: str
    ahead_ms: int


def derive(exchange_info: dict, capture: Capture, count: int, offset_ms: float) -> tuple[dict, list[Clone]]:
    """The exchangeInfo with `count` clones added, and the clones. ValueError when the
    capture has no symbol the exchangeInfo lists."""
    count = int(count)
    if not 0 <= count <= MAX_DERIVED:
        raise ValueError(f"derived_symbols {count}: between 0 and {MAX_DERIVED}")
    if count == 0:
        return exchange_info, []
    listed = {s.get("symbol"): s for s in exchange_info.get("symbols", ())}
    sources = [s for s in capture.symbols() if s in listed]
    if not sources:
        raise ValueError("derived_symbols: no symbol of the capture is in the exchangeInfo, nothing to clone")
    clones, entries = [], []
    for k in range(1, count + 1):
        src = listed[sources[(k - 1) % len(sources)]]
        base = f"{src.get('baseAsset', src['symbol'][:3])}{k:03d}"
        symbol = base + src.get("quoteAsset", "")
        if symbol in listed:
            raise ValueError(f"derived_symbols: {symbol} is in the exchangeInfo already")
        entry = copy.deepcopy(src)
        entry["symbol"], entry["baseAsset"] = symbol, base
        entries.append(entry)
        clones.append(Clone(symbol, base, src["symbol"], round(k * float(offset_ms))))
    return {**exchange_info, "symbols": [*exchange_info.get("symbols", ()), *entries]}, clones


@dataclass(slots=True)
class _Lane:
    """A clone's replay: its source's records, where it is, how far ahead it plays."""

    symbol: str
    records: tuple[Record, ...]
    ahead_ns: int
    pos: int = 0
    shift_ms: int = 0


class DerivedReplayer(Replayer):
    """The capture's own records and every clone's, merged by (shifted) receive time."""

    def __init__(self, sim: Simulator, capture: Capture, keep_timestamps: bool, clones: list[Clone]):
        super().__init__(sim, capture, keep_timestamps)
        by_source: dict[str, list[Record]] = {}
        for r in capture.records:
            by_source.setdefault(r.symbol, []).append(r)
        shared = {s: tuple(recs) for s, recs in by_source.items()}
        self.lanes = [_Lane(c.symbol, shared.get(c.source, ()), c.ahead_ms * 1_000_000) for c in clones]
        self.heap: list[tuple[int, int]] = []      # (replay time ns, lane); lane -1: the capture itself

    @property
    def finished(self) -> bool:
        return not self.heap

    def start(self, now_ms: int) -> None:
        """The capture's pre-roll, then each clone's up to the replay's start."""
        super().start(now_ms)
        begin = self.records[self.pos].recv_ns if self.pos < len(self.records) else None
        if begin is not None:
            self.heap.append((begin, -1))
        for i, lane in enumerate(self.lanes):
            lane.shift_ms = 0 if self.keep else self.shift_ms - lane.ahead_ns // 1_000_000
            recs = lane.records
            while lane.pos < len(recs) and (begin is None or recs[lane.pos].recv_ns - lane.ahead_ns < begin):
                self._apply(recs[lane.pos], lane.symbol)
                lane.pos += 1
            self.preroll += lane.pos
            if lane.pos < len(recs):
                self.heap.append((recs[lane.pos].recv_ns - lane.ahead_ns, i))
        heapq.heapify(self.heap)

    def _next_ns(self) -> int:
        return self.heap[0][0]

    def step_one(self) -> None:
        """Replay the next record of the capture or of a clone."""
        _, i = heapq.heappop(self.heap)
        if i < 0:
            super().step_one()
            if self.pos < len(self.records):
                heapq.heappush(self.heap, (self.records[self.pos].recv_ns, -1))
            return
        lane = self.lanes[i]
        rec = lane.records[lane.pos]
        lane.pos += 1
        self._apply(rec, lane.symbol)
        self._emit(rec, lane.symbol, lane.shift_ms)
        if lane.pos < len(lane.records):
            heapq.heappush(self.heap, (lane.records[lane.pos].recv_ns - lane.ahead_ns, i))

    def report(self) -> dict:
        """Where the replay is: records of the capture and of every clone together."""
        out = super().report()
        out.update(position=self.pos + sum(lane.pos for lane in self.lanes),
                   total=len(self.records) + sum(len(lane.records) for lane in self.lanes),
                   finished=self.finished)
        return out
