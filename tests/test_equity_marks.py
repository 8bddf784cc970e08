"""The equity curve a run keeps (genesis/engine/equitymarks.py): one mark a minute, the
minute returns' statistics summed as they come, and a bounded size."""
from __future__ import annotations

import math
import random

import pytest

from genesis.engine.equitymarks import EquityMarks


def two_pass(values: list[float]) -> tuple[int, float, float]:
    returns = [b / a - 1 for a, b in zip(values, values[1:]) if a > 0]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return len(returns), mean, std


def test_one_mark_a_minute_and_the_return_statistics_match_the_two_pass_formula():
    rng = random.Random(7)
    marks, values, equity = EquityMarks(), [], 1_000.0
    for minute in range(5_000):
        for _ in range(rng.randint(1, 3)):   # several updates a minute: the first one counts
            equity *= 1 + rng.gauss(0, 0.001)
            marks.add(minute, equity)
            if len(values) == minute:
                values.append(equity)
    assert len(marks) == 5_000 and list(marks)[10] == (10, values[10])
    count, mean, std = marks.return_stats()
    want = two_pass(values)
    assert count == want[0]
    assert mean == pytest.approx(want[1], rel=1e-9) and std == pytest.approx(want[2], rel=1e-9)
    assert marks.tail(3) == [(4_997, values[4_997]), (4_998, values[4_998]), (4_999, values[4_999])]


def test_a_long_run_keeps_at_most_max_marks_and_the_same_statistics():
    bounded, full = EquityMarks(max_marks=999), EquityMarks(max_marks=10**9)
    equity = 500.0
    for minute in range(10_000):
        equity += math.sin(minute / 50.0)
        bounded.add(minute, equity)
        full.add(minute, equity)
        assert len(bounded) <= 999
    assert len(full) == 10_000
    assert bounded.return_stats() == full.return_stats()
    kept = list(bounded)
    assert kept[-1] == (9_999, equity)                              # the latest mark always stays
    assert all(a[0] < b[0] for a, b in zip(kept, kept[1:]))


def test_a_mark_after_a_zero_equity_is_not_a_return():
    marks = EquityMarks()
    for minute, equity in enumerate([100.0, 0.0, 50.0, 55.0]):
        marks.add(minute, equity)
    count, mean, _ = marks.return_stats()
    assert count == 2 and mean == pytest.approx(((0.0 / 100 - 1) + (55 / 50 - 1)) / 2)
