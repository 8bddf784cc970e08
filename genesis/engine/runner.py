"""Drive the pipeline: `replay` as fast as possible, `run` at a chosen speed with a
status line, hot reload of edited configuration, and resumption from the journal."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from genesis.config.checks import CheckedConfig, check_config
from genesis.config.problems import format_text
from genesis.config.ruleset import compile_ruleset
from genesis.engine.engine import Engine, config_digest
from genesis.engine.events import Event
from genesis.engine.journal import Journal, progress
from genesis.engine.report import build_report

_CONFIG_GLOBS = ("genesis.yaml", "alerts.yaml", "strategies.yaml", "tiers/*.yaml", "rules/*.yaml")
_RISK_FILES = ("tiers/", "rules/risk.yaml")


@dataclass
class Session:
    """Everything one replay or run holds."""

    engine: Engine
    journal: Journal | None
    feed: object
    resumed: bool
    starting_equity: float


def open_session(config: CheckedConfig, tier: str, feed, db_url: str | None, mode: str,
                 notify=None) -> Session:
    """Build the engine and journal for a feed; continue the matching unfinished run if any."""
    journal = Journal(db_url) if db_url else None
    resumed = False
    if journal is not None:
        info = journal.open_run(tier, config_digest(config), feed.digest(), feed.sources, mode)
        resumed = info.resumed
    engine = Engine(config, tier, journal=journal, notify=notify)
    return Session(engine, journal, feed, resumed, engine.account.equity())


def replay(session: Session, on_progress=None) -> dict:
    """Run the whole feed as fast as possible; return the report."""
    started = time.perf_counter()
    engine = session.engine
    for count, event in enumerate(session.feed, 1):
        engine.process(event)
        if on_progress is not None and count % 2000 == 0:
            on_progress(count)
    engine.finish()
    if session.journal is not None:
        session.journal.finish()
    return build_report(engine, session.feed, session.starting_equity, time.perf_counter() - started, "replay")


class ConfigWatcher:
    """Notices edited configuration files (by modification time and size)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.seen = self._scan()

    def _scan(self) -> dict:
        out = {}
        for pattern in _CONFIG_GLOBS:
            for path in self.root.glob(pattern):
                try:
                    st = path.stat()
                except OSError:
                    continue
                out[path.relative_to(self.root).as_posix()] = (st.st_mtime_ns, st.st_size)
        return out

    def changed(self) -> list[str]:
        """Files edited since the last call."""
        now = self._scan()
        edited = sorted(k for k in set(now) | set(self.seen) if now.get(k) != self.seen.get(k))
        self.seen = now
        return edited


def reload_config(engine: Engine, root: Path, edited: list[str], say) -> bool:
    """Validate the edited configuration; apply it if valid, otherwise keep running the old one."""
    result = check_config(root)
    if not result.ok:
        say("configuration edit refused; still running the previous configuration:\n" + format_text(result.problems))
        return False
    if engine.tier not in result.tiers:
        say(f"configuration edit refused: tier '{engine.tier}' no longer exists")
        return False
    engine.switch_ruleset(compile_ruleset(result, engine.tier), engine.tier, config=result)
    risk = any(f.startswith(_RISK_FILES) for f in edited)
    engine.pending.append(Event("config_edit", engine.now, "", {"risk": risk, "_files": edited}))
    engine._drain()
    say(f"configuration reloaded ({', '.join(edited)})")
    return True


def run(session: Session, speed: float | None, config_root: Path, status=None, say=print,
        reload_every_s: float = 1.0) -> dict:
    """Process the feed at `speed` x real time (None = as fast as possible), with hot reload."""
    engine, journal = session.engine, session.journal
    done_events = 0
    if session.resumed and journal is not None:
        with journal.engine.connect() as conn:
            row = conn.execute(progress.select().where(progress.c.run_id == journal.run_id)).first()
            done_events = row.events if row else 0
    watcher = ConfigWatcher(config_root)
    started = time.perf_counter()
    wall0 = event0 = None
    next_check = next_status = 0.0
    for count, event in enumerate(session.feed, 1):
        catching_up = count <= done_events or (journal is not None and journal.seq < journal.skip_until)
        if speed and not catching_up:
            if wall0 is None:
                wall0, event0 = time.monotonic(), event.ts
            delay = (event.ts - event0) / 1000.0 / speed - (time.monotonic() - wall0)
            if delay > 0:
                time.sleep(min(delay, 5.0))
        engine.process(event)
        wall = time.monotonic()
        if not catching_up and wall >= next_check:
            next_check = wall + reload_every_s
            edited = watcher.changed()
            if edited:
                reload_config(engine, config_root, edited, say)
        if status is not None and wall >= next_status:
            next_status = wall + 0.5
            status(engine, catching_up)
    engine.finish()
    if journal is not None:
        journal.finish()
    return build_report(engine, session.feed, session.starting_equity, time.perf_counter() - started, "paper run")
