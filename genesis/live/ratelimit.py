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

``OrderGate`` does the same for Binance's ORDERS limits (new orders per 10 s and per
day): new orders only, so a cancel never waits behind an order (see its docstring).

The clock and the sleep function are injectable so tests can drive time."""
from __future__ import annotations

import asyncio
import math
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
                if self._take(now, weight):
                    return
                await self._wait(self._next_release(now, weight))

    def try_take(self, weight: int) -> bool:
        """Count `weight` as sent now if that needs no wait (no ban, nobody waiting, room
        in the budget); False, counting nothing, otherwise. The order path's fast lane."""
        now = self._clock()
        if now < self._banned_until or (self._lock is not None and self._lock.locked()):
            return False
        return self._take(now, int(weight))

    def _take(self, now: float, weight: int) -> bool:
        est = self.estimate(now)
        if est + weight > self.budget:
            return False
        self._sent.append((now, weight))
        self._sent_sum += weight
        if self._server_used is not None:
            self._since_server += weight
        self.peak_pct = max(self.peak_pct, (est + weight) * 100.0 / self.limit)
        return True

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


# --------------------------------------------------------------------------- new orders

# Binance's spot ORDERS limits when exchangeInfo announces none: 50 new orders per
# 10 seconds and 160,000 per day, per account. (interval in seconds, limit)
DEFAULT_ORDER_LIMITS: tuple[tuple[float, int], ...] = ((10.0, 50), (86400.0, 160000))
_INTERVAL_S = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}
_HEADER_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ORDER_HEADER = "x-mbx-order-count-"
_HEADER_SLACK_S = 1.0   # an exchange count may include own orders sent up to this much before its window
_SETTLED_WINDOWS_S = 60.0   # windows this short or shorter count an answered order from its answer


def order_limits_from(rate_limits) -> list[tuple[float, int]]:
    """The ORDERS entries of an exchangeInfo ``rateLimits`` list as (interval s, limit)
    pairs; entries it cannot read are skipped."""
    out = []
    for rl in rate_limits or ():
        try:
            if rl.get("rateLimitType") != "ORDERS":
                continue
            seconds = _INTERVAL_S[str(rl["interval"]).upper()] * int(rl.get("intervalNum", 1))
            limit = int(rl["limit"])
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        if seconds > 0 and limit > 0:
            out.append((seconds, limit))
    return out


class _Window:
    """One ORDERS limit: the send times of the orders let through in its interval."""

    __slots__ = ("interval", "limit", "budget", "pct_per_order", "sent", "recent", "server_used",
                 "server_expires", "since_server")

    def __init__(self, interval: float, limit: int, budget_pct: float):
        self.interval = float(interval)
        self.limit = int(limit)
        self.budget = max(1, math.floor(self.limit * budget_pct / 100.0 + 1e-9))
        self.pct_per_order = 100.0 / self.limit
        self.sent: deque[float] = deque()
        self.recent: deque[float] = deque()     # left the window less than _HEADER_SLACK_S ago
        self.server_used: int | None = None     # the exchange's last X-MBX-ORDER-COUNT-<interval>
        self.server_expires = 0.0
        self.since_server = 0                   # orders let through since that answer

    def purge(self, now: float) -> None:
        sent, recent, edge = self.sent, self.recent, now - self.interval
        while sent and sent[0] <= edge:
            recent.append(sent.popleft())
        edge -= _HEADER_SLACK_S
        while recent and recent[0] <= edge:
            recent.popleft()
        if self.server_used is not None and now >= self.server_expires:
            self.server_used = None

    def used(self) -> int:
        n = len(self.sent)
        if self.server_used is not None:
            n = max(n, self.server_used + self.since_server)
        return n


class OrderGate:
    """Binance ORDERS limits (new orders per 10 s and per day, per account): holds new
    orders under ``budget_pct`` of each limit (80% by default) before they are sent.

    * ``acquire()`` returns at once when every window has a free slot (a deque of send
      times per window: a few microseconds); otherwise the caller waits (asyncio sleep,
      first come first served) until the oldest order of the full window leaves it.
      Only new orders take a slot: cancels and every other request never wait here.
    * Each window is rolling (the orders let through in the last `interval` seconds), so
      no fixed window of the exchange, wherever its boundaries are, can hold more; the
      margin below the limit covers the time an order takes to reach the exchange.
    * ``observe_headers(headers)`` reads the exchange's own counts
      (``X-MBX-ORDER-COUNT-10S`` / ``-1D``): when a count is higher than what this gate
      let through in that window (plus a second for the way to the exchange), orders
      placed elsewhere on the account use the limit too, and for one interval after the
      answer the estimate is at least that count plus what was let through since.
    * ``penalize(status, retry_after_s)`` after a -1015 refusal: no new order until
      ``Retry-After`` (or 1 s, 2 s, 4 s ... at most 60 s without it).
    * ``set_limits(pairs)`` adopts the limits exchangeInfo announces (``rateLimits``
      entries of type ORDERS); until then ``DEFAULT_ORDER_LIMITS``.

    The clock and the sleep function are injectable so tests can drive time."""

    def __init__(self, limits=DEFAULT_ORDER_LIMITS, budget_pct: float = 80.0, clock=time.monotonic,
                 sleep=asyncio.sleep):
        if not 0 < budget_pct <= 100:
            raise ValueError("budget_pct must be in (0, 100]")
        self.budget_pct = float(budget_pct)
        self._clock = clock
        self._sleep = sleep
        self._windows: list[_Window] = []
        self.set_limits(limits)
        self._queued = 0                    # callers in the slow path (they go first)
        self._lock: asyncio.Lock | None = None
        self._lock_loop = None
        self._blocked_until = 0.0
        self._streak = 0
        self._last_penalty = -math.inf
        self.waited_s = 0.0                 # total time acquire() made callers wait
        self.waits = 0                      # acquires that found no free slot (or others waiting)
        self.granted = 0                    # slots handed out
        self.last_slot_at = 0.0             # the clock when the latest slot was taken (for settle)
        self.peak_pct = 0.0                 # highest use of a limit right after a slot was taken

    # ------------------------------------------------------------------ reading

    @property
    def limits(self) -> list[tuple[float, int]]:
        """(interval s, limit) of every window."""
        return [(w.interval, w.limit) for w in self._windows]

    @property
    def budgets(self) -> list[int]:
        """Orders allowed per window (budget_pct of its limit, at least 1)."""
        return [w.budget for w in self._windows]

    def used_pct_at(self, now: float) -> float:
        """Highest estimated use of any ORDERS limit, in % of the exchange's limit."""
        pct = 0.0
        for w in self._windows:
            w.purge(now)
            pct = max(pct, w.used() * 100.0 / w.limit)
        return round(pct, 3)

    @property
    def used_pct(self) -> float:
        """Highest estimated use of any ORDERS limit, in % of the exchange's limit."""
        return self.used_pct_at(self._clock())

    @property
    def blocked_for_s(self) -> float:
        """Seconds until new orders may be sent again after a -1015 (0 when not blocked)."""
        return max(0.0, self._blocked_until - self._clock())

    # ------------------------------------------------------------------ updating

    def set_limits(self, limits) -> None:
        """Use these (interval s, limit) windows; the orders already let through stay counted."""
        pairs = sorted({(float(s), int(n)) for s, n in limits if float(s) > 0 and int(n) > 0})
        if not pairs:
            return
        known = sorted({t for w in self._windows for t in (*w.recent, *w.sent)})
        windows = []
        now = self._clock()
        for seconds, limit in pairs:
            w = _Window(seconds, limit, self.budget_pct)
            w.sent.extend(known)
            w.purge(now)
            windows.append(w)
        self._windows = windows

    def observe_headers(self, headers) -> None:
        """Take the exchange's order counts (``X-MBX-ORDER-COUNT-<n><S|M|H|D>``) from an answer."""
        if not headers:
            return
        now = None
        for key, value in headers.items():
            low = str(key).lower()
            if not low.startswith(_ORDER_HEADER):
                continue
            tail = low[len(_ORDER_HEADER):]
            try:
                seconds = float(tail[:-1]) * _HEADER_UNIT_S[tail[-1]]
                count = int(value)
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if count < 0:
                continue
            for w in self._windows:
                if w.interval == seconds:
                    now = self._clock() if now is None else now
                    w.purge(now)
                    # more than this gate let through (a second of slack for the way to the
                    # exchange): other clients use the account too
                    if count > len(w.sent) + len(w.recent):
                        w.server_used, w.server_expires, w.since_server = count, now + w.interval, 0
                    else:              # our own orders explain it: the rolling window says as much
                        w.server_used = None

    def penalize(self, status: int | None = None, retry_after_s: float | None = None) -> None:
        """A -1015 (too many new orders): no new order until Retry-After has passed (or an
        exponential backoff from 1 s, at most 60 s, when the answer has none)."""
        now = self._clock()
        self._streak = self._streak + 1 if now - self._last_penalty < 60.0 else 1
        self._last_penalty = now
        if retry_after_s is not None and retry_after_s >= 0:
            delay = float(retry_after_s)
        else:
            delay = min(60.0, 2.0 ** (self._streak - 1))
        self._blocked_until = max(self._blocked_until, now + delay)

    # ------------------------------------------------------------------ taking slots

    def _take(self, now: float, head: bool = False) -> bool:
        """Take a slot in every window if each has one (and, unless `head`, nobody waits)."""
        if (self._queued and not head) or now < self._blocked_until:
            return False
        windows = self._windows
        peak = 0.0
        for w in windows:                   # the purge and the estimate, inline: this is the hot path
            sent, recent, edge = w.sent, w.recent, now - w.interval
            while sent and sent[0] <= edge:
                recent.append(sent.popleft())
            edge -= _HEADER_SLACK_S
            while recent and recent[0] <= edge:
                recent.popleft()
            n = len(sent)
            if w.server_used is not None:
                if now >= w.server_expires:
                    w.server_used = None
                elif w.server_used + w.since_server > n:
                    n = w.server_used + w.since_server
            if n >= w.budget:
                return False
            pct = (n + 1) * w.pct_per_order
            if pct > peak:
                peak = pct
        for w in windows:
            w.sent.append(now)
            if w.server_used is not None:
                w.since_server += 1
        self.granted += 1
        self.last_slot_at = now
        if peak > self.peak_pct:
            self.peak_pct = peak
        return True

    def settle(self, slot_at: float) -> None:
        """The exchange answered the order whose slot was taken at `slot_at` (the gate's
        clock, `last_slot_at` right after taking it): it counted the order somewhere
        between the send and now, so in the short windows the order's time becomes now.
        A slot is then freed an interval after the answer, never before the exchange
        frees it, however long the way there took (a slow send would otherwise leave
        the exchange still counting an order this gate has let go)."""
        now = self._clock()
        for w in self._windows:
            if w.interval > _SETTLED_WINDOWS_S:   # a day's window: a second makes no difference
                continue
            sent = w.sent
            for i in range(len(sent) - 1, -1, -1):
                if sent[i] == slot_at:
                    del sent[i]
                    sent.append(now)   # every other time in it is an earlier reading of the clock
                    break

    async def acquire(self) -> None:
        """Wait (asyncio sleep) until one more new order keeps every ORDERS window at or
        below its budget, then count it as sent. No wait when there is a free slot."""
        if not self._take(self._clock()):
            await self._acquire_slow()

    def try_take(self) -> bool:
        """Count one new order as sent now if a slot is free and nobody waits; False,
        counting nothing, otherwise."""
        return self._take(self._clock())

    async def _acquire_slow(self) -> None:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        self._queued += 1
        self.waits += 1
        try:
            async with self._lock:
                while True:
                    now = self._clock()
                    if self._take(now, head=True):
                        return
                    await self._wait(self._next_slot(now))
        finally:
            self._queued -= 1

    def _next_slot(self, now: float) -> float:
        """Seconds until every window can take one more order."""
        due = self._blocked_until
        for w in self._windows:
            w.purge(now)
            over = len(w.sent) - w.budget          # the oldest `over + 1` must leave first
            if over >= 0:
                due = max(due, w.sent[over] + w.interval)
            if w.server_used is not None and w.server_used + w.since_server >= w.budget:
                due = max(due, w.server_expires)
        return min(max(due - now, 0.001), max(w.interval for w in self._windows))

    async def _wait(self, seconds: float) -> None:
        self.waited_s += seconds
        await self._sleep(seconds)
