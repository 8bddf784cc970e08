"""Operator commands on their way to the engine: queued in the journal's command queue
(by `genesis order` and its siblings, and by `genesis ui`), then followed until the
engine answers. Blocking calls: the dashboard runs them in worker threads."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from genesis.engine.journal import Journal, JournalError

ALIVE_MS = 3000           # an engine that beat on the journal this recently is running
ANSWER_WAIT_S = 10.0      # how long to follow a command before saying it is still queued


@dataclass
class Answer:
    """What became of one queued command."""

    command_id: int
    kind: str
    status: str   # applied | refused | queued (no answer yet, or no engine running) | not sent
    result: str   # the engine's words, or why there is no answer yet

    def line(self) -> str:
        """One calm line for the answer bar."""
        if self.status == "applied":
            return f"#{self.command_id} {self.kind}: {self.result}"
        if self.status == "refused":
            return f"#{self.command_id} {self.kind} not applied: {self.result.removeprefix('refused ')}"
        if self.status == "queued":
            return f"#{self.command_id} {self.kind} queued: {self.result}"
        return f"{self.kind} not sent: {self.result}"


class CommandQueue:
    """The journal's command queue. `create`: a journal that does not exist yet is made
    (a command queued before the first `genesis run` waits for it); without it the
    tables are the engine's and the database's settings are never changed."""

    def __init__(self, url: str, create: bool = False):
        self.url = url
        self.create = create
        self._journal: Journal | None = None

    def _open(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.url, create=self.create)
        return self._journal

    def send(self, kind: str, payload: dict, wait_s: float = ANSWER_WAIT_S) -> Answer:
        """Queue `kind` with `payload`; when an engine is running, wait up to `wait_s` for
        its answer."""
        try:
            journal = self._open()
            command_id = journal.queue_command(kind, payload)
            if time.time() * 1000 - journal.last_beat() >= ALIVE_MS:
                return Answer(command_id, kind, "queued", "no engine is running on this journal; it applies "
                                                          "when `genesis run` next starts")
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                row = journal.command(command_id)
                if row.status != "queued":
                    return Answer(command_id, kind, row.status, row.result)
                time.sleep(0.1)
            return Answer(command_id, kind, "queued", "the engine has not answered yet; it applies commands "
                                                      "in order")
        except JournalError as exc:   # already in plain words
            return Answer(0, kind, "not sent", str(exc))
        except SQLAlchemyError as exc:
            return Answer(0, kind, "not sent", f"the journal cannot take commands right now: {_short(exc)}")

    def close(self) -> None:
        """Release the database."""
        if self._journal is not None:
            self._journal.engine.dispose()
            self._journal = None


def _short(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0]
