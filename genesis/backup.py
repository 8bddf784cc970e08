"""Backups of the journal and of the live input logs, on a schedule and by hand, and
their restore (docs/backup.md).

A backup is one folder, `genesis-<UTC time>-<kind>` (e.g. `genesis-20240808T130000Z-hourly`),
in the backup folder:

- `journal.sqlite`: a SQLite journal, copied with SQLite's online backup API on a
  connection of its own: one consistent copy while the engine goes on writing (WAL
  readers never block the writer), checked (`PRAGMA quick_check`) before it is kept;
- or `journal.jsonl.gz`: any other database (PostgreSQL): a logical export of every
  table, read in one REPEATABLE READ transaction (one consistent snapshot), restorable
  into PostgreSQL or into a SQLite file;
- `genesis-live/`: every file of the journal's input-log folder, whatever its name,
  copied after the journal, so that the logs hold at least every input the journal
  reflects (a file unchanged since the previous backup is hard-linked, not copied again);
- `manifest.json`: what it holds, never a credential.

It is written under a `.partial-` name and renamed once complete, so a backup folder
with a `genesis-` name is always whole. Scheduled backups (`BackupSchedule`, APScheduler,
wall clock) are of kind `hourly`, `daily` (the first of each UTC day) or `weekly` (the
first of each ISO week), each kind pruned to its own count; `genesis backup` makes
`manual` ones and a forced restore saves the journal it replaces as `pre-restore`: both
are kept until removed by hand.
"""
from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

SCHEDULED = ("hourly", "daily", "weekly")
KINDS = (*SCHEDULED, "manual", "pre-restore")
FORMAT = 1
JOURNAL_SQLITE = "journal.sqlite"
JOURNAL_EXPORT = "journal.jsonl.gz"
LOGS = "genesis-live"
MANIFEST = "manifest.json"
LOCK_TIMEOUT_S = 30.0       # longest a backup waits for a locked journal
STALE_PARTIAL_S = 3600.0    # a `.partial-` folder older than this was left by a stopped backup
_NAME = re.compile(r"^genesis-(\d{8}T\d{6}Z)-(" + "|".join(KINDS) + r")(?:-(\d+))?$")
_STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup or a restore could not be made; the message says why in one line, without
    a credential."""


@dataclass(frozen=True)
class Backup:
    """A complete backup folder."""

    path: Path
    kind: str
    taken: datetime   # UTC

    @property
    def name(self) -> str:
        return self.path.name

    def manifest(self) -> dict:
        try:
            return json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BackupError(f"{self.path} has no readable {MANIFEST} ({_why(exc)}): not a Genesis backup") from None


# ------------------------------------------------------------------ where things are
def _shown(url: str) -> str:
    from genesis.engine.journal import _shown as shown  # noqa: PLC0415

    return shown(url)


def sqlite_file(db_url: str) -> Path | None:
    """The SQLite file of a journal URL (absolute), None for another database; raises
    BackupError for a journal kept in memory (nothing to back up)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    url = make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return None
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        raise BackupError("the journal is kept in memory: there is nothing to back up (give --db a file)")
    return Path(url.database).resolve()


def input_log_folder(db_url: str) -> Path:
    """Where a journal's live input logs live: beside a SQLite file, else ./genesis-live
    (the rule of genesis.live.session.log_dir, without importing the live stack)."""
    if db_url.startswith("sqlite:///") and len(db_url) > len("sqlite:///"):
        return Path(db_url[len("sqlite:///"):]).resolve().parent / LOGS
    return Path(LOGS).resolve()


def backup_folder(folder: str | os.PathLike, db_url: str, cwd: Path | None = None) -> Path:
    """genesis.yaml `backup.folder` (or --to) as a path: a relative one is taken from the
    journal's folder (a SQLite file's folder; the working folder for a server database)."""
    path = Path(folder).expanduser()
    if path.is_absolute():
        return path
    cwd = cwd or Path.cwd()
    try:
        base = sqlite_file(db_url)
    except BackupError:
        base = None
    return ((base.parent if base is not None else cwd) / path).resolve()


def list_backups(folder: Path) -> list[Backup]:
    """The complete backups in `folder`, oldest first."""
    found = []
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    for child in children:
        match = _NAME.match(child.name)
        if match and child.is_dir():
            taken = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=timezone.utc)
            found.append(Backup(child, match.group(2), taken))
    found.sort(key=lambda b: (b.taken, int(_NAME.match(b.name).group(3) or 0)))
    return found


def find_backup(ref: str, folder: Path) -> Backup:
    """A backup named by path, by its name in `folder`, or `latest` (the newest there)."""
    if ref == "latest":   # what a forced restore saved aside is not a backup one would want back by default
        found = [b for b in list_backups(folder) if b.kind != "pre-restore"]
        if not found:
            raise BackupError(f"no backup in {folder}")
        return found[-1]
    for path in (Path(ref).expanduser(), folder / ref):
        if path.is_dir():
            match = _NAME.match(path.resolve().name)
            if match:
                taken = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=timezone.utc)
                return Backup(path.resolve(), match.group(2), taken)
            if (path / MANIFEST).is_file():   # renamed by hand: the manifest says what it is
                data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
                taken = datetime.strptime(data["taken_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                return Backup(path.resolve(), data.get("kind", "manual"), taken)
            raise BackupError(f"{path} is not a Genesis backup (no {MANIFEST})")
    raise BackupError(f"no backup {ref!r} (neither a folder nor a backup in {folder}; `genesis backup --list` "
                      "lists them)")


# ------------------------------------------------------------------ taking one
def take_backup(db_url: str, folder: Path, kind: str, now: datetime | None = None,
                lock_timeout_s: float = LOCK_TIMEOUT_S, logs: Path | None = None) -> Backup:
    """Back up the journal `db_url` and its input-log folder (`logs`, by default the one
    beside the journal) into a new folder in `folder`; returns it. Raises BackupError
    (and leaves nothing behind) when it cannot be made."""
    if kind not in KINDS:
        raise ValueError(f"unknown backup kind {kind!r}")
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    started = time.perf_counter()
    source = sqlite_file(db_url)
    if source is not None and not source.is_file():
        raise BackupError(f"no journal at {source}: nothing has run on it yet")
    logs = input_log_folder(db_url) if logs is None else logs
    final, partial = _new_backup_paths(folder, kind, now)
    previous = list_backups(folder)
    try:
        partial.mkdir()
        manifest = {"format": FORMAT, "genesis": _version(), "kind": kind,
                    "taken_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if source is not None:
            manifest["journal"] = _copy_sqlite(source, partial / JOURNAL_SQLITE, lock_timeout_s)
        else:
            manifest["journal"] = _export(db_url, partial / JOURNAL_EXPORT)
        manifest["journal"]["from"] = _shown(db_url)
        # after the journal: the logs then hold at least every input it reflects
        manifest["input_logs"] = _copy_logs(logs, partial / LOGS, previous[-1] if previous else None)
        manifest["took_s"] = round(time.perf_counter() - started, 3)
        _write_synced(partial / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        _sync_folder(partial)
        os.rename(partial, final)
        _sync_folder(folder)
    except BackupError:
        _remove(partial)
        raise
    except (OSError, sqlite3.Error) as exc:
        _remove(partial)
        raise BackupError(f"the backup into {folder} failed: {_why(exc)}") from None
    except Exception as exc:   # noqa: BLE001 - a database error of another driver: one line, never a traceback
        _remove(partial)
        raise BackupError(f"the backup of {_shown(db_url)} failed: {_why(exc)}") from None
    return Backup(final, kind, now.replace(microsecond=0))


def _new_backup_paths(folder: Path, kind: str, now: datetime, unchanged: str = "") -> tuple[Path, Path]:
    """(the name a new backup of `kind` gets in `folder`, the partial name it is written
    under until complete); the folder is made. `unchanged` ends the error message."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"the backup folder {folder} cannot be made: {_why(exc)}{unchanged}") from None
    name = f"genesis-{now.strftime(_STAMP)}-{kind}"
    final, n = folder / name, 1
    while final.exists():
        n += 1
        final = folder / f"{name}-{n}"
    return final, folder / f".partial-{final.name}-{os.getpid()}-{threading.get_ident()}"


def _version() -> str:
    from genesis import __version__  # noqa: PLC0415

    return __version__


def _why(exc: BaseException) -> str:
    """An exception as a short phrase (an OSError without its path repeated)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class _Timeout(Exception):
    pass


def _copy_sqlite(source: Path, dest: Path, lock_timeout_s: float) -> dict:
    """A consistent copy of a SQLite journal (the online backup API, in one step: one read
    transaction), checked; returns what it holds."""
    deadline = time.monotonic() + lock_timeout_s

    def waited(status, _remaining, _total):
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
            raise _Timeout

    try:
        src = sqlite3.connect(f"file:{quote(str(source))}?mode=rw", uri=True, timeout=lock_timeout_s)
    except sqlite3.Error as exc:
        raise BackupError(f"the journal {source} cannot be opened: {_why(exc)}") from None
    try:
        dst = sqlite3.connect(dest)
        try:
            try:
                src.backup(dst, pages=-1, progress=waited, sleep=0.05)
            except _Timeout:
                raise BackupError(f"the journal {source} stayed locked for {lock_timeout_s:g} s") from None
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise BackupError(f"the journal {source} stayed locked for {lock_timeout_s:g} s") from None
                raise
            dst.execute("PRAGMA journal_mode=DELETE")   # one self-contained file
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy of the journal failed its check: {check}")
            info = _sqlite_summary(dst)
        finally:
            dst.close()
    finally:
        src.close()
    info.update(backend="sqlite", file=JOURNAL_SQLITE, bytes=dest.stat().st_size)
    return info


def _sqlite_summary(conn: sqlite3.Connection) -> dict:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                                         "'sqlite_%' ORDER BY name")]
    counts = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    runs = []
    if "runs" in tables and "entries" in tables:
        runs = [{"id": r[0], "tier": r[1], "mode": r[2], "finished": bool(r[3]), "last_seq": r[4] or 0}
                for r in conn.execute("SELECT runs.id, tier, mode, finished, (SELECT MAX(seq) FROM entries "
                                      "WHERE entries.run_id = runs.id) FROM runs ORDER BY runs.id")]
    return {"tables": counts, "runs": runs}


def _export(db_url: str, dest: Path) -> dict:
    """A logical export of every table of a server journal, in one consistent snapshot:
    gzipped JSON lines, a header line per table then one array per row."""
    from sqlalchemy import MetaData, Table, create_engine, func, inspect, select  # noqa: PLC0415

    engine = create_engine(db_url)
    counts: dict = {}
    runs: list = []
    try:
        conn = engine.connect()
        if engine.dialect.name in ("postgresql", "mysql", "mariadb"):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn, conn.begin(), gzip.open(dest, "wt", encoding="utf-8", compresslevel=3) as out:
            inspector = inspect(conn)
            for name in sorted(inspector.get_table_names()):
                table = Table(name, MetaData(), autoload_with=conn)
                pk = set(inspector.get_pk_constraint(name).get("constrained_columns") or ())
                columns = [{"name": c.name, "type": _generic(c.type), "pk": c.name in pk} for c in table.columns]
                out.write(json.dumps({"table": name, "columns": columns}) + "\n")
                n = 0
                for row in conn.execution_options(yield_per=2000).execute(select(table)):
                    out.write(json.dumps([_to_json(v) for v in row]) + "\n")
                    n += 1
                counts[name] = n
            if "runs" in counts and "entries" in counts:
                from genesis.engine.journal import entries  # noqa: PLC0415
                from genesis.engine.journal import runs as runs_table  # noqa: PLC0415

                last = dict(conn.execute(select(entries.c.run_id, func.max(entries.c.seq))
                                         .group_by(entries.c.run_id)).all())
                runs = [{"id": r.id, "tier": r.tier, "mode": r.mode, "finished": bool(r.finished),
                         "last_seq": int(last.get(r.id) or 0)}
                        for r in conn.execute(select(runs_table.c.id, runs_table.c.tier, runs_table.c.mode,
                                                     runs_table.c.finished).order_by(runs_table.c.id))]
        _fsync(dest)
    finally:
        engine.dispose()
    return {"backend": engine.dialect.name, "file": JOURNAL_EXPORT, "bytes": dest.stat().st_size,
            "tables": counts, "runs": runs}


def _generic(sql_type) -> str:
    try:
        return type(sql_type.as_generic()).__name__
    except (NotImplementedError, AttributeError):
        return "Text"


def _to_json(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _from_json(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _copy_logs(source: Path, dest: Path, previous: Backup | None) -> dict:
    """Every file under the input-log folder `source` into `dest` (each as far as it was
    written when looked at); a file unchanged since the `previous` backup is hard-linked
    from it."""
    files: dict = {}
    out = {"from": str(source), "files": files}
    if not source.is_dir():
        return out
    before: dict = {}
    if previous is not None:
        try:
            before = previous.manifest().get("input_logs", {}).get("files", {})
        except BackupError:
            before = {}
    for root, _dirs, names in os.walk(source):
        for name in sorted(names):
            path = Path(root) / name
            rel = path.relative_to(source).as_posix()
            try:
                stat = path.stat()
            except FileNotFoundError:   # removed meanwhile (a segment compressed or pruned)
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            seen = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            if before.get(rel) == seen and _link(previous.path / LOGS / rel, target, stat.st_size):
                files[rel] = seen
                continue
            try:
                copied = _copy_prefix(path, target, stat.st_size)
            except FileNotFoundError:
                continue
            files[rel] = {"bytes": copied, "mtime_ns": stat.st_mtime_ns}
    return out


def _link(old: Path, new: Path, size: int) -> bool:
    try:
        if old.stat().st_size != size:
            return False
        os.link(old, new)
        return True
    except OSError:
        return False


def _copy_prefix(source: Path, dest: Path, size: int) -> int:
    """Copy the first `size` bytes of `source` (a log still being appended to); synced."""
    copied = 0
    with open(source, "rb") as src, open(dest, "wb") as dst:
        while copied < size:
            block = src.read(min(1 << 20, size - copied))
            if not block:
                break
            dst.write(block)
            copied += len(block)
        dst.flush()
        os.fsync(dst.fileno())
    return copied


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _sync_folder(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ retention
def prune(folder: Path, keep: dict, now: datetime | None = None) -> list[str]:
    """Keep the newest `keep[kind]` backups of each scheduled kind (manual and pre-restore
    backups are never pruned) and remove what a stopped backup left; returns the names
    removed."""
    removed = []
    found = list_backups(folder)
    for kind in SCHEDULED:
        mine = [b for b in found if b.kind == kind]
        for old in mine[:max(len(mine) - int(keep.get(kind, 0)), 0)]:
            doomed = folder / f".deleting-{old.name}"
            try:
                os.rename(old.path, doomed)
            except OSError:
                continue
            _remove(doomed)
            removed.append(old.name)
    wall = time.time()
    for child in _children(folder):
        if child.name.startswith(".deleting-") or (
                child.name.startswith(".partial-") and wall - _mtime(child) > STALE_PARTIAL_S):
            _remove(child)
    return removed


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def scheduled_kind(found: list[Backup], now: datetime, keep: dict) -> str | None:
    """The kind the scheduled backup at `now` is: `weekly` when the ISO week (UTC) has no
    weekly backup yet, else `daily` when the UTC day has no daily or weekly one, else
    `hourly`; a kind kept 0 times is never taken (None: nothing to take)."""
    now = now.astimezone(timezone.utc)
    if keep.get("weekly", 0) > 0 and not any(b.kind == "weekly" and b.taken.isocalendar()[:2] ==
                                             now.isocalendar()[:2] for b in found):
        return "weekly"
    if keep.get("daily", 0) > 0 and not any(b.kind in ("daily", "weekly") and b.taken.date() == now.date()
                                            for b in found):
        return "daily"
    return "hourly" if keep.get("hourly", 0) > 0 else None


# ------------------------------------------------------------------ the schedule
def queue_failure(db_url: str, kind: str, reason: str) -> str | None:
    """Queue a `backup_failure` observation (fields `kind`, `reason`) in the journal for
    the engine, which the `backup_failure` alert reads; returns None when queued, else why
    not (a journal that does not exist is never made for it)."""
    try:
        path = sqlite_file(db_url)
    except BackupError as exc:
        return str(exc)
    if path is not None and not path.is_file():
        return f"no journal at {path}"
    try:
        from genesis.engine.journal import Journal  # noqa: PLC0415

        journal = Journal(db_url, create=False)
        try:
            journal.queue_command("observe", {"event": "backup_failure", "fields": {"kind": kind, "reason": reason}})
        finally:
            journal.close()
    except Exception as exc:   # noqa: BLE001 - the journal itself may be what failed
        return _why(exc)
    return None


class BackupSchedule:
    """Scheduled backups while an engine runs: every `interval_s` of wall time, aligned on
    the UTC clock (every hour on the hour by default), and once at start when the newest
    scheduled backup is older than that. Each is followed by pruning. A failure never
    stops trading: it is said in one line and queued in the journal as a `backup_failure`
    observation (fields `kind`, `reason`), which the `backup_failure` alert reads."""

    def __init__(self, db_url: str, folder: Path, interval_s: float, keep: dict, say=print,
                 lock_timeout_s: float = LOCK_TIMEOUT_S):
        self.db_url = db_url
        self.folder = folder
        self.interval_s = float(interval_s)
        self.keep = dict(keep)
        self.say = say
        self.lock_timeout_s = lock_timeout_s
        self.taken: list[Backup] = []     # backups this schedule made, oldest first
        self.failures: list[str] = []     # reasons, oldest first
        self._lock = threading.Lock()
        self._scheduler = None

    def run_once(self, now: datetime | None = None) -> Backup | None:
        """The scheduled job: take the backup due at `now` (the wall clock by default),
        prune, and report a failure; returns the backup (None when it failed or none was
        due). Never raises."""
        with self._lock:
            now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
            kind = "hourly"
            try:
                kind = scheduled_kind(list_backups(self.folder), now, self.keep)
                if kind is None:
                    return None
                made = take_backup(self.db_url, self.folder, kind, now, self.lock_timeout_s)
                prune(self.folder, self.keep, now)
            except BackupError as exc:
                self._failed(kind, str(exc))
                return None
            except Exception as exc:   # noqa: BLE001 - a failed backup must never stop trading
                self._failed(kind, f"{type(exc).__name__}: {_why(exc)}")
                return None
            self.taken.append(made)
            return made

    def _failed(self, kind: str, reason: str) -> None:
        reason = reason[:300]
        self.failures.append(reason)
        del self.failures[:-20]
        why_not = queue_failure(self.db_url, kind, reason)
        try:
            self.say(f"genesis: {kind} backup failed: {reason}; trading goes on"
                     + (f" (not reported to the engine: {why_not})" if why_not else ""))
        except Exception:   # noqa: BLE001 - a closed terminal must not end the schedule
            pass

    def due_at_start(self, now: datetime | None = None) -> bool:
        """Whether the newest scheduled backup is older than the interval (or there is none)."""
        now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        scheduled = [b for b in list_backups(self.folder) if b.kind in SCHEDULED]
        return not scheduled or (now - scheduled[-1].taken).total_seconds() >= self.interval_s

    def start(self) -> BackupSchedule:
        """Start the schedule (idempotent); a backup at once when one is due."""
        if self._scheduler is not None:
            return self
        from apscheduler.schedulers.background import BackgroundScheduler  # noqa: PLC0415
        from apscheduler.triggers.interval import IntervalTrigger  # noqa: PLC0415

        logging.getLogger("apscheduler").setLevel(logging.ERROR)   # its job notices are not for the terminal
        scheduler = BackgroundScheduler(timezone=timezone.utc, daemon=True, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)   # aligned: every hour on the hour
        scheduler.add_job(self.run_once, IntervalTrigger(seconds=self.interval_s, start_date=epoch,
                                                         timezone=timezone.utc), id="genesis-backup")
        if self.due_at_start():
            scheduler.add_job(self.run_once, "date", run_date=datetime.now(timezone.utc) + timedelta(seconds=0.1),
                              id="genesis-backup-start")
        scheduler.start()
        self._scheduler = scheduler
        return self

    def close(self) -> None:
        """Stop scheduling (waits for a backup under way)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=True)


def schedule_for(settings: dict, db_url: str, cwd: Path, say=print) -> BackupSchedule | None:
    """The schedule genesis.yaml `backup` asks for on the journal `db_url` (not started);
    None when `backup.interval` is null or the journal is in memory."""
    from genesis.durations import parse_duration  # noqa: PLC0415

    section = settings["backup"]
    if section["interval"] is None:
        return None
    try:
        sqlite_file(db_url)
    except BackupError:
        return None
    return BackupSchedule(db_url, backup_folder(section["folder"], db_url, cwd),
                          parse_duration(str(section["interval"])), section["keep"], say=say)


# ------------------------------------------------------------------ restore
@dataclass
class Restored:
    """What a restore did."""

    backup: Backup
    journal: str               # the journal URL restored into (shown without credentials)
    log_folder: Path
    log_files: int
    saved: Backup | None       # the journal it replaced, saved as a pre-restore backup
    runs: list                 # the backup's runs (id, tier, mode, finished, last_seq)


def restore(backup: Backup, db_url: str, folder: Path, force: bool = False) -> Restored:
    """Restore `backup` into the journal `db_url` and the input-log folder beside it.
    Refuses (BackupError) to replace an existing journal or input logs unless `force`,
    and always while an engine runs on it; with `force` what it replaces is first saved
    into `folder` as a `pre-restore` backup. Input-log paths recorded in the journal are
    moved to the new folder; readings the old engine queued and never applied are dropped."""
    manifest = backup.manifest()
    if int(manifest.get("format", 0)) > FORMAT:
        raise BackupError(f"{backup.name} was made by a newer Genesis (format {manifest.get('format')}); "
                          "restore it with that version")
    journal_file = backup.path / manifest.get("journal", {}).get("file", "")
    if not journal_file.is_file():
        raise BackupError(f"{backup.name} holds no journal ({journal_file.name or 'none named'}): incomplete backup")
    _verify(journal_file, manifest)
    target = sqlite_file(db_url)
    logs = input_log_folder(db_url)
    in_use = _journal_in_use(db_url, target)
    has_logs = logs.is_dir() and any(logs.iterdir())
    if in_use is not None or has_logs:
        what = in_use or f"input logs are already in {logs}"
        if not force:
            raise BackupError(f"{what}; add --force to replace it (what it replaces is saved first, as a "
                              f"pre-restore backup in {folder})")
        _refuse_if_running(db_url)
    saved = _save_aside(db_url, target, logs, folder) if (in_use is not None or has_logs) else None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.restoring-{os.getpid()}")
        _remove_file(temp)
        try:
            temp_url = f"sqlite:///{temp}"
            if journal_file.name == JOURNAL_SQLITE:
                _restore_sqlite_file(journal_file, temp)
            else:
                _load_logical(_read_export(journal_file), temp_url, replace=False)
            _after_restore(temp_url, manifest, logs)
            _single_file(temp)
            for suffix in ("-wal", "-shm", "-journal"):   # another journal's WAL must never meet this file
                _remove_file(target.with_name(target.name + suffix))
            os.replace(temp, target)
        except BackupError:
            _remove_file(temp)
            raise
        except (OSError, sqlite3.Error) as exc:
            _remove_file(temp)
            raise BackupError(f"the journal could not be restored into {target}: {_why(exc)}") from None
    else:
        source = (_read_sqlite(journal_file) if journal_file.name == JOURNAL_SQLITE
                  else _read_export(journal_file))
        try:
            _load_logical(source, db_url, replace=True)
            _after_restore(db_url, manifest, logs)
        except BackupError:
            raise
        except Exception as exc:   # noqa: BLE001 - the server's error, in one line
            raise BackupError(f"the journal could not be restored into {_shown(db_url)}: {_why(exc)}") from None
    if saved is not None and logs.exists() and not (backup.path / LOGS).is_dir():
        _remove(logs)   # saved with the journal it belonged to; none come with this backup
    count = _restore_logs(backup.path / LOGS, logs)
    return Restored(backup, _shown(db_url), logs, count, saved, manifest["journal"].get("runs", []))


def _verify(journal_file: Path, manifest: dict) -> None:
    """Check the backup's journal before anything is replaced."""
    if journal_file.name == JOURNAL_SQLITE:
        try:
            conn = _open_backup_db(journal_file)
            try:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BackupError(f"the backup's journal cannot be read: {_why(exc)}") from None
        if check != "ok":
            raise BackupError(f"the backup's journal is damaged ({check}); restore an older backup")
        return
    counts: dict = {}
    try:
        for name, _columns, rows in _read_export(journal_file):
            counts[name] = sum(1 for _ in rows)
    except (OSError, ValueError, EOFError) as exc:
        raise BackupError(f"the backup's journal export cannot be read ({_why(exc)}); restore an older backup") \
            from None
    if counts != manifest["journal"].get("tables", counts):
        raise BackupError("the backup's journal export is incomplete (its row counts differ from the manifest); "
                          "restore an older backup")


def _journal_in_use(db_url: str, target: Path | None) -> str | None:
    """Why the target journal counts as existing, or None when there is none to replace."""
    if target is not None:
        if target.is_file() and target.stat().st_size > 0:
            return f"a journal already exists at {target}"
        return None
    from sqlalchemy import create_engine, func, inspect, select  # noqa: PLC0415

    from genesis.engine.journal import metadata  # noqa: PLC0415

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            for table in metadata.sorted_tables:
                if table.name in names and conn.execute(select(func.count()).select_from(table)).scalar():
                    return f"the journal {_shown(db_url)} already holds data"
    except Exception as exc:   # noqa: BLE001
        raise BackupError(f"the journal {_shown(db_url)} cannot be reached: {_why(exc)}") from None
    finally:
        engine.dispose()
    return None


def _refuse_if_running(db_url: str) -> None:
    from genesis.engine.journal import Journal  # noqa: PLC0415

    try:
        journal = Journal(db_url, create=False)
    except Exception:   # noqa: BLE001 - a journal that cannot be opened has no engine on it
        return
    try:
        beat = journal.last_beat()
    except Exception:   # noqa: BLE001
        beat = 0
    finally:
        journal.close()
    if beat and time.time() * 1000 - beat < 5000:
        raise BackupError("an engine is running on this journal; stop it first (a restore under it would be lost)")


def _save_aside(db_url: str, target: Path | None, logs: Path, folder: Path) -> Backup:
    """Save the journal and input logs a forced restore replaces, as a pre-restore backup.
    A SQLite journal (with its WAL) and the logs are moved, not copied, so that even a
    damaged journal is kept as it was."""
    if target is None:
        return take_backup(db_url, folder, "pre-restore", logs=logs)
    now = datetime.now(timezone.utc)
    final, partial = _new_backup_paths(folder, "pre-restore", now, "; nothing was changed")
    try:
        partial.mkdir()
        manifest = {"format": FORMAT, "genesis": _version(), "kind": "pre-restore",
                    "taken_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "journal": {"backend": "sqlite", "file": JOURNAL_SQLITE, "from": _shown(db_url), "tables": {},
                                "runs": []},
                    "input_logs": {"from": str(logs), "files": {}}}
        if target.is_file():
            for suffix in ("", "-wal", "-shm"):
                path = target.with_name(target.name + suffix)
                if path.exists():
                    shutil.move(path, partial / (JOURNAL_SQLITE + suffix))
        if logs.is_dir():
            shutil.move(logs, partial / LOGS)
            manifest["input_logs"]["files"] = {p.relative_to(partial / LOGS).as_posix(): {"bytes": p.stat().st_size}
                                               for p in sorted((partial / LOGS).rglob("*")) if p.is_file()}
        _write_synced(partial / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        os.rename(partial, final)
    except OSError as exc:
        raise BackupError(f"the journal being replaced could not be saved into {folder}: {_why(exc)}; what was "
                          f"moved is in {partial}") from None
    return Backup(final, "pre-restore", now.replace(microsecond=0))


def _restore_sqlite_file(source: Path, dest: Path) -> None:
    """Copy a backup's SQLite journal (with a WAL beside it, for a pre-restore backup)."""
    src = _open_backup_db(source)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")   # one file until the engine opens it (WAL then)
        finally:
            dst.close()
    finally:
        src.close()


def _open_backup_db(path: Path) -> sqlite3.Connection:
    """A backup's SQLite journal, read-only (a backup on read-only media restores too); a
    pre-restore one still in WAL mode may need its -shm made, so read-write for it."""
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error:
        conn.close()
        return sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True)


def _read_export(path: Path):
    """(table, columns, rows) for each table of a logical export, its rows read lazily
    (read them before asking for the next table)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        line = f.readline()
        while line:
            header = json.loads(line)
            if not isinstance(header, dict):
                raise ValueError("a row before its table's header")
            after: list = [""]

            def rows(after=after):
                for text in iter(f.readline, ""):
                    item = json.loads(text)
                    if isinstance(item, dict):
                        after[0] = text
                        return
                    yield [_from_json(v) for v in item]

            table_rows = rows()
            yield header["table"], header["columns"], table_rows
            for _ in table_rows:   # whatever the reader left
                pass
            line = after[0]


def _read_sqlite(path: Path):
    """(table, columns, rows) for each table of a backup's SQLite journal, rows read lazily."""
    from sqlalchemy import MetaData, Table, create_engine, inspect, select  # noqa: PLC0415

    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            for name in sorted(inspector.get_table_names()):
                table = Table(name, MetaData(), autoload_with=conn)
                pk = set(inspector.get_pk_constraint(name).get("constrained_columns") or ())
                columns = [{"name": c.name, "type": _generic(c.type), "pk": c.name in pk} for c in table.columns]
                yield name, columns, (list(r) for r in conn.execute(select(table)))
    finally:
        engine.dispose()


def _column_type(name: str):
    import sqlalchemy as sa  # noqa: PLC0415

    found = getattr(sa, name, None)
    return found if isinstance(found, type) and issubclass(found, sa.types.TypeEngine) else sa.Text


def _load_logical(source, db_url: str, replace: bool) -> None:
    """Load (table, columns, rows) into the journal `db_url`: Genesis's tables are made as
    the engine makes them, any other table from the export's column types; with `replace`
    every Genesis table is emptied first. One transaction."""
    import sqlalchemy as sa  # noqa: PLC0415

    from genesis.engine.journal import Journal, JournalError, metadata  # noqa: PLC0415

    try:
        Journal(db_url).close()   # Genesis's tables, indexes and migrations
    except JournalError as exc:
        raise BackupError(str(exc)) from None
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            if replace:
                for table in metadata.sorted_tables:
                    if table.name in existing:
                        conn.execute(table.delete())
            for name, columns, rows in source:
                table = metadata.tables.get(name)
                if table is None:
                    table = sa.Table(name, sa.MetaData(), *[
                        sa.Column(c["name"], _column_type(c["type"]), primary_key=c["pk"]) for c in columns])
                    if name in existing:
                        if replace:
                            conn.execute(table.delete())
                    else:
                        table.create(conn)
                names = [c["name"] for c in columns]
                wanted = [i for i, n in enumerate(names) if n in table.c]
                batch = []
                for row in rows:
                    batch.append({names[i]: row[i] for i in wanted})
                    if len(batch) >= 1000:
                        conn.execute(sa.insert(table), batch)
                        batch = []
                if batch:
                    conn.execute(sa.insert(table), batch)
            if engine.dialect.name == "postgresql":   # serial ids continue after the restored rows
                for table in metadata.sorted_tables:
                    pk = list(table.primary_key.columns)
                    if len(pk) == 1 and isinstance(pk[0].type, sa.Integer) and pk[0].autoincrement is not False:
                        conn.execute(sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                            f"COALESCE(MAX({pk[0].name}), 1), MAX({pk[0].name}) IS NOT NULL) FROM {table.name}"))
    finally:
        engine.dispose()


def _after_restore(db_url: str, manifest: dict, logs: Path) -> None:
    """Point the runs' input-log paths at the folder the logs are restored into, drop the
    old engine's heartbeat and the readings it queued that no engine applied."""
    import sqlalchemy as sa  # noqa: PLC0415

    from genesis.engine.journal import commands, heartbeat, runs  # noqa: PLC0415
    from genesis.engine.runner import MEASUREMENT_KINDS  # noqa: PLC0415

    old = manifest.get("input_logs", {}).get("from")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            names = set(sa.inspect(conn).get_table_names())
            if old and "runs" in names:
                for row in conn.execute(sa.select(runs.c.id, runs.c.feed_paths)).all():
                    try:
                        paths = json.loads(row.feed_paths)
                    except ValueError:
                        continue
                    moved = [_moved(p, Path(old), logs) for p in paths]
                    if moved != paths:
                        conn.execute(runs.update().where(runs.c.id == row.id).values(feed_paths=json.dumps(moved)))
            if "heartbeat" in names:
                conn.execute(heartbeat.delete())
            if "commands" in names:
                conn.execute(commands.update().where(commands.c.status == "queued",
                                                     commands.c.kind.in_(MEASUREMENT_KINDS))
                             .values(status="dropped", result="queued before the backup that was restored"))
    finally:
        engine.dispose()


def _moved(path, old: Path, new: Path):
    if not isinstance(path, str):
        return path
    try:
        rel = Path(path).relative_to(old)
    except ValueError:
        return path
    return str(new / rel)


def _restore_logs(source: Path, dest: Path) -> int:
    """The backup's input logs into `dest` (made afresh: what was there was saved aside)."""
    if not source.is_dir():
        return 0
    temp = dest.with_name(f".{dest.name}.restoring-{os.getpid()}")
    _remove(temp)
    try:
        shutil.copytree(source, temp)
        if dest.exists():
            _remove(dest)
        os.rename(temp, dest)
    except OSError as exc:
        _remove(temp)
        raise BackupError(f"the journal is restored but its input logs could not be written to {dest}: "
                          f"{_why(exc)}") from None
    return sum(1 for p in dest.rglob("*") if p.is_file())


def _single_file(path: Path) -> None:
    """Fold a SQLite file's WAL into it (so that it can be renamed alone)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        if path.with_name(path.name + suffix).exists():
            raise BackupError(f"the restored journal {path} still has a {suffix} file; nothing was replaced")


def _remove_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def describe(backup: Backup) -> str:
    """One line about a backup (for `genesis backup --list`)."""
    try:
        manifest = backup.manifest()
    except BackupError:
        return f"{backup.name}  (no readable manifest)"
    journal = manifest.get("journal", {})
    size = sum(p.stat().st_size for p in backup.path.rglob("*") if p.is_file())
    runs = journal.get("runs", [])
    last = f", run {runs[-1]['id']} at entry {runs[-1]['last_seq']}" if runs else ""
    logs = len(manifest.get("input_logs", {}).get("files", {}))
    return (f"{backup.name}  {backup.kind:<11} {size / 2**20:8.1f} MB  journal ({journal.get('backend', '?')}"
            f"{last}), {logs} input-log file{'s' if logs != 1 else ''}")
