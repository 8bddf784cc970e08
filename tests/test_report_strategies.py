"""The replay report puts each strategy beside buy-and-hold of its symbols and shows the
execution quality by algorithm, through real `genesis replay` processes on the bundled
capture (with operator orders) and on a day of real candles, Strategist tier.

Expected figures are computed here from the raw input files and from the run's journal
(SQLite): the first and last prices from the files themselves, realised P&L and peak
exposure by walking the journal's orders and fills, execution figures from its
`execution_done` entries; never typed in.
"""
from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest
import yaml
from scenario_helpers import CANDLES, SYMBOLS, config_copy, needs_data
from test_validate_strategy_kinds import available_only

from genesis.engine.feeds import sample_paths
from genesis.engine.report import HOLD_TITLE, QUALITY_TITLE, WIDTH, execution_quality, format_report
from genesis.engine.runrecord import ExecutionDone

ROOT = Path(__file__).resolve().parents[1]
EQUITY = 20_000          # inside the Strategist band: 5% positions of $1,000 are worked by the iceberg
CANDLE_MINUTES = 600     # ten hours of each symbol's candles
SCRIPT = [   # a market buy, an iceberg buy, and a sell of the first
    {"after": "20s", "kind": "order", "side": "buy", "symbol": "ETHUSDT", "notional_usd": 150,
     "reason": "a test entry on the sample"},
    {"after": "60s", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 600,
     "reason": "a test entry on the sample"},
    {"after": "120s", "kind": "order", "side": "sell", "symbol": "ETHUSDT", "notional_usd": 150},
]
OLD_FIELDS = {"side", "algo", "manual", "notional_usd", "planned_slices", "slices", "sent_usd", "filled_usd",
              "arrival_mid", "impact_pct"}   # what execution_done carried before issue 16


class Run:
    """One `genesis replay --json --plot page.html --db ...` on a configuration copy, and its journal."""

    def __init__(self, folder: Path, config: Path, files: list[Path], script: list[dict] | None = None,
                 page: bool = False):
        self.folder, self.files = folder, files
        self.db, self.page = folder / "journal.db", folder / "page.html"
        extra = ["--plot", str(self.page)] if page else []
        if script:
            commands = folder / "commands.yaml"
            commands.write_text(yaml.safe_dump({"commands": script}, sort_keys=False))
            extra += ["--commands", str(commands)]
        result = cli("replay", *map(str, files), "--config", str(config), "--tier", "strategist", *extra,
                     "--json", "--db", f"sqlite:///{self.db}")
        self.report = json.loads(result.stdout)
        con = sqlite3.connect(self.db)
        try:
            self.entries = [{"ts": ts, "kind": kind, "rule": rule, "symbol": symbol, "data": json.loads(data)}
                            for ts, kind, rule, symbol, data in con.execute(
                                "SELECT ts, kind, rule, symbol, data FROM entries ORDER BY run_id, seq")]
        finally:
            con.close()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.entries if e["kind"] == kind]


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python cli.py ARGS` from the repository root: exit 0, never a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("GENESIS_DEBUG", "GENESIS_CONFIG")}
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=env, check=False)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The shipped configuration at $20,000 with every strategy instance on (those of kinds
    no plugin provides left out)."""
    shipped = yaml.safe_load((ROOT / "strategies.yaml").read_text(encoding="utf-8"))["strategies"]
    root = config_copy(tmp_path_factory.mktemp("strategies"), equity=EQUITY,
                       strategies={inst["id"]: {} for inst in shipped})
    return available_only(root)


@pytest.fixture(scope="module")
def sample(tmp_path_factory, config) -> Run:
    return Run(tmp_path_factory.mktemp("sample"), config, sample_paths(), SCRIPT, page=True)


@pytest.fixture(scope="module")
def candles(tmp_path_factory, config) -> Run:
    """Ten hours of real BTC and ETH candles: the mean reversion strategy trades."""
    if CANDLES is None or not all((CANDLES / name).is_file() for name in SYMBOLS.values()):
        pytest.skip("real candles ../shared/data/binance_spot_ohlcv/ are not present (CI has them)")
    folder = tmp_path_factory.mktemp("candles")
    files = []
    for name in SYMBOLS.values():
        rows = json.loads(gzip.decompress((CANDLES / name).read_bytes()))[:CANDLE_MINUTES]
        (folder / name).write_bytes(gzip.compress(json.dumps(rows).encode(), mtime=0))
        files.append(folder / name)
    return Run(folder, config, files)


RUNS = ["sample", pytest.param("candles", marks=needs_data)]


# --------------------------------------------------------------------------- prices from the input itself
def capture_mids(path: Path) -> tuple[str, float, float]:
    """(symbol, first mid, last mid) of the book tickers in a capture file."""
    mids = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            message = json.loads(line.split(" ", 1)[1])
            if message.get("stream", "").endswith("@bookTicker"):
                d = message["data"]
                mids.append((d["s"], (float(d["b"]) + float(d["a"])) / 2))
    return mids[0][0], mids[0][1], mids[-1][1]


def candle_closes(path: Path) -> tuple[str, float, float]:
    """(symbol, first close, last close) of a candle file."""
    rows = json.loads(gzip.decompress(path.read_bytes()))
    symbol = next(s for s, name in SYMBOLS.items() if name == path.name)
    return symbol, rows[0][4], rows[-1][4]


def input_prices(run: Run) -> dict[str, tuple[float, float]]:
    read = candle_closes if run.files[0].name in SYMBOLS.values() else capture_mids
    return {symbol: (first, last) for symbol, first, last in map(read, run.files)}


@pytest.mark.parametrize("which", RUNS)
def test_prices_are_the_first_and_last_price_of_the_input(which, request):
    run = request.getfixturevalue(which)
    expected = input_prices(run)
    prices = run.report["prices"]
    assert set(prices) == set(expected)
    for symbol, (first, last) in expected.items():
        assert prices[symbol]["first_price"] == pytest.approx(first, rel=1e-12)
        assert prices[symbol]["last_price"] == pytest.approx(last, rel=1e-12)
        assert prices[symbol]["change_pct"] == pytest.approx((last / first - 1) * 100, abs=1e-6)


# --------------------------------------------------------------------------- strategies against buy-and-hold
def walk_journal(run: Run) -> tuple[dict, dict, dict]:
    """From the journal alone: per strategy (whose order opened the position), the realised
    P&L of its closed positions, the most it held at once at cost, and the symbols it
    ordered or traded. An order belongs to the strategy it names, else to the latest intent
    for its symbol and side."""
    latest, owner = {}, {}
    opened: dict[str, list] = {}   # symbol -> [strategy, qty, cost] of the open position
    realised: dict[str, float] = {}
    peak: dict[str, float] = {}
    traded: dict[str, set] = {}
    for e in run.entries:
        d = e["data"]
        if e["kind"] == "intent":
            latest[(e["symbol"], d["side"])] = e["rule"]
            traded.setdefault(e["rule"], set()).add(e["symbol"])
        elif e["kind"] == "order":
            owner[d["client_id"]] = d.get("strategy") or latest[(e["symbol"], d["side"])]
        elif e["kind"] == "fill":
            traded.setdefault(owner[d["client_id"]], set()).add(e["symbol"])
            position = opened.get(e["symbol"])
            if d["side"] == "buy":
                position = opened.setdefault(e["symbol"], [owner[d["client_id"]], 0.0, 0.0])
                position[1] += d["qty"]
                position[2] += d["notional_usd"]
            elif position is not None:
                position[2] *= max(position[1] - d["qty"], 0.0) / position[1]
                position[1] -= d["qty"]
            if position is not None:
                held = sum(cost for who, _, cost in opened.values() if who == position[0])
                peak[position[0]] = max(peak.get(position[0], 0.0), held)
        elif e["kind"] == "position_closed":
            who = opened.pop(e["symbol"])[0]
            realised[who] = realised.get(who, 0.0) + d["pnl_usd"]
    return realised, peak, traded


@pytest.mark.parametrize("which", RUNS)
def test_each_strategy_beside_buy_and_hold_agrees_with_journal_and_input(which, request, config):
    run = request.getfixturevalue(which)
    realised, peak, traded = walk_journal(run)
    prices = input_prices(run)
    instances = {i["id"]: i for i in yaml.safe_load((config / "strategies.yaml").read_text())["strategies"]}
    rows = {row["strategy"]: row for row in run.report["vs_buy_and_hold"]}
    tier = run.report["tier"]   # at the end of the run
    unlocked = yaml.safe_load((config / "tiers" / f"{tier}.yaml").read_text())["strategies"]
    running = {sid for sid, inst in instances.items()
               if inst["enabled"] and inst["kind"] in unlocked and tier in (inst.get("tiers") or [tier])}
    assert set(rows) == running | set(traded)   # those running at the end, and those that ordered
    assert any(row["peak_exposure_usd"] > 0 for row in rows.values()), "nothing bought"
    if which == "candles":
        assert any(row["trades"] for row in rows.values()), "no position closed"
    by_strategy = {row["strategy"]: row for row in run.report["by_strategy"]}
    for name, row in rows.items():
        symbols = instances[name]["symbols"] if name in instances else sorted(traded[name])
        assert row["symbols"] == symbols
        assert row["realised_pnl_usd"] == pytest.approx(realised.get(name, 0.0), abs=1e-5)
        assert row["realised_pnl_usd"] == pytest.approx(by_strategy.get(name, {}).get("realised_pnl_usd", 0.0))
        assert row["realised_pnl_pct"] == pytest.approx(realised.get(name, 0.0) / EQUITY * 100, abs=1e-6)
        assert row["peak_exposure_usd"] == pytest.approx(peak.get(name, 0.0), abs=1e-5)
        move = sum((prices[s][1] / prices[s][0] - 1) * 100 for s in symbols) / len(symbols)
        hold = peak.get(name, 0.0) * move / 100
        assert row["hold_move_pct"] == pytest.approx(move, abs=1e-6)
        assert row["hold_pnl_usd"] == pytest.approx(hold, abs=1e-5)
        assert row["hold_pnl_pct"] == pytest.approx(hold / EQUITY * 100, abs=1e-6)
        assert row["vs_hold_usd"] == pytest.approx(realised.get(name, 0.0) - hold, abs=1e-5)


# --------------------------------------------------------------------------- execution quality
def quality_from(entries: list[dict]) -> dict:
    """The execution quality figures of `execution_done` entries, computed here."""
    filled = sum(d["filled_usd"] for d in entries)
    notional = sum(d["notional_usd"] for d in entries)
    fills = [d for d in entries if d["filled_usd"] > 0]
    weight = sum(d["filled_usd"] for d in fills)
    return {"executions": len(entries), "slices": sum(d["slices"] for d in entries),
            "planned_slices": sum(d["planned_slices"] for d in entries),
            "filled_usd": filled, "notional_usd": notional, "fill_ratio_pct": filled / notional * 100,
            "avg_slippage_bps": sum(d["slippage_bps"] * d["filled_usd"] for d in fills) / weight if fills else None,
            "worst_slippage_bps": max(d["slippage_bps"] for d in fills) if fills else None,
            "avg_impact_pct": sum(d["impact_pct"] * d["filled_usd"] for d in fills) / weight if fills else None,
            "avg_duration_s": sum(d["duration_ms"] for d in entries) / len(entries) / 1000,
            "aborted": sum(d["end"] == "aborted" for d in entries)}


def assert_quality(row: dict, expected: dict) -> None:
    for key, value in expected.items():
        if value is None:
            assert row[key] is None, key
        else:
            assert row[key] == pytest.approx(value, rel=1e-6, abs=1e-3 if key == "avg_duration_s" else 1e-4), key


@pytest.mark.parametrize("which", RUNS)
def test_execution_quality_agrees_with_the_execution_done_entries(which, request):
    run = request.getfixturevalue(which)
    done = [e["data"] for e in run.of("execution_done")]
    assert done, "no execution finished"
    quality = run.report["execution_quality"]
    algos = sorted({d["algo"] for d in done})
    assert [row["algo"] for row in quality["by_algo"]] == algos
    for row in quality["by_algo"]:
        assert_quality(row, quality_from([d for d in done if d["algo"] == row["algo"]]))
    assert_quality(quality["total"], quality_from(done))
    assert quality["total"]["executions"] == len(run.of("execution_done"))


def test_execution_quality_reads_entries_without_the_new_fields(sample):
    """Journals written before execution_done carried slippage, duration and end: those
    figures are unknown (None), the others as before."""
    entries = sample.of("execution_done")
    old = [ExecutionDone(e["ts"], e["symbol"], {k: v for k, v in e["data"].items() if k in OLD_FIELDS})
           for e in entries]
    total = execution_quality(old)["total"]
    assert total["avg_slippage_bps"] is None and total["worst_slippage_bps"] is None
    assert total["avg_duration_s"] is None and total["aborted"] is None
    assert total["executions"] == len(entries)
    assert total["filled_usd"] == pytest.approx(sum(e["data"]["filled_usd"] for e in entries), abs=1e-5)
    fills = [e["data"] for e in entries if e["data"]["filled_usd"] > 0]
    impact = sum(d["impact_pct"] * d["filled_usd"] for d in fills) / sum(d["filled_usd"] for d in fills)
    assert total["avg_impact_pct"] == pytest.approx(impact, abs=1e-6)


# --------------------------------------------------------------------------- text and page
def test_text_report_shows_both_tables_within_80_columns(sample):
    lines = format_report(sample.report).splitlines()   # what `genesis replay` prints without --json
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    hold = lines[lines.index(HOLD_TITLE) + 1:]
    hold = hold[:hold.index("")] if "" in hold else hold
    assert hold[0].split() == ["strategy", "realised", "%", "exposure", "hold", "%", "vs", "hold"]
    assert [line.split()[0] for line in hold[1:]] == [r["strategy"] for r in sample.report["vs_buy_and_hold"]]
    quality = lines[lines.index(QUALITY_TITLE) + 1:]
    quality = quality[:quality.index("")] if "" in quality else quality
    assert quality[0].split() == ["algo", "execs", "slices", "filled", "fill", "slip", "worst", "impact", "time",
                                  "aborts"]
    rows = sample.report["execution_quality"]["by_algo"]
    assert [line.split()[0] for line in quality[1:]] == [r["algo"] for r in rows] + (["total"] if len(rows) > 1
                                                                                     else [])
    for line, row in zip(quality[1:], rows):
        assert line.split()[1:3] == [f"{row['executions']:,}", f"{row['slices']:,}"]
    prices = next(line for line in lines if line.startswith("  prices"))
    assert "BTCUSDT $61,837.63 -> " in prices   # the capture's first BTCUSDT mid, 61837.635


def test_html_page_has_both_tables(sample):
    page = sample.page.read_text(encoding="utf-8")
    assert f"<h2>{escape(HOLD_TITLE)}</h2>" in page and f"<h2>{escape(QUALITY_TITLE)}</h2>" in page
    hold = page[page.index(escape(HOLD_TITLE)):page.index(escape(QUALITY_TITLE))]
    for row in sample.report["vs_buy_and_hold"]:
        assert f"<td>{escape(row['strategy'])}</td>" in hold
    assert "<th>move</th>" in hold
    quality = page[page.index(escape(QUALITY_TITLE)):page.index("<h2>Rule firings</h2>")]
    for row in sample.report["execution_quality"]["by_algo"]:
        assert f"<td>{row['algo']}</td><td>{row['executions']:,}</td><td>{row['slices']:,}</td>" in quality
