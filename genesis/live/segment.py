"""The live input log: every event the live engine processes, appended before it is
processed, one JSON line each. It is the live run's input the way a capture file is a
replay's: after any stop, reading it back through the same engine rebuilds the state
exactly (decisions are a function of the inputs), and the journal's prefix check
confirms it.

Each line is written with one unbuffered `write` (more only if the OS takes part of it:
the rest follows at once), so a SIGKILL loses at most the line being written; a torn
last line is cut off when the log is opened again. A line that cannot be written whole
(a full disk, a file size limit, an I/O error) is cut back off the log and raises
InputLogError before the input is processed: live trading stops with the log and the
journal in agreement, and a torn line is never followed by another.

The log is written in segments (`run-….inputs`, then `run-….inputs.000001`, …): a new
segment begins at each snapshot of the run (genesis/engine/recovery.py), so that recovery
reads only the segments after the snapshot it restores. Segments older than every kept
snapshot are compressed (`.gz`) and, after `recovery.input_log_retention`, removed.
"""
from __future__ import annotations

import errno
import gzip
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from genesis.engine.events import Event

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class InputLogError(Exception):
    """The live input log cannot be written or read back: live trading stops (or does not
    start); the message says why and what to do."""


def segment_path(base: str | Path, number: int) -> Path:
    """The file of segment `number` of the log whose first segment is `base`."""
    base = Path(base)
    return base if number == 0 else base.with_name(f"{base.name}.{number:06d}")


def segments(base: str | Path) -> list[tuple[int, Path]]:
    """(number, file) of every segment of a log there is, compressed or not, in order."""
    base = Path(base)
    found = {}
    if base.parent.is_dir():
        for path in sorted(base.parent.iterdir()):
            if path.name == base.name:
                found.setdefault(0, path)
            elif path.name.startswith(base.name + "."):
                number, _, rest = path.name[len(base.name) + 1:].partition(".")
                if number == "gz" and not rest:
                    found.setdefault(0, path)
                elif number.isdigit() and rest in ("", "gz"):
                    found.setdefault(int(number), path)
    return sorted(found.items())


class InputLog:
    """Append-only log of input events for one live run, in segments."""

    def __init__(self, path: str | Path):
        self.base = Path(path)
        open_ones = [n for n, p in segments(self.base) if not p.name.endswith(".gz")]
        self.segment = max(open_ones, default=0)   # the segment being written
        self._fd = -1
        self._error = ""
        self.written = 0
        self._open()

    @property
    def path(self) -> Path:
        """The segment being written."""
        return segment_path(self.base, self.segment)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _cut_torn_tail(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise InputLogError(f"cannot open the live input log {self.path} ({exc.strerror or exc}); "
                                "live trading did not start, nothing was sent") from None

    def rotate(self) -> int:
        """Close the segment and begin the next; returns its number."""
        if self._error:
            raise InputLogError(self._error)
        self.close()
        self.segment += 1
        self._open()
        return self.segment

    def write(self, event: Event) -> None:
        """Append one event (its kind, time, symbol and every field), whole, or raise
        InputLogError with nothing of it left in the log."""
        line = _ENCODER.encode({"k": event.kind, "t": event.ts, "s": event.symbol, "f": event.fields}) + b"\n"
        done = 0
        try:
            done = os.write(self._fd, line)
            while done < len(line):   # a short write (disk full, a signal): the rest, or the reason why not
                more = os.write(self._fd, line[done:])
                if more <= 0:
                    raise OSError(errno.EIO, "the write made no progress")
                done += more
        except OSError as exc:
            raise self._failed(exc, done) from None
        self.written += 1

    def _failed(self, exc: OSError, done: int) -> InputLogError:
        """A line could not be written whole: cut off the part that was (no torn line may
        be followed by another), close the log for good and say why."""
        if not self._error:
            if done and self._fd >= 0:
                try:
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - done)
                except OSError:
                    pass   # the torn tail is cut when the log is opened again
            self.close()
            self._error = (f"cannot write the live input log {self.path} ({exc.strerror or exc}); live trading "
                           "stopped before processing that input, so the journal and the log agree. Make room "
                           "(or fix the cause) and run the same command: it resumes and reconciles with the "
                           "exchange")
        return InputLogError(self._error)

    def close(self) -> None:
        """Close the file (everything written is already with the OS)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_inputs(path: str | Path, first: int = 0) -> Iterator[Event]:
    """The events of a live input log (every segment from `first` on), in the order
    they were processed."""
    found = [(n, p) for n, p in segments(path) if n >= first]
    expected = first
    for number, segment in found:
        if number != expected:
            missing = segment_path(path, expected).name
            raise InputLogError(f"the live input log is missing its segment {missing} (removed by "
                                "recovery.input_log_retention, or moved): the run cannot be rebuilt from it; "
                                "nothing was sent")
        expected += 1
        yield from _read_segment(segment)


def _read_segment(path: Path) -> Iterator[Event]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                return  # torn by a kill mid-write: it was never processed
            try:
                item = _DECODER.decode(line)
                fields = item["f"]
                for key in ("_bids", "_asks"):
                    if key in fields:
                        fields[key] = [tuple(level) for level in fields[key]]
                event = Event(item["k"], item["t"], item["s"], fields)
            except (msgspec.DecodeError, KeyError, TypeError) as exc:
                raise InputLogError(f"the live input log {path} is damaged at line {number} ({exc}): the run "
                                    "cannot be rebuilt from it; nothing was sent") from None
            yield event


def compact(base: str | Path, before: int, retention_s: float | None, now: float | None = None) -> dict:
    """Compress the segments numbered below `before` (no kept snapshot needs them) and
    remove compressed ones older than `retention_s` (None: keep them). Returns counts."""
    now = time.time() if now is None else now
    done = {"compressed": 0, "removed": 0}
    for number, path in segments(base):
        if number >= before:
            break
        if not path.name.endswith(".gz"):
            packed = path.with_name(path.name + ".gz")
            partial = path.with_name(path.name + ".gz.partial")
            with open(path, "rb") as src, gzip.open(partial, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst)
            os.replace(partial, packed)
            path.unlink()
            done["compressed"] += 1
        elif retention_s is not None and now - path.stat().st_mtime > retention_s:
            path.unlink()
            done["removed"] += 1
    return done


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that has no newline (a write cut by a kill)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        size = fh.seek(0, os.SEEK_END)
        step, end = 65536, size
        while end > 0:
            start = max(0, end - step)
            fh.seek(start)
            block = fh.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                return
            end = start
        fh.truncate(0)
