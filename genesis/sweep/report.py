"""A sweep's results: a table for the terminal, a JSON or CSV file, and the best
trial's values as a YAML diff of the configuration."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import yaml

from genesis.sweep.keys import diff_document
from genesis.sweep.sweepfile import Sweep
from genesis.sweep.sweeprun import SweepOutcome

FIGURES = ("pnl_usd", "sharpe", "max_drawdown_usd", "max_drawdown_pct", "halts", "trades")
TABLE_ROWS = 30   # trials shown in the terminal, best first; the file holds all


def _ranked(outcome: SweepOutcome, sweep: Sweep) -> list:
    """Valid trials best first, then the rest by number."""
    metric, sign = sweep.metric, (-1 if sweep.direction == "maximize" else 1)
    scored = [r for r in outcome.results if r.metrics.get(metric) is not None]
    rest = [r for r in outcome.results if r.metrics.get(metric) is None]
    return sorted(scored, key=lambda r: (sign * r.metrics[metric], r.number)) + sorted(rest, key=lambda r: r.number)


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def format_table(outcome: SweepOutcome, sweep: Sweep) -> str:
    """The trials as a plain-text table, best first, then the walk-forward line."""
    keys = [p.key for p in sweep.parameters]
    head = ["#", *keys, *FIGURES, "status"]
    rows = []
    for r in _ranked(outcome, sweep)[:TABLE_ROWS]:
        status = r.status if not r.reason else f"{r.status}: {r.reason}"
        rows.append([str(r.number), *(_fmt(r.values.get(k)) for k in keys),
                     *(_fmt(r.metrics.get(f)) for f in FIGURES), status])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:-1], widths)) + "  " + head[-1]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    counts = {s: sum(r.status == s for r in outcome.results) for s in ("ok", "invalid", "failed")}
    lines.append(f"{len(outcome.results)} trials: {counts['ok']} ok, {counts['invalid']} invalid, "
                 f"{counts['failed']} failed; ranked by {sweep.metric} ({sweep.direction})")
    if len(outcome.results) > TABLE_ROWS:
        lines.append(f"(the best {TABLE_ROWS} shown; the results file holds every trial)")
    if outcome.best is None:
        lines.append("no trial gave a figure to rank by")
    else:
        lines.append(f"best: trial {outcome.best.number}, {sweep.metric} {_fmt(outcome.best.metrics[sweep.metric])}")
    walk = outcome.walk_forward
    if walk is not None:
        lines.append(f"walk-forward ({walk['fit_pct']:g}% fit): {sweep.metric} in sample {_fmt(walk['in_sample'])}, "
                     f"out of sample {_fmt(walk['out_of_sample'])}")
    return "\n".join(lines)


def outcome_json(outcome: SweepOutcome) -> dict:
    """Everything about the sweep as plain data."""
    walk = outcome.walk_forward
    if walk is not None:
        walk = {**walk, "test_trial": asdict(walk["test_trial"]) if walk.get("test_trial") else None}
    return {**outcome.meta, "trials": [asdict(r) for r in outcome.results],
            "best": asdict(outcome.best) if outcome.best else None, "walk_forward": walk}


def write_results(path: Path, outcome: SweepOutcome, sweep: Sweep) -> None:
    """The results file: JSON (everything), or CSV (one row per trial) when `path` ends in .csv."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path.write_text(json.dumps(outcome_json(outcome), indent=2) + "\n", encoding="utf-8")
        return
    keys = [p.key for p in sweep.parameters]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", *keys, *FIGURES, "status", "reason", "seconds"])
        for r in outcome.results:
            writer.writerow([r.number, *(r.values.get(k) for k in keys), *(r.metrics.get(k) for k in FIGURES),
                             r.status, r.reason, r.seconds])


def write_diff(path: Path, outcome: SweepOutcome, sweep: Sweep) -> bool:
    """The best trial's values as a YAML diff ({file: {dotted.path: value}}); False when there is no best."""
    best = outcome.best
    if best is None:
        return False
    header = (f"# genesis sweep {sweep.source.name}: trial {best.number} of {len(outcome.results)}, best by "
              f"{sweep.metric} ({sweep.direction}) = {_fmt(best.metrics[sweep.metric])}\n"
              f"# apply: genesis sweep --apply {Path(path).name} --config DIR\n")
    body = yaml.safe_dump(diff_document(best.values), sort_keys=False, default_flow_style=False)
    Path(path).write_text(header + body, encoding="utf-8")
    return True
