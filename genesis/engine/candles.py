"""1-minute candles built from trades, for feeds that carry ticks but no candles."""
from __future__ import annotations

import math

from genesis.engine.events import Event


class CandleBuilder:
    """Emits a candle event for a symbol when the first trade of the next minute arrives."""

    def __init__(self, interval_ms: int = 60_000):
        self.interval = interval_ms
        self.open: dict[str, list] = {}       # symbol -> [start, o, h, l, c, v]
        self.prev_close: dict[str, float] = {}

    def on_trade(self, event: Event) -> Event | None:
        """Feed a trade; returns the candle it closed, if any."""
        symbol, price, qty = event.symbol, event.fields["price"], event.fields["qty"]
        start = event.ts - event.ts % self.interval
        bar = self.open.get(symbol)
        closed = None
        if bar is not None and start > bar[0]:
            closed = self._close(symbol, bar)
            bar = None
        if bar is None:
            self.open[symbol] = [start, price, price, price, price, qty]
        else:
            bar[2] = max(bar[2], price)
            bar[3] = min(bar[3], price)
            bar[4] = price
            bar[5] += qty
        return closed

    def _close(self, symbol: str, bar: list) -> Event:
        start, o, h, low, c, v = bar
        prev = self.prev_close.get(symbol, o)
        true_range = max(h, prev) - min(low, prev)
        self.prev_close[symbol] = c
        return Event("candle", start + self.interval, symbol, {
            "open": o, "high": h, "low": low, "close": c, "volume": v, "interval_s": self.interval / 1000,
            "true_range": true_range, "true_range_pct": true_range / c * 100 if c else 0.0,
            "log_return": math.log(c / prev) if prev > 0 and c > 0 else 0.0})
