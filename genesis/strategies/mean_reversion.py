"""Mean reversion on one leg: buy a close below the lower band (mean - band_sigma *
std of the last `lookback` candle closes), sell at the mean, at the stop, at the take
profit or after max_hold.

The candles are `candle` long, aligned to event time. A minute or longer: the closes of
the feed's candles (a candle file's, or on a tick capture the 1-minute candles built from
its trades) that end on a `candle` boundary, so 1-minute candles make 5m ones. Shorter:
built from the symbol's trades, the last trade price in each interval, completed by the
next interval's first trade (tick captures only; an interval without a trade makes no
candle).
"""
from __future__ import annotations

import math
from collections import deque

from genesis.strategies.base import MarketView, OrderIntent, Strategy

MINUTE_MS = 60_000   # the feeds' candles (candle files, and those built from a capture's trades)


class MeanReversion(Strategy):
    kind = "mean_reversion"

    def __init__(self, instance_id, symbols, params):
        super().__init__(instance_id, symbols, params)
        self.symbol = self.symbols[0]
        self.closes: deque = deque(maxlen=int(self.params["lookback"]))
        self.candle_ms = max(int(self.seconds("candle") * 1000), 1)
        self.from_trades = self.candle_ms < MINUTE_MS
        self.building: tuple[int, float] | None = None   # (interval, last trade price) of the candle from trades
        self.max_hold_ms = int(self.seconds("max_hold") * 1000)
        self.entry_price = 0.0
        self.entered = 0

    def _close(self, event) -> float | None:
        """The close of one of this strategy's candles that `event` completes, or None."""
        if event.symbol != self.symbol:
            return None
        if event.kind == "candle" and not self.from_trades:
            interval_ms = int(event.fields["interval_s"] * 1000)
            # a candle built from trades is stamped with the trade that completed it: round down to its close
            closes_at = event.ts - event.ts % interval_ms
            if interval_ms <= self.candle_ms and closes_at % self.candle_ms == 0:
                return event.fields["close"]
        elif event.kind == "trade" and self.from_trades:
            interval = event.ts // self.candle_ms
            done = self.building[1] if self.building and interval > self.building[0] else None
            self.building = (interval, event.fields["price"])
            return done
        return None

    def on_event(self, event, view: MarketView) -> list[OrderIntent]:
        close = self._close(event)
        if close is None:
            return []
        self.closes.append(close)
        p = self.params
        held = view.holding(self.symbol)
        if held > 0 and self.entry_price:
            change = (close - self.entry_price) / self.entry_price * 100
            mean = sum(self.closes) / len(self.closes)
            reason = ("stop_loss" if change <= -p["stop_pct"] else "take_profit" if change >= p["take_profit_pct"]
                      else "signal" if close >= mean else "timeout" if event.ts - self.entered >= self.max_hold_ms
                      else None)
            if reason:
                self.entry_price = 0.0
                return [self.intent(self.symbol, "sell", held * close, close, reason)]
            return []
        if len(self.closes) < self.closes.maxlen:
            return []
        n = len(self.closes)
        mean = sum(self.closes) / n
        std = math.sqrt(max(sum(c * c for c in self.closes) / n - mean * mean, 0.0))
        if std > 0 and close < mean - p["band_sigma"] * std:
            self.entry_price, self.entered = close, event.ts
            return [self.intent(self.symbol, "buy", self.size(view), close, "entry")]
        return []
