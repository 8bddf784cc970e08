"""`genesis tier`: the current tier and every promotion gate with its current value,
rebuilt from the journal by replaying the latest run's input with the configuration
(and edits) it ran with."""
from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, OperationalError

from genesis.config.checks import CheckedConfig
from genesis.config.snapshot import load_snapshot
from genesis.engine import exits
from genesis.engine.engine import Engine
from genesis.engine.feeds import open_feed
from genesis.engine.gates import NOT_MEASURED, gates
from genesis.engine.journal import Journal, JournalError, describe_error, progress, recorded_changes, runs
from genesis.engine.recovery import Restored, restore_latest
from genesis.engine.runner import Session, _after_event

def rebuild(url: str) -> tuple[Engine, dict]:
    """The engine state at the end of the latest run in the journal."""
    journal = Journal(url, create=False)
    try:
        with journal.engine.connect() as conn:
            run = conn.execute(select(runs).order_by(runs.c.id.desc())).first()
            if run is None:
                raise JournalError("no runs in this journal yet: start one with `genesis run`")
            prog = conn.execute(select(progress).where(progress.c.run_id == run.id)).first()
            changes = recorded_changes(conn, run.id, scripted=True)
    except (DatabaseError, OperationalError) as exc:
        raise JournalError(describe_error(exc, url)) from None
    finally:
        journal.engine.dispose()
    paths = [Path(p) for p in json.loads(run.feed_paths)]
    # a live input log's first segments may be gone (compressed, or removed after the
    # retention): its reader says when a segment it needs is missing
    missing = [str(p) for p in paths if not p.is_file()] if run.mode not in ("live", "dry-run") else []
    if missing:
        raise JournalError(f"the run's input files are gone ({', '.join(missing)}); its state cannot be rebuilt")
    files = json.loads(run.config_files)
    config: CheckedConfig = load_snapshot(files)
    if not config.ok:
        raise JournalError("the configuration this run started with no longer validates")
    if run.mode in ("live", "dry-run"):   # a live run's input is its input log (genesis/live/segment.py)
        from genesis.live.segment import InputLogError, read_inputs  # noqa: PLC0415

        start = paths[0].with_suffix(".start.json")
        equity = json.loads(start.read_text(encoding="utf-8"))["balances"].get("USDT", 0.0) if start.exists() else None
        from genesis.live.dryrun import DryRunExchange  # noqa: PLC0415
        from genesis.live.exchange import LiveExchange  # noqa: PLC0415
        from genesis.live.marketrules import run_markets  # noqa: PLC0415

        try:
            markets = run_markets(paths[0])   # the symbol rules the run started with
        except InputLogError as exc:
            raise JournalError(str(exc)) from None
        if run.mode == "dry-run":   # paper fills against the logged live book
            live = DryRunExchange.for_config(markets, config)
        else:
            live = LiveExchange(markets, prefix=f"G{paths[0].name.split('-')[1]}-")
        engine = Engine(config, run.tier, starting_equity=equity, markets=markets, exchange=live)

        def feed_from(restored: Restored | None):
            try:
                for event in read_inputs(paths[0], first=restored.segment if restored else 0):
                    yield live.apply(event) or event
            except InputLogError as exc:   # a damaged log: said like any journal problem
                raise JournalError(str(exc)) from None
    else:
        engine = Engine(config, run.tier)

        def feed_from(restored: Restored | None):
            feed = iter(open_feed(paths))
            for _ in itertools.islice(feed, restored.inputs if restored else 0):
                pass
            return feed
    # a recorded feed is read up to where the run got; a live input log holds just that
    limit = prog.events if prog and run.mode not in ("live", "dry-run") else None
    with tempfile.TemporaryDirectory(prefix="genesis-tier-") as scratch:  # where recorded `set`s may write
        for rel, text in files.items():
            (Path(scratch) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / rel).write_text(text, encoding="utf-8")
        session = Session(engine, None, None, False, engine.account.equity(), files, changes, Path(scratch))
        restored = _restore(url, run.id, session)
        first = restored.inputs + 1 if restored is not None and run.mode not in ("live", "dry-run") else 1
        for count, event in enumerate(feed_from(restored), first):
            if limit is not None and count > limit:
                break
            engine.process(event)
            _after_event(session, lambda _text: None)
    return engine, {"run": run.id, "events": engine.stats.events, "finished": bool(run.finished)}


def _restore(url: str, run_id: int, session: Session) -> Restored | None:
    """Start the rebuild from the run's newest usable snapshot, if it has one."""
    journal = Journal(url, create=False)
    try:
        journal.run_id = run_id
        session.journal = journal
        restored = restore_latest(session)
        session.script = []   # a replay's scripted commands are among the recorded changes here
    except (DatabaseError, OperationalError):
        restored = None   # a journal from before snapshots: the whole input is replayed
    finally:
        session.journal = None
        journal.engine.dispose()
    return restored if restored is not None and restored.seq else None


def format_tier(engine: Engine, info: dict) -> str:
    """The text `genesis tier` prints."""
    tiers = engine.config.tiers
    current = tiers[engine.tier]
    lines = [f"tier {engine.tier} (rank {current['rank']} of {len(tiers)}), run {info['run']} after "
             f"{info['events']:,} events; equity ${engine.metrics.m['equity_usd']:,.2f}"]
    awaited = exits.describe(engine.state.requirements)
    promotion = current.get("promotion")
    if not promotion:
        lines.append("top tier: there is no promotion from here")
        return "\n".join(lines + [f"awaited: {line}" for line in awaited])
    for rule_id, rows in gates(engine):
        passed = sum(1 for _, ok, _ in rows if ok)
        lines.append(f"promotion to {promotion['to']} ({rule_id}): {passed} of {len(rows)} gates hold")
        for text, ok, values in rows:
            shown = ", ".join(f"{n} = {v:,.4g}" if isinstance(v, (int, float)) else
                              f"{n}: {v}" if v == NOT_MEASURED else f"{n} = {v}" for n, v in values.items())
            lines.append(f"  [{'ok' if ok else '  '}] {text:<48} {shown}")
        remaining = [text for text, ok, _ in rows if not ok]
        lines.append("remaining: " + ("; ".join(remaining) if remaining else "none: promotion is due"))
    return "\n".join(lines + [f"awaited: {line}" for line in awaited])
