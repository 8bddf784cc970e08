"""Operator commands from `genesis ui`: queued in the journal's command queue exactly as
`genesis order` and its siblings queue them, then followed until the engine answers.
Blocking calls: the app runs them in worker threads."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from genesis.engine.journal import Journal, JournalError

ALIVE_WITHIN_MS = 3000    # an engine that beat this recently is running (as the CLI judges it)
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
    """The journal's command queue, for one `genesis ui`."""

    def __init__(self, url: str):
        self.url = url
        self._journal: Journal | None = None

    def _open(self) -> Journal:
        if self._journal is None:
            # create=False: the tables are the engine's; never change the database's settings
            self._journal = Journal(self.url, create=False)
        return self._journal

    def send(self, kind: str, payload: dict, wait_s: float = ANSWER_WAIT_S) -> Answer:
        """Queue `kind` with `payload`; when an engine is running, wait up to `wait_s` for
        its answer."""
        try:
            journal = self._open()
            command_id = journal.queue_command(kind, payload)
            if time.time() * 1000 - journal.last_beat() >= ALIVE_WITHIN_MS:
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
        except (JournalError, SQLAlchemyError) as exc:
            return Answer(0, kind, "not sent", f"the journal cannot take commands right now: {_short(exc)}")

    def close(self) -> None:
        """Release the database."""
        if self._journal is not None:
            self._journal.engine.dispose()
            self._journal = None


def _short(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).splitlines()[0]
