"""The journal's writer thread (live mode): writes are stored one at a time in the order
they were handed over, and a failed write is written again first, so the stored entries
never have a hole (a restart skips regenerated entries up to the highest stored seq)."""
from __future__ import annotations

import sqlite3
import threading
import zlib

import pytest

from genesis.engine.journal import Journal, JournalError


def stored_seqs(path) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT seq FROM entries ORDER BY seq")]
    finally:
        con.close()


def test_a_failed_background_write_goes_first_next_time(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal(f"sqlite:///{path}")
    journal.open_run("sniper", {"genesis.yaml": "x"}, "digest", [], "live")
    journal.use_writer_thread()
    for i in range(3):
        journal.append(i, "note", data={"i": i})
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")            # another process holds the database
    future, rows = journal.flush_later()
    with pytest.raises(JournalError, match="locked"):
        future.result(timeout=30)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert stored_seqs(path) == []
    for i in range(3, 5):
        journal.append(i, "note", data={"i": i})
    journal.flush_later()[0].result(timeout=30)
    assert stored_seqs(path) == [1, 2, 3, 4, 5]   # the failed batch first, nothing lost, no hole
    journal.append(5, "note")
    journal.close()
    assert stored_seqs(path) == [1, 2, 3, 4, 5, 6]


def test_the_command_poll_sees_commands_queued_by_another_process_and_their_settling(tmp_path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    engine_side = Journal(url)
    engine_side.open_run("sniper", {"genesis.yaml": "x"}, "digest", [], "live")
    assert engine_side.has_queued_commands() is False
    tool_side = Journal(url)                               # `genesis set` / `genesis order` write here
    command_id = tool_side.queue_command("pause", {})
    assert engine_side.has_queued_commands() is True       # a later commit is seen by the kept connection
    engine_side.settle_command(command_id, "applied", "ok", at_event=1)
    assert engine_side.has_queued_commands() is False
    tool_side.close()
    engine_side.close()


def test_a_journal_another_process_is_creating_at_the_same_moment_opens(tmp_path):
    from sqlalchemy import event  # noqa: PLC0415

    from genesis.engine.journal import progress  # noqa: PLC0415

    path = tmp_path / "j.db"
    raced = []

    def another_process_creates_it_first(target, connection, **kw):
        if not raced:   # between create_all's "does it exist?" and its CREATE TABLE
            raced.append(1)
            other = sqlite3.connect(path)
            other.execute("CREATE TABLE progress (run_id INTEGER NOT NULL PRIMARY KEY, events BIGINT NOT NULL, "
                          "ts BIGINT NOT NULL, equity FLOAT NOT NULL)")
            other.commit()
            other.close()

    event.listen(progress, "before_create", another_process_creates_it_first)
    try:   # through SQLAlchemy (a driver named): plain sqlite:/// files are created with IF NOT EXISTS
        journal = Journal(f"sqlite+pysqlite:///{path}")
    finally:
        event.remove(progress, "before_create", another_process_creates_it_first)
    assert raced
    journal.open_run("sniper", {"genesis.yaml": "x"}, "digest", [], "live")
    journal.checkpoint(1, 1, 1000.0)
    journal.close()


def test_the_password_comes_from_storage_password_env_and_is_never_shown(monkeypatch):
    from genesis.engine.journal import _shown, journal_url

    settings = {"storage": {"url": "postgresql+psycopg://genesis@db.local:5432/genesis",
                            "password_env": "GENESIS_TEST_DB_PASSWORD"}}
    monkeypatch.delenv("GENESIS_TEST_DB_PASSWORD", raising=False)
    assert journal_url(settings) == settings["storage"]["url"]   # unset: the URL as written
    monkeypatch.setenv("GENESIS_TEST_DB_PASSWORD", "s3cr:t/pw")
    url = journal_url(settings)
    assert url.startswith("postgresql+psycopg://genesis:") and url.endswith("@db.local:5432/genesis")
    from sqlalchemy.engine import make_url

    assert make_url(url).password == "s3cr:t/pw"                 # escaped in the URL, read back whole
    assert "s3cr" not in _shown(url)
    assert journal_url(settings, "sqlite:///other.db") == "sqlite:///other.db"   # --db for SQLite: untouched
    with_password = {"storage": dict(settings["storage"], url="postgresql+psycopg://genesis:given@db.local/g")}
    assert journal_url(with_password) == with_password["storage"]["url"]      # a URL's own password stays


def test_a_snapshot_given_as_a_function_is_made_and_stored_in_the_writer_thread(tmp_path):
    """Live: the run loop hands over the pickled state; compressing it and taking its
    digest happen in the journal's writer thread, and what is stored reads back intact."""
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}")
    journal.open_run("sniper", {"genesis.yaml": "x"}, "digest", [], "live")
    journal.use_writer_thread()
    journal.append(1, "note")
    made_in: list[str] = []
    raw = b"engine state " * 1000

    def state() -> bytes:
        made_in.append(threading.current_thread().name)
        return zlib.compress(raw, 1)

    journal.save_snapshot({"seq": journal.seq, "inputs": 1, "segment": 0, "ts": 1, "version": 1,
                           "static_digest": "s", "meta": {"tier": "sniper"}}, state, keep=2)
    journal.writer.submit(lambda: None).result(timeout=30)   # what was handed over before is done
    assert len(made_in) == 1 and made_in[0].startswith("genesis-journal")
    (stored,) = journal.snapshots()
    assert stored.seq == 1
    assert zlib.decompress(journal.snapshot_state(stored.id)) == raw   # read back against its digest
    journal.close()
