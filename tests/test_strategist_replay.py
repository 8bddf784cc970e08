"""`genesis replay --tier strategist` of the full real data in ../shared/data (skipped when
it is absent; CI has it): the 30 days of BTC and ETH 1-minute candles and the 11-minute
tick capture of both symbols, with every shipped strategy instance on. Every strategy kind
the Strategist unlocks sends intents and gets fills, and the report's `vs_buy_and_hold`
has a row per strategy whose buy-and-hold figures agree with the first and last prices
read here from the input files themselves.

The configuration copy differs from the shipped one in two places only:
- starting equity $20,000, inside the Strategist's capital band (from $10,000; below it
  for 24 h demotes to Hunter);
- the Strategist's `demotion.max_same_direction_pct` at 100 (shipped: 80), which switches
  off `demote_same_direction`. Its `same_direction_pct` is the share of open positions
  whose 15-minute price change has the same sign; BTC and ETH mostly move together, and
  the Strategist's strategies hold both (a pair's legs, ETH inventory of the market maker,
  BTC of the mean reversion), so with the shipped 80% the rule demotes the run to Hunter
  soon after the first two positions (6 minutes into the capture, 25 into the candles);
  Hunter runs neither statistical arbitrage, liquidity provision nor the Strategist-only
  instances, and on the capture no mean_reversion instance has traded by then.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import sqlite3
import subprocess
import sys
from bisect import bisect_right
from collections import Counter
from pathlib import Path

import pytest
import yaml
from scenario_helpers import config_copy

from genesis.durations import parse_duration
from genesis.engine.feeds import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()
EQUITY = 20_000
CANDLE_FILES = {"BTCUSDT": "BTC_USDT-1m.json.gz", "ETHUSDT": "ETH_USDT-1m.json.gz"}
CAPTURE_FILES = [f"{s}_{d}.gz" for s in ("btcusdt", "ethusdt") for d in ("20240808", "20240809")]


def _candle_paths() -> list[Path]:
    return [SHARED / "binance_spot_ohlcv" / name for name in CANDLE_FILES.values()] if SHARED else []


def _capture_paths() -> list[Path]:
    return [SHARED / "binance_spot_ws_raw" / name for name in CAPTURE_FILES] if SHARED else []


DATASETS = {"candles": _candle_paths, "capture": _capture_paths}
pytestmark = pytest.mark.skipif(
    SHARED is None or not all(p.is_file() for paths in DATASETS.values() for p in paths()),
    reason="real data ../shared/data/binance_spot_ohlcv/{BTC,ETH}_USDT-1m.json.gz and "
           "binance_spot_ws_raw/{btc,eth}usdt_2024080{8,9}.gz not present (CI has them)")


# --------------------------------------------------------------------------- prices from the input itself
def candle_prices(paths: list[Path]) -> dict[str, tuple[float, float]]:
    """{symbol: (first close, last close)} of candle files."""
    out = {}
    for path in paths:
        rows = json.loads(gzip.decompress(path.read_bytes()))
        symbol = next(s for s, name in CANDLE_FILES.items() if name == path.name)
        out[symbol] = (rows[0][4], rows[-1][4])
    return out


def capture_prices(paths: list[Path]) -> dict[str, tuple[float, float]]:
    """{symbol: (first mid, last mid)} of the book tickers of capture files, in file order
    (each line: a receive time, a space, the combined-stream JSON)."""
    out: dict[str, list[float]] = {}
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if "@bookTicker" not in line:
                    continue
                d = json.loads(line.split(" ", 1)[1])["data"]
                mid = (float(d["b"]) + float(d["a"])) * 0.5
                out.setdefault(d["s"], [mid, mid])[1] = mid
    return {symbol: (first, last) for symbol, (first, last) in out.items()}


PRICES = {"candles": candle_prices, "capture": capture_prices}


# --------------------------------------------------------------------------- the runs
class StrategistRun:
    """One `genesis replay --tier strategist --json --db ...`: its report and, per strategy
    instance, its intents and fills counted from the journal (a fill belongs to the
    strategy its order names)."""

    def __init__(self, folder: Path, config: Path, files: list[Path]):
        db = folder / "journal.db"
        env = {k: v for k, v in os.environ.items() if k not in ("GENESIS_DEBUG", "GENESIS_CONFIG")}
        result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "replay", *map(str, files), "--tier",
                                 "strategist", "--config", str(config), "--json", "--db", f"sqlite:///{db}"],
                                capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, check=False)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert result.returncode == 0, result.stderr[-3000:]
        self.report = json.loads(result.stdout)
        con = sqlite3.connect(db)
        try:
            self.intent_rows = [(rule, ts, symbol, json.loads(data)["side"]) for rule, ts, symbol, data in con.execute(
                "SELECT rule, ts, symbol, data FROM entries WHERE kind = 'intent' ORDER BY run_id, seq")]
            self.intents = Counter(row[0] for row in self.intent_rows)
            owner = {}
            for (data,) in con.execute("SELECT data FROM entries WHERE kind = 'order'"):
                order = json.loads(data)
                owner[order["client_id"]] = order.get("strategy")
            self.fills = Counter(owner.get(json.loads(data)["client_id"])
                                 for (data,) in con.execute("SELECT data FROM entries WHERE kind = 'fill'"))
        finally:
            con.close()


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The shipped configuration, every instance on, at $20,000 and without the
    same-direction demotion (see the module docstring)."""
    shipped = yaml.safe_load((ROOT / "strategies.yaml").read_text(encoding="utf-8"))["strategies"]
    return config_copy(tmp_path_factory.mktemp("strategist"), equity=EQUITY,
                       tier_edits={"strategist": {"demotion": {"max_same_direction_pct": 100}}},
                       strategies={inst["id"]: {} for inst in shipped})


def _replay(name: str, tmp_path_factory, config: Path) -> tuple[str, list[Path], StrategistRun]:
    files = DATASETS[name]()
    return name, files, StrategistRun(tmp_path_factory.mktemp(name), config, files)


@pytest.fixture(scope="module")
def candles(tmp_path_factory, config):
    return _replay("candles", tmp_path_factory, config)


@pytest.fixture(scope="module")
def capture(tmp_path_factory, config):
    return _replay("capture", tmp_path_factory, config)


@pytest.fixture(params=list(DATASETS))
def run(request):
    return request.getfixturevalue(request.param)


def instances(config: Path) -> dict[str, dict]:
    """The enabled strategy instances the Strategist runs, by id."""
    unlocked = yaml.safe_load((config / "tiers" / "strategist.yaml").read_text(encoding="utf-8"))["strategies"]
    listed = yaml.safe_load((config / "strategies.yaml").read_text(encoding="utf-8"))["strategies"]
    return {inst["id"]: inst for inst in listed if inst.get("enabled", True) and inst["kind"] in unlocked
            and "strategist" in (inst.get("tiers") or ["strategist"])}


# --------------------------------------------------------------------------- every kind trades
def test_every_kind_the_strategist_unlocks_sends_intents_and_gets_fills(run, config):
    name, _, result = run
    assert result.report["tier"] == "strategist", "the run left the Strategist tier"
    assert result.report["starting_equity_usd"] == EQUITY
    unlocked = yaml.safe_load((config / "tiers" / "strategist.yaml").read_text(encoding="utf-8"))["strategies"]
    assert len(unlocked) == 4
    running = instances(config)
    for kind in unlocked:
        ids = [sid for sid, inst in running.items() if inst["kind"] == kind]
        traded = [sid for sid in ids if result.intents[sid] > 0 and result.fills[sid] > 0]
        assert traded, (f"{name}: no {kind} instance ({', '.join(ids)}) both sent intents and got fills; "
                        f"intents {dict(result.intents)}, fills {dict(result.fills)}")


# --------------------------------------------------------------------------- against buy-and-hold
def test_each_strategy_has_a_buy_and_hold_row_agreeing_with_the_input_prices(run, config):
    name, files, result = run
    prices = PRICES[name](files)
    assert set(prices) == {"BTCUSDT", "ETHUSDT"}
    for symbol, (first, last) in prices.items():
        reported = result.report["prices"][symbol]
        assert (reported["first_price"], reported["last_price"]) == pytest.approx((first, last), rel=1e-12)
    rows = {row["strategy"]: row for row in result.report["vs_buy_and_hold"]}
    running = instances(config)
    assert set(running) <= set(rows), f"{name}: strategies without a row: {set(running) - set(rows)}"
    for sid, inst in running.items():
        assert rows[sid]["symbols"] == inst["symbols"]
    for sid, row in rows.items():
        symbols = row["symbols"]
        move = sum((prices[s][1] / prices[s][0] - 1) * 100 for s in symbols) / len(symbols)
        hold = row["peak_exposure_usd"] * move / 100
        assert row["hold_move_pct"] == pytest.approx(move, abs=1e-6), sid
        assert row["hold_pnl_usd"] == pytest.approx(hold, abs=1e-5), sid
        assert row["hold_pnl_pct"] == pytest.approx(hold / EQUITY * 100, abs=1e-6), sid
        assert row["vs_hold_usd"] == pytest.approx(row["realised_pnl_usd"] - hold, abs=1e-5), sid
        assert row["realised_pnl_pct"] == pytest.approx(row["realised_pnl_usd"] / EQUITY * 100, abs=1e-6), sid
    # every traded kind bought something, so its hold is a real comparison
    for kind in {inst["kind"] for inst in running.values()}:
        assert any(rows[sid]["peak_exposure_usd"] > 0 for sid, inst in running.items() if inst["kind"] == kind), kind


# --------------------------------------------------------------------------- spread arbitrage on candles
def test_spread_arbitrage_enters_on_candles_where_the_spread_of_both_closes_is_beyond_entry_z(candles, config):
    """The candle-scale spread instance's entries, recomputed here from the two candle
    files: at each entry the log spread of both legs' closes of that minute lies at least
    entry_z deviations and min_spread_bps from the mean of the samples (one per minute both
    legs closed) in the lookback before it, and the leg bought is the cheap one."""
    _, files, result = candles
    sid, inst = next((sid, inst) for sid, inst in instances(config).items()
                     if inst["kind"] == "spread_arbitrage" and result.intents[sid])
    p, (leg_a, leg_b) = inst["params"], inst["symbols"]
    lookback_ms = parse_duration(p["lookback"]) * 1000
    close = {symbol: {row[0] + 60_000: row[4] for row in json.loads(gzip.decompress(path.read_bytes()))}
             for symbol, path in zip(CANDLE_FILES, files)}
    times = sorted(set(close[leg_a]) & set(close[leg_b]))
    spread = {ts: math.log(close[leg_a][ts]) - math.log(close[leg_b][ts]) for ts in times}
    entries = [(ts, symbol) for rule, ts, symbol, side in result.intent_rows if rule == sid and side == "buy"]
    assert len(entries) >= 5
    for ts, symbol in entries:
        window = [spread[t] for t in times[bisect_right(times, ts - lookback_ms):bisect_right(times, ts)]]
        mean = sum(window) / len(window)
        std = math.sqrt(sum((s - mean) ** 2 for s in window) / len(window))
        z = (spread[ts] - mean) / std
        assert abs(z) >= p["entry_z"] - 1e-6, (ts, z)
        assert abs(spread[ts] - mean) * 1e4 >= p["min_spread_bps"] - 1e-6, ts
        assert symbol == (leg_a if z < 0 else leg_b), (ts, z, symbol)
