"""The journal: audit log and recovery log in one SQL table.

Every decision (a rule firing with the values it saw), action, order, fill, state
change and notification is an entry with a sequence number. Raw market data is not
copied row by row: the input files are the record (their paths and digest are kept in
`runs`). Entries are buffered and written in batches, and `flush()` is called before
any order leaves the process, so a decision is durable before the order it causes.

Recovery: the pipeline is deterministic, so after a crash the input is replayed from
the start and produces the same entries in the same order; entries up to the last
sequence number already in the journal are not written again. The journal of a
recovered run is therefore identical to that of an uninterrupted one.

Start-up: a SQLite journal (`sqlite://` in memory, `sqlite:///FILE`) is opened, created and
written with the standard library's sqlite3, in the same tables SQLAlchemy would create
(SQLITE_DDL); SQLAlchemy is imported only for what else reads or writes it (`Journal.engine`,
made on first use: a resumed run, commands, status, snapshots listed) and for other
databases. Every write is the same transaction on the same file either way.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import msgspec

SCHEMA_VERSION = 2
ENTRY_COLUMNS = ("run_id", "seq", "ts", "kind", "rule", "symbol", "data")
_TABLES = (   # the names genesis/engine/journaltables.py defines (TABLE_NAMES)
    "metadata", "runs", "entries", "commands", "heartbeat", "progress", "status", "snapshots")

# The tables of genesis/engine/journaltables.py as SQLAlchemy creates them in SQLite
# (tests/test_journal_sqlite.py checks that they are the same statements).
SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS commands (\n\tid INTEGER NOT NULL, \n\tkind VARCHAR(16) NOT NULL, \n\tpayload TEXT "
    "NOT NULL, \n\tstatus VARCHAR(12) NOT NULL, \n\tresult TEXT NOT NULL, \n\trun_id INTEGER NOT NULL, \n\tat_event "
    "BIGINT NOT NULL, \n\tseq BIGINT NOT NULL, \n\tPRIMARY KEY (id)\n)",
    "CREATE TABLE IF NOT EXISTS entries (\n\trun_id INTEGER NOT NULL, \n\tseq BIGINT NOT NULL, \n\tts BIGINT NOT "
    "NULL, \n\tkind VARCHAR(24) NOT NULL, \n\trule VARCHAR(64) NOT NULL, \n\tsymbol VARCHAR(20) NOT NULL, \n\tdata "
    "TEXT NOT NULL, \n\tPRIMARY KEY (run_id, seq)\n)",
    "CREATE TABLE IF NOT EXISTS heartbeat (\n\trun_id INTEGER NOT NULL, \n\twall_ms BIGINT NOT NULL, \n\tPRIMARY "
    "KEY (run_id)\n)",
    "CREATE TABLE IF NOT EXISTS progress (\n\trun_id INTEGER NOT NULL, \n\tevents BIGINT NOT NULL, \n\tts BIGINT "
    "NOT NULL, \n\tequity FLOAT NOT NULL, \n\tPRIMARY KEY (run_id)\n)",
    "CREATE TABLE IF NOT EXISTS runs (\n\tid INTEGER NOT NULL, \n\tschema_version INTEGER NOT NULL, \n\ttier "
    "VARCHAR(32) NOT NULL, \n\tconfig_digest VARCHAR(64) NOT NULL, \n\tfeed_digest TEXT NOT NULL, \n\tfeed_paths "
    "TEXT NOT NULL, \n\tmode VARCHAR(16) NOT NULL, \n\tfinished INTEGER NOT NULL, \n\tconfig_files TEXT NOT NULL, "
    "\n\tPRIMARY KEY (id)\n)",
    "CREATE TABLE IF NOT EXISTS snapshots (\n\tid INTEGER NOT NULL, \n\trun_id INTEGER NOT NULL, \n\tseq BIGINT NOT "
    "NULL, \n\tinputs BIGINT NOT NULL, \n\tsegment INTEGER NOT NULL, \n\tts BIGINT NOT NULL, \n\tversion INTEGER "
    "NOT NULL, \n\tstatic_digest VARCHAR(64) NOT NULL, \n\tdigest VARCHAR(64) NOT NULL, \n\tmeta TEXT NOT NULL, "
    "\n\tstate BLOB NOT NULL, \n\tPRIMARY KEY (id)\n)",
    "CREATE INDEX IF NOT EXISTS ix_snapshots_run_id ON snapshots (run_id)",
    "CREATE TABLE IF NOT EXISTS status (\n\trun_id INTEGER NOT NULL, \n\tts BIGINT NOT NULL, \n\tdoc TEXT NOT NULL, "
    "\n\tPRIMARY KEY (run_id)\n)",
)
_INSERT_ENTRY = f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})"
_SNAPSHOT_COLUMNS = ("run_id", "seq", "inputs", "segment", "ts", "version", "static_digest", "digest", "meta", "state")


def __getattr__(name: str):
    """The SQLAlchemy tables (`from genesis.engine.journal import runs`), imported on first use."""
    if name in _TABLES:
        from genesis.engine import journaltables  # noqa: PLC0415 - SQLAlchemy only when a table is asked for

        return getattr(journaltables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _database_errors() -> tuple:
    """SQLAlchemy's database errors, which the journal raises (imported when one is caught)."""
    from sqlalchemy.exc import DatabaseError, OperationalError  # noqa: PLC0415

    return DatabaseError, OperationalError


def sqlite_file(url: str) -> str | None:
    """The file of a plain SQLite URL (":memory:" for `sqlite://`), which the journal opens
    with sqlite3; None for any other URL (another database, a driver, options after '?')."""
    if url in ("sqlite://", "sqlite:///:memory:"):
        return ":memory:"
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///") and not any(c in url for c in "?%#"):
        return url[len("sqlite:///"):]
    return None


def _create_sqlite_file(path: str) -> None:
    """Make a new journal file with its tables in a temporary file beside it and link it
    into place, so that a reader (`genesis status`, a screen) never opens a journal whose
    tables are not there yet. When that cannot be done (a folder that does not exist,
    another process made the file first), nothing is left behind and opening goes on as
    usual, which says what is wrong."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return
    import secrets  # noqa: PLC0415 - only a new journal file needs it (a replay's journal is in memory)

    # sqlite3 makes the file itself, with the permissions it always gives a new journal
    temp = os.path.join(folder, f".journal-{os.getpid()}-{secrets.token_hex(6)}.db")
    try:
        db = sqlite3.connect(temp)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in SQLITE_DDL:
                db.execute(statement)
            db.commit()
        finally:
            db.close()
        os.link(temp, path)
    except (OSError, sqlite3.Error):
        pass   # made meanwhile by another process, or no links here: opened as usual
    finally:
        for leftover in (temp, temp + "-wal", temp + "-shm"):
            try:
                os.unlink(leftover)
            except OSError:
                pass


class _Row(NamedTuple):
    """One journal entry as read back (the columns of `entries`)."""

    run_id: int
    seq: int
    ts: int
    kind: str
    rule: str
    symbol: str
    data: str


class StoredSnapshot(NamedTuple):
    """One snapshot's record (its state is read separately: it is large)."""

    id: int
    seq: int
    inputs: int
    segment: int
    ts: int
    version: int
    static_digest: str
    digest: str
    meta: dict


class Change(NamedTuple):
    """Something that changed a run besides its input: an accepted configuration edit or
    an applied operator command."""

    at_event: int   # input events processed when it applied
    seq: int        # the journal seq it applied at: the order things happened in
    edit: bool      # a configuration edit (data: {"files", "risk_counted"}), else a command
    kind: str       # "config" for an edit, else the command's kind
    data: dict      # the edit, or the command's payload


def recorded_changes(conn, run_id: int, scripted: bool = False) -> list[Change]:
    """What changed a run besides its input, in the order it happened: accepted
    configuration edits and operator commands (those queued by `genesis` commands or,
    with `scripted`, every command the run applied, a replay's --commands script
    included), ordered by the journal seq they applied at. An edit and a command at the
    same event count are re-applied in the order they happened, whichever came first."""
    from genesis.engine.journaltables import commands, entries, select  # noqa: PLC0415

    changes = []
    for r in conn.execute(select(entries.c.seq, entries.c.data).where(
            entries.c.run_id == run_id, entries.c.kind == "config").order_by(entries.c.seq)):
        data = json.loads(r.data)
        changes.append(Change(data["at_event"], r.seq, True, "config",
                              {"files": data["files"], "risk_counted": data.get("risk_counted", False)}))
    if scripted:
        for r in conn.execute(select(entries.c.seq, entries.c.rule, entries.c.data).where(
                entries.c.run_id == run_id, entries.c.kind == "operator").order_by(entries.c.seq)):
            data = json.loads(r.data)
            if "payload" in data:
                changes.append(Change(data["at_event"], r.seq, False, r.rule, data["payload"]))
    else:
        # a command settled by an older Genesis has no seq: after the edits of its event count
        for r in conn.execute(select(commands).where(commands.c.run_id == run_id,
                                                     commands.c.status.notin_(("queued", "dropped")))
                              .order_by(commands.c.at_event, commands.c.id)):
            changes.append(Change(r.at_event, r.seq or _UNKNOWN_SEQ, False, r.kind, json.loads(r.payload)))
    changes.sort(key=lambda c: (c.at_event, c.seq))   # stable: commands of unknown seq keep their order
    return changes


_UNKNOWN_SEQ = 2 ** 62


class JournalError(Exception):
    """The journal cannot be used; the message says why and what to do."""


@dataclass
class RunInfo:
    """Which run this journal continues."""

    run_id: int
    resumed: bool
    skip_until_seq: int     # entries with seq <= this are already stored
    config_files: dict      # {path: text} the run started with
    changes: list           # [Change]: edits accepted and commands applied since, in order


def journal_url(settings: dict, db: str | None = None) -> str:
    """The journal's URL: `db` when given, else genesis.yaml `storage.url`. When
    `storage.password_env` names a variable that is set, its value is the password of a
    URL that has none (the URL in the files never holds it)."""
    url = db or settings["storage"]["url"]
    name = settings["storage"].get("password_env")
    password = os.environ.get(name) if name else None
    if not password or url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    parsed = make_url(url)
    if parsed.password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def _shown(url: str) -> str:
    """A database URL fit to print: never its credentials."""
    return url.split("@")[-1] if "@" in url else url


def url_problem(url: str) -> str | None:
    """Why `url` cannot name a journal database (not a URL, or a kind of database
    SQLAlchemy does not know), or None. Never shows what comes before an '@'."""
    if sqlite_file(url) is not None:
        return None
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        make_url(url).get_dialect()
    except ArgumentError:   # NoSuchModuleError (an unknown database kind) is one too
        shown = url.split("@")[-1]
        hint = f"; for a SQLite file write sqlite:///{url}" if "://" not in url and "@" not in url else ""
        return (f"'{shown}' is not a database URL (e.g. sqlite:///genesis.db or "
                f"postgresql+psycopg://user@host/genesis){hint}")
    return None


def describe_error(exc: Exception, url: str) -> str:
    """A database failure in plain words: locked, not a database, or what the driver said."""
    text = str(getattr(exc, "orig", exc))
    shown = _shown(url)
    if "locked" in text:
        return f"the journal {shown} is locked by another process (is another Genesis running on it?)"
    if "not a database" in text or "malformed" in text or "file is encrypted" in text:
        return f"the journal {shown} is not a readable SQLite database (corrupt or another kind of file); " \
               "move it aside to start a new journal — nothing was written to it"
    return f"the journal {shown} cannot be used: {text}"


class Journal:
    """Batched, append-only journal over any SQLAlchemy URL (SQLite WAL by default; a
    SQLite journal this process writes is opened with sqlite3, see the module's docstring)."""

    def __init__(self, url: str, batch_size: int = 500, create: bool = True):
        self.url = url
        self.batch_size = batch_size
        self.buffer: list[dict] = []
        self.seq = 0
        self.run_id = 0
        self.skip_until = 0
        self.writes = 0
        self._slowest_write_s: float | None = None   # since take_slowest_write_ms last read it
        self.writer = None   # a one-thread executor once use_writer_thread() is called
        self._unwritten: list[dict] = []   # rows of a failed write, written first next time
        self._retrying = None              # the writer's attempt at those rows alone, while under way
        self.on_write_failed = None   # on_write_failed(error text, ms), on the writing thread, after each write
        # that failed: entries, a checkpoint, a heartbeat
        self._raw = None     # the DBAPI connection entries are inserted through (see _write)
        self._poll_raw = None   # the poll thread's: has_queued_commands() and beat()
        self._engine = None     # the SQLAlchemy engine, made on first use (see `engine`)
        self._poll_sql = None   # the poll thread's statements for this database, compiled on first use
        self._create = create
        # a SQLite journal of our own: one sqlite3 connection (any thread, one at a time)
        self._path = sqlite_file(url) if create else None
        self._connection = None
        self._lock = threading.RLock()
        if self._path is None:
            self._open_with_sqlalchemy(url, create)
            return
        self._errors: tuple = (sqlite3.Error,)
        if self._path != ":memory:" and not os.path.exists(self._path):
            _create_sqlite_file(self._path)
        try:
            db = self._db
            columns = {table: {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                       for table in ("runs", "commands")}
            if columns["runs"] and "config_files" not in columns["runs"]:
                self._close_sqlite()
                raise JournalError(f"the journal {_shown(url)} was written by an older Genesis; move it aside "
                                   "to start a new one (nothing was changed in it)")
            for statement in SQLITE_DDL:
                db.execute(statement)
            if columns["commands"] and "seq" not in columns["commands"]:   # from before commands kept their seq
                db.execute("ALTER TABLE commands ADD COLUMN seq BIGINT NOT NULL DEFAULT 0")
            db.commit()
        except sqlite3.Error as exc:
            self._close_sqlite()
            raise JournalError(describe_error(exc, url)) from None

    @property
    def _db(self) -> sqlite3.Connection:
        """The sqlite3 connection of a SQLite journal, opened again when used after close()."""
        if self._connection is None:
            db = sqlite3.connect(self._path, check_same_thread=False)
            try:
                db.execute("PRAGMA busy_timeout=2000")
                db.execute("PRAGMA journal_mode=WAL")   # writes to the file: only for our own journal
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                db.close()
                raise
            self._connection = db
        return self._connection

    def _close_sqlite(self) -> None:
        db, self._connection = self._connection, None
        if db is not None:
            db.close()

    def _open_with_sqlalchemy(self, url: str, create: bool) -> None:
        from genesis.engine.journaltables import DatabaseError, OperationalError, metadata  # noqa: PLC0415
        from genesis.engine.journaltables import inspect, sql_text  # noqa: PLC0415

        try:
            engine = self.engine
            with engine.connect() as conn:  # touch the file: a corrupt one fails here
                tables = inspect(conn)
                if tables.has_table("runs") and "config_files" not in {c["name"] for c in tables.get_columns("runs")}:
                    raise JournalError(f"the journal {_shown(url)} was written by an older Genesis; move it aside "
                                       "to start a new one (nothing was changed in it)")
                no_seq = tables.has_table("commands") and "seq" not in {c["name"] for c in
                                                                       tables.get_columns("commands")}
            if create:
                for attempt in range(len(metadata.tables) + 1):
                    try:
                        metadata.create_all(engine)
                        break
                    except OperationalError as exc:   # another process created a table between check and create
                        if "already exists" not in str(exc) or attempt == len(metadata.tables):
                            raise
                if no_seq:   # a journal from before commands recorded their seq
                    with engine.begin() as conn:
                        conn.execute(sql_text("ALTER TABLE commands ADD COLUMN seq BIGINT NOT NULL DEFAULT 0"))
        except (DatabaseError, OperationalError) as exc:
            raise JournalError(describe_error(exc, url)) from None
        self._errors = (engine.dialect.loaded_dbapi.Error, DatabaseError, OperationalError)

    @property
    def engine(self):
        """The SQLAlchemy engine over this journal (imports SQLAlchemy; made on first use).
        A journal in memory is the one sqlite3 connection, shared."""
        if self._engine is None:
            from genesis.engine.journaltables import create_engine, event  # noqa: PLC0415

            if self._path == ":memory:":
                from sqlalchemy.pool import StaticPool  # noqa: PLC0415

                self._engine = create_engine("sqlite://", creator=lambda: self._db, poolclass=StaticPool)
                return self._engine
            engine = create_engine(self.url, future=True)
            if self.url.startswith("sqlite"):
                create = self._create

                @event.listens_for(engine, "connect")
                def _pragmas(dbapi_conn, _record):
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA busy_timeout=2000")
                    if create:  # switching to WAL writes to the file: only for our own journal
                        cur.execute("PRAGMA journal_mode=WAL")
                        cur.execute("PRAGMA synchronous=NORMAL")
                    cur.close()
            self._engine = engine
        return self._engine

    @staticmethod
    def _sql_error(exc: sqlite3.Error, statement: str) -> Exception:
        """A sqlite3 error as SQLAlchemy raises it (callers catch SQLAlchemy's errors)."""
        from sqlalchemy.exc import DBAPIError  # noqa: PLC0415 - only on a failure

        return DBAPIError.instance(statement, None, exc, sqlite3.Error)

    def _run(self, statements: list) -> None:
        """[(SQL, parameters)] in one transaction on the sqlite3 connection; a failure is
        rolled back and raised as SQLAlchemy's error."""
        with self._lock:
            sql = ""
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise self._sql_error(exc, sql) from exc

    def _compiled(self, statement, column_keys=None) -> tuple[str, tuple | None]:
        """(SQL text for this database's DBAPI, the parameter names in order when its
        parameter style is positional, else None: pass a dict)."""
        compiled = statement.compile(dialect=self.engine.dialect, column_keys=column_keys)
        return str(compiled), tuple(compiled.positiontup) if compiled.positional else None

    def open_run(self, tier: str, config_files: dict, feed_digest: str, feed_paths: list, mode: str) -> RunInfo:
        """Continue the unfinished run of this tier, feed and mode, or start a new one.

        A continued run brings back the configuration it started with and every edit
        accepted during it, so that replaying its input reproduces its journal."""
        digest = hashlib.sha256(json.dumps(config_files, sort_keys=True).encode()).hexdigest()
        if self._path is not None:
            started = self._start_run(tier, config_files, digest, feed_digest, feed_paths, mode)
            if started is not None:
                return started
        from genesis.engine.journaltables import DatabaseError, OperationalError  # noqa: PLC0415
        from genesis.engine.journaltables import entries, func, insert, runs, select  # noqa: PLC0415

        try:
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(runs.c.id, runs.c.config_files).where(
                        runs.c.tier == tier, runs.c.feed_digest == feed_digest, runs.c.mode == mode,
                        runs.c.finished == 0).order_by(runs.c.id.desc())).first()
                if row:
                    self.run_id = row.id
                    last = conn.execute(select(func.max(entries.c.seq)).where(entries.c.run_id == row.id)).scalar()
                    self.skip_until = int(last or 0)
                    return RunInfo(self.run_id, True, self.skip_until, json.loads(row.config_files),
                                   recorded_changes(conn, row.id))
                result = conn.execute(insert(runs).values(
                    schema_version=SCHEMA_VERSION, tier=tier, config_digest=digest, feed_digest=feed_digest,
                    feed_paths=json.dumps([os.fspath(p) for p in feed_paths]), mode=mode, finished=0,
                    config_files=json.dumps(config_files, sort_keys=True)))
                self.run_id = result.inserted_primary_key[0]
                self.skip_until = 0
                return RunInfo(self.run_id, False, 0, config_files, [])
        except (DatabaseError, OperationalError) as exc:
            raise JournalError(describe_error(exc, self.url)) from None

    def _start_run(self, tier: str, config_files: dict, digest: str, feed_digest: str, feed_paths: list,
                   mode: str) -> RunInfo | None:
        """open_run on the sqlite3 connection: a new run, or None when an unfinished one
        is there to continue (that is read through SQLAlchemy)."""
        with self._lock:
            try:
                if self._db.execute("SELECT id FROM runs WHERE tier = ? AND feed_digest = ? AND mode = ? AND "
                                    "finished = 0 LIMIT 1", (tier, feed_digest, mode)).fetchone() is not None:
                    return None
                cursor = self._db.execute(
                    "INSERT INTO runs (schema_version, tier, config_digest, feed_digest, feed_paths, mode, finished, "
                    "config_files) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                    (SCHEMA_VERSION, tier, digest, feed_digest, json.dumps([os.fspath(p) for p in feed_paths]), mode,
                     json.dumps(config_files, sort_keys=True)))
                self._db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise JournalError(describe_error(exc, self.url)) from None
        self.run_id = cursor.lastrowid
        self.skip_until = 0
        return RunInfo(self.run_id, False, 0, config_files, [])

    def append(self, ts: int, kind: str, rule: str = "", symbol: str = "", data: dict | None = None) -> int:
        """Add one entry (buffered); returns its sequence number."""
        self.seq += 1
        if self.seq > self.skip_until:
            self.buffer.append({"run_id": self.run_id, "seq": self.seq, "ts": ts, "kind": kind, "rule": rule,
                                "symbol": symbol, "data": encode_data(data)})
            if len(self.buffer) >= self.batch_size:
                self.flush()
        return self.seq

    def flush(self) -> None:
        """Write buffered entries in one transaction (after any write still in flight)."""
        if not self.buffer and not self._unwritten:
            return
        rows, self.buffer = self.buffer, []
        if self.writer is not None:
            self.writer.submit(self._write, rows).result()
        else:
            self._write(rows)

    def flush_later(self):
        """Hand the buffered entries (or, with none, the rows of a failed write) to the
        writer thread; returns (future, rows) or None.
        Writes run one at a time, in the order they were handed over, so the stored
        entries never have a hole that a crash could leave behind a later one."""
        if self.writer is None:
            return None
        if not self.buffer:
            # the rows of a failed write are tried again without waiting for new entries,
            # one attempt at a time
            if not self._unwritten or (self._retrying is not None and not self._retrying.done()):
                return None
            self._retrying = self.writer.submit(self._write, [])
            return self._retrying, []
        rows, self.buffer = self.buffer, []
        return self.writer.submit(self._write, rows), rows

    def use_writer_thread(self) -> None:
        """Write from one background thread (the live session keeps its event loop free)."""
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        if self.writer is None:
            self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genesis-journal")

    def _write(self, rows: list) -> None:
        # rows a failed write kept go first: entries are stored in seq order, never with a
        # hole that a crash could leave behind a later batch (nothing is lost either)
        rows = self._unwritten + rows
        if not rows:
            return
        # one DBAPI connection (sqlite3's, else one from SQLAlchemy's pool) and a precompiled
        # insert: a third of the interpreter time of a Core insert per batch, which matters
        # because the live session's writer thread holds the GIL for it while market data waits
        started = time.perf_counter()
        try:
            if self._path is not None:
                self._write_sqlite(rows)
            else:
                self._write_dbapi(rows)
        except self._errors as exc:
            self._unwritten = rows
            self._drop_raw()
            error = describe_error(exc, self.url)
            if self.on_write_failed is not None:
                self.on_write_failed(error, (time.perf_counter() - started) * 1000.0)
            raise JournalError(error) from None
        self._unwritten = []
        self.writes += 1
        took = time.perf_counter() - started
        if self._slowest_write_s is None or took > self._slowest_write_s:
            self._slowest_write_s = took

    def _write_sqlite(self, rows: list) -> None:
        with self._lock:
            try:
                self._db.executemany(_INSERT_ENTRY, [tuple(row[k] for k in ENTRY_COLUMNS) for row in rows])
                self._db.commit()
            except sqlite3.Error:
                self._db.rollback()
                raise

    def _write_dbapi(self, rows: list) -> None:
        if self._raw is None:
            from genesis.engine.journaltables import entries, insert  # noqa: PLC0415

            self._insert_sql, self._insert_order = self._compiled(insert(entries), ENTRY_COLUMNS)
            self._raw = self.engine.raw_connection()
        order = self._insert_order
        params = [tuple(row[k] for k in order) for row in rows] if order is not None else rows
        cursor = self._raw.cursor()
        try:
            cursor.executemany(self._insert_sql, params)
        finally:
            cursor.close()
        self._raw.commit()

    def take_slowest_write_ms(self) -> float | None:
        """The slowest write since the previous call, in ms; None when there was none.
        Another thread may call it (the health probe)."""
        slowest, self._slowest_write_s = self._slowest_write_s, None
        return None if slowest is None else round(slowest * 1000.0, 3)

    def _drop_raw(self) -> None:
        """Give the insert connection back after a failure (rolled back; the next write
        takes a fresh one)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.rollback()
                raw.close()
            except self._errors[0]:
                raw.invalidate()

    def checkpoint(self, events: int, ts: int, equity: float) -> None:
        """Record progress (how far the input has been processed) with the entries. With
        a writer thread both go to it without waiting (in order with every other write)."""
        if self.writer is not None:
            rows, self.buffer = self.buffer, []
            self.writer.submit(self._checkpoint, rows, events, ts, equity)
            return
        self.flush()
        self._progress(events, ts, equity)

    def _checkpoint(self, rows: list, events: int, ts: int, equity: float) -> None:
        try:
            self._write(rows)
        except JournalError:
            return   # the rows are kept (written first with the next batch); progress waits for them
        self._progress(events, ts, equity)

    def _progress(self, events: int, ts: int, equity: float) -> None:
        if self._path is not None:
            self._run([("DELETE FROM progress WHERE run_id = ?", (self.run_id,)),
                       ("INSERT INTO progress (run_id, events, ts, equity) VALUES (?, ?, ?, ?)",
                        (self.run_id, events, ts, equity))])
            return
        from genesis.engine.journaltables import insert, progress  # noqa: PLC0415

        with self.engine.begin() as conn:
            conn.execute(progress.delete().where(progress.c.run_id == self.run_id))
            conn.execute(insert(progress).values(run_id=self.run_id, events=events, ts=ts, equity=equity))

    def publish_status(self, doc: dict) -> None:
        """Replace the run's status document (what `genesis status` and `genesis ui`
        show). With a writer thread this does not wait; a failed write is not retried
        (the next one replaces it)."""
        row = {"run_id": self.run_id, "ts": int(doc.get("at_ms") or 0), "doc": json.dumps(doc)}
        if self.writer is not None:
            self.writer.submit(self._publish_status, row)
        else:
            self._publish_status(row)

    def _publish_status(self, row: dict) -> None:
        if self._path is not None:
            try:
                self._run([("DELETE FROM status WHERE run_id = ?", (row["run_id"],)),
                           ("INSERT INTO status (run_id, ts, doc) VALUES (?, ?, ?)", (row["run_id"], row["ts"],
                                                                                     row["doc"]))])
            except _database_errors():
                pass   # only a screen's view: the journal's own writes report the database's trouble
            return
        from genesis.engine.journaltables import DatabaseError, OperationalError, insert, status  # noqa: PLC0415

        try:
            with self.engine.begin() as conn:
                conn.execute(status.delete().where(status.c.run_id == row["run_id"]))
                conn.execute(insert(status).values(**row))
        except (DatabaseError, OperationalError):
            pass   # only a screen's view: the journal's own writes report the database's trouble

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, record: dict, state: bytes | Callable[[], bytes], keep: int) -> None:
        """Store a snapshot of the engine (`record`: seq, inputs, segment, ts, version,
        static_digest, meta) once the entries up to its seq are; keep the newest `keep`
        of the run. `state` is the snapshot's bytes, or a function that makes them (it is
        called where the snapshot is written). With a writer thread this does not wait,
        and `state` runs in that thread."""
        record = dict(record, run_id=self.run_id, meta=json.dumps(record["meta"], sort_keys=True))
        rows, self.buffer = self.buffer, []
        if self.writer is not None:
            self.writer.submit(self._save_snapshot, rows, record, state, keep)
            return
        self._write(rows)
        self._store_snapshot(_with_state(record, state), keep)

    def _save_snapshot(self, rows: list, record: dict, state, keep: int) -> None:
        try:
            self._write(rows)
            self._store_snapshot(_with_state(record, state), keep)
        except JournalError:
            return   # the rows are kept for the next write; a snapshot is only ever stored after them
        except _database_errors() as exc:
            if self.on_write_failed is not None:
                self.on_write_failed(describe_error(exc, self.url), 0.0)

    def _store_snapshot(self, record: dict, keep: int) -> None:
        if self._path is not None:
            with self._lock:
                sql = f"INSERT INTO snapshots ({', '.join(_SNAPSHOT_COLUMNS)}) VALUES " \
                      f"({', '.join('?' * len(_SNAPSHOT_COLUMNS))})"
                try:
                    self._db.execute(sql, tuple(record[k] for k in _SNAPSHOT_COLUMNS))
                    sql = "DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots WHERE run_id = ? " \
                          "ORDER BY id DESC LIMIT -1 OFFSET ?)"
                    self._db.execute(sql, (self.run_id, keep))
                    self._db.commit()
                except sqlite3.Error as exc:
                    self._db.rollback()
                    raise self._sql_error(exc, sql) from exc
            return
        from genesis.engine.journaltables import insert, select, snapshots  # noqa: PLC0415

        with self.engine.begin() as conn:
            conn.execute(insert(snapshots).values(**record))
            old = conn.execute(select(snapshots.c.id).where(snapshots.c.run_id == self.run_id)
                               .order_by(snapshots.c.id.desc()).offset(keep)).scalars().all()
            if old:
                conn.execute(snapshots.delete().where(snapshots.c.id.in_(old)))

    def snapshots(self, run_id: int | None = None) -> list[StoredSnapshot]:
        """The run's snapshots, newest first (without their state)."""
        from genesis.engine.journaltables import select, snapshots  # noqa: PLC0415

        cols = [c for c in snapshots.c if c.name not in ("run_id", "state")]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).where(snapshots.c.run_id == (run_id or self.run_id))
                                .order_by(snapshots.c.id.desc())).all()
        return [StoredSnapshot(**dict(r._mapping, meta=json.loads(r.meta))) for r in rows]

    def snapshot_state(self, snapshot_id: int) -> bytes:
        """One snapshot's state, checked against its digest (SnapshotDamaged when it differs)."""
        from genesis.engine.journaltables import select, snapshots  # noqa: PLC0415

        with self.engine.connect() as conn:
            row = conn.execute(select(snapshots.c.state, snapshots.c.digest)
                               .where(snapshots.c.id == snapshot_id)).first()
        state = bytes(row.state)
        if hashlib.sha256(state).hexdigest() != row.digest:
            raise JournalError(f"snapshot {snapshot_id} does not match its digest (damaged)")
        return state

    # ------------------------------------------------------------------ operator commands
    def queue_command(self, kind: str, payload: dict) -> int:
        """Queue an operator command for the running (or next) engine; returns its id."""
        from genesis.engine.journaltables import commands, insert  # noqa: PLC0415

        with self.engine.begin() as conn:
            result = conn.execute(insert(commands).values(kind=kind, payload=json.dumps(payload, sort_keys=True),
                                                          status="queued", result="", run_id=0, at_event=0))
            return result.inserted_primary_key[0]

    def has_queued_commands(self) -> bool:
        """Whether an operator command waits. The live session asks five times a second
        from a worker thread, so this is one precompiled query on a kept DBAPI
        connection, not a Core select (a fifth of the interpreter time)."""
        queued = self._poll_statements()["queued"]

        def ask(cursor):
            cursor.execute(queued)
            return cursor.fetchone() is not None

        return self._on_poll_connection(ask, commit=False)

    def _on_poll_connection(self, work, commit: bool):
        """`work(cursor)` on the poll thread's kept DBAPI connection, then commit (or end
        the read, so that the next call sees later commits)."""
        try:
            if self._poll_raw is None:
                self._poll_raw = self.engine.raw_connection()
            cursor = self._poll_raw.cursor()
            try:
                result = work(cursor)
            finally:
                cursor.close()
            if commit:
                self._poll_raw.commit()
            else:
                self._poll_raw.rollback()
            return result
        except self._errors[0] as exc:
            raw, self._poll_raw = self._poll_raw, None
            if raw is not None:
                raw.invalidate()
            raise JournalError(describe_error(exc, self.url)) from None

    def _poll_statements(self) -> dict:
        """The poll thread's statements, compiled once for this database's dialect:
        "queued" (SQL), "beat_delete" and "beat_insert" ((SQL, parameter order))."""
        if self._poll_sql is None:
            from genesis.engine.journaltables import bindparam, commands, heartbeat, insert, select  # noqa: PLC0415

            self._poll_sql = {
                "queued": str(select(commands.c.id).where(commands.c.status == "queued").limit(1).compile(
                    dialect=self.engine.dialect, compile_kwargs={"literal_binds": True})),
                "beat_delete": self._compiled(heartbeat.delete().where(heartbeat.c.run_id == bindparam("run_id"))),
                "beat_insert": self._compiled(insert(heartbeat), ("run_id", "wall_ms"))}
        return self._poll_sql

    def queued_commands(self) -> list:
        """Commands not applied yet, oldest first."""
        from genesis.engine.journaltables import commands, select  # noqa: PLC0415

        with self.engine.connect() as conn:
            return conn.execute(select(commands).where(commands.c.status == "queued").order_by(commands.c.id)).all()

    def drop_queued(self, kinds: tuple[str, ...], why: str) -> int:
        """Mark the commands of `kinds` still waiting as dropped (never applied, never
        replayed): readings queued as a run ended must not reach the next run. Returns
        how many."""
        from genesis.engine.journaltables import commands  # noqa: PLC0415

        with self.engine.begin() as conn:
            return conn.execute(commands.update().where(commands.c.status == "queued", commands.c.kind.in_(kinds))
                                .values(status="dropped", result=why)).rowcount

    def settle_command(self, command_id: int, status: str, result: str, at_event: int, seq: int = 0) -> None:
        """Record what became of a command, and where it applied: `at_event` input events
        processed, `seq` the journal seq of its `operator` entry."""
        from genesis.engine.journaltables import commands  # noqa: PLC0415

        with self.engine.begin() as conn:
            conn.execute(commands.update().where(commands.c.id == command_id).values(
                status=status, result=result, run_id=self.run_id, at_event=at_event, seq=seq))

    def command(self, command_id: int):
        """One command row."""
        from genesis.engine.journaltables import commands, select  # noqa: PLC0415

        with self.engine.connect() as conn:
            return conn.execute(select(commands).where(commands.c.id == command_id)).first()

    def beat(self, wall_ms: int) -> None:
        """Tell command-line tools that an engine is running on this journal (from the
        live session's poll thread: precompiled statements on its kept connection)."""
        started = time.perf_counter()
        statements = self._poll_statements()
        (delete, delete_order), (insert, insert_order) = statements["beat_delete"], statements["beat_insert"]

        def write(cursor):
            cursor.execute(delete, self._beat_params({"run_id": self.run_id}, delete_order))
            cursor.execute(insert, self._beat_params({"run_id": self.run_id, "wall_ms": int(wall_ms)}, insert_order))

        try:
            self._on_poll_connection(write, commit=True)
        except JournalError as exc:   # a write that failed, like any other
            if self.on_write_failed is not None:
                self.on_write_failed(str(exc), (time.perf_counter() - started) * 1000.0)
            raise

    @staticmethod
    def _beat_params(values: dict, order):
        return tuple(values[k] for k in order) if order is not None else values

    def last_beat(self) -> int:
        """Wall time (ms) of the latest heartbeat of any run, 0 if none."""
        from genesis.engine.journaltables import func, heartbeat, select  # noqa: PLC0415

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(heartbeat.c.wall_ms))).scalar() or 0)

    def finish(self) -> None:
        """Mark the run complete (a later start with the same inputs begins a new run)."""
        self.flush()
        if self._path is not None:
            self._run([("UPDATE runs SET finished = 1 WHERE id = ?", (self.run_id,)),
                       ("DELETE FROM heartbeat WHERE run_id = ?", (self.run_id,))])
            return
        from genesis.engine.journaltables import heartbeat, runs  # noqa: PLC0415

        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == self.run_id).values(finished=1))
            conn.execute(heartbeat.delete().where(heartbeat.c.run_id == self.run_id))

    def close(self) -> None:
        """Flush and release the database."""
        try:
            self.flush()
        finally:
            if self.writer is not None:
                self.writer.shutdown(wait=True)
                self.writer = None
            for name in ("_raw", "_poll_raw"):
                raw = getattr(self, name)
                setattr(self, name, None)
                if raw is not None:
                    try:
                        raw.close()
                    except self._errors[0]:
                        pass
            if self._engine is not None:
                self._engine.dispose()
            if self._path is not None:
                with self._lock:
                    self._close_sqlite()

    def entries_of_kind(self, kind: str) -> list:
        """Every run's entries of one kind, oldest run first, in order."""
        from genesis.engine.journaltables import entries, select  # noqa: PLC0415

        with self.engine.connect() as conn:
            return conn.execute(select(entries).where(entries.c.kind == kind)
                                .order_by(entries.c.run_id, entries.c.seq)).all()

    def entries(self, run_id: int | None = None) -> list:
        """All entries of a run (the latest by default), in order."""
        if self._path is not None:
            columns = ", ".join(ENTRY_COLUMNS)
            with self._lock:
                try:
                    rid = run_id or self._db.execute("SELECT max(id) FROM runs").fetchone()[0]
                    rows = self._db.execute(f"SELECT {columns} FROM entries WHERE run_id = ? ORDER BY seq",
                                            (rid,)).fetchall()
                except sqlite3.Error as exc:
                    raise self._sql_error(exc, "SELECT ... FROM entries") from exc
                finally:
                    self._db.rollback()   # end the read: the next one sees later commits
            return [_Row(*row) for row in rows]
        from genesis.engine.journaltables import entries, func, runs, select  # noqa: PLC0415

        with self.engine.connect() as conn:
            rid = run_id or conn.execute(select(func.max(runs.c.id))).scalar()
            rows = conn.execute(select(entries).where(entries.c.run_id == rid).order_by(entries.c.seq)).all()
        return rows


def _encode_hook(value):
    if isinstance(value, float):   # numpy floats
        return float(value)
    return _plain(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_encode_hook, order="sorted")


def encode_data(data: dict | None) -> str:
    """An entry's data as compact JSON with sorted keys. msgspec writes it (about 8x
    faster than json.dumps on the live decision path); an entry holding a null, a
    non-finite number (which msgspec would write as null) or a non-string key is
    written by json.dumps instead, so NaN and Infinity read back as they were."""
    if not data:
        return "{}"
    try:
        text = _ENCODER.encode(data)
    except TypeError:
        text = b"null"
    if b"null" not in text:
        return text.decode()
    return json.dumps(data, sort_keys=True, default=_plain, separators=(",", ":"))


def _plain(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def _with_state(record: dict, state: bytes | Callable[[], bytes]) -> dict:
    """A snapshot's row: `record` with its state (made now when given as a function) and
    the state's digest."""
    if callable(state):
        state = state()
    return dict(record, state=state, digest=hashlib.sha256(state).hexdigest())
