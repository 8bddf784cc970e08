"""A whole sweep: the base configuration, the search (on the fit period when walking
forward), the best trial, and its replay on the test period."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from genesis.config.snapshot import snapshot
from genesis.sweep.keys import apply_values
from genesis.sweep.search import best_trial, objective, run_grid, run_optuna
from genesis.sweep.sweepfile import Sweep
from genesis.sweep.trials import TrialResult, TrialSpec, event_span, run_trial

STARTING_EQUITY_KEY = "genesis.yaml: paper.starting_equity_usd"


@dataclass
class SweepOutcome:
    """Every trial, the best one, and the walk-forward figures when asked for."""

    results: list
    best: TrialResult | None
    walk_forward: dict | None = None
    meta: dict = field(default_factory=dict)


def base_files(sweep: Sweep, config_root: Path) -> dict:
    """{file: text} every trial starts from: the configuration with the sweep's starting
    equity; raises ConfigKeyError when a parameter names no number in it."""
    files = snapshot(config_root)
    if sweep.starting_equity_usd is not None:
        files = apply_values(files, {STARTING_EQUITY_KEY: sweep.starting_equity_usd})
    for param in sweep.parameters:   # each key must name a number before anything runs
        apply_values(files, {param.key: param.grid()[0] if param.values is not None or param.step else param.low})
    return files


def split_windows(sweep: Sweep) -> tuple[tuple | None, tuple | None, dict | None]:
    """(fit window, test window, their description) by event time; (None, None, None) without walk-forward."""
    if sweep.fit_pct is None:
        return None, None, None
    first, last = event_span(sweep.data)
    split = first + int((last - first) * sweep.fit_pct / 100)
    return (None, split), (split, None), {"first_event_ms": first, "split_ms": split, "last_event_ms": last,
                                          "fit_pct": sweep.fit_pct}


def run_sweep(sweep: Sweep, config_root: Path, pool, on_result=None) -> SweepOutcome:
    """Run the search with `pool` (workers.LocalPool or another with the same `run`)."""
    files = base_files(sweep, config_root)
    fit, test, split = split_windows(sweep)
    data = tuple(str(p) for p in sweep.data)

    def make_spec(number: int, values: dict, window=fit, phase: str = "search") -> TrialSpec:
        return TrialSpec(number, values, files, data, sweep.tier, window, phase)

    search = run_optuna if sweep.method == "optuna" else run_grid
    results = search(sweep, make_spec, pool, on_result)
    best = best_trial(results, sweep)
    walk = None
    if split is not None:
        walk = {**split, "in_sample": objective(best, sweep) if best else None, "out_of_sample": None,
                "test_trial": None}
        if best is not None:
            tested = run_trial(make_spec(best.number, best.values, test, "test"))
            walk["out_of_sample"] = objective(tested, sweep)
            walk["test_trial"] = tested
    meta = {"sweep": str(sweep.source), "config": str(config_root), "metric": sweep.metric,
            "direction": sweep.direction, "method": sweep.method, "workers": getattr(pool, "workers", None)}
    return SweepOutcome(results, best, walk, meta)
