"""Binance spot REST for the live session, through ccxt's async binance client.

``ExchangeClient`` sends Binance's own endpoints (``/api/v3/order``, ``/account``, ...)
through ccxt's signed request machinery and returns Binance's raw JSON, so what the
live session journals is what the exchange said. Around every request:

* **Weight budget**: a ``WeightGate`` (ratelimit.py) is acquired with the endpoint's
  REQUEST_WEIGHT first (ccxt's own throttle is off) and corrected from the
  ``X-MBX-USED-WEIGHT-1M`` header of every answer; a 429/418 stops every request until
  its ``Retry-After`` has passed. The exchange's announced limit (exchangeInfo
  ``rateLimits``) lowers the gate's limit when it is lower.
* **New-order budget**: an ``OrderGate`` (ratelimit.py) holds every new-order send
  under ``budget_pct`` of the ORDERS limits exchangeInfo announces (50 per 10 s and
  160,000 per day when it announces none), corrected from ``X-MBX-ORDER-COUNT-*``
  headers; a -1015 blocks new orders only (cancels and queries go on).
* **Clock**: ``clock_offset_ms`` (server - local) is measured at start and by
  ``sync_clock()``; ccxt's ``timeDifference`` follows it, so signed timestamps are in
  the exchange's time even when the local clock is off. A -1021 (timestamp outside
  recvWindow) re-measures the clock and retries.
* **Retries**: network errors, timeouts, 5xx and Binance's "status unknown" codes
  (-1000, -1001, -1006, -1007, -1008) are retried with exponential backoff
  (``backoff_s``: 0.25 s doubling to 5 s), 429/418/403 after the gate's wait, at most
  ``max_retries`` times; then ``ExchangeUnavailable``. Any other 4xx answer is
  definitive: ``OrderRejected`` for a new order, ``RequestFailed`` otherwise.
* **Idempotent orders**: see ``submit``.
* **System events** through ``on_system(kind, fields)``: ``api_response`` {ok,
  latency_ms} for every answer or failure, ``rate_limit`` {used_pct, orders_used_pct}
  for every answer carrying the weight header (share of the exchange's weight limit, and
  of its tightest new-order limit), ``api_status``
  {reachable} when reachability changes (an answer below 500 = reachable; network
  errors, timeouts and 5xx = not).
* **No secrets out**: exception messages are built from the HTTP method, the endpoint
  path, the status and Binance's code and message only (never a URL with its query
  string, a header or a body); ccxt's own debug log lines go through a filter that
  removes query strings, signatures, headers and the keys.

The live code never imports the simulator: ``binance_urls(base_url)`` points ccxt at
any base url (https://api.binance.com for the real exchange, the simulator's
``rest_url`` in tests and demos)."""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Self
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async

from .order_wire import OrderWire, WireError
from .ratelimit import OrderGate, WeightGate, order_limits_from
from .signing import OrderSigner, hmac_secret

log = logging.getLogger("genesis.live.rest")

BINANCE_REST = "https://api.binance.com"

# Every REST family ccxt's binance knows, as the path after the host. All of them point
# at the one base url, so nothing can reach another host by accident (only /api/v3 is used).
_FAMILIES = {
    "public": "/api/v3", "private": "/api/v3", "v1": "/api/v1",
    "sapi": "/sapi/v1", "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3", "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1", "dapiPrivate": "/dapi/v1", "dapiPrivateV2": "/dapi/v2", "dapiData": "/futures/data",
    "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3", "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3", "fapiData": "/futures/data",
    "eapiPublic": "/eapi/v1", "eapiPrivate": "/eapi/v1", "papi": "/papi/v1", "papiV2": "/papi/v2",
}

_CLIENT_ID_RE = re.compile(r"^[.A-Za-z0-9:/_-]{1,36}$")
_UNCERTAIN_CODES = {-1000, -1001, -1006, -1007, -1008}   # "execution status unknown" / try again
_ORDER_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER")
_Q8 = Decimal("0.00000001")


def binance_urls(base_url: str) -> dict:
    """ccxt ``urls`` override: every REST family of ccxt's binance at `base_url`
    (``https://api.binance.com`` or ``http://127.0.0.1:PORT``)."""
    parts = urlsplit(base_url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"rest url {base_url!r}: expected scheme://host[:port]")
    base = f"{parts.scheme}://{parts.netloc}"
    return {"api": {family: base + path for family, path in _FAMILIES.items()}}


# ----------------------------------------------------------------------- redaction

_SECRETS: set[str] = set()      # api keys and secrets of every client made in this process
_QUERY_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\",]*)\?[^\s'\",]*", re.IGNORECASE)
_SIGNATURE_RE = re.compile(r"signature=[^&\s'\"]*", re.IGNORECASE)
_CCXT_LINE_RE = re.compile(r",?\s*(Request|Response):\s*(\d{3})?.*", re.DOTALL)
_APIKEY_HEADER_RE = re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` without query strings, signatures, API-key headers or any known key/secret."""
    text = _QUERY_RE.sub(r"\1?<redacted>", str(text))
    text = _SIGNATURE_RE.sub("signature=<redacted>", text)
    text = _APIKEY_HEADER_RE.sub(r"\1<redacted>", text)
    for secret in _SECRETS:
        if secret and secret in text:
            text = text.replace(secret, "<redacted>")
    return text


class _RedactFilter(logging.Filter):
    """ccxt logs every request (url with signature, headers with the API key) at debug
    level: keep only the redacted first line of such records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: drop its arguments
            text = str(record.msg)
        text = redact(text)
        # ccxt's "METHOD url, Request: headers body" / "..., Response: status headers body":
        # keep the method, the url without its query and the status
        m = _CCXT_LINE_RE.search(text)
        if m:
            text = text[:m.start()] + f" ({m.group(1).lower()}{' ' + m.group(2) if m.group(2) else ''})"
        record.msg, record.args = text, None
        record.exc_info = record.exc_text = None
        return True


_CCXT_LOG = logging.getLogger("genesis.live.ccxt")
if not any(isinstance(f, _RedactFilter) for f in _CCXT_LOG.filters):
    _CCXT_LOG.addFilter(_RedactFilter())


# ----------------------------------------------------------------------- errors


class ExchangeError(Exception):
    """A failed exchange request. The message says what was asked (method and endpoint
    path) and what the exchange answered (HTTP status, Binance code and message); it
    never holds a url query string, a header, a key or a signature."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 exchange_msg: str | None = None):
        super().__init__(redact(message))
        self.status = status
        self.code = code
        self.exchange_msg = exchange_msg


class OrderRejected(ExchangeError):
    """The exchange refused the order (or it could not be sent as given): definitive,
    nothing was placed. ``code`` is Binance's error code when it answered one."""

    def __init__(self, message: str, *, client_id: str | None = None, **kw):
        super().__init__(message, **kw)
        self.client_id = client_id


class RequestFailed(ExchangeError):
    """A definitive refusal of a request other than a new order (bad symbol, unknown
    listenKey, permissions, ...)."""


class ExchangeUnavailable(ExchangeError):
    """Gave up after retries (network, timeouts, 5xx, bans). For ``submit``,
    ``maybe_placed`` tells whether an attempt may have reached the matching engine
    (its outcome is then unknown until the order is queried again)."""

    def __init__(self, message: str, *, maybe_placed: bool = False, **kw):
        super().__init__(message, **kw)
        self.maybe_placed = maybe_placed


class _HttpError(Exception):
    """Raised inside ccxt's fetch for every answer with status >= 400 (replaces ccxt's
    text-matching error mapping, whose messages contain the signed url)."""

    def __init__(self, status: int, headers: dict, body: str | None):
        super().__init__(status)
        self.status = status
        self.headers = headers or {}
        self.body = body


@dataclass
class Failure:
    """One failed request attempt, classified."""

    kind: str                     # http | timeout | network | local
    status: int | None = None
    code: int | None = None
    msg: str = ""
    retry_after: float | None = None
    maybe_executed: bool = False  # the request may have reached the matching engine

    @property
    def rate_limited(self) -> bool:
        return self.status in (429, 418, 403)

    @property
    def definitive(self) -> bool:
        """The exchange answered and refused: retrying the same request cannot help
        (except -1021, which a clock re-sync fixes)."""
        if self.kind == "local":
            return True
        return (self.kind == "http" and self.status is not None and 400 <= self.status < 500
                and not self.rate_limited and self.status != 408 and self.code not in _UNCERTAIN_CODES)

    def describe(self) -> str:
        if self.kind == "http":
            parts = [f"HTTP {self.status}"]
            if self.code is not None:
                parts.append(f"code {self.code}")
            if self.msg:
                parts.append(self.msg)
            if self.retry_after is not None:
                parts.append(f"Retry-After {self.retry_after:g} s")
            return ", ".join(parts)
        return self.msg or self.kind


def _header(headers: dict, name: str) -> str | None:
    low = name.lower()
    for k, v in (headers or {}).items():
        if str(k).lower() == low:
            return v
    return None


def _parse_retry_after(value) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def _http_failure(e: _HttpError) -> Failure:
    code = msg = None
    body = e.body or ""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        raw = data.get("code")
        try:
            code = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            code = None
        m = data.get("msg")
        msg = str(m)[:300] if m is not None else None
    if msg is None:
        msg = redact(body.strip()[:120]) if body else ""
    status = e.status
    maybe = status >= 500 or status == 408 or code in _UNCERTAIN_CODES
    return Failure("http", status, code, redact(msg), _parse_retry_after(_header(e.headers, "Retry-After")), maybe)


def _weight(method: str, path: str, params: dict) -> int:
    """Binance spot REQUEST_WEIGHT of one /api/v3 request."""
    if path == "depth":
        limit = int(params.get("limit", 100))
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if path == "openOrders" and method == "GET":
        return 6 if params.get("symbol") else 80
    return _WEIGHTS.get((method, path), 1)


_WEIGHTS = {("GET", "klines"): 2, ("GET", "exchangeInfo"): 20, ("GET", "account"): 20, ("GET", "order"): 4,
            ("GET", "myTrades"): 20, ("GET", "allOrders"): 20, ("POST", "userDataStream"): 2,
            ("PUT", "userDataStream"): 2, ("DELETE", "userDataStream"): 2}


def _fmt(value: float, what: str) -> str:
    """A quantity or price as Binance wants it: plain decimal, at most 8 decimals (only
    float noise beyond that is removed: exchange steps are never finer than 1e-8)."""
    if type(value) is float and 0 < value < 1e15:
        # the usual case, a float written with at most 8 decimals: its shortest repr is
        # the answer (the same text as the Decimal path below, without its cost)
        text = repr(value)
        if "e" not in text:
            whole, _, frac = text.partition(".")
            if len(frac) <= 8:
                frac = frac.rstrip("0")
                return f"{whole}.{frac}" if frac else whole
    try:
        d = Decimal(repr(float(value)))
    except (TypeError, ValueError, InvalidOperation):
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    d = d.quantize(_Q8, rounding=ROUND_HALF_EVEN)
    if d <= 0:
        raise ValueError(f"{what} {value!r} rounds to zero at 8 decimals")
    text = format(d.normalize(), "f")
    return text


# ----------------------------------------------------------------------- the ccxt client


class _Binance(ccxt_async.binance):
    """ccxt's async binance with two hooks: every answer's headers reach the client
    (weight header, announced limits), and every HTTP error becomes an ``_HttpError``
    carrying only status, headers and body (ccxt's own error texts hold the signed url)."""

    genesis_on_response = None

    def on_rest_response(self, code, reason, url, method, response_headers, response_body, request_headers,
                         request_body):
        hook = self.genesis_on_response
        if hook is not None:
            hook(code, response_headers, url, response_body)
        return super().on_rest_response(code, reason, url, method, response_headers, response_body,
                                        request_headers, request_body)

    def handle_errors(self, code, reason, url, method, headers, body, response, request_headers, request_body):
        if code is not None and int(code) >= 400:
            raise _HttpError(int(code), headers, body)


@dataclass(slots=True)
class SentOrder:
    """A new order's first attempt, written by `ExchangeClient.send_order_now`."""

    params: dict
    waiter: asyncio.Future = field(repr=False)      # its WireAnswer
    url: str = field(repr=False)                    # signed: never logged
    started: float              # time.perf_counter() of the write
    slot_at: float              # OrderGate.last_slot_at of its ORDERS slot


class ExchangeClient:
    """Binance spot REST (raw Binance answers) with weight budget, clock tracking,
    retries and idempotent order submission."""

    def __init__(self, rest_url: str, api_key: str, secret: str, gate: WeightGate | None = None,
                 on_system=None, timeout_s: float = 10.0, max_retries: int = 5, *,
                 recv_window_ms: int = 5000, backoff_s: tuple[float, float] = (0.25, 5.0),
                 order_gate: OrderGate | None = None, order_connection: bool = True):
        self.rest_url = rest_url.rstrip("/")
        self._urls = binance_urls(self.rest_url)
        self._api_key = api_key
        self._secret = secret
        for s in (api_key, secret):
            if s:
                _SECRETS.add(s)
        self.gate = gate if gate is not None else WeightGate()
        self.order_gate = order_gate if order_gate is not None else OrderGate()
        self.on_system = on_system
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        if not 0 < int(recv_window_ms) <= 60000:
            raise ValueError("recv_window_ms must be in 1..60000")
        self.recv_window_ms = int(recv_window_ms)
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self.clock_offset_ms: int = 0
        self.clock_synced_at: float | None = None     # time.monotonic() of the last sync
        self.markets: dict = {}
        self.reachable: bool | None = None
        self._ex: _Binance | None = None
        self._signer: OrderSigner | None = None
        self.order_connection = bool(order_connection)
        self._wire: OrderWire | None = None      # new orders and cancels (order_wire.py)
        # what reconciliation needs to tell "never sent" from "still on its way": when this
        # client began (any order of an earlier process was last sent before it), and, for
        # each order whose submit ended without an answer, when its last attempt was sent
        self.started = time.monotonic()
        self.last_sent: dict[str, float] = {}   # client id -> time.monotonic() of its last send
        # client id -> time.time_ns() its first attempt was handed to the socket (the order
        # connection) or to ccxt's fetch: the live session takes it as the order's send time
        self.first_sent_ns: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ExchangeClient({self.rest_url!r})"

    # ------------------------------------------------------------------ lifecycle

    async def start(self, retries: int | None = None) -> None:
        """Create the ccxt client, load the markets (one exchangeInfo request) and
        measure the clock offset. `retries`: how many times exchangeInfo is asked again
        when the exchange cannot be reached (default `max_retries`; 0: one attempt, for a
        caller that waits and tries again itself); then ExchangeUnavailable."""
        if self._ex is None:
            ex = _Binance({
                "apiKey": self._api_key, "secret": self._secret, "urls": self._urls,
                "enableRateLimit": False, "timeout": int(self.timeout_s * 1000),
                "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                            "fetchCurrencies": False, "fetchMargins": False,
                            "adjustForTimeDifference": False, "timeDifference": 0,
                            "recvWindow": self.recv_window_ms,
                            "warnOnFetchOpenOrdersWithoutSymbol": False},
            })
            ex.logger = _CCXT_LOG
            ex.verbose = False
            ex.genesis_on_response = self._on_response
            self._ex = ex
            if hmac_secret(self._secret):
                self._signer = OrderSigner(self._api_key, self._secret, self._urls["api"]["private"])
                if self.order_connection:
                    self._wire = OrderWire(self._urls["api"]["private"], connect_timeout_s=self.timeout_s)
        failures = 0
        while True:
            failure = await self._attempt(lambda reload=failures > 0: self._ex.load_markets(reload=reload), 20)
            if failure is None:
                break
            if retries is not None and failures >= retries and not failure.definitive and failure.code != -1021:
                raise ExchangeUnavailable(f"GET /api/v3/exchangeInfo: {failure.describe()}", status=failure.status,
                                          code=failure.code, exchange_msg=failure.msg)
            failures = await self._after_failure("GET /api/v3/exchangeInfo", failure, failures)
        self.markets = self._ex.markets
        await self.sync_clock()
        if self._wire is not None:
            await self._wire.start()

    async def close(self) -> None:
        """Close the HTTP session and the order connections."""
        if self._wire is not None:
            await self._wire.close()
        if self._ex is not None:
            await self._ex.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def ccxt_symbol(self, symbol: str) -> str:
        """Binance id ("BTCUSDT") -> ccxt symbol ("BTC/USDT")."""
        market = (self._ex.markets_by_id or {}).get(symbol.upper()) if self._ex is not None else None
        if not market:
            raise KeyError(f"unknown symbol {symbol!r}")
        return market[0]["symbol"]

    # ------------------------------------------------------------------ clock

    async def sync_clock(self) -> int:
        """Measure server time - local time (ms) with GET /api/v3/time (midpoint of the
        round trip) and make ccxt's signed timestamps follow it."""
        failures = 0
        while True:
            box: dict = {}

            async def call(box=box):
                box["t0"] = time.time() * 1000
                box["r"] = await self._ex.request("time", ["public"], "GET", {})
                box["t1"] = time.time() * 1000

            failure = await self._attempt(call, 1)
            if failure is None:
                t0, t1 = box["t0"], box["t1"]
                try:
                    server = int(box["r"]["serverTime"])
                except (KeyError, TypeError, ValueError):
                    raise ExchangeError("GET /api/v3/time: no serverTime in the answer") from None
                offset = round(server - (t0 + t1) / 2)
                self.clock_offset_ms = offset
                self._ex.options["timeDifference"] = -offset
                self.clock_synced_at = time.monotonic()
                log.info("exchange clock offset %+d ms (round trip %.1f ms)", offset, t1 - t0)
                return offset
            failures = await self._after_failure("GET /api/v3/time", failure, failures)

    def server_time_ms(self) -> int:
        """The exchange's clock now, as tracked."""
        return int(time.time() * 1000) + self.clock_offset_ms

    # ------------------------------------------------------------------ plumbing

    def _emit(self, kind: str, fields: dict) -> None:
        cb = self.on_system
        if cb is None:
            return
        try:
            result = cb(kind, fields)
            if inspect.isawaitable(result):
                asyncio.ensure_future(result)
        except Exception:  # a broken observer must not break trading
            log.exception("on_system callback failed for %s", kind)

    def _set_reachable(self, reachable: bool) -> None:
        if reachable != self.reachable:
            self.reachable = reachable
            self._emit("api_status", {"reachable": reachable})

    def _on_response(self, status, headers, url, body) -> None:
        """Every HTTP answer, from inside ccxt: the weight header, announced limits."""
        used = _header(headers, "X-MBX-USED-WEIGHT-1M")
        if used is not None:
            try:
                self.gate.observe(int(used))
            except (TypeError, ValueError):
                pass
            else:
                self.order_gate.observe_headers(headers)
                self._emit("rate_limit", {"used_pct": self.gate.used_pct, "orders_used_pct": self.order_gate.used_pct})
        if status == 200 and url and urlsplit(url).path.endswith("/exchangeInfo"):
            try:
                rate_limits = json.loads(body).get("rateLimits", ())
                for rl in rate_limits:
                    if (rl.get("rateLimitType") == "REQUEST_WEIGHT" and rl.get("interval") == "MINUTE"
                            and int(rl.get("intervalNum", 1)) == 1):
                        self.gate.set_limit(int(rl["limit"]))
                self.order_gate.set_limits(order_limits_from(rate_limits))
            except (ValueError, TypeError, AttributeError, KeyError):
                pass

    async def _attempt(self, make_call, weight: int, new_order: bool = False, *,
                       started: float | None = None, slot: float | None = None) -> Failure | None:
        """One request: gate, send, classify, report. None when it succeeded. With
        `started` (perf_counter of its send), the request was sent already, gates taken
        (`slot`: its ORDERS slot's time, OrderGate.last_slot_at)."""
        slot_at = slot
        if started is None:
            await self.gate.acquire(weight)
            if new_order:   # ORDERS limits, after any weight wait: the slot's time is the send time
                await self.order_gate.acquire()
                slot_at = self.order_gate.last_slot_at
            started = time.perf_counter()
        failure: Failure | None = None
        try:
            async with asyncio.timeout(self.timeout_s + 2.0):
                await make_call()
        except _HttpError as e:
            failure = _http_failure(e)
        except ccxt_async.RequestTimeout:
            failure = Failure("timeout", msg=f"no answer within {self.timeout_s:g} s", maybe_executed=True)
        except TimeoutError:
            failure = Failure("timeout", msg=f"no answer within {self.timeout_s:g} s", maybe_executed=True)
        except WireError as e:     # written, then the connection failed: it may have executed
            failure = Failure("network", msg=str(e), maybe_executed=True)
        except ccxt_async.ExchangeClosedByUser:
            failure = Failure("local", msg="the client is closed")
        except ccxt_async.BaseError as e:
            failure = self._transport_failure(e)
        latency_ms = (time.perf_counter() - started) * 1000
        if slot_at is not None:   # answered, or gone for good: the exchange has counted it by now if ever
            self.order_gate.settle(slot_at)
        if failure is None or failure.kind != "local":
            self._emit("api_response", {"ok": failure is None, "latency_ms": round(latency_ms, 3)})
        if failure is None:
            self.gate.note_success()
            self._set_reachable(True)
        elif failure.kind == "http":
            self._set_reachable(failure.status < 500)
            if failure.rate_limited:   # -1015 (too many new orders) holds back new orders only
                (self.order_gate if failure.code == -1015 else self.gate).penalize(failure.status, failure.retry_after)
        elif failure.kind in ("timeout", "network"):
            self._set_reachable(False)
        return failure

    @staticmethod
    def _transport_failure(e: Exception) -> Failure:
        """A ccxt exception that is not an HTTP answer. Only class names are kept: ccxt's
        texts contain the signed url."""
        import aiohttp  # ccxt's transport

        cause = e.__cause__ or e.__context__
        if isinstance(e, ccxt_async.NetworkError) or isinstance(cause, (aiohttp.ClientError, OSError)):
            name = type(cause).__name__ if cause is not None else type(e).__name__
            not_sent = isinstance(cause, aiohttp.ClientConnectorError)
            detail = "cannot connect" if not_sent else "connection failed"
            return Failure("network", msg=f"{detail} ({name})", maybe_executed=not not_sent)
        return Failure("local", msg=f"the request could not be made ({type(e).__name__})")

    async def _after_failure(self, what: str, failure: Failure, failures: int) -> int:
        """Retry bookkeeping for idempotent requests: raises when it is over, otherwise
        waits (backoff, clock re-sync) and returns the new failure count."""
        if failure.code == -1021 and failures < self.max_retries:
            log.warning("%s: %s; re-measuring the clock", what, failure.describe())
            await self.sync_clock()
            return failures + 1
        if failure.definitive:
            raise RequestFailed(f"{what}: {failure.describe()}", status=failure.status, code=failure.code,
                                exchange_msg=failure.msg)
        failures += 1
        if failures > self.max_retries:
            raise ExchangeUnavailable(f"{what}: gave up after {failures} attempts: {failure.describe()}",
                                      status=failure.status, code=failure.code, exchange_msg=failure.msg)
        log.warning("%s: %s; retry %d of %d", what, failure.describe(), failures, self.max_retries)
        await self._pause(failures, failure)
        return failures

    async def _pause(self, failures: int, failure: Failure) -> None:
        if failure.rate_limited:
            return          # the gate waits out Retry-After in the next acquire
        base, cap = self.backoff_s
        await asyncio.sleep(min(cap, base * 2 ** (failures - 1)))

    async def _once(self, api: str, method: str, path: str, params: dict) -> tuple[object, Failure | None]:
        box: dict = {}
        signer = self._signer if path == "order" and method != "GET" else None

        async def call():
            if signer is not None:   # the order path: signed here (signing.py), sent on an order connection
                ex = self._ex
                if method == "POST":   # a new order's send time is its signed timestamp's (after any gate wait)
                    self.last_sent[params["newClientOrderId"]] = time.monotonic()
                url, headers, body = signer.request(method, params, self.server_time_ms(), self.recv_window_ms)
                waiter = self._wire.send(method, url, headers) if self._wire is not None else None
                if method == "POST":
                    self.first_sent_ns.setdefault(params["newClientOrderId"], time.time_ns())
                if waiter is None:   # no order connection ready: ccxt's fetch (its aiohttp session)
                    box["r"] = await ex.fetch(url, method, headers, body)
                else:
                    box["r"] = await self._wire_answer(waiter, url)
            else:
                box["r"] = await self._ex.request(path, [api], method, dict(params))

        failure = await self._attempt(call, _weight(method, path, params), method == "POST" and path == "order")
        return box.get("r"), failure

    async def _wire_answer(self, waiter, url: str):
        """The JSON of an order connection's answer, classified as ccxt's fetch would be
        (the same response hook; an HTTP error raises _HttpError)."""
        async with asyncio.timeout(self.timeout_s):
            answer = await waiter
        self._on_response(answer.status, answer.headers, url, answer.body)
        if answer.status >= 400:
            raise _HttpError(answer.status, answer.headers, answer.body)
        try:
            return json.loads(answer.body)
        except ValueError:
            raise WireError(f"HTTP {answer.status} answer is not JSON") from None

    async def _read_sent(self, sent: SentOrder) -> tuple[object, Failure | None]:
        box: dict = {}

        async def call():
            box["r"] = await self._wire_answer(sent.waiter, sent.url)

        failure = await self._attempt(call, 0, started=sent.started, slot=sent.slot_at)
        return box.get("r"), failure

    async def _call(self, api: str, method: str, path: str, params: dict):
        """An idempotent request with retries; raises RequestFailed / ExchangeUnavailable."""
        if self._ex is None:
            raise ExchangeError("the client is not started")
        failures = 0
        what = f"{method} /api/v3/{path}"
        while True:
            result, failure = await self._once(api, method, path, params)
            if failure is None:
                return result
            failures = await self._after_failure(what, failure, failures)

    # ------------------------------------------------------------------ account and market

    async def balances(self) -> dict[str, tuple[float, float]]:
        """asset -> (free, locked), from GET /api/v3/account."""
        account = await self._call("private", "GET", "account", {})
        return {b["asset"]: (float(b["free"]), float(b["locked"])) for b in account.get("balances", ())}

    async def account(self) -> dict:
        """The raw GET /api/v3/account answer."""
        return await self._call("private", "GET", "account", {})

    async def depth_snapshot(self, symbol: str, limit: int = 1000) -> dict:
        """Raw {"lastUpdateId", "bids", "asks"} from GET /api/v3/depth."""
        return await self._call("public", "GET", "depth", {"symbol": symbol.upper(), "limit": int(limit)})

    async def klines(self, symbol: str, interval: str = "1m", limit: int = 1000,
                     end_ms: int | None = None) -> list[list]:
        """Raw candles from GET /api/v3/klines, oldest first: [open ms, open, high, low,
        close, volume (strings), close ms, ...]; the last `limit` up to `end_ms`."""
        params: dict = {"symbol": symbol.upper(), "interval": interval, "limit": int(limit)}
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        return list(await self._call("public", "GET", "klines", params))

    async def ping(self) -> float:
        """GET /api/v3/ping; the round trip in ms."""
        started = time.perf_counter()
        await self._call("public", "GET", "ping", {})
        return (time.perf_counter() - started) * 1000

    # ------------------------------------------------------------------ orders

    def _order_params(self, client_id: str, symbol: str, side: str, type_: str, qty: float,
                      price: float | None, time_in_force: str) -> dict:
        sym = str(symbol).upper()
        where = f"{sym} {client_id!r}"
        if not isinstance(client_id, str) or not _CLIENT_ID_RE.match(client_id):
            raise OrderRejected(f"{where}: client order id must be 1-36 characters of A-Z a-z 0-9 . : / _ -",
                                client_id=str(client_id)[:40])
        if self._ex is None:
            raise ExchangeError("the client is not started")
        if sym not in (self._ex.markets_by_id or {}):
            raise OrderRejected(f"{where}: unknown symbol", client_id=client_id)
        s = str(side).upper()
        if s not in ("BUY", "SELL"):
            raise OrderRejected(f"{where}: side must be buy or sell, got {side!r}", client_id=client_id)
        t = str(type_).upper()
        if t not in _ORDER_TYPES:
            raise OrderRejected(f"{where}: order type must be market, limit or limit_maker, got {type_!r}",
                                client_id=client_id)
        try:
            params = {"symbol": sym, "side": s, "type": t, "quantity": _fmt(qty, "quantity"),
                      "newClientOrderId": client_id, "newOrderRespType": "FULL"}
            if t == "MARKET":
                if price is not None:
                    raise ValueError("a market order takes no price")
            else:
                if price is None:
                    raise ValueError(f"a {t.lower()} order needs a price")
                params["price"] = _fmt(price, "price")
                if t == "LIMIT":
                    params["timeInForce"] = str(time_in_force).upper()
        except ValueError as e:
            raise OrderRejected(f"{where}: {e}", client_id=client_id) from None
        return params

    @staticmethod
    def _mismatch(found: dict, params: dict) -> str | None:
        """Why an order the exchange has under our client id is not this request (None if it is)."""
        for key in ("symbol", "side", "type"):
            if str(found.get(key, "")).upper() != params[key]:
                return f"{key} {found.get(key)!r} != {params[key]!r}"
        try:
            if Decimal(str(found.get("origQty"))) != Decimal(params["quantity"]):
                return f"quantity {found.get('origQty')} != {params['quantity']}"
            if "price" in params and Decimal(str(found.get("price"))) != Decimal(params["price"]):
                return f"price {found.get('price')} != {params['price']}"
        except InvalidOperation:
            return "unreadable quantity or price"
        return None

    def unseen_until(self, client_id: str) -> float:
        """time.monotonic() after which no attempt to send the order `client_id` can still
        execute: its last send by this client (a submit that gave up), else this client's
        start (an order of an earlier process), plus recvWindow + 0.5 s."""
        return self.last_sent.get(client_id, self.started) + self.recv_window_ms / 1000 + 0.5

    def send_order_now(self, client_id: str, symbol: str, side: str, type_: str, qty: float,
                       price: float | None = None, *, time_in_force: str = "GTC") -> SentOrder | None:
        """The first attempt of a new order, written to an order connection before this
        returns: no task, no loop turn, no wait. None (nothing sent, nothing counted) when
        that is not possible at once: no order connection ready, a gate would make it
        wait, or the request is invalid. Pass the result to `submit(..., sent=)`, which
        reads the answer and does everything else (retries, queries) as usual."""
        wire, signer = self._wire, self._signer
        if wire is None or signer is None or not wire.ready():
            return None
        try:
            params = self._order_params(client_id, symbol, side, type_, qty, price, time_in_force)
        except OrderRejected:
            return None                     # submit raises it
        # the weight first: when the order slot then fails, the weight of 1 stays counted
        # (a harmless over-estimate); the other way round would over-count an order slot
        if not self.gate.try_take(_weight("POST", "order", params)) or not self.order_gate.try_take():
            return None
        slot_at = self.order_gate.last_slot_at
        self.last_sent[client_id] = time.monotonic()
        url, headers, _ = signer.request("POST", params, self.server_time_ms(), self.recv_window_ms)
        started = time.perf_counter()
        waiter = wire.send("POST", url, headers)
        if waiter is None:                  # cannot happen after ready(); submit sends it
            return None
        self.first_sent_ns.setdefault(client_id, time.time_ns())
        return SentOrder(params, waiter, url, started, slot_at)

    async def submit(self, client_id: str, symbol: str, side: str, type_: str, qty: float,
                     price: float | None = None, *, time_in_force: str = "GTC",
                     sent: SentOrder | None = None) -> dict:
        """Place an order (see `_submit`); `sent`: its first attempt, already written by
        `send_order_now`. Unless it ends with an answer (the order or a refusal), the
        time of its last send is kept in `last_sent` for reconciliation."""
        try:
            answer = await self._submit(client_id, symbol, side, type_, qty, price, time_in_force, sent)
        except OrderRejected:
            self.last_sent.pop(client_id, None)
            raise
        self.last_sent.pop(client_id, None)
        return answer

    async def _submit(self, client_id: str, symbol: str, side: str, type_: str, qty: float,
                      price: float | None, time_in_force: str, sent: SentOrder | None = None) -> dict:
        """Place an order, idempotently, and return Binance's raw answer (FULL: with fills).

        ``newClientOrderId`` = `client_id`. When the outcome of a send is unknown
        (timeout, network error, 5xx, "status unknown" codes) or the send was refused
        for rate (429/418/403): back off, then FIRST query the order by
        ``origClientOrderId``; if the exchange has it, that is the answer (it is never
        sent twice); if not, and no earlier attempt can still reach the matching engine
        (Binance drops requests older than recvWindow: ``recv_window_ms`` + 0.5 s after an
        uncertain send), resend with the same client id. A -2010 "Duplicate order sent"
        also resolves by querying. An order found under the client id whose symbol,
        side, type, quantity or price differ raises OrderRejected.

        Raises OrderRejected for a definitive refusal (any 4xx answer other than
        429/418/403/408 and Binance's "status unknown" codes, or a request that cannot be
        sent as given); ExchangeUnavailable after `max_retries` failed attempts (sends and
        queries together), with ``maybe_placed``."""
        params = sent.params if sent is not None else \
            self._order_params(client_id, symbol, side, type_, qty, price, time_in_force)
        sym = params["symbol"]
        what = f"new order {sym} {params['side']} {params['type']} {client_id!r}"
        query = {"symbol": sym, "origClientOrderId": client_id}
        failures = 0
        guard_until = 0.0           # an unseen earlier attempt cannot execute after this (monotonic)
        maybe_placed = False
        must_query = False
        duplicate = False
        last: Failure | None = None

        def give_up(failure: Failure) -> ExchangeUnavailable:
            return ExchangeUnavailable(f"{what}: gave up after {failures} failed attempt{'s' * (failures != 1)}: "
                                       f"{failure.describe()}",
                                       maybe_placed=maybe_placed, status=failure.status, code=failure.code,
                                       exchange_msg=failure.msg)

        while True:
            if must_query:
                found, failure = await self._once("private", "GET", "order", query)
                if failure is None:
                    why = self._mismatch(found, params)
                    if why is not None:
                        raise OrderRejected(f"{what}: the client order id is already used by another order "
                                            f"({why})", client_id=client_id, code=-2010)
                    log.info("%s: found on the exchange (%s) after %s", what, found.get("status"),
                             last.describe() if last else "a duplicate answer")
                    return found
                if failure.code == -2013:                       # the exchange has no such order
                    if duplicate:
                        raise OrderRejected(f"{what}: refused as a duplicate, but no order with this client id "
                                            "exists", client_id=client_id, code=-2010)
                    wait = guard_until - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)               # then ask once more
                        continue
                    must_query = False                          # never placed: resend below
                elif failure.code == -1021:
                    failures += 1
                    if failures > self.max_retries:
                        raise give_up(failure)
                    await self.sync_clock()
                    continue
                elif failure.definitive:
                    raise ExchangeUnavailable(f"{what}: outcome unknown, and the order query was refused: "
                                              f"{failure.describe()}", maybe_placed=maybe_placed,
                                              status=failure.status, code=failure.code, exchange_msg=failure.msg)
                else:
                    failures += 1
                    last = failure
                    if failures > self.max_retries:
                        raise give_up(failure)
                    log.warning("%s: order query failed: %s; retry %d of %d", what, failure.describe(), failures,
                                self.max_retries)
                    await self._pause(failures, failure)
                    continue
            if sent is not None:            # the first attempt left already: read its answer
                answer, failure = await self._read_sent(sent)
                sent = None
            else:
                answer, failure = await self._once("private", "POST", "order", params)
            if failure is None:
                return answer
            sent_at = self.last_sent.get(client_id, time.monotonic())   # when it was signed (see _once)
            last = failure
            if failure.code == -2010 and "duplicate" in failure.msg.lower():
                duplicate = must_query = True
                continue
            if failure.code == -1021:
                failures += 1
                if failures > self.max_retries:
                    raise give_up(failure)
                log.warning("%s: %s; re-measuring the clock", what, failure.describe())
                await self.sync_clock()
                continue
            if failure.definitive:
                raise OrderRejected(f"{what} rejected: {failure.describe()}", client_id=client_id,
                                    status=failure.status, code=failure.code, exchange_msg=failure.msg)
            failures += 1
            if failure.maybe_executed:
                maybe_placed = True
                guard_until = max(guard_until, sent_at + self.recv_window_ms / 1000 + 0.5)
            if failures > self.max_retries:
                raise give_up(failure)
            log.warning("%s: %s; querying before any resend (%d of %d)", what, failure.describe(), failures,
                        self.max_retries)
            await self._pause(failures, failure)
            must_query = True

    async def cancel(self, client_id: str, symbol: str) -> dict | None:
        """Cancel by client order id: Binance's raw answer, or None if the exchange does
        not know the order or it is already done (-2011). When an earlier attempt's
        outcome was unknown and the retry says -2011, the order is queried: if it is
        CANCELED (our first attempt worked) its query answer is returned."""
        sym = symbol.upper()
        params = {"symbol": sym, "origClientOrderId": client_id}
        what = f"cancel {sym} {client_id!r}"
        failures = 0
        uncertain = False
        while True:
            answer, failure = await self._once("private", "DELETE", "order", params)
            if failure is None:
                return answer
            if failure.code == -2011:
                if uncertain:
                    found = await self.order(client_id, sym)
                    if found is not None and found.get("status") == "CANCELED":
                        return found
                return None
            uncertain = uncertain or failure.maybe_executed
            failures = await self._after_failure(what, failure, failures)

    async def order(self, client_id: str, symbol: str) -> dict | None:
        """The order by client order id (raw), or None if the exchange never saw it (-2013)."""
        try:
            return await self._call("private", "GET", "order", {"symbol": symbol.upper(),
                                                                   "origClientOrderId": client_id})
        except RequestFailed as e:
            if e.code == -2013:
                return None
            raise

    async def order_by_id(self, order_id: int, symbol: str) -> dict | None:
        """The order by the exchange's order id (raw), or None if there is no such order."""
        try:
            return await self._call("private", "GET", "order", {"symbol": symbol.upper(), "orderId": int(order_id)})
        except RequestFailed as e:
            if e.code == -2013:
                return None
            raise

    async def open_orders(self, symbol: str | None = None) -> list[dict]:
        """Open orders (raw), of one symbol (weight 6) or all (weight 80)."""
        params = {"symbol": symbol.upper()} if symbol else {}
        return list(await self._call("private", "GET", "openOrders", params))

    async def my_trades(self, symbol: str, from_id: int | None = None, *, limit: int = 1000,
                        order_id: int | None = None) -> list[dict]:
        """Account trades (raw) of one symbol: from trade id `from_id` on (oldest first),
        or the most recent ones; `order_id` restricts to one order."""
        params: dict = {"symbol": symbol.upper(), "limit": int(limit)}
        if from_id is not None:
            params["fromId"] = int(from_id)
        if order_id is not None:
            params["orderId"] = int(order_id)
        return list(await self._call("private", "GET", "myTrades", params))

    # ------------------------------------------------------------------ user data stream

    async def new_listen_key(self) -> str:
        """POST /api/v3/userDataStream: the account's listenKey (the active one if any)."""
        answer = await self._call("public", "POST", "userDataStream", {})
        return answer["listenKey"]

    async def keepalive(self, key: str) -> None:
        """PUT /api/v3/userDataStream: extend the listenKey by 60 minutes. RequestFailed
        with code -1125 when the key no longer exists."""
        await self._call("public", "PUT", "userDataStream", {"listenKey": key})

    async def close_listen_key(self, key: str) -> None:
        """DELETE /api/v3/userDataStream: close the listenKey (and its streams)."""
        await self._call("public", "DELETE", "userDataStream", {"listenKey": key})
