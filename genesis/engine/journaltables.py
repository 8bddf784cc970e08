"""The journal's tables as SQLAlchemy Core objects.

Imported only by what queries the journal through SQLAlchemy (status, backups, other
databases than SQLite, a resumed run): a journal written to SQLite is opened and written
with the standard library's sqlite3 (genesis/engine/journal.py), whose statements create
the same tables (SQLITE_DDL there; tests/test_journal_sqlite.py compares them).
`genesis.engine.journal` hands these names out too (`from genesis.engine.journal import runs`).
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, Float, Integer, LargeBinary, MetaData, String, Table, Text, bindparam,
                        create_engine, event, func, insert, inspect, select)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import DatabaseError, OperationalError

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("schema_version", Integer, nullable=False),
    Column("tier", String(32), nullable=False),
    Column("config_digest", String(64), nullable=False),
    Column("feed_digest", Text, nullable=False),   # a feed digest, with a script's or an exchange URL: longer than 64
    Column("feed_paths", Text, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("finished", Integer, nullable=False, default=0),
    Column("config_files", Text, nullable=False, default="{}"),  # the configuration the run started with
)

entries = Table(
    "entries", metadata,
    Column("run_id", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("rule", String(64), nullable=False, default=""),
    Column("symbol", String(20), nullable=False, default=""),
    Column("data", Text, nullable=False),
)

commands = Table(
    "commands", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False, default="queued"),   # queued | applied | refused
    Column("result", Text, nullable=False, default=""),
    Column("run_id", Integer, nullable=False, default=0),
    Column("at_event", BigInteger, nullable=False, default=0),
    # the journal seq of its `operator` entry: where it applied among the run's entries, so
    # that a rebuild re-applies it before or after an edit made at the same event count
    Column("seq", BigInteger, nullable=False, default=0),
)

heartbeat = Table(
    "heartbeat", metadata,
    Column("run_id", Integer, primary_key=True),
    Column("wall_ms", BigInteger, nullable=False),   # wall clock: only to tell a CLI that an engine is alive
)

progress = Table(
    "progress", metadata,
    Column("run_id", Integer, primary_key=True),
    Column("events", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("equity", Float, nullable=False),
)

status = Table(
    "status", metadata,   # the latest status document of each run (genesis.engine.statusdoc), for screens
    Column("run_id", Integer, primary_key=True),
    Column("ts", BigInteger, nullable=False),        # event time
    Column("doc", Text, nullable=False),             # JSON
)

snapshots = Table(
    "snapshots", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, nullable=False, index=True),
    Column("seq", BigInteger, nullable=False),       # the journal seq when taken: entries up to it are stored
    Column("inputs", BigInteger, nullable=False),    # input events processed
    Column("segment", Integer, nullable=False),      # live: the input-log segment that follows it
    Column("ts", BigInteger, nullable=False),        # event time
    Column("version", Integer, nullable=False),      # genesis.engine.snapshots.STATE_VERSION
    Column("static_digest", String(64), nullable=False),   # the compiled configuration's layout
    Column("digest", String(64), nullable=False),    # sha256 of `state`
    Column("meta", Text, nullable=False),            # JSON: tier, configuration files, the session's pending work
    Column("state", LargeBinary, nullable=False),
)

TABLE_NAMES = ("metadata", "runs", "entries", "commands", "heartbeat", "progress", "status", "snapshots")

# the tables, and the SQLAlchemy names Journal's SQLAlchemy paths use (taken from here, so
# that importing genesis.engine.journal imports no SQLAlchemy)
__all__ = [*TABLE_NAMES, "DatabaseError", "OperationalError", "bindparam", "create_engine", "event", "func", "insert",
           "inspect", "select", "sql_text"]
