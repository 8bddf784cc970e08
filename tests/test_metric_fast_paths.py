"""The specialised metric classes (mean, std and zscore windows; the sample store of
percentile and baseline) give exactly the values of the general definitions."""
from __future__ import annotations

import math
from bisect import bisect_left

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.engine.metrics import MeanMetric, StdMetric, WindowMetric, ZscoreMetric, build_metric

STEPS = st.lists(st.tuples(st.integers(min_value=0, max_value=90_000),
                           st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)), min_size=1, max_size=60)


def _spec(primitive: str, **extra) -> dict:
    return {primitive: "candle", "field": "x", "default": 0.0, **extra}


@settings(max_examples=150, deadline=None)
@given(STEPS, st.sampled_from(["mean", "std", "zscore"]), st.sampled_from([{"window": "60s"}, {"samples": 5}]))
def test_specialised_windows_equal_the_general_definition(steps, primitive, size):
    fast = build_metric("x", primitive, _spec(primitive, **size), {})
    general = WindowMetric("x", _spec(primitive, **size), {}, primitive)
    assert type(fast) is not WindowMetric
    now = 0
    for gap, value in steps:
        now += gap
        for metric in (fast, general):
            metric.expire("", now)
            metric.on_event(now, "", {}, {"x": value})
        assert fast.value("", now) == general.value("", now)
        assert fast.next_due("") == general.next_due("")
    later = now + 120_000
    for metric in (fast, general):
        metric.expire("", later)
    assert fast.value("", later) == general.value("", later)


def test_each_specialised_window_is_its_primitive():
    values = [3.0, 5.0, 10.0]
    metrics = {p: build_metric("x", p, _spec(p, window="1h"), {}) for p in ("mean", "std", "zscore")}
    for ts, value in enumerate(values):
        for metric in metrics.values():
            metric.on_event(ts, "BTCUSDT", {}, {"x": value})
    mean = sum(values) / 3
    std = math.sqrt(sum(v * v for v in values) / 3 - mean * mean)
    assert isinstance(metrics["mean"], MeanMetric) and metrics["mean"].value("BTCUSDT", 3) == mean
    assert isinstance(metrics["std"], StdMetric) and math.isclose(metrics["std"].value("BTCUSDT", 3), std)
    assert isinstance(metrics["zscore"], ZscoreMetric)
    assert math.isclose(metrics["zscore"].value("BTCUSDT", 3), (10.0 - mean) / std)
    assert metrics["mean"].value("ETHUSDT", 3) == 0.0   # a symbol with no data shows the default


def test_a_floored_sum_and_other_windows_keep_the_general_class():
    assert type(build_metric("x", "sum", _spec("sum", floor=0), {})) is WindowMetric
    assert type(build_metric("x", "max", _spec("max", window="1m"), {})) is WindowMetric


def test_windows_of_every_primitive_are_one_family_for_edits():
    """An edit from mean to std keeps the window's history (MetricSet.adopt)."""
    mean = build_metric("x", "mean", _spec("mean", window="1h"), {})
    std = build_metric("x", "std", _spec("std", window="1h"), {})
    count = build_metric("x", "count", _spec("count", window="1h"), {})
    assert mean.family() is std.family() is count.family()
    for ts, value in enumerate([1.0, 2.0, 4.0]):
        mean.on_event(ts, "", {}, {"x": value})
    std.adopt(mean, 3)
    assert math.isclose(std.value("", 3), math.sqrt(14 / 9))   # the std of 1, 2 and 4


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=80))
def test_percentile_over_its_window_matches_a_direct_count(samples):
    spec = {"percentile": "src", "window": "10m", "sample_every": "1m", "default": 50.0, "calibration": "0s",
            "stat": "median", "k": 1.5}
    metric = build_metric("rank", "percentile", spec, {})
    seen: list[tuple[int, float]] = []
    for i, value in enumerate(samples):
        now = i * 60_000
        metric.take("BTCUSDT", now, value)
        seen.append((now, value))
        window = sorted(v for ts, v in seen if ts > now - 600_000)
        below = bisect_left(window, value - abs(value) * 1e-9 - 1e-12)
        assert metric.value("BTCUSDT", now) == 100.0 * below / len(window)
        assert metric.next_due("BTCUSDT") == now + 60_000


FUSED_SPECS = [
    *[{p: "candle", "field": "x", "default": 0.0, **size} for p in ("mean", "std", "zscore")
      for size in ({"window": "60s"}, {"samples": 5}, {"window": "60s", "samples": 5})],
    *[{p: "candle", "field": "x", "default": 0.0, "window": "60s"} for p in ("count", "sum", "min", "max", "rate")],
    {"sum": "candle", "field": "x", "default": 0.0, "floor": 0},
    {"last": "candle", "field": "x", "default": 7.0},
    {"since": "candle", "default": 1e9},
    {"distinct": "candle", "field": "x", "default": 0.0, "window": "60s"},
]


@settings(max_examples=300, deadline=None)
@given(STEPS, st.sampled_from(FUSED_SPECS))
def test_fused_update_and_timer_equal_the_three_steps(steps, spec):
    """`update` (an event) and `on_due` (a timer) return exactly the (value, next due)
    that `on_event` or `expire`, then `value` and `next_due` give; None when the event
    changed nothing."""
    primitive = next(iter(spec))
    fused, stepwise = (build_metric("x", primitive, dict(spec), {}) for _ in range(2))
    now = 0
    for gap, value in steps:
        now += gap
        stepwise.expire("BTCUSDT", now)
        assert fused.on_due("BTCUSDT", now, now, {}) == (stepwise.value("BTCUSDT", now),
                                                          stepwise.next_due("BTCUSDT"))
        fields = {"x": round(value, 1)}
        touched = stepwise.on_event(now, "BTCUSDT", {}, fields)
        expected = (stepwise.value("BTCUSDT", now), stepwise.next_due("BTCUSDT")) if touched else None
        assert fused.update(now, "BTCUSDT", {}, fields) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=40))
def test_a_sampler_timer_samples_its_source_metric_or_what_m_shows(samples):
    """A percentile's timer takes its sample, at its due time even when the clock has
    moved past it, from the metric it names (per symbol) or, for a name that is not a
    declared metric, from `m`; it returns the new rank and the next sample time."""
    spec = {"percentile": "src", "window": "10m", "sample_every": "1m", "default": 50.0, "calibration": "0s",
            "stat": "median", "k": 1.5}
    from_metric, from_m, direct = (build_metric("rank", "percentile", dict(spec), {}) for _ in range(3))
    source = build_metric("src", "last", {"last": "candle", "field": "x", "default": 0.0, "by": "symbol"}, {})
    from_metric.source_metric = source
    for i, value in enumerate(samples):
        now = i * 60_000
        source.on_event(now, "BTCUSDT", {}, {"x": value})
        source.on_event(now, "ETHUSDT", {}, {"x": -value})   # another symbol's value is not sampled
        direct.take("BTCUSDT", now, value)
        expected = (direct.value("BTCUSDT", now), now + 60_000)
        assert from_metric.on_due("BTCUSDT", now, now + 30_000, {"src": 999.0}) == expected
        assert from_m.on_due("BTCUSDT", now, now + 30_000, {"src": value}) == expected
