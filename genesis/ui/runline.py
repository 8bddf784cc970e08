"""`genesis run`'s live line and its closing summary.

On a terminal the line is a few short rows redrawn in place (rich Live), each cut to
the terminal's width: where the run is (event time, progress through a recorded feed,
or that it waits for the next event), the money (equity, today's P&L, drawdown), the
trading state, tilt level and positions, and the last decision. Anywhere else (a pipe,
a log file, `docker logs`) it is one plain line printed at most every few seconds, with
no control characters. At the end, `summary` lists the open positions, the
`genesis set` edits still waiting, and whether the run finished or was stopped.
"""
from __future__ import annotations

import difflib
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

import click
from rich.console import Console, Group
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.text import Text

from genesis.durations import format_duration, format_utc
from genesis.engine.statusdoc import positions
from genesis.words import counted, usd

PLAIN_EVERY_S = 30.0   # seconds between plain lines unless told (the default of `genesis run --status-every`)


def _clock(ms: int) -> str:
    """'23:56:00 UTC' (the date is on the line already)."""
    return format_utc(ms)[11:]


def where_row(engine, progress=None, source: str = "feed") -> list[str]:
    """Event time and how far the run has got. `progress`: the feed's FeedProgress (None
    on live data, which `source` names)."""
    parts = [format_utc(engine.now) if engine.stats.events else "waiting for the first event"]
    if progress is not None:
        parts.append(f"{progress.fraction:.0%} of the feed read")
        if engine.stats.events:
            into_s = (engine.now - engine.account.first_ts) // 1000
            parts.append(f"{format_duration(into_s * 1000)} into the feed")
    elif engine.stats.events:
        parts.append(source)
    return parts


def activity_row(waiting_for: int | None = None, catching_up: bool = False) -> list[str]:
    """What the run is doing when it is not simply trading (empty then): catching up
    with the journal, or sleeping until the next event at `waiting_for` (ms)."""
    parts = []
    if catching_up:
        parts.append("catching up with what the journal holds")
    if waiting_for is not None:
        parts.append(f"waiting for the next event at {_clock(waiting_for)}")
    return parts


def money_row(engine) -> list[str]:
    """Equity, today's P&L and drawdown."""
    m = engine.metrics.m
    return [f"equity {usd(m.get('equity_usd', 0.0))}",
            f"today {usd(m.get('daily_pnl_usd', 0.0), signed=True)}",
            f"drawdown {usd(m.get('drawdown_usd', 0.0))} ({m.get('drawdown_pct', 0.0):.2f}%)"]


def state_row(engine) -> list[str]:
    """Trading state (and the rules that hold it), tilt level, open positions."""
    state = engine.state.mode
    holders = sorted(engine.state.holds)
    if holders:
        state += " (held by " + ", ".join(holders) + ")"
    held = positions(engine)
    if held:
        pnl = ", ".join(f"{p['symbol']} {usd(p['unrealised_usd'] or 0.0, signed=True)}" for p in held)
        open_part = f"{counted(len(held), 'open position')}: {pnl}"
    else:
        open_part = "no open positions"
    return [state, f"tilt level {int(engine.metrics.m.get('tilt_level', 0))}", open_part]


def decision_row(engine) -> list[str]:
    """The latest decision."""
    return [f"last decision: {engine.stats.last_decision or 'none yet'}"]


def rows(engine, progress=None, waiting_for: int | None = None, catching_up: bool = False,
         source: str = "feed") -> list[list[str]]:
    """The line's rows, each a list of short parts."""
    doing = activity_row(waiting_for, catching_up)
    return [where_row(engine, progress, source), *([doing] if doing else []), money_row(engine),
            state_row(engine), decision_row(engine)]


def plain_line(parts: list[list[str]]) -> str:
    """The rows as one line for a log: no control characters."""
    return " | ".join("; ".join(row) for row in parts)


def summary(engine, pending_sets: list | None, config_files: dict | None, finished: bool,
            resume_hint: str = "the journal is saved: run the same command to resume") -> str:
    """The closing lines: open positions, `genesis set` edits still waiting (None: not
    known here), and whether the run finished (the next start is a new run) or stopped."""
    held = positions(engine)
    lines = ["", f"{counted(len(held), 'open position')}:" if held else "no open positions"]
    for p in held:
        value = f"worth {usd(p['qty'] * p['mark_price'])}, " if p["mark_price"] else ""
        pnl = usd(p["unrealised_usd"], signed=True) if p["unrealised_usd"] is not None else "unknown"
        lines.append(f"  {p['symbol']} {p['qty']:,.8f} ({value}unrealised {pnl})")
    if pending_sets is not None:
        lines.extend(_pending_lines(pending_sets, config_files or {}, finished))
    if finished:
        lines.append("finished: the whole feed was traded; the next `genesis run` starts a new run")
    else:
        lines.append(f"stopped; {resume_hint}")
    return "\n".join(lines)


def _pending_lines(pending_sets: list, config_files: dict, finished: bool) -> list[str]:
    if not pending_sets:
        return ["no `genesis set` edits waiting"]
    n = len(pending_sets)
    one = n == 1
    edits = counted(n, "`genesis set` edit")
    lines = [f"{edits} {'was' if one else 'were'} still waiting and {'is' if one else 'are'} not applied:"
             if finished else f"{edits} waiting (resuming keeps {'it' if one else 'them'}):"]
    for due, rel, text in pending_sets:
        lines.append(f"  {rel}: {_changed(config_files.get(rel, ''), text)}, due {format_utc(due)}")
    if finished:
        lines.append(f"the run ended first; make {'it' if one else 'them'} again with `genesis set` "
                     f"if you still want {'it' if one else 'them'}")
    return lines


def _changed(old: str, new: str) -> str:
    """The edited lines of a tier file as they will read: 'daily_loss_usd: 20'."""
    added = [line[2:].split(" #", 1)[0].strip() for line in difflib.ndiff(old.splitlines(), new.splitlines())
             if line.startswith("+ ")]
    return "; ".join(line for line in added if line) or "an edit"


class _TextProxy(FileProxy):
    """rich's FileProxy (printing above the live rows) with the wrapped file's
    encoding: click, seeing none, would write past it to the terminal's buffer."""

    @property
    def encoding(self):
        """The wrapped file's encoding."""
        return self.rich_proxied_file.encoding

    @property
    def errors(self):
        """The wrapped file's error handling."""
        return self.rich_proxied_file.errors


@contextmanager
def _signals_held():
    """Hold Ctrl-C and SIGTERM until the block is done, then deliver them: a frame cut
    short by the KeyboardInterrupt would leave rows the next one cannot clear."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for signum in caught[:1]:
            handler = saved[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def is_terminal(stream=None) -> bool:
    """Whether `stream` (stdout) is a terminal that can redraw the line in place."""
    stream = sys.stdout if stream is None else stream
    return stream.isatty() and os.environ.get("TERM", "") != "dumb"


class RunLine:
    """The live line of one `genesis run`: `status(engine, catching_up)` is the run
    loop's status callback, `waiting(ts)` its waiting callback, `echo` prints a message
    (above the line on a terminal). Use it as a context manager around the run."""

    def __init__(self, progress=None, source: str = "feed", every_s: float = PLAIN_EVERY_S,
                 terminal: bool | None = None):
        """`progress`: a callable giving the feed's FeedProgress (None on live data);
        `source`: what the data is when there is no progress ('live market data');
        `every_s`: seconds between plain lines when not on a terminal."""
        self.progress, self.source, self.every_s = progress, source, every_s
        self.terminal = is_terminal() if terminal is None else terminal
        self.console = Console(file=sys.stdout, force_terminal=True, highlight=False) if self.terminal else None
        self.engine = None
        self._waiting_for: int | None = None
        self._catching_up = False
        self._live: Live | None = None
        self._saved: tuple | None = None
        self._next_plain = 0.0

    # ------------------------------------------------------------------ run loop callbacks
    def status(self, engine, catching_up: bool) -> None:
        """Show the engine's state now (on a terminal), or at most every `every_s` as a line."""
        self.engine, self._catching_up = engine, catching_up
        self._show()

    def waiting(self, next_ts: int | None) -> None:
        """A paced run sleeps until the event at `next_ts` (ms); None: it woke. Shown
        by the next status call (the run loop goes on calling it while it sleeps)."""
        self._waiting_for = next_ts

    def echo(self, text: str, err: bool = False) -> None:
        """Print a message: above the live rows on a terminal, wrapped to its width."""
        if self.console is not None and not (err and not sys.stderr.isatty()):
            with _signals_held():
                self.console.print(Text(text), soft_wrap=False)
        else:
            click.echo(text, err=err)

    # ------------------------------------------------------------------ drawing
    def _rows(self) -> list[list[str]]:
        progress = self.progress() if self.progress is not None else None
        return rows(self.engine, progress, self._waiting_for, self._catching_up, self.source)

    def _show(self) -> None:
        if self.engine is None:
            return
        if self.terminal and self._saved is not None:   # inside the `with`: redraw in place
            rendered = Group(*(self._row_text(row) for row in self._rows()))
            with _signals_held():
                if self._live is None:
                    self._live = Live(rendered, console=self.console, auto_refresh=False, transient=True,
                                      redirect_stdout=False, redirect_stderr=False)
                    self._live.start()
                self._live.update(rendered, refresh=True)
        elif not self.terminal:
            now = time.monotonic()
            if now >= self._next_plain:
                self._next_plain = now + self.every_s
                click.echo(plain_line(self._rows()))

    @staticmethod
    def _row_text(parts: list[str]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, part in enumerate(parts):
            if i:
                text.append("  ·  ", style="dim")
            text.append(part)
        return text

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> RunLine:
        if self.terminal and self._saved is None:   # the rows appear with the first status call
            self._saved = (sys.stdout, sys.stderr)
            sys.stdout = _TextProxy(self.console, sys.stdout)
            if sys.stderr.isatty():   # an error log redirected to a file stays in the file
                sys.stderr = _TextProxy(self.console, sys.stderr)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Take the live rows off the terminal and give stdout and stderr back."""
        if self._live is not None:
            live, self._live = self._live, None
            with _signals_held():
                live.stop()
        if self._saved is not None:
            for proxy in (sys.stdout, sys.stderr):
                if isinstance(proxy, _TextProxy):
                    proxy.flush()
            sys.stdout, sys.stderr = self._saved
            self._saved = None
