"""`genesis replay`, `run` and `status` through real processes (python cli.py ...), real
SQLite files and the bundled real market data; hot reload of an edited configuration
through genesis.engine.runner.run() in-process."""
from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from scenario_helpers import edited_copy

from genesis.config.checks import check_config
from genesis.engine.events import Event
from genesis.engine.feeds import sample_paths
from genesis.engine.engine import Engine
from genesis.engine.journal import Journal
from genesis.engine.runner import open_session, replay, run
from genesis.engine.statusdoc import publish as publish_status
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
REPORT_KEYS = {"trades", "pnl_usd", "pnl_pct", "max_drawdown_usd", "max_drawdown_pct", "sharpe_1m_annualised",
               "fees_usd", "rule_firings", "time_in_state_pct", "final_state", "events", "feed", "tier"}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python cli.py ARGS` from the repository root; never a traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def db_url(path: Path) -> str:
    return f"sqlite:///{path}"


def journal_rows(path: Path) -> tuple[list, list]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT run_id, seq, ts, kind, rule, symbol, data FROM entries "
                           "ORDER BY run_id, seq").fetchall()
        runs = con.execute("SELECT id, tier, mode, finished FROM runs ORDER BY id").fetchall()
    finally:
        con.close()
    return rows, runs


def report_lines(text: str) -> dict:
    """The text report as {label: rest of line}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^  (\S.*?)\s{2,}(.*)$", line.split("\r")[-1])
        if m:
            out[m.group(1)] = m.group(2)
    return out


# ============================================================================ replay
@pytest.fixture(scope="module")
def sample_json():
    result = cli("replay", "--tier", "sniper", "--config", str(ROOT), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_replay_prints_the_report(sample_json):
    result = cli("replay", "--tier", "sniper", "--config", str(ROOT))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("Replay on tier sniper: ")
    lines = report_lines(text)
    for label in ("P&L", "trades", "max drawdown", "Sharpe", "fees", "rule firings", "time in state",
                  "final state", "intents", "feed"):
        assert label in lines, (label, text)
    # dollars first, then percent
    pnl = re.fullmatch(r"(-?\$[\d,]+\.\d\d) \(([+-]\d+\.\d{4})%\)  equity \$([\d,]+\.\d\d) -> \$([\d,]+\.\d\d)",
                       lines["P&L"])
    assert pnl, lines["P&L"]
    dollars, pct, start, end = (float(g.replace(",", "").replace("$", "")) for g in pnl.groups())
    assert start == 1000.0
    assert dollars == pytest.approx(end - start, abs=0.011)
    assert pct == pytest.approx(dollars / start * 100, abs=0.01)
    assert re.fullmatch(r"0 closed, win rate n/a|[\d,]+ closed, [\d,]+ won \(win rate \d+\.\d%\), "
                        r"realised -?\$[\d,]+\.\d\d", lines["trades"]), lines["trades"]
    assert re.fullmatch(r"\$[\d,]+\.\d\d \(\d+\.\d{3}%\)", lines["max drawdown"])
    assert re.fullmatch(r"-?[\d,]*\d\.\d\d \(1-minute equity returns, annualised\)|n/a \(under \d+ minutes of data\)",
                        lines["Sharpe"]), lines["Sharpe"]
    assert re.fullmatch(r"\$[\d,]+\.\d{4}", lines["fees"])
    states = dict(re.findall(r"(ACTIVE|REDUCING|HALTED) (\d+\.\d)%", lines["time in state"]))
    assert states and sum(float(v) for v in states.values()) == pytest.approx(100.0, abs=0.2)
    # the text and the JSON report of the same (deterministic) replay agree
    j = sample_json
    assert dollars == pytest.approx(j["pnl_usd"]) and pct == pytest.approx(j["pnl_pct"])
    assert lines["trades"].startswith(f"{j['trades']} closed")
    assert lines["fees"] == f"${j['fees_usd']:,.4f}"
    assert lines["final state"] == j["final_state"]
    sharpe = j["sharpe_1m_annualised"]
    assert lines["Sharpe"].startswith("n/a" if sharpe is None else f"{sharpe:.2f} ")
    firings = lines["rule firings"]   # most firings first; the first line when it wraps
    most = sorted(j["rule_firings"].items(), key=lambda kv: (-kv[1], kv[0]))
    assert (", ".join(f"{k} x{v:,}" for k, v in most) or "none").startswith(firings)


def test_replay_json_is_parseable_with_the_report_keys(sample_json):
    j = sample_json
    assert REPORT_KEYS <= set(j)
    assert j["tier"] == "sniper" and j.get("mode", "replay") == "replay"
    assert j["events"] > 30_000                              # the bundled ~3 minutes of BTC and ETH
    assert [Path(p).name for p in j["feed"]["sources"]] == [p.name for p in sample_paths()]
    assert j["feed"]["malformed"] == 0
    assert j["pnl_usd"] == pytest.approx(j["final_equity_usd"] - j["starting_equity_usd"], abs=0.011)
    assert j["orders"] >= 1 and j["intents"] >= j["orders"]   # the sample really trades
    assert j["fees_usd"] > 0
    assert isinstance(j["rule_firings"], dict)
    assert sum(j["time_in_state_pct"].values()) == pytest.approx(100.0, abs=0.05)
    assert set(j["time_in_state_pct"]) <= {"ACTIVE", "REDUCING", "HALTED"}
    assert j["max_drawdown_usd"] >= 0 and j["max_drawdown_pct"] >= 0


def _crafted_capture(path: Path) -> list[int]:
    """Real lines of the bundled BTCUSDT capture with malformed lines between them;
    returns the 1-based numbers of the malformed lines."""
    btc = next(p for p in sample_paths() if p.name.startswith("btcusdt"))
    with gzip.open(btc, "rt", encoding="utf-8") as f:
        good = [next(f).rstrip("\n") for _ in range(400)]
    bad = [
        "this is not a capture line",
        '1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT"',
        '1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"-5",'
        '"B":"1","a":"1","A":"1"}}',
        '1723161254087891268 {"stream":"btcusdt@kline_1m","data":{}}',
        "garbage",
    ]
    lines = good[:100] + bad[:1] + good[100:200] + bad[1:3] + good[200:300] + bad[3:4] + good[300:] + bad[4:]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [i + 1 for i, line in enumerate(lines) if line in bad]


def test_replay_reports_malformed_lines_and_still_exits_0(tmp_path):
    capture = tmp_path / "btcusdt_crafted.txt"
    bad_lines = _crafted_capture(capture)
    assert len(bad_lines) == 5
    result = cli("replay", str(capture), "--tier", "sniper", "--config", str(ROOT), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["feed"]["malformed"] == 5
    assert report["events"] > 300
    issues = [re.fullmatch(r"(.+?):(\d+): (.+)", line) for line in result.stderr.splitlines() if line.strip()]
    assert all(issues), result.stderr
    reported = {int(m.group(2)) for m in issues if m.group(1) == capture.name}
    assert set(bad_lines) <= reported, (bad_lines, result.stderr)
    assert all("{" not in m.group(3) or "stream" not in m.group(3) for m in issues)   # never the raw line
    text = cli("replay", str(capture), "--tier", "sniper", "--config", str(ROOT))
    assert text.returncode == 0
    assert "  feed            5 malformed, " in text.stdout


def test_replay_with_an_unknown_tier_is_a_usage_error():
    result = cli("replay", "--tier", "nosuch", "--config", str(ROOT))
    assert result.returncode == 2
    assert "unknown tier 'nosuch'" in result.stderr and "sniper" in result.stderr


# ============================================================================ run and status
@pytest.fixture(scope="module")
def unprobed(tmp_path_factory) -> Path:
    """The shipped configuration with the health probe off: runs compared entry by entry
    must not differ by when the wall clock sampled the host (tests/test_health.py)."""
    return edited_copy(tmp_path_factory.mktemp("unprobed"),
                       {"genesis.yaml": {"health_probe: {interval: 15s}": "health_probe: {interval: null}"}})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, unprobed):
    db = tmp_path_factory.mktemp("run") / "x.db"
    result = cli("run", "--tier", "sniper", "--speed", "max", "--db", db_url(db), "--config", str(unprobed))
    assert result.returncode == 0, result.stderr
    return db, result


def test_run_trades_the_bundled_sample(finished_run):
    db, result = finished_run
    assert "starting paper trading on tier sniper (btcusdt_20240808_sample.gz, ethusdt_20240808_sample.gz)" \
        in result.stdout
    assert "\nPaper run on tier sniper: " in result.stdout
    lines = report_lines(result.stdout)
    assert "P&L" in lines and "rule firings" in lines and "time in state" in lines
    rows, runs = journal_rows(db)
    assert runs == [(1, "sniper", "paper", 1)]
    kinds = [r[3] for r in rows]
    assert {"engine_started", "intent", "order", "fill"} <= set(kinds)


def test_status_shows_tier_equity_state_and_positions(finished_run):
    db, result = finished_run
    status = cli("status", "--db", db_url(db))
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert text.startswith("run 1 (paper, finished), tier sniper\n")
    m = re.search(r"^equity \$([\d,]+\.\d\d), trading state (ACTIVE|REDUCING|HALTED), (\d+) journal entries$", text,
                  re.M)
    assert m, text
    final = re.search(r"-> \$([\d,]+\.\d\d)", result.stdout).group(1)
    assert m.group(1) == final                                # the run's final equity
    rows, _ = journal_rows(db)
    assert int(m.group(3)) == len(rows)
    fills = [json.loads(r[6]) | {"symbol": r[5]} for r in rows if r[3] == "fill"]
    held = {}
    for f in fills:
        held[f["symbol"]] = held.get(f["symbol"], 0.0) + (f["qty"] if f["side"] == "buy" else -f["qty"])
    positions = re.search(r"^positions  (.*)$", text, re.M).group(1)
    assert [p.split(" from ")[0] for p in positions.split("; ")] == \
        [f"{s} {q:.8f}" for s, q in held.items() if q > 1e-9] or positions == "none"
    assert "\ndecided    " in text and "\nladder     " in text


def test_a_finished_run_is_not_resumed_the_same_command_starts_a_new_run(tmp_path, unprobed):
    db = tmp_path / "twice.db"
    args = ("run", "--tier", "sniper", "--speed", "max", "--db", db_url(db), "--config", str(unprobed))
    first = cli(*args)
    second = cli(*args)
    assert first.returncode == second.returncode == 0
    assert second.stdout.startswith("starting paper trading")  # journal.finish(): a later start is a new run
    assert "resuming" not in second.stdout
    rows, runs = journal_rows(db)
    assert runs == [(1, "sniper", "paper", 1), (2, "sniper", "paper", 1)]
    one = [r[1:] for r in rows if r[0] == 1]
    two = [r[1:] for r in rows if r[0] == 2]
    assert one == two                                         # deterministic: the same decisions again
    assert cli("status", "--db", db_url(db)).stdout.startswith("run 2 (paper, finished)")


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt_after_first_status(args: list, env: dict, sig=signal.SIGINT) -> tuple[int, str]:
    """Start `run` as a script's background job does (SIGINT ignored, inherited), wait
    until its loop has printed a status line, then send `sig`: Ctrl-C, or SIGTERM as
    `docker stop` and systemd do. Either must stop it cleanly."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
                            preexec_fn=_ignore_ctrl_c)
    seen = b""
    try:
        while b"equity $" not in seen:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (seen + out + err).decode()
    assert "Traceback" not in text, text
    return proc.returncode, text


def test_an_interrupted_run_is_resumed_by_the_same_command(tmp_path, finished_run, unprobed):
    db = tmp_path / "resume.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    code, text = _interrupt_after_first_status(
        ["run", "--tier", "sniper", "--speed", "1", "--db", db_url(db), "--config", str(unprobed)], env)
    assert code == 130, text
    assert "stopped; the journal is saved: run the same command to resume" in text
    _, runs = journal_rows(db)
    assert runs == [(1, "sniper", "paper", 0)]
    assert cli("status", "--db", db_url(db)).stdout.startswith("run 1 (paper, not finished)")
    again = cli("run", "--tier", "sniper", "--speed", "max", "--db", db_url(db), "--config", str(unprobed))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("resuming paper trading on tier sniper")
    rows, runs = journal_rows(db)
    assert runs == [(1, "sniper", "paper", 1)]                # the same run, now finished
    reference, _ = journal_rows(finished_run[0])
    # as if never interrupted, apart from the operator's sessions: a `genesis run` is a
    # session (connect at the live point, disconnect on Ctrl-C) and the tilt rules count them
    assert [r[2:] for r in rows if r[3] != "operator"] == [r[2:] for r in reference if r[0] == 1 and r[3] != "operator"]
    sessions = [r[4] for r in rows if r[3] == "operator"]
    assert sessions == ["connect", "disconnect", "connect"]


def test_an_edit_made_while_a_run_was_stopped_is_applied_once_it_has_caught_up(tmp_path):
    root = edited_copy(tmp_path)
    db = tmp_path / "edited.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    args = ["run", "--tier", "sniper", "--db", db_url(db), "--config", str(root)]
    code, text = _interrupt_after_first_status([*args, "--speed", "1"], env, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, text
    assert "stopped; the journal is saved: run the same command to resume" in text
    _edit_tier("  daily_loss_usd: 25 ", "  daily_loss_usd: 20 ")(root)
    again = cli(*args, "--speed", "max")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("resuming paper trading on tier sniper")
    assert "configuration reloaded (tiers/sniper.yaml)" in again.stdout
    rows, runs = journal_rows(db)
    assert runs == [(1, "sniper", "paper", 1)]
    configs = [json.loads(r[6]) for r in rows if r[3] == "config"]
    assert [c["edited"] for c in configs] == [["tiers/sniper.yaml"]]
    assert "  daily_loss_usd: 20 " in configs[0]["files"]["tiers/sniper.yaml"]


def test_run_mode_live_without_keys_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv("GENESIS_API_KEY", raising=False)
    monkeypatch.delenv("GENESIS_API_SECRET", raising=False)
    result = cli("run", "--mode", "live", "--db", db_url(tmp_path / "live.db"), "--config", str(ROOT))
    assert result.returncode == 2
    assert "live mode needs GENESIS_API_KEY and GENESIS_API_SECRET in the environment" in result.stderr
    assert not (tmp_path / "live.db").exists()


def test_run_with_an_unknown_tier_is_a_usage_error(tmp_path):
    result = cli("run", "--tier", "nosuch", "--speed", "max", "--db", db_url(tmp_path / "t.db"),
                 "--config", str(ROOT))
    assert result.returncode == 2
    assert "unknown tier 'nosuch' (known: hunter, sniper, strategist)" in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_status_of_a_database_that_is_not_a_journal_is_refused_and_leaves_it_alone(tmp_path):
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (text TEXT)")
    con.commit()
    con.close()
    before = db.read_bytes()
    result = cli("status", "--db", db_url(db))
    assert result.returncode == 1
    assert "holds no Genesis journal" in result.stderr
    assert db.read_bytes() == before


def test_run_with_a_missing_feed_file_or_a_bad_speed_is_a_usage_error(tmp_path):
    missing = cli("run", "--feed", str(tmp_path / "nope.gz"), "--speed", "max", "--db", db_url(tmp_path / "a.db"),
                  "--config", str(ROOT))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    slow = cli("run", "--speed", "0", "--db", db_url(tmp_path / "b.db"), "--config", str(ROOT))
    assert slow.returncode == 2 and "must be above 0" in slow.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_status_without_a_journal_says_nothing_has_run(tmp_path):
    result = cli("status", "--db", db_url(tmp_path / "none.db"))
    assert result.returncode == 1
    assert "nothing has run yet" in result.stderr
    assert not (tmp_path / "none.db").exists()


# ============================================================================ unusable journals
@pytest.mark.parametrize("command", [["run", "--tier", "sniper", "--speed", "max"], ["replay", "--tier", "sniper"],
                                     ["status"]])
def test_a_corrupt_journal_file_is_refused_and_left_unchanged(tmp_path, command):
    db = tmp_path / "x.db"
    garbage = random.Random(20240808).randbytes(16_384)
    db.write_bytes(garbage)
    result = cli(*command, "--db", db_url(db), "--config", str(ROOT))
    assert result.returncode == 1
    assert "not a readable SQLite database" in result.stderr
    assert result.stderr.startswith("genesis: the journal ")
    assert db.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]     # no -wal / -shm beside it


@pytest.mark.parametrize("fresh", [False, True], ids=["existing-journal", "new-file"])
@pytest.mark.parametrize("command", [["run", "--tier", "sniper", "--speed", "max"], ["replay", "--tier", "sniper"]])
def test_a_locked_journal_gives_a_clear_message(tmp_path, finished_run, command, fresh):
    db = tmp_path / "x.db"
    if not fresh:
        shutil.copy(finished_run[0], db)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = cli(*command, "--db", db_url(db), "--config", str(ROOT))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1, result.stdout
    assert "locked" in result.stderr
    assert result.stderr.startswith("genesis: the journal ") and len(result.stderr.strip().splitlines()) == 1


# ============================================================================ in-process reports and status
def test_time_in_each_trading_state_in_the_report(tmp_path):
    """exchange_unreachable: api down at 10 s, halted at 40 s (for: 30s), back at 70 s; end at 100 s."""
    events = []
    for i in range(101):
        ts = T0 + i * 1000
        if i == 10:
            events.append(Event("api_status", ts, "", {"reachable": False}))
        elif i == 70:
            events.append(Event("api_status", ts, "", {"reachable": True}))
        else:
            events.append(ticker(ts))
    session = open_session(ROOT, check_config(ROOT), "sniper", ListFeed(events), None, "replay")
    report = replay(session)
    assert report["time_in_state_pct"] == {"ACTIVE": 70.0, "HALTED": 30.0}
    assert report["rule_firings"] == {"exchange_unreachable": 1}
    assert report["final_state"] == "ACTIVE" and report["notifications"] == 2
    assert report["events"] == 101 and report["feed"]["digest"] == "crafted-events"


def test_status_of_a_halted_and_locked_journal(tmp_path):
    db = tmp_path / "state.db"
    journal = Journal(db_url(db))
    journal.open_run("sniper", "c", "f", [], "paper")
    engine = Engine(check_config(ROOT), "sniper", journal=journal)
    engine.process(ticker(T0))
    engine.submit(OrderIntent("test", "BTCUSDT", "buy", 50.0, 60_000.0, "entry", True))
    engine.process(ticker(T0 + 60_000, 29_000.0))            # the day's loss passes $25: locked until midnight
    engine.process(Event("position_mismatch", T0 + 61_000, "BTCUSDT", {"diff_usd": 5.0}))
    assert engine.state.mode == "HALTED" and engine.stats.firings["daily_loss_limit"] == 1
    qty = engine.account.positions["BTCUSDT"].qty
    engine.finish()
    journal.flush()
    # an engine driven in-process publishes no status document: the entries alone tell
    result = cli("status", "--db", db_url(db))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("run 1 (paper, not finished), tier sniper\n")
    assert f"equity ${engine.metrics.m['equity_usd']:,.2f}, trading state HALTED" in text
    assert "\nlocked     daily loss limit (all symbols): until 2024-08-09 00:00:00 UTC\n" in text
    assert f"\npositions  BTCUSDT {qty:.8f}\n" in text
    assert re.search(r"^decided    12:01:01 position_mismatch fired on BTCUSDT$", text, re.M), text
    # with the engine's status document: what holds the halt and how it is lifted
    publish_status(engine)
    journal.close()
    text = cli("status", "--db", db_url(db)).stdout
    assert "\nheld by    position_mismatch (halted): lifted by " in text, text
    assert f"\npositions  BTCUSDT {qty:.8f} from " in text and ", unrealised -$" in text
    assert "\nlocked     daily loss limit (all symbols): until 2024-08-09 00:00:00 UTC\n" in text


# ============================================================================ hot reload (in-process)
class ListFeed:
    """A tiny in-memory feed with what the runner and the report read."""

    def __init__(self, events: list):
        self.events = events
        self.sources = [Path("crafted-events")]
        self.malformed = 0
        self.out_of_order = 0
        self.issues: list = []

    def __iter__(self):
        return iter(self.events)

    def digest(self) -> str:
        return "crafted-events"


def ticker(ts: int, mid: float = 60_000.0) -> Event:
    return Event("book_ticker", ts, "BTCUSDT", {"bid": mid - 0.01, "bid_qty": 5.0, "ask": mid + 0.01, "ask_qty": 5.0,
                                                "mid": mid, "spread_bps": 0.02 / mid * 1e4})


def _tickers(n: int) -> list:
    return [ticker(T0 + i * 100, 60_000.0 + (i % 7)) for i in range(n)]


def _run_with_edits(tmp_path: Path, edits: list, n_events: int = 60):
    """run() over crafted events; the status callback applies one edit per call, in order."""
    root = edited_copy(tmp_path)
    config = check_config(root)
    assert config.ok
    session = open_session(root, config, "sniper", ListFeed(_tickers(n_events)), "sqlite://", "paper")
    said: list = []
    seen: list = []

    def status(engine, catching_up):
        seen.append((engine.stats.events, engine.config.tiers["sniper"]["limits"]["daily_loss_usd"]))
        if edits:
            edits.pop(0)(root)

    report = run(session, None, root, status=status, say=said.append, reload_every_s=0)
    return session, report, said, seen


def _edit_tier(old: str, new: str):
    def edit(root: Path) -> None:
        path = root / "tiers" / "sniper.yaml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return edit


def test_hot_reload_applies_an_edited_tier_number(tmp_path):
    session, report, said, seen = _run_with_edits(
        tmp_path, [_edit_tier("  daily_loss_usd: 25 ", "  daily_loss_usd: 20 # edited while running\n  ")])
    engine = session.engine
    assert report["events"] == 60
    assert seen[0] == (1, 25)                                # the edit was written during the loop
    said = [t for t in said if not t.startswith("operator ")]  # the session's connect notice
    assert said == ["configuration reloaded (tiers/sniper.yaml)"]
    assert engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 20
    rule = engine.rules.by_id["daily_loss_limit"]
    assert "20" in rule.conditions[0].python and "25" not in rule.conditions[0].python
    m = dict(engine.metrics.m)
    m["daily_pnl_usd"] = -22.0                     # between the old limit and the new one
    assert rule.check(m, None, None) is True
    assert engine.stats.by_kind["config_edit"] == 1
    assert engine.metrics.m["risk_edits_session"] == 1       # a tier file is a risk parameter
    configs = [json.loads(r.data) for r in session.journal.entries() if r.kind == "config"]
    assert [c["edited"] for c in configs] == [["tiers/sniper.yaml"]]       # journaled with the new files
    assert "daily_loss_usd: 20 # edited while running" in configs[0]["files"]["tiers/sniper.yaml"]
    assert report["tier"] == "sniper"


def test_hot_reload_refuses_an_invalid_edit_and_keeps_the_old_configuration(tmp_path):
    session, report, said, seen = _run_with_edits(
        tmp_path, [_edit_tier("  daily_loss_usd: 25 ", "  daily_loss_usdd: 20 ")])
    engine = session.engine
    assert seen[0] == (1, 25)
    assert report["events"] == 60                          # it kept running to the end of the feed
    said = [t for t in said if not t.startswith("operator ")]
    assert len(said) == 1
    assert said[0].startswith("configuration edit refused; still running the previous configuration:\n")
    assert re.search(r"tiers/sniper\.yaml:\d+:\d+: unknown key 'daily_loss_usdd' "
                     r"\(did you mean 'daily_loss_usd'\?\)", said[0]), said[0]
    assert engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 25
    assert "25" in engine.rules.by_id["daily_loss_limit"].conditions[0].python
    assert engine.stats.by_kind["config_edit"] == 0
    assert engine.metrics.m["risk_edits_session"] == 0


class EditingFeed(ListFeed):
    """Events that edit the configuration just before given positions of the stream."""

    def __init__(self, events: list, edits: dict, root: Path):
        super().__init__(events)
        self.edits, self.root = edits, root

    def __iter__(self):
        for i, event in enumerate(self.events):
            if i in self.edits:
                self.edits[i](self.root)
            yield event


def test_hot_reload_after_a_refused_edit_takes_the_fixed_file(tmp_path):
    root = edited_copy(tmp_path)
    config = check_config(root)
    edits = {10: _edit_tier("  daily_loss_usd: 25 ", "  daily_loss_usdd: 20 "),
             20: _edit_tier("  daily_loss_usdd: 20 ", "  daily_loss_usd: 21 # fixed\n  ")}
    session = open_session(root, config, "sniper", EditingFeed(_tickers(40), edits, root), "sqlite://", "paper")
    said: list = []
    report = run(session, None, root, status=None, say=said.append, reload_every_s=0)
    engine = session.engine
    assert report["events"] == 40
    said = [t for t in said if not t.startswith("operator ")]
    assert len(said) == 2, said
    assert said[0].startswith("configuration edit refused; still running the previous configuration:\n")
    assert said[1] == "configuration reloaded (tiers/sniper.yaml)"
    assert engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 21
    assert "21" in engine.rules.by_id["daily_loss_limit"].conditions[0].python
    assert engine.stats.by_kind["config_edit"] == 1


def test_hot_reload_of_a_metric_window_applies_to_its_history(tmp_path):
    root = edited_copy(tmp_path)
    book = root / "rules" / "test_reload.yaml"
    book.write_text("metrics:\n  pings: {count: operator_disconnect, window: 10m}\nrules: []\n", encoding="utf-8")
    config = check_config(root)
    assert config.ok, config.problems

    def shorten(root: Path) -> None:
        book.write_text("metrics:\n  pings: {count: operator_disconnect, window: 1m}\nrules: []\n",
                        encoding="utf-8")
    events = [Event("operator_disconnect", T0), Event("operator_disconnect", T0 + 1000), ticker(T0 + 2000),
              ticker(T0 + 2 * 60_000), ticker(T0 + 3 * 60_000)]
    session = open_session(root, config, "sniper", EditingFeed(events, {3: shorten}, root), None, "paper")
    said: list = []
    run(session, None, root, say=said.append, reload_every_s=0)
    said = [t for t in said if not t.startswith("operator ")]
    assert said == ["configuration reloaded (rules/test_reload.yaml)"]
    assert session.engine.metrics.m["pings"] == 0      # both pings are more than 1 minute old
