"""``GET /api/v3/klines``: candles built from the recorded trades replayed so far.

Every replayed ``@trade`` record (the pre-roll's too) goes on a per-symbol tape; a
query aggregates the tape into Binance's kline rows. Times are the trades' ``T``
shifted as the replay shifts them, so klines line up with the streamed trades.

Rules, as Binance's endpoint:

* intervals ``1s``, ``1m``, ``3m``, ``5m``, ``15m``, ``30m``, ``1h``, ``2h``, ``4h``,
  ``6h``, ``8h``, ``12h``, ``1d``, ``3d`` (counted from the epoch), ``1w`` (Monday
  00:00), ``1M`` (calendar months); anything else is -1120 ``Invalid interval.``;
* a kline is identified by its open time; ``startTime`` / ``endTime`` keep klines whose
  open time is within them; without either, the most recent ``limit`` klines; with only
  ``endTime``, the last ``limit`` klines opening at or before it;
* ``limit`` 500 by default, at most 1000 (more is capped), below 1 is -1130;
* ``timeZone`` (``0`` by default; ``-1:00``, ``05:45``, ``8``; -12:00 to +14:00) moves
  the interval boundaries, never ``startTime`` / ``endTime``;
* an interval without trades between the first and the last replayed trade is a kline
  with open = high = low = close = the previous close and zero volume; nothing before
  the first trade or after the last one.

Row: ``[open time, open, high, low, close, volume, close time, quote volume, trades,
taker buy base volume, taker buy quote volume, "0"]``, amounts as 8-decimal strings."""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime
from decimal import Decimal

from . import errors as E
from .orders import ZERO, f8

SECOND_MS = 1000
DAY_MS = 86_400_000
INTERVALS_MS = {
    "1s": SECOND_MS, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": DAY_MS, "3d": 3 * DAY_MS, "1w": 7 * DAY_MS,
}
MONTH = "1M"
WEEK_ORIGIN_MS = 4 * DAY_MS          # 1970-01-05, the first Monday after the epoch
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
_TIME_ZONE = re.compile(r"^([+-]?)(\d{1,2})(?::(\d{2}))?$")


class TradeTape:
    """The replayed trades of one symbol, in replay order: times (recorded ``T``, ms),
    prices, quantities and whether the buyer was the taker."""

    __slots__ = ("times", "prices", "qtys", "taker_buy")

    def __init__(self):
        self.times: list[int] = []
        self.prices: list[Decimal] = []
        self.qtys: list[Decimal] = []
        self.taker_buy: list[bool] = []

    def add(self, time_ms: int, price: str, qty: str, buyer_maker: bool) -> None:
        """Append one trade (a trade older than the last one is put at the last time, so
        the tape stays sorted)."""
        if self.times and time_ms < self.times[-1]:
            time_ms = self.times[-1]
        self.times.append(int(time_ms))
        self.prices.append(Decimal(price))
        self.qtys.append(Decimal(qty))
        self.taker_buy.append(not buyer_maker)


def parse_time_zone(value: str | None) -> int:
    """``timeZone`` as an offset in ms (``0`` when absent); -1100 when malformed or
    outside -12:00 .. +14:00."""
    if value is None or value == "":
        return 0
    m = _TIME_ZONE.match(value.strip())
    if m is None or (m.group(3) is not None and int(m.group(3)) >= 60):
        raise E.illegal("timeZone", "[-12:00 to +14:00]")
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    if m.group(1) == "-":
        minutes = -minutes
    if not -12 * 60 <= minutes <= 14 * 60:
        raise E.illegal("timeZone", "[-12:00 to +14:00]")
    return minutes * 60_000


class Grid:
    """Kline open times of one interval in one time zone."""

    def __init__(self, interval: str, offset_ms: int = 0):
        if interval != MONTH and interval not in INTERVALS_MS:
            raise E.ApiError(-1120, "Invalid interval.")
        self.interval = interval
        self.step = INTERVALS_MS.get(interval, 0)
        self.offset = offset_ms
        self.origin = WEEK_ORIGIN_MS if interval == "1w" else 0

    def open_of(self, t: int) -> int:
        """Open time of the kline that holds time `t` (ms)."""
        if self.interval == MONTH:
            d = datetime.fromtimestamp((t + self.offset) / 1000, UTC)
            return _ms(datetime(d.year, d.month, 1, tzinfo=UTC)) - self.offset
        local = t + self.offset - self.origin
        return t - local % self.step

    def next_open(self, open_ms: int) -> int:
        """Open time of the kline after the one opening at `open_ms`."""
        if self.interval == MONTH:
            d = datetime.fromtimestamp((open_ms + self.offset) / 1000, UTC)
            year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
            return _ms(datetime(year, month, 1, tzinfo=UTC)) - self.offset
        return open_ms + self.step

    def first_open_from(self, t: int) -> int:
        """The first open time at or after `t`."""
        o = self.open_of(t)
        return o if o == t else self.next_open(o)


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def klines(tape: TradeTape | None, grid: Grid, shift_ms: int, start: int | None, end: int | None,
           limit: int) -> list[list]:
    """Kline rows of `tape` (trade times + `shift_ms`) on `grid`, as the endpoint answers."""
    if tape is None or not tape.times:
        return []
    times = tape.times
    first = grid.open_of(times[0] + shift_ms)
    last = grid.open_of(times[-1] + shift_ms)
    lo = first if start is None else max(first, grid.first_open_from(start))
    hi = last if end is None else min(last, grid.open_of(end))
    if lo > hi:
        return []
    opens: list[int] = []
    if start is None:
        o = hi
        while o >= lo and len(opens) < limit:      # the most recent klines, walking back
            opens.append(o)
            o = grid.open_of(o - 1)
        opens.reverse()
    else:
        o = lo
        while o <= hi and len(opens) < limit:
            opens.append(o)
            o = grid.next_open(o)
    return [_row(tape, grid, shift_ms, o) for o in opens]


def _row(tape: TradeTape, grid: Grid, shift_ms: int, open_ms: int) -> list:
    close_ms = grid.next_open(open_ms) - 1
    times = tape.times
    i = bisect_left(times, open_ms - shift_ms)
    j = bisect_right(times, close_ms - shift_ms)
    if i == j:                                      # no trade: flat at the previous close
        prev = tape.prices[i - 1] if i > 0 else tape.prices[0]
        return [open_ms, f8(prev), f8(prev), f8(prev), f8(prev), f8(ZERO), close_ms, f8(ZERO), 0,
                f8(ZERO), f8(ZERO), "0"]
    prices, qtys, taker_buy = tape.prices[i:j], tape.qtys[i:j], tape.taker_buy[i:j]
    volume = quote = buy_volume = buy_quote = ZERO
    for p, q, tb in zip(prices, qtys, taker_buy):
        volume += q
        quote += p * q
        if tb:
            buy_volume += q
            buy_quote += p * q
    return [open_ms, f8(prices[0]), f8(max(prices)), f8(min(prices)), f8(prices[-1]), f8(volume), close_ms,
            f8(quote), j - i, f8(buy_volume), f8(buy_quote), "0"]
