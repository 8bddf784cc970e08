"""A kill -9 during a lockout and during an override cooldown keeps them in force after
restart: the real `genesis run` (paper, real-time speed, bundled capture) is driven into
a tilt level-3 lockout by queued operator commands, killed with SIGKILL, and started
again with the same command; the restarted engine rebuilds its state from the journal.
"""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from test_scenarios_tilt import calibrated_config

from genesis.engine.journal import Journal

ROOT = Path(__file__).resolve().parents[1]
PHRASE = "I accept the risk of overriding my own limits"
REASON = "I stick to my plan and size"

COVERS = {  # rule book rule -> a test here that asserts it fires (tests/test_scenario_coverage.py)
    "tilt_level_3": "test_kill_9_during_a_lockout_and_a_cooldown_keeps_both_after_restart",
}


def six_indicators() -> list[tuple[str, dict]]:
    """Commands that raise six tilt indicators at once: config thrashing, rage quit, quick
    cancels, bargaining, loss reaction and revenge (the last buy tips level 3)."""
    cmds: list[tuple[str, dict]] = [("connect", {})]
    cmds += [("set", {"key": "tier.limits.daily_loss_usd", "value": v}) for v in (20, 22, 24, 21)]
    cmds += [("disconnect", {})] * 3
    limit = {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 40, "limit": 50000, "reason": REASON}
    for i in range(1, 6):
        cmds += [("order", limit), ("cancel", {"client_id": f"g{i}"})]
    cmds.append(("order", limit))
    cmds += [("amend", {"client_id": "g6", "price": 50010 + p}) for p in range(6)]
    cmds.append(("cancel", {"client_id": "g6"}))
    for symbol, side in (("BTCUSDT", "buy"), ("BTCUSDT", "sell"), ("ETHUSDT", "buy"), ("ETHUSDT", "sell"),
                         ("ETHUSDT", "buy")):
        cmds.append(("order", {"side": side, "symbol": symbol, "notional_usd": 40, "reason": REASON}))
    return cmds


class Engine:
    """`genesis run` on one journal, started and killed like a trader's process."""

    def __init__(self, tmp: Path):
        self.db = tmp / "journal.db"
        self.url = f"sqlite:///{self.db}"
        self.config = calibrated_config(tmp)
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "cli.py", *args, "--db", self.url, "--config", str(self.config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "cli.py", "run", "--tier", "sniper", "--speed", "1", "--db", self.url,
             "--config", str(self.config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = time.time()
        self.wait(lambda: self.beat_after(started * 1000), "the engine's heartbeat")

    def beat_after(self, ms: float) -> bool:
        if not self.db.exists():
            return False
        journal = Journal(self.url)
        try:
            return journal.last_beat() > ms
        finally:
            journal.engine.dispose()

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the engine stopped on its own"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def queue(self, commands: list[tuple[str, dict]]) -> list[int]:
        journal = Journal(self.url)
        try:
            return [journal.queue_command(kind, payload) for kind, payload in commands]
        finally:
            journal.engine.dispose()

    def rows(self, sql: str, args=()) -> list:
        con = sqlite3.connect(self.db)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def applied(self, ids: list[int]) -> bool:
        marks = ",".join("?" * len(ids))
        return not self.rows(f"SELECT id FROM commands WHERE status = 'queued' AND id IN ({marks})", ids)

    def wait(self, ready, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"engine exited ({self.proc.returncode}) waiting for {what}: "
                                     f"{self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def locks(self) -> list[dict]:
        return [json.loads(d)["lock"] for (d,) in
                self.rows("SELECT data FROM entries WHERE kind = 'action' AND rule = 'tilt_level_3' "
                          "AND data LIKE '%\"lock\"%' ORDER BY seq")]


def test_kill_9_during_a_lockout_and_a_cooldown_keeps_both_after_restart(tmp_path):
    eng = Engine(tmp_path)
    try:
        eng.start()
        commands = six_indicators()
        ids = eng.queue(commands)
        eng.wait(lambda: eng.applied(ids), "the commands to apply")
        # a command is marked applied just before its entries are written (a crash in
        # between replays it): wait for the last one's (an order) entries, the lock among them
        orders = sum(1 for kind, _ in commands if kind == "order")
        eng.wait(lambda: eng.rows("SELECT count(*) FROM entries WHERE kind = 'operator' AND rule = 'order'")[0][0]
                 >= orders, "the commands' entries")
        locks = eng.locks()
        assert len(locks) == 1 and locks[0]["reason"] == "tilt level 3" and locks[0]["symbol"] == ""
        until = locks[0]["until"]
        # a short entry is recorded but does not meet the 500 words the lockout asks for
        short = eng.cli("journal", "I got carried away and I know it.")
        assert short.returncode == 0 and "journal entry of 8 words recorded" in short.stdout
        assert "will end when its time is up" not in short.stdout
        exit_ = eng.cli("order", "sell", "ETHUSDT", "40")   # exits are never locked
        assert exit_.returncode == 0 and "1 order sent" in exit_.stdout, exit_.stdout
        refused = eng.cli("order", "buy", "BTCUSDT", "20", "--reason", REASON)
        assert refused.returncode == 1 and "locked: tilt level 3" in refused.stdout, refused.stdout
        assert "locked     tilt level 3 (all symbols): until " in eng.cli("status").stdout

        eng.kill()
        eng.start()   # the same command: resumes the unfinished run from the journal
        eng.wait(lambda: eng.rows("SELECT count(*) FROM commands WHERE kind = 'connect'")[0][0] >= 2,
                 "the restarted session")
        again = eng.cli("order", "buy", "BTCUSDT", "20", "--reason", REASON)
        assert again.returncode == 1 and "locked: tilt level 3" in again.stdout, again.stdout
        assert [lk["until"] for lk in eng.locks()] == [until], "the lockout was rebuilt, not re-imposed"
        assert "locked     tilt level 3 (all symbols): until " in eng.cli("status").stdout

        # an accepted override lifts the lock and starts a 24 h cooldown; a kill keeps the cooldown
        accepted = eng.cli("override", "--phrase", PHRASE)
        assert accepted.returncode == 0 and "override accepted" in accepted.stdout, accepted.stdout
        eng.kill()
        eng.start()
        eng.wait(lambda: eng.rows("SELECT count(*) FROM commands WHERE kind = 'connect'")[0][0] >= 3,
                 "the second restart")
        second = eng.cli("override", "--phrase", PHRASE)
        assert second.returncode == 1 and "an override was accepted within the last" in second.stdout, second.stdout
        # the override's effect survived too: the lock is gone, a reasoned buy goes out
        # (at a quarter size: graduated re-entry still applies)
        buy = eng.cli("order", "buy", "BTCUSDT", "48", "--reason", REASON)
        assert buy.returncode == 0 and "1 order sent" in buy.stdout, buy.stdout
        intent = json.loads(eng.rows("SELECT data FROM entries WHERE kind = 'intent' ORDER BY seq DESC LIMIT 1")[0][0])
        slots: dict = {}
        for (data,) in eng.rows("SELECT data FROM entries WHERE kind = 'action' AND data LIKE '%scale_size%' "
                                "ORDER BY seq"):
            action = json.loads(data)
            slots[action["slot"]] = action["factor"]
        # the restart's new operator session ended the config-thrashing indicator: level 3
        # gave way to level 2 (halved), on top of the re-entry quarter
        assert slots == {"reentry": 0.25, "tilt": 0.5}
        assert intent["size_factor"] == 0.125 and intent["notional_final"] == 6.0
    finally:
        eng.stop()
