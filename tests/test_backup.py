"""Backups and restore (genesis/backup.py, docs/backup.md), through real parts: real
SQLite journals written by a real paper run or by the Journal itself, `genesis backup`
and `genesis restore` as commands, the schedule's own job code driven with a chosen
wall clock, APScheduler firing it for real, and the engine's `backup_failure` alert
firing on a failed backup. PostgreSQL journals are exported and restored on a server the
tests start (test_postgres's fixture), skipped where none is installed."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from scenario_helpers import edited_copy
from sqlalchemy import create_engine, text
from test_postgres import postgres  # noqa: F401 - fixture

from genesis.backup import (JOURNAL_EXPORT, JOURNAL_SQLITE, LOGS, BackupError, BackupSchedule, find_backup,
                            input_log_folder, list_backups, restore, scheduled_kind, take_backup)
from genesis.cli import cli
from genesis.config.checks import check_config
from genesis.engine import journal as journal_module
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.journal import Journal
from genesis.engine.runner import open_session, replay

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]
UTC = timezone.utc


# ----------------------------------------------------------------------------- helpers
def _config(tmp: Path, backup: str = "") -> Path:
    """The shipped configuration without the metrics endpoint and the health probe (their
    wall-clock readings would make runs differ), with a `backup` section when given."""
    root = edited_copy(tmp, {"genesis.yaml": {"metrics_endpoint: {port: 9464}": "metrics_endpoint: {port: null}",
                                              "health_probe: {interval: 15s}": "health_probe: {interval: null}"}})
    if backup:
        with open(root / "genesis.yaml", "a", encoding="utf-8") as f:
            f.write(backup)
    return root


def _env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    return env


def _rows(db: Path, sql: str, *args) -> list:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _entries(db: Path, run_id: int = 1, upto: int | None = None) -> list:
    return _rows(db, "SELECT seq, ts, kind, rule, symbol, data FROM entries WHERE run_id = ? AND seq <= ? ORDER BY seq",
                 run_id, upto if upto is not None else 2 ** 62)


def _journal_with_entries(path: Path, n: int = 20, mode: str = "paper", feed_paths=()) -> Journal:
    journal = Journal(f"sqlite:///{path}")
    journal.open_run("sniper", {"genesis.yaml": "x"}, f"digest-{mode}", list(feed_paths), mode)
    for i in range(n):
        journal.append(1_723_118_400_000 + i, "note", "r", "BTCUSDT", {"i": i})
    journal.flush()
    return journal


def _invoke(*args) -> object:
    result = CliRunner().invoke(cli, [*args, "--config", str(ROOT)], catch_exceptions=False)
    return result


# ----------------------------------------------------------------------------- the disaster drill
def test_a_backup_restored_into_a_fresh_folder_resumes_the_run(tmp_path):
    """Machine A paper-trades; `genesis backup` copies its journal off the machine while it
    writes; A dies (kill -9, its folder gone); `genesis restore` puts the backup on
    machine B; the same `genesis run` there resumes run 1 and finishes it, with every
    entry up to the backup point unchanged and the trades an uninterrupted run makes."""
    config = _config(tmp_path, "backup: {interval: null}\n")
    a, b, offsite = tmp_path / "machine-a", tmp_path / "machine-b", tmp_path / "offsite"
    a.mkdir()
    b.mkdir()
    db_a, db_b = a / "genesis.db", b / "genesis.db"
    run_a = subprocess.Popen([*CLI, "run", "--tier", "sniper", "--speed", "20", "--db", f"sqlite:///{db_a}",
                              "--config", str(config)], cwd=a, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # trading, past the first checkpoint
            if db_a.exists() and _rows(db_a, "SELECT name FROM sqlite_master WHERE name='progress'") \
                    and _rows(db_a, "SELECT COUNT(*) FROM progress")[0][0] and \
                    _rows(db_a, "SELECT COUNT(*) FROM heartbeat")[0][0]:
                break
            assert run_a.poll() is None, run_a.communicate()
            time.sleep(0.2)
        made = subprocess.run([*CLI, "backup", "--db", f"sqlite:///{db_a}", "--config", str(config), "--to",
                               str(offsite)], cwd=a, env=_env(), capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        assert run_a.poll() is None, "the engine was still writing while the backup was taken"
    finally:
        run_a.send_signal(signal.SIGKILL)
        run_a.communicate(timeout=30)
    [backup] = list_backups(offsite)
    assert made.stdout.strip() == f"backed up sqlite:///{db_a} and 0 input-log files to {backup.path}; run 1 up to " \
                                  f"entry {backup.manifest()['journal']['runs'][0]['last_seq']}"
    assert backup.kind == "manual" and re.fullmatch(r"genesis-\d{8}T\d{6}Z-manual", backup.name)
    copy = backup.path / JOURNAL_SQLITE
    assert _rows(copy, "PRAGMA integrity_check") == [("ok",)]
    point = backup.manifest()["journal"]["runs"][0]["last_seq"]
    assert point > 0 and not backup.manifest()["journal"]["runs"][0]["finished"]
    shutil.rmtree(a)   # the machine is lost

    restored = subprocess.run([*CLI, "restore", str(backup.path), "--db", f"sqlite:///{db_b}", "--config",
                               str(config)], cwd=b, env=_env(), capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr
    assert f"into sqlite:///{db_b}, no input logs; run 1 (paper, tier sniper) was under way at entry {point}: " \
           "the same `genesis run` command resumes it" in restored.stdout
    assert _entries(db_b) == _entries(copy)

    resumed = subprocess.run([*CLI, "run", "--tier", "sniper", "--speed", "max", "--db", f"sqlite:///{db_b}",
                              "--config", str(config)], cwd=b, env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.startswith("resuming paper trading on tier sniper")
    assert _rows(db_b, "SELECT id, finished FROM runs") == [(1, 1)]        # the same run, finished
    after = _entries(db_b)
    assert after[:point] == _entries(copy) and len(after) > point         # nothing before the backup point changed

    # the trades are those of an uninterrupted run on the same input
    root, result = config, check_config(config)
    session = open_session(root, result, "sniper", open_feed(sample_paths()), f"sqlite:///{tmp_path / 'ref.db'}",
                           "replay")
    replay(session)
    session.journal.close()
    trading = ("intent", "order", "fill", "refused")
    assert [e[1:] for e in after if e[2] in trading] == \
        [e[1:] for e in _entries(tmp_path / "ref.db") if e[2] in trading]
    assert any(e[2] == "fill" for e in after)


def test_input_logs_are_backed_up_whole_and_follow_the_journal_to_its_new_folder(tmp_path):
    a, b, folder = tmp_path / "a", tmp_path / "b", tmp_path / "backups"
    logs = a / LOGS
    (logs / "archive").mkdir(parents=True)
    live_log = logs / "run-ab12cd34-f00d.inputs"
    live_log.write_bytes(b"1 {}\n2 {}\n")
    (logs / "run-ab12cd34-f00d.000001.seg.gz").write_bytes(os.urandom(5000))   # any name, any content
    (logs / "archive" / "old.inputs").write_bytes(b"0 {}\n")
    journal = _journal_with_entries(a / "genesis.db", mode="live", feed_paths=[live_log])
    journal.queue_command("observe", {"event": "system_probe", "fields": {}})   # never applied
    journal.queue_command("journal", {"text": "typed by the trader"})
    journal.beat(int(time.time() * 1000))
    journal.close()

    first = take_backup(f"sqlite:///{a / 'genesis.db'}", folder, "manual")
    with open(live_log, "ab") as f:   # the run goes on: its log grows
        f.write(b"3 {}\n")
    second = take_backup(f"sqlite:///{a / 'genesis.db'}", folder, "manual")
    assert second.name == first.name + "-2" or second.taken > first.taken
    assert set(second.manifest()["input_logs"]["files"]) == {"run-ab12cd34-f00d.inputs", "archive/old.inputs",
                                                             "run-ab12cd34-f00d.000001.seg.gz"}
    # what did not change is linked to the previous backup, what grew is copied again
    same = second.path / LOGS / "run-ab12cd34-f00d.000001.seg.gz"
    assert same.stat().st_ino == (first.path / LOGS / same.name).stat().st_ino
    assert (second.path / LOGS / live_log.name).stat().st_ino != (first.path / LOGS / live_log.name).stat().st_ino
    assert (first.path / LOGS / live_log.name).read_bytes() == b"1 {}\n2 {}\n"

    done = restore(second, f"sqlite:///{b / 'genesis.db'}", folder)
    assert done.log_folder == b / LOGS and done.log_files == 3
    for path in logs.rglob("*"):
        if path.is_file():
            assert (b / LOGS / path.relative_to(logs)).read_bytes() == path.read_bytes()
    [(paths,)] = _rows(b / "genesis.db", "SELECT feed_paths FROM runs")
    assert json.loads(paths) == [str(b / LOGS / live_log.name)]   # the continued live run finds its log
    assert _rows(b / "genesis.db", "SELECT kind, status FROM commands ORDER BY id") == [
        ("observe", "dropped"), ("journal", "queued")]             # stale readings dropped, the trader's kept
    assert _rows(b / "genesis.db", "SELECT COUNT(*) FROM heartbeat") == [(0,)]
    assert _entries(b / "genesis.db") == _entries(a / "genesis.db")


def test_input_log_folder_is_the_live_sessions(tmp_path):
    from genesis.live.session import log_dir  # noqa: PLC0415 - the live stack takes a second to import

    for url in (f"sqlite:///{tmp_path / 'j.db'}", "sqlite:///genesis.db", "postgresql+psycopg://g@h/db"):
        assert input_log_folder(url) == log_dir(url)


# ----------------------------------------------------------------------------- consistency
def test_backups_taken_while_the_journal_is_written_are_consistent(tmp_path):
    db = tmp_path / "genesis.db"
    journal = _journal_with_entries(db, n=0)
    stop = threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            for _ in range(50):
                i += 1
                journal.append(1_723_118_400_000 + i, "note", "r", "BTCUSDT", {"i": i, "pad": "x" * 200})
            journal.flush()
            journal.checkpoint(i, 1_723_118_400_000 + i, 1000.0)

    writer = threading.Thread(target=write)
    writer.start()
    made = []
    try:
        time.sleep(0.2)
        for _ in range(6):
            made.append(take_backup(f"sqlite:///{db}", tmp_path / "backups", "manual"))
            time.sleep(0.1)
    finally:
        stop.set()
        writer.join()
        journal.close()
    counts = []
    for backup in made:
        copy = backup.path / JOURNAL_SQLITE
        assert _rows(copy, "PRAGMA integrity_check") == [("ok",)]
        seqs = [s for (s,) in _rows(copy, "SELECT seq FROM entries ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))   # whole batches only: no hole, no torn write
        assert backup.manifest()["journal"]["tables"]["entries"] == len(seqs)
        counts.append(len(seqs))
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0
    assert not list((tmp_path / "backups").glob(".partial-*"))


def test_a_journal_locked_too_long_is_a_failure_not_a_wait(tmp_path):
    db = tmp_path / "genesis.db"
    _journal_with_entries(db).close()
    holder = sqlite3.connect(db, timeout=0)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO heartbeat (run_id, wall_ms) VALUES (9, 1)")
    said = []
    try:
        schedule = BackupSchedule(f"sqlite:///{db}", tmp_path / "backups", 3600, {"hourly": 1, "daily": 1,
                                                                                  "weekly": 1},
                                  say=said.append, lock_timeout_s=0.3)
        started = time.monotonic()
        assert schedule.run_once() is None
        assert time.monotonic() - started < 10
    finally:
        holder.rollback()
        holder.close()
    [reason] = schedule.failures
    assert "stayed locked for 0.3 s" in reason or "locked" in reason
    assert len(said) == 1 and said[0].startswith("genesis: weekly backup failed: ")
    assert list_backups(tmp_path / "backups") == []
    assert not list((tmp_path / "backups").glob(".partial-*"))


# ----------------------------------------------------------------------------- the schedule
def test_retention_keeps_the_newest_of_each_kind(tmp_path):
    db = tmp_path / "genesis.db"
    _journal_with_entries(db).close()
    folder = tmp_path / "backups"
    keep = {"hourly": 3, "daily": 2, "weekly": 2}
    schedule = BackupSchedule(f"sqlite:///{db}", folder, 6 * 3600, keep)
    start = datetime(2024, 8, 5, 0, 0, tzinfo=UTC)   # a Monday
    manual = take_backup(f"sqlite:///{db}", folder, "manual", now=start - timedelta(days=1))
    for step in range(4 * 22):   # 22 days, every 6 hours
        assert schedule.run_once(start + timedelta(hours=6 * step)) is not None
    left = {(b.kind, b.taken.strftime("%m-%d %H")) for b in list_backups(folder)}
    assert left == {("manual", "08-04 00"),
                    ("weekly", "08-19 00"), ("weekly", "08-26 00"),                  # first of each ISO week
                    ("daily", "08-24 00"), ("daily", "08-25 00"),                    # first of each other day
                    ("hourly", "08-26 06"), ("hourly", "08-26 12"), ("hourly", "08-26 18")}
    assert manual.path.is_dir() and schedule.failures == []
    assert [b.name for b in list_backups(folder)][-1] == "genesis-20240826T180000Z-hourly"
    assert schedule.due_at_start(datetime(2024, 8, 27, 0, 0, tzinfo=UTC))   # 6 h after the newest
    assert not schedule.due_at_start(datetime(2024, 8, 26, 23, 0, tzinfo=UTC))


def test_a_kind_kept_zero_times_is_never_taken():
    monday = datetime(2024, 8, 5, 0, 0, tzinfo=UTC)
    assert scheduled_kind([], monday, {"hourly": 24, "daily": 7, "weekly": 4}) == "weekly"
    assert scheduled_kind([], monday, {"hourly": 24, "daily": 7, "weekly": 0}) == "daily"
    assert scheduled_kind([], monday, {"hourly": 0, "daily": 0, "weekly": 0}) is None


def test_the_schedule_fires_on_the_wall_clock(tmp_path):
    db = tmp_path / "genesis.db"
    _journal_with_entries(db).close()
    folder = tmp_path / "backups"
    schedule = BackupSchedule(f"sqlite:///{db}", folder, 1, {"hourly": 2, "daily": 1, "weekly": 1}).start()
    try:
        deadline = time.monotonic() + 20
        while len(schedule.taken) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        schedule.close()
    assert len(schedule.taken) >= 4 and schedule.failures == []
    kinds = [b.kind for b in list_backups(folder)]
    assert kinds.count("hourly") == 2 and kinds.count("weekly") + kinds.count("daily") >= 1, kinds


def test_a_failed_scheduled_backup_fires_backup_failure_and_trading_goes_on(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    config = _config(tmp_path, f"backup: {{folder: {blocker / 'backups'}}}\n")
    db = tmp_path / "genesis.db"
    done = subprocess.run([*CLI, "run", "--tier", "sniper", "--speed", "60", "--db", f"sqlite:///{db}", "--config",
                           str(config)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Paper run on tier sniper" in done.stdout   # the run went to its end
    failed = [line for line in done.stderr.splitlines() if "backup failed" in line]
    assert failed == [f"genesis: weekly backup failed: the backup folder {blocker / 'backups'} cannot be made: "
                      "Not a directory; trading goes on"], done.stderr
    assert len(_rows(db, "SELECT seq FROM entries WHERE kind = 'fire' AND rule = 'backup_failure'")) == 1
    assert _rows(db, "SELECT status FROM commands WHERE payload LIKE '%backup_failure%'") == [("applied",)]
    [(action,)] = _rows(db, "SELECT data FROM entries WHERE kind = 'action' AND rule = 'backup_failure'")
    assert json.loads(action)["text"] == (f"A journal backup (weekly) failed: the backup folder {blocker / 'backups'} "
                                          "cannot be made: Not a directory.")


# ----------------------------------------------------------------------------- the commands
def test_the_commands_say_what_they_did_and_refuse_in_one_line(tmp_path):
    db, other = tmp_path / "genesis.db", tmp_path / "elsewhere" / "genesis.db"
    _journal_with_entries(db, n=5).close()
    url = f"sqlite:///{db}"

    made = _invoke("backup", "--db", url)
    assert made.exit_code == 0 and made.stdout.startswith(f"backed up {url} and 0 input-log files to "
                                                          f"{tmp_path / 'backups'}"), made.output
    listed = _invoke("backup", "--list", "--db", url)
    assert re.fullmatch(r"genesis-\d{8}T\d{6}Z-manual  manual +\d+\.\d MB  journal \(sqlite, run 1 at entry 5\), "
                        r"0 input-log files\n", listed.stdout), listed.output

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    failed = _invoke("backup", "--db", url, "--to", str(blocker / "x"))
    assert failed.exit_code == 1 and failed.stderr == (
        f"genesis: backup failed: the backup folder {blocker / 'x'} cannot be made: Not a directory (queued for the "
        "engine as backup_failure)\n")
    [(payload,)] = _rows(db, "SELECT payload FROM commands WHERE kind = 'observe'")
    assert json.loads(payload) == {"event": "backup_failure", "fields": {
        "kind": "manual", "reason": f"the backup folder {blocker / 'x'} cannot be made: Not a directory"}}

    memory = _invoke("backup", "--db", "sqlite://")
    assert memory.exit_code == 1 and "kept in memory" in memory.stderr and memory.stderr.count("\n") == 1

    missing = _invoke("restore", "no-such-backup", "--db", f"sqlite:///{other}")
    assert missing.exit_code == 1 and missing.stderr.startswith("genesis: no backup 'no-such-backup'")

    first = _invoke("restore", "latest", "--db", f"sqlite:///{other}")   # latest: in the folder beside the target
    assert first.exit_code == 1 and first.stderr == f"genesis: no backup in {other.parent / 'backups'}\n"
    [backup] = list_backups(tmp_path / "backups")
    into = _invoke("restore", str(backup.path), "--db", f"sqlite:///{other}")
    assert into.exit_code == 0, into.output
    assert _entries(other) == _entries(db)

    _journal_with_entries(db, n=3, mode="replay").close()   # the journal goes on after the backup (run 2)
    again = _invoke("restore", backup.name, "--db", url)
    assert again.exit_code == 1 and again.stderr == (
        f"genesis: a journal already exists at {db}; add --force to replace it (what it replaces is saved first, as "
        f"a pre-restore backup in {tmp_path / 'backups'})\n")
    before = _entries(db, run_id=2)
    forced = _invoke("restore", backup.name, "--db", url, "--force")
    assert forced.exit_code == 0, forced.output
    [saved] = [b for b in list_backups(tmp_path / "backups") if b.kind == "pre-restore"]
    assert forced.stdout.startswith(f"the journal it replaces is saved as {saved.path}\n")
    assert _entries(db) == _entries(backup.path / JOURNAL_SQLITE) and _entries(db, run_id=2) == []
    assert find_backup("latest", tmp_path / "backups").name == backup.name   # never the pre-restore one
    back = restore(saved, f"sqlite:///{tmp_path / 'undo.db'}", tmp_path / "backups")   # and it can be restored
    assert _entries(tmp_path / "undo.db", run_id=2) == before and back.saved is None


def test_a_running_engine_is_never_restored_under(tmp_path):
    db = tmp_path / "genesis.db"
    journal = _journal_with_entries(db)
    made = take_backup(f"sqlite:///{db}", tmp_path / "backups", "manual")
    journal.beat(int(time.time() * 1000))
    journal.close()
    refused = _invoke("restore", str(made.path), "--db", f"sqlite:///{db}", "--force")
    assert refused.exit_code == 1 and refused.stderr == ("genesis: an engine is running on this journal; stop it "
                                                         "first (a restore under it would be lost)\n")


# ----------------------------------------------------------------------------- PostgreSQL
def test_a_postgresql_journal_is_exported_and_restored_into_postgresql_and_sqlite(postgres, tmp_path,  # noqa: F811
                                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)   # a server journal's input logs are ./genesis-live
    url = postgres("backup_pg")
    journal = Journal(url)
    journal.open_run("sniper", {"genesis.yaml": "x"}, "digest", [], "paper")
    for i in range(2500):
        journal.append(1_723_118_400_000 + i, "note", "r", "BTCUSDT", {"i": i, "nan": float("nan")})
    journal.flush()
    journal.queue_command("journal", {"text": "typed"})
    if "snapshots" in journal_module.metadata.tables:   # binary state, where the journal keeps snapshots
        with journal.engine.begin() as conn:
            conn.execute(journal_module.metadata.tables["snapshots"].insert().values(
                run_id=1, seq=5, inputs=5, segment=0, ts=1, version=1, static_digest="s", digest="d", meta="{}",
                state=bytes(range(256))))
    journal.close()
    secret = url.replace("postgres@", "postgres:s3cret-pw@")   # trust authentication ignores it
    folder = tmp_path / "backups"
    made = take_backup(secret, folder, "manual")
    assert (made.path / JOURNAL_EXPORT).is_file()
    for path in made.path.rglob("*"):
        if path.is_file() and path.suffix != ".gz":
            assert "s3cret" not in path.read_text(errors="replace")
    assert made.manifest()["journal"]["runs"] == [{"id": 1, "tier": "sniper", "mode": "paper", "finished": False,
                                                   "last_seq": 2500}]

    def dump(db_url):
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                out = {t: sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                                 for r in conn.execute(text(f"SELECT * FROM {t}")))
                       for t in ("runs", "entries", "commands", "progress")}
                if "snapshots" in journal_module.metadata.tables:
                    out["snapshots"] = [bytes(s) for (s,) in conn.execute(text("SELECT state FROM snapshots"))]
        finally:
            engine.dispose()
        return out

    original = dump(url)
    into_pg = postgres("backup_pg_restored")
    restore(made, into_pg, folder)
    assert dump(into_pg) == original
    into_sqlite = f"sqlite:///{tmp_path / 'from-pg.db'}"
    restore(made, into_sqlite, folder)
    assert dump(into_sqlite) == original
    from_sqlite = take_backup(into_sqlite, folder, "manual")   # and a SQLite journal's backup into PostgreSQL
    into_pg_again = postgres("backup_pg_from_sqlite")
    restore(from_sqlite, into_pg_again, folder)
    assert dump(into_pg_again) == original
    again = Journal(into_pg)   # ids go on after the restored rows
    assert again.queue_command("journal", {"text": "after"}) == 2
    again.close()

    with pytest.raises(BackupError, match="already holds data; add --force to replace it"):
        restore(made, url, folder)
    Journal(url).queue_command("journal", {"text": "made after the backup"})
    done = restore(made, url, folder, force=True)
    assert done.saved is not None and done.saved.kind == "pre-restore" and dump(url) == original


def test_settings_are_checked(tmp_path):
    root = _config(tmp_path, "backup: {interval: 10s, keep: {weekly: 0}}\n")
    result = check_config(root)
    assert not result.ok
    [problem] = result.problems
    assert problem.message == ("a backup every 10s would copy the journal over and over; use 1m or more, or null "
                               "for none")
    assert result.files.settings.data["backup"]["keep"] == {"hourly": 24, "daily": 7, "weekly": 0}
