"""A configuration edit and an operator command applied at the same event count are
re-applied, when the run is rebuilt, in the order they happened, not edits first.

The trader's $80 manual buy is refused by the 5% rule (equity ~$1,000); right after,
at the same event count, the tier file raises the limit to 10%, under which the same
order would pass. A run killed later and resumed, `genesis tier`'s rebuild and a live
engine restarted after kill -9 must refuse it again: the journal (and the state) are
exactly the uninterrupted run's. Real SQLite, the real sample capture, the real runner;
live: `genesis run --mode live` against the project's simulator on 127.0.0.1."""
from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

from live_helpers import LiveProc, account, agreement
from scenario_helpers import config_copy
from sqlalchemy import create_engine, text

from genesis.config.checks import check_config
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.journal import Journal, recorded_changes
from genesis.engine.runner import _apply_queued_commands, open_session, reload_config, replay
from genesis.engine.tierview import rebuild
from genesis.simulator import SimulatorThread

ROOT = Path(__file__).resolve().parents[1]
AT = 5000
CRASH_AT = 20000
OLD, NEW = "max_position_pct: 5 ", "max_position_pct: 10"
ORDER = {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 80.0, "reason": "testing the limit"}


def _config(tmp: Path) -> Path:
    root = tmp / "config"
    root.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def _edit(root: Path) -> None:
    path = root / "tiers" / "sniper.yaml"
    text_ = path.read_text()
    assert OLD in text_
    path.write_text(text_.replace(OLD, NEW))


def _run(root: Path, db: str, stop_at: int | None):
    """The sample with, at event AT, the command and then the edit; a crash at stop_at
    (whatever was not flushed is lost)."""
    session = open_session(root, check_config(root), "sniper", open_feed(sample_paths()), db, "paper")
    for count, event in enumerate(session.feed, 1):
        session.engine.process(event)
        if count == AT:
            session.journal.queue_command("order", ORDER)
            _apply_queued_commands(session, lambda _t: None)
            _edit(root)
            assert reload_config(session, root, say=lambda _t: None)
            assert session.engine.stats.events == AT
        if stop_at and count == stop_at:
            return session
    session.engine.finish()
    session.journal.finish()
    return session


def _entries(db_file: Path) -> list:
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT run_id, seq, ts, kind, rule, symbol, data FROM entries "
                                                     "ORDER BY run_id, seq"))]
    engine.dispose()
    return rows


def test_a_command_then_an_edit_at_the_same_event_replay_in_that_order(tmp_path):
    ref_root = _config(tmp_path / "a")
    ref_db = tmp_path / "ref.db"
    uninterrupted = _run(ref_root, f"sqlite:///{ref_db}", stop_at=None)
    reference = _entries(ref_db)
    operator = [(seq, json.loads(d)) for _, seq, _, kind, rule, _, d in reference if kind == "operator"]
    config = [(seq, json.loads(d)) for _, seq, _, kind, _, _, d in reference if kind == "config"]
    assert len(operator) == 1 and len(config) == 1
    (cmd_seq, cmd), (edit_seq, edit) = operator[0], config[0]
    assert cmd["at_event"] == edit["at_event"] == AT and cmd_seq < edit_seq   # command first, same count
    assert cmd["status"] == "refused" and "larger than 5% of equity" in cmd["result"], cmd

    # killed after the edit, restarted with the edited file on disk: the resumed run
    # re-applies the command, then the edit, and ends with the same journal
    root = _config(tmp_path / "b")
    db = tmp_path / "crash.db"
    _run(root, f"sqlite:///{db}", stop_at=CRASH_AT)
    assert 0 < len(_entries(db)) < len(reference)
    session = open_session(root, check_config(root), "sniper", open_feed(sample_paths()), f"sqlite:///{db}", "paper")
    assert session.resumed
    replay(session)
    assert _entries(db) == reference

    # `genesis tier` rebuilds the same state from the journal
    rebuilt, info = rebuild(f"sqlite:///{ref_db}")
    engine = uninterrupted.engine
    assert info["events"] == engine.stats.events
    assert rebuilt.stats.rejected == engine.stats.rejected and rebuilt.order_seq == engine.order_seq
    assert {s: p.qty for s, p in rebuilt.account.positions.items()} == \
        {s: p.qty for s, p in engine.account.positions.items()}
    assert rebuilt.metrics.m["equity_usd"] == engine.metrics.m["equity_usd"]


def test_commands_record_where_they_applied_and_an_older_journal_is_upgraded(tmp_path):
    """A journal made before commands recorded their seq gets the column on open; its
    commands (seq 0) re-apply after the edits of their event count, as they used to."""
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    Journal(url).engine.dispose()
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE commands DROP COLUMN seq")   # as an older Genesis made it
    con.execute("INSERT INTO commands (kind, payload, status, result, run_id, at_event) "
                "VALUES ('journal', '{\"text\": \"old\"}', 'applied', 'ok', 1, 5)")
    con.commit()
    con.close()
    journal = Journal(url)
    journal.open_run("sniper", {}, "feed", [], "paper")
    journal.append(0, "engine_started")
    new = journal.queue_command("life", {"days": 2})
    journal.append(0, "operator", "life", data={"at_event": 5, "payload": {"days": 2}})
    journal.settle_command(new, "applied", "ok", 5, journal.seq)
    journal.append(0, "config", data={"at_event": 5, "files": {"a.yaml": "x"}})
    journal.flush()
    assert journal.command(new).seq == 2
    with journal.engine.connect() as conn:
        changes = recorded_changes(conn, journal.run_id)
        scripted = recorded_changes(conn, journal.run_id, scripted=True)
    journal.close()
    assert [(c.kind, c.edit) for c in changes] == [("life", False), ("config", True), ("journal", False)]
    assert [(c.kind, c.seq) for c in scripted] == [("life", 2), ("config", 3)]


# --------------------------------------------------------------------------- live
class _Stepping:
    """Advances a step-mode simulator in the background while a live engine starts (it
    waits for market data); outside it the market is still, so no input arrives."""

    def __init__(self, sim):
        self.sim = sim
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(0.05):
            self.sim.step(20)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.done.set()
        self.thread.join(10)


def _quiet(live: LiveProc, seconds: float = 1.0) -> None:
    """Until the live engine's input log has not grown for `seconds`."""
    def logs() -> int:
        return sum(p.stat().st_size for p in (live.db.parent / "genesis-live").glob("*.inputs"))

    deadline = time.monotonic() + 60
    size, since = logs(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = logs()
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
    raise AssertionError("the live engine never went quiet:\n" + live.tail())


def test_live_recovery_replays_a_command_then_an_edit_in_that_order(tmp_path):
    """The real `genesis run --mode live` against the simulator (market still between
    steps): the order is refused, the edit lands at the same event count, kill -9, and the
    restarted engine rebuilds the refusal: nothing was ordered, the next order is g1."""
    start = {"USDT": Decimal(1000), "BTC": Decimal(0), "ETH": Decimal(0)}
    with SimulatorThread(speed="step", balances={k: str(v) for k, v in start.items()}) as sim:
        live = LiveProc(tmp_path, sim, config=config_copy(tmp_path))   # strategies off: only the trader orders
        try:
            with _Stepping(sim):
                live.start()
            _quiet(live)
            cid = live.queue("order", **ORDER)
            live.wait(lambda: live.settled(cid), "the order command")
            status, result = live.rows("SELECT status, result FROM commands WHERE id = ?", (cid,))[0]
            assert status == "refused" and "larger than 5% of equity" in result, result
            _edit(live.config)
            live.wait(lambda: live.count("config") == 1, "the configuration reload")
            (cmd,) = [e for e in live.entries("operator") if e["_rule"] == "order"]
            (edit,) = live.entries("config")
            seqs = dict(live.rows("SELECT kind, seq FROM entries WHERE kind IN ('operator', 'config') "
                                  "AND rule IN ('order', '')"))
            assert cmd["at_event"] == edit["at_event"] and seqs["operator"] < seqs["config"], \
                "an input arrived between the command and the edit: the test proves nothing"
            live.kill()

            with _Stepping(sim):
                live.start()
            assert live.stop() == 0
            (again,) = [e for e in live.entries("operator") if e["_rule"] == "order"]
            assert again["status"] == "refused"
            assert not live.entries("order") and not live.entries("intent")
            assert all(r["not_sent"] == 0 for r in live.entries("reconciled")), live.entries("reconciled")
            assert not account(sim)["orders"]

            # under the edited limit the same order passes now, and is the run's first
            with _Stepping(sim):
                live.start()
            _quiet(live)
            cid = live.queue("order", **ORDER)
            live.wait(lambda: live.settled(cid), "the second order command")
            status, result = live.rows("SELECT status, result FROM commands WHERE id = ?", (cid,))[0]
            assert status == "applied" and "1 order sent (g1)" in result, result
            live.wait(lambda: live.count("fill") >= 1, "the fill")
            assert live.stop() == 0
            agreement(live, sim, start)
            # `genesis tier` rebuilds the live run from its input log alike: one refusal, one order
            rebuilt, _ = rebuild(live.url)
            assert (rebuilt.stats.rejected, rebuilt.order_seq) == (1, 1)
            assert rebuilt.account.positions["BTCUSDT"].qty > 0
        finally:
            live.stop()
