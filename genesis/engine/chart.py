"""The replay chart: equity, drawdown and rule firings over event time.

Drawn with matplotlib's object API (a Figure, no pyplot, no GUI backend): it writes PNG
and SVG in-process, offline, with no browser; `genesis replay --plot FILE.html` embeds
the SVG in a self-contained page (genesis.engine.reportpage). Equity is the engine's
equity at the first account update of each minute (engine.stats.equity_marks), closed
with the final equity at the last event; drawdown is measured from the running peak of
that curve, so it may read a little shallower than the report's max drawdown, which is
taken every second."""
from __future__ import annotations

import io
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from genesis.engine.report import range_text
from genesis.words import usd
from genesis.engine.runrecord import RunRecord

PLOT_SUFFIXES = (".html", ".png", ".svg")
STRIP_RULES = 8           # rules with a row of their own in the firings strip; the rest share one
MAX_POINTS = 4000         # curve points drawn; longer curves keep each stretch's lowest and highest
MAX_MARKS_PER_RULE = 1500  # firing marks drawn per strip row; more would only overlap
EQUITY, DRAWDOWN, PROFIT, LOSS, MUTED = "#2f6f73", "#b5654f", "#3d8b5a", "#b5654f", "#8a8f94"
RULE_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")


@dataclass
class Curve:
    """Equity over event time."""

    times_ms: list[int]
    equity: list[float]


def equity_curve(engine, report: dict) -> Curve:
    """The engine's minute equity marks, closed with the final equity at the last event."""
    first = (report.get("data_range") or {}).get("first_event_ms") or 0
    times = [max(minute * 60_000, first) for minute, _ in engine.stats.equity_marks]   # not before the data
    equity = [value for _, value in engine.stats.equity_marks]
    last = (report.get("data_range") or {}).get("last_event_ms")
    if last is not None and (not times or last > times[-1]):
        times.append(last)
        equity.append(report["final_equity_usd"])
    return Curve(times, equity)


def drawdown_pct(equity: list[float], start: float) -> list[float]:
    """Percent below the running peak (0 or negative), the peak starting at `start`."""
    peak, out = start, []
    for value in equity:
        peak = max(peak, value)
        out.append((value - peak) / peak * 100 if peak > 0 else 0.0)
    return out


def _thinned(times: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    """At most about MAX_POINTS points: each stretch keeps its lowest and highest, in time order."""
    if len(times) <= MAX_POINTS:
        return times, values
    step = len(times) * 2 // MAX_POINTS + 1
    keep: list[int] = []
    for i in range(0, len(times), step):
        chunk = range(i, min(i + step, len(times)))
        keep += sorted({min(chunk, key=values.__getitem__), max(chunk, key=values.__getitem__)})
    keep[-1:] = sorted({keep[-1], len(times) - 1})
    return [times[i] for i in keep], [values[i] for i in keep]


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _strip_rows(record: RunRecord) -> list[tuple[str, list[int]]]:
    """(label, firing times) per strip row: the most-firing rules, then the others together."""
    counts = Counter(f.rule for f in record.firings)
    top = [rule for rule, _ in counts.most_common(STRIP_RULES)]
    if len(counts) > STRIP_RULES:
        top = top[:STRIP_RULES - 1]
    rows = {rule: [] for rule in top}
    others: list[int] = []
    for firing in record.firings:
        rows.get(firing.rule, others).append(firing.ts)
    out = [(f"{rule} ({counts[rule]:,})", times) for rule, times in rows.items()]
    if others:
        out.append((f"{len(counts) - len(top):,} other rules ({len(others):,})", others))
    return out


def _sparse(times: list[int], first: int, last: int) -> list[int]:
    """At most MAX_MARKS_PER_RULE of `times`, one per stretch of the time axis."""
    if len(times) <= MAX_MARKS_PER_RULE:
        return times
    width = max(1, (last - first) // MAX_MARKS_PER_RULE)
    seen, out = set(), []
    for ts in times:
        if ts // width not in seen:
            seen.add(ts // width)
            out.append(ts)
    return out


def draw(report: dict, record: RunRecord, curve: Curve):
    """The chart as a matplotlib Figure: equity with trades closed and firings marked,
    drawdown, and a strip of firings per rule."""
    from matplotlib import dates as mdates  # noqa: PLC0415 - matplotlib loads only for --plot
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.ticker import StrMethodFormatter  # noqa: PLC0415

    rows = _strip_rows(record)
    fig = Figure(figsize=(10, 6.2 + 0.22 * len(rows)), dpi=110, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[3.0, 1.4, 0.6 + 0.28 * max(len(rows), 1)])
    ax_eq, ax_dd, ax_fire = axes
    fig.suptitle(f"{report['mode'].capitalize()} on tier {report['tier']}, "
                 f"{range_text(report.get('data_range') or {})}", fontsize=11)
    times, equity = _thinned(curve.times_ms, curve.equity)
    when = [_when(ts) for ts in times]
    start = report["starting_equity_usd"]
    ax_eq.plot(when, equity, color=EQUITY, linewidth=1.3, label="equity")
    ax_eq.axhline(start, color=MUTED, linewidth=0.8, linestyle=":", label=f"start {usd(start)}")
    ax_eq.set_ylabel("equity")
    ax_eq.yaxis.set_major_formatter(StrMethodFormatter("${x:,.2f}"))
    ax_eq.set_title(f"P&L {usd(report['pnl_usd'])} ({report['pnl_pct']:+.2f}%), "
                    f"{report['trades']:,} trades closed, fees {usd(report['fees_usd'])}", fontsize=9, loc="left")
    for trades, colour, label in (([t for t in record.trades if t.pnl_usd > 0], PROFIT, "trade closed, profit"),
                                  ([t for t in record.trades if t.pnl_usd <= 0], LOSS, "trade closed, loss")):
        if trades:
            at = [_equity_at(curve, t.closed_ms) for t in trades]
            ax_eq.scatter([_when(t.closed_ms) for t in trades], at, s=22, color=colour, zorder=3, label=label,
                          edgecolors="white", linewidths=0.5)
    first, last = (curve.times_ms[0], curve.times_ms[-1]) if curve.times_ms else (0, 1)
    for i, (label, fired) in enumerate(rows):
        colour = RULE_COLOURS[i % len(RULE_COLOURS)]
        marks = [_when(ts) for ts in _sparse(fired, first, last)]
        ax_fire.scatter(marks, [i] * len(marks), marker="|", s=90, color=colour, linewidths=1.2)
        ax_eq.scatter(marks, [1.0] * len(marks), marker="v", s=16, color=colour, clip_on=False, zorder=4,
                      transform=ax_eq.get_xaxis_transform(), label="rule firing (colour: strip below)" if i == 0
                      else None)
    ax_eq.legend(loc="best", fontsize=7, frameon=False)
    dd = drawdown_pct(equity, start)
    ax_dd.fill_between(when, dd, 0, color=DRAWDOWN, alpha=0.3, linewidth=0)
    ax_dd.plot(when, dd, color=DRAWDOWN, linewidth=0.9)
    ax_dd.set_ylabel("drawdown")
    ax_dd.yaxis.set_major_formatter(StrMethodFormatter("{x:.3g}%"))
    ax_dd.set_title(f"max drawdown {usd(report['max_drawdown_usd'])} ({report['max_drawdown_pct']:.3f}%)",
                    fontsize=9, loc="left")
    ax_fire.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    ax_fire.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    ax_fire.invert_yaxis()
    ax_fire.set_title("rule firings" if rows else "rule firings: none", fontsize=9, loc="left")
    ax_fire.set_xlabel("event time (UTC)")
    if first == last:   # one moment: give the axis a minute either side
        ax_fire.set_xlim(_when(first - 60_000), _when(last + 60_000))
    locator = mdates.AutoDateLocator(tz=timezone.utc)
    ax_fire.xaxis.set_major_locator(locator)
    ax_fire.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=timezone.utc))
    for ax in axes:
        ax.grid(True, color="#e6e6e6", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def _equity_at(curve: Curve, ts: int) -> float:
    """Equity at event time `ts`, read off the curve between the marks either side."""
    times, equity = curve.times_ms, curve.equity
    i = bisect_right(times, ts)
    if i == 0 or i == len(times):
        return equity[min(i, len(times) - 1)] if equity else 0.0
    t0, t1 = times[i - 1], times[i]
    return equity[i - 1] + (equity[i] - equity[i - 1]) * (ts - t0) / (t1 - t0) if t1 > t0 else equity[i]


def chart_bytes(report: dict, record: RunRecord, curve: Curve, fmt: str) -> bytes:
    """The chart as PNG or SVG bytes (the same input gives the same bytes)."""
    import matplotlib  # noqa: PLC0415

    with matplotlib.rc_context({"svg.hashsalt": "genesis", "font.family": "DejaVu Sans", "text.parse_math": False}):
        fig = draw(report, record, curve)
        out = io.BytesIO()
        metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
        fig.savefig(out, format=fmt, metadata=metadata, facecolor="white")
    return out.getvalue()


def write_plot(path: str | Path, report: dict, record: RunRecord, curve: Curve) -> None:
    """Write the chart to `path`: .png or .svg, or .html for the whole report as a page."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(f"{path}: a chart is written as {', '.join(PLOT_SUFFIXES)}")
    if suffix == ".html":
        from genesis.engine.reportpage import report_page  # noqa: PLC0415

        svg = chart_bytes(report, record, curve, "svg").decode("utf-8")
        path.write_text(report_page(report, record, svg), encoding="utf-8")
    else:
        path.write_bytes(chart_bytes(report, record, curve, suffix[1:]))
