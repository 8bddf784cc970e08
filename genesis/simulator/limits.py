"""Binance-style request weights and limits for one IP (everything here is 127.0.0.1).

REQUEST_WEIGHT: each request adds its endpoint's weight to the current window
(``weight_window_s``, 60 s by default; a window starts with the first request after
the previous one ended). Over the limit the answer is 429 with ``Retry-After`` (seconds
to the end of the window); a client that keeps sending after ``ban_after`` 429s in one
window gets 418 and is banned for ``ban_s`` seconds (every request 418). ORDERS: new
orders per 10 s (and per day); over it the answer is 429 with -1015."""
from __future__ import annotations

import math

from .errors import ApiError

# (method, path) -> weight, or a function of the query parameters
_DEPTH_STEPS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


def _depth_weight(q) -> int:
    try:
        limit = int(q.get("limit", 100))
    except ValueError:
        limit = 100
    for top, w in _DEPTH_STEPS:
        if limit <= top:
            return w
    return 250


WEIGHTS = {
    ("GET", "ping"): 1, ("GET", "time"): 1, ("GET", "exchangeInfo"): 20,
    ("GET", "depth"): _depth_weight,
    ("GET", "ticker/bookTicker"): lambda q: 2 if q.get("symbol") else 4,
    ("GET", "ticker/price"): lambda q: 2 if q.get("symbol") else 4,
    ("GET", "klines"): 2,
    ("POST", "order/test"): lambda q: 20 if (q.get("computeCommissionRates") or "").lower() == "true" else 1,
    ("GET", "account"): 20, ("POST", "order"): 1, ("DELETE", "order"): 1, ("GET", "order"): 4,
    ("GET", "openOrders"): lambda q: 6 if q.get("symbol") else 80, ("DELETE", "openOrders"): 1,
    ("GET", "allOrders"): 20, ("GET", "myTrades"): 20,
    ("POST", "userDataStream"): 2, ("PUT", "userDataStream"): 2, ("DELETE", "userDataStream"): 2,
}


def weight_of(method: str, endpoint: str, query) -> int:
    """The REQUEST_WEIGHT of one /api/v3 request (1 for anything not listed)."""
    w = WEIGHTS.get((method, endpoint), 1)
    return w(query) if callable(w) else w


class Limits:
    """Weight and order counters with Binance's 429 / 418 behaviour."""

    def __init__(self, weight_limit: int = 6000, window_s: float = 60.0, ban_after: int = 3,
                 ban_s: float = 120.0, orders_10s: int = 50, orders_1d: int = 160000):
        self.weight_limit = weight_limit
        self.window_s = window_s
        self.ban_after = ban_after
        self.ban_s = ban_s
        self.orders_10s = orders_10s
        self.orders_1d = orders_1d
        self.reset()

    def reset(self) -> None:
        """Forget used weight, 429 count, bans and order counts."""
        self.used = 0
        self.window_start: float | None = None
        self.rejections = 0
        self.banned_until = 0.0
        self.order_window: float | None = None
        self.order_count = 0
        self.order_day = 0
        self.total_429 = 0
        self.total_418 = 0
        self.total_1015 = 0

    def _retry(self, seconds: float) -> dict:
        return {"Retry-After": str(max(1, math.ceil(seconds)))}

    def charge(self, weight: int, now: float) -> None:
        """Count one request of `weight` at time `now` (seconds); raise 429/418 when over."""
        if now < self.banned_until:
            self.total_418 += 1
            raise ApiError(-1003, f"Way too many requests; IP(127.0.0.1) banned until "
                           f"{int(self.banned_until * 1000)}. Please use the websocket for live "
                           "updates to avoid bans.", 418, self._retry(self.banned_until - now))
        if self.window_start is None or now >= self.window_start + self.window_s:
            self.window_start = now
            self.used = 0
            self.rejections = 0
        self.used += weight
        if self.used > self.weight_limit:
            self.rejections += 1
            if self.rejections > self.ban_after:
                self.banned_until = now + self.ban_s
                self.total_418 += 1
                raise ApiError(-1003, f"Way too many requests; IP(127.0.0.1) banned until "
                               f"{int(self.banned_until * 1000)}. Please use the websocket for live "
                               "updates to avoid bans.", 418, self._retry(self.ban_s))
            self.total_429 += 1
            raise ApiError(-1003, f"Too many requests; current limit of IP(127.0.0.1) request weight "
                           f"is {self.weight_limit} per minute. Please use WebSocket Streams for live "
                           "updates to avoid polling the API.", 429,
                           self._retry(self.window_start + self.window_s - now))

    def charge_order(self, now: float) -> None:
        """Count one new order; raise 429 (-1015) over the ORDERS limits."""
        if self.order_window is None or now >= self.order_window + 10:
            self.order_window = now
            self.order_count = 0
        self.order_count += 1
        self.order_day += 1
        if self.order_count > self.orders_10s:
            self.total_1015 += 1
            raise ApiError(-1015, f"Too many new orders; current limit is {self.orders_10s} orders per "
                           "10 SECOND.", 429, self._retry(self.order_window + 10 - now))
        if self.order_day > self.orders_1d:
            self.total_1015 += 1
            raise ApiError(-1015, f"Too many new orders; current limit is {self.orders_1d} orders per DAY.",
                           429, self._retry(3600))

    def headers(self) -> dict:
        """X-MBX-USED-WEIGHT-1M and order-count headers for a response."""
        return {"X-MBX-USED-WEIGHT-1M": str(self.used), "X-MBX-ORDER-COUNT-10S": str(self.order_count),
                "X-MBX-ORDER-COUNT-1D": str(self.order_day)}

    def state(self, now: float) -> dict:
        """For /sim/state."""
        return {"used_weight": self.used, "weight_limit": self.weight_limit, "window_s": self.window_s,
                "banned_for_s": max(0.0, round(self.banned_until - now, 3)),
                "answered_429": self.total_429, "answered_418": self.total_418, "answered_1015": self.total_1015,
                "orders_10s": self.order_count, "orders_1d": self.order_day}
