"""`genesis ui`: the terminal dashboard, the "Digital Zen Garden".

It reads the status view of the journal (`genesis.engine.status.read_view`, the same
one `genesis status --json` prints) every `refresh_s` seconds in a worker thread and
updates the dashboard in place; the keys queue operator commands in the journal's
command queue, as `genesis order` and its siblings do, and the engine's answer is shown
when it comes. The journal is only read; commands are the one thing written."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import App
from textual.worker import Worker, WorkerState

from genesis.engine.commandqueue import Answer, CommandQueue
from genesis.ui.dashboard import Dashboard


def _default_reader(url: str) -> dict:
    from genesis.engine.status import read_view  # noqa: PLC0415 - the engine loads on first use

    return read_view(url)


class GenesisApp(App):
    """The dashboard over one journal."""

    CSS_PATH = Path(__file__).with_name("genesis.tcss")
    TITLE = "Genesis"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, url: str, refresh_s: float = 1.0, first_view: dict | None = None,
                 reader: Callable[[str], dict] = _default_reader, traded: tuple = ()):
        super().__init__()
        self.url, self.refresh_s, self.reader = url, refresh_s, reader
        self.traded = traded   # the configuration's symbols: orders for them are accepted as `genesis order` does
        self.view: dict | None = first_view
        self.queue = CommandQueue(url)
        self.answers: list[Answer] = []   # every answer this session, oldest first
        self._reading = False

    def on_mount(self) -> None:
        self.theme = "nord"
        self.dashboard = Dashboard(self.view, self.traded)
        self.push_screen(self.dashboard)

    def start_reading(self) -> None:
        """Read the journal now and every `refresh_s` seconds (once the dashboard is up)."""
        self.read_journal()
        self.set_interval(self.refresh_s, self.read_journal)

    def on_unmount(self) -> None:
        self.queue.close()

    def read_journal(self) -> None:
        """Read the view again unless a read is still under way (a slow database never
        piles reads up)."""
        if not self._reading:
            self._reading = True
            self._read()

    @work(thread=True, group="read", exit_on_error=False)
    def _read(self) -> dict:
        return self.reader(self.url)

    def send_command(self, kind: str, payload: dict) -> None:
        """Queue a command and show its answer when it comes (never blocks the screen)."""
        self.dashboard.say(f"sending {kind}…")
        self._send(kind, payload)

    @work(thread=True, group="commands")
    def _send(self, kind: str, payload: dict) -> Answer:
        return self.queue.send(kind, payload)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A read or a command has finished: show what it brought (the results arrive as
        messages, so none is handled after the app has closed)."""
        worker = event.worker
        if not self.is_running:   # closing: the screen is being taken down
            return
        if worker.group == "read" and event.state in (WorkerState.SUCCESS, WorkerState.ERROR):
            self._reading = False
            if event.state == WorkerState.SUCCESS:
                self.view = worker.result
                self.dashboard.show(worker.result)
            else:
                self.dashboard.say(f"The journal cannot be read right now ({worker.error}); "
                                   "showing what was read last.")
        elif worker.group == "commands" and event.state == WorkerState.SUCCESS:
            self.answers.append(worker.result)
            self.dashboard.say(worker.result.line())
            self.read_journal()
