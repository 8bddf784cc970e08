"""Point a ccxt ``binance`` client (sync, async_support or pro) at the simulator.

    import ccxt
    from genesis.simulator import ccxt_config
    ex = ccxt.binance(ccxt_config(sim.rest_url, api_key, api_secret))
    ex.load_markets()          # one GET /api/v3/exchangeInfo

``ccxt_overrides(base_url)`` gives only the ``urls`` part: every REST API family ccxt
knows (spot ``public``/``private``/``v1`` and also sapi, fapi, dapi, eapi, papi, so
nothing can reach the internet; only ``/api/v3`` is simulated) plus the websocket urls
ccxt.pro uses for spot (``ws.spot`` -> ``/ws``, ``ws.ws-api.spot`` -> ``/ws-api/v3``).
``ccxt_config`` adds the keys and the options that keep ``load_markets`` to one call."""
from __future__ import annotations

from urllib.parse import urlsplit

# the part of each ccxt binance REST url after the host
_API_PATHS = {
    "public": "/api/v3", "private": "/api/v3", "v1": "/api/v1",
    "sapi": "/sapi/v1", "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3", "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1", "dapiPrivate": "/dapi/v1", "dapiPrivateV2": "/dapi/v2", "dapiData": "/futures/data",
    "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3", "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3", "fapiData": "/futures/data",
    "eapiPublic": "/eapi/v1", "eapiPrivate": "/eapi/v1", "papi": "/papi/v1", "papiV2": "/papi/v2",
}
_WS_KINDS = ("spot", "margin", "linear", "inverse", "stock", "option", "optionMarket", "optionPrivate")


def ccxt_overrides(base_url: str) -> dict:
    """``{"urls": {"api": {...}}}`` for ``ccxt.binance(...)`` pointing every API family
    at the simulator at `base_url` (``http://127.0.0.1:PORT``)."""
    parts = urlsplit(base_url)
    base = f"{parts.scheme or 'http'}://{parts.netloc or parts.path}".rstrip("/")
    ws = "ws" + base[4:] if base.startswith("http") else base
    api = {name: base + path for name, path in _API_PATHS.items()}
    api["ws"] = {kind: ws + "/ws" for kind in _WS_KINDS}
    api["ws"]["ws-api"] = {"spot": ws + "/ws-api/v3", "linear": ws + "/ws-fapi/v1", "inverse": ws + "/ws-dapi/v1"}
    return {"urls": {"api": api}}


def ccxt_config(base_url: str, api_key: str | None = None, secret: str | None = None, **extra) -> dict:
    """A complete ccxt binance config for the simulator: urls, keys, spot-only options
    (``fetchMarkets.types=['spot']``, no currencies, no margins: one exchangeInfo call).
    Without keys, the simulator's documented default test pair is used. `extra` entries
    are merged in last (e.g. ``enableRateLimit=False``, ``timeout=2000``)."""
    from .config import DEFAULT_API_KEY, DEFAULT_API_SECRET

    cfg = ccxt_overrides(base_url)
    cfg.update({
        "apiKey": api_key if api_key is not None else DEFAULT_API_KEY,
        "secret": secret if secret is not None else DEFAULT_API_SECRET,
        "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False, "fetchMargins": False},
    })
    for key, value in extra.items():
        if key == "options":
            cfg["options"].update(value)
        else:
            cfg[key] = value
    return cfg
