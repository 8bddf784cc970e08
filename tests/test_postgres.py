"""The journal on a real PostgreSQL server (psycopg 3) that the tests start on 127.0.0.1:
a replay journals exactly what it journals on SQLite (with a command script, whose input
digest is longer than 64 characters), a paper run killed with SIGKILL resumes and ends in
the uninterrupted state, and operator commands from another process reach a running
engine. Skipped, with the reason, where no PostgreSQL server binaries are installed."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from genesis.engine.engine import CHECKPOINT_EVERY

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own (trust authentication, 127.0.0.1 only); yields a
    function that creates a fresh database and returns its SQLAlchemy URL."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    # not under pytest's own folder, which only its owner may enter
    folder = Path(tempfile.mkdtemp(prefix="genesis-pg-"))
    os.chmod(folder, 0o700)
    if os.geteuid() == 0:   # the server refuses to run as root: as the postgres user when there is one
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root and there is no `runuser` to start the server as the postgres user")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    made = subprocess.run([*as_user, initdb, "-D", str(data), "--auth=trust", "-U", "postgres"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-w", "-l", str(folder / "server.log"), "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True, timeout=120)
    admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
    made = []

    def fresh(name: str) -> str:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        made.append(name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

    try:
        yield fresh
    finally:
        admin.dispose()
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _entries(url: str) -> tuple[list, list]:
    """(entries, runs) of the journal at `url`; empty before its tables exist."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, ts, kind, rule, symbol, data FROM entries ORDER BY run_id, seq")).all()
            runs = conn.execute(text("SELECT id, finished FROM runs ORDER BY id")).all()
    except ProgrammingError:   # not created yet
        return [], []
    finally:
        engine.dispose()
    return [tuple(r) for r in rows], [tuple(r) for r in runs]


def _script(tmp: Path) -> Path:
    path = tmp / "commands.yaml"
    path.write_text(yaml.safe_dump({"commands": [
        {"after": "30s", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 20},
        {"after": "90s", "kind": "order", "side": "buy", "symbol": "BTCUSDT", "notional_usd": 400},   # refused
        {"after": "120s", "kind": "order", "side": "sell", "symbol": "BTCUSDT", "notional_usd": 1000},
    ]}, sort_keys=False))
    return path


def _replay(url: str, script: Path) -> dict:
    done = subprocess.run([*CLI, "replay", "--tier", "sniper", "--db", url, "--config", str(ROOT), "--commands",
                           str(script), "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_replay_with_a_command_script_journals_on_postgresql_what_it_journals_on_sqlite(postgres, tmp_path):
    script = _script(tmp_path)
    url = postgres("replay_pg")
    on_pg = _replay(url, script)
    on_sqlite = _replay(f"sqlite:///{tmp_path / 'j.db'}", script)
    timing = {k for k in on_pg if "second" in k or "elapsed" in k or k.endswith("_s")}
    assert {k: v for k, v in on_pg.items() if k not in timing} == {k: v for k, v in on_sqlite.items()
                                                                  if k not in timing}
    pg_rows, pg_runs = _entries(url)
    sqlite_rows, _ = _entries(f"sqlite:///{tmp_path / 'j.db'}")
    assert pg_rows == sqlite_rows and pg_runs == [(1, 1)]
    kinds = {row[2] for row in pg_rows}
    assert {"operator", "order", "fill", "refused"} <= kinds, kinds   # the script really ran
    with create_engine(url).connect() as conn:
        digest = conn.execute(text("SELECT feed_digest FROM runs")).scalar_one()
    assert len(digest) > 64                                          # VARCHAR(64) refused it before


def _progress(url: str) -> int:
    """Events the run has checkpointed (0 before its first checkpoint)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT max(events) FROM progress")).scalar() or 0)
    except ProgrammingError:
        return 0
    finally:
        engine.dispose()


def _snapshots(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM snapshots")).scalar()
    except ProgrammingError:   # not created yet
        return 0
    finally:
        engine.dispose()


def test_a_replay_killed_with_sigkill_resumes_on_postgresql_to_the_uninterrupted_journal(postgres, tmp_path):
    """With snapshots every 5 s of event time: the resumed run starts from one stored in
    PostgreSQL and ends with the uninterrupted run's journal."""
    from scenario_helpers import edited_copy  # noqa: PLC0415

    root = edited_copy(tmp_path)
    with (root / "genesis.yaml").open("a") as fh:
        fh.write("\nrecovery:\n  snapshot_every: 5s\n  min_interval: 0s\n")
    reference_url, url = postgres("kill_ref"), postgres("kill_crash")
    replay = [*CLI, "replay", "--tier", "sniper", "--config", str(root), "--json", "--db"]
    assert subprocess.run([*replay, reference_url], capture_output=True, timeout=300, cwd=ROOT).returncode == 0
    reference, _ = _entries(reference_url)
    proc = subprocess.Popen([*replay, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and (
            _progress(url) < CHECKPOINT_EVERY or _snapshots(url) < 1):
        time.sleep(0.005)
    assert proc.poll() is None, "the replay ended before the kill: the sample is too short"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial, runs = _entries(url)
    assert 0 < len(partial) < len(reference) and runs == [(1, 0)], "the kill did not land mid-run"
    resumed = subprocess.run([*replay, url], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from the snapshot after input" in resumed.stderr
    rows, runs = _entries(url)
    assert rows == reference and runs == [(1, 1)]


def test_operator_commands_from_another_process_reach_the_running_engine_on_postgresql(postgres, tmp_path):
    url = postgres("operator")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    proc = subprocess.Popen([*CLI, "run", "--tier", "sniper", "--speed", "1", "--db", url, "--config",
                             str(_quiet_config(tmp_path))], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _connected(url):   # the engine's operator session is open
            time.sleep(0.1)
        placed = subprocess.run([*CLI, "order", "buy", "BTCUSDT", "20", "--db", url, "--config", str(ROOT)],
                                capture_output=True, text=True, timeout=60)
        assert placed.returncode == 0, placed.stdout + placed.stderr
        assert "applied" in placed.stdout, placed.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out[-2000:]
    rows, _ = _entries(url)
    assert any(kind == "operator" and rule == "order" for _, _, kind, rule, _, _ in rows)
    assert any(kind == "fill" for _, _, kind, _, _, _ in rows)


def _connected(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM commands WHERE kind = 'connect' AND status = 'applied'"
                                     )).scalar() > 0
    except ProgrammingError:
        return False
    finally:
        engine.dispose()


def _quiet_config(tmp: Path) -> Path:
    """The shipped configuration without the health probe and the metrics port (readings
    are wall-clock inputs, which would make two runs differ; a port may be taken)."""
    from scenario_helpers import edited_copy   # noqa: PLC0415

    return edited_copy(tmp, {"genesis.yaml": {"health_probe: {interval: 15s}": "health_probe: {interval: null}",
                                              "metrics_endpoint: {port: 9464}": "metrics_endpoint: {port: null}"}})
