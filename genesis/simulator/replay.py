"""Recorded Binance websocket captures as a list of replay records.

Input: hftbacktest's capture format (gzip or plain), one ``<local_receive_ns> <json>``
line per message, where the JSON is a combined-stream envelope
``{"stream": "btcusdt@trade", "data": {...}}`` or a REST depth snapshot
``{"lastUpdateId", "bids", "asks"}`` (its symbol is the file's stream symbol, or the
file name's first part). Files are merged by receive time (ties keep file order), which
is the order the simulator sends them in. Unusable lines are counted and skipped."""
from __future__ import annotations

import gzip
import heapq
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import msgspec

KINDS = {"trade": "trade", "aggTrade": "aggTrade", "bookTicker": "bookTicker",
         "depth": "depth", "depth@100ms": "depth", "depth@1000ms": "depth"}


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded message. `data` is the raw Binance event (never mutated)."""

    recv_ns: int
    kind: str          # trade | bookTicker | depth | snapshot
    symbol: str        # upper case, e.g. BTCUSDT
    data: dict

    @property
    def event_ms(self) -> int | None:
        """Binance event time ``E`` (trade and depth), None for bookTicker/snapshot."""
        return self.data.get("E")


@dataclass(frozen=True, slots=True)
class Capture:
    """The merged records of some capture files, and what could not be read."""

    records: tuple[Record, ...]
    skipped: int
    files: tuple[str, ...]

    def symbols(self) -> list[str]:
        """Every symbol with at least one record."""
        return sorted({r.symbol for r in self.records})


def _read_file(path: Path) -> tuple[list[Record], int]:
    with open(path, "rb") as f:
        magic = f.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    out: list[Record] = []
    snapshots: list[tuple[int, int, dict]] = []
    skipped = 0
    symbols: set[str] = set()
    decode = msgspec.json.decode
    with opener(path, "rb") as f:
        for line in f:
            head, sp, js = line.partition(b" ")
            if not sp or not head.isdigit():
                skipped += line.strip() != b""
                continue
            try:
                obj = decode(js)
            except msgspec.DecodeError:
                skipped += 1
                continue
            if not isinstance(obj, dict):
                skipped += 1
                continue
            ns = int(head)
            if "lastUpdateId" in obj:
                snapshots.append((len(out), ns, obj))
                out.append(None)  # placeholder, symbol known at the end
                continue
            stream, data = obj.get("stream"), obj.get("data")
            if not isinstance(stream, str) or not isinstance(data, dict):
                skipped += 1
                continue
            sym, _, suffix = stream.partition("@")
            kind = KINDS.get(suffix)
            if kind is None or not sym:
                skipped += 1
                continue
            symbols.add(sym.upper())
            out.append(Record(ns, kind, sym.upper(), data))
    guess = path.name.split("_", 1)[0].split(".", 1)[0].upper()
    snap_sym = next(iter(symbols)) if len(symbols) == 1 else guess
    for i, ns, obj in snapshots:
        out[i] = Record(ns, "snapshot", snap_sym, obj)
    return out, skipped


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> Capture:
    lists, skipped = [], 0
    for p in paths:
        recs, bad = _read_file(Path(p))
        lists.append(recs)
        skipped += bad
    merged = heapq.merge(*lists, key=lambda r: r.recv_ns)
    return Capture(tuple(merged), skipped, paths)


def load_capture(paths) -> Capture:
    """Read and merge capture files (cached per list of paths: records are immutable)."""
    return _load(tuple(str(Path(p).resolve()) for p in paths))
