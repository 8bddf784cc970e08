"""The replay report through real `genesis replay` processes on the bundled sample and on
real candles: the data range, the tables by pair, strategy and day, the trade list
(--trades), the chart (--plot .png/.svg/.html), the problem lines, and the refusal of
input without a usable event. Expected figures come from the feed and the journal of the
same run, never typed in."""
from __future__ import annotations

import csv
import gzip
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scenario_helpers import CANDLES, config_copy, needs_data

from genesis.durations import format_utc
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.report import TABLE_ROWS, format_report
from genesis.engine.runrecord import TRADE_COLUMNS, utc_day

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# On the sample: the operator buys and sells ETH; a BTC position that the spread strategy
# opens is sold by the operator (its trade belongs to the strategy that opened it).
SAMPLE_SCRIPT = [
    {"after": "20s", "kind": "order", "side": "buy", "symbol": "ETHUSDT", "notional_usd": 40,
     "reason": "a test entry on the sample"},
    {"after": "120s", "kind": "order", "side": "sell", "symbol": "ETHUSDT", "notional_usd": 40},
    {"after": "170s", "kind": "order", "side": "sell", "symbol": "BTCUSDT", "notional_usd": 60},
]
# On 17 days of real BTC candles: trades on several days, one held over midnight, one left open.
CANDLE_SCRIPT = [
    {"after": "1h", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 40,
     "reason": "a test entry on real candles"},
    {"after": "2h", "kind": "order", "side": "sell", "symbol": "BTCUSDT", "notional_usd": 40},
    {"after": "5h", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 40,
     "reason": "a test entry on real candles"},
    {"after": "30h", "kind": "order", "side": "sell", "symbol": "BTCUSDT", "notional_usd": 40},
    {"after": "3d", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 30,
     "reason": "a test entry on real candles"},
    {"after": "3d1h", "kind": "order", "side": "sell", "symbol": "BTCUSDT", "notional_usd": 30},
    {"after": "10d", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 30,
     "reason": "a test entry on real candles"},
]
CANDLE_DAYS = 17


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python cli.py ARGS` from the repository root; never a traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


class Replay:
    """One `genesis replay ... --json --trades --plot --db` and what it left behind."""

    def __init__(self, folder: Path, files: list[Path], script: list[dict], plot: str, *extra: str):
        folder.mkdir(parents=True, exist_ok=True)
        commands = folder / "commands.yaml"
        commands.write_text(yaml.safe_dump({"commands": script}, sort_keys=False))
        self.db, self.csv, self.plot = folder / "journal.db", folder / "trades.csv", folder / plot
        self.files = files
        result = cli("replay", *map(str, files), "--commands", str(commands), "--db", f"sqlite:///{self.db}",
                     "--json", "--trades", str(self.csv), "--plot", str(self.plot), *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        self.stderr = result.stderr
        self.report = json.loads(result.stdout)
        with open(self.csv, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            self.columns = reader.fieldnames
            self.trades = list(reader)
        con = sqlite3.connect(self.db)
        try:
            self.entries = [{"ts": ts, "kind": kind, "rule": rule, "symbol": symbol, "data": json.loads(data)}
                            for ts, kind, rule, symbol, data in con.execute(
                                "SELECT ts, kind, rule, symbol, data FROM entries ORDER BY run_id, seq")]
        finally:
            con.close()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.entries if e["kind"] == kind]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return Replay(tmp_path_factory.mktemp("sample"), sample_paths(), SAMPLE_SCRIPT, "report.html")


@pytest.fixture(scope="module")
def sample_text(tmp_path_factory):
    """The same replay as `sample`, as text, with the chart as PNG."""
    folder = tmp_path_factory.mktemp("text")
    commands = folder / "commands.yaml"
    commands.write_text(yaml.safe_dump({"commands": SAMPLE_SCRIPT}, sort_keys=False))
    result = cli("replay", "--commands", str(commands), "--plot", str(folder / "chart.png"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result, folder / "chart.png"


@pytest.fixture(scope="module")
def candles(tmp_path_factory):
    """17 days of real BTC candles, with the chart as SVG."""
    folder = tmp_path_factory.mktemp("candles")
    rows = json.loads(gzip.decompress((CANDLES / "BTC_USDT-1m.json.gz").read_bytes()))
    feed = folder / "BTC_USDT-1m.json.gz"
    feed.write_bytes(gzip.compress(json.dumps(rows[:CANDLE_DAYS * 1440]).encode(), mtime=0))
    return Replay(folder, [feed], CANDLE_SCRIPT, "chart.svg")


def feed_range(files) -> tuple[int, int, int]:
    """(first event time, last event time, events) of the files, read by the feed itself."""
    times = [event.ts for event in open_feed(files)]
    return times[0], max(times), len(times)


def fills(run: Replay) -> list[dict]:
    return [{**e["data"], "ts": e["ts"], "symbol": e["symbol"]} for e in run.of("fill")]


# --------------------------------------------------------------------------- the data range
def test_the_data_range_is_the_first_and_last_event_of_the_feed(sample, sample_text):
    first, last, events = feed_range(sample_paths())
    rng = sample.report["data_range"]
    assert sample.report["events"] >= events
    assert (rng["first_event_ms"], rng["last_event_ms"]) == (first, last)
    assert (rng["first_event_utc"], rng["last_event_utc"]) == (format_utc(first), format_utc(last))
    assert rng["duration_s"] == (last - first) / 1000
    text = sample_text[0].stdout
    data = re.search(r"^  data {12}(.*)$", text, re.M).group(1)
    minutes, seconds = divmod(round((last - first) / 1000), 60)
    # the same day: the date is written once
    assert data == (f"{format_utc(first).removesuffix(' UTC')} to {format_utc(last)[11:19]} UTC "
                    f"({minutes} min {seconds} s)")


@needs_data
def test_a_range_over_several_days_names_both_dates(candles):
    first, last, _ = feed_range(candles.files)
    rng = candles.report["data_range"]
    assert (rng["first_event_ms"], rng["last_event_ms"]) == (first, last)
    text = format_report(candles.report)
    data = re.search(r"^  data {12}(.*)$", text, re.M).group(1)
    assert data.startswith(f"{format_utc(first).removesuffix(' UTC')} to {format_utc(last)} (")
    assert re.search(r"\(\d+ days \d+ h\)$", data), data


# --------------------------------------------------------------------------- the tables
def _tables_add_up(run: Replay) -> None:
    report = run.report
    closed = run.of("position_closed")
    assert report["trades"] == len(closed) > 0
    assert report["realised_pnl_usd"] == pytest.approx(sum(e["data"]["pnl_usd"] for e in closed), abs=0.005)
    for key in ("by_pair", "by_strategy", "by_day"):
        rows = report[key]
        assert sum(r["trades"] for r in rows) == report["trades"], key
        assert sum(r["wins"] for r in rows) == report["wins"], key
        assert sum(r["realised_pnl_usd"] for r in rows) == pytest.approx(report["realised_pnl_usd"], abs=0.005)
        assert sum(r["fees_usd"] for r in rows) == pytest.approx(report["fees_usd"], abs=0.00005), key
        for r in rows:
            assert r["win_rate_pct"] == (round(r["wins"] / r["trades"] * 100, 2) if r["trades"] else None)
    # the day's P&L is the change in equity: the days add up to the run's P&L
    assert sum(r["pnl_usd"] for r in report["by_day"]) == pytest.approx(report["pnl_usd"], abs=0.006)
    # by pair: each symbol's closed trades and the fees of its fills, from the journal
    for row in report["by_pair"]:
        mine = [e for e in closed if e["symbol"] == row["symbol"]]
        assert row["trades"] == len(mine)
        assert row["fees_usd"] == pytest.approx(sum(f["fee_usd"] for f in fills(run) if f["symbol"] == row["symbol"]),
                                                abs=1e-6)
    # by day: the trades closed and the fees paid on each UTC day
    for row in report["by_day"]:
        assert row["trades"] == sum(1 for e in closed if utc_day(e["ts"]) == row["day"])
        assert row["fees_usd"] == pytest.approx(sum(f["fee_usd"] for f in fills(run) if utc_day(f["ts"]) == row["day"]),
                                                abs=1e-6)


def test_the_tables_by_pair_strategy_and_day_add_up_to_the_totals(sample):
    _tables_add_up(sample)
    assert [r["symbol"] for r in sample.report["by_pair"]] == sorted({f["symbol"] for f in fills(sample)})


@needs_data
def test_over_several_days_each_utc_day_has_a_row_and_they_add_up(candles):
    _tables_add_up(candles)
    first, last = candles.report["data_range"]["first_event_ms"], candles.report["data_range"]["last_event_ms"]
    days = [r["day"] for r in candles.report["by_day"]]
    assert days == sorted(set(days)) and days[0] == utc_day(first) and days[-1] == utc_day(last)
    assert len(days) == (last // 86_400_000) - (first // 86_400_000) + 1   # every day, quiet ones too
    # each closed day's P&L is the engine's own day_closed figure
    closed_days = {utc_day(e["ts"] - 1): e["data"]["pnl_usd"] for e in candles.of("day_closed")}
    for row in candles.report["by_day"][:-1]:
        assert row["pnl_usd"] == pytest.approx(closed_days[row["day"]], abs=1e-6)


def test_each_trade_belongs_to_the_strategy_whose_order_opened_it(sample):
    intents = sample.of("intent")
    opened_by = set()
    for trade in sample.trades:
        buys = [e for e in intents if e["symbol"] == trade["symbol"] and e["data"]["side"] == "buy"
                and format_utc(e["ts"]).removesuffix(" UTC") == trade["opened_utc"]]
        assert [e["rule"] for e in buys] == [trade["strategy"]], trade
        sells = [e for e in intents if e["symbol"] == trade["symbol"] and e["data"]["side"] == "sell"
                 and format_utc(e["ts"]).removesuffix(" UTC") == trade["closed_utc"]]
        assert [e["rule"] for e in sells] == [trade["closed_by"]], trade
        opened_by.add(trade["strategy"])
    # the script's ETH trade is the operator's; the strategies' trades are theirs
    assert "operator" in opened_by
    assert {r["strategy"] for r in sample.report["by_strategy"] if r["trades"]} == opened_by


# --------------------------------------------------------------------------- the trade list
def _trade_list_matches(run: Replay) -> None:
    assert tuple(run.columns) == TRADE_COLUMNS
    closed = run.of("position_closed")
    assert len(run.trades) == len(closed) == run.report["trades"]
    assert sum(float(t["pnl_usd"]) for t in run.trades) == pytest.approx(run.report["realised_pnl_usd"], abs=0.005)
    for trade, entry in zip(run.trades, closed):
        assert trade["symbol"] == entry["symbol"]
        assert trade["closed_utc"] == format_utc(entry["ts"]).removesuffix(" UTC")
        assert float(trade["pnl_usd"]) == pytest.approx(entry["data"]["pnl_usd"], abs=1e-8)
        assert float(trade["hold_s"]) == pytest.approx(entry["data"]["hold_s"], abs=0.001)
        assert trade["exit_reason"] == entry["data"]["exit_reason"]
        # P&L is what the sells brought in less what the buys cost, fees included
        assert float(trade["sold_usd"]) - float(trade["bought_usd"]) - float(trade["fees_usd"]) == \
            pytest.approx(float(trade["pnl_usd"]), abs=1e-5)


def test_the_trade_list_has_a_row_per_closed_trade_summing_to_the_report(sample):
    _trade_list_matches(sample)
    assert "wrote trade list" in sample.stderr   # stdout stays pure JSON


@needs_data
def test_the_trade_list_over_several_days(candles):
    _trade_list_matches(candles)
    held_over_midnight = [t for t in candles.trades if t["opened_utc"][:10] != t["closed_utc"][:10]]
    assert held_over_midnight, candles.trades


# --------------------------------------------------------------------------- the chart
def test_the_png_chart_is_a_png_image(sample_text):
    from PIL import Image

    result, png = sample_text
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(png) as image:
        image.verify()
        assert image.size[0] >= 800 and image.size[1] >= 500
    assert result.stdout.rstrip().endswith(f"wrote chart {png}")


def test_the_html_page_holds_the_chart_and_tables_and_loads_nothing(sample):
    page = sample.plot.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<svg" in page and "</svg>" in page
    assert not re.search(r"<script|<link|<iframe|<img|@import|url\((?!#)", page, re.I)   # url(#clip) is inside
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    for title in ("By pair", "By strategy", "By day", "Rule firings", "Trades"):
        assert f"<h2>{title}" in page
    for row in sample.report["by_pair"]:
        assert f"<td>{row['symbol']}</td>" in page
    assert page.count("<tr><td>20") >= len(sample.trades)   # a row per trade, opened at a UTC time


@needs_data
def test_the_svg_chart_is_an_svg_document(candles):
    svg = candles.plot.read_text(encoding="utf-8")
    assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg


def test_an_unknown_chart_suffix_is_refused_before_replaying(tmp_path):
    result = cli("replay", "--plot", str(tmp_path / "report.pdf"))
    assert result.returncode == 2
    assert "report.pdf: name a file ending in .html" in result.stderr and ".png" in result.stderr
    assert result.stdout == "" and not (tmp_path / "report.pdf").exists()


# --------------------------------------------------------------------------- the text
def test_the_text_report_fits_80_columns(sample_text):
    text = sample_text[0].stdout
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    for title in ("By pair", "By strategy", "By day"):
        assert f"\n{title}" in text


@needs_data
def test_a_long_table_is_cut_with_the_count_of_the_rest(candles):
    text = format_report(candles.report)
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    days = candles.report["by_day"]
    assert len(days) > TABLE_ROWS["day"]
    day_lines = re.findall(r"^  (\d{4}-\d\d-\d\d) ", text, re.M)
    assert day_lines == [r["day"] for r in days[:TABLE_ROWS["day"]]]
    assert f"  ... and {len(days) - TABLE_ROWS['day']:,} more days (all in --json" in text
    total = re.search(r"^By day.*?^  total +(.*)$", text, re.M | re.S).group(1).split()
    assert total[0] == f"{candles.report['trades']:,}"   # the total counts every day, shown or not


def test_a_replay_without_trades_has_no_win_rate(tmp_path):
    config = config_copy(tmp_path, strategies={})   # every strategy switched off
    result = cli("replay", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["trades"] == 0 and report["win_rate_pct"] is None
    assert all(r["win_rate_pct"] is None for key in ("by_pair", "by_strategy", "by_day") for r in report[key])
    text = format_report(report)
    assert re.search(r"^  trades {10}0 closed, win rate n/a$", text, re.M), text


# --------------------------------------------------------------------------- bad input
def _garbage_inputs(folder: Path) -> dict[str, Path]:
    text = gzip.decompress(sample_paths()[0].read_bytes()).splitlines(keepends=True)
    files = {
        "empty file": folder / "empty.gz",
        "not gzip inside": folder / "capture.gz",
        "random bytes": folder / "noise.bin",
        "gzip of garbage": folder / "garbage.json.gz",
        "capture lines that are all broken": folder / "broken.txt",
    }
    files["empty file"].write_bytes(b"")
    files["not gzip inside"].write_bytes(b"hello, this is not a capture\n" * 3)
    files["random bytes"].write_bytes(bytes((i * 7919 + 13) % 256 for i in range(4096)))
    files["gzip of garbage"].write_bytes(gzip.compress(b"{{{ nothing here"))
    files["capture lines that are all broken"].write_bytes(b"".join(line[:40] + b"\n" for line in text[:50]))
    return files


@pytest.mark.parametrize("kind", ["empty file", "not gzip inside", "random bytes", "gzip of garbage",
                                  "capture lines that are all broken"])
def test_input_without_a_usable_event_is_an_error(tmp_path, kind):
    path = _garbage_inputs(tmp_path)[kind]
    result = cli("replay", str(path))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"genesis: no usable events in {path.name}; nothing was run" in result.stderr
    assert f"{path.name}:1: " in result.stderr   # the problem is named, file:line
    assert "P&L" not in result.stdout and "internal error" not in result.stderr


def test_a_file_that_is_not_a_regular_file_is_named(tmp_path):
    result = cli("replay", os.devnull)
    assert result.returncode == 2
    assert f"{os.devnull}: not a regular file" in result.stderr


def test_problem_lines_past_twenty_end_with_the_count_of_the_rest(tmp_path):
    lines = gzip.decompress(sample_paths()[0].read_bytes()).splitlines(keepends=True)[:400]
    stamp = lines[-1].split(b" ", 1)[0]
    bad = [stamp + b' {"stream": broken ' + str(i).encode() + b"\n" for i in range(35)]
    capture = tmp_path / "btcusdt_broken.txt"
    capture.write_bytes(b"".join(lines[:200] + bad + lines[200:]))
    result = cli("replay", str(capture), "--json")
    assert result.returncode == 0, result.stderr
    feed = json.loads(result.stdout)["feed"]
    problems = feed["malformed"] + feed["out_of_order"]
    assert problems > 20
    shown = [line for line in result.stderr.splitlines() if line.startswith(f"{capture.name}:")]
    assert len(shown) == 20
    assert f"... and {problems - 20:,} more" in result.stderr.splitlines()
