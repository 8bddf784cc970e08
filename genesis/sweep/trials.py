"""One trial: a deterministic replay under a copy of the configuration with some
numbers changed, validated first. `run_trial` takes and returns plain picklable data,
so that any pool (local processes now, a cluster later) can run it."""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from genesis.config.checks import check_config
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.runner import open_session, replay
from genesis.engine.state import HALTED
from genesis.sweep.keys import ConfigKeyError, apply_values

OK, INVALID, FAILED = "ok", "invalid", "failed"
REASON_PROBLEMS = 3   # configuration problems quoted in an invalid trial's reason


@dataclass(frozen=True)
class TrialSpec:
    """What one trial replays: the values, the base configuration's files, the input."""

    number: int
    values: dict                  # "FILE: dotted.path" -> number
    config_files: dict            # {relative path: text} of the configuration the values change
    data: tuple                   # feed file paths; empty: the bundled sample
    tier: str | None              # None: genesis.yaml `tier`
    window: tuple | None = None   # (from ms, to ms) of event time, either end None for open; None: all
    phase: str = "search"         # "search" or "test" (walk-forward's out-of-sample replay)


@dataclass
class TrialResult:
    """How a trial went: ok with its figures, invalid (the configuration failed validation, not run) or failed."""

    number: int
    values: dict
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    phase: str = "search"


class WindowFeed:
    """A feed's events whose event time is in [from, to): the rest are read and dropped."""

    def __init__(self, feed, window: tuple):
        self._feed = feed
        self.start, self.end = window
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def __getattr__(self, name):
        return getattr(self._feed, name)

    def digest(self) -> str:
        """The input's identity: the files' digest and the window."""
        return f"{self._feed.digest()}:{self.start}-{self.end}"

    def __iter__(self):
        start, end = self.start, self.end
        for event in self._feed:
            if start is not None and event.ts < start:
                continue
            if end is not None and event.ts >= end:
                break
            if self.first_ts is None:
                self.first_ts = event.ts
            self.last_ts = event.ts
            yield event


def event_span(data) -> tuple[int, int]:
    """(first, last) event time in ms of the input, read once."""
    first = last = None
    for event in open_feed(list(data) or sample_paths()):
        if first is None:
            first = event.ts
        last = event.ts
    if first is None:
        raise ValueError("the sweep's data holds no usable events")
    return first, last


class _HaltCounter:
    """Engine observer: counts the times the trading state went to HALTED."""

    def __init__(self):
        self.halts = 0

    def __call__(self, _ts, kind, _rule, _symbol, data) -> None:
        if kind == "state" and data and data.get("mode") == HALTED:
            self.halts += 1


def _problems_text(problems, folder: str) -> str:
    shown = "; ".join(str(p).replace(folder + "/", "") for p in problems[:REASON_PROBLEMS])
    more = len(problems) - REASON_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def metrics_of(report: dict, halts: int) -> dict:
    """The figures a sweep ranks by, from a replay report."""
    return {"pnl_usd": report["pnl_usd"], "sharpe": report["sharpe_1m_annualised"],
            "max_drawdown_usd": report["max_drawdown_usd"], "max_drawdown_pct": report["max_drawdown_pct"],
            "halts": halts, "trades": report["trades"], "events": report["events"],
            "first_event_ms": report["data_range"].get("first_event_ms"),
            "last_event_ms": report["data_range"].get("last_event_ms")}


def run_trial(spec: TrialSpec) -> TrialResult:
    """Validate the trial's configuration and, when valid, replay the input under it (journal in memory)."""
    started = time.perf_counter()
    result = TrialResult(spec.number, dict(spec.values), OK, phase=spec.phase)
    try:
        files = apply_values(spec.config_files, spec.values)
    except ConfigKeyError as exc:
        result.status, result.reason = INVALID, str(exc)
        return result
    with tempfile.TemporaryDirectory(prefix="genesis-sweep-") as tmp:
        for rel, text in files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        config = check_config(Path(tmp))
        tier = spec.tier or (config.files.settings.data or {}).get("tier")
        if not config.ok:
            result.status, result.reason = INVALID, _problems_text(config.problems, tmp)
        elif tier not in config.tiers:
            result.status, result.reason = INVALID, f"unknown tier '{tier}' (known: {', '.join(sorted(config.tiers))})"
        else:
            try:
                result.metrics = _replay(Path(tmp), config, tier, spec)
            except Exception as exc:  # noqa: BLE001 - one trial's failure is reported, the sweep goes on
                result.status, result.reason = FAILED, f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _replay(root: Path, config, tier: str, spec: TrialSpec) -> dict:
    feed = open_feed(list(spec.data) or sample_paths())
    if spec.window is not None:
        feed = WindowFeed(feed, spec.window)
    session = open_session(root, config, tier, feed, "sqlite://", "replay")
    session.writes_files = False
    halts = _HaltCounter()
    session.engine.observers.append(halts)
    try:
        report = replay(session)
    finally:
        if session.journal is not None:
            session.journal.close()
    return metrics_of(report, halts.halts)
