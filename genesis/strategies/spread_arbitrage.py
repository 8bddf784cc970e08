"""Spread arbitrage on two legs: the z-score of the log-price spread.

Spot cannot go short, so the strategy buys the leg that is cheap relative to the
other (z beyond -entry_z: the first leg; beyond +entry_z: the second) and sells it
when the spread comes back (|z| <= exit_z), stops out at |z| >= stop_z, or times out
after max_hold. The spread is sampled at most once a second over `lookback`.
"""
from __future__ import annotations

import math
from collections import deque

from genesis.strategies.base import MarketView, OrderIntent, Strategy


class SpreadArbitrage(Strategy):
    kind = "spread_arbitrage"

    def __init__(self, instance_id, symbols, params):
        super().__init__(instance_id, symbols, params)
        self.a, self.b = self.symbols[:2]
        self.lookback_ms = int(self.seconds("lookback") * 1000)
        self.cooldown_ms = int(self.seconds("cooldown") * 1000)
        self.max_hold_ms = int(self.seconds("max_hold") * 1000)
        self.samples: deque = deque()
        self.total = self.total_sq = 0.0
        self.last_sample = -1
        self.held: str | None = None      # the leg held
        self.entered = 0
        self.last_exit = -10**15
        self.z = 0.0

    def _sample(self, ts: int, spread: float) -> None:
        second = ts // 1000
        if second == self.last_sample:
            return
        self.last_sample = second
        self.samples.append((ts, spread))
        self.total += spread
        self.total_sq += spread * spread
        while self.samples and self.samples[0][0] <= ts - self.lookback_ms:
            _, old = self.samples.popleft()
            self.total -= old
            self.total_sq -= old * old

    def on_event(self, event, view: MarketView) -> list[OrderIntent]:
        if event.kind != "book_ticker" or event.symbol not in (self.a, self.b):
            return []
        mid_a, mid_b = view.mid(self.a), view.mid(self.b)
        if not mid_a or not mid_b:
            return []
        spread = math.log(mid_a) - math.log(mid_b)
        self._sample(event.ts, spread)
        n = len(self.samples)
        if n < 30 or (self.samples[-1][0] - self.samples[0][0]) < self.lookback_ms * 0.5:
            return []
        mean = self.total / n
        std = math.sqrt(max(self.total_sq / n - mean * mean, 0.0))
        if std <= 0:
            return []
        z = self.z = (spread - mean) / std
        p = self.params
        now = event.ts
        if self.held:
            # the held leg was bought while cheap (its deviation -entry_z or below);
            # it has recovered once the deviation is back above -exit_z
            held_z = z if self.held == self.a else -z
            reason = None
            if held_z >= -p["exit_z"]:
                reason = "signal"
            elif held_z <= -p["stop_z"]:
                reason = "stop_loss"
            elif now - self.entered >= self.max_hold_ms:
                reason = "timeout"
            if reason and view.holding(self.held) > 0:
                leg, self.held, self.last_exit = self.held, None, now
                return [self.intent(leg, "sell", view.holding_value(leg), view.mid(leg), reason)]
            if reason:
                self.held = None
            return []
        if now - self.last_exit < self.cooldown_ms or abs(z) < p["entry_z"]:
            return []
        if abs(spread - mean) * 1e4 < p["min_spread_bps"]:
            return []
        leg = self.a if z < 0 else self.b
        if view.holding(leg) > 0:
            return []
        self.held, self.entered = leg, now
        return [self.intent(leg, "buy", self.size(view), view.mid(leg), "entry")]
