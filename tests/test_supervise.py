"""`genesis supervise` (genesis.supervise): real child processes, killed and crashing,
restarted with backoff; each restart reaches the engine through its journal as an
engine_restart event; a supervisor that gives up pages a local receiver; and the chaos
test with the supervisor doing the restarts of a live engine trading on the simulator.
GENESIS_CHAOS_SEED=N repeats a chaos run."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from live_helpers import LiveProc
from scenario_helpers import edited_copy
from test_notify import Receiver

from genesis.supervise import Policy, Supervisor, describe_exit

ROOT = Path(__file__).resolve().parents[1]
FAST = {"genesis.yaml": {"health_probe: {interval: 15s}": "health_probe: {interval: null}",
                         "metrics_endpoint: {port: 9464}": "metrics_endpoint: {port: null}"}}


def _supervisor_settings(root: Path, text: str) -> None:
    with (root / "genesis.yaml").open("a", encoding="utf-8") as out:
        out.write(text)


class Lines:
    """The output of a process, line by line, read on a thread."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, count: int = 1, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {count} x {text!r} in:\n" + "\n".join(self.lines[-40:]))


def test_a_child_that_keeps_failing_is_restarted_with_doubling_backoff_then_given_up():
    said, recorded, paged = [], [], []
    policy = Policy(backoff_s=0.05, max_backoff_s=0.15, max_restarts=3, window_s=60.0)
    supervisor = Supervisor([sys.executable, "-c", "import sys; sys.exit(3)"], policy, recorded.append, paged.append,
                            say=said.append)
    started = time.monotonic()
    assert supervisor.run() == 1
    assert recorded == [3, 3, 3]                           # each restart, with how the engine ended
    waits = [line.split("restarting in ")[1].split(" s")[0] for line in said if "restarting in" in line]
    assert waits == ["0.05", "0.1", "0.15"]                # doubled, capped at max_backoff
    assert time.monotonic() - started >= 0.3
    [text] = paged
    assert text.startswith("The engine crashed again (exit 3: an internal error) after 3 restarts within 60 s")


def test_a_finished_run_or_a_refused_start_is_not_restarted():
    for code, expected in ((0, "the run finished"), (2, "refused to start")):
        said, recorded = [], []
        supervisor = Supervisor([sys.executable, "-c", f"import sys; sys.exit({code})"],
                                Policy(0.01, 0.01, 3, 60.0), recorded.append, lambda _t: None, say=said.append)
        assert supervisor.run() == code
        assert recorded == [] and any(expected in line for line in said), said


def test_a_failure_to_record_or_page_is_said_and_supervising_goes_on():
    said = []

    def broken(_arg):
        raise OSError("journal gone")

    supervisor = Supervisor([sys.executable, "-c", "import sys; sys.exit(1)"], Policy(0.01, 0.01, 1, 60.0),
                            broken, broken, say=said.append)
    assert supervisor.run() == 1
    assert "supervise: could not record the restart in the journal (OSError: journal gone)" in said
    assert "supervise: could not page (OSError: journal gone)" in said


def test_describe_exit_names_the_signal():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(1) == "exit 1: an error it reported"


def test_a_killed_engine_is_restarted_resumes_and_applies_the_restart_then_ctrl_c_stops_both(tmp_path):
    root = edited_copy(tmp_path, FAST)
    _supervisor_settings(root, "supervisor: {backoff: 100ms}\n")
    db = tmp_path / "j.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "supervise", "--tier", "sniper", "--speed", "2",
                             "--db", f"sqlite:///{db}", "--config", str(root)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Lines(proc)
    try:
        first = int(out.wait_for("supervise: engine started (pid")[0].split("pid ")[1].rstrip(")"))
        out.wait_for("operator connect: session started")
        os.kill(first, signal.SIGKILL)
        [_, again] = out.wait_for("supervise: engine started (pid", count=2)
        second = int(again.split("pid ")[1].rstrip(")"))
        assert second != first
        assert any("killed by SIGKILL); restarting in 0.1 s (restart 1 of 5 within 600 s)" in line
                   for line in out.lines)
        out.wait_for("resuming paper trading")

        def applied() -> list[dict]:
            with sqlite3.connect(db) as con:
                rows = con.execute("SELECT payload, status FROM commands WHERE kind = 'observe'").fetchall()
            return [json.loads(p) for p, status in rows if status == "applied"]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p["event"] == "engine_restart" for p in applied()):
            time.sleep(0.1)
        assert [p["fields"] for p in applied() if p["event"] == "engine_restart"] == [{"exit_code": -9}]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    out.thread.join(5)
    assert code == 130, "\n".join(out.lines[-30:])
    assert "stopped; the journal is saved: run the same command to resume" in "\n".join(out.lines)
    assert out.lines[-1].startswith("supervise: stopped")
    assert "Traceback" not in "\n".join(out.lines)


def test_an_engine_that_cannot_start_is_given_up_and_the_page_reaches_the_receiver(tmp_path):
    root = edited_copy(tmp_path, FAST)
    _supervisor_settings(root, "supervisor: {backoff: 10ms, max_restarts: 2}\n")
    (tmp_path / "j.db").write_bytes(b"not a database " * 100)   # every start fails: exit 1
    receiver = Receiver()
    env = {**os.environ, "GENESIS_PAGER_URL": receiver.url + "/page"}
    env.pop("GENESIS_DEBUG", None)
    try:
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "supervise", "--tier", "sniper",
                               "--db", f"sqlite:///{tmp_path / 'j.db'}", "--config", str(root)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        receiver.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("supervise: engine started") == 3
    assert "could not record the restart in the journal" in done.stdout   # the journal is what is broken
    [(path, body)] = receiver.received
    assert path == "/page" and body["rule"] == "supervisor" and body["severity"] == "critical"
    assert body["text"].startswith("The engine crashed again (exit 1: an error it reported) after 2 restarts")
    assert "Traceback" not in done.stdout + done.stderr


class SupervisedLive(LiveProc):
    """`genesis supervise --mode live ...` against the simulator: the test kills the
    engine, the supervisor starts it again."""

    def command(self) -> list[str]:
        python, cli, run, *options = super().command()
        assert run == "run"
        return [python, cli, "supervise", *options]

    def engine_pids(self) -> list[int]:
        text = self.out.read_text(errors="replace") if self.out.exists() else ""
        return [int(line.split("(pid ")[1].split(")")[0]) for line in text.splitlines()
                if "supervise: engine started (pid" in line]

    def kill_engine(self) -> int:
        pid = self.engine_pids()[-1]
        os.kill(pid, signal.SIGKILL)
        return pid


def test_chaos_the_supervised_live_engine_killed_at_random_loses_and_doubles_nothing(tmp_path):
    """The chaos test of test_live_chaos, with the supervisor doing the restarts: kill -9
    the engine in the middle of order traffic; the supervisor starts it again, it recovers
    and reconciles, and the journal and the exchange agree exactly every time."""
    from live_helpers import agreement   # noqa: PLC0415
    from test_live_chaos import START, quiet, traffic   # noqa: PLC0415

    from genesis.simulator import SimulatorThread   # noqa: PLC0415

    rng = random.Random(int(os.environ.get("GENESIS_CHAOS_SEED", "20261203")))
    root = edited_copy(tmp_path, FAST)
    _supervisor_settings(root, "supervisor: {backoff: 100ms}\n")
    with SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}) as sim:
        live = SupervisedLive(tmp_path, sim, config=root)
        try:
            live.start()
            far = round(float(sim.state()["books"]["BTCUSDT"]["bestBid"]) * 0.7, 2)
            for round_ in range(3):
                traffic(live, rng, rng.randint(2, 6), far)
                time.sleep(rng.uniform(0.0, 0.6))         # somewhere in the middle of the traffic
                reconciled, engines = live.count("reconciled"), len(live.engine_pids())
                killed = live.kill_engine()
                live.wait(lambda: len(live.engine_pids()) == engines + 1 and live.count("reconciled") > reconciled,
                          f"the supervisor's restart {round_ + 1}")
                assert killed not in live.engine_pids()[-1:]
                live.wait(lambda: quiet(live, sim), "the restarted engine to settle", timeout=60)
                agreement(live, sim, START)
                assert all(r["mismatch_usd"] == 0 for r in live.entries("reconciled"))
            live.wait(lambda: len([p for p in _observed(live) if p["event"] == "engine_restart"]) == 3,
                      "the three restarts applied by the engine")
            assert [p["fields"] for p in _observed(live) if p["event"] == "engine_restart"] == [{"exit_code": -9}] * 3
            assert live.proc.poll() is None                  # the supervisor itself was never killed
            assert live.stop() == 0
            assert "supervise: stopped" in live.tail()
            assert agreement(live, sim, START)["trades"] >= 1, "no order traded: the test proves nothing"
        finally:
            live.stop()


def _observed(live: LiveProc) -> list[dict]:
    return [json.loads(p) for (p,) in live.rows("SELECT payload FROM commands WHERE kind = 'observe' "
                                                "AND status = 'applied'")]
