"""Binance spot websocket and REST payloads -> engine Events, with the same kinds and
fields as the replay feeds produce (genesis/engine/feeds.py), so the pipeline cannot
tell live data from recorded data.

Event time is the exchange's: `E` for trades and depth updates; the spot bookTicker and
REST snapshots carry no time, so they get the receive time corrected by the tracked
clock offset (server - local).
"""
from __future__ import annotations

from genesis.engine.events import Event
from genesis.vocabulary import EVENTS, TEXT


class BadMessage(ValueError):
    """A payload that is not a well-formed Binance message of the expected kind."""


def _f(data: dict, key: str) -> float:
    try:
        value = float(data[key])
    except (KeyError, TypeError, ValueError):
        raise BadMessage(f"field {key!r} missing or not a number") from None
    if not value >= 0 or value == float("inf"):
        raise BadMessage(f"field {key!r} out of range")
    return value


def _i(data: dict, key: str) -> int:
    try:
        return int(data[key])
    except (KeyError, TypeError, ValueError):
        raise BadMessage(f"field {key!r} missing or not an integer") from None


def _levels(rows) -> list[tuple[float, float]]:
    try:
        return [(float(p), float(q)) for p, q in rows]
    except (TypeError, ValueError):
        raise BadMessage("price levels are not [price, qty] pairs") from None


def market_event(stream: str, data: dict, local_ts: int) -> Event:
    """One combined-stream message (`stream` name and its `data`) as an Event. `local_ts`
    (ms, receive time + clock offset) times messages that carry no `E`."""
    if not isinstance(data, dict):
        raise BadMessage("data is not an object")
    sym, _, suffix = stream.partition("@")
    symbol = sym.upper()
    if suffix == "trade":
        p, q = _f(data, "p"), _f(data, "q")
        return Event("trade", _i(data, "E"), symbol, {
            "price": p, "qty": q, "notional_usd": p * q, "aggressor": "sell" if data.get("m") else "buy",
            "_trade_id": _i(data, "t")})
    if suffix == "bookTicker":
        b, a = _f(data, "b"), _f(data, "a")
        mid = (b + a) * 0.5
        if mid <= 0:
            raise BadMessage("empty book ticker")
        return Event("book_ticker", local_ts, symbol, {
            "bid": b, "bid_qty": _f(data, "B"), "ask": a, "ask_qty": _f(data, "A"), "mid": mid,
            "spread_bps": (a - b) / mid * 1e4, "_update_id": _i(data, "u")})
    if suffix.startswith("depth"):
        bids, asks = _levels(data.get("b", ())), _levels(data.get("a", ()))
        return Event("depth", _i(data, "E"), symbol, {
            "best_bid": 0.0, "best_ask": 0.0, "levels": len(bids) + len(asks), "_bids": bids, "_asks": asks,
            "_first_id": _i(data, "U"), "_last_id": _i(data, "u"), "_snapshot": False})
    raise BadMessage(f"unknown stream {stream[:40]!r}")


def snapshot_event(symbol: str, snapshot: dict, local_ts: int) -> Event:
    """A REST `GET /api/v3/depth` answer as a depth snapshot Event."""
    bids, asks = _levels(snapshot.get("bids", ())), _levels(snapshot.get("asks", ()))
    return Event("depth", local_ts, symbol, {
        "best_bid": 0.0, "best_ask": 0.0, "levels": len(bids) + len(asks), "_bids": bids, "_asks": asks,
        "_last_update_id": _i(snapshot, "lastUpdateId"), "_snapshot": True})


def system_event(kind: str, fields: dict, ts: int) -> Event:
    """A health event of the live edge (api_response, api_status, ws_status, rate_limit).
    A text field the vocabulary declares and an input log written before it existed lacks
    reads as '' (e.g. `ws_status.stream`: neither stream's metric takes it)."""
    fields = dict(fields)
    for name, (typ, _text) in EVENTS.get(kind, ("", {}))[1].items():
        if typ == TEXT:
            fields.setdefault(name, "")
    return Event(kind, ts, "", fields)
