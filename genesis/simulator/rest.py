"""REST endpoints under ``/api/v3`` and the request pipeline around them: forced
429/418, request weights, injected delays, 5xx and timeouts (before or after the
request is executed), API-key and signature checks, Binance error bodies and the
``X-MBX-USED-WEIGHT-1M`` header."""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import web

from . import auth
from . import errors as E
from .errors import ApiError
from .hub import SIM_KEY
from .klines import DEFAULT_LIMIT, MAX_LIMIT, Grid, klines, parse_time_zone
from .limits import weight_of
from .orders import f8

if TYPE_CHECKING:
    from .server import Simulator

PUBLIC, API_KEY, SIGNED = 0, 1, 2


# ----------------------------------------------------------------------- market data


def ping(sim: Simulator, p: dict, key):
    """GET /api/v3/ping."""
    return {}


def server_time(sim: Simulator, p: dict, key):
    """GET /api/v3/time."""
    return {"serverTime": sim.now_ms()}


def exchange_info(sim: Simulator, p: dict, key):
    """GET /api/v3/exchangeInfo (symbol / symbols filters)."""
    info = dict(sim.exchange_info)
    wanted = None
    if p.get("symbol"):
        wanted = [p["symbol"].upper()]
    elif p.get("symbols"):
        try:
            wanted = [str(s).upper() for s in json.loads(p["symbols"])]
        except ValueError:
            raise E.illegal("symbols", '["BTCUSDT","ETHUSDT"]') from None
    if wanted is not None:
        unknown = [s for s in wanted if s not in sim.rules]
        if unknown:
            raise E.err(E.INVALID_SYMBOL)
        info["symbols"] = [sim.rules[s].raw for s in wanted]
    info["serverTime"] = sim.now_ms()
    return info


def _symbol(sim: Simulator, p: dict) -> str:
    sym = p.get("symbol")
    if not sym:
        raise E.mandatory("symbol")
    sym = sym.upper()
    if sym not in sim.rules:
        raise E.err(E.INVALID_SYMBOL)
    return sym


def depth(sim: Simulator, p: dict, key):
    """GET /api/v3/depth from the simulator book."""
    sym = _symbol(sim, p)
    limit = p.get("limit") or "100"
    if not limit.isdigit() or not 1 <= int(limit) <= 5000:
        raise E.illegal("limit", "1-5000")
    book = sim.book(sym)
    n = int(limit)
    return {"lastUpdateId": book.snapshot_id(),
            "bids": [[f8(px), f8(q)] for px, q in book.levels("bids", n)],
            "asks": [[f8(px), f8(q)] for px, q in book.levels("asks", n)]}


def _ticker_row(sim: Simulator, sym: str) -> dict:
    book = sim.book(sym)
    t = book.ticker
    if t is None:
        bids, asks = book.levels("bids", 1), book.levels("asks", 1)
        b = bids[0] if bids else (0, 0)
        a = asks[0] if asks else (0, 0)
        t = (b[0], b[1], a[0], a[1])
    return {"symbol": sym, "bidPrice": f8(t[0]), "bidQty": f8(t[1]), "askPrice": f8(t[2]), "askQty": f8(t[3])}


def book_ticker(sim: Simulator, p: dict, key):
    """GET /api/v3/ticker/bookTicker."""
    if p.get("symbol"):
        return _ticker_row(sim, _symbol(sim, p))
    return [_ticker_row(sim, s) for s in sim.rules]


def _price_row(sim: Simulator, sym: str) -> dict:
    px = sim.book(sym).reference_price()
    return {"symbol": sym, "price": f8(px) if px is not None else "0.00000000"}


def ticker_price(sim: Simulator, p: dict, key):
    """GET /api/v3/ticker/price (last recorded trade price)."""
    if p.get("symbol"):
        return _price_row(sim, _symbol(sim, p))
    return [_price_row(sim, s) for s in sim.rules]


def avg_price(sim: Simulator, p: dict, key):
    """GET /api/v3/avgPrice (last trade price, not a 5-minute average)."""
    row = _price_row(sim, _symbol(sim, p))
    return {"mins": 5, "price": row["price"], "closeTime": sim.now_ms()}


def _time_param(p: dict, name: str) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        return None
    if not v.isdigit():
        raise E.illegal(name, "^[0-9]{1,20}$")
    return int(v)


def get_klines(sim: Simulator, p: dict, key):
    """GET /api/v3/klines from the trades replayed so far (see klines.py)."""
    sym = p.get("symbol")
    if not sym:
        raise E.mandatory("symbol")
    interval = p.get("interval")
    if not interval:
        raise E.mandatory("interval")
    grid = Grid(interval, parse_time_zone(p.get("timeZone")))
    sym = _symbol(sim, p)
    start, end = _time_param(p, "startTime"), _time_param(p, "endTime")
    if start is not None and end is not None and start > end:
        raise E.ApiError(-1023, "Start time is greater than end time.")
    limit = p.get("limit") or str(DEFAULT_LIMIT)
    if not limit.lstrip("-").isdigit():
        raise E.illegal("limit", "^[0-9]{1,20}$")
    if int(limit) < 1:
        raise E.ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return klines(sim.tapes.get(sym), grid, sim.replay.shift_ms, start, end, min(int(limit), MAX_LIMIT))


# ----------------------------------------------------------------------- account


def account(sim: Simulator, p: dict, key):
    """GET /api/v3/account."""
    acct = sim.accounts[key]
    maker, taker = sim.exchange.maker_fee, sim.exchange.taker_fee
    omit = (p.get("omitZeroBalances") or "").lower() == "true"
    return {"makerCommission": int(maker * 10000), "takerCommission": int(taker * 10000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": f8(maker), "taker": f8(taker), "buyer": f8(0 * maker),
                                "seller": f8(0 * maker)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": acct.update_time,
            "accountType": "SPOT", "balances": acct.balance_rows(omit), "permissions": ["SPOT"],
            "uid": sim.account_uid(key)}


def new_order(sim: Simulator, p: dict, key):
    """POST /api/v3/order."""
    return sim.exchange.place(sim.accounts[key], p, sim.now_ms())


def test_order(sim: Simulator, p: dict, key):
    """POST /api/v3/order/test: validated as a new order, never placed."""
    return sim.exchange.test_order(sim.accounts[key], p)


def cancel_order(sim: Simulator, p: dict, key):
    """DELETE /api/v3/order."""
    return sim.exchange.cancel(sim.accounts[key], p, sim.now_ms())


def query_order(sim: Simulator, p: dict, key):
    """GET /api/v3/order."""
    return sim.exchange.query(sim.accounts[key], p)


def open_orders(sim: Simulator, p: dict, key):
    """GET /api/v3/openOrders."""
    return sim.exchange.open_orders(sim.accounts[key], p)


def cancel_open_orders(sim: Simulator, p: dict, key):
    """DELETE /api/v3/openOrders."""
    return sim.exchange.cancel_all(sim.accounts[key], p, sim.now_ms())


def all_orders(sim: Simulator, p: dict, key):
    """GET /api/v3/allOrders."""
    return sim.exchange.all_orders(sim.accounts[key], p)


def my_trades(sim: Simulator, p: dict, key):
    """GET /api/v3/myTrades."""
    return sim.exchange.my_trades(sim.accounts[key], p)


def listen_key_new(sim: Simulator, p: dict, key):
    """POST /api/v3/userDataStream."""
    return {"listenKey": sim.new_listen_key(key)}


def listen_key_keepalive(sim: Simulator, p: dict, key):
    """PUT /api/v3/userDataStream."""
    lk = p.get("listenKey")
    if not lk:
        raise E.mandatory("listenKey")
    if sim.listen_key_owner(lk) != key:
        raise E.err(E.INVALID_LISTEN_KEY)
    sim.new_listen_key(key, keep=lk)
    return {}


def listen_key_close(sim: Simulator, p: dict, key):
    """DELETE /api/v3/userDataStream."""
    lk = p.get("listenKey")
    if not lk:
        raise E.mandatory("listenKey")
    if sim.listen_key_owner(lk) != key:
        raise E.err(E.INVALID_LISTEN_KEY)
    sim.close_listen_key(lk)
    return {}


ROUTES = {
    ("GET", "ping"): (ping, PUBLIC),
    ("GET", "time"): (server_time, PUBLIC),
    ("GET", "exchangeInfo"): (exchange_info, PUBLIC),
    ("GET", "depth"): (depth, PUBLIC),
    ("GET", "ticker/bookTicker"): (book_ticker, PUBLIC),
    ("GET", "ticker/price"): (ticker_price, PUBLIC),
    ("GET", "avgPrice"): (avg_price, PUBLIC),
    ("GET", "klines"): (get_klines, PUBLIC),
    ("GET", "account"): (account, SIGNED),
    ("POST", "order"): (new_order, SIGNED),
    ("POST", "order/test"): (test_order, SIGNED),
    ("DELETE", "order"): (cancel_order, SIGNED),
    ("GET", "order"): (query_order, SIGNED),
    ("GET", "openOrders"): (open_orders, SIGNED),
    ("DELETE", "openOrders"): (cancel_open_orders, SIGNED),
    ("GET", "allOrders"): (all_orders, SIGNED),
    ("GET", "myTrades"): (my_trades, SIGNED),
    ("POST", "userDataStream"): (listen_key_new, API_KEY),
    ("PUT", "userDataStream"): (listen_key_keepalive, API_KEY),
    ("DELETE", "userDataStream"): (listen_key_close, API_KEY),
}


# ----------------------------------------------------------------------- pipeline


def _json(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json", headers=headers)


def _server_error(status: int, headers: dict) -> web.Response:
    if status == 503:
        return _json(E.ApiError(*E.SERVER_BUSY_503).body(), 503, headers)
    if status in (502, 504):
        return web.Response(text="Bad Gateway" if status == 502 else "Gateway Timeout", status=status,
                            headers=headers)
    return _json(E.ApiError(*E.UNKNOWN_ERROR).body(), status, headers)


async def _hold(sim: Simulator, headers: dict) -> web.Response:
    """An unanswered request: held for http_timeout_s (or until shutdown), then 504."""
    try:
        await asyncio.wait_for(sim.stopping.wait(), sim.faults.spec.http_timeout_s)
    except TimeoutError:
        pass
    return _server_error(504, headers)


async def handle(request: web.Request) -> web.Response:
    """Every ``/api/v3/...`` request."""
    sim: Simulator = request.app[SIM_KEY]
    endpoint = request.match_info["tail"].rstrip("/")
    method = request.method
    raw_query = request.rel_url.raw_query_string
    raw_body = await request.text() if method in ("POST", "PUT", "DELETE") else ""
    params: dict[str, str] = {}
    for source in (raw_query, raw_body):
        for k, v in parse_qsl(source, keep_blank_values=True):
            params.setdefault(k, v)
    route = ROUTES.get((method, endpoint))
    if route is None:
        return web.Response(text=f"Not found: {method} /api/v3/{endpoint[:80]} is not simulated", status=404)
    fn, security = route
    faults = sim.faults
    applies = faults.http_applies(method, request.path)
    limits = sim.limits
    try:
        if applies and faults.take("http_418_next"):
            raise ApiError(-1003, "Way too many requests; IP(127.0.0.1) banned (simulated fault). Please use "
                           "the websocket for live updates to avoid bans.", 418,
                           {"Retry-After": str(faults.spec.retry_after_s)})
        if applies and faults.take("http_429_next"):
            raise ApiError(-1003, "Too many requests (simulated fault). Please use WebSocket Streams for live "
                           "updates to avoid polling the API.", 429,
                           {"Retry-After": str(faults.spec.retry_after_s)})
        now = sim.monotonic()
        limits.charge(weight_of(method, endpoint, params), now)
        if applies and faults.spec.http_delay_ms > 0:
            await asyncio.sleep(faults.spec.http_delay_ms / 1000)
            applies = faults.http_applies(method, request.path)   # the spec may have changed meanwhile
        if applies and faults.take("http_error_next", "http_error_rate"):
            return _server_error(faults.spec.http_error_status, limits.headers())
        if applies and faults.take("http_timeout_next", "http_timeout_rate"):
            return await _hold(sim, limits.headers())
        key = None
        if security == SIGNED:
            key = auth.verify(request.headers.get("X-MBX-APIKEY"), sim.secrets, raw_query, raw_body,
                              params, sim.now_ms())
        elif security == API_KEY:
            key = auth.api_key_account(request.headers.get("X-MBX-APIKEY"), sim.secrets)
        if (method, endpoint) == ("POST", "order"):
            limits.charge_order(now)
        result = fn(sim, params, key)
    except ApiError as e:
        return _json(e.body(), e.status, {**limits.headers(), **e.headers})
    if applies and faults.take("http_error_after_next", "http_error_after_rate"):
        return _server_error(faults.spec.http_error_status, limits.headers())
    if applies and faults.take("http_timeout_after_next", "http_timeout_after_rate"):
        return await _hold(sim, limits.headers())
    return _json(result, 200, limits.headers())
