"""Mean reversion on one leg: buy a close below the lower band (mean - band_sigma *
std of the last `lookback` candle closes), sell at the mean, at the stop, at the take
profit or after max_hold."""
from __future__ import annotations

import math
from collections import deque

from genesis.strategies.base import MarketView, OrderIntent, Strategy


class MeanReversion(Strategy):
    kind = "mean_reversion"

    def __init__(self, instance_id, symbols, params):
        super().__init__(instance_id, symbols, params)
        self.symbol = self.symbols[0]
        self.closes: deque = deque(maxlen=int(self.params["lookback"]))
        self.max_hold_ms = int(self.seconds("max_hold") * 1000)
        self.entry_price = 0.0
        self.entered = 0

    def on_event(self, event, view: MarketView) -> list[OrderIntent]:
        if event.kind != "candle" or event.symbol != self.symbol:
            return []
        close = event.fields["close"]
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
