"""Bounded recovery (genesis/engine/recovery.py, genesis/engine/snapshots.py,
genesis/live/segment.py): a run with snapshots, killed with SIGKILL at random moments and
restarted, ends with exactly the journal and the report of an uninterrupted run without
snapshots; a damaged or foreign snapshot is passed over; the live input log is written
in segments that recovery reads from the snapshot on, and old segments are compressed
and removed while a killed live engine still recovers exactly."""
from __future__ import annotations

import gzip
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from live_helpers import LiveProc, agreement
from scenario_helpers import edited_copy
from test_live_chaos import quiet, traffic

from genesis.config.checks import check_config
from genesis.engine.engine import CHECKPOINT_EVERY
from genesis.engine.events import Event
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.runner import open_session, replay
from genesis.live.segment import InputLog, InputLogError, compact, read_inputs, segments
from genesis.simulator import SimulatorThread

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]
SCRIPT = """commands:
  - {after: 15s, kind: order, side: buy, symbol: BTCUSDT, notional_usd: 40}
  - {after: 25s, kind: set, key: tier.limits.daily_loss_usd, value: 22}
  - {after: 40s, kind: order, side: buy, symbol: ETHUSDT, notional_usd: 30}
  - {after: 70s, kind: order, side: sell, symbol: BTCUSDT, notional_usd: 20}
  - {after: 100s, kind: order, side: buy, symbol: BTCUSDT, notional_usd: 30}
  - {after: 130s, kind: order, side: sell, symbol: BTCUSDT, notional_usd: 1000}
"""


def _config(tmp: Path, snapshot_every: str) -> Path:
    """The shipped configuration with snapshots every `snapshot_every` of event time and
    `genesis set` edits due after 20 s (so that one falls due within the sample)."""
    root = edited_copy(tmp, {"genesis.yaml": {"risk_edit_delay: 1h": "risk_edit_delay: 20s"}})
    with (root / "genesis.yaml").open("a") as fh:
        fh.write(f"\nrecovery:\n  snapshot_every: {snapshot_every}\n  min_interval: 0s\n  snapshots_kept: 2\n")
    return root


def _replay_cmd(root: Path, db: Path, script: Path) -> list[str]:
    return [*CLI, "replay", "--tier", "sniper", "--db", f"sqlite:///{db}", "--config", str(root), "--json",
            "--commands", str(script)]


def _entries(db: Path) -> list:
    """The journal; an applied configuration's genesis.yaml text is left out (the runs
    compared differ in their `recovery` settings and in nothing else)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT seq, ts, kind, rule, symbol, data FROM entries ORDER BY run_id, seq").fetchall()
    finally:
        con.close()
    out = []
    for seq, ts, kind, rule, symbol, data in rows:
        if kind == "config":
            data = json.loads(data)
            assert "recovery:" in data["files"].pop("genesis.yaml")
            data = json.dumps(data, sort_keys=True)
        out.append((seq, ts, kind, rule, symbol, data))
    return out


def _progress(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT max(events) FROM progress").fetchone()[0] or 0)
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _report(stdout: str) -> dict:
    report = json.loads(stdout)
    for timing in ("elapsed_s", "events_per_second"):
        report.pop(timing, None)
    return report


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """A replay of the sample with a command script and no snapshots."""
    tmp = tmp_path_factory.mktemp("plain")
    root = _config(tmp, "null")
    script = tmp / "script.yaml"
    script.write_text(SCRIPT)
    db = tmp / "journal.db"
    done = subprocess.run(_replay_cmd(root, db, script), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    entries = _entries(db)
    kinds = {e[2] for e in entries}
    assert {"fill", "config", "operator"} <= kinds, kinds   # it traded, and the delayed edit applied
    return {"entries": entries, "report": _report(done.stdout), "events": _progress(db)}


@pytest.mark.parametrize("attempt", range(2))
def test_killed_runs_resume_from_snapshots_to_the_uninterrupted_journal(tmp_path, uninterrupted, attempt):
    root = _config(tmp_path, "4s")
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    db = tmp_path / "journal.db"
    rng = random.Random(attempt)
    total = uninterrupted["events"]
    said, kills = "", 0
    for i in range(4):
        lowest = _progress(db) + CHECKPOINT_EVERY
        if lowest > total - 2 * CHECKPOINT_EVERY:
            break
        target = rng.randrange(lowest, total - 2 * CHECKPOINT_EVERY + 1, CHECKPOINT_EVERY)
        proc = subprocess.Popen(_replay_cmd(root, db, script), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONHASHSEED": str(attempt * 10 + i)})
        deadline = time.monotonic() + 120
        while proc.poll() is None and _progress(db) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        said += proc.communicate(timeout=60)[1]
    last = subprocess.run(_replay_cmd(root, db, script), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert last.returncode == 0, last.stderr
    said += last.stderr
    assert kills >= 1
    assert "resumed from the snapshot after input" in said, said
    assert _entries(db) == uninterrupted["entries"]
    assert _report(last.stdout) == uninterrupted["report"]   # the whole run's figures, not just its end
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 2   # snapshots_kept
    finally:
        con.close()
    assert "daily_loss_usd: 22" not in (root / "tiers" / "sniper.yaml").read_text()   # a replay writes no file


def test_a_damaged_or_foreign_snapshot_is_passed_over(tmp_path, uninterrupted):
    root = _config(tmp_path, "4s")
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    db = tmp_path / "journal.db"
    proc = subprocess.Popen(_replay_cmd(root, db, script), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and _progress(db) < uninterrupted["events"] // 2 and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    con = sqlite3.connect(db)
    try:
        ids = [r[0] for r in con.execute("SELECT id FROM snapshots ORDER BY id DESC")]
        assert len(ids) == 2, ids
        con.execute("UPDATE snapshots SET state = ? WHERE id = ?", (b"damaged", ids[0]))
        con.execute("UPDATE snapshots SET version = 999 WHERE id = ?", (ids[1],))
        con.commit()
    finally:
        con.close()
    last = subprocess.run(_replay_cmd(root, db, script), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert last.returncode == 0, last.stderr
    assert "no snapshot could be used" in last.stderr
    assert "does not match its digest" in last.stderr and "state version 999" in last.stderr
    assert _entries(db) == uninterrupted["entries"]


# --------------------------------------------------------------------------- the segmented input log
def _event(i: int) -> Event:
    return Event("trade", 1_700_000_000_000 + i, "BTCUSDT", {"price": 100.0 + i, "qty": 0.1})


def test_the_input_log_reads_across_segments_compressed_or_not(tmp_path):
    base = tmp_path / "run-ab-cd.inputs"
    log = InputLog(base)
    for i in range(10):
        if i in (3, 7):
            log.rotate()
        log.write(_event(i))
    log.close()
    assert [n for n, _ in segments(base)] == [0, 1, 2]
    assert [e.ts % 1000 for e in read_inputs(base)] == list(range(10))
    assert [e.ts % 1000 for e in read_inputs(base, first=1)] == list(range(3, 10))
    # a reopened log appends to its newest segment
    again = InputLog(base)
    assert again.segment == 2
    again.write(_event(10))
    again.close()
    # old segments compressed, then removed after the retention
    assert compact(base, before=2, retention_s=3600) == {"compressed": 2, "removed": 0}
    names = sorted(p.name for _, p in segments(base))
    assert names == ["run-ab-cd.inputs.000001.gz", "run-ab-cd.inputs.000002", "run-ab-cd.inputs.gz"]
    assert gzip.decompress((tmp_path / "run-ab-cd.inputs.gz").read_bytes()).count(b"\n") == 3
    assert [e.ts % 1000 for e in read_inputs(base)] == list(range(11))
    assert compact(base, before=2, retention_s=3600, now=time.time() + 7200) == {"compressed": 0, "removed": 2}
    assert [e.ts % 1000 for e in read_inputs(base, first=2)] == [7, 8, 9, 10]
    with pytest.raises(InputLogError, match=r"missing its segment run-ab-cd\.inputs "):
        list(read_inputs(base))


# --------------------------------------------------------------------------- live
START = {"USDT": Decimal("2000"), "BTC": Decimal("0"), "ETH": Decimal("0")}


def test_a_killed_live_engine_recovers_from_snapshots_after_old_segments_are_gone(tmp_path):
    """Snapshots every second and old segments removed at once: a restart can only come
    back through a snapshot, and still agrees exactly with the exchange."""
    root = edited_copy(tmp_path)
    with (root / "genesis.yaml").open("a") as fh:
        fh.write("\nrecovery:\n  snapshot_every: 1s\n  min_interval: 0s\n  snapshots_kept: 2\n  input_log_retention: 0s\n")
    rng = random.Random(7)
    with SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}) as sim:
        live = LiveProc(tmp_path, sim, config=root)
        try:
            live.start()
            far = round(float(sim.state()["books"]["BTCUSDT"]["bestBid"]) * 0.7, 2)
            for _ in range(3):
                base = Path(json.loads(live.rows("SELECT feed_paths FROM runs")[0][0])[0])
                live.wait(lambda: sum(p.name.endswith(".gz") for _, p in segments(base)) >= 1 and
                          segments(base)[0][0] > 0, "old segments compressed and removed", timeout=60)
                # orders decided after the latest snapshot, killed in the middle of them: the
                # restored engine re-reads those decisions and must not send them again
                traffic(live, rng, 4, far)
                time.sleep(rng.uniform(0.1, 0.6))
                live.kill()
                live.start()
                live.wait(lambda: quiet(live, sim), "the restarted engine to settle", timeout=60)
                agreement(live, sim, START)
                assert all(r["mismatch_usd"] == 0 for r in live.entries("reconciled"))
            out = live.out.read_text(errors="replace")
            assert out.count("resumed from the snapshot after input") == 3, live.tail()
            assert live.stop() == 0
            final = agreement(live, sim, START)
            assert final["trades"] >= 2, final
            assert not live.entries("position_mismatch")
            tier = live.cli("tier")   # rebuilt from the newest snapshot: the log's first segments are gone
            assert tier.returncode == 0 and tier.stdout.startswith("tier sniper"), tier.stdout + tier.stderr
        finally:
            live.stop()


def test_a_prepared_index_serves_every_snapshot_until_the_rule_set_changes(tmp_path):
    """`Snapshotter.prepare` (a live run calls it before it trades) indexes the compiled
    configuration, so the first snapshot does not stop the run loop for it: the replay's
    snapshots use that index; after a tier change the next one indexes the new rule set."""
    root = _config(tmp_path, "10s")
    session = open_session(root, check_config(root), "sniper", open_feed(sample_paths()),
                           f"sqlite:///{tmp_path / 'run.db'}", "replay")
    snaps = session.snapshots
    assert snaps is not None and snaps.index is None   # a replay indexes at its first snapshot
    snaps.prepare()
    index = snaps.index
    assert index is not None and index.covers(session.engine)
    snaps.prepare()
    assert snaps.index is index                       # done once
    replay(session)
    assert snaps.taken >= 2 and snaps.index is index
    session.engine.change_tier(+1, "test")
    assert not index.covers(session.engine)
    assert snaps.take(session.engine.stats.events) and snaps.index is not index
    assert snaps.index.covers(session.engine)
    session.journal.close()
