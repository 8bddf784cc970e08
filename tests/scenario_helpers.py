"""Shared helpers for end-to-end scenarios on the real Binance 1-minute candles in
../shared/data: copies of the shipped configuration, prefixes of the candle files,
scripted operator commands, the real CLI as a subprocess, and the SQLite journal.

Candle events are timed at the candle close (open + 1 minute). A script's `after` is
event time since the first event of the feed, and a command applies right after the
first input event at or past that offset (for two files at the same minute: after the
BTC candle, which comes first in file order)."""
from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
import yaml

from genesis.engine.feeds import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
DATA = shared_data_dir()
CANDLES = DATA / "binance_spot_ohlcv" if DATA is not None else None
SYMBOLS = {"BTCUSDT": "BTC_USDT-1m.json.gz", "ETHUSDT": "ETH_USDT-1m.json.gz"}
MINUTE = 60_000
DAY = 86_400_000

needs_data = pytest.mark.skipif(
    CANDLES is None or not all((CANDLES / name).is_file() for name in SYMBOLS.values()),
    reason="real candles ../shared/data/binance_spot_ohlcv/{BTC,ETH}_USDT-1m.json.gz not present (CI has them)")


# --------------------------------------------------------------------------- time
def at(text: str) -> datetime:
    """'2021-04-26 00:05' (UTC) -> datetime."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def ms(when: datetime | str) -> int:
    if isinstance(when, str):
        when = at(when)
    return int(when.timestamp() * 1000)


def utc(stamp: int) -> str:
    """Event time (ms) -> 'YYYY-MM-DD HH:MM' (UTC)."""
    return datetime.fromtimestamp(stamp / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- candles
@cache
def candle_rows(symbol: str) -> tuple:
    """The file's rows [open_ms, open, high, low, close, volume], as stored."""
    return tuple(json.loads(gzip.decompress((CANDLES / SYMBOLS[symbol]).read_bytes())))


@cache
def closes(symbol: str) -> dict[int, float]:
    """{candle event time (its close, ms): close price}."""
    return {row[0] + MINUTE: row[4] for row in candle_rows(symbol)}


def feed(tmp: Path, symbols: tuple = ("BTCUSDT",), until: str | None = None) -> list[Path]:
    """The real candle files of `symbols` (BTC first), or when `until` is given, copies
    holding only their rows whose candle closes at or before `until` (a prefix of the real
    data, same file names, so that a replay needs to read only the days a scenario uses)."""
    files = []
    for symbol in sorted(symbols):  # BTCUSDT before ETHUSDT: file order breaks time ties
        if until is None:
            files.append(CANDLES / SYMBOLS[symbol])
            continue
        out = tmp / SYMBOLS[symbol]
        rows = [row for row in candle_rows(symbol) if row[0] + MINUTE <= ms(until)]
        out.write_bytes(gzip.compress(json.dumps(rows).encode(), mtime=0))
        files.append(out)
    return files


def first_event(files: list[Path]) -> int:
    """Event time of a feed's first event: the earliest first close of its files."""
    return min(json.loads(gzip.decompress(f.read_bytes()))[0][0] + MINUTE for f in files)


# --------------------------------------------------------------------------- configuration
def edited_copy(tmp: Path, edits: dict | None = None) -> Path:
    """Copy the shipped configuration into tmp/config and make exact text edits
    ({file: {old text: new text}}); each old text must be there."""
    root = tmp / "config"
    root.mkdir()
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("rules", "tiers"):
        shutil.copytree(REPO / name, root / name)
    for name, changes in (edits or {}).items():
        text = (root / name).read_text()
        for old, new in changes.items():
            assert old in text, f"{name}: {old!r}"
            text = text.replace(old, new)
        (root / name).write_text(text)
    return root


def config_copy(tmp: Path, equity: float | None = None, tier_edits: dict | None = None,
                strategies: dict | None = None) -> Path:
    """Copy the shipped configuration into tmp/config; set the paper starting equity and
    edit tier files ({tier: {section: {key: value}}}). Every strategy instance is switched
    off (enabled: false) except those named in `strategies` ({instance id: {param: value}}),
    which are switched on with those parameters changed."""
    root = edited_copy(tmp)
    if equity is not None:
        path = root / "genesis.yaml"
        path.write_text(path.read_text().replace("starting_equity_usd: 1000", f"starting_equity_usd: {equity}"))
        assert yaml.safe_load(path.read_text())["paper"]["starting_equity_usd"] == equity
    path = root / "strategies.yaml"
    data = yaml.safe_load(path.read_text())
    for inst in data["strategies"]:
        wanted = (strategies or {}).get(inst["id"])
        inst["enabled"] = wanted is not None
        if wanted:
            inst["params"].update(wanted)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for tier, sections in (tier_edits or {}).items():
        path = root / "tiers" / f"{tier}.yaml"
        data = yaml.safe_load(path.read_text())
        for section, values in sections.items():
            assert set(values) <= set(data[section]), f"{tier}.{section} has no {set(values) - set(data[section])}"
            data[section].update(values)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def tier_file(config: Path, tier: str) -> dict:
    return yaml.safe_load((config / "tiers" / f"{tier}.yaml").read_text())


def rule_def(rule_id: str, root: Path = REPO) -> dict:
    """A rule's definition from the rule books under root/rules."""
    for path in sorted((root / "rules").glob("*.yaml")):
        for rule in yaml.safe_load(path.read_text()).get("rules", []):
            if rule["id"] == rule_id:
                return rule
    raise KeyError(rule_id)


# --------------------------------------------------------------------------- commands
def command(first: int, when: str, kind: str, **payload) -> dict:
    """A script command applied at the event time `when` (UTC minute) of a feed whose
    first event is `first` (ms)."""
    offset = ms(when) - first
    assert offset >= 0 and offset % 1000 == 0
    return {"after": f"{offset // 1000}s", "kind": kind, **payload}


def order(first: int, when: str, side: str, symbol: str, usd: float, reason: str = "") -> dict:
    cmd = command(first, when, "order", side=side, symbol=symbol, notional_usd=usd)
    if reason:
        cmd["reason"] = reason
    return cmd


# --------------------------------------------------------------------------- running
class Run:
    """One replay through the CLI: its JSON report and its journal (the only run in the db)."""

    def __init__(self, report: dict, db: Path, files: list[Path], script: list[dict]):
        self.report, self.db, self.files, self.script = report, db, files, script
        self.config: Path | None = None
        con = sqlite3.connect(db)
        try:
            rows = con.execute("SELECT seq, ts, kind, rule, symbol, data FROM entries ORDER BY run_id, seq").fetchall()
        finally:
            con.close()
        self.entries = [{"seq": s, "ts": t, "kind": k, "rule": r, "symbol": sym, "data": json.loads(d)}
                        for s, t, k, r, sym, d in rows]
        self.ops = self.of("operator")
        assert [o["rule"] for o in self.ops] == [c["kind"] for c in script], "each command is journaled once, in order"

    def of(self, kind: str, rule: str | None = None, at: int | None = None) -> list[dict]:
        """Entries of a kind (and rule, and event time), in journal order."""
        return [e for e in self.entries
                if e["kind"] == kind and (rule is None or e["rule"] == rule) and (at is None or e["ts"] == at)]

    def actions(self, rule: str, at: int | None = None) -> list[dict]:
        return [e["data"] for e in self.of("action", rule, at)]

    def size_slots(self, before_seq: int) -> dict[str, float]:
        """The size multipliers in force just before journal entry `before_seq`, rebuilt
        from the journal's scale_size actions (a factor of 1.0 removes a slot)."""
        slots: dict[str, float] = {}
        for e in self.entries:
            if e["seq"] >= before_seq:
                break
            if e["kind"] == "action" and e["data"].get("action") == "scale_size":
                slots[e["data"]["slot"]] = e["data"]["factor"]
        return {slot: f for slot, f in slots.items() if f != 1.0}


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "cli.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def replay(tmp: Path, tier: str, config: Path, files: list[Path], script: list[dict]) -> Run:
    """`genesis replay FILES --tier T --config C --commands SCRIPT --db sqlite:///... --json`."""
    db = tmp / "journal.db"
    script = sorted(script, key=lambda c: int(c["after"][:-1]))  # the order the engine applies them in
    path = tmp / "commands.yaml"
    path.write_text(yaml.safe_dump({"commands": script}, sort_keys=False))
    out = cli("replay", *[str(f) for f in files], "--tier", tier, "--config", str(config),
              "--commands", str(path), "--db", f"sqlite:///{db}", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    run = Run(json.loads(out.stdout), db, files, script)
    run.config = config
    return run


def product(values) -> float:
    out = 1.0
    for v in values:
        out *= v
    return out
