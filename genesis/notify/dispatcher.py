"""Delivery off the event loop: the engine hands each notification to `Dispatcher.submit`,
which only puts it on a bounded queue; a worker thread sends it to each routed channel,
retries a failed send with exponential backoff, drops a repeat of the same message on a
channel within the channel's `min_interval`, holds a channel's messages for its
`group_wait` and sends those that came meanwhile as one grouped message, and sends a
critical message that a channel could not take to that channel's `fallback`. Failures are kept in `failures` for the
caller to journal; nothing raised by a channel reaches the engine."""
from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass

from genesis.notify.channels import Channel, DeliveryFailed, Message, channels_from, send

QUEUE_SIZE = 1000


@dataclass
class DeliveryFailure:
    """A message that did not reach a channel after every attempt."""

    channel: str
    kind: str
    rule: str
    severity: str
    error: str        # names the channel and the cause, never a secret
    attempts: int
    fallback: str | None = None   # where a critical message went next


class Dispatcher:
    """Delivers messages to the configured channels on one worker thread."""

    def __init__(self, channels: dict[str, Channel], queue_size: int = QUEUE_SIZE, environ=None,
                 sleep=time.sleep, clock=time.monotonic, on_failure=None):
        """`on_failure(DeliveryFailure)` is called on the worker thread for each failure."""
        self.channels = channels
        self.on_failure = on_failure
        self.environ = os.environ if environ is None else environ
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.sleep, self.clock = sleep, clock
        self.sent: Counter = Counter()        # channel -> messages delivered
        self.suppressed: Counter = Counter()  # channel -> repeats dropped within min_interval
        self.failed: Counter = Counter()      # channel -> messages not delivered
        self.dropped = 0                      # messages refused because the queue was full
        self.failures: deque[DeliveryFailure] = deque()
        self._last: dict[tuple, float] = {}   # (channel, rule, text) -> when last sent
        self._held: dict[str, tuple[float, list[Message]]] = {}   # channel -> (send at, messages waiting)
        self._thread: threading.Thread | None = None

    def start(self) -> Dispatcher:
        """Start the worker thread (idempotent); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="genesis-notify", daemon=True)
            self._thread.start()
        return self

    def submit(self, message: Message, channel_names) -> bool:
        """Queue `message` for `channel_names`; never blocks. False (and counted in
        `dropped`, with a failure record) when the queue is full."""
        names = [n for n in channel_names if n in self.channels]
        if not names:
            return True
        try:
            self.queue.put_nowait((message, names))
            return True
        except queue.Full:
            self.dropped += 1
            self.failures.append(DeliveryFailure(",".join(names), "", message.rule, message.severity,
                                                 f"the notification queue is full ({self.queue.maxsize} waiting)", 0))
            # not passed to on_failure: that runs on the worker thread only
            return False

    def close(self, timeout_s: float = 10.0) -> bool:
        """Deliver what is queued (up to `timeout_s`) and stop the worker. True when all was handled."""
        if self._thread is None:
            return self.queue.empty()
        deadline = time.monotonic() + timeout_s
        try:
            self.queue.put((None, None), timeout=timeout_s)
        except queue.Full:   # the worker is stuck on a full queue: it is a daemon, leave it
            self._thread = None
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        done = not self._thread.is_alive()
        self._thread = None
        return done

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every queued message has been handled (tests, `genesis notify test`)."""
        deadline = time.monotonic() + timeout_s
        while (self.queue.unfinished_tasks or self._held) and time.monotonic() < deadline:
            time.sleep(0.01)
        return not (self.queue.unfinished_tasks or self._held)

    def deliver(self, message: Message, channel_names) -> list[DeliveryFailure]:
        """Send now, on the calling thread, with the same retries and fallback; the failures."""
        before = len(self.failures)
        for name in channel_names:
            self._to(self.channels[name], message, {name})
        return list(self.failures)[before:]

    def _run(self) -> None:
        while True:
            try:
                message, names = self.queue.get(timeout=self._until_due())
            except queue.Empty:
                self._send_due(self.clock())
                continue
            try:
                if message is None:   # closing: what is held goes now
                    self._send_due(float("inf"))
                    return
                for name in names:
                    channel = self.channels[name]
                    if channel.group_wait_s > 0 and message.status != "test":
                        self._hold(channel, message)
                    else:
                        self._to(channel, message, {name})
                self._send_due(self.clock())
            except Exception as exc:   # noqa: BLE001 - a bug in a sender must not end delivery
                self.failures.append(DeliveryFailure(",".join(names or ()), "", getattr(message, "rule", ""),
                                                     getattr(message, "severity", ""),
                                                     f"internal error ({type(exc).__name__})", 0))
            finally:
                self.queue.task_done()

    def _until_due(self) -> float | None:
        """Seconds until the first held group is due (None: nothing held, wait for a message)."""
        if not self._held:
            return None
        return max(0.0, min(due for due, _ in self._held.values()) - self.clock())

    def _hold(self, channel: Channel, message: Message) -> None:
        if self._repeat(channel, message):
            return
        due, held = self._held.setdefault(channel.name, (self.clock() + channel.group_wait_s, []))
        held.append(message)

    def _send_due(self, now: float) -> None:
        for name, (due, held) in list(self._held.items()):
            if due <= now:
                del self._held[name]
                self._send(self.channels[name], held[0] if len(held) == 1 else Message.group(held), {name})

    def _failed(self, failure: DeliveryFailure) -> None:
        self.failures.append(failure)
        if self.on_failure is not None and threading.current_thread() is self._thread:
            try:
                self.on_failure(failure)
            except Exception:   # noqa: BLE001 - reporting a failure must not end delivery
                pass

    def _repeat(self, channel: Channel, message: Message) -> bool:
        """True (and counted) when `message` repeats one sent to `channel` within its min_interval."""
        last = self._last.get((channel.name, message.rule, message.text))
        if channel.min_interval_s and last is not None and self.clock() - last < channel.min_interval_s \
                and message.status != "test":
            self.suppressed[channel.name] += 1
            return True
        return False

    def _to(self, channel: Channel, message: Message, tried: set) -> None:
        if not self._repeat(channel, message):
            self._send(channel, message, tried)

    def _send(self, channel: Channel, message: Message, tried: set) -> None:
        error = ""
        attempts = 0
        for attempt in range(channel.retries + 1):
            attempts += 1
            try:
                send(channel, message, self.environ)
                self.sent[channel.name] += 1
                for part in message.each():
                    self._last[(channel.name, part.rule, part.text)] = self.clock()
                return
            except DeliveryFailed as exc:
                error = str(exc)
                if exc.permanent:
                    break
            if attempt < channel.retries:
                self.sleep(channel.backoff_s * (2 ** attempt))
        self.failed[channel.name] += 1
        fallback = channel.fallback if message.severity == "critical" else None
        if fallback in tried or fallback not in self.channels:
            fallback = None
        self._failed(DeliveryFailure(channel.name, channel.kind, message.rule, message.severity, error, attempts,
                                     fallback))
        if fallback:
            tried.add(fallback)
            self._to(self.channels[fallback], message, tried)


def dispatcher_for(notifications: dict, base, db: str | None = None, environ=None) -> Dispatcher:
    """A dispatcher for genesis.yaml `notifications` (not started); relative log paths are
    under the folder `base` (`genesis run` gives its working folder). With the journal URL
    `db`, each delivery failure is queued in that journal as an `observe` command, which
    the running engine applies in turn: a `notify_failure` event rules can read (and
    `log_failure` when a `log` channel's file could not be written), journaled at the
    point it was applied, so a recovery replays it there."""
    on_failure = None
    if db is not None:
        from genesis.engine.journal import Journal  # noqa: PLC0415 - only when a journal is used

        opened: list = []   # the worker thread's own connection, opened at its first failure

        def on_failure(failure: DeliveryFailure) -> None:
            if not opened:
                opened.append(Journal(db))
            journal = opened[0]
            journal.queue_command("observe", {"event": "notify_failure", "fields": asdict(failure)})
            if failure.kind == "log":   # the log file could not be written: the log_failure alert
                journal.queue_command("observe", {"event": "log_failure", "fields": {}})

    return Dispatcher(channels_from(notifications, base), environ=environ, on_failure=on_failure)
