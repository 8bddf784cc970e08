"""Choosing the trials: every combination (grid) or Optuna's TPE sampler, and the
objective each trial is ranked by."""
from __future__ import annotations

import itertools

from genesis.sweep.sweepfile import Sweep
from genesis.sweep.trials import OK, TrialResult


def objective(result: TrialResult, sweep: Sweep):
    """The trial's figure the sweep ranks by; None when it has none (invalid, failed, no Sharpe)."""
    return result.metrics.get(sweep.metric) if result.status == OK else None


def best_trial(results: list[TrialResult], sweep: Sweep) -> TrialResult | None:
    """The trial with the best objective; on a tie, the one numbered first."""
    ranked = [r for r in results if objective(r, sweep) is not None]
    if not ranked:
        return None
    sign = -1 if sweep.direction == "maximize" else 1
    return min(ranked, key=lambda r: (sign * objective(r, sweep), r.number))


def grid_points(sweep: Sweep) -> list[dict]:
    """Every combination of the parameters' values, the first parameter varying slowest."""
    keys = [p.key for p in sweep.parameters]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(p.grid() for p in sweep.parameters))]


def run_grid(sweep: Sweep, make_spec, pool, on_result=None) -> list[TrialResult]:
    """Every grid point as a trial; `make_spec(number, values)` builds each TrialSpec."""
    specs = [make_spec(i, values) for i, values in enumerate(grid_points(sweep))]
    return pool.run(specs, on_result)


def _suggest(trial, param):
    if param.values is not None:
        return trial.suggest_categorical(param.key, list(param.values))
    whole = param.step is not None and all(float(v).is_integer() for v in (param.low, param.high, param.step))
    if whole:
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step))
    value = trial.suggest_float(param.key, float(param.low), float(param.high), step=param.step)
    return float(f"{value:.10g}")


def run_optuna(sweep: Sweep, make_spec, pool, on_result=None) -> list[TrialResult]:
    """`n_trials` trials drawn by Optuna (TPE, seeded), `batch` at a time: the same
    seed draws the same trials whatever the number of workers."""
    import optuna  # noqa: PLC0415 - only a sweep that asks for it pays for the import
    from optuna.trial import TrialState  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=sweep.direction, sampler=optuna.samplers.TPESampler(seed=sweep.seed))
    results: list[TrialResult] = []
    while len(results) < sweep.n_trials:
        asked = [study.ask() for _ in range(min(sweep.batch, sweep.n_trials - len(results)))]
        specs = [make_spec(t.number, {p.key: _suggest(t, p) for p in sweep.parameters}) for t in asked]
        for trial, result in zip(asked, pool.run(specs, on_result)):
            value = objective(result, sweep)
            if value is None:
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
            results.append(result)
    return results
