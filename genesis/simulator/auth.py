"""Signed-request checks as Binance does them: the ``X-MBX-APIKEY`` header names the
account, ``signature`` is the hex HMAC-SHA256 (with the account's secret) of the
request's total parameters (query string then body, as sent, without the signature),
and ``timestamp`` must be within ``recvWindow`` (default 5000 ms, at most 60000) of the
exchange clock and not more than 1000 ms ahead of it. Errors never echo the secret,
the signature or the signed text."""
from __future__ import annotations

import hashlib
import hmac

from . import errors as E


def strip_signature(raw: str) -> tuple[str, str | None]:
    """(raw parameters without ``signature=...``, the signature or None)."""
    if not raw:
        return raw, None
    parts = raw.split("&")
    sig = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


def sign(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of `payload` (what clients put in ``signature``)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def api_key_account(api_key: str | None, secrets: dict[str, str]) -> str:
    """The API key itself if known; -2014 / -2015 otherwise."""
    if not api_key or len(api_key) > 256 or not api_key.isprintable():
        raise E.err(E.API_KEY_FORMAT, 401)
    if api_key not in secrets:
        raise E.err(E.API_KEY_INVALID, 401)
    return api_key


def check_timestamp(params: dict, now_ms: int) -> None:
    """-1102 without a timestamp, -1021 outside the receive window."""
    ts = params.get("timestamp")
    if not ts:
        raise E.mandatory("timestamp")
    if not ts.isdigit():
        raise E.illegal("timestamp", "^[0-9]{1,20}$")
    window = params.get("recvWindow") or "5000"
    if not window.replace(".", "", 1).isdigit():
        raise E.illegal("recvWindow", "^[0-9]{1,20}$")
    win = float(window)
    if win > 60000:
        raise E.err(E.RECV_WINDOW_TOO_BIG)
    t = int(ts)
    if t > now_ms + 1000:
        raise E.err(E.AHEAD_OF_SERVER)
    if now_ms - t > win:
        raise E.err(E.OUTSIDE_RECV_WINDOW)


def verify(api_key: str | None, secrets: dict[str, str], raw_query: str, raw_body: str,
           params: dict, now_ms: int) -> str:
    """Check one signed REST request; returns the API key (raises ApiError)."""
    key = api_key_account(api_key, secrets)
    query, sig_q = strip_signature(raw_query)
    body, sig_b = strip_signature(raw_body)
    signature = sig_q or sig_b
    if not signature:
        raise E.mandatory("signature")
    expected = sign(secrets[key], query + body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise E.err(E.BAD_SIGNATURE)
    check_timestamp(params, now_ms)
    return key


def verify_ws_params(params: dict, secrets: dict[str, str], now_ms: int) -> str:
    """Check a signed WebSocket API request (``apiKey``, ``timestamp``, ``signature``;
    the payload is the other parameters sorted by name, ``key=value`` joined by ``&``)."""
    key = api_key_account(params.get("apiKey"), secrets)
    signature = params.get("signature")
    if not signature:
        raise E.mandatory("signature")
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    if not hmac.compare_digest(sign(secrets[key], payload), str(signature).lower()):
        raise E.err(E.BAD_SIGNATURE)
    check_timestamp({k: str(v) for k, v in params.items()}, now_ms)
    return key
