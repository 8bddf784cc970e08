"""`genesis replay` on the full real data in ../shared/data (skipped when it is absent;
CI has it): the 11-minute capture of both symbols across both days, and 30 days of
1-minute candles through the 2021-05-19 crash."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.engine.feeds import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()
pytestmark = pytest.mark.skipif(SHARED is None, reason="../shared/data is not beside this checkout")


def _replay(*files: Path) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "replay", "--tier", "sniper", "--config", str(ROOT),
                             "--json", *map(str, files)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_full_capture_of_both_symbols_replays_and_trades():
    raw = SHARED / "binance_spot_ws_raw"
    files = [raw / f"{s}_{d}.gz" for s in ("btcusdt", "ethusdt") for d in ("20240808", "20240809")]
    report = _replay(*files)
    assert report["events"] == 179_318
    assert report["feed"]["malformed"] == 0
    assert report["orders"] >= 2 and report["trades"] >= 1      # the spread strategy traded
    assert report["final_state"] == "ACTIVE"
    assert abs(report["final_equity_usd"] - (report["starting_equity_usd"] + report["pnl_usd"])) < 0.02


def test_thirty_days_of_candles_replay_and_classify_the_crash():
    ohlcv = SHARED / "binance_spot_ohlcv"
    report = _replay(ohlcv / "BTC_USDT-1m.json.gz", ohlcv / "ETH_USDT-1m.json.gz")
    assert report["events"] >= 2 * 42_915
    # the 2021-05-19 crash drives the market-state rules into PANIC and back out
    assert report["rule_firings"].get("market_panic_enter", 0) >= 1
    assert report["rule_firings"].get("market_panic_exit", 0) >= 1
