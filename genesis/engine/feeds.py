"""Replay feeds: recorded Binance market data in, Events out, in event-time order.

Two file formats are read, each detected by content (not only by name):

* the raw Binance spot websocket capture (hftbacktest's collector): gzip or plain text,
  one message per line, ``<local_receive_ns> <json>``. The JSON is the combined-stream
  envelope ``{"stream": "btcusdt@trade", "data": {...}}`` (``@trade``, ``@bookTicker``,
  ``@depth`` / ``@depth@100ms``) or a REST depth snapshot ``{"lastUpdateId", "bids",
  "asks"}``;
* freqtrade / ccxt OHLCV candles: a JSON array of ``[open_time_ms, open, high, low,
  close, volume]`` rows, optionally gzip-compressed. Missing candles stay missing; a gap
  of 30 minutes or more (``MAINTENANCE_GAP_MS``) is an exchange maintenance window (the
  2021-04-25 04:00-08:45 upgrade is one) and yields ``exchange_status`` events:
  maintenance from the close of the first missing candle, back to normal at the close of
  the next candle, just before it.

Event time. Trades and depth updates carry Binance's ``E``. The spot bookTicker and
the REST snapshot carry none: their time is ``local_receive_ms + offset``, where
``offset`` is the median of ``E - local_receive_ms`` over the first 200 messages of the
file that have ``E`` (a pre-scan; deterministic). That estimate is then kept between
its neighbours in the file (never before the previous event of the file, never after
the next ``E``-timed one), so an estimated time never reorders the stream by itself.

``open_feed(paths)`` merges every file by event time (ties: file order, then line
order). Websocket captures of the same symbol continue each other and are read as one
stream, in the order given. Malformed lines are counted and recorded as ``FeedIssue``
(file name, line, short problem, never the raw line) and never stop the feed; a
truncated or corrupt gzip ends that file with one issue. An event earlier than the
last one emitted is counted as out of order, recorded, and still emitted with its time
raised to the last emitted time, so time never goes backwards downstream. An issue
about a whole file (unknown format, no clock reference) has line 0 or 1.

Speed: one generator per stream does the reading (zlib fed 64 KB at a time), line
splitting, typed msgspec decoding (prices straight to float, constraints checked in C)
and Event building; see bench/bench_feeds.py.
"""
from __future__ import annotations

import hashlib
import math
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from heapq import heapify, heappop, heapreplace
from pathlib import Path
from typing import Annotated

import msgspec

from genesis.paths import CHECKOUT_DIR, PACKAGE_DIR

from .events import MS_PER_HOUR, Event, FeedIssue

__all__ = [
    "Feed", "FeedProgress", "open_feed", "read_ws_capture", "read_candles", "detect_format",
    "sample_paths", "shared_data_dir", "exchange_info_path", "DATA_DIR",
]

DATA_DIR = PACKAGE_DIR / "data"
SAMPLE_DIR = DATA_DIR / "sample"

PRESCAN_E_MESSAGES = 200        # messages with E used to estimate the clock offset
MAX_PENDING = 4096              # estimated-time events held while waiting for the next E
MAX_ISSUES = 10_000             # issues listed per feed; later ones are only counted
READ_CHUNK = 1 << 20            # bytes of text handed to the line splitter at once
_IN_CHUNK = 1 << 16             # compressed bytes fed to zlib at once
MAINTENANCE_GAP_MS = 30 * 60_000  # a candle gap this long is an exchange maintenance window
_PROBLEM_CHARS = 160            # an issue's text is cut to this length

# --------------------------------------------------------------------------- data paths


def sample_paths() -> list[Path]:
    """The bundled sample capture: about 3 minutes of BTCUSDT and ETHUSDT (see NOTICE)."""
    return sorted(SAMPLE_DIR.glob("*.gz"))


def exchange_info_path() -> Path:
    """The bundled Binance exchangeInfo (2021 capture, BTCUSDT, ETHUSDT and ETHBTC)."""
    return DATA_DIR / "exchange_info.json"


def shared_data_dir() -> Path | None:
    """The full real-data folder ``../shared/data`` next to the repository, if present."""
    candidate = CHECKOUT_DIR.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


# --------------------------------------------------------------------------- issue sink


class _Sink:
    """Counts and records what a reader could not use as it was."""

    __slots__ = ("issues", "malformed", "out_of_order", "_dropped")

    def __init__(self, issues: list[FeedIssue] | None = None):
        self.issues: list[FeedIssue] = [] if issues is None else issues
        self.malformed = 0
        self.out_of_order = 0
        self._dropped = 0

    def record(self, source: str, line: int, problem: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            if len(problem) > _PROBLEM_CHARS:
                problem = problem[:_PROBLEM_CHARS - 3] + "..."
            self.issues.append(FeedIssue(source, line, problem))
        else:
            if self._dropped == 0:
                self.issues.append(FeedIssue(source, line, f"more than {MAX_ISSUES} issues: "
                                             "the rest are counted, not listed"))
            self._dropped += 1

    def bad(self, source: str, line: int, problem: str) -> None:
        self.malformed += 1
        self.record(source, line, problem)


class _ReadMarks:
    """How far reading has got in each file, for Feed.progress(): per file index, the
    chunks of text read (first line, line count, file offsets before and after it, on
    disk: compressed for gzip), the row count of a candle file, and the files read to
    the end."""

    __slots__ = ("chunks", "rows", "finished")

    def __init__(self):
        self.chunks: dict[int, list[tuple[int, int, int, int]]] = {}
        self.rows: dict[int, int] = {}
        self.finished: set[int] = set()

    def chunk(self, fi: int, first_line: int, lines: int, end: int) -> None:
        seen = self.chunks.setdefault(fi, [])
        seen.append((first_line, lines, seen[-1][3] if seen else 0, end))

    def offset(self, fi: int, line: float, size: int) -> float:
        """The offset in file `fi` (of `size` bytes) of its line or row `line`,
        interpolated within the chunk that holds it."""
        if fi in self.rows:
            rows = self.rows[fi]
            return size * (line - 1) / rows if rows else size
        seen = self.chunks.get(fi, [])
        k = bisect_right(seen, line, key=lambda c: c[0]) - 1
        if k < 0:
            return 0.0
        first, lines, start, end = seen[k]
        return start + (end - start) * min(1.0, (line - first) / lines) if lines else end


def _short(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


# --------------------------------------------------------------------------- file access


class TruncatedInput(Exception):
    """A gzip stream ended early or is corrupt."""


class _Gunzip:
    """Incremental gunzip of one or more gzip members."""

    __slots__ = ("d",)

    def __init__(self):
        self.d = zlib.decompressobj(wbits=31)

    def feed(self, block: bytes) -> bytes:
        d = self.d
        piece = d.decompress(block)
        while d.eof and d.unused_data:              # the next gzip member
            rest = d.unused_data
            d = self.d = zlib.decompressobj(wbits=31)
            piece += d.decompress(rest)
        return piece

    def snapshot(self) -> _Gunzip:
        other = _Gunzip.__new__(_Gunzip)
        other.d = self.d.copy()
        return other


def _text_chunks(path: Path, ends: list[int] | None = None) -> Iterator[bytes]:
    """The file's bytes, gunzipped when it is gzip (several members allowed), in chunks
    of about a megabyte; `ends` receives the file offset read up to as each chunk is
    yielded. Raises TruncatedInput when the gzip data ends early or is corrupt, after
    yielding what decompressed before the damage. (zlib fed 64 KB at a time is about
    twice as fast as GzipFile.read.)"""
    with open(path, "rb") as f:
        first = f.read(_IN_CHUNK)
        if first[:2] != b"\x1f\x8b":
            block = first
            while block:
                if ends is not None:
                    ends.append(f.tell())
                yield block
                block = f.read(READ_CHUNK)
            return
        z = _Gunzip()
        out: list[bytes] = []
        size = 0
        block = first
        while block:
            saved = z.snapshot()
            try:
                piece = z.feed(block)
            except zlib.error as e:
                z = saved                       # salvage up to the damage, in small steps
                for i in range(0, len(block), 256):
                    try:
                        out.append(z.feed(block[i:i + 256]))
                    except zlib.error:
                        break
                if out:
                    if ends is not None:
                        ends.append(f.tell())
                    yield b"".join(out)
                raise TruncatedInput(f"corrupt gzip data ({e})") from None
            if piece:
                out.append(piece)
                size += len(piece)
                if size >= READ_CHUNK:
                    if ends is not None:
                        ends.append(f.tell())
                    yield b"".join(out)
                    out.clear()
                    size = 0
            block = f.read(_IN_CHUNK)
        if out:
            if ends is not None:
                ends.append(f.tell())
            yield b"".join(out)
        if not z.d.eof:
            raise TruncatedInput("gzip data ends before its end marker")


def _head(path: Path, size: int = 65536) -> bytes:
    """Up to `size` bytes of a file's text, decompressed if gzip; never raises on a
    truncated or corrupt gzip (returns what could be decompressed)."""
    with open(path, "rb") as f:
        raw = f.read(size)
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return zlib.decompressobj(wbits=31).decompress(raw, size)
    except zlib.error:
        return b""


def detect_format(path: str | Path) -> tuple[str, str]:
    """('ws', first stream symbol or '') for a websocket capture, ('candles', '') for an
    OHLCV JSON array, ('unknown', reason) otherwise. Decided by content."""
    head = _head(Path(path)).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return "unknown", "empty file (or unreadable gzip)"
    if head[:1] == b"[":
        rest = head[1:].lstrip()
        if rest[:1] in (b"[", b"]"):
            return "candles", ""
        return "unknown", "a JSON array whose items are not arrays"
    first = head.split(b"\n", 1)[0]
    sp = first.find(b" ")
    if sp > 0 and first[:sp].isdigit():
        sym = ""
        at = head.find(b'"stream":"')
        if at >= 0:
            name = head[at + 10: at + 60].split(b"@", 1)[0]
            if name.isalnum():
                sym = name.decode("ascii").upper()
        return "ws", sym
    return "unknown", "neither a websocket capture nor a candle array"


# --------------------------------------------------------------------------- ws capture

_Price = Annotated[float, msgspec.Meta(gt=0, lt=1e300)]
_Qty = Annotated[float, msgspec.Meta(ge=0, lt=1e300)]
_Id = Annotated[int, msgspec.Meta(ge=0)]
_Levels = list[tuple[_Price, _Qty]]


class _TradeData(msgspec.Struct, gc=False):
    E: _Id
    t: _Id
    p: _Price
    q: _Qty
    m: bool


class _TickerData(msgspec.Struct, gc=False):
    u: _Id
    b: _Price
    B: _Qty
    a: _Price
    A: _Qty


class _DepthData(msgspec.Struct, gc=False):
    E: _Id
    U: _Id
    u: _Id
    b: _Levels
    a: _Levels


class _TradeMsg(msgspec.Struct, gc=False):
    data: _TradeData


class _TickerMsg(msgspec.Struct, gc=False):
    data: _TickerData


class _DepthMsg(msgspec.Struct, gc=False):
    data: _DepthData


class _Snapshot(msgspec.Struct, gc=False):
    lastUpdateId: _Id
    bids: _Levels
    asks: _Levels


_TRADE, _TICKER, _DEPTH, _SNAPSHOT = 0, 1, 2, 3
_MSG_TYPES = {_TRADE: _TradeMsg, _TICKER: _TickerMsg, _DEPTH: _DepthMsg}
_DECODERS = {k: msgspec.json.Decoder(t, strict=False) for k, t in _MSG_TYPES.items()}
_SNAP_DECODER = msgspec.json.Decoder(_Snapshot, strict=False)
_SUFFIXES = {"trade": _TRADE, "bookTicker": _TICKER, "depth": _DEPTH,
             "depth@100ms": _DEPTH, "depth@1000ms": _DEPTH}
_STREAM_PREFIX = b'{"stream":"'
_SNAP_PREFIX = b'{"lastUpdateId"'


def _resolve_stream(name: str):
    """'btcusdt@depth@100ms' -> (kind code, 'BTCUSDT', decoder), or an error text."""
    sym, at, suffix = name.partition("@")
    if not at or not sym.isalnum() or not sym.isascii():
        return f"bad stream name {name[:40]!r}"
    kind = _SUFFIXES.get(suffix)
    if kind is None:
        return f"unknown stream suffix {('@' + suffix)[:40]!r}"
    return kind, sym.upper(), _DECODERS[kind]


def _slow_parse(js: bytes, symbols: dict):
    """Messages not in Binance's usual key order: (kind, symbol, data) or an error text.
    msgspec errors propagate to the caller."""
    obj = msgspec.json.decode(js)
    if not isinstance(obj, dict):
        return "not a JSON object"
    if "lastUpdateId" in obj:
        return _SNAPSHOT, None, msgspec.convert(obj, _Snapshot, strict=False)
    stream = obj.get("stream")
    if not isinstance(stream, str) or "data" not in obj:
        return "neither a stream message nor a depth snapshot"
    info = _resolve_stream(stream)
    if type(info) is str:
        return info
    kind, sym, _ = info
    symbols.setdefault(sym, None)
    return kind, sym, msgspec.convert(obj, _MSG_TYPES[kind], strict=False).data


def _file_symbol(symbols: dict, path: Path) -> str:
    """The symbol a snapshot in this file belongs to."""
    if len(symbols) == 1:
        return next(iter(symbols))
    guess = path.name.split("_", 1)[0].split(".", 1)[0].upper()
    if guess in symbols or (not symbols and guess.isalnum()):
        return guess
    return ""


def _clock_offset(held: list, previous: int | None, name: str, sink: _Sink) -> int | None:
    """Median of E - local_ms over the pre-scanned messages that have E."""
    diffs = sorted(r[1] - r[2] for r in held if r[1] >= 0)
    if diffs:
        return diffs[(len(diffs) - 1) // 2]
    if any(r[1] < 0 for r in held):
        sink.record(name, 0, "no message with an event time E: bookTicker and snapshot times "
                    + ("use the previous file's clock offset" if previous is not None
                       else "are local receive times"))
    return previous


def _ws_stream(files: list[tuple[int, Path]], sink: _Sink, marks: _ReadMarks | None = None) -> Iterator[tuple]:
    """One stream from capture files that continue each other (same symbol, in order).
    Yields (ts, file index, line, Event) in line order.

    One generator does everything (read, split, parse, time, build the Event): each
    extra generator layer would cost about 0.1 us per event. The first messages of a
    file are held until PRESCAN_E_MESSAGES of them carry E (the clock offset); after
    that, only messages without E wait, for the next E that bounds their time."""
    lo = -(1 << 62)            # time of the latest event yielded by this stream
    offset = None
    plen = len(_STREAM_PREFIX)
    dec_snap = _SNAP_DECODER
    for fi, path in files:
        name = path.name
        symbols: dict = {}
        cache: dict = {}
        held: list | None = []     # pre-scan: (line, E or -1, local_ms, kind, symbol, fields)
        n_e = 0
        off = 0
        file_sym = ""
        pending: list = []         # (line, local_ms, kind, symbol or None, fields) without E
        ln = 0
        tail = b""
        ends: list[int] = []
        chunks = _text_chunks(path, ends)
        try:
            while True:
                failure = None
                try:
                    chunk = next(chunks, b"")
                except (TruncatedInput, OSError) as e:
                    chunk, failure = b"", e
                if chunk:
                    lines = (tail + chunk).split(b"\n")
                    tail = lines.pop()
                    if marks is not None:
                        marks.chunk(fi, ln + 1, len(lines), ends[-1])
                elif failure is None and tail:
                    lines, tail = [tail], b""
                else:
                    if failure is not None:
                        sink.bad(name, ln + 1, f"{_short(failure)} after line {ln}; "
                                 "rest of the file skipped")
                    break
                for line in lines:
                    ln += 1
                    sp = line.find(b" ")
                    if sp <= 0:
                        if line.strip():
                            sink.bad(name, ln, "no '<receive_ns> <json>' pair")
                        continue
                    head = line[:sp]
                    if not head.isdigit():
                        sink.bad(name, ln, "receive time is not an integer")
                        continue
                    js = line[sp + 1:]
                    # ---- parse: kind code, symbol, decoded data
                    try:
                        if js.startswith(_STREAM_PREFIX):
                            stream = js[plen:js.find(b'"', plen)]
                            info = cache.get(stream)
                            if info is None:
                                info = _resolve_stream(stream.decode("utf-8", "replace"))
                                if len(cache) < 256:
                                    cache[stream] = info
                                if type(info) is not str:
                                    symbols.setdefault(info[1], None)
                            if type(info) is str:
                                sink.bad(name, ln, info)
                                continue
                            kind, sym, dec = info
                            d = dec.decode(js).data
                        elif js.startswith(_SNAP_PREFIX):
                            kind, sym, d = _SNAPSHOT, None, dec_snap.decode(js)
                        else:
                            got = _slow_parse(js, symbols)
                            if type(got) is str:
                                sink.bad(name, ln, got)
                                continue
                            kind, sym, d = got
                    except msgspec.ValidationError as e:
                        sink.bad(name, ln, f"invalid message: {_short(e)}")
                        continue
                    except msgspec.DecodeError as e:
                        sink.bad(name, ln, f"bad JSON: {_short(e)}")
                        continue
                    # ---- fields; E for trades and depth updates, -1 for the others
                    if kind == _TICKER:
                        b = d.b
                        a = d.a
                        mid = (b + a) * 0.5
                        e_ms = -1
                        ek = "book_ticker"
                        fields = {"bid": b, "bid_qty": d.B, "ask": a, "ask_qty": d.A, "mid": mid,
                                  "spread_bps": (a - b) / mid * 1e4, "_update_id": d.u}
                    elif kind == _TRADE:
                        p = d.p
                        q = d.q
                        e_ms = d.E
                        ek = "trade"
                        fields = {"price": p, "qty": q, "notional_usd": p * q,
                                  "aggressor": "sell" if d.m else "buy", "_trade_id": d.t}
                    elif kind == _DEPTH:
                        bids = d.b
                        asks = d.a
                        e_ms = d.E
                        ek = "depth"
                        fields = {"best_bid": 0.0, "best_ask": 0.0, "levels": len(bids) + len(asks),
                                  "_bids": bids, "_asks": asks, "_first_id": d.U, "_last_id": d.u,
                                  "_snapshot": False}
                    else:
                        bids = d.bids
                        asks = d.asks
                        e_ms = -1
                        ek = "depth"
                        fields = {"best_bid": 0.0, "best_ask": 0.0, "levels": len(bids) + len(asks),
                                  "_bids": bids, "_asks": asks, "_last_update_id": d.lastUpdateId,
                                  "_snapshot": True}
                    # ---- time and emit
                    if held is not None:
                        held.append((ln, e_ms, int(head) // 1_000_000, ek, sym, fields))
                        if e_ms < 0:
                            continue
                        n_e += 1
                        if n_e < PRESCAN_E_MESSAGES:
                            continue
                        offset = _clock_offset(held, offset, name, sink)
                        off = offset or 0
                        file_sym = _file_symbol(symbols, path)
                        out, lo = _place_held(held, off, lo, fi, file_sym)
                        held = None
                        yield from out
                        continue
                    if e_ms >= 0:
                        if pending:
                            for pln, loc, pk, psym, pf in pending:
                                t = loc + off
                                if t > e_ms:
                                    t = e_ms
                                if t < lo:
                                    t = lo
                                lo = t
                                yield t, fi, pln, Event(pk, t, psym or file_sym, pf)
                            pending.clear()
                        if e_ms > lo:
                            lo = e_ms
                        yield e_ms, fi, ln, Event(ek, e_ms, sym, fields)
                    else:
                        pending.append((ln, int(head) // 1_000_000, ek, sym, fields))
                        if len(pending) >= MAX_PENDING:      # no E for long: bounded below only
                            for pln, loc, pk, psym, pf in pending:
                                t = loc + off
                                if t < lo:
                                    t = lo
                                lo = t
                                yield t, fi, pln, Event(pk, t, psym or file_sym, pf)
                            pending.clear()
        finally:
            chunks.close()
        if held is not None:                    # a short file: all of it was pre-scan
            offset = _clock_offset(held, offset, name, sink)
            off = offset or 0
            file_sym = _file_symbol(symbols, path)
            out, lo = _place_held(held, off, lo, fi, file_sym)
            yield from out
        for pln, loc, pk, psym, pf in pending:
            t = loc + off
            if t < lo:
                t = lo
            lo = t
            yield t, fi, pln, Event(pk, t, psym or file_sym, pf)
        if marks is not None:
            marks.finished.add(fi)


def _place_held(held: list, off: int, lo: int, fi: int, file_sym: str) -> tuple[list, int]:
    """Time and build the pre-scanned messages (the same rule as the main loop of
    _ws_stream); returns the output tuples, and the new lower bound."""
    out = []
    waiting = []
    for ln, e_ms, loc, kind, sym, fields in held:
        if e_ms < 0:
            waiting.append((ln, loc, kind, sym, fields))
            continue
        for pln, ploc, pk, psym, pf in waiting:
            t = min(ploc + off, e_ms)
            t = max(t, lo)
            lo = t
            out.append((t, fi, pln, Event(pk, t, psym or file_sym, pf)))
        waiting.clear()
        lo = max(lo, e_ms)
        out.append((e_ms, fi, ln, Event(kind, e_ms, sym, fields)))
    for pln, ploc, pk, psym, pf in waiting:
        t = max(ploc + off, lo)
        lo = t
        out.append((t, fi, pln, Event(pk, t, psym or file_sym, pf)))
    return out, lo


def read_ws_capture(path: str | Path, issues: list[FeedIssue] | None = None) -> Iterator[Event]:
    """Events of one raw websocket capture, in line order. Malformed lines are skipped
    and, when `issues` is given, recorded there. Times are as described in the module
    docstring: they may step back a few ms where Binance's trade and depth streams
    interleave; open_feed() counts and straightens those."""
    sink = _Sink(issues)
    for item in _ws_stream([(0, Path(path))], sink):
        yield item[3]


# --------------------------------------------------------------------------- candles

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _candle_name(path: Path) -> tuple[str, int]:
    """'BTC_USDT-1m.json.gz' -> ('BTCUSDT', 60); (symbol or '', interval seconds or 0)."""
    stem = path.name
    for ext in (".gz", ".json"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    parts = stem.split("-")
    pair = [p for p in parts[0].replace("/", "_").split("_") if p]
    if len(pair) == 3 and pair[1] == pair[2]:         # freqtrade futures: BTC_USDT_USDT
        pair = pair[:2]
    symbol = "".join(pair).upper() if all(p.isalnum() for p in pair) else ""
    interval = 0
    for token in parts[1:]:
        if len(token) >= 2 and token[:-1].isdigit() and token[-1] in _UNIT_S:
            interval = int(token[:-1]) * _UNIT_S[token[-1]]
            break
    return symbol, interval


def _candle_stream(path: Path, fi: int, sink: _Sink, symbol: str | None = None,
                   marks: _ReadMarks | None = None) -> Iterator[tuple]:
    """Yields (ts, file index, row number, Event) for each usable row."""
    name = path.name
    try:
        raw = b"".join(_text_chunks(path))
    except (TruncatedInput, OSError) as e:
        sink.bad(name, 1, f"{_short(e)}; file skipped")
        return
    try:
        rows = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        sink.bad(name, 1, f"bad JSON: {_short(e)}")
        return
    if not isinstance(rows, list):
        sink.bad(name, 1, "not a JSON array of candle rows")
        return
    if marks is not None:
        marks.rows[fi] = len(rows)
    name_symbol, interval_s = _candle_name(path)
    if symbol is None:
        symbol = name_symbol
    if interval_s <= 0:
        interval_s = _spacing_s(rows)
        if interval_s <= 0:
            sink.record(name, 0, "candle interval unknown (no -1m style name, too few rows): "
                        "events are timed at the open")
    interval_ms = interval_s * 1000
    inf = math.inf
    log = math.log
    prev_t = None
    prev_c = 0.0
    for i, row in enumerate(rows, 1):
        if type(row) is not list or len(row) < 6:
            sink.bad(name, i, "a row is not an array of at least 6 values")
            continue
        t = row[0]
        if type(t) is not int:
            if type(t) is float and t.is_integer():
                t = int(t)
            else:
                sink.bad(name, i, "open time is not an integer number of ms")
                continue
        try:
            o, h, lo_, c, v = float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5])
        except (TypeError, ValueError):
            sink.bad(name, i, "non-numeric price or volume")
            continue
        if not (0 < lo_ <= h < inf and 0 < o < inf and 0 < c < inf and 0 <= v < inf):
            sink.bad(name, i, "implausible candle (prices must be positive with low <= high, volume >= 0)")
            continue
        if t == prev_t:
            sink.bad(name, i, f"duplicate candle open time {t}")
            continue
        if prev_t is None:
            tr = h - lo_
            lr = 0.0
        else:
            tr = (h if h > prev_c else prev_c) - (lo_ if lo_ < prev_c else prev_c)
            lr = log(c / prev_c)
        if prev_t is not None and interval_ms and t - prev_t - interval_ms >= MAINTENANCE_GAP_MS:
            # the exchange published nothing for this long: Binance's status endpoint reports
            # maintenance for such windows. It starts when the first candle failed to close
            # and ends as the next one arrives.
            start = prev_t + 2 * interval_ms
            sink.record(name, i, f"no candles for {(t - prev_t - interval_ms) // 60_000} min: "
                        "exchange maintenance from the first missing close until this candle")
            yield start, fi, i - 0.75, Event("exchange_status", start, "", {"maintenance": True})
            yield t + interval_ms, fi, i - 0.5, Event("exchange_status", t + interval_ms, "", {"maintenance": False})
        prev_t = t
        prev_c = c
        ts = t + interval_ms
        yield ts, fi, i, Event("candle", ts, symbol, {
            "open": o, "high": h, "low": lo_, "close": c, "volume": v, "interval_s": interval_s,
            "true_range": tr, "true_range_pct": tr / c * 100.0, "log_return": lr})


def _spacing_s(rows: list) -> int:
    """Most common positive spacing of the open times, in whole seconds (0 if unknown)."""
    counts: dict[int, int] = {}
    prev = None
    for row in rows[:5000]:
        try:
            t = int(row[0])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if prev is not None and t > prev:
            counts[t - prev] = counts.get(t - prev, 0) + 1
        prev = t
    if not counts:
        return 0
    best = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return best // 1000


def read_candles(path: str | Path, symbol: str | None = None,
                 issues: list[FeedIssue] | None = None) -> Iterator[Event]:
    """Candle events of a freqtrade/ccxt OHLCV JSON file (optionally .gz), timed at each
    candle's close. Missing candles stay missing; a gap of MAINTENANCE_GAP_MS or more
    also yields two 'exchange_status' events (maintenance on, then off). Bad rows are skipped and, when
    `issues` is given, recorded there."""
    sink = _Sink(issues)
    for item in _candle_stream(Path(path), 0, sink, symbol):
        yield item[3]


# --------------------------------------------------------------------------- the feed


@dataclass(frozen=True)
class FeedProgress:
    """How far the events handed out so far have got through a feed's files."""

    read_bytes: int    # on disk (compressed for gzip); within a chunk, in proportion to its lines
    total_bytes: int

    @property
    def fraction(self) -> float:
        """Read of the total, 0 to 1 (1 for a feed of empty files)."""
        return min(1.0, self.read_bytes / self.total_bytes) if self.total_bytes else 1.0


class Feed:
    """Events of several files merged by event time. Iterate once."""

    def __init__(self, paths: Iterable[str | Path]):
        self.sources: list[Path] = [Path(p) for p in paths]
        for p in self.sources:
            if not p.is_file():
                raise FileNotFoundError(f"feed input not found: {p}")
        self._sizes = [p.stat().st_size for p in self.sources]
        self._marks = _ReadMarks()
        self._heap: list | None = None     # the merge's next event of each stream, once iterating
        self._sink = _Sink()
        self.events = 0
        self.first_ts: int | None = None   # event time of the first and the latest event handed out
        self.last_ts: int | None = None
        self.kinds: dict[str, int] = {}
        self._digest: str | None = None
        self._used = False
        self.formats: list[str] = []
        self._streams: list[Iterator[tuple]] = []
        chains: dict[str, list[tuple[int, Path]]] = {}
        for fi, p in enumerate(self.sources):
            fmt, extra = detect_format(p)
            self.formats.append(fmt)
            if fmt == "ws":
                if extra:
                    if extra not in chains:
                        chains[extra] = []
                        self._streams.append(_ws_stream(chains[extra], self._sink, self._marks))
                    chains[extra].append((fi, p))
                else:
                    self._streams.append(_ws_stream([(fi, p)], self._sink, self._marks))
            elif fmt == "candles":
                self._streams.append(_candle_stream(p, fi, self._sink, marks=self._marks))
            else:
                self._sink.bad(p.name, 1, f"unrecognised format: {extra}; file skipped")

    @property
    def issues(self) -> list[FeedIssue]:
        return self._sink.issues

    @property
    def malformed(self) -> int:
        return self._sink.malformed

    @property
    def out_of_order(self) -> int:
        return self._sink.out_of_order

    @property
    def issue_count(self) -> int:
        """Every problem found, also those past MAX_ISSUES that are counted, not listed."""
        sink = self._sink
        return len(sink.issues) + (sink._dropped - 1 if sink._dropped else 0)

    def __iter__(self) -> Iterator[Event]:
        if self._used:
            return iter(())
        self._used = True
        return self._run()

    def _run(self) -> Iterator[Event]:
        # heapq.merge, inlined: one generator layer less per event. Heap entries are
        # [(ts, file index, line, event), next]; (ts, file, line) is unique, so ties go
        # to the earlier file, then the earlier line, and events are never compared.
        heap = []
        for stream in self._streams:
            nxt = stream.__next__
            try:
                heap.append([nxt(), nxt])
            except StopIteration:
                pass
        heapify(heap)
        self._heap = heap
        if heap:
            self.first_ts = heap[0][0][0]
        sink = self._sink
        names = [p.name for p in self.sources]
        kinds = self.kinds
        last = -(1 << 62)
        while heap:
            entry = heap[0]
            ts, fi, ln, ev = entry[0]
            if ts < last:
                sink.out_of_order += 1
                sink.record(names[fi], ln, f"{ev.kind} event time {ts} is {last - ts} ms before the "
                            f"previous event; emitted at {last}")
                ev.ts = last
                ev.fields["hour_utc"] = (last // MS_PER_HOUR) % 24
            else:
                last = self.last_ts = ts
            self.events += 1
            k = ev.kind
            if k in kinds:
                kinds[k] += 1
            else:
                kinds[k] = 1
            yield ev
            try:
                entry[0] = entry[1]()
                if len(heap) > 1:   # one stream (a single capture or its continuation): nothing to merge
                    heapreplace(heap, entry)
            except StopIteration:
                heappop(heap)

    def progress(self) -> FeedProgress:
        """How far the events handed out so far have got through the files, in bytes on
        disk (a file in another format than a capture or candles counts as read)."""
        total = sum(self._sizes)
        if self._heap is None:
            return FeedProgress(0, total)
        # lines used up to: the event last handed out is still at the top of the heap
        next_line = {entry[0][1]: entry[0][2] + (i == 0) for i, entry in enumerate(self._heap)}
        marks = self._marks
        done = 0.0
        for fi, size in enumerate(self._sizes):
            if fi in next_line:
                done += marks.offset(fi, next_line[fi], size)
            elif self.formats[fi] != "ws" or fi in marks.finished:
                done += size   # read to the end, or a candle file or a skipped one not in the merge
        return FeedProgress(int(done), total)

    def digest(self) -> str:
        """sha256 (hex) of the bytes of every input file, in order: the input's identity
        (the same as `cat FILES | sha256sum`)."""
        if self._digest is None:
            h = hashlib.sha256()
            for p in self.sources:
                with open(p, "rb") as f:
                    while block := f.read(READ_CHUNK):
                        h.update(block)
            self._digest = h.hexdigest()
        return self._digest

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(self.kinds.items())) or "none"
        return (f"{self.events:,} events from {len(self.sources)} file(s) ({kinds}); "
                f"malformed {self.malformed:,}; out of order {self.out_of_order:,}")

    def __repr__(self) -> str:
        return f"<Feed {len(self.sources)} file(s): {self.summary()}>"


def open_feed(paths: Iterable[str | Path] | str | Path) -> Feed:
    """A Feed over the files, merged by event time (see the module docstring)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return Feed(paths)
