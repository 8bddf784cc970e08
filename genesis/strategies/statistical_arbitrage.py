"""Statistical arbitrage: trade the spread of a cointegrated pair back to its mean.

Every pair of the instance's symbols is a candidate; the first symbol of a pair (in the
order of `symbols`) is y, the second x, and the spread is log y - alpha - beta * log x.

- Sampling: the log mids of all symbols, the last seen in each `sample_every` slot of
  event time (committed when the next slot's first price event arrives), kept for
  `lookback`. Works the same on candle replays and tick captures (view.mid).
- Fitting, once per `refit_every` slot of event time and never per event, for every
  pair: the hedge ratio by OLS, the Engle-Granger test (ADF without constant on the
  OLS residuals, `adf_lags` lagged differences, MacKinnon's critical value for two
  variables at `significance`), the half-life of the residuals (AR(1)), the correlation
  of returns. A fit needs at least MIN_SAMPLES samples spanning half the lookback. Of
  the pairs that pass the entry filters (cointegrated, half-life within
  [min_half_life, max_half_life], correlation >= min_correlation) the most strongly
  cointegrated (the ADF t furthest below its critical value) becomes the traded pair;
  none passing: no entries until the next fit.
- Per event, only the z-score: the current spread against the mean and standard
  deviation of the last fit's residuals (hedge: ols), or the Kalman forecast error over
  its standard deviation (hedge: kalman; alpha and beta then move with every sample).
  It is read only when both legs were priced within the last `sample_every`, so a
  candle replay never mixes one leg's new close with the other's old one.
- Spot cannot go short: z <= -entry_z buys the first leg (cheap against the second),
  z >= entry_z buys the second; |z| at or beyond stop_z does not enter. The held leg is
  sold ('signal') once its side of the spread is back within exit_z, at stop_z
  ('stop_loss') or after max_hold ('timeout'); then `cooldown` before the next entry.
  A held pair is managed with its own latest fit even if another pair is now traded.
- An entry executed in slices may still be buying when its exit sells: the first time
  the leg is found held again after the cooldown (and within max_hold of the exit,
  while no new position is held), the rest is sold, once, with the exit's reason.
"""
from __future__ import annotations

import itertools
import math
from collections import deque
from typing import TYPE_CHECKING

from genesis.strategies.base import MarketView, OrderIntent, Strategy

if TYPE_CHECKING:
    from genesis.strategies.pair_statistics import KalmanHedge, PairFit

MIN_SAMPLES = 20
PRICE_KINDS = ("book_ticker", "candle")   # the market events that set view.mid


class StatisticalArbitrage(Strategy):
    kind = "statistical_arbitrage"

    def __init__(self, instance_id, symbols, params):
        super().__init__(instance_id, symbols, params)
        p = self.params
        self.sample_ms = max(int(self.seconds("sample_every") * 1000), 1)
        self.lookback_ms = int(self.seconds("lookback") * 1000)
        self.refit_ms = max(int(self.seconds("refit_every") * 1000), 1)
        self.max_hold_ms = int(self.seconds("max_hold") * 1000)
        self.cooldown_ms = int(self.seconds("cooldown") * 1000)
        self.min_half_life_s = self.seconds("min_half_life")
        self.max_half_life_s = self.seconds("max_half_life")
        self.kalman_delta = p["kalman_delta"] if p["hedge"] == "kalman" else None
        self.pairs = list(itertools.combinations(range(len(self.symbols)), 2))
        self.column = {s: i for i, s in enumerate(self.symbols)}
        self.priced_at = [-(10**15)] * len(self.symbols)
        self.samples: deque = deque(maxlen=max(self.lookback_ms // self.sample_ms + 1, 2))  # (slot, log prices)
        self.slot: int | None = None
        self.latest: tuple | None = None     # log prices last seen in the current slot
        self.fit_slot: int | None = None
        self.fit_times: list[int] = []       # event times of the refits
        self.models: dict[tuple, PairFit] = {}
        self.kalman: dict[tuple, KalmanHedge] = {}
        self.traded: tuple | None = None     # the pair entries use, chosen at the last refit
        self.held: str | None = None         # the leg held
        self.held_pair: tuple | None = None
        self.entered = 0
        self.last_exit = -(10**15)
        self.leftover: tuple | None = None   # (leg, reason) of the last exit, watched for late entry fills
        self.z = math.nan

    # ------------------------------------------------------------------ sampling and fitting
    def _sample(self, now: int, view: MarketView) -> None:
        slot = now // self.sample_ms
        if slot != self.slot:
            if self.latest is not None:
                self._commit(self.slot, self.latest, now)
            self.slot = slot
        mids = [view.mid(s) for s in self.symbols]
        self.latest = tuple(math.log(m) for m in mids) if all(m and m > 0 for m in mids) else None

    def _commit(self, slot: int, logs: tuple, now: int) -> None:
        """One sample in; samples older than the lookback out; the Kalman filters step; a
        refit when a new refit slot has begun."""
        samples = self.samples
        samples.append((slot, logs))
        oldest = slot - self.lookback_ms // self.sample_ms
        while samples[0][0] <= oldest:
            samples.popleft()
        for (i, j), kalman in self.kalman.items():
            kalman.update(logs[i], logs[j])
        refit_slot = now // self.refit_ms
        span_ms = (samples[-1][0] - samples[0][0]) * self.sample_ms
        if refit_slot != self.fit_slot and len(samples) >= MIN_SAMPLES and span_ms * 2 >= self.lookback_ms:
            self.fit_slot = refit_slot
            self._refit(now)

    def _refit(self, now: int) -> None:
        """Fit every pair on the window; choose the traded pair."""
        # numpy is imported at the first fit, not with the strategy registry (every command loads that)
        import numpy as np  # noqa: PLC0415

        from genesis.strategies.pair_statistics import KalmanHedge, fit_pair  # noqa: PLC0415

        p = self.params
        data = np.array([logs for _, logs in self.samples])
        sample_s = self.sample_ms / 1000.0
        passing = []
        for pair in self.pairs:
            fit = fit_pair(data[:, pair[0]], data[:, pair[1]], p["adf_lags"], p["significance"], sample_s)
            self.models[pair] = fit
            if self.kalman_delta is not None and not math.isnan(fit.beta):
                if pair in self.kalman:
                    self.kalman[pair].obs_var = max(fit.resid_var, 1e-18)
                else:
                    self.kalman[pair] = KalmanHedge(fit, self.kalman_delta)
            if fit.passes(self.min_half_life_s, self.max_half_life_s, p["min_correlation"]):
                passing.append(pair)
        self.traded = min(passing, key=lambda q: self.models[q].adf_t - self.models[q].critical) if passing else None
        self.fit_times.append(now)

    def zscore(self, pair: tuple) -> float:
        """The pair's current spread in standard deviations (NaN before its first fit)."""
        i, j = pair
        if self.latest is None or pair not in self.models:
            return math.nan
        y, x = self.latest[i], self.latest[j]
        kalman = self.kalman.get(pair)
        if kalman is not None:
            return (y - kalman.alpha - kalman.beta * x) / math.sqrt(kalman.forecast_var)
        fit = self.models[pair]
        if not fit.std > 0:
            return math.nan
        return (y - fit.alpha - fit.beta * x - fit.mean) / fit.std

    def _fresh(self, pair: tuple, now: int) -> bool:
        return all(now - self.priced_at[k] < self.sample_ms for k in pair)

    # ------------------------------------------------------------------ trading
    def on_event(self, event, view: MarketView) -> list[OrderIntent]:
        if event.kind not in PRICE_KINDS or event.symbol not in self.column:
            return []
        now = event.ts
        self.priced_at[self.column[event.symbol]] = now
        self._sample(now, view)
        if self.held:
            return self._exit(now, view)
        return (self._sell_leftover(now, view) if self.leftover else []) or self._enter(now, view)

    def _exit(self, now: int, view: MarketView) -> list[OrderIntent]:
        p, pair, leg = self.params, self.held_pair, self.held
        reason = None
        if self._fresh(pair, now):
            z = self.z = self.zscore(pair)
            held_z = z if leg == self.symbols[pair[0]] else -z   # the held leg went in at -entry_z or below
            if held_z >= -p["exit_z"]:
                reason = "signal"
            elif held_z <= -p["stop_z"]:
                reason = "stop_loss"
        if reason is None and now - self.entered >= self.max_hold_ms:
            reason = "timeout"
        if reason is None:
            return []
        self.held = self.held_pair = None
        self.last_exit, self.leftover = now, (leg, reason)
        if view.holding(leg) <= 0:     # nothing filled yet (refused, or a resting entry): watch for late fills
            return []
        return [self.intent(leg, "sell", view.holding_value(leg), view.mid(leg), reason)]

    def _sell_leftover(self, now: int, view: MarketView) -> list[OrderIntent]:
        """What the last entry bought after its exit sold: sold once the cooldown ends."""
        leg, reason = self.leftover
        if now - self.last_exit >= self.max_hold_ms:
            self.leftover = None
        elif now - self.last_exit >= self.cooldown_ms and view.holding(leg) > 0:
            self.leftover = None
            return [self.intent(leg, "sell", view.holding_value(leg), view.mid(leg), reason)]
        return []

    def _enter(self, now: int, view: MarketView) -> list[OrderIntent]:
        p, pair = self.params, self.traded
        if pair is None or now - self.last_exit < self.cooldown_ms or not self._fresh(pair, now):
            return []
        z = self.z = self.zscore(pair)
        if not p["entry_z"] <= abs(z) < p["stop_z"]:
            return []
        leg = self.symbols[pair[0]] if z < 0 else self.symbols[pair[1]]
        if view.holding(leg) > 0:
            return []
        self.held, self.held_pair, self.entered, self.leftover = leg, pair, now, None
        return [self.intent(leg, "buy", self.size(view), view.mid(leg), "entry")]
