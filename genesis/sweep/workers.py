"""Where trials run: `LocalPool` runs them on this machine's cores (a process pool).
A pool has one method, `run(specs) -> results in the same order`, so another kind
(a Ray cluster) can stand in for it without the search knowing."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from genesis.sweep.trials import TrialResult, TrialSpec, run_trial


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


class LocalPool:
    """Trials on `workers` local processes; with one worker, in this process."""

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalPool:
        if self.workers > 1:
            # fork: the workers start with the engine already imported
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self

    def __exit__(self, *_exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def run(self, specs: list[TrialSpec], on_result=None) -> list[TrialResult]:
        """Run the trials; `on_result(result)` is called as each finishes (in order)."""
        results = []
        mapped = map(run_trial, specs) if self._pool is None else self._pool.map(run_trial, specs)
        for result in mapped:
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
