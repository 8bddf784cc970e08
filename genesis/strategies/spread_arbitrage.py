"""Spread arbitrage on two legs: the z-score of the log-price spread.

Spot cannot go short, so the strategy buys the leg that is cheap relative to the
other (z beyond -entry_z: the first leg; beyond +entry_z: the second) and sells it
when the spread comes back (|z| <= exit_z), stops out at |z| >= stop_z, or times out
after max_hold. The spread is sampled at most once a second over `lookback`.

It reads the mids that book tickers and candles set (view.mid), so it runs on tick
captures and on candle replays alike. A leg with book tickers ignores its candles (on a
capture, those built from trades); on candles it waits for both legs' candles of the same
close time, so a candle replay never pairs one leg's new close with the other's previous
one (one sample a minute on 1-minute candles: a lookback of an hour or more).
"""
from __future__ import annotations

import math
from collections import deque

from genesis.strategies.base import MarketView, OrderIntent, Strategy

PRICE_KINDS = ("book_ticker", "candle")   # the market events that set view.mid
MIN_SAMPLES = 30


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
        self.closed_at: dict[str, int] = {}   # each leg's last candle close time
        self.quoted: set[str] = set()           # legs with book tickers

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
        if event.kind not in PRICE_KINDS or event.symbol not in (self.a, self.b):
            return []
        if event.kind == "book_ticker":
            self.quoted.add(event.symbol)
        elif event.symbol in self.quoted:
            return []
        else:
            self.closed_at[event.symbol] = event.ts
            if self.closed_at.get(self.a) != self.closed_at.get(self.b):
                return []   # the other leg's candle of this close is still to come
        mid_a, mid_b = view.mid(self.a), view.mid(self.b)
        if not mid_a or not mid_b:
            return []
        spread = math.log(mid_a) - math.log(mid_b)
        self._sample(event.ts, spread)
        n = len(self.samples)
        if n < MIN_SAMPLES or (self.samples[-1][0] - self.samples[0][0]) < self.lookback_ms * 0.5:
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
