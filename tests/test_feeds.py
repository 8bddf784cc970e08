"""Replay feeds on real files: the bundled sample, crafted captures with every kind of
damage, crafted candles, merge order, digests, and (when ../shared/data is present)
the full 11-minute capture and the 30-day candle files."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from genesis.engine.events import Event, FeedIssue
from genesis.engine.feeds import (
    DATA_DIR,
    detect_format,
    exchange_info_path,
    open_feed,
    read_candles,
    read_ws_capture,
    sample_paths,
    shared_data_dir,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(
    SHARED is None, reason="the full real data folder ../shared/data is not present next to the repository")

T0_NS = 1_723_161_255_000_000_000        # 2024-08-08 23:54:15 UTC, local receive clock
OFFSET_MS = 1_000                          # crafted captures: E runs 1 s ahead of local


# ----------------------------------------------------------------------------- helpers

def ws_line(local_ms: int, stream: str, data: dict) -> bytes:
    msg = json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
    return f"{local_ms * 1_000_000 + 123_456} {msg}".encode()


def trade(local_ms: int, tid: int, price: float = 100.0, qty: float = 2.0, maker: bool = True,
          sym: str = "btcusdt", e: int | None = None) -> bytes:
    e = local_ms + OFFSET_MS if e is None else e
    return ws_line(local_ms, f"{sym}@trade", {"e": "trade", "E": e, "s": sym.upper(), "t": tid,
                                              "p": f"{price:.8f}", "q": f"{qty:.8f}", "T": e - 1,
                                              "m": maker, "M": True})


def ticker(local_ms: int, uid: int, bid: float = 99.0, ask: float = 101.0, sym: str = "btcusdt") -> bytes:
    return ws_line(local_ms, f"{sym}@bookTicker", {"u": uid, "s": sym.upper(), "b": f"{bid:.8f}",
                                                    "B": "1.50000000", "a": f"{ask:.8f}", "A": "2.50000000"})


def depth(local_ms: int, first: int, last: int, sym: str = "btcusdt", e: int | None = None) -> bytes:
    e = local_ms + OFFSET_MS if e is None else e
    return ws_line(local_ms, f"{sym}@depth@100ms", {
        "e": "depthUpdate", "E": e, "s": sym.upper(), "U": first, "u": last,
        "b": [["99.00000000", "1.00000000"], ["98.00000000", "0.00000000"]],
        "a": [["101.00000000", "3.00000000"]]})


def snapshot_line(local_ms: int, last_id: int) -> bytes:
    msg = json.dumps({"lastUpdateId": last_id, "bids": [["99.00000000", "1.00000000"]],
                      "asks": [["101.00000000", "2.00000000"], ["102.00000000", "4.00000000"]]},
                     separators=(",", ":"))
    return f"{local_ms * 1_000_000} {msg}".encode()


def write_gz(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return path


def base_ms(offset_ms: int = 0) -> int:
    return T0_NS // 1_000_000 + offset_ms


def fields_of(ev: Event) -> tuple:
    return ev.kind, ev.ts, ev.symbol, list(ev.fields.items())


# ----------------------------------------------------------------------------- bundled data

def test_bundled_sample_files():
    paths = sample_paths()
    assert [p.name for p in paths] == ["btcusdt_20240808_sample.gz", "ethusdt_20240808_sample.gz"]
    assert sum(p.stat().st_size for p in paths) < 1_500_000
    for p in paths:
        assert p.read_bytes()[:2] == b"\x1f\x8b"
        assert detect_format(p)[0] == "ws"


@pytest.fixture(scope="module")
def sample_events():
    feed = open_feed(sample_paths())
    events = list(feed)
    return feed, events


def test_sample_parses_cleanly(sample_events):
    feed, events = sample_events
    assert feed.events == len(events) > 30_000
    assert feed.malformed == 0
    kinds = Counter(e.kind for e in events)
    assert set(kinds) == {"trade", "book_ticker", "depth"} and min(kinds.values()) > 1000
    assert {e.symbol for e in events} == {"BTCUSDT", "ETHUSDT"}
    snaps = [e for e in events if e.fields.get("_snapshot")]
    assert sorted(e.symbol for e in snaps) == ["BTCUSDT", "ETHUSDT"]       # one per file
    assert all(e.fields["levels"] == 2000 for e in snaps)
    ts = [e.ts for e in events]
    assert all(a <= b for a, b in zip(ts, ts[1:]))
    # the sample covers 23:54:15 to 23:57:15 UTC of 2024-08-08 (exchange time)
    assert datetime.fromtimestamp(ts[0] / 1000, timezone.utc).strftime("%H:%M") == "23:54"
    assert 170_000 < ts[-1] - ts[0] < 190_000
    assert all(e.fields["hour_utc"] == 23 for e in events)
    # out-of-order events here are trades and depth updates from Binance's separate
    # streams overtaking each other by a few ms, never estimated bookTicker times
    assert feed.out_of_order == len(feed.issues) < 20
    for issue in feed.issues:
        assert issue.problem.split()[0] in ("trade", "depth")
        assert int(issue.problem.split(" is ")[1].split()[0]) <= 5       # ms
    assert "book_ticker" in feed.summary() and "malformed 0" in feed.summary()


def test_sample_field_types_and_values(sample_events):
    _, events = sample_events
    ranges = {"BTCUSDT": (61_500.0, 61_900.0), "ETHUSDT": (2_670.0, 2_690.0)}
    seen = Counter()
    for e in events:
        f = e.fields
        lo, hi = ranges[e.symbol]
        assert f["symbol"] == e.symbol and isinstance(e.ts, int)
        if e.kind == "trade":
            assert type(f["price"]) is float and type(f["qty"]) is float
            assert lo < f["price"] < hi and f["qty"] > 0
            assert f["notional_usd"] == pytest.approx(f["price"] * f["qty"])
            assert f["aggressor"] in ("buy", "sell") and type(f["_trade_id"]) is int
        elif e.kind == "book_ticker":
            assert all(type(f[k]) is float for k in ("bid", "bid_qty", "ask", "ask_qty", "mid", "spread_bps"))
            assert lo < f["bid"] <= f["ask"] < hi
            assert f["mid"] == pytest.approx((f["bid"] + f["ask"]) / 2)
            assert 0 <= f["spread_bps"] < 20.0
            assert type(f["_update_id"]) is int
        else:
            assert f["best_bid"] == 0.0 and f["best_ask"] == 0.0
            bids, asks = f["_bids"], f["_asks"]
            assert f["levels"] == len(bids) + len(asks) > 0
            for price, qty in [*bids, *asks]:
                assert type(price) is float and type(qty) is float and price > 0 and qty >= 0
            if f["_snapshot"]:
                assert type(f["_last_update_id"]) is int
                assert all(q > 0 for _, q in bids + asks)
            else:
                assert type(f["_first_id"]) is int and f["_first_id"] <= f["_last_id"]
        seen[(e.symbol, e.kind)] += 1
    assert len(seen) == 6
    aggressors = Counter(e.fields["aggressor"] for e in events if e.kind == "trade")
    assert aggressors["buy"] > 100 and aggressors["sell"] > 100


def test_sample_snapshot_syncs_with_the_diff_stream(sample_events):
    """Binance's rule holds on the real data: the first diff update with u > lastUpdateId
    straddles lastUpdateId + 1, and diffs are continuous (U = previous u + 1). For BTCUSDT
    that diff arrives (and is emitted) before the snapshot, so a book must buffer early
    diffs; for ETHUSDT the snapshot ends exactly at a diff's u and the next one follows."""
    _, events = sample_events
    for sym in ("BTCUSDT", "ETHUSDT"):
        depth_events = [e.fields for e in events if e.symbol == sym and e.kind == "depth"]
        snap_at = next(i for i, f in enumerate(depth_events) if f["_snapshot"])
        assert snap_at > 0                              # diffs come first, as the README says
        last_id = depth_events[snap_at]["_last_update_id"]
        diffs = [f for f in depth_events if not f["_snapshot"]]
        straddling = next(i for i, f in enumerate(diffs) if f["_last_id"] > last_id)
        assert diffs[straddling]["_first_id"] <= last_id + 1 <= diffs[straddling]["_last_id"]
        assert (straddling < snap_at) == (sym == "BTCUSDT")     # diffs before the snapshot
        diffs = [f for f in depth_events if not f["_snapshot"]]
        assert all(b["_first_id"] == a["_last_id"] + 1 for a, b in zip(diffs, diffs[1:]))


def test_sample_trade_ids_are_continuous(sample_events):
    _, events = sample_events
    for sym in ("BTCUSDT", "ETHUSDT"):
        ids = [e.fields["_trade_id"] for e in events if e.symbol == sym and e.kind == "trade"]
        assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_sample_trade_time_is_binance_E():
    """Trade times are E; bookTicker times sit between their neighbours in the file."""
    path = sample_paths()[0]
    raw = gzip.decompress(path.read_bytes()).split(b"\n")
    events = list(read_ws_capture(path))
    assert len(events) == len(raw) - 1
    first_trade = next(json.loads(line.split(b" ", 1)[1]) for line in raw if b"@trade" in line[:60])
    ev = next(e for e in events if e.kind == "trade")
    assert ev.ts == first_trade["data"]["E"] and ev.fields["_trade_id"] == first_trade["data"]["t"]
    # local receive clock runs about 1.27 s behind E (data README); estimates follow it
    for line, e in zip(raw, events):
        if e.kind == "book_ticker":
            local_ms = int(line.split(b" ", 1)[0]) // 1_000_000
            assert 1_240 <= e.ts - local_ms <= 1_290


def test_exchange_info_bundle():
    data = json.loads(exchange_info_path().read_text(encoding="utf-8"))
    assert exchange_info_path().parent == DATA_DIR
    assert set(data) == {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"}
    syms = {s["symbol"]: s for s in data["symbols"]}
    assert set(syms) == {"BTCUSDT", "ETHUSDT", "ETHBTC"}
    filters = {f["filterType"]: f for f in syms["BTCUSDT"]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert {"LOT_SIZE", "MIN_NOTIONAL", "PERCENT_PRICE"} <= set(filters)
    if SHARED is not None:
        line = (SHARED / "binance_messages/cryptofeed/BINANCE.0").read_text(encoding="utf-8").split("\n", 1)[0]
        full = json.loads(line.split(": ", 1)[1])
        assert {k: v for k, v in full.items() if k != "symbols"} == \
            {k: v for k, v in data.items() if k != "symbols"}
        assert [s for s in full["symbols"] if s["symbol"] in syms] == data["symbols"]


def test_notice_attributes_both_sources():
    text = (REPO / "NOTICE").read_text(encoding="utf-8")
    assert "nkaz001/hftbacktest" in text and "Copyright (c) 2022 nkaz001" in text and "MIT" in text
    assert ("This product includes software developed by Bryant Moscon "
            "(http://www.bryantmoscon.com/)") in text
    assert "Binance" in text


@needs_shared
def test_sample_is_a_byte_prefix_of_the_capture_cut_at_one_local_time():
    cut_ns = 1_723_161_434_000_000_000        # 2024-08-08 23:57:14.000, local receive clock
    for path in sample_paths():
        full = gzip.decompress((SHARED / "binance_spot_ws_raw" / path.name.replace("_sample", "")).read_bytes())
        cut = gzip.decompress(path.read_bytes())
        assert cut.endswith(b"\n") and full.startswith(cut)
        last_kept = int(cut.rstrip(b"\n").rsplit(b"\n", 1)[1].split(b" ", 1)[0])
        first_dropped = int(full[len(cut):].split(b" ", 1)[0])
        assert last_kept < cut_ns <= first_dropped


# ----------------------------------------------------------------------------- crafted captures

def test_malformed_lines_are_counted_located_and_never_fatal(tmp_path):
    t = base_ms()
    lines = [
        depth(t, 10, 12),                                                   # 1 ok
        trade(t + 1, 500),                                                  # 2 ok
        b"",                                                                # 3 blank: ignored
        trade(t + 2, 501)[:-20],                                            # 4 bad JSON (cut)
        ws_line(t + 3, "btcusdt@trade", {"e": "trade", "E": t + 1003, "t": 502,
                                         "q": "1.0", "m": False}),          # 5 missing key p
        ws_line(t + 4, "btcusdt@trade", {"e": "trade", "E": t + 1004, "t": 503, "p": "abc",
                                         "q": "1.0", "m": False}),          # 6 non-numeric
        ws_line(t + 5, "btcusdt@aggTrade", {"e": "aggTrade", "E": t + 1005}),  # 7 unknown suffix
        b"notatime " + trade(t + 6, 504).split(b" ", 1)[1],                 # 8 bad receive time
        b'{"stream":"btcusdt@trade","data":{}}',                            # 9 no receive time
        ticker(t + 7, 20),                                                  # 10 ok
        ws_line(t + 8, "btcusdt@bookTicker", {"u": 21, "b": "-1", "B": "1", "a": "2", "A": "1"}),  # 11
        trade(t + 9, 505),                                                  # 12 ok
        trade(t + 10, 506, e=t + 900),                                      # 13 out of order (109 ms)
        trade(t + 11, 507),                                                 # 14 ok
        b"1723161255000000000 [1, 2, 3]",                                   # 15 not an object
        b'1723161255000000000 {"foo": 1}',                                  # 16 neither kind
    ]
    path = write_gz(tmp_path / "btcusdt_crafted.gz", lines)
    feed = open_feed([path])
    events = list(feed)
    assert [e.kind for e in events] == ["depth", "trade", "book_ticker", "trade", "trade", "trade"]
    assert feed.malformed == 9 and feed.out_of_order == 1
    by_line = {i.line: i.problem for i in feed.issues}
    assert set(by_line) == {4, 5, 6, 7, 8, 9, 11, 13, 15, 16}
    assert by_line[4].startswith("bad JSON")
    assert "missing required field `p`" in by_line[5]
    assert "$.data.p" in by_line[6]
    assert "aggTrade" in by_line[7] and "suffix" in by_line[7]
    assert "receive time" in by_line[8]
    assert "$.data.b" in by_line[11]
    assert "109 ms" in by_line[13]
    for issue in feed.issues:
        assert isinstance(issue, FeedIssue) and issue.source == "btcusdt_crafted.gz"
        assert '"stream"' not in issue.problem and len(issue.problem) <= 160
    # the out-of-order trade is still emitted, at the previous event's time
    late = next(e for e in events if e.fields.get("_trade_id") == 506)
    assert late.ts == t + 1009 and late.fields["hour_utc"] == 23
    ts = [e.ts for e in events]
    assert all(a <= b for a, b in zip(ts, ts[1:]))


def test_truncated_and_corrupt_gzip_stop_only_that_file(tmp_path):
    t = base_ms()

    def capture(sym: str) -> bytes:
        lines = [trade(t + i, 1000 + i, price=100 + (i % 7), sym=sym) for i in range(4000)]
        return gzip.compress(b"\n".join(lines) + b"\n")

    whole = capture("btcusdt")
    cut = tmp_path / "btcusdt_cut.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    data = bytearray(capture("solusdt"))
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    corrupt = tmp_path / "solusdt_corrupt.gz"
    corrupt.write_bytes(bytes(data))
    good = write_gz(tmp_path / "ethusdt_ok.gz", [trade(t + i, 50 + i, sym="ethusdt") for i in range(10)])

    feed = open_feed([cut, good, corrupt])
    events = list(feed)
    per_sym = Counter(e.symbol for e in events)
    assert per_sym["ETHUSDT"] == 10                    # the other file is untouched
    assert 0 < per_sym["BTCUSDT"] < 4000               # what came before the cut
    assert 0 < per_sym["SOLUSDT"] < 4000
    cut_issues = [i for i in feed.issues if i.source == "btcusdt_cut.gz"]
    assert len(cut_issues) == 1
    assert "ends before" in cut_issues[0].problem and "rest of the file skipped" in cut_issues[0].problem
    assert cut_issues[0].line == per_sym["BTCUSDT"] + 1      # the partial last line is dropped
    # zeroed deflate data decodes to garbage lines (each counted) until zlib notices
    corrupt_issues = [i for i in feed.issues if i.source == "solusdt_corrupt.gz"]
    assert "corrupt gzip data" in max(corrupt_issues, key=lambda i: i.line).problem
    assert feed.malformed + feed.out_of_order == len(feed.issues)
    assert not [i for i in feed.issues if i.source == "ethusdt_ok.gz"]
    # a truncated file read alone: same events, one issue, no exception
    issues: list[FeedIssue] = []
    alone = list(read_ws_capture(cut, issues=issues))
    assert len(alone) == per_sym["BTCUSDT"] and issues == cut_issues


def test_estimated_times_stay_between_their_neighbours(tmp_path):
    t = base_ms()
    lines = [
        trade(t, 1),                       # E = t + 1000
        ticker(t + 5, 10),                 # estimate t + 1005
        trade(t + 10, 2, e=t + 1003),      # this E is earlier than the estimate above
        ticker(t + 11, 11),                # estimate t + 1011
        trade(t + 20, 3, e=t + 1050),
        snapshot_line(t + 30, 9),          # last line: bounded below only
        ticker(t + 25, 12),                # local time steps back: kept after the snapshot
    ]
    path = write_gz(tmp_path / "capture.gz", lines)
    events = list(read_ws_capture(path))
    assert [e.ts - t for e in events] == [1000, 1003, 1003, 1011, 1050, 1050, 1050]
    snap = events[5]
    assert snap.fields["_snapshot"] and snap.symbol == "BTCUSDT"   # inferred from the streams
    assert snap.fields["levels"] == 3 and snap.fields["_last_update_id"] == 9
    feed = open_feed([path])
    assert [e.ts for e in feed] == [e.ts for e in events]
    assert feed.out_of_order == 0


def test_clock_offset_is_the_median_of_the_prescan(tmp_path):
    t = base_ms()
    lines = []
    for i in range(300):               # E - local: 990, 1000, 1010 ... median 1000
        lines.append(trade(t + 100 * i, i, e=t + 100 * i + 990 + 10 * (i % 3)))
        lines.append(ticker(t + 100 * i + 50, i))
    events = list(read_ws_capture(write_gz(tmp_path / "btcusdt_x.gz", lines)))
    tickers = [e for e in events if e.kind == "book_ticker"]
    assert [e.ts - t for e in tickers[:3]] == [1050, 1150, 1250]


def test_slow_path_and_plain_text_capture(tmp_path):
    t = base_ms()
    reordered = json.dumps({"data": {"e": "trade", "E": t + 1000, "s": "ETHUSDT", "t": 7, "p": "2680.5",
                                     "q": "0.5", "T": t + 999, "m": False, "M": True},
                            "stream": "ethusdt@trade"})
    plain = tmp_path / "capture.json"         # not gzip, misleading name: detected by content
    plain.write_bytes(b"\n".join([f"{t * 1_000_000} {reordered}".encode(),
                                  ticker(t + 1, 3, 2680.0, 2680.01, sym="ethusdt"),
                                  snapshot_line(t + 2, 5)]) + b"\r\n")
    assert detect_format(plain) == ("ws", "ETHUSDT")
    feed = open_feed([plain])
    events = list(feed)
    assert feed.malformed == 0
    assert [e.kind for e in events] == ["trade", "book_ticker", "depth"]
    tr = events[0].fields
    assert tr["price"] == 2680.5 and tr["aggressor"] == "buy" and tr["notional_usd"] == 1340.25
    assert events[1].fields["spread_bps"] == pytest.approx(0.01 / 2680.005 * 1e4)
    assert events[2].symbol == "ETHUSDT"


def test_same_symbol_files_continue_each_other(tmp_path):
    t = base_ms()
    day1 = write_gz(tmp_path / "btcusdt_1.gz", [depth(t, 1, 5), trade(t + 1, 100), ticker(t + 2, 6),
                                                 trade(t + 60, 101, e=t + 1060)])
    # day 2 opens with tickers whose (own-offset) estimates fall before day 1's last event
    day2 = write_gz(tmp_path / "btcusdt_2.gz", [ticker(t + 61, 7), ticker(t + 62, 8)]
                    + [trade(t + 70 + i, 102 + i, e=t + 1060 + i) for i in range(3)])
    other = write_gz(tmp_path / "ethusdt_1.gz", [trade(t + 30 + i, 9 + i, sym="ethusdt") for i in range(5)])
    feed = open_feed([day1, other, day2])
    events = list(feed)
    btc = [e for e in events if e.symbol == "BTCUSDT"]
    # day 2's clock offset (990 ms) puts its first tickers at t+1051, before day 1's last
    # trade (t+1060): they still come after it, at its time, in file order
    assert [e.fields.get("_trade_id", e.fields.get("_update_id")) for e in btc] == \
        [None, 100, 6, 101, 7, 8, 102, 103, 104]
    assert [e.ts - t for e in btc][3:6] == [1060, 1060, 1060]
    assert feed.out_of_order == 0 and feed.malformed == 0
    assert len(events) == 14


def test_unknown_format_is_an_issue_not_an_error(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\nworld\n")
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    good = write_gz(tmp_path / "btcusdt.gz", [trade(base_ms(), 1)])
    feed = open_feed([junk, empty, good])
    assert len(list(feed)) == 1
    assert [(i.source, i.line) for i in feed.issues] == [("notes.txt", 1), ("empty.gz", 1)]
    assert feed.malformed == 2 and "unrecognised format" in feed.issues[0].problem
    with pytest.raises(FileNotFoundError):
        open_feed([tmp_path / "missing.gz"])


# ----------------------------------------------------------------------------- candles

CANDLE_ROWS = [
    [1_618_951_320_000, 100.0, 110.0, 95.0, 105.0, 10.0],
    [1_618_951_380_000, 105.0, 108.0, 101.0, 102.0, 5.5],
    [1_618_951_440_000, 102.0, 103.0, 96.0, 97.0, 0.0],
    # gap: three candles missing
    [1_618_951_680_000, 120.0, 125.0, 119.0, 121.0, 3],
]


def test_candles_from_a_crafted_file(tmp_path):
    path = tmp_path / "XRP_USDT-1m.json"
    path.write_text(json.dumps(CANDLE_ROWS))
    assert detect_format(path) == ("candles", "")
    events = list(read_candles(path))
    assert len(events) == 4                                          # no invented candles
    assert all(e.kind == "candle" and e.symbol == "XRPUSDT" for e in events)
    assert [e.ts for e in events] == [r[0] + 60_000 for r in CANDLE_ROWS]   # decided at the close
    f0, f1, f2, f3 = (e.fields for e in events)
    assert f0["true_range"] == 15.0 and f0["log_return"] == 0.0 and f0["interval_s"] == 60
    assert f1["true_range"] == 108.0 - 101.0
    assert f2["true_range"] == 103.0 - 96.0
    assert f1["true_range"] == 108.0 - 101.0                         # prev close 105 inside
    assert f3["true_range"] == 125.0 - 97.0                          # gap up from close 97
    assert f3["true_range_pct"] == pytest.approx(28.0 / 121.0 * 100)
    assert f1["log_return"] == pytest.approx(math.log(102 / 105))
    assert f3["log_return"] == pytest.approx(math.log(121 / 97))
    assert all(type(f[k]) is float for f in (f0, f3) for k in ("open", "high", "low", "close", "volume"))
    assert f2["volume"] == 0.0 and f0["hour_utc"] == 20


def test_candles_gz_symbol_interval_from_spacing_and_bad_rows(tmp_path):
    rows = [[1_000_000 + 300_000 * i, 10.0, 11.0, 9.0, 10.5, 1.0] for i in range(5)]
    rows[2] = [rows[2][0], "x", 11.0, 9.0, 10.5, 1.0]                 # non-numeric
    rows.insert(4, [rows[3][0], 10.0, 11.0, 9.0, 10.5, 1.0])           # duplicate open time
    rows.append([rows[-1][0] + 300_000, 10.0, 9.0, 11.0, 10.0, 1.0])   # low above high
    rows.append([1, 2, 3])                                             # short row
    path = tmp_path / "mydata.gz"                                      # no symbol, no interval
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    issues: list[FeedIssue] = []
    events = list(read_candles(path, symbol="SOLUSDT", issues=issues))
    assert [e.fields["interval_s"] for e in events] == [300] * 4
    assert [e.ts for e in events] == [1_000_000 + 300_000 * (i + 1) for i in (0, 1, 3, 4)]
    assert {e.symbol for e in events} == {"SOLUSDT"}
    assert [i.line for i in issues] == [3, 5, 7, 8]
    feed = open_feed([path])
    list(feed)
    assert feed.malformed == 4


def test_candles_and_ticks_merge_in_event_time(tmp_path):
    t = base_ms()
    candles = tmp_path / "BTC_USDT-1m.json"
    start = (t + 1000) // 60_000 * 60_000 - 60_000
    candles.write_text(json.dumps([[start + 60_000 * i, 61_000.0, 61_100.0, 60_900.0, 61_050.0, 1.0]
                                   for i in range(3)]))
    ticks = write_gz(tmp_path / "btcusdt.gz", [trade(t + 1_000 * i, i) for i in range(200)])
    feed = open_feed([candles, ticks])
    events = list(feed)
    assert Counter(e.kind for e in events) == {"trade": 200, "candle": 3}
    ts = [e.ts for e in events]
    assert ts == sorted(ts) and feed.out_of_order == 0


# ----------------------------------------------------------------------------- merge and digest

def test_merge_is_deterministic_and_ties_follow_file_then_line_order(tmp_path):
    t = base_ms()
    a = write_gz(tmp_path / "a.gz", [trade(t, 1, sym="btcusdt"), trade(t, 2, sym="btcusdt"),
                                     trade(t + 5, 3, sym="btcusdt")])
    b = write_gz(tmp_path / "b.gz", [trade(t, 7, sym="ethusdt"), trade(t + 5, 8, sym="ethusdt")])
    ids = [e.fields["_trade_id"] for e in open_feed([a, b])]
    assert ids == [1, 2, 7, 3, 8]
    assert [e.fields["_trade_id"] for e in open_feed([b, a])] == [7, 1, 2, 8, 3]


def test_two_runs_give_identical_sequences():
    runs = [[fields_of(e) for e in open_feed(sample_paths())] for _ in range(2)]
    assert runs[0] == runs[1]


def test_feed_yields_once_and_counts_so_far():
    feed = open_feed(sample_paths())
    it = iter(feed)
    for _ in range(100):
        next(it)
    assert feed.events == 100
    rest = sum(1 for _ in it)
    assert feed.events == 100 + rest
    assert list(feed) == []


def test_digest_identifies_the_input(tmp_path):
    paths = sample_paths()
    feed = open_feed(paths)
    expected = hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()
    assert feed.digest() == expected and len(expected) == 64
    assert open_feed(list(reversed(paths))).digest() != expected
    assert feed.sources == paths
    copy = tmp_path / paths[0].name
    data = bytearray(paths[0].read_bytes())
    data[-100] ^= 0x01
    copy.write_bytes(bytes(data))
    assert open_feed([copy, paths[1]]).digest() != expected


# ----------------------------------------------------------------------------- full data

@pytest.fixture(scope="module")
def full_capture():
    if SHARED is None:
        pytest.skip("the full real data folder ../shared/data is not present next to the repository")
    ws = SHARED / "binance_spot_ws_raw"
    paths = [ws / n for n in ("btcusdt_20240808.gz", "ethusdt_20240808.gz",
                              "btcusdt_20240809.gz", "ethusdt_20240809.gz")]
    feed = open_feed(paths)
    return feed, list(feed), paths


@needs_shared
def test_full_capture_both_symbols_both_days(full_capture):
    feed, events, paths = full_capture
    assert feed.malformed == 0
    assert feed.events == len(events) == 41_249 + 58_325 + 33_618 + 46_126   # every line
    kinds = Counter((e.symbol, e.kind) for e in events)
    assert kinds[("BTCUSDT", "trade")] == 9_757 + 10_147
    assert kinds[("ETHUSDT", "trade")] == 6_106 + 8_409
    assert kinds[("BTCUSDT", "book_ticker")] == 28_040 + 45_134
    assert kinds[("ETHUSDT", "depth")] == 3_434 + 3_036 + 1            # + the snapshot
    ts = [e.ts for e in events]
    assert all(a <= b for a, b in zip(ts, ts[1:]))
    span = datetime.fromtimestamp(ts[0] / 1000, timezone.utc), datetime.fromtimestamp(ts[-1] / 1000, timezone.utc)
    assert span[0].strftime("%Y-%m-%d %H:%M") == "2024-08-08 23:54"
    assert span[1].strftime("%Y-%m-%d %H:%M") == "2024-08-09 00:05"
    for sym, (lo, hi) in {"BTCUSDT": (61_556.04, 61_860.80), "ETHUSDT": (2_673.60, 2_685.37)}.items():
        prices = [e.fields["price"] for e in events if e.symbol == sym and e.kind == "trade"]
        assert min(prices) == lo and max(prices) == hi
        ids = [e.fields["_trade_id"] for e in events if e.symbol == sym and e.kind == "trade"]
        assert ids == list(range(ids[0], ids[0] + len(ids)))          # no gap across the two days
        diffs = [e.fields for e in events if e.symbol == sym and e.kind == "depth" and not e.fields["_snapshot"]]
        assert all(b["_first_id"] == a["_last_id"] + 1 for a, b in zip(diffs, diffs[1:]))
    assert [e.fields["_trade_id"] for e in events if e.symbol == "BTCUSDT" and e.kind == "trade"][::19_903] \
        == [3_735_683_259, 3_735_703_162]


@needs_shared
def test_full_capture_out_of_order_is_only_cross_stream_jitter(full_capture):
    """What the data holds: within each stream (trade, depth) E never goes back; between
    the two streams of one symbol, a message sometimes arrives after one with a later E
    (by 1-4 ms). Those, and only those, are counted as out of order; estimated bookTicker
    and snapshot times never are."""
    feed, events, paths = full_capture
    expected = 0
    for path in paths:
        last_any = None
        last_per_stream: dict[str, int] = {}
        for line in gzip.decompress(path.read_bytes()).splitlines():
            msg = json.loads(line.split(b" ", 1)[1])
            if "stream" not in msg or "E" not in msg["data"]:
                continue
            stream, e = msg["stream"], msg["data"]["E"]
            assert e >= last_per_stream.get(stream, e)                  # monotonic per stream
            last_per_stream[stream] = e
            if last_any is not None and e < last_any:
                expected += 1
            last_any = e if last_any is None else max(last_any, e)
    assert feed.out_of_order == expected == len(feed.issues) == 40
    for issue in feed.issues:
        assert issue.problem.split()[0] in ("trade", "depth")
        assert int(issue.problem.split(" is ")[1].split()[0]) <= 4


@needs_shared
def test_full_capture_file_order_does_not_matter(full_capture):
    _, events, paths = full_capture
    grouped = open_feed([paths[0], paths[2], paths[1], paths[3]])
    assert all(fields_of(a) == fields_of(b) for a, b in zip(grouped, events, strict=True))


@needs_shared
def test_full_candle_files():
    paths = sorted((SHARED / "binance_spot_ohlcv").glob("*_USDT-1m.json.gz"))
    assert [p.name for p in paths] == ["BTC_USDT-1m.json.gz", "ETH_USDT-1m.json.gz"]
    closes = {"BTCUSDT": (30_101.00, 59_500.00), "ETHUSDT": (1_925.16, 4_363.95)}
    for path in paths:
        events = list(read_candles(path))
        status = [e for e in events if e.kind == "exchange_status"]   # the 2021-04-25 upgrade
        assert [(e.ts, e.fields["maintenance"]) for e in status] == [(1_619_323_320_000, True),
                                                                     (1_619_340_360_000, False)]
        events = [e for e in events if e.kind == "candle"]
        assert len(events) == 42_915
        sym = events[0].symbol
        rows = json.loads(gzip.decompress(path.read_bytes()))
        assert [e.ts for e in events] == [r[0] + 60_000 for r in rows]
        gaps = [(a.ts, b.ts) for a, b in zip(events, events[1:]) if b.ts - a.ts != 60_000]
        assert len(gaps) == 1
        before, after = (datetime.fromtimestamp((g - 60_000) / 1000, timezone.utc) for g in gaps[0])
        assert (before.strftime("%Y-%m-%d %H:%M"), after.strftime("%H:%M")) == ("2021-04-25 04:00", "08:45")
        c = [e.fields["close"] for e in events]
        assert (min(c), max(c)) == closes[sym]
        assert all(e.fields["true_range"] >= 0 for e in events)
    feed = open_feed(paths)
    assert feed.events == 0 and sum(1 for _ in feed) == 2 * 42_915 + 2 * 2   # + maintenance on/off per file
    assert feed.malformed == 0 and feed.out_of_order == 0


def test_a_long_candle_gap_is_exchange_maintenance(tmp_path):
    """A gap of 30 minutes or more yields exchange_status events around it (maintenance
    from the first missing close, normal at the next candle's close, before it); a
    shorter gap only leaves candles missing."""
    t0 = 1_619_323_200_000   # 2021-04-25 04:00 UTC
    rows = [[t0 - 60_000, 1, 1, 1, 1, 1], [t0, 1, 1, 1, 1, 1],
            [t0 + 20 * 60_000, 1, 1, 1, 1, 1],                     # 19 missing: no maintenance
            [t0 + 60 * 60_000, 1, 1, 1, 1, 1]]                     # 39 missing: maintenance
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text(json.dumps(rows))
    feed = open_feed([path])
    got = [(e.kind, e.ts, e.fields.get("maintenance")) for e in feed]
    assert got == [
        ("candle", t0, None), ("candle", t0 + 60_000, None), ("candle", t0 + 21 * 60_000, None),
        ("exchange_status", t0 + 22 * 60_000, True), ("exchange_status", t0 + 61 * 60_000, False),
        ("candle", t0 + 61 * 60_000, None),
    ]
    assert [i.problem for i in feed.issues] == [
        "no candles for 39 min: exchange maintenance from the first missing close until this candle"]
