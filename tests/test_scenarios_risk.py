"""End-to-end risk scenarios on 30 days of real Binance 1-minute candles (2021-04-20 to
2021-05-20), through the real CLI: `genesis replay --commands` with scripted operator
orders, a copy of the shipped configuration, and the journal in SQLite.

The candles are in ../shared/data (CI has them); every test is skipped without them.
Candle events are timed at the candle close; a manual order fills against the close.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from genesis.engine.feeds import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
DATA = shared_data_dir()
CANDLES = DATA / "binance_spot_ohlcv" if DATA is not None else None
BTC = CANDLES / "BTC_USDT-1m.json.gz" if CANDLES is not None else None

needs_data = pytest.mark.skipif(
    BTC is None or not BTC.is_file(),
    reason="real candles ../shared/data/binance_spot_ohlcv/BTC_USDT-1m.json.gz not present (CI has them)")

# The first candle opens 2021-04-20 20:42 UTC; its event is timed at its close, 20:43.
FIRST_EVENT = datetime(2021, 4, 20, 20, 43, tzinfo=timezone.utc)
MS_PER_DAY = 86_400_000


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def after(at: datetime) -> str:
    """The script's `after` for an event time (seconds since the first event)."""
    return f"{int((at - FIRST_EVENT).total_seconds())}s"


def utc(text: str) -> str:
    return datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- helpers
def config_copy(tmp: Path, equity: float | None = None, tier_edits: dict | None = None) -> Path:
    """Copy the shipped configuration into tmp/config; optionally set the paper starting
    equity and edit tier files ({tier: {section: {key: value}}})."""
    root = tmp / "config"
    root.mkdir()
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("rules", "tiers"):
        shutil.copytree(REPO / name, root / name)
    if equity is not None:
        path = root / "genesis.yaml"
        path.write_text(path.read_text().replace("starting_equity_usd: 1000", f"starting_equity_usd: {equity}"))
        assert yaml.safe_load(path.read_text())["paper"]["starting_equity_usd"] == equity
    for tier, sections in (tier_edits or {}).items():
        path = root / "tiers" / f"{tier}.yaml"
        data = yaml.safe_load(path.read_text())
        for section, values in sections.items():
            data[section].update(values)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def ticker_file(candles: Path, out: Path) -> Path:
    """A Binance websocket capture (`<receive_ns> <json>` bookTicker lines) quoting each
    candle's close at its close time (bid = close, ask = close + 0.01, 1,000 coins each
    side), so the paper exchange has a book to fill manual orders against.

    The engine gives candle-only feeds no book (a manual order is refused: "no price for
    BTCUSDT yet"); this file supplies the candle close as the book and nothing else."""
    import gzip  # noqa: PLC0415

    rows = json.loads(gzip.decompress(candles.read_bytes()))
    symbol = candles.name.split("-", 1)[0].replace("_", "").upper()
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        for u, (open_ms, _o, _h, _l, close, _v) in enumerate(rows, 1):
            data = {"u": u, "s": symbol, "b": f"{close:.2f}", "B": "1000", "a": f"{close + 0.01:.2f}", "A": "1000"}
            fh.write(f"{(open_ms + 60_000) * 1_000_000} "
                     f"{json.dumps({'stream': symbol.lower() + '@bookTicker', 'data': data})}\n")
    return out


@pytest.fixture(scope="module")
def btc_feed(tmp_path_factory) -> list[Path]:
    """The BTC candles plus their closes as a bookTicker capture (the book)."""
    out = tmp_path_factory.mktemp("feed") / "btcusdt_closes.gz"
    return [ticker_file(BTC, out), BTC]


def write_script(tmp: Path, commands: list[dict]) -> Path:
    path = tmp / "commands.yaml"
    path.write_text(yaml.safe_dump({"commands": commands}, sort_keys=False))
    return path


def replay(tmp: Path, tier: str, config: Path, commands: list[dict], files=None) -> tuple[dict, Path]:
    """Run `genesis replay --json` as a subprocess; return (report, journal db path)."""
    db = tmp / "j.db"
    script = write_script(tmp, commands)
    cmd = [sys.executable, "cli.py", "replay", *[str(f) for f in (files or [BTC])], "--tier", tier,
           "--config", str(config), "--commands", str(script), "--db", f"sqlite:///{db}", "--json"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout), db


def journal(db: Path, kind: str | None = None, rule: str | None = None) -> list[dict]:
    """Journal entries of the (only) run, in order, with data parsed."""
    con = sqlite3.connect(db)
    try:
        sql, args = "SELECT seq, ts, kind, rule, symbol, data FROM entries WHERE 1=1", []
        if kind is not None:
            sql, args = sql + " AND kind = ?", [*args, kind]
        if rule is not None:
            sql, args = sql + " AND rule = ?", [*args, rule]
        rows = con.execute(sql + " ORDER BY run_id, seq", args).fetchall()
    finally:
        con.close()
    return [{"seq": s, "ts": t, "kind": k, "rule": r, "symbol": sym, "data": json.loads(d)}
            for s, t, k, r, sym, d in rows]
