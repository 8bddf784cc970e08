"""The live input log (genesis/live/segment.py) never holds a torn line followed by
another, and an input it cannot hold is never processed: a short write is completed,
a write that cannot be (full disk, file size limit) is cut back off the log and stops
live trading with one clear line. Real files, real pipes and signals, real resource
limits (in child processes); the live test runs `genesis run --mode live` against the
project's simulator on 127.0.0.1 under a file size limit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from live_helpers import LiveProc, agreement, order
from scenario_helpers import config_copy

from genesis.engine.events import Event
from genesis.live.segment import InputLog, InputLogError, read_inputs
from genesis.simulator import SimulatorThread

ROOT = Path(__file__).resolve().parents[1]


def _child(code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter (its own limits and signals); its last stdout line is JSON."""
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _events(n: int, size: int = 700) -> list[Event]:
    return [Event("trade", 1_700_000_000_000 + i, "BTCUSDT", {"price": 60000.5 + i, "pad": "x" * size})
            for i in range(n)]


def test_a_full_disk_raises_a_clear_error_and_the_log_refuses_every_later_line(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full (ENOSPC on every write) is Linux only")
    path = tmp_path / "run.inputs"
    path.symlink_to("/dev/full")
    log = InputLog(path)
    for _ in range(2):
        with pytest.raises(InputLogError) as caught:
            log.write(_events(1)[0])
        message = str(caught.value)
        assert f"cannot write the live input log {path} (No space left on device)" in message
        assert "stopped before processing that input" in message and "run the same command" in message
    assert log.written == 0
    log.close()


LIMITED = """
import json, resource, signal, sys
from genesis.engine.events import Event
from genesis.live.segment import InputLog, InputLogError
limit = int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # past the limit: EFBIG, as a full disk gives ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
log = InputLog(sys.argv[1])
error = ""
for i in range(10_000):
    try:
        log.write(Event("trade", 1_700_000_000_000 + i, "BTCUSDT", {"price": 60000.5 + i, "pad": "x" * 700}))
    except InputLogError as exc:
        error = str(exc)
        break
print(json.dumps({"written": log.written, "error": error}))
"""


def test_a_line_cut_short_by_a_file_size_limit_is_taken_back_off_the_log(tmp_path):
    """The line that crosses the limit is written in part (a short write), the rest fails
    with EFBIG: the part is cut off, the log ends with the last whole line."""
    path = tmp_path / "run.inputs"
    limit = 100_000   # not a multiple of the line length: the last line is cut short
    out = _child(LIMITED, str(path), str(limit))
    assert "cannot write the live input log" in out["error"] and "(File too large)" in out["error"], out
    data = path.read_bytes()
    line = len(data) // out["written"]
    assert out["written"] == limit // line and len(data) == out["written"] * line and data.endswith(b"\n")
    assert [e.ts for e in read_inputs(path)] == [1_700_000_000_000 + i for i in range(out["written"])]
    # opened again (no limit now), it goes on at a line boundary
    log = InputLog(path)
    log.write(_events(1)[0])
    log.close()
    assert len(list(read_inputs(path))) == out["written"] + 1


INTERRUPTED = """
import json, os, signal, sys, threading, time
from genesis.engine.events import Event
from genesis.live.segment import InputLog
fifo = sys.argv[1]
os.mkfifo(fifo)
got = bytearray()
def reader():
    fd = os.open(fifo, os.O_RDONLY)
    while chunk := os.read(fd, 65536):
        got.extend(chunk)
        time.sleep(0.001)        # slower than the writer: it blocks, and the timer interrupts it
    os.close(fd)
thread = threading.Thread(target=reader)
thread.start()
ticks = []
signal.signal(signal.SIGALRM, lambda *_: ticks.append(1))
log = InputLog(fifo)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
for i in range(3):
    log.write(Event("trade", i, "BTCUSDT", {"blob": str(i) * 3_000_000}))
signal.setitimer(signal.ITIMER_REAL, 0)
log.close()
thread.join()
lines = bytes(got).split(b"\\n")
print(json.dumps({"ticks": len(ticks), "written": log.written, "lines": [len(x) for x in lines],
                  "whole": [json.loads(x)["f"]["blob"] == str(i) * 3_000_000 for i, x in enumerate(lines[:-1])]}))
"""


def test_a_write_interrupted_by_a_signal_is_completed_not_torn(tmp_path):
    """A signal arriving while a line is being written into a pipe makes write() return
    early with part of it (a short write); the rest follows, every line arrives whole."""
    out = _child(INTERRUPTED, str(tmp_path / "log.fifo"))
    assert out["ticks"] > 3, out                      # the writes were interrupted, many times
    assert out["written"] == 3 and out["whole"] == [True, True, True] and out["lines"][-1] == 0, out


def test_a_damaged_line_in_the_middle_is_refused_not_replayed(tmp_path):
    path = tmp_path / "run.inputs"
    log = InputLog(path)
    for event in _events(3, size=10):
        log.write(event)
    log.close()
    first, second, third = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + second[: len(second) // 2] + third)   # a torn line with another after it
    with pytest.raises(InputLogError, match=f"the live input log {path} is damaged at line 2"):
        list(read_inputs(path))
    path.write_bytes(first + second + third[:10])   # a torn last line: never processed, not read
    assert len(list(read_inputs(path))) == 2
    InputLog(path).close()                          # and cut when the log is opened again
    assert path.read_bytes() == first + second


# --------------------------------------------------------------------------- live
class _LimitedLive(LiveProc):
    """`genesis run --mode live` with a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored so
    that writes past it fail with EFBIG, as writes on a full disk fail with ENOSPC)."""

    fsize = 0

    def command(self) -> list[str]:
        cmd = super().command()
        if not self.fsize:
            return cmd
        wrapper = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                   f"resource.setrlimit(resource.RLIMIT_FSIZE, ({self.fsize}, {self.fsize})); "
                   "os.execv(sys.argv[1], sys.argv[1:])")
        return [sys.executable, "-c", wrapper, *cmd]


def _start(live: LiveProc, sim) -> None:
    """Start; the step-mode market advances while the engine waits for market data."""
    done = threading.Event()

    def step() -> None:
        while not done.wait(0.05):
            sim.step(20)

    thread = threading.Thread(target=step, daemon=True)
    thread.start()
    try:
        live.start()
    finally:
        done.set()
        thread.join(10)


def test_live_trading_stops_cleanly_when_the_input_log_cannot_be_written(tmp_path):
    start = {"USDT": Decimal(1000), "BTC": Decimal(0), "ETH": Decimal(0)}
    with SimulatorThread(speed="step", balances={k: str(v) for k, v in start.items()}) as sim:
        live = _LimitedLive(tmp_path, sim, config=config_copy(tmp_path))
        live.fsize = 500_000     # the journal stays far below it; the input log reaches it
        try:
            _start(live, sim)
            bought = order(live, "buy", usd=40)
            assert bought["status"] == "applied", bought
            live.wait(lambda: live.count("fill") >= 1, "the fill")
            log = next((tmp_path / "genesis-live").glob("*.inputs"))
            while live.proc.poll() is None and log.stat().st_size < live.fsize:
                assert not sim.step(50)["finished"], "the sample ended before the log filled up"
                time.sleep(0.05)   # no faster than the engine takes it: the rest of the sample is for later
            assert live.proc.wait(timeout=60) == 1, live.tail()
            out = live.tail()
            assert f"genesis: cannot write the live input log {log} (File too large); live trading stopped " \
                   "before processing that input" in out, out
            assert "Traceback" not in out and "internal error" not in out, out
            data = log.read_bytes()
            assert len(data) <= live.fsize and data.endswith(b"\n")
            inputs = list(read_inputs(log))   # every line whole
            assert len(inputs) == data.count(b"\n")

            # the same command, with room again: the log rebuilds the journal's state exactly
            # (the start refuses otherwise), reconciliation runs, trading goes on
            live.fsize = 0
            _start(live, sim)
            sold = order(live, "sell", usd=1000)
            assert sold["status"] == "applied", sold
            live.wait(lambda: live.count("fill") >= 2, "the sell's fill")
            assert live.stop() == 0
            assert all(r["mismatch_usd"] == 0 for r in live.entries("reconciled"))
            agreement(live, sim, start)
        finally:
            live.stop()
