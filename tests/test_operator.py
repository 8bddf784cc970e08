"""Operator commands: queued in the journal database, applied by the running engine at
the current event time, answered, journaled, and re-applied identically on resume."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from genesis.config.checks import check_config
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.runner import _apply_queued_commands, open_session, replay

ROOT = Path(__file__).resolve().parents[1]
PHRASE = "I accept the risk of overriding my own limits"


def _session(db: Path):
    return open_session(ROOT, check_config(ROOT), "sniper", open_feed(sample_paths()), f"sqlite:///{db}", "paper")


def _advance(session, n: int) -> None:
    for _, event in zip(range(n), session.feed):
        session.engine.process(event)


def _command_rows(db: Path) -> list:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT id, kind, status, result FROM commands ORDER BY id"))]
    engine.dispose()
    return rows


def test_orders_go_through_the_pre_trade_rules_and_answer(tmp_path):
    db = tmp_path / "j.db"
    session = _session(db)
    _advance(session, 3000)
    session.journal.queue_command("order", {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 40.0})
    session.journal.queue_command("order", {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 400.0})
    session.journal.queue_command("cancel", {"client_id": "nope"})
    said = []
    _apply_queued_commands(session, said.append)
    rows = _command_rows(db)
    assert [r[2] for r in rows] == ["applied", "refused", "refused"]
    assert "1 order sent" in rows[0][3]
    assert "larger than 5% of equity" in rows[1][3]
    assert "no open order 'nope'" in rows[2][3]
    assert session.engine.account.positions["BTCUSDT"].qty > 0
    assert len(said) == 3


def test_a_required_reason_is_enforced_for_manual_orders(tmp_path):
    session = _session(tmp_path / "j.db")
    _advance(session, 3000)
    session.engine.change_state("require", "tilt_level_2", rule="tilt_level_2",
                                requirement={"kind": "reason", "min_words": 5})
    session.journal.queue_command("order", {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 20.0, "reason": "dip"})
    session.journal.queue_command("order", {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 20.0,
                                            "reason": "spread is wide and my plan says buy"})
    _apply_queued_commands(session, lambda _t: None)
    statuses = [r[2] for r in _command_rows(tmp_path / "j.db")]
    assert statuses == ["refused", "applied"]


def test_override_needs_the_phrase_has_a_cooldown_and_is_always_logged(tmp_path):
    session = _session(tmp_path / "j.db")
    _advance(session, 1000)
    engine = session.engine
    engine.change_state("hold", "drawdown_halt_manual_reset", rule="drawdown_halt_manual_reset", kind="halt")
    for phrase in ("let me trade", PHRASE, PHRASE):
        session.journal.queue_command("override", {"phrase": phrase})
    _apply_queued_commands(session, lambda _t: None)
    rows = _command_rows(tmp_path / "j.db")
    assert [r[2] for r in rows] == ["refused", "applied", "refused"]
    assert "does not match" in rows[0][3] and "next is possible at" in rows[2][3] and "(in 24.0 h)" in rows[2][3]
    assert engine.state.mode == "ACTIVE"
    assert engine.metrics.m["override_attempts_24h"] == 3  # refused attempts count too
    assert engine.stats.firings["override_attempt_logged"] == 3


def test_journal_entry_and_life_event_reach_the_engine(tmp_path):
    session = _session(tmp_path / "j.db")
    _advance(session, 1000)
    session.engine.change_state("lock", "tilt_level_3", rule="tilt_level_3", symbol="",
                                until=session.engine.now + 1000, reason="tilt", journal_words=5)
    [lock] = session.engine.state.locks
    session.journal.queue_command("journal", {"text": "short"})
    session.journal.queue_command("journal", {"text": "I chased a loss and I will stop and breathe"})
    session.journal.queue_command("life", {"days": 3})
    _apply_queued_commands(session, lambda _t: None)
    assert lock.needs_journal_words == 0
    assert session.engine.metrics.m["life_event_days"] == 3
    assert session.engine.metrics.m["tilt_threshold_offset"] == 1


def test_a_command_with_no_engine_running_is_queued_then_applied_by_the_next_run(tmp_path):
    db = tmp_path / "j.db"
    cli = [sys.executable, str(ROOT / "cli.py")]
    queued = subprocess.run([*cli, "journal", "waiting for the engine", "--db", f"sqlite:///{db}"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert queued.returncode == 0 and "queued (#1): no engine is running" in queued.stdout
    ran = subprocess.run([*cli, "run", "--speed", "max", "--db", f"sqlite:///{db}", "--config", str(ROOT)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert ran.returncode == 0, ran.stderr
    rows = _command_rows(db)
    assert (1, "journal", "applied", "journal entry of 4 words recorded") in rows
    assert any(r[1] == "connect" and r[2] == "applied" for r in rows)  # the run is an operator session


def _entries(db: Path) -> list:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT seq, ts, kind, rule, data FROM entries ORDER BY seq"))]
    engine.dispose()
    return rows


def _scripted(db: Path, crash_at: int | None) -> None:
    session = _session(db)
    for count, event in enumerate(session.feed, 1):
        session.engine.process(event)
        if count == 5000:
            session.journal.queue_command("order", {"side": "buy", "symbol": "ETHUSDT", "notional_usd": 30.0})
            session.journal.queue_command("override", {"phrase": "not it"})
            _apply_queued_commands(session, lambda _t: None)
        if crash_at and count == crash_at:
            return  # crash: unflushed entries are lost
    session.engine.finish()
    session.journal.finish()


def test_resume_reapplies_operator_commands_at_the_same_point(tmp_path):
    _scripted(tmp_path / "ref.db", None)
    reference = _entries(tmp_path / "ref.db")
    assert any(r[2] == "operator" for r in reference)
    _scripted(tmp_path / "crash.db", 20000)
    session = _session(tmp_path / "crash.db")
    assert session.resumed and [c.kind for c in session.changes] == ["order", "override"]
    replay(session)
    assert _entries(tmp_path / "crash.db") == reference
