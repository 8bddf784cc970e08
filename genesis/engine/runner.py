"""Drive the pipeline: `replay` as fast as possible, `run` at a chosen speed with a
status line, hot reload of edited configuration, and resumption from the journal."""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from genesis.config.checks import CheckedConfig, check_config
from genesis.config.problems import format_text
from genesis.config.ruleset import compile_ruleset
from genesis.config.edit import EditError, edited_text, parse_value
from genesis.config.snapshot import changed_files, load_snapshot, snapshot
from genesis.durations import parse_duration
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.journal import Journal
from genesis.engine.markets import Markets
from genesis.engine.operator import apply_command
from genesis.engine.recovery import Restored, Snapshotter, restore_latest, wants_snapshots
from genesis.engine.report import build_report
from genesis.engine.statusdoc import publish as publish_status



def is_risk_edit(config: CheckedConfig, edited: list) -> bool:
    """True when an edited file is one genesis.yaml `safety.risk_files` names (a path, or a folder/)."""
    names = config.files.settings.data["safety"]["risk_files"]
    return any(f == n or (n.endswith("/") and f.startswith(n)) for f in edited for n in names)


@dataclass
class Session:
    """Everything one replay or run holds."""

    engine: Engine
    journal: Journal | None
    feed: object
    resumed: bool
    starting_equity: float
    config_files: dict = field(default_factory=dict)   # the configuration now applied
    changes: list = field(default_factory=list)        # recorded edits and commands still to re-apply, in order
    config_root: Path | None = None
    pending_sets: list = field(default_factory=list)   # (due ms, file, text): accepted risk edits waiting
    script: list = field(default_factory=list)         # (offset ms, kind, payload): scripted operator commands
    restored: Restored | None = None                   # the snapshot a resumed run starts from
    snapshots: Snapshotter | None = None               # takes this run's snapshots (a journal that lasts)
    writes_files: bool = True                          # a due `genesis set` edit is written to its tier file


def load_script(path: Path) -> tuple[list, str]:
    """Scripted operator commands for a replay: ([(offset ms, kind, payload)], digest).

    The file is YAML: `commands: [{after: 90s, kind: order, side: buy, symbol: BTCUSDT,
    notional_usd: 40}, ...]`; `after` is event time since the first event. It is checked
    against schema/commands.schema.json: a mistake raises commandscript.ScriptError
    (a ValueError) naming each problem's file:line:col."""
    from genesis.engine.commandscript import read_script  # noqa: PLC0415

    return read_script(path)


def open_session(config_root: Path, config: CheckedConfig, tier: str, feed, db_url: str | None, mode: str,
                 notify=None, script_path: Path | None = None, exchange_for=None) -> Session:
    """Build the engine and journal for a feed. An unfinished run of the same tier,
    feed and mode is continued with the configuration it started with; its recorded
    edits and commands are re-applied at the same points, in the same order, as the
    input is replayed. `exchange_for(markets, journal, config)` builds the engine's
    exchange once the run is open (live, dry run; `config` is the configuration the run
    goes on with); the paper exchange when None."""
    # the script first: a mistake in it stops the replay before a journal is opened
    script, digest = ([], feed.digest()) if script_path is None else load_script(script_path)
    journal = Journal(db_url) if db_url else None
    files = snapshot(config_root)
    resumed, changes = False, []
    if script_path is not None:
        digest = feed.digest() + ":" + digest  # the script is part of the input
    if journal is not None:
        info = journal.open_run(tier, files, digest, feed.sources, mode)
        resumed, changes = info.resumed, info.changes
        if resumed and info.config_files != files:
            started_with = load_snapshot(info.config_files)
            if started_with.ok:
                config, files = started_with, info.config_files
    markets = Markets.load()
    exchange = exchange_for(markets, journal, config) if exchange_for is not None else None
    engine = Engine(config, tier, journal=journal, notify=notify, markets=markets, exchange=exchange)
    session = Session(engine, journal, feed, resumed, engine.account.equity(), files, list(changes),
                      Path(config_root), script=script)
    if journal is not None and wants_snapshots(session):
        session.snapshots = Snapshotter(session)
        if resumed:
            session.restored = restore_latest(session)
    return session


def apply_config(session: Session, config: CheckedConfig, files: dict, edited: list,
                 risk_counted: bool = False) -> None:
    """Switch the engine to a validated configuration; journal it with the point it applies at.
    `risk_counted`: the edit was already counted as a risk edit (a delayed `genesis set`)."""
    engine = session.engine
    engine.note("config", "", "", {"files": files, "at_event": engine.stats.events,
                                   "edited": edited, "risk_counted": risk_counted})
    risk = is_risk_edit(engine.config, edited) and not risk_counted   # by the list in force before the edit
    engine.switch_ruleset(compile_ruleset(config, engine.tier), engine.tier, config=config)
    engine.process(Event("config_edit", engine.now, "", {"risk": risk, "_files": edited}), at_now=True)
    session.config_files = files
    if session.journal is not None:
        session.journal.flush()   # an edit is durable before any order decided under it leaves


def operate(session: Session, kind: str, payload: dict) -> tuple[str, str]:
    """Apply an operator command now and journal it with the point it applied at."""
    engine = session.engine
    at_event = engine.stats.events
    if kind == "set":
        status, message = _schedule_set(session, payload)
    else:
        status, message = apply_command(engine, kind, payload)
    engine.note("operator", kind, "", {"at_event": at_event, "status": status, "result": message,
                                       "payload": payload})
    return status, message


def _schedule_set(session: Session, payload: dict) -> tuple[str, str]:
    """`genesis set tier.limits.daily_loss_usd 20`: validate now, write the tier file
    after safety.risk_edit_delay of event time (hot reload then applies it). The
    attempt is a risk config_edit event at once, which the tilt rules count."""
    engine, root = session.engine, session.config_root
    key = str(payload.get("key", ""))
    parts = key.split(".")
    if len(parts) < 3 or parts[0] not in ("tier", "tiers"):
        return "refused", f"'{key}' is not a tier value: write tier.<section>.<key> (e.g. tier.limits.daily_loss_usd)"
    tier, keys = (engine.tier, parts[1:]) if parts[0] == "tier" else (parts[1], parts[2:])
    rel = f"tiers/{tier}.yaml"
    if rel not in session.config_files:
        return "refused", f"no tier file {tier}.yaml"
    try:   # the tier file in force, not what is on disk now: a resumed run reproduces the edit
        new_text, old = edited_text(root / rel, keys, parse_value(str(payload.get("value"))),
                                    text=session.config_files[rel])
    except EditError as exc:
        return "refused", str(exc)
    files = dict(session.config_files)
    files[rel] = new_text
    check = load_snapshot(files)
    edited = [rel]
    engine.process(Event("config_edit", engine.now, "", {"risk": is_risk_edit(engine.config, edited),
                                                         "_files": edited}), at_now=True)
    if not check.ok:
        problems = "; ".join(p.message for p in check.problems[:3])
        return "refused", f"the edit would not validate: {problems}"
    delay = parse_duration(engine.config.files.settings.data["safety"]["risk_edit_delay"])
    due = engine.now + int(delay * 1000)
    session.pending_sets.append((due, rel, new_text))
    return "applied", (f"{tier}: {'.'.join(keys)} {old} -> {payload.get('value')} takes effect in {delay / 3600:g} h "
                       "of market time (risk edits wait safety.risk_edit_delay)")


def _due_sets(session: Session, say) -> None:
    """Apply accepted risk edits whose delay has passed. The edit is applied from the
    text accepted then, never read back from disk (a resumed run or a replay reproduces
    it exactly); the tier file is written too, so that the trader's file says it."""
    due = [p for p in session.pending_sets if p[0] <= session.engine.now]
    if not due:
        return
    session.pending_sets = [p for p in session.pending_sets if p[0] > session.engine.now]
    files = dict(session.config_files)
    for _, rel, text in due:
        files[rel] = text
        path = session.config_root / rel
        if session.writes_files and (not path.is_file() or path.read_text(encoding="utf-8") != text):
            path.write_text(text, encoding="utf-8")
    edited = changed_files(session.config_files, files)
    if not edited:
        return   # a resumed run already re-applied the recorded edit at this point
    config = load_snapshot(files)
    if not config.ok or session.engine.tier not in config.tiers:
        say("a delayed `genesis set` edit no longer validates and was not applied:\n" + format_text(config.problems))
        return
    # the edit was counted as a risk edit when the trader made it; taking effect is not a new one
    apply_config(session, config, files, edited, risk_counted=True)
    say(f"configuration reloaded ({', '.join(edited)})")


STATUS_EVERY_S = 1.0   # wall seconds between status documents of a paced run (genesis status, genesis ui)
MEASUREMENT_KINDS = ("observe", "notify_failure")   # queued by Genesis itself, not typed by the operator


def _apply_queued_commands(session: Session, say) -> bool:
    """Apply the operator's queued commands; True when one of them was the operator's
    (not a measurement Genesis queued itself)."""
    journal = session.journal
    typed = False
    for row in journal.queued_commands():
        at_event = session.engine.stats.events
        status, message = operate(session, row.kind, json.loads(row.payload))
        # settled before its entries are stored: a crash in between replays the command at
        # the same point and regenerates them; the other way round it would be applied twice
        journal.settle_command(row.id, status, message, at_event, journal.seq)
        journal.flush()
        if row.kind not in MEASUREMENT_KINDS or status != "applied":   # a probe every 15 s is not news
            say(f"operator {row.kind}: {message}" if status == "applied" else f"operator {row.kind} {status}: {message}")
        typed = typed or row.kind not in MEASUREMENT_KINDS
    return typed


def _replay_recorded(session: Session) -> None:
    """Re-apply the edits and commands recorded by an interrupted run once the input
    reaches their point, one by one in the order they happened: a command and an edit
    made at the same event count apply in their recorded order, never edits first."""
    changes = session.changes
    while changes and changes[0].at_event <= session.engine.stats.events:
        change = changes.pop(0)
        if not change.edit:
            operate(session, change.kind, change.data)
            continue
        files = change.data["files"]
        config = load_snapshot(files)
        if config.ok:
            apply_config(session, config, files, changed_files(session.config_files, files),
                         change.data["risk_counted"])


def _after_event(session: Session, say) -> None:
    """What may fall due after any input event: recorded edits and commands of a
    resumed run, and accepted risk edits whose delay has passed."""
    if session.changes:
        _replay_recorded(session)
    if session.pending_sets:
        _due_sets(session, say)
    if session.script:
        engine = session.engine
        while session.script and engine.now - engine.account.first_ts >= session.script[0][0]:
            _, kind, payload = session.script.pop(0)
            status, message = operate(session, kind, payload)
            say(f"operator {kind}: {status}: {message}")


def remaining_input(session: Session):
    """(count, event) for the feed's events that are still to be processed: after the
    snapshot a resumed run restored, if any (those before it are read, not processed)."""
    feed = iter(session.feed)
    start = session.restored.inputs if session.restored is not None else 0
    for _ in itertools.islice(feed, start):
        pass
    return enumerate(feed, start + 1)


def _quiet(_text: str) -> None:
    """A replay says nothing while it runs."""


def replay(session: Session, on_progress=None) -> dict:
    """Run the whole feed as fast as possible; return the report."""
    started = time.perf_counter()
    engine = session.engine
    for count, event in remaining_input(session):
        engine.process(event)
        if session.changes or session.pending_sets or session.script:   # what _after_event looks at
            _after_event(session, _quiet)
        if session.snapshots is not None and session.snapshots.due():
            session.snapshots.take(count)
        if on_progress is not None and count % 2000 == 0:
            on_progress(count)
    engine.finish()
    publish_status(engine)
    if session.journal is not None:
        session.journal.finish()
    return build_report(engine, session.feed, session.starting_equity, time.perf_counter() - started, "replay")


def disconnect(session: Session) -> None:
    """Ctrl-C ends the operator's session: recorded so the tilt rules see rage quits."""
    if session.journal is None:
        return
    at_event = session.engine.stats.events
    status, message = operate(session, "disconnect", {})
    command_id = session.journal.queue_command("disconnect", {})
    session.journal.settle_command(command_id, status, message, at_event, session.journal.seq)
    session.journal.flush()


def interrupted(session: Session) -> None:
    """End a run stopped before its input ended (Ctrl-C): the operator's session ends,
    the engine's state is flushed and published, the journal is closed; the same command
    resumes it."""
    disconnect(session)
    session.engine.finish()
    publish_status(session.engine)
    session.journal.close()


def reload_config(session: Session, root: Path, say, risk_counted: bool = False) -> bool:
    """Validate the configuration on disk; apply it if valid, otherwise keep running the old one."""
    engine = session.engine
    files = snapshot(root)
    edited = changed_files(session.config_files, files)
    if not edited:
        return False
    result = check_config(root)
    if not result.ok:
        say("configuration edit refused; still running the previous configuration:\n" + format_text(result.problems))
        session.config_files = files  # do not repeat the refusal until the files change again
        return False
    if engine.tier not in result.tiers:
        say(f"configuration edit refused: tier '{engine.tier}' no longer exists")
        session.config_files = files
        return False
    apply_config(session, result, files, edited, risk_counted=risk_counted)
    say(f"configuration reloaded ({', '.join(edited)})")
    return True


def run(session: Session, speed: float | None, config_root: Path, status=None, say=print,
        reload_every_s: float = 1.0, watch=None, waiting=None) -> dict:
    """Process the feed at `speed` x real time (None = as fast as possible), with hot reload.
    `watch` (a genesis.observe.loopwatch.LoopWatch) gets each paced event's lateness and
    each event's time through the pipeline. While a paced run sleeps until its next event
    it goes on beating, applying queued commands, reloading and calling `status`;
    `waiting(ts)` is told the next event's time (ms) as the sleep starts, and None as it ends."""
    engine, journal = session.engine, session.journal
    done_events = 0
    if session.resumed and journal is not None:
        from genesis.engine.journaltables import progress  # noqa: PLC0415 - SQLAlchemy: only to resume

        with journal.engine.connect() as conn:
            row = conn.execute(progress.select().where(progress.c.run_id == journal.run_id)).first()
            done_events = row.events if row else 0
    chores = _Chores(session, config_root, status, say, reload_every_s)
    connected = False
    started = time.perf_counter()
    wall0 = event0 = None
    for count, event in remaining_input(session):
        catching_up = count <= done_events or (journal is not None and journal.seq < journal.skip_until)
        engine.quiet = catching_up   # its notifications were sent before the restart
        if speed and not catching_up:
            if wall0 is None:
                wall0, event0 = time.monotonic(), event.ts
            due = wall0 + (event.ts - event0) / 1000.0 / speed
            delay = due - time.monotonic()
            if delay <= 0:
                if watch is not None:
                    watch.late(-delay)
            elif delay < _TICK_S:
                time.sleep(delay)
            else:
                _wait(chores, waiting, event.ts, due)
        began = time.perf_counter()
        engine.process(event)
        _after_event(session, say)
        if session.snapshots is not None and session.snapshots.due():
            session.snapshots.take(count)
        if watch is not None and not catching_up:
            watch.event_seconds.observe(time.perf_counter() - began)
        if not catching_up and not connected and journal is not None:
            connected = True  # the operator's session starts at the live point
            journal.queue_command("connect", {})
        chores.tend(catching_up)
    engine.finish()
    publish_status(engine)
    if journal is not None:
        journal.finish()
    return build_report(engine, session.feed, session.starting_equity, time.perf_counter() - started, "paper run")


_TICK_S = 0.2   # a longer sleep until the next event is cut into steps this long


def _wait(chores: _Chores, waiting, next_ts: int, due: float) -> None:
    """Sleep until time.monotonic() reaches `due`, when the event at `next_ts` is due,
    tending the chores at each step."""
    if waiting is not None:
        waiting(next_ts)
    while (left := due - time.monotonic()) > 0:
        time.sleep(min(left, _TICK_S))
        chores.tend(False)
    if waiting is not None:
        waiting(None)


class _Chores:
    """What a run does on the wall clock beside its events: hot reload of edited
    configuration, the heartbeat and the operator's queued commands, the status line and
    the status document."""

    def __init__(self, session: Session, config_root: Path, status, say, reload_every_s: float):
        self.session, self.config_root, self.status, self.say = session, config_root, status, say
        self.reload_every_s = reload_every_s
        self.caught_up = not session.resumed
        self.next_check = self.next_status = self.next_poll = self.next_publish = 0.0

    def tend(self, catching_up: bool) -> None:
        """Do what is due; `catching_up`: a resumed run is still re-reading what it had done."""
        session, journal = self.session, self.session.journal
        wall = time.monotonic()
        if not catching_up and (not self.caught_up or wall >= self.next_check):
            if not self.caught_up:
                self.next_publish = 0.0   # the state rebuilt after a restart is on the screens at once
            self.caught_up = True  # the first live moment also picks up edits made while stopped
            self.next_check = wall + self.reload_every_s
            reload_config(session, self.config_root, self.say)
        if journal is not None and not catching_up and wall >= self.next_poll:
            self.next_poll = wall + 0.2
            journal.beat(int(time.time() * 1000))
            if _apply_queued_commands(session, self.say):
                self.next_publish = 0.0   # what an operator's command did shows in `genesis status` at once
        if self.status is not None and wall >= self.next_status:
            self.next_status = wall + 0.5
            self.status(session.engine, catching_up)
        if wall >= self.next_publish:
            self.next_publish = wall + STATUS_EVERY_S
            publish_status(session.engine)
