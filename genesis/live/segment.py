"""The live input log: every event the live engine processes, appended before it is
processed, one JSON line each. It is the live run's input the way a capture file is a
replay's: after any stop, reading it back through the same engine rebuilds the state
exactly (decisions are a function of the inputs), and the journal's prefix check
confirms it.

Each line is written with one unbuffered `write`, so a SIGKILL loses at most the line
being written; a torn last line is cut off when the log is opened again.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from genesis.engine.events import Event

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class InputLog:
    """Append-only log of input events for one live run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.written = 0

    def write(self, event: Event) -> None:
        """Append one event (its kind, time, symbol and every field)."""
        line = _ENCODER.encode({"k": event.kind, "t": event.ts, "s": event.symbol, "f": event.fields}) + b"\n"
        os.write(self._fd, line)
        self.written += 1

    def close(self) -> None:
        """Close the file (everything written is already with the OS)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_inputs(path: str | Path) -> Iterator[Event]:
    """The events of a live input log, in the order they were processed."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return  # torn by a kill mid-write: it was never processed
            item = _DECODER.decode(line)
            fields = item["f"]
            for key in ("_bids", "_asks"):
                if key in fields:
                    fields[key] = [tuple(level) for level in fields[key]]
            yield Event(item["k"], item["t"], item["s"], fields)


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
