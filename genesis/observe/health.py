"""Host and journal health, measured on the wall clock while `genesis run` runs (paper
and live alike): memory, CPU and free disk on the journal's volume (psutil), the run
loop's worst lag since the previous probe, the time a query on the journal takes, and
the slowest journal write since the previous probe. Each probe is queued in the journal
as an `observe` command, which the running engine applies in turn as `system_probe`,
`db_query` and `db_write` events: they are journaled at the point they were applied, so
a recovery replays them there and the deterministic pipeline never reads the clock or
the host itself."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import text as sql_text
from sqlalchemy.engine import make_url

from genesis.durations import parse_duration


@dataclass
class HealthReading:
    """One probe: the host's resources and the journal's query time."""

    memory_pct: float       # host memory in use, %
    cpu_pct: float          # host CPU in use since the previous probe, %
    disk_free_mb: float     # free disk on the journal's volume, MB (2^20 bytes)
    query_ms: float         # one read on the journal, milliseconds
    loop_lag_ms: float = 0.0     # the run loop's worst lag since the previous probe, milliseconds
    write_ms: float | None = None   # the slowest journal write since the previous probe (None: not watched, or none)


def journal_folder(db_url: str, cwd: Path) -> Path:
    """The folder whose volume holds the journal: a SQLite file's folder, else `cwd`."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        return (path if path.is_absolute() else cwd / path).parent
    return cwd


class HealthProbe:
    """Measures every `interval_s` on a daemon thread and queues each reading in the
    journal `journal` (a genesis.engine.journal.Journal of its own, used on that thread
    only)."""

    def __init__(self, journal, interval_s: float, disk_path: Path, watch=None):
        """`journal`: a Journal, or a function that opens one (called on the probe's
        thread at its first probe, so that a journal not created yet is not an error).
        `watch`: the run loop's genesis.observe.loopwatch.LoopWatch (its lag and its
        journal's slowest write are read)."""
        self._journal = None if callable(journal) else journal
        self._open = journal if callable(journal) else None
        self.watch = watch
        self.interval_s = interval_s
        self.disk_path = disk_path
        self.readings = 0          # probes queued
        self.last: HealthReading | None = None   # the latest reading queued
        self.errors: list[str] = []   # probes that could not be taken or queued, newest last
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        psutil.cpu_percent(interval=None)   # the first call starts the CPU average

    @property
    def journal(self):
        """The probe's own journal connection (opened at first use)."""
        if self._journal is None:
            self._journal = self._open()
        return self._journal

    def read(self) -> HealthReading:
        """Measure now."""
        started = time.perf_counter()
        self.journal.has_queued_commands()
        query_ms = (time.perf_counter() - started) * 1000.0
        return HealthReading(memory_pct=float(psutil.virtual_memory().percent),
                             cpu_pct=float(psutil.cpu_percent(interval=None)),
                             disk_free_mb=psutil.disk_usage(str(self.disk_path)).free / 2**20,
                             query_ms=round(query_ms, 3),
                             loop_lag_ms=self.watch.take_lag_ms() if self.watch is not None else 0.0,
                             write_ms=self.watch.take_slowest_write_ms() if self.watch is not None else None)

    def probe(self) -> HealthReading | None:
        """Measure and queue the reading as `system_probe` and `db_query` observations;
        None (and a line in `errors`) when that fails: the run goes on."""
        try:
            reading = self.read()
            self.journal.queue_command("observe", {"event": "system_probe", "fields": {
                "memory_pct": reading.memory_pct, "cpu_pct": reading.cpu_pct,
                "disk_free_mb": round(reading.disk_free_mb, 1), "loop_lag_ms": reading.loop_lag_ms}})
            self.journal.queue_command("observe", {"event": "db_query", "fields": {"duration_ms": reading.query_ms}})
            if reading.write_ms is not None:
                self.journal.queue_command("observe", {"event": "db_write", "fields": {
                    "ok": True, "duration_ms": reading.write_ms}})
        except Exception as exc:   # noqa: BLE001 - a failed probe must not stop trading
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            del self.errors[:-20]
            return None
        self.readings += 1
        self.last = reading
        return reading

    def start(self) -> HealthProbe:
        """Probe now, then every interval, until `close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="genesis-health", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop probing (waits for a probe under way, at most `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.probe()
                self._stop.wait(self.interval_s)
        finally:
            if self._journal is not None:
                self._journal.close()   # on the thread that opened its connections


def health_probe_for(settings: dict, db_url: str, cwd: Path, watch=None) -> HealthProbe | None:
    """The probe genesis.yaml `health_probe` asks for on the journal `db_url` (not
    started; `watch` as HealthProbe takes it); None when `health_probe.interval` is null."""
    from genesis.engine.journal import Journal  # noqa: PLC0415 - the engine's, opened for this thread

    interval = settings["health_probe"]["interval"]
    if interval is None:
        return None
    return HealthProbe(lambda: Journal(db_url, create=False), parse_duration(str(interval)),
                       journal_folder(db_url, cwd), watch=watch)
