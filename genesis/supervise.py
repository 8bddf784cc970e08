"""`genesis supervise`: runs `genesis run` as a child process and starts it again when it
ends unexpectedly (a crash, an internal error, a kill), after a backoff that doubles with
each restart; gives up, and pages, when it keeps crashing (genesis.yaml `supervisor`).
Each restart is queued in the journal as an `engine_restart` observation, which the
restarted engine applies like a probe's reading: the `restart_loop` alert counts them.

What is not a crash: the run finished (exit 0), the engine refused to start (exit 2: a
usage or configuration error that a restart would only repeat), or the supervisor was
asked to stop (SIGINT, SIGTERM: passed on to the engine, which stops cleanly)."""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass

from genesis.durations import parse_duration

REFUSED = 2   # genesis run's exit for a usage or configuration error


@dataclass
class Policy:
    """When to restart and when to give up (genesis.yaml `supervisor`, defaults filled in)."""

    backoff_s: float
    max_backoff_s: float
    max_restarts: int
    window_s: float

    @classmethod
    def of(cls, settings: dict) -> Policy:
        """The policy of genesis.yaml `supervisor`."""
        return cls(parse_duration(settings["backoff"]), parse_duration(settings["max_backoff"]),
                   int(settings["max_restarts"]), parse_duration(settings["window"]))


def describe_exit(code: int) -> str:
    """How a child process ended, in words."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return {1: "exit 1: an error it reported", 3: "exit 3: an internal error"}.get(code, f"exit {code}")


class Supervisor:
    """Runs `command` until it finishes, is refused, is stopped, or crashes too often."""

    def __init__(self, command: list[str], policy: Policy, record_restart, page, say=print, clock=time.monotonic):
        """`record_restart(exit_code)` queues the restart for the engine; `page(text)` sends
        the give-up message; both may raise (said, never fatal)."""
        self.command = command
        self.policy = policy
        self.record_restart = record_restart
        self.page = page
        self.say = say
        self.clock = clock
        self.child: subprocess.Popen | None = None
        self.restarts: deque[float] = deque()   # clock() of each restart within the window
        self.stopping = threading.Event()
        self.stop_signal = 0

    def stop(self, signum: int) -> None:
        """Stop supervising: pass the signal on to the engine (it stops cleanly) and do not restart."""
        self.stop_signal = signum
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def run(self) -> int:
        """Supervise; the exit code to end with."""
        while not self.stopping.is_set():
            # its own session: a Ctrl-C on the terminal reaches the supervisor only, which passes it on once
            self.child = subprocess.Popen(self.command, start_new_session=True)
            if self.stopping.is_set():   # asked to stop while it was being started
                self.child.send_signal(self.stop_signal)
            self.say(f"supervise: engine started (pid {self.child.pid})")
            code = self.child.wait()
            if self.stopping.is_set():
                self.say(f"supervise: stopped ({describe_exit(code)})")
                return code if code >= 0 else 128 + self.stop_signal
            if code == 0:
                self.say("supervise: the run finished")
                return 0
            if code == REFUSED:
                self.say("supervise: the engine refused to start (exit 2); fix the cause, a restart would repeat it")
                return REFUSED
            now = self.clock()
            while self.restarts and now - self.restarts[0] > self.policy.window_s:
                self.restarts.popleft()
            if len(self.restarts) >= self.policy.max_restarts:
                text = (f"The engine crashed again ({describe_exit(code)}) after {len(self.restarts)} restarts "
                        f"within {self.policy.window_s:g} s; the supervisor stopped restarting it. Trading is "
                        "stopped until you start it.")
                self.say(f"supervise: {text}")
                self._try(self.page, text, "page")
                return 1
            wait = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** len(self.restarts))
            self.say(f"supervise: the engine ended unexpectedly ({describe_exit(code)}); restarting in {wait:g} s "
                     f"(restart {len(self.restarts) + 1} of {self.policy.max_restarts} within "
                     f"{self.policy.window_s:g} s)")
            if self.stopping.wait(wait):
                self.say("supervise: stopped before the restart")
                return 128 + self.stop_signal
            self._try(self.record_restart, code, "record the restart in the journal")
            self.restarts.append(self.clock())
        self.say("supervise: stopped before the restart")
        return 128 + self.stop_signal

    def _try(self, action, argument, what: str) -> None:
        try:
            action(argument)
        except Exception as exc:   # noqa: BLE001 - supervising goes on; the reason is said
            self.say(f"supervise: could not {what} ({type(exc).__name__}: {str(exc)[:200]})")
