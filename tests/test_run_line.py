"""`genesis run`'s live line through real processes: on an 80-column pseudo-terminal
(python's pty) it is redrawn in place within the width, with event time and progress
through the feed, and says what a paced run waits for; without a terminal it is a plain
line at most every --status-every, with no control characters; the closing summary
lists open positions and waiting `genesis set` edits and says whether the run finished
or stopped. Feed.progress() on the bundled sample and on a candle file."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scenario_helpers import edited_copy

from genesis.durations import parse_duration
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.journal import Journal

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]
COLUMNS = 80
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_CONTROL = re.compile(r"\r|\n|\x1b\[[0-9;?]*[A-Za-z]")   # line ends and cursor moves, erases
UTC_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
T0 = 1_723_161_240_000   # 2024-08-08 23:54:00 UTC: candle open times of the small candle feed


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The shipped configuration without the metrics endpoint (its port may be taken by
    another test) and without the health probe."""
    return edited_copy(tmp_path_factory.mktemp("runline"), {"genesis.yaml": {
        "metrics_endpoint: {port: 9464}": "metrics_endpoint: {port: null}",
        "health_probe: {interval: 15s}": "health_probe: {interval: null}"}})


@pytest.fixture(scope="module")
def candles(tmp_path_factory) -> Path:
    """Four one-minute BTCUSDT candles: a paced run waits a minute of event time between them."""
    path = tmp_path_factory.mktemp("candles") / "BTC_USDT-1m.json"
    rows = [[T0 + i * 60_000, 60_000.0 + i, 60_010.0 + i, 59_990.0 + i, 60_005.0 + i, 1.5] for i in range(4)]
    path.write_text(json.dumps(rows))
    return path


def _env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": str(COLUMNS), "LINES": "24", "TERM": "xterm-256color"}
    env.pop("GENESIS_DEBUG", None)
    return env


def run_on_terminal(args: list, cwd: Path, interrupt_when: bytes | None = None, timeout: float = 60) -> tuple[int, str]:
    """`genesis ARGS` on an 80x24 pseudo-terminal; with `interrupt_when`, Ctrl-C (SIGINT)
    once that text has been drawn. Returns (exit code, everything written)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    proc = subprocess.Popen([*CLI, *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=_env(),
                            start_new_session=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:   # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if interrupt_when is not None and interrupt_when in out:
                proc.send_signal(signal.SIGINT)
                interrupt_when = None
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode()
    assert "Traceback" not in text, text
    return code, text


def drawn_lines(text: str) -> list[str]:
    """What each write put on one terminal line: the text between line ends, cursor moves
    and erases, colours left out."""
    return [part for part in _CONTROL.split(_SGR.sub("", text)) if part.strip()]


def holdings(db: Path) -> dict:
    """Open positions by symbol from the journal's fills (fees in coins included)."""
    con = sqlite3.connect(db)
    try:
        fills = con.execute("SELECT symbol, data FROM entries WHERE kind = 'fill'").fetchall()
    finally:
        con.close()
    held: dict = {}
    for symbol, data in fills:
        f = json.loads(data)
        qty = f["qty"] - f.get("fee_base", 0.0) if f["side"] == "buy" else -f["qty"]
        held[symbol] = held.get(symbol, 0.0) + qty
    return {s: q for s, q in held.items() if q > 1e-9}


def queue_set(db: Path) -> None:
    """Queue `genesis set tier.limits.daily_loss_usd 20` in the journal, as the command
    does when no engine runs: the next `genesis run` applies it as it reaches the live point."""
    journal = Journal(f"sqlite:///{db}")
    try:
        journal.queue_command("set", {"key": "tier.limits.daily_loss_usd", "value": "20"})
    finally:
        journal.close()


def set_due(db: Path) -> str:
    """When the run's `genesis set` edit falls due: where it was applied plus
    genesis.yaml safety.risk_edit_delay (1h)."""
    con = sqlite3.connect(db)
    try:
        (at,) = con.execute("SELECT ts FROM entries WHERE kind = 'operator' AND rule = 'set'").fetchone()
    finally:
        con.close()
    return utc(at + 3_600_000)


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ============================================================================ on a terminal
def test_on_an_80_column_terminal_the_line_stays_within_the_width_and_shows_time_and_progress(tmp_path, config):
    db = tmp_path / "run.db"
    queue_set(db)
    code, text = run_on_terminal(["run", "--tier", "sniper", "--speed", "60", "--db", f"sqlite:///{db}",
                                  "--config", str(config)], tmp_path)
    assert code == 0, text
    lines = drawn_lines(text)
    assert not [line for line in lines if len(line) > COLUMNS], text
    assert "\x1b[1A" in text                                   # redrawn in place, not scrolled
    where = [re.match(rf"^({UTC_TIME})  ·  (\d+)% of the feed read  ·  (\S+) into the feed$", line)
             for line in lines]
    where = [m for m in where if m]
    assert len(where) >= 4, lines
    percents = [int(m.group(2)) for m in where]
    times = [m.group(1) for m in where]
    assert percents == sorted(percents) and percents[-1] - percents[0] >= 50
    first_ms = next(iter(open_feed(sample_paths()))).ts
    assert times == sorted(times) and times[0] >= utc(first_ms)
    for m in where:   # "into the feed" is the event time since the feed's first event
        shown = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=timezone.utc)
        assert int(shown.timestamp()) - first_ms // 1000 - parse_duration(m.group(3)) in (0, 1), m.group(0)
    assert any(line.startswith("equity $") and "today " in line and "drawdown $" in line for line in lines)
    assert any(re.match(r"^(ACTIVE|REDUCING|HALTED).*  ·  tilt level \d+  ·  ", line) for line in lines)
    # the closing summary: the positions the journal holds, the edit that never fell due, a finished run
    held = holdings(db)
    plain = "\n".join(lines)
    if held:
        heading = f"{len(held)} open position{'s' if len(held) != 1 else ''}:"
        assert heading in plain
        for symbol, qty in held.items():
            assert re.search(rf"^  {symbol} {qty:,.8f} \(worth \$[\d,]+\.\d\d, unrealised [+-]\$[\d,]+\.\d\d\)$",
                             plain, re.M), plain
    else:
        assert "no open positions" in plain
    assert (f"\n1 `genesis set` edit was still waiting and is not applied:\n"
            f"  tiers/sniper.yaml: daily_loss_usd: 20, due {set_due(db)}\n"
            "the run ended first; make it again with `genesis set` if you still want it\n") in plain
    assert plain.rstrip().endswith("finished: the whole feed was traded; the next `genesis run` starts a new "
                                   "run")


def test_a_paced_run_says_which_event_it_waits_for(tmp_path, config, candles):
    code, text = run_on_terminal(["run", "--tier", "sniper", "--speed", "60", "--feed", str(candles),
                                  "--db", f"sqlite:///{tmp_path / 'wait.db'}", "--config", str(config)], tmp_path)
    assert code == 0, text
    lines = drawn_lines(text)
    assert not [line for line in lines if len(line) > COLUMNS], text
    closes = [T0 + (i + 1) * 60_000 for i in range(4)]             # a candle's event time is its close
    waits = {m.group(1) for line in lines if (m := re.match(r"^waiting for the next event at (\S+) UTC$", line))}
    assert waits and waits <= {utc(ts)[11:19] for ts in closes[1:]}, lines
    shown = {m.group(1) for line in lines if (m := re.match(rf"^({UTC_TIME})  ·  ", line))}
    assert shown <= {utc(ts) for ts in closes} and len(shown) >= 2


def test_a_stopped_run_lists_its_waiting_set_edit_and_says_the_same_command_resumes(tmp_path, config):
    db = tmp_path / "stop.db"
    queue_set(db)
    code, text = run_on_terminal(["run", "--tier", "sniper", "--speed", "1", "--db", f"sqlite:///{db}",
                                  "--config", str(config)], tmp_path, interrupt_when=b"of the feed read")
    assert code == 130, text
    lines = drawn_lines(text)
    assert not [line for line in lines if len(line) > COLUMNS], text
    plain = "\n".join(lines)
    assert "operator set: sniper: limits.daily_loss_usd 25 -> 20 takes effect in 1 h" in plain.replace("\n", "")
    assert "1 `genesis set` edit waiting (resuming keeps it):" in plain
    assert f"  tiers/sniper.yaml: daily_loss_usd: 20, due {set_due(db)}" in plain
    assert plain.rstrip().endswith("stopped; the journal is saved: run the same command to resume")


# ============================================================================ without a terminal
def test_without_a_terminal_it_prints_a_plain_line_at_most_every_status_every(tmp_path, config, candles):
    started = time.monotonic()
    result = subprocess.run([*CLI, "run", "--tier", "sniper", "--speed", "60", "--feed", str(candles),
                             "--status-every", "1s", "--db", f"sqlite:///{tmp_path / 'plain.db'}",
                             "--config", str(config)], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                            timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "\r" not in out and "\x1b" not in out
    status = [line for line in result.stdout.splitlines() if " | equity $" in line]
    assert 2 <= len(status) <= 1 + elapsed / 1.0, status
    assert re.match(rf"^{UTC_TIME}; \d+% of the feed read; \S+ into the feed \| ", status[0])
    assert any(" | waiting for the next event at " in line for line in status), status


def test_status_every_must_be_a_duration(tmp_path, config):
    result = subprocess.run([*CLI, "run", "--status-every", "often", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                             "--config", str(config)], capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert result.returncode == 2
    assert "--status-every" in result.stderr and "'often' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.db").exists()


# ============================================================================ Feed.progress
def test_feed_progress_follows_the_events_handed_out_through_the_sample():
    feed = open_feed(sample_paths())
    assert feed.progress().read_bytes == 0
    total_events = sum(1 for _ in open_feed(sample_paths()))
    seen = []
    for i, _ in enumerate(feed, 1):
        if i % 1000 == 0:
            seen.append((i / total_events, feed.progress().fraction))
    assert [f for _, f in seen] == sorted(f for _, f in seen)
    # both files are read at about the same pace, so bytes follow the events within a few percent
    assert max(abs(events - read) for events, read in seen) < 0.06, seen
    assert feed.progress().fraction == 1.0
    assert feed.progress().total_bytes == sum(p.stat().st_size for p in sample_paths())


def test_feed_progress_of_a_candle_file_counts_its_rows(candles):
    feed = open_feed([candles])
    fractions = [feed.progress().fraction for _ in feed]
    assert fractions == [0.25, 0.5, 0.75, 1.0]
