"""Traded volume per symbol, for the VWAP algorithm: a running total, the last minutes'
volumes, and a profile of volume by minute of the UTC day over recent days.

The running total counts public trades, or candle volumes for symbols whose feed has
candles but no trades. The profile takes every 1-minute candle (from a candle feed, built
from trades, or, live, the exchange's recent klines given to `seed`).
"""
from __future__ import annotations

from collections import deque

MINUTE_MS = 60_000
MINUTES_PER_DAY = 1440
PROFILE_DAYS_KEPT = 7    # the most days a profile may average (tier key vwap.profile_days)


class VolumeBook:
    """Volume traded per symbol, now and by minute of day over the last days."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.minutes: dict[str, deque] = {}     # symbol -> (minute start ms, volume) of the last hour
        self.profile: dict[str, dict] = {}      # symbol -> minute of day -> deque of volumes (one per day)
        self.last_start: dict[str, int] = {}    # symbol -> start of the latest minute in the profile

    def on_trade(self, symbol: str, qty: float) -> None:
        """A public trade of `qty` base units."""
        self.totals[symbol] = self.totals.get(symbol, 0.0) + qty

    def on_candle(self, symbol: str, start: int, volume: float, counts: bool) -> None:
        """A 1-minute candle that began at `start` (ms); `counts`: add its volume to the
        running total (the symbol has no trade feed)."""
        if counts:
            self.totals[symbol] = self.totals.get(symbol, 0.0) + volume
        if start <= self.last_start.get(symbol, -1):
            return   # a minute the profile has already (klines given again after a restart)
        self.last_start[symbol] = start
        recent = self.minutes.get(symbol)
        if recent is None:
            recent = self.minutes[symbol] = deque(maxlen=60)
        recent.append((start, volume))
        by_minute = self.profile.get(symbol)
        if by_minute is None:
            by_minute = self.profile[symbol] = {}
        slot = (start // MINUTE_MS) % MINUTES_PER_DAY
        days = by_minute.get(slot)
        if days is None:
            days = by_minute[slot] = deque(maxlen=PROFILE_DAYS_KEPT)
        days.append(volume)

    def seed(self, symbol: str, candles: list) -> None:
        """Take recent 1-minute klines, [(start ms, volume)], into the profile (live start)."""
        for start, volume in candles:
            self.on_candle(symbol, start, volume, counts=False)

    def traded(self, symbol: str) -> float:
        """Base quantity traded so far."""
        return self.totals.get(symbol, 0.0)

    def recent(self, symbol: str, span_ms: int) -> float:
        """Base quantity traded in the last `span_ms`, from the last minutes' volumes
        (a partly covered minute counts in proportion)."""
        recent = self.minutes.get(symbol)
        if not recent:
            return 0.0
        left, total = span_ms, 0.0
        for _, volume in reversed(recent):
            if left <= 0:
                break
            share = min(left, MINUTE_MS) / MINUTE_MS
            total += volume * share
            left -= MINUTE_MS
        return total

    def weights(self, symbol: str, start: int, duration_ms: int, n: int, days: int) -> list[float]:
        """Each of `n` even intervals' share of the volume expected from `start` over
        `duration_ms`: the mean volume of their minutes of the day over the last `days` days.
        Equal shares when any minute has no history (or all are zero)."""
        by_minute = self.profile.get(symbol, {})
        step = duration_ms / n
        out = []
        for i in range(n):
            lo, hi = start + i * step, start + (i + 1) * step
            total, minute = 0.0, int(lo // MINUTE_MS)
            while minute * MINUTE_MS < hi:
                kept = by_minute.get(minute % MINUTES_PER_DAY)
                if not kept:
                    return [1.0] * n
                last = list(kept)[-days:]
                overlap = min(hi, (minute + 1) * MINUTE_MS) - max(lo, minute * MINUTE_MS)
                total += sum(last) / len(last) * overlap / MINUTE_MS
                minute += 1
            out.append(total)
        return out if sum(out) > 0 else [1.0] * n
