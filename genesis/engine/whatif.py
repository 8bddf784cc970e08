"""What-if replays: the same recorded input under two configurations, and what
differed (halts, refusals, trades, P&L, time in each state, rule firings, and the
first decision where the two runs parted). `genesis replay --compare DIR` uses it.

Both runs are replays with a journal in memory, one after the other (as a plain
`genesis replay`, so each side's report is the one it would print): a replay is
deterministic, so any difference comes from the configuration alone."""
from __future__ import annotations

import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from genesis.config.checks import CheckedConfig
from genesis.config.snapshot import changed_files
from genesis.durations import format_utc
from genesis.engine.runner import replay
from genesis.words import counted, usd

# journal entries that are decisions: what the rules, the strategies and the trading state chose
DECISION_KINDS = ("fire", "resolve", "intent", "refused", "order", "state", "tier")
WIDTH = 80
MAX_LISTED = 10   # halts, refusals and firings listed per section before "and N more"


@dataclass(frozen=True)
class Setup:
    """One side of a comparison: its label, configuration folder, checked configuration and tier."""

    label: str
    root: Path
    config: CheckedConfig
    tier: str


@dataclass(frozen=True)
class Decision:
    """One decision of a run: its event time, the input event it came with, and what it was."""

    ts: int
    event: int
    kind: str
    rule: str
    symbol: str
    text: str

    def same_as(self, other: Decision | None) -> bool:
        """Whether `other` is the same decision at the same event time."""
        return other is not None and (self.ts, self.kind, self.rule, self.symbol, self.text) == (
            other.ts, other.kind, other.rule, other.symbol, other.text)


@dataclass(frozen=True)
class Stop:
    """A halt, a reduce-only spell, a lock, or the return to ACTIVE."""

    ts: int
    kind: str    # "halt", "reduce-only", "lock" or "resumed"
    rule: str
    text: str


@dataclass
class RunResult:
    """What one of the two runs did."""

    setup: Setup
    report: dict
    stops: list = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)     # (rule, reason) -> intents refused
    rejections: Counter = field(default_factory=Counter)   # (source, reason) -> orders the exchange rejected
    decisions: int = 0
    first_ts: int = 0
    last_ts: int = 0
    files: dict = field(default_factory=dict)              # the configuration's files, {path: text}
    seconds: float = 0.0

    def count(self, kind: str) -> int:
        """How many stops of `kind` ("halt", "reduce-only", "lock")."""
        return sum(1 for s in self.stops if s.kind == kind)


@dataclass(frozen=True)
class Divergence:
    """The first decision where the runs differ; None on a side that made no further decision."""

    index: int
    current: Decision | None
    compare: Decision | None


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table: plain values for JSON, text for the terminal."""

    key: str
    label: str
    current: object
    compare: object
    current_text: str
    compare_text: str
    change_text: str

    @property
    def differs(self) -> bool:
        """Whether the two runs disagree on this figure."""
        return self.current != self.compare


@dataclass
class Comparison:
    """Both runs and where they parted."""

    current: RunResult
    compare: RunResult
    divergence: Divergence | None
    seconds: float

    @property
    def differs(self) -> bool:
        """Whether anything differed: a decision, a figure, a firing, a refusal or a stop."""
        return (self.divergence is not None or any(r.differs for r in figure_rows(self))
                or bool(firing_rows(self)) or bool(refusal_rows(self)) or self.current.stops != self.compare.stops)


# --------------------------------------------------------------------------- running
class _Recorder:
    """Observer of one engine's journal entries: collects its decisions, stops and
    refusals; on the second run, compares each decision with the first run's."""

    def __init__(self, engine, result: RunResult, reference: list | None):
        self.engine, self.result, self.reference = engine, result, reference
        self.decisions: list = []
        self.divergence: Divergence | None = None

    def __call__(self, ts: int, kind: str, rule: str, symbol: str, data: dict | None) -> None:
        data = data or {}
        if kind == "refused":
            self.result.refusals[(rule, data.get("refused", ""))] += 1
        elif kind == "order_rejected" and data.get("client_id"):   # sent, then rejected by the exchange
            self.result.rejections[(data.get("rule") or "exchange", data.get("reason", ""))] += 1
        elif kind == "state":
            stop = _stop(ts, rule, symbol, data)
            if stop is not None:
                self.result.stops.append(stop)
        if kind not in DECISION_KINDS:
            return
        decision = Decision(ts, self.engine.stats.events, kind, rule, symbol, describe(kind, rule, symbol, data))
        index = self.result.decisions
        self.result.decisions += 1
        if self.reference is None:
            self.decisions.append(decision)
        elif self.divergence is None:
            other = self.reference[index] if index < len(self.reference) else None
            if not decision.same_as(other):
                self.divergence = Divergence(index, other, decision)

    def finish(self) -> None:
        """The second run made fewer decisions than the first: they part where it stopped."""
        if self.reference is not None and self.divergence is None and self.result.decisions < len(self.reference):
            self.divergence = Divergence(self.result.decisions, self.reference[self.result.decisions], None)


def _stop(ts: int, rule: str, symbol: str, data: dict) -> Stop | None:
    """A `state` journal entry as a Stop, when it is one."""
    if "mode" in data:
        by = data.get("by", "") or rule
        if data["mode"] == "HALTED":
            return Stop(ts, "halt", by, f"halted, held by {', '.join(data.get('holds') or [by])}")
        if data["mode"] == "REDUCING":
            return Stop(ts, "reduce-only", by, f"reduce-only, held by {', '.join(data.get('holds') or [by])}")
        return Stop(ts, "resumed", by, f"back to {data['mode']} ({by})")
    if data.get("change") == "lock":
        lock = data.get("lock", {})
        scope = lock.get("symbol") or symbol or "all symbols"
        return Stop(ts, "lock", rule, f"lock on {scope} by {rule} until {format_utc(lock.get('until'))}: "
                                      f"{lock.get('reason', '')}")
    return None


def describe(kind: str, rule: str, symbol: str, data: dict) -> str:
    """One journal entry as a short plain-English decision."""
    on = f" ({symbol})" if symbol else ""
    if kind == "fire":
        return f"{rule} fired{on}"
    if kind == "resolve":
        return f"{rule} resolved{on}"
    if kind == "intent":
        notional = data.get("notional_final", data.get("notional_usd", 0.0))
        return f"{rule} decided to {data.get('side')} {symbol} for ${notional:,.2f} ({data.get('algo')})"
    if kind == "refused":
        return f"{rule} refused {data.get('side')} {symbol}: {data.get('refused', '')}"
    if kind == "order":
        return f"order sent: {data.get('side')} {data.get('qty', 0.0):,.8g} {symbol} ({data.get('type')})"
    if kind == "tier":
        return f"tier changed to {data.get('tier')}"
    if "mode" in data:
        return f"trading state {data.get('from')} -> {data['mode']} ({data.get('by', rule)})"
    details = ", ".join(f"{k} {v}" for k, v in data.items() if k not in ("change", "by"))
    return f"{data.get('change', 'state')} by {rule}{on}" + (f": {details}" if details else "")


def run_one(setup: Setup, open_run, reference: list | None = None, on_progress=None) -> tuple[RunResult, _Recorder]:
    """Replay the input under one configuration, in memory; what it did, and its recorder.
    `open_run(setup)` opens the session (a fresh feed, a journal in memory); with `reference` (the
    first run's decisions) the recorder finds where this run parts from it."""
    session = open_run(setup)
    session.writes_files = False   # a what-if never changes a configuration folder
    engine = session.engine
    result = RunResult(setup, {}, files=dict(session.config_files))
    recorder = _Recorder(engine, result, reference)
    engine.observers.append(recorder)
    started = time.perf_counter()
    progress = None if on_progress is None else (lambda n: on_progress(setup.label, n))
    result.report = replay(session, on_progress=progress)
    result.seconds = time.perf_counter() - started
    recorder.finish()
    result.first_ts, result.last_ts = engine.account.first_ts, engine.now
    if session.journal is not None:
        session.journal.close()
    return result, recorder


def compare_replays(current: Setup, compare: Setup, open_run, on_progress=None) -> Comparison:
    """Replay the same input under `current` and then `compare`; what differed.
    `open_run(setup)` opens a session on a fresh copy of the input; `on_progress(label,
    events)` is told of progress now and then."""
    started = time.perf_counter()
    first, recorder = run_one(current, open_run, on_progress=on_progress)
    second, other = run_one(compare, open_run, reference=recorder.decisions, on_progress=on_progress)
    return Comparison(first, second, other.divergence, time.perf_counter() - started)


# --------------------------------------------------------------------------- differences
def _signed(value: int) -> str:
    return f"{value:+,}"


# (report key, label, how it is shown): money, fees (4 decimals), count, percent
FIGURES = (("pnl_usd", "P&L", "money"), ("final_equity_usd", "final equity", "money"),
           ("max_drawdown_usd", "max drawdown", "money"), ("fees_usd", "fees", "fees"),
           ("trades", "trades closed", "count"), ("win_rate_pct", "win rate", "rate"),
           ("intents", "order intents", "count"), ("orders", "orders sent", "count"),
           ("refused", "refused by rules", "count"))
STOP_NAMES = (("halt", "halt"), ("reduce-only", "reduce-only spell"), ("lock", "lock"))


def _row(key: str, label: str, style: str, a, b) -> Row:
    if style == "money":
        return Row(key, label, a, b, usd(a), usd(b), usd(b - a, signed=True) if a != b else "")
    if style == "fees":
        change = ("+" if b > a else "-") + f"${abs(b - a):,.4f}"
        return Row(key, label, a, b, f"${a:,.4f}", f"${b:,.4f}", change if a != b else "")
    if style in ("rate", "pct"):
        text = (lambda v: "n/a" if v is None else f"{v:.1f}%")
        change = f"{b - a:+.1f} pts" if a != b and None not in (a, b) else ""
        return Row(key, label, a, b, text(a), text(b), change)
    if style == "text":
        return Row(key, label, a, b, str(a), str(b), "changed" if a != b else "")
    return Row(key, label, a, b, f"{a:,}", f"{b:,}", _signed(b - a) if a != b else "")


def figure_rows(comparison: Comparison) -> list[Row]:
    """The figures side by side: P&L, drawdown, fees, trades, refusals, stops, time in each state."""
    a, b = comparison.current, comparison.compare
    rows = []
    for key, label, style in FIGURES:
        x, y = a.report[key], b.report[key]
        if key == "win_rate_pct":   # no trade, no win rate
            x, y = (x if a.report["trades"] else None), (y if b.report["trades"] else None)
        rows.append(_row(key, label, style, x, y))
    rows.append(_row("exchange_rejections", "exchange rejections", "count",
                     sum(a.rejections.values()), sum(b.rejections.values())))
    for kind, name in STOP_NAMES:
        rows.append(_row(kind, name + "s", "count", a.count(kind), b.count(kind)))
    states = sorted(set(a.report["time_in_state_pct"]) | set(b.report["time_in_state_pct"]))
    for state in states:
        rows.append(_row(f"time_{state}", f"time {state}", "pct", a.report["time_in_state_pct"].get(state, 0.0),
                         b.report["time_in_state_pct"].get(state, 0.0)))
    rows.append(_row("final_state", "final state", "text", a.report["final_state"], b.report["final_state"]))
    return rows


def firing_rows(comparison: Comparison) -> list[Row]:
    """Rules that fired a different number of times."""
    a, b = comparison.current.report["rule_firings"], comparison.compare.report["rule_firings"]
    return [_row(rule, rule, "count", a.get(rule, 0), b.get(rule, 0))
            for rule in sorted(set(a) | set(b)) if a.get(rule, 0) != b.get(rule, 0)]


def refusal_rows(comparison: Comparison) -> list[tuple]:
    """(rule, reason, current count, compare count) where the runs refused differently;
    exchange rejections are listed under their source ('exchange')."""
    rows = []
    for attr in ("refusals", "rejections"):
        a, b = getattr(comparison.current, attr), getattr(comparison.compare, attr)
        rows += [(rule, reason, a.get((rule, reason), 0), b.get((rule, reason), 0))
                 for rule, reason in sorted(set(a) | set(b)) if a.get((rule, reason), 0) != b.get((rule, reason), 0)]
    return rows


# --------------------------------------------------------------------------- text
def _wrap(text: str, indent: str, hang: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=hang or indent,
                         break_on_hyphens=False) or [indent.rstrip()]


def _table_line(label: str, cells: tuple, indent: str = "  ") -> str:
    width = 30 - len(indent)
    return f"{indent}{label[:width]:<{width}}" + "".join(f"{c:>16}" for c in cells)


def _header(c: Comparison) -> list[str]:
    a, b = c.current, c.compare
    lines = ["What if: the same input under two configurations"]
    lines += _wrap(f"input     {counted(a.report['events'], 'event')}, {format_utc(a.first_ts)} to "
                   f"{format_utc(a.last_ts)}", "  ", " " * 12)
    malformed = a.report["feed"]["malformed"]
    if malformed:   # a plain `genesis replay` of the same files lists them
        lines.append(f"            {counted(malformed, 'malformed line')} skipped (genesis replay lists them)")
    for run in (a, b):
        lines += _wrap(f"{run.setup.label:<9} {run.setup.root} (tier {run.setup.tier})", "  ", " " * 12)
    if a.setup.tier != b.setup.tier:
        lines.append(f"  tiers     differ: current runs {a.setup.tier}, compare runs {b.setup.tier}")
    edited = changed_files(a.files, b.files)
    lines += _wrap("files     " + (", ".join(edited) + (" differs" if len(edited) == 1 else " differ") if edited
                                   else "the same in both folders"), "  ", " " * 12)
    lines.append(f"  took      {c.seconds:,.1f} s for both replays (current {a.seconds:,.1f} s, "
                 f"compare {b.seconds:,.1f} s)")
    return lines


def _stop_lines(c: Comparison) -> list[str]:
    a, b = c.current, c.compare
    title = "Halts, reduce-only spells and locks"
    if a.stops == b.stops:
        stops = [s for s in a.stops if s.kind != "resumed"]
        return [f"{title}: " + (f"the same in both runs ({len(stops):,})" if stops else "none in either run")]
    lines = [title]
    for run in (a, b):
        if not any(s.kind != "resumed" for s in run.stops):
            lines.append(f"  {run.setup.label}: none")
            continue
        kinds = ", ".join(counted(run.count(k), name) for k, name in STOP_NAMES if run.count(k))
        lines.append(f"  {run.setup.label}: {kinds}")
        for stop in run.stops[:MAX_LISTED]:
            lines += _wrap(f"{format_utc(stop.ts)}  {stop.text}", "    ", " " * 29)
        if len(run.stops) > MAX_LISTED:
            lines.append(f"    and {len(run.stops) - MAX_LISTED:,} more")
    return lines


def _refusal_lines(c: Comparison) -> list[str]:
    rows = refusal_rows(c)
    if not rows:
        total = sum(c.current.refusals.values()) + sum(c.current.rejections.values())
        return ["Refusals: " + (f"the same in both runs ({total:,})" if total else "none in either run")]
    lines = [_table_line("Refusals that differ", ("current", "compare", "change"), indent="")]
    for rule, reason, x, y in rows[:MAX_LISTED]:
        lines.append(_table_line(rule, (f"{x:,}", f"{y:,}", _signed(y - x))))
        lines += _wrap(reason, "    ")
    if len(rows) > MAX_LISTED:
        lines.append(f"  and {len(rows) - MAX_LISTED:,} more")
    return lines


def _firing_lines(c: Comparison) -> list[str]:
    rows = firing_rows(c)
    if not rows:
        return ["Rule firings: the same in both runs"]
    lines = [_table_line("Rule firings that differ", ("current", "compare", "change"), indent="")]
    lines += [_table_line(r.label, (r.current_text, r.compare_text, r.change_text)) for r in rows[:MAX_LISTED]]
    if len(rows) > MAX_LISTED:
        lines.append(f"  and {len(rows) - MAX_LISTED:,} more")
    return lines


def _divergence_lines(c: Comparison) -> list[str]:
    d = c.divergence
    if d is None:
        return [f"Decisions: the same {counted(c.current.decisions, 'decision')} in both runs"]
    lines = ["First different decision" + (f" (after {counted(d.index, 'decision')} in common)" if d.index
                                           else " (the very first one)")]
    for label, decision in (("current", d.current), ("compare", d.compare)):
        if decision is None:
            lines.append(f"  {label:<9} no further decision")
            continue
        lines.append(f"  {label:<9} {format_utc(decision.ts)}, event {decision.event:,}")
        lines += _wrap(decision.text, " " * 12)
    return lines


def format_comparison(c: Comparison) -> str:
    """The comparison as 80-column text: the header, then what differed side by side."""
    lines = _header(c) + [""]
    if not c.differs:
        r, stops = c.current.report, c.current.count("halt") + c.current.count("lock")
        lines += _wrap("No difference: both configurations made the same "
                       f"{counted(c.current.decisions, 'decision')} on this input, with the same results "
                       f"(P&L {usd(r['pnl_usd'])}, {counted(r['trades'], 'trade')} closed, "
                       f"{counted(r['refused'], 'refusal')}, "
                       f"{counted(stops, 'halt or lock', 'halts or locks') if stops else 'no halt or lock'}).", "")
        return "\n".join(lines)
    lines.append(_table_line("", ("current", "compare", "change")))
    lines += [_table_line(r.label, (r.current_text, r.compare_text, r.change_text)) for r in figure_rows(c)]
    for section in (_stop_lines, _refusal_lines, _firing_lines, _divergence_lines):
        lines += [""] + section(c)
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------- JSON
def _decision_json(d: Decision | None) -> dict | None:
    return None if d is None else {"time_utc": format_utc(d.ts), "ts": d.ts, "event": d.event, "kind": d.kind,
                                   "rule": d.rule, "symbol": d.symbol, "text": d.text}


def _run_json(run: RunResult) -> dict:
    return {
        "config": str(run.setup.root), "tier": run.setup.tier, "seconds": round(run.seconds, 3),
        "decisions": run.decisions, "report": run.report,
        "stops": [{"time_utc": format_utc(s.ts), "ts": s.ts, "kind": s.kind, "rule": s.rule, "text": s.text}
                  for s in run.stops],
        "refusals": [{"rule": rule, "reason": reason, "count": n}
                     for (rule, reason), n in sorted(run.refusals.items())],
        "exchange_rejections": [{"source": src, "reason": reason, "count": n}
                                for (src, reason), n in sorted(run.rejections.items())],
    }


def comparison_json(c: Comparison) -> dict:
    """The comparison as plain data for `--json`: both runs in full, then what differed."""
    a, b = c.current, c.compare
    return {
        "differs": c.differs,
        "input": {"sources": a.report["feed"]["sources"], "events": a.report["events"],
                  "from_utc": format_utc(a.first_ts), "to_utc": format_utc(a.last_ts)},
        "same_tier": a.setup.tier == b.setup.tier,
        "files_that_differ": changed_files(a.files, b.files),
        "seconds": round(c.seconds, 3),
        "current": _run_json(a),
        "compare": _run_json(b),
        "differences": {
            "figures": {r.key: {"current": r.current, "compare": r.compare} for r in figure_rows(c) if r.differs},
            "rule_firings": {r.key: {"current": r.current, "compare": r.compare} for r in firing_rows(c)},
            "refusals": [{"rule": rule, "reason": reason, "current": x, "compare": y}
                         for rule, reason, x, y in refusal_rows(c)],
            "first_decision": None if c.divergence is None else {
                "index": c.divergence.index, "current": _decision_json(c.divergence.current),
                "compare": _decision_json(c.divergence.compare)},
        },
    }
