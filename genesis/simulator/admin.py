"""Admin endpoints for tests and operators (never rate limited, never faulted):

* ``GET /sim/state``: balances, all orders, all trades per account, replay position,
  limits and faults;
* ``GET|POST /sim/faults``: read, merge (JSON body, a fault spec) or reset
  (``{"reset": true, ...}``) the fault spec;
* ``POST /sim/step?n=N`` (or ``?ms=M`` of recorded time, or ``?until=fill`` with an
  optional ``n`` bound): replay records now;
* ``GET|POST /sim/clock``: read or set the exchange clock offset (``{"offset_ms": N}``);
* ``POST /sim/limits``: reset used weight and bans (``{"weight_limit": N}`` optional);
* ``POST /sim/transfer``: a deposit or withdrawal (``{"asset": "ETH", "amount": "-0.5"}``,
  optional ``"api_key"``): the balance changes with no trade.
"""
from __future__ import annotations

import json

from aiohttp import web

from .hub import SIM_KEY


def _ok(body) -> web.Response:
    return web.Response(text=json.dumps(body), content_type="application/json")


def _bad(msg: str) -> web.Response:
    return web.Response(text=json.dumps({"error": msg}), status=400, content_type="application/json")


async def _body(request: web.Request) -> dict | None:
    """The JSON object in the body ({} when empty, None when not an object)."""
    text = await request.text()
    if not text.strip():
        return {}
    data = json.loads(text)
    return data if isinstance(data, dict) else None


async def state(request: web.Request) -> web.Response:
    """GET /sim/state."""
    return _ok(request.app[SIM_KEY].state())


async def faults(request: web.Request) -> web.Response:
    """GET|POST /sim/faults."""
    sim = request.app[SIM_KEY]
    if request.method == "GET":
        return _ok(sim.faults.state())
    try:
        data = await _body(request)
        if data is None:
            return _bad("expected a JSON object")
        reset = bool(data.pop("reset", False))
        return _ok(sim.set_faults(data, reset))
    except ValueError as e:
        return _bad(str(e))


async def step(request: web.Request) -> web.Response:
    """POST /sim/step."""
    sim = request.app[SIM_KEY]
    q = request.query
    try:
        n = int(q["n"]) if "n" in q else None
        ms = int(q["ms"]) if "ms" in q else None
    except ValueError:
        return _bad("n and ms are integers")
    until = q.get("until")
    if until not in (None, "fill"):
        return _bad("until: only 'fill' is supported")
    if n is None and ms is None and until is None:
        n = 1
    return _ok(sim.step(n, ms, until == "fill"))


async def clock(request: web.Request) -> web.Response:
    """GET|POST /sim/clock."""
    sim = request.app[SIM_KEY]
    if request.method == "GET":
        return _ok({"serverTime": sim.now_ms(), "offset_ms": sim.clock_offset_ms})
    try:
        data = await _body(request)
        if data is None:
            return _bad("expected a JSON object")
        return _ok(sim.set_clock(int(data.get("offset_ms", 0))))
    except (ValueError, TypeError) as e:
        return _bad(str(e))


async def limits(request: web.Request) -> web.Response:
    """POST /sim/limits."""
    sim = request.app[SIM_KEY]
    try:
        data = await _body(request)
        if data is None:
            return _bad("expected a JSON object")
        return _ok(sim.reset_limits(data.get("weight_limit")))
    except (ValueError, TypeError) as e:
        return _bad(str(e))


async def transfer(request: web.Request) -> web.Response:
    """POST /sim/transfer."""
    sim = request.app[SIM_KEY]
    try:
        data = await _body(request)
        if data is None:
            return _bad("expected a JSON object")
        return _ok(sim.transfer(str(data.get("asset", "")), data.get("amount", "0"), data.get("api_key")))
    except (ValueError, TypeError) as e:
        return _bad(str(e))


def add_routes(app: web.Application) -> None:
    """Register the /sim/* routes."""
    app.router.add_get("/sim/state", state)
    app.router.add_route("GET", "/sim/faults", faults)
    app.router.add_route("POST", "/sim/faults", faults)
    app.router.add_post("/sim/step", step)
    app.router.add_route("GET", "/sim/clock", clock)
    app.router.add_route("POST", "/sim/clock", clock)
    app.router.add_post("/sim/limits", limits)
    app.router.add_post("/sim/transfer", transfer)
