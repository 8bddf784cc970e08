"""Bounded recovery: snapshots of a run taken on a grid of event time, and the restore
that a resumed run starts from, so that a restart replays only the input after the
latest usable snapshot (genesis.yaml `recovery`).

A snapshot is taken between two inputs, after everything the earlier one caused (the
recorded edits and commands that fell due included). With it go what the session holds
besides the engine: the configuration files in force, accepted `genesis set` edits not
yet due, the rest of a replay's command script. Recovery takes the newest snapshot this
Genesis can use (same STATE_VERSION, same compiled layout, intact), then the recorded
edits and commands that came after it; the input after it is replayed as before, and
the journal's skip-until-seq check still confirms every regenerated entry's place.
"""
from __future__ import annotations

import sys
import time
from functools import partial
from typing import NamedTuple

from genesis.config.ruleset import compile_ruleset
from genesis.config.snapshot import load_snapshot
from genesis.durations import parse_duration
from genesis.engine.journal import JournalError

# genesis.engine.snapshots (and pickle) is imported where a snapshot is taken or restored: a
# replay into a journal in memory never does either


class Restored(NamedTuple):
    """Where a resumed run picks up after its snapshot."""

    inputs: int     # input events the snapshot had processed
    segment: int    # live: the input-log segment that follows it
    seq: int        # the journal seq it was taken at
    skipped: list   # why newer snapshots could not be used


def describe(restored: Restored | None) -> str:
    """One line on where a resumed run started from ('' when it has no snapshots)."""
    if restored is None:
        return ""
    why = f" ({'; '.join(restored.skipped)})" if restored.skipped else ""
    if restored.seq == 0 and restored.inputs == 0:
        return f"no snapshot could be used{why}: the run's whole input is replayed"
    return f"resumed from the snapshot after input {restored.inputs}{why}"


class Snapshotter:
    """Takes a session's snapshots every `recovery.snapshot_every` of event time."""

    def __init__(self, session):
        settings = session.engine.config.files.settings.data["recovery"]
        every = settings["snapshot_every"]
        self.session = session
        self.every_ms = int(parse_duration(every) * 1000) if every else 0
        self.min_wall_s = parse_duration(settings["min_interval"])
        self.keep = int(settings["snapshots_kept"])
        self.next_ts = 0
        # time.monotonic() of the last snapshot; the start counts as one: a replay shorter than
        # min_interval takes none (replaying it again costs less than the snapshot)
        self.last_wall = time.monotonic()
        self.index = None   # the snapshots.StaticIndex of the compiled configuration (`prepare`)
        self.taken = 0
        self.failed = ""   # why the last attempt failed, said once

    def due(self) -> bool:
        """Whether the event clock has passed the next snapshot point (points lie on a
        grid of event time, the same in every run of the same input)."""
        if self.every_ms <= 0:
            return False
        now = self.session.engine.now
        if self.next_ts == 0:
            self.next_ts = now - now % self.every_ms + self.every_ms
        if now < self.next_ts:
            return False
        if time.monotonic() - self.last_wall < self.min_wall_s:
            # a replay runs through event time fast: it snapshots at most every min_interval
            self.next_ts = now - now % self.every_ms + self.every_ms
            return False
        return True

    def prepare(self) -> None:
        """Index the engine's compiled configuration now, unless that is done: about 30 ms
        that the first snapshot would otherwise take from the run loop. A live run calls
        this before it trades; a replay leaves it to its first snapshot (a short one takes
        none). After a tier change or an accepted edit the next snapshot indexes again."""
        from genesis.engine.snapshots import StaticIndex  # noqa: PLC0415

        engine = self.session.engine
        if self.index is None or not self.index.covers(engine):
            self.index = StaticIndex.of(engine)

    def take(self, inputs: int, segment: int = 0) -> bool:
        """Snapshot the session now (after `inputs` input events; live: the input log's
        next segment is `segment`). False, and a journal notice, when it cannot be."""
        from genesis.engine.snapshots import STATE_VERSION, SnapshotError, compress, freeze  # noqa: PLC0415

        session, engine = self.session, self.session.engine
        now = engine.now
        if self.every_ms:
            self.next_ts = now - now % self.every_ms + self.every_ms
        try:
            self.prepare()
            frozen = freeze(engine, self.index)
        except SnapshotError as exc:
            if str(exc) != self.failed:   # said once, on stderr: the journal must not depend on snapshots
                self.failed = str(exc)
                print(f"genesis: snapshot not taken (a restart replays more input): {exc}", file=sys.stderr)
            return False
        meta = {"tier": engine.tier, "config_files": session.config_files,
                "pending_sets": [list(item) for item in session.pending_sets],
                "script": [list(item) for item in session.script], "starting_equity": session.starting_equity}
        session.journal.save_snapshot({"seq": session.journal.seq, "inputs": inputs, "segment": segment, "ts": now,
                                       "version": STATE_VERSION, "static_digest": self.index.digest, "meta": meta},
                                      partial(compress, frozen), self.keep)   # compressed by the journal's writer
        self.taken += 1
        self.last_wall = time.monotonic()
        return True


def wants_snapshots(session) -> bool:
    """Snapshots are taken for a run whose journal outlives the process and when
    `recovery.snapshot_every` is set."""
    journal = session.journal
    if journal is None or journal.url in ("sqlite://", "sqlite:///:memory:"):
        return False
    return bool(session.engine.config.files.settings.data["recovery"]["snapshot_every"])


def restore_latest(session) -> Restored | None:
    """Put the newest usable snapshot of the session's run into its engine; None when
    the run has none. When none could be used, the input is replayed from its start
    (inputs 0) and `skipped` says why. Nothing is journaled here: the resumed run's
    entries must be those of an uninterrupted one."""
    journal, engine = session.journal, session.engine
    skipped = []
    try:
        stored = journal.snapshots()
    except JournalError as exc:
        return Restored(0, 0, 0, [f"the snapshots cannot be read: {exc}"])
    for snap in stored:
        why = _restore(session, snap)
        if why is None:
            return Restored(snap.inputs, snap.segment, snap.seq, skipped)
        skipped.append(f"snapshot at input {snap.inputs}: {why}")
    return Restored(0, 0, 0, skipped) if skipped else None


def _restore(session, snap) -> str | None:
    """Restore one snapshot; why not, or None when done."""
    from genesis.engine.snapshots import STATE_VERSION, SnapshotError, StaticIndex, thaw  # noqa: PLC0415

    journal, engine = session.journal, session.engine
    if snap.version != STATE_VERSION:
        return f"written by another Genesis (state version {snap.version}, this one reads {STATE_VERSION})"
    meta = snap.meta
    files, tier = meta["config_files"], meta["tier"]
    if files == session.config_files:
        config = engine.config
    else:
        config = load_snapshot(files)
        if not config.ok:
            return "its configuration does not validate with this Genesis"
    ruleset = engine.ruleset if config is engine.config and tier == engine.tier else compile_ruleset(config, tier)
    index = StaticIndex({"config": config, "ruleset": ruleset, "markets": engine.markets})
    if index.digest != snap.static_digest:
        return "the configuration compiles differently in this Genesis"
    try:
        thaw(engine, journal.snapshot_state(snap.id), index)
    except (SnapshotError, JournalError) as exc:
        return str(exc)
    journal.seq = snap.seq
    session.config_files = files
    session.starting_equity = meta["starting_equity"]
    session.pending_sets = [tuple(item) for item in meta["pending_sets"]]
    session.script = [tuple(item) for item in meta["script"]]
    session.changes = [c for c in session.changes if c.seq > snap.seq]
    return None
