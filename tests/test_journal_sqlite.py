"""A SQLite journal is opened and written with sqlite3 (no SQLAlchemy import at start-up):
the same tables, the same rows and the same errors as through SQLAlchemy."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from genesis.engine.journal import SQLITE_DDL, Journal, JournalError, sqlite_file

ROOT = Path(__file__).resolve().parents[1]


def test_the_tables_are_those_sqlalchemy_creates():
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from genesis.engine.journaltables import metadata

    dialect = sqlite.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        statements += [str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)) for index in table.indexes]
    assert tuple(statements) == SQLITE_DDL


def test_which_urls_sqlite3_opens():
    assert sqlite_file("sqlite://") == ":memory:"
    assert sqlite_file("sqlite:///genesis.db") == "genesis.db"
    assert sqlite_file("sqlite:////var/lib/genesis.db") == "/var/lib/genesis.db"
    for other in ("sqlite+pysqlite:///j.db", "sqlite:///j.db?timeout=5", "postgresql://u@h/db", "sqlite:///"):
        assert sqlite_file(other) is None


def _one_run(url: str) -> None:
    journal = Journal(url, batch_size=2)
    info = journal.open_run("sniper", {"genesis.yaml": "tier: sniper\n"}, "feed", [Path("a.gz")], "replay")
    assert not info.resumed and info.run_id == 1
    for n in range(5):
        journal.append(1000 + n, "fire", "r1", "BTCUSDT", {"n": n, "x": float("nan") if n == 3 else n / 3})
    journal.checkpoint(5, 1004, 999.5)
    journal.publish_status({"at_ms": 1004, "mode": "normal"})
    journal.save_snapshot({"seq": journal.seq, "inputs": 5, "segment": 0, "ts": 1004, "version": 1,
                           "static_digest": "s", "meta": {"tier": "sniper"}}, b"state", keep=1)
    journal.save_snapshot({"seq": journal.seq, "inputs": 5, "segment": 0, "ts": 1005, "version": 1,
                           "static_digest": "s", "meta": {"tier": "sniper"}}, b"state2", keep=1)
    journal.finish()
    journal.close()


def _contents(path: Path) -> dict:
    db = sqlite3.connect(path)
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {"schema": db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
           "mode": db.execute("PRAGMA journal_mode").fetchall()}
    for table in tables:
        out[table] = db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    db.close()
    return out


def test_a_run_written_with_sqlite3_is_the_one_sqlalchemy_writes(tmp_path):
    _one_run(f"sqlite:///{tmp_path / 'plain.db'}")                # sqlite3
    _one_run(f"sqlite+pysqlite:///{tmp_path / 'core.db'}")        # SQLAlchemy
    plain, core = _contents(tmp_path / "plain.db"), _contents(tmp_path / "core.db")
    assert plain == core
    assert len(plain["entries"]) == 5 and plain["runs"][0][7] == 1 and len(plain["snapshots"]) == 1


def test_what_sqlite3_wrote_reads_back_through_sqlalchemy_and_a_run_resumes(tmp_path):
    from sqlalchemy import select

    from genesis.engine.journal import entries

    url = f"sqlite:///{tmp_path / 'j.db'}"
    journal = Journal(url)
    journal.open_run("sniper", {"genesis.yaml": "x"}, "feed", [], "live")
    for n in range(3):
        journal.append(n, "fire", "r", "", {"n": n})
    journal.flush()
    rows = journal.entries()
    with journal.engine.connect() as conn:
        assert conn.execute(select(entries).order_by(entries.c.seq)).all() == rows
    assert [(r.seq, r.kind, r.data) for r in rows] == [(1, "fire", '{"n":0}'), (2, "fire", '{"n":1}'),
                                                       (3, "fire", '{"n":2}')]
    journal.close()                                    # not finished: the next start continues it
    assert journal.entries() == rows                   # a closed journal opens its file again to read
    journal.close()
    again = Journal(url)
    info = again.open_run("sniper", {"genesis.yaml": "x"}, "feed", [], "live")
    assert info.resumed and info.skip_until_seq == 3 and info.run_id == 1
    again.close()


def test_a_journal_in_memory_is_one_database_for_both():
    from sqlalchemy import func, select

    from genesis.engine.journal import entries

    journal = Journal("sqlite://")
    journal.open_run("sniper", {}, "feed", [], "replay")
    journal.append(1, "fire")
    journal.flush()
    with journal.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(entries)).scalar() == 1
    journal.append(2, "fire")
    journal.flush()
    assert [r.seq for r in journal.entries()] == [1, 2]
    journal.close()


def test_a_damaged_or_old_journal_file_is_refused_in_words(tmp_path):
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(JournalError, match="not a readable SQLite database"):
        Journal(f"sqlite:///{damaged}")
    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, tier TEXT)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="older Genesis"):
        Journal(f"sqlite:///{old}")


def test_opening_and_writing_a_sqlite_journal_imports_no_sqlalchemy(tmp_path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    probe = ("import sys\nfrom genesis.engine.journal import Journal\n"
             f"j = Journal({url!r})\n"
             "j.open_run('sniper', {}, 'feed', [], 'replay')\nj.append(1, 'fire')\nj.checkpoint(1, 1, 1.0)\n"
             "j.publish_status({})\nassert len(j.entries()) == 1\nj.finish()\nj.close()\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_new_journal_file_appears_with_its_tables_and_leaves_nothing_else(tmp_path):
    """The file is made beside it and linked into place: whoever sees it finds every table."""
    db = tmp_path / "journal.db"
    journal = Journal(f"sqlite:///{db}")
    journal.close()
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "entries", "commands", "heartbeat", "progress", "status", "snapshots"} <= tables
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("journal.db")) == []
    with pytest.raises(JournalError):
        Journal(f"sqlite:///{tmp_path / 'no-such-folder' / 'journal.db'}")
    assert not (tmp_path / "no-such-folder").exists()
