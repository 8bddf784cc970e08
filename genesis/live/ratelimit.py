"""Binance REQUEST_WEIGHT budget for one client (one IP).

Binance counts the weight of every REST request per IP in one-minute windows and
answers 429 (with ``Retry-After``) over the limit, then 418 (an IP ban, from two
minutes up to three days) to clients that keep going. ``WeightGate`` keeps this
process well inside the limit:

* ``acquire(weight)`` waits until sending `weight` more keeps the estimated use of the
  last minute at or below ``budget_pct`` of the limit (80% by default), and waits out
  any ban first. Waiters are served first come, first served.
* The estimate is the larger of (a) the weight this gate let through in the last 60 s
  (a rolling window: it is never lower than the count of any fixed window that ends
  now) and (b) the exchange's own count from the last ``X-MBX-USED-WEIGHT-1M`` header
  (``observe``) plus what was let through since, for 60 s after that answer. The
  header catches weight spent by anything else on the same IP; taking the larger of
  the two is safe whatever the exchange's window boundaries are.
* ``penalize(status, retry_after_s)`` after a 429 / 418 (or a 403 WAF refusal): no
  request until ``Retry-After`` has passed, or, without the header, an exponential
  backoff (429/403: 1 s, 2 s, 4 s ... at most 60 s; 418: 2 min, 4 min ... at most 1 h).
  ``note_success()`` ends the streak.

The clock and the sleep function are injectable so tests can drive time."""
from __future__ import annotations

import asyncio
import time
from collections import deque

WINDOW_S = 60.0


class WeightGate:
    """Binance REQUEST_WEIGHT budget: keeps use under budget_pct of the 1-minute limit."""

    def __init__(self, limit_per_min: int = 6000, budget_pct: float = 80.0, clock=time.monotonic,
                 sleep=asyncio.sleep):
        if limit_per_min <= 0:
            raise ValueError("limit_per_min must be positive")
        if not 0 < budget_pct <= 100:
            raise ValueError("budget_pct must be in (0, 100]")
        self.limit = int(limit_per_min)
        self.budget_pct = float(budget_pct)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[tuple[float, int]] = deque()   # (time, weight) let through in the last minute
        self._sent_sum = 0
        self._server_used: int | None = None              # last X-MBX-USED-WEIGHT-1M
        self._server_expires = 0.0                         # until then that count may still hold
        self._since_server = 0                             # weight let through since that answer
        self._banned_until = 0.0
        self._streak = 0                                   # penalties since the last success
        self._lock: asyncio.Lock | None = None
        self._lock_loop = None
        self.waited_s = 0.0                                # total time acquire() made callers wait
        self.peak_pct = 0.0                                # highest estimated use right after an acquire

    # ------------------------------------------------------------------ reading

    @property
    def budget(self) -> float:
        """The weight allowed per rolling minute (budget_pct of the limit)."""
        return self.limit * self.budget_pct / 100.0

    def _purge(self, now: float) -> None:
        sent = self._sent
        while sent and sent[0][0] <= now - WINDOW_S:
            self._sent_sum -= sent.popleft()[1]
        if self._server_used is not None and now >= self._server_expires:
            self._server_used = None
            self._since_server = 0

    def estimate(self, now: float | None = None) -> int:
        """Estimated weight used in the current minute."""
        now = self._clock() if now is None else now
        self._purge(now)
        est = self._sent_sum
        if self._server_used is not None:
            est = max(est, self._server_used + self._since_server)
        return est

    @property
    def used_pct(self) -> float:
        """Estimated share of the exchange's limit in use, in % (may exceed 100 after a 429)."""
        return round(self.estimate() * 100.0 / self.limit, 3)

    @property
    def banned_for_s(self) -> float:
        """Seconds until requests may be sent again after a 429/418 (0 when not banned)."""
        return max(0.0, self._banned_until - self._clock())

    # ------------------------------------------------------------------ updating

    def set_limit(self, limit_per_min: int) -> None:
        """Adopt the exchange's announced limit when it is lower than the configured one."""
        if limit_per_min and 0 < int(limit_per_min) < self.limit:
            self.limit = int(limit_per_min)

    def observe(self, used_weight_1m: int | None) -> None:
        """The server's X-MBX-USED-WEIGHT-1M header corrects the local estimate."""
        if used_weight_1m is None:
            return
        try:
            used = int(used_weight_1m)
        except (TypeError, ValueError):
            return
        if used < 0:
            return
        now = self._clock()
        self._purge(now)
        self._server_used = used
        self._server_expires = now + WINDOW_S
        self._since_server = 0

    def penalize(self, status: int, retry_after_s: float | None) -> None:
        """429/418 (or 403): no request until then (exponential backoff when no
        Retry-After; 418 longer)."""
        now = self._clock()
        self._streak += 1
        if retry_after_s is not None and retry_after_s >= 0:
            delay = float(retry_after_s)
            if status == 429 and self._server_used is not None:
                # a 429's Retry-After is the end of the exchange's window: its count ends there
                self._server_expires = min(self._server_expires, now + delay)
        elif status == 418:
            delay = min(3600.0, 120.0 * 2 ** (self._streak - 1))
        else:
            delay = min(60.0, 1.0 * 2 ** (self._streak - 1))
        self._banned_until = max(self._banned_until, now + delay)

    def note_success(self) -> None:
        """A request succeeded: the next penalty starts the backoff from the beginning."""
        self._streak = 0

    # ------------------------------------------------------------------ waiting

    async def acquire(self, weight: int) -> None:
        """Wait (asyncio sleep) until sending `weight` keeps the rolling-minute use at or
        below the budget; also waits out any ban. Then counts it as sent."""
        weight = int(weight)
        if weight < 0:
            raise ValueError("weight must not be negative")
        if weight > self.budget:
            raise ValueError(f"a request of weight {weight} can never fit a budget of {self.budget:g} per minute")
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._banned_until:
                    await self._wait(self._banned_until - now)
                    continue
                if weight > self.budget:          # the limit was lowered meanwhile
                    raise ValueError(f"a request of weight {weight} can never fit a budget of "
                                     f"{self.budget:g} per minute")
                est = self.estimate(now)
                if est + weight <= self.budget:
                    self._sent.append((now, weight))
                    self._sent_sum += weight
                    if self._server_used is not None:
                        self._since_server += weight
                    self.peak_pct = max(self.peak_pct, (est + weight) * 100.0 / self.limit)
                    return
                await self._wait(self._next_release(now, weight))

    def _next_release(self, now: float, weight: int) -> float:
        """Seconds until enough of the estimate has expired for `weight` to fit."""
        budget = self.budget
        local_due = now
        need = self._sent_sum + weight - budget
        if need > 0:
            freed = 0
            for t, w in self._sent:
                freed += w
                if freed >= need:
                    local_due = t + WINDOW_S
                    break
        server_due = now
        if self._server_used is not None and self._server_used + self._since_server + weight > budget:
            server_due = self._server_expires
        return min(max(max(local_due, server_due) - now, 0.001), WINDOW_S)

    async def _wait(self, seconds: float) -> None:
        self.waited_s += seconds
        await self._sleep(seconds)
