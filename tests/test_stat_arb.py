"""Statistical arbitrage: the pair statistics against known truths on seeded synthetic
series, the pair choice through the engine, and the shipped instances replaying real
data on the Strategist tier (the bundled tick sample; a few days of the 30-day candles
from ../shared/data, skipped when absent)."""
from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from genesis.config.checks import check_config
from genesis.durations import parse_duration
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.feeds import open_feed, sample_paths, shared_data_dir
from genesis.engine.journal import Journal
from genesis.strategies.pair_statistics import (EG_CRITICAL, KalmanHedge, adf_t, eg_critical, fit_pair, half_life,
                                                ols_hedge, return_correlation)

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_data_dir()
EXITS = {"signal", "stop_loss", "timeout"}


# ----------------------------------------------------------------------------- synthetic series
def random_walk(rng, n: int, scale: float = 0.01) -> np.ndarray:
    return np.cumsum(rng.normal(0.0, scale, n))


def ar1(rng, n: int, phi: float, scale: float = 0.01) -> np.ndarray:
    out = np.zeros(n)
    shocks = rng.normal(0.0, scale, n)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + shocks[t]
    return out


def test_ols_recovers_the_hedge_ratio_of_a_constructed_pair():
    rng = np.random.default_rng(7)
    x = 8.0 + random_walk(rng, 2000)
    y = 0.3 + 1.7 * x + ar1(rng, 2000, 0.5, 0.002)
    alpha, beta, resid = ols_hedge(y, x)
    assert beta == pytest.approx(1.7, abs=0.02)
    assert alpha == pytest.approx(0.3, abs=0.2)
    assert abs(resid.mean()) < 1e-9 and resid.std() < 0.005


def test_adf_t_without_lags_is_the_textbook_dickey_fuller_ratio():
    e = ar1(np.random.default_rng(3), 400, 0.9)
    lagged, change = e[:-1], np.diff(e)
    gamma = sum(a * b for a, b in zip(lagged, change)) / sum(a * a for a in lagged)
    rss = sum((b - gamma * a) ** 2 for a, b in zip(lagged, change))
    se = math.sqrt(rss / (len(change) - 1) / sum(a * a for a in lagged))
    assert adf_t(e, 0) == pytest.approx(gamma / se, rel=1e-9)


def test_critical_values_are_mackinnons_and_order_by_significance():
    # MacKinnon (2010), N = 2, constant: the asymptotic values are the published ones
    assert [round(eg_critical(10**9, s), 3) for s in (0.01, 0.05, 0.1)] == [-3.896, -3.336, -3.044]
    for nobs in (50, 200, 1440):
        assert eg_critical(nobs, 0.01) < eg_critical(nobs, 0.05) < eg_critical(nobs, 0.1)
        assert eg_critical(nobs, 0.05) < EG_CRITICAL[0.05][0]     # small samples need more evidence


def test_engle_granger_accepts_cointegrated_pairs_and_rejects_independent_walks():
    accepted = rejected = 0
    draws = 20
    for seed in range(draws):
        rng = np.random.default_rng(100 + seed)
        x = 8.0 + random_walk(rng, 500)
        cointegrated = 1.0 + 0.8 * x + ar1(rng, 500, 0.8, 0.005)
        independent = 9.0 + random_walk(rng, 500)
        accepted += fit_pair(cointegrated, x, 1, 0.05, 60.0).cointegrated
        rejected += not fit_pair(independent, x, 1, 0.05, 60.0).cointegrated
    assert accepted >= draws - 1
    assert rejected >= draws - 3      # a 5% test wrongly accepts about one walk in twenty


def test_half_life_of_an_ar1_matches_its_phi():
    phi = 0.95
    truth = -math.log(2) / math.log(phi)                   # 13.5 samples
    e = ar1(np.random.default_rng(11), 20_000, phi)
    assert half_life(e) == pytest.approx(truth, rel=0.1)
    x = 8.0 + random_walk(np.random.default_rng(12), 20_000)
    fit = fit_pair(2.0 + 0.5 * x + e, x, 1, 0.05, 60.0)    # in seconds at one sample a minute
    assert fit.half_life_s == pytest.approx(truth * 60, rel=0.1)
    assert half_life(np.arange(5000.0)) == math.inf                 # a trend never reverts


def test_return_correlation_matches_the_constructed_one():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, 20_000))
    ra, rb = a, 0.6 * a + 0.8 * b                            # correlation 0.6
    assert return_correlation(np.cumsum(ra), np.cumsum(rb)) == pytest.approx(0.6, abs=0.02)


def test_kalman_follows_a_drifting_hedge_ratio_that_ols_averages():
    rng = np.random.default_rng(21)
    n = 3000
    x = random_walk(rng, n, 0.05)                            # wide enough to tell alpha from beta
    beta = np.linspace(1.0, 1.2, n)
    y = 0.5 + beta * x + rng.normal(0.0, 0.001, n)
    start = fit_pair(y[:300], x[:300], 1, 0.05, 1.0)
    kalman = KalmanHedge(start, 1e-6)
    errors = np.array([kalman.update(yi, xi) for yi, xi in zip(y[300:], x[300:])])
    assert kalman.beta == pytest.approx(1.2, abs=0.01) and kalman.alpha == pytest.approx(0.5, abs=0.02)
    assert abs(ols_hedge(y, x)[1] - 1.2) > 5 * abs(kalman.beta - 1.2)       # one fit over all: an average
    fixed = y[300:] - start.alpha - start.beta * x[300:]
    assert errors[-500:].std() < 0.002 < 0.02 < fixed[-500:].std()        # noise 0.001; the first fit drifts off


# ----------------------------------------------------------------------------- the engine
def config_with_stat_arb(tmp_path: Path, extra: list | None = None, symbols: list | None = None) -> Path:
    """The shipped configuration with only the shipped statistical_arbitrage instances (and `extra`)."""
    root = tmp_path / "config"
    root.mkdir()
    for name in ("genesis.yaml", "alerts.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(ROOT / folder, root / folder)
    data = yaml.safe_load((ROOT / "strategies.yaml").read_text(encoding="utf-8"))
    data["strategies"] = [s for s in data["strategies"] if s["kind"] == "statistical_arbitrage"] + (extra or [])
    (root / "strategies.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    if symbols:
        settings = (root / "genesis.yaml").read_text(encoding="utf-8")
        settings = settings.replace("symbols: [BTCUSDT, ETHUSDT]", f"symbols: [{', '.join(symbols)}]")
        (root / "genesis.yaml").write_text(settings, encoding="utf-8")
    return root


def strategist(root: Path, equity: float | None = None) -> tuple[Engine, list]:
    """An engine on the Strategist tier and the journal entries it writes (as tuples)."""
    result = check_config(root)
    assert result.ok, "\n".join(map(str, result.problems))
    journal = Journal("sqlite://")
    journal.open_run("strategist", "test", "test", [], "test")
    engine = Engine(result, "strategist", journal=journal, starting_equity=equity)
    entries: list = []
    engine.observers.append(lambda ts, kind, rule, symbol, data: entries.append((ts, kind, rule, symbol, data)))
    return engine, entries


def instance(engine: Engine, sid: str):
    return next(s for s in engine.strategies if s.id == sid)


def intents_of(entries: list, sid: str) -> list:
    return [(ts, d["side"], d["reason"]) for ts, kind, rule, _, d in entries if kind == "intent" and rule == sid]


def assert_round_trips(intents: list) -> None:
    """Each entry is a buy; what follows it is the exit of that position."""
    assert intents and intents[0][1:] == ("buy", "entry")
    assert any(side == "sell" and reason in EXITS for _, side, reason in intents)
    for (_, side, reason), (_, next_side, _) in zip(intents, intents[1:]):
        if side == "buy":
            assert reason == "entry" and next_side == "sell"


def assert_on_schedule(strategy, refit_every: str, first_ts: int, last_ts: int) -> None:
    """One fit per refit slot, in consecutive slots once the window is ready: never per event."""
    slots = [ts // int(parse_duration(refit_every) * 1000) for ts in strategy.fit_times]
    assert len(slots) >= 2
    assert all(b == a + 1 for a, b in zip(slots, slots[1:]))
    assert first_ts < strategy.fit_times[0] <= strategy.fit_times[-1] <= last_ts


def test_the_most_cointegrated_of_three_symbols_pairs_is_traded(tmp_path):
    params = {"lookback": "5m", "sample_every": "1s", "refit_every": "1m", "min_half_life": "1s",
              "max_half_life": "5m", "min_correlation": 0.3, "cooldown": "0s", "max_hold": "10m"}
    extra = [{"id": "three", "kind": "statistical_arbitrage", "symbols": ["BTCUSDT", "SOLUSDT", "ETHUSDT"],
              "params": params}]
    engine, _ = strategist(config_with_stat_arb(tmp_path, extra, ["BTCUSDT", "ETHUSDT", "SOLUSDT"]))
    strategy = instance(engine, "three")
    rng = np.random.default_rng(1)
    n = 400
    btc = math.log(60_000) + random_walk(rng, n, 0.0005)
    sol = -6.0 + 0.95 * btc + ar1(rng, n, 0.7, 0.0003)        # cointegrated with BTC, half-life ~2 s
    eth = math.log(3_000) + 0.3 * (btc - btc[0]) + random_walk(rng, n, 0.0005)   # correlated, not cointegrated
    t0 = 1_723_118_400_000
    for i in range(n):
        for symbol, logs in (("BTCUSDT", btc), ("SOLUSDT", sol), ("ETHUSDT", eth)):
            mid = math.exp(logs[i])
            engine.process(Event("book_ticker", t0 + i * 1000 + 10, symbol,
                                 {"bid": mid * 0.9999, "bid_qty": 5.0, "ask": mid * 1.0001, "ask_qty": 5.0, "mid": mid,
                                  "spread_bps": 2.0}))
    assert len(strategy.fit_times) >= 3
    assert strategy.models[(0, 1)].cointegrated and strategy.models[(0, 1)].beta == pytest.approx(0.95, abs=0.1)
    assert not strategy.models[(0, 2)].cointegrated and not strategy.models[(1, 2)].cointegrated
    assert strategy.traded == (0, 1)


def test_tick_sample_on_the_strategist_tier_refits_on_schedule_and_trades(tmp_path):
    engine, entries = strategist(config_with_stat_arb(tmp_path))
    ticks, candles = instance(engine, "btc_eth_stat_arb_ticks"), instance(engine, "btc_eth_stat_arb")
    events = first = last = 0
    for event in open_feed(sample_paths()):
        engine.process(event)
        first, last, events = first or event.ts, event.ts, events + 1
    assert engine.tier == "strategist"
    assert_on_schedule(ticks, ticks.params["refit_every"], first, last)
    assert len(ticks.fit_times) <= (last - first) / 10_000 + 1 < events / 1000
    assert_round_trips(intents_of(entries, "btc_eth_stat_arb_ticks"))
    assert any(kind == "position_closed" for _, kind, *_ in entries)
    assert candles.fit_times == [] and intents_of(entries, "btc_eth_stat_arb") == []   # a day's window: idle


def candle_slice(tmp_path: Path, days: float) -> list[Path]:
    """The first `days` of the 30-day 1m candles of both symbols, as candle files."""
    out = []
    for name in ("BTC_USDT-1m.json.gz", "ETH_USDT-1m.json.gz"):
        rows = json.loads(gzip.decompress((SHARED / "binance_spot_ohlcv" / name).read_bytes()))
        path = tmp_path / name.replace(".gz", "")
        path.write_text(json.dumps(rows[: int(days * 1440)]), encoding="utf-8")
        out.append(path)
    return out


@pytest.mark.skipif(SHARED is None, reason="../shared/data is not beside this checkout")
def test_candles_on_the_strategist_tier_refit_hourly_and_trade(tmp_path):
    engine, entries = strategist(config_with_stat_arb(tmp_path), equity=20_000)   # the tier's capital band
    hourly, ticks = instance(engine, "btc_eth_stat_arb"), instance(engine, "btc_eth_stat_arb_ticks")
    events = first = last = 0
    for event in open_feed(candle_slice(tmp_path, 4)):
        engine.process(event)
        if event.kind == "candle":
            first, last, events = first or event.ts, event.ts, events + 1
    assert engine.tier == "strategist"
    assert_on_schedule(hourly, "1h", first, last)
    warmup = (hourly.fit_times[0] - first) / 3_600_000
    assert 12 <= warmup <= 13                                 # half of the 1-day lookback
    assert len(hourly.fit_times) <= 4 * 24 - 11 and events > 100 * len(hourly.fit_times)
    assert_round_trips(intents_of(entries, "btc_eth_stat_arb"))
    assert ticks.fit_times == []                              # 90 s never hold 20 one-minute samples
