"""Websocket endpoints.

* ``/ws`` and ``/ws/<name>``: raw events. ``<name>`` is a stream (``btcusdt@trade``), a
  listenKey (user data), or anything else (ccxt.pro connects to ``/ws/0``), then
  ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` method frames.
* ``/stream?streams=a/b/c``: the same in ``{"stream": ..., "data": ...}`` envelopes.
* ``/ws-api/v3``: the WebSocket API subset for user data: ``userDataStream.subscribe.signature``,
  ``session.logon`` / ``session.status`` / ``session.logout``, ``userDataStream.subscribe`` /
  ``userDataStream.unsubscribe``, ``ping``, ``time``. Events arrive as
  ``{"subscriptionId": N, "event": {...}}``.

Streams: ``<symbol>@trade``, ``@aggTrade`` (one per trade), ``@bookTicker``,
``@depth@100ms`` (the recorded diffs), ``@depth`` / ``@depth@1000ms`` (recorded diffs
merged per second of event time)."""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from . import auth
from .errors import ApiError
from .hub import SIM_KEY, Conn, dumps

if TYPE_CHECKING:
    from .server import Simulator

STREAM_KINDS = ("trade", "aggTrade", "bookTicker", "depth", "depth@100ms", "depth@1000ms")


def valid_stream(sim: Simulator, name: str) -> bool:
    """A market stream the simulator serves: ``<known symbol>@<kind>``."""
    sym, at, kind = name.partition("@")
    return bool(at) and sym.upper() in sim.rules and kind in STREAM_KINDS and sym == sym.lower()


async def _open(sim: Simulator, request: web.Request, kind: str, combined: bool) -> tuple:
    ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    conn = Conn(ws, request, kind, combined, sim.faults)
    sim.hub.add(conn)
    return ws, conn


async def _park(conn: Conn) -> None:
    """A half-open connection: read nothing, answer nothing, until the peer goes away."""
    while not conn.dead:
        transport = conn.request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.1)


async def _read_loop(sim: Simulator, ws: web.WebSocketResponse, conn: Conn, on_text) -> None:
    try:
        while not conn.dead:
            msg = await ws.receive()
            if conn.half_open:
                await _park(conn)
                return
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await on_text(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
    except (ConnectionError, RuntimeError, asyncio.CancelledError):
        return
    finally:
        sim.hub.remove(conn)


async def market_ws(request: web.Request) -> web.WebSocketResponse:
    """``/ws``, ``/ws/<stream or listenKey or anything>`` and ``/stream?streams=``."""
    sim: Simulator = request.app[SIM_KEY]
    combined = request.path.startswith("/stream")
    names = []
    if combined:
        names = [s for s in request.query.get("streams", "").split("/") if s]
    elif request.match_info.get("name"):
        names = [request.match_info["name"]]
    user_keys = {n: sim.listen_key_owner(n) for n in names}
    kind = "user" if any(user_keys.values()) else "market"
    ws, conn = await _open(sim, request, kind, combined)
    for name in names:
        if user_keys[name]:
            conn.listen_keys[name] = user_keys[name]
        elif valid_stream(sim, name):
            sim.hub.subscribe(conn, name)

    async def on_text(text: str) -> None:
        try:
            req = json.loads(text)
            method, rid = req.get("method"), req.get("id")
            params = req.get("params") or []
        except (ValueError, AttributeError):
            conn.push(dumps({"error": {"code": 3, "msg": "Invalid JSON: expected an object"}}))
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.push(dumps({"error": {"code": 2, "msg": "Invalid request: params must be a list "
                                           "of stream names"}, "id": rid}))
                return
            bad = [p for p in params if not valid_stream(sim, p) and not sim.listen_key_owner(p)]
            if bad:
                conn.push(dumps({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0][:60]!r}"},
                                 "id": rid}))
                return
            for p in params:
                owner = sim.listen_key_owner(p)
                if method == "SUBSCRIBE":
                    if owner:
                        conn.listen_keys[p] = owner
                    else:
                        sim.hub.subscribe(conn, p)
                else:
                    conn.listen_keys.pop(p, None)
                    sim.hub.unsubscribe(conn, p)
            conn.push(dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.push(dumps({"result": sorted(conn.streams) + sorted(conn.listen_keys), "id": rid}))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            conn.push(dumps({"result": conn.combined if method == "GET_PROPERTY" else None, "id": rid}))
        else:
            conn.push(dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": rid}))

    await _read_loop(sim, ws, conn, on_text)
    return ws


async def ws_api(request: web.Request) -> web.WebSocketResponse:
    """``/ws-api/v3``: user data stream subscription over the WebSocket API."""
    sim: Simulator = request.app[SIM_KEY]
    ws, conn = await _open(sim, request, "api", False)
    connected = sim.now_ms()

    def answer(rid, result=None, error: ApiError | None = None) -> None:
        if error is not None:
            conn.push(dumps({"id": rid, "status": error.status, "error": error.body()}))
        else:
            conn.push(dumps({"id": rid, "status": 200, "result": result}))

    async def on_text(text: str) -> None:
        try:
            req = json.loads(text)
            rid, method = req.get("id"), req.get("method")
            params = req.get("params") or {}
        except (ValueError, AttributeError):
            params = None
        if not isinstance(params, dict):
            answer(None, error=ApiError(-1100, "Malformed request: expected a JSON object."))
            return
        try:
            answer(rid, _ws_api_call(sim, conn, method, params, connected))
        except ApiError as e:
            answer(rid, error=e)

    await _read_loop(sim, ws, conn, on_text)
    return ws


def _ws_api_call(sim: Simulator, conn: Conn, method, params: dict, connected: int):
    now = sim.now_ms()
    weights = {"userDataStream.subscribe.signature": 2, "session.logon": 2, "userDataStream.subscribe": 2}
    sim.limits.charge(weights.get(method, 1), sim.monotonic())
    if method == "ping":
        return {}
    if method == "time":
        return {"serverTime": now}
    if method == "userDataStream.subscribe.signature":
        key = auth.verify_ws_params(params, sim.secrets, now)
        return _subscribe(conn, key)
    if method == "session.logon":
        conn.session_key = auth.verify_ws_params(params, sim.secrets, now)
        return _session(conn, now, connected)
    if method == "session.status":
        return _session(conn, now, connected)
    if method == "session.logout":
        conn.session_key = None
        return _session(conn, now, connected)
    if method == "userDataStream.subscribe":
        if conn.session_key is None:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return _subscribe(conn, conn.session_key)
    if method == "userDataStream.unsubscribe":
        sid = params.get("subscriptionId")
        if sid is None:
            conn.subs.clear()
        elif conn.subs.pop(int(sid), None) is None:
            raise ApiError(-1100, f"Subscription {int(sid)} does not exist.")
        return {}
    if method == "userDataStream.subscription.list":
        return [{"subscriptionId": sid} for sid in sorted(conn.subs)]
    raise ApiError(-1100, f"Unknown method {str(method)[:60]!r}.")


def _subscribe(conn: Conn, key: str) -> dict:
    sid = conn.next_sub
    conn.next_sub += 1
    conn.subs[sid] = key
    return {"subscriptionId": sid}


def _session(conn: Conn, now: int, connected: int) -> dict:
    return {"apiKey": conn.session_key, "authorizedSince": now if conn.session_key else None,
            "connectedSince": connected, "returnRateLimits": False, "serverTime": now,
            "userDataStream": bool(conn.subs)}
