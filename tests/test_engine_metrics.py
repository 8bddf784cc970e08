"""The incremental metric primitives, through the real MetricSet compiled from a
configuration folder: the shipped configuration plus a small rule book of metrics over
event kinds nothing else reads (journal_entry, book_ticker). Every value is compared
with a straightforward reference computation done here in the test."""
from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest

from genesis.config.checks import check_config
from genesis.config.ruleset import compile_ruleset
from genesis.engine.events import Event
from genesis.engine.metricset import MetricSet
from genesis.expr.compiler import CompiledExpr

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
S, M = 1000, 60_000             # one second, one minute (ms)

BOOK = """\
description: metric primitives under test (tests/test_engine_metrics.py)
metrics:
  w_count: {count: journal_entry, window: 10m}
  w_count_big: {count: journal_entry, where: "words >= 10", window: 10m}
  w_sum: {sum: journal_entry, field: words, window: 10m}
  w_mean: {mean: journal_entry, field: words, window: 10m}
  w_std: {std: journal_entry, field: words, window: 10m}
  w_min: {min: journal_entry, field: words, window: 10m}
  w_max: {max: journal_entry, field: words, window: 10m}
  w_mean_5: {mean: journal_entry, field: words, samples: 5}
  w_sum_3: {sum: journal_entry, field: words, samples: 3}
  w_min_3: {min: journal_entry, field: words, samples: 3}
  w_max_3: {max: journal_entry, field: words, samples: 3}
  w_last: {last: journal_entry, field: words, default: -1}
  w_total: {count: journal_entry, reset_on: operator_connect}
  w_rate: {rate: journal_entry, window: 1m}
  w_ewma: {ewma: journal_entry, field: words, halflife: 1m}
  w_z: {zscore: journal_entry, field: words, window: 10m}
  w_since: {since: journal_entry, default: 123}
  w_streak: {streak: journal_entry, while: "words >= 10"}
  w_balance: {sum: journal_entry, value: "words - 10", floor: 0}
  w_double: {expr: "w_sum * 2"}
  w_quad: {expr: "w_double * 2"}
  d_sum: {expr: "w_sum + 0.5"}
  d_count: {expr: "w_count + 0.25"}
  d_count_twice: {expr: "d_count * 2"}
  d_both: {expr: "d_sum + d_count_twice"}
  w_median: {baseline: w_last, stat: median, window: 1d, sample_on: journal_entry, calibration: 10m}
  w_iqr: {baseline: w_last, stat: iqr, window: 1d, sample_on: journal_entry, calibration: 10m}
  w_lower: {baseline: w_last, stat: lower, k: 1.5, window: 1d, sample_on: journal_entry, calibration: 10m, default: -5}
  w_upper: {baseline: w_last, stat: upper, k: 2, window: 1d, sample_on: journal_entry, calibration: 10m, default: 99}
  w_rank: {percentile: w_last, window: 1d, sample_on: journal_entry}
  w_minutely: {baseline: w_last, stat: median, window: 1d, sample_every: 1m}
  mid_last: {last: book_ticker, field: mid, by: symbol, default: -1}
  ticks_5m: {count: book_ticker, window: 5m, by: symbol}
  spread_mean_5m: {mean: book_ticker, field: spread_bps, window: 5m, by: symbol}
  symbols_5m: {distinct: book_ticker, field: symbol, window: 5m}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics_config")
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "rules", root / "rules")
    shutil.copytree(ROOT / "tiers", root / "tiers")
    (root / "rules" / "test_metrics.yaml").write_text(BOOK, encoding="utf-8")
    result = check_config(root)
    assert result.ok, "\n".join(f"{p.file}:{p.line}:{p.col}: {p.message}" for p in result.problems)
    return result


@pytest.fixture
def ms(config) -> MetricSet:
    return MetricSet(compile_ruleset(config, "sniper"), config.flags)


def words(ts: int, n: float) -> Event:
    return Event("journal_entry", ts, "", {"words": n})


def ticker(ts: int, symbol: str, mid: float, spread_bps: float = 1.0) -> Event:
    half = mid * spread_bps / 2e4
    return Event("book_ticker", ts, symbol, {"bid": mid - half, "bid_qty": 1.0, "ask": mid + half, "ask_qty": 1.0,
                                             "mid": mid, "spread_bps": spread_bps})


def feed(ms: MetricSet, event: Event) -> set:
    """One event through the metric set, derived metrics included; the changed names."""
    changed: set = set()
    ms.on_event(event, changed)
    ms.recompute_derived(changed)
    return changed


def advance(ms: MetricSet, now: int) -> set:
    """Move the clock with no event."""
    changed: set = set()
    ms.advance(now, changed)
    ms.recompute_derived(changed)
    return changed


def in_window(history: list, now: int, window_ms: int) -> list:
    """Reference: values of events inside (now - window, now]."""
    return [v for ts, v in history if now - window_ms < ts <= now]


def window_reference(values: list) -> dict:
    if not values:
        return {"w_count": 0.0, "w_sum": 0.0, "w_mean": 0.0, "w_std": 0.0, "w_min": 0.0, "w_max": 0.0}
    return {"w_count": float(len(values)), "w_sum": float(sum(values)), "w_mean": statistics.fmean(values),
            "w_std": statistics.pstdev(values), "w_min": float(min(values)), "w_max": float(max(values))}


# ---------------------------------------------------------------------------- windows
HISTORY = [(T0, 5), (T0 + 2 * M, 30), (T0 + 4 * M, 20), (T0 + 6 * M, 25)]
LATER = [T0 + 7 * M, T0 + 10 * M, T0 + 11 * M, T0 + 12 * M, T0 + 14 * M, T0 + 16 * M, T0 + 30 * M]


def _check_window(ms, now, names):
    ref = window_reference(in_window(HISTORY, now, 10 * M))
    for name in names:
        assert ms.m[name] == pytest.approx(ref[name], abs=1e-9), (name, (now - T0) / M, ref)


@pytest.mark.parametrize("names", [("w_count", "w_sum", "w_mean", "w_std")])
def test_count_sum_mean_std_over_a_window_fall_as_time_passes(ms, names):
    for ts, n in HISTORY:
        feed(ms, words(ts, n))
        _check_window(ms, ts, names)
    for now in LATER:   # no events: the windows expire by time alone
        advance(ms, now)
        _check_window(ms, now, names)
    assert ms.m["w_count"] == 0 and ms.m["w_sum"] == 0


def test_count_with_where_counts_only_matching_events(ms):
    for ts, n in HISTORY:
        feed(ms, words(ts, n))
    assert ms.m["w_count_big"] == 3
    advance(ms, T0 + 12 * M + 1)   # 5 and 30 have left the window
    assert ms.m["w_count_big"] == 2


def test_min_and_max_over_a_window_fall_as_time_passes(ms):
    for ts, n in HISTORY:
        feed(ms, words(ts, n))
        _check_window(ms, ts, ("w_min", "w_max"))
    for now in LATER:
        advance(ms, now)
        _check_window(ms, now, ("w_min", "w_max"))


def test_min_and_max_while_nothing_has_left_the_window(ms):
    seen = []
    for ts, n in HISTORY:
        feed(ms, words(ts, n))
        seen.append(n)
        assert ms.m["w_min"] == min(seen)
        assert ms.m["w_max"] == max(seen)


def test_samples_n_keeps_the_last_n_values(ms):
    values = [4, 8, 15, 16, 23, 42, 7]
    for i, n in enumerate(values):
        feed(ms, words(T0 + i * S, n))
        assert ms.m["w_mean_5"] == pytest.approx(statistics.fmean(values[max(0, i - 4):i + 1]))
        assert ms.m["w_sum_3"] == pytest.approx(sum(values[max(0, i - 2):i + 1]))
    advance(ms, T0 + 2 * 24 * 60 * M)   # a sample count never expires with time
    assert ms.m["w_mean_5"] == pytest.approx(statistics.fmean(values[-5:]))


def test_min_and_max_over_the_last_n_samples(ms):
    values = [30, 10, 5, 20, 25, 1, 40]
    for i, n in enumerate(values):
        feed(ms, words(T0 + i * S, n))
        last3 = values[max(0, i - 2):i + 1]
        assert (ms.m["w_min_3"], ms.m["w_max_3"]) == (min(last3), max(last3)), (i, last3)


# ---------------------------------------------------------------------------- per symbol
def test_by_symbol_keeps_separate_values_and_m_shows_the_current_symbol(ms):
    feed(ms, ticker(T0, "BTCUSDT", 60_000.0, 2.0))
    assert ms.m["mid_last"] == 60_000.0 and ms.m["ticks_5m"] == 1
    feed(ms, ticker(T0 + S, "ETHUSDT", 3_000.0, 4.0))
    assert ms.m["mid_last"] == 3_000.0 and ms.m["ticks_5m"] == 1 and ms.m["spread_mean_5m"] == 4.0
    feed(ms, ticker(T0 + 2 * S, "BTCUSDT", 60_010.0, 6.0))
    assert ms.m["mid_last"] == 60_010.0
    assert ms.m["ticks_5m"] == 2
    assert ms.m["spread_mean_5m"] == pytest.approx(4.0)   # (2 + 6) / 2, BTC only
    changed = feed(ms, ticker(T0 + 3 * S, "ETHUSDT", 3_000.0, 4.0))
    # ETH's own count moved; its mid did not (3,000 both times): a switch of view from
    # BTC is not a change, ETH's rules have seen ETH's mid already
    assert "ticks_5m" in changed and "mid_last" not in changed
    assert ms.m["mid_last"] == 3_000.0 and ms.m["ticks_5m"] == 2 and ms.m["spread_mean_5m"] == 4.0
    per = ms.by_name["ticks_5m"]
    assert per.value("BTCUSDT", T0 + 3 * S) == 2 and per.value("ETHUSDT", T0 + 3 * S) == 2
    assert ms.by_name["mid_last"].value("BTCUSDT", T0 + 3 * S) == 60_010.0
    # an event without a symbol leaves the view on the last symbol
    feed(ms, words(T0 + 4 * S, 1))
    assert ms.m["mid_last"] == 3_000.0


def test_by_symbol_window_expires_per_symbol(ms):
    feed(ms, ticker(T0, "BTCUSDT", 60_000.0))
    feed(ms, ticker(T0 + 3 * M, "ETHUSDT", 3_000.0))
    advance(ms, T0 + 5 * M)            # BTC's tick leaves its window; ETH's stays
    per = ms.by_name["ticks_5m"]
    assert per.value("BTCUSDT", T0 + 5 * M) == 0
    assert per.value("ETHUSDT", T0 + 5 * M) == 1
    assert ms.m["ticks_5m"] == 1       # m shows ETH, the symbol in view
    feed(ms, ticker(T0 + 5 * M + S, "BTCUSDT", 60_000.0))
    assert ms.m["ticks_5m"] == 1


# ---------------------------------------------------------------------------- reset, last, rate
def test_reset_on_empties_the_metric(ms):
    for i in range(4):
        feed(ms, words(T0 + i * S, 10))
    assert ms.m["w_total"] == 4
    changed = feed(ms, Event("operator_connect", T0 + 5 * S))
    assert ms.m["w_total"] == 0 and "w_total" in changed
    feed(ms, words(T0 + 6 * S, 10))
    assert ms.m["w_total"] == 1
    assert ms.m["w_count"] == 5        # a metric without reset_on is untouched


def test_last_shows_its_default_before_the_first_event(ms):
    assert ms.m["w_last"] == -1
    assert ms.m["mid_last"] == -1
    feed(ms, words(T0, 17))
    assert ms.m["w_last"] == 17
    feed(ms, words(T0 + S, 0))
    assert ms.m["w_last"] == 0


def test_rate_is_events_per_second_over_the_window(ms):
    for ts in (T0, T0 + 10 * S, T0 + 20 * S):
        feed(ms, words(ts, 1))
    assert ms.m["w_rate"] == pytest.approx(3 / 60)
    advance(ms, T0 + 60 * S)           # the first event left the 1-minute window
    assert ms.m["w_rate"] == pytest.approx(2 / 60)
    advance(ms, T0 + 80 * S)
    assert ms.m["w_rate"] == 0


def test_ewma_with_half_life(ms, config):
    halflife = 60_000
    points = [(T0, 100.0), (T0 + 60 * S, 0.0), (T0 + 90 * S, 50.0), (T0 + 90 * S, 80.0), (T0 + 10 * M, 10.0)]
    ref = None
    last_ts = None
    for ts, x in points:
        feed(ms, words(ts, x))
        if ref is None:
            ref = x
        else:
            decay = 0.5 ** ((ts - last_ts) / halflife)
            ref = ref * decay + x * (1 - decay)
        last_ts = ts
        assert ms.m["w_ewma"] == pytest.approx(ref)
    assert ms.m["w_ewma"] != 10.0      # after 8.5 half-lives the history still weighs a little
    # one half-life after a single value: half way
    fresh = MetricSet(compile_ruleset(config, "sniper"), config.flags)
    feed(fresh, words(T0, 0.0))
    feed(fresh, words(T0 + halflife, 100.0))
    assert fresh.m["w_ewma"] == pytest.approx(50.0)


def test_zscore_of_the_latest_value(ms):
    values = []
    for i, n in enumerate([10, 20, 30, 40, 12]):
        feed(ms, words(T0 + i * M, n))
        values.append(n)
        std = statistics.pstdev(values)
        expected = 0.0 if std == 0 else (n - statistics.fmean(values)) / std
        assert ms.m["w_z"] == pytest.approx(expected, abs=1e-9)
    assert ms.m["w_z"] != 0


def test_since_grows_with_time_and_restarts_on_each_event(ms):
    assert ms.m["w_since"] == 123      # default before the first event
    feed(ms, words(T0, 1))
    assert ms.m["w_since"] == 0
    for seconds in (1, 5, 65, 3600):
        changed = advance(ms, T0 + seconds * S)
        assert ms.m["w_since"] == pytest.approx(seconds)
        assert "w_since" in changed
    feed(ms, words(T0 + 3601 * S, 1))
    assert ms.m["w_since"] == 0
    advance(ms, T0 + 3603 * S)
    assert ms.m["w_since"] == pytest.approx(2)


def test_streak_counts_consecutive_matches_and_resets(ms):
    expected = []
    run = 0
    for i, n in enumerate([12, 15, 20, 5, 11, 3, 3, 40]):
        feed(ms, words(T0 + i * S, n))
        run = run + 1 if n >= 10 else 0
        expected.append(run)
        assert ms.m["w_streak"] == run
    assert expected == [1, 2, 3, 0, 1, 0, 0, 1]


def test_distinct_values_over_a_window(ms):
    feed(ms, ticker(T0, "BTCUSDT", 60_000.0))
    assert ms.m["symbols_5m"] == 1
    feed(ms, ticker(T0 + M, "ETHUSDT", 3_000.0))
    assert ms.m["symbols_5m"] == 2
    feed(ms, ticker(T0 + 2 * M, "BTCUSDT", 60_000.0))
    assert ms.m["symbols_5m"] == 2
    advance(ms, T0 + 6 * M + 1)        # ETH (T0+1m) and the first BTC have left; BTC at T0+2m stays
    assert ms.m["symbols_5m"] == 1
    advance(ms, T0 + 7 * M)
    assert ms.m["symbols_5m"] == 0


def test_sum_with_floor_is_a_clamped_running_total(ms):
    total = 0.0
    for i, n in enumerate([15, 3, 14, 30, 0, 0, 0, 2]):
        feed(ms, words(T0 + i * M, n))
        total = max(0.0, total + (n - 10))
        assert ms.m["w_balance"] == pytest.approx(total), i
    assert total == 0.0
    advance(ms, T0 + 2 * 24 * 60 * M)     # a running total has no window
    assert ms.m["w_balance"] == 0.0


# ---------------------------------------------------------------------------- sampled statistics
def _quartiles(values):
    q1, med, q3 = statistics.quantiles(sorted(values), n=4, method="inclusive")
    return q1, med, q3


def test_baseline_during_and_after_calibration(ms):
    values = [12, 7, 30, 18, 18, 3, 25, 40, 9, 14, 22, 16, 11, 35, 8]
    for i, n in enumerate(values):
        ts = T0 + i * M                 # one sample per event (sample_on: journal_entry)
        feed(ms, words(ts, n))
        if ts - T0 < 10 * M:            # calibrating: the defaults
            assert (ms.m["w_median"], ms.m["w_iqr"], ms.m["w_lower"], ms.m["w_upper"]) == (0, 0, -5, 99), i
            continue
        q1, med, q3 = _quartiles(values[:i + 1])
        assert ms.m["w_median"] == pytest.approx(statistics.median(values[:i + 1]))
        assert ms.m["w_median"] == pytest.approx(med)
        assert ms.m["w_iqr"] == pytest.approx(q3 - q1)
        assert ms.m["w_lower"] == pytest.approx(med - 1.5 * (q3 - q1))
        assert ms.m["w_upper"] == pytest.approx(med + 2 * (q3 - q1))


def test_baseline_sampled_every_interval_in_event_time(ms):
    feed(ms, words(T0, 10))            # samplers start: first sample due now, then every minute
    advance(ms, T0 + 30 * S)           # sample @T0: 10
    assert ms.m["w_minutely"] == 10
    feed(ms, words(T0 + 90 * S, 20))   # sample @T0+1m (taken before this event): 10
    assert ms.m["w_minutely"] == 10
    advance(ms, T0 + 3 * M)            # samples @T0+2m and @T0+3m: 20, 20
    assert ms.m["w_minutely"] == pytest.approx(statistics.median([10, 10, 20, 20]))
    advance(ms, T0 + 5 * M)            # two more samples of 20
    assert ms.m["w_minutely"] == 20


def test_percentile_rank_among_samples(ms):
    samples = []
    for i, n in enumerate([50, 10, 30, 30, 70, 20, 30]):
        feed(ms, words(T0 + i * M, n))
        samples.append(n)
        expected = 100.0 * sum(1 for v in samples if v < n) / len(samples)
        assert ms.m["w_rank"] == pytest.approx(expected), (i, samples)


# ---------------------------------------------------------------------------- derived and changes
def _counting(ms: MetricSet, name: str) -> list:
    """Count evaluations of one derived metric (the real compiled function, wrapped)."""
    calls = []
    out = []
    for n, expr in ms.derived:
        if n == name:
            fn = expr.fn

            def counted(m, e, o, fn=fn):
                calls.append(1)
                return fn(m, e, o)
            expr = CompiledExpr(expr.checked, expr.python, counted)
        out.append((n, expr))
    ms.derived = out
    return calls


def test_derived_expr_recomputed_only_when_inputs_change(ms):
    calls = _counting(ms, "w_double")
    feed(ms, words(T0, 7))
    assert (ms.m["w_double"], ms.m["w_quad"]) == (14, 28)
    assert len(calls) == 1
    feed(ms, ticker(T0 + S, "BTCUSDT", 60_000.0))      # touches nothing w_double reads
    feed(ms, Event("operator_connect", T0 + 2 * S))
    advance(ms, T0 + 3 * S)
    assert len(calls) == 1
    changed = feed(ms, words(T0 + 4 * S, 3))
    assert len(calls) == 2 and {"w_sum", "w_double", "w_quad"} <= changed
    assert (ms.m["w_double"], ms.m["w_quad"]) == (20, 40)
    feed(ms, words(T0 + 5 * S, 0))                     # w_sum unchanged (adds 0): no recompute
    assert len(calls) == 2
    advance(ms, T0 + 10 * M)                           # the first entry expires: w_sum 7 -> 3
    assert len(calls) == 3 and ms.m["w_double"] == 6


def test_derived_metrics_are_recomputed_in_dependency_order(ms):
    """One event moves two inputs, each read by a derived metric; what those move is
    recomputed in dependency order, so a metric that reads both branches (d_both reads
    d_sum, and d_count_twice, which reads d_count) sees each branch's new value."""
    positions = {name: i for i, (name, _) in enumerate(ms.derived)}
    assert positions["d_sum"] < positions["d_count"] < positions["d_count_twice"] < positions["d_both"]
    for i, n in enumerate([4, 9, 1, 16]):
        changed = feed(ms, words(T0 + 20 * M + i * S, n))
        m = ms.m
        assert {"w_sum", "w_count", "d_sum", "d_count", "d_count_twice", "d_both"} <= changed
        assert m["d_count_twice"] == (m["w_count"] + 0.25) * 2
        assert m["d_both"] == m["w_sum"] + 0.5 + m["d_count_twice"]


def test_changed_set_is_exactly_the_names_whose_values_changed(ms):
    """Each input is checked in two steps: the clock moving to the event's time (windows
    expire, samples are taken, `since` values refresh), then the event itself. Each
    step's changed set must be exactly the names whose value moved: for an account-wide
    name, against its value before the step; for a per-symbol name, against the value
    the symbol in view had when it was last in view (a switch from BTCUSDT to ETHUSDT is
    not a change; what moved for ETHUSDT meanwhile is). One allowance, on the safe side:
    a value that moved while out of view and was moved back by the event itself (a
    window that lost its only tick, then got one) is reported, with what derives from it."""
    steps = [
        words(T0, 12), words(T0 + S, 12), ticker(T0 + 2 * S, "BTCUSDT", 60_000.0, 2.0),
        ticker(T0 + 3 * S, "BTCUSDT", 60_000.0, 2.0), ticker(T0 + 4 * S, "ETHUSDT", 3_000.0, 3.0),
        words(T0 + 5 * S, 0), Event("operator_connect", T0 + 6 * S), words(T0 + 7 * S, 30),
        ticker(T0 + 8 * S, "BTCUSDT", 60_005.0, 2.0), T0 + 90 * S, words(T0 + 2 * M, 5), T0 + 11 * M,
        ticker(T0 + 11 * M + S, "ETHUSDT", 3_001.0, 3.0), T0 + 30 * M, words(T0 + 31 * M, 50),
        words(T0 + 31 * M + 500, 50), Event("operator_connect", T0 + 32 * M),
    ]
    per_symbol = set(ms.shown_names)
    assert {"mid_last", "ticks_5m", "spread_mean_5m"} <= per_symbol and "w_sum" not in per_symbol
    last_in_view: dict = {}   # symbol -> its per-symbol values when it left the view
    checked = switches = 0
    for step in steps:
        parts = [("clock", step)] if isinstance(step, int) else [("clock", step.ts), ("event", step)]
        for what, arg in parts:
            before, shown_before = dict(ms.m), ms.group
            away: set = set()   # per-symbol names that moved while the event's symbol was out of view
            if what == "event" and arg.symbol and arg.symbol != shown_before and arg.symbol in last_in_view:
                away = {n for n, metric in ms.by_name.items() if n in per_symbol
                        and metric.value(arg.symbol, arg.ts) != last_in_view[arg.symbol][n]}
                away |= {n for n, expr in ms.derived if expr.reads & away}
            changed = advance(ms, arg) if what == "clock" else feed(ms, arg)
            reference = before
            if ms.group != shown_before:
                switches += 1
                if shown_before:
                    last_in_view[shown_before] = {n: before[n] for n in per_symbol}
                reference = {**before, **last_in_view.get(ms.group, {n: object() for n in per_symbol})}
            moved = {k for k, v in ms.m.items() if k not in reference or reference[k] != v}
            assert moved <= changed and changed - moved <= away, (what, arg, sorted(changed ^ moved))
            checked += bool(moved)
    assert checked >= 15 and switches >= 4
