"""The order path signs its own requests (genesis/live/signing.py): the signed query
must be byte for byte what ccxt's binance `sign` builds for the same parameters and
timestamp, and Binance (here the simulator) must accept the requests."""
from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt_async
import pytest

from genesis.live.rest import ExchangeClient, binance_urls
from genesis.live.signing import OrderSigner, encode_query, hmac_secret
from genesis.simulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from genesis.simulator.thread import SimulatorThread

BASE = "http://127.0.0.1:9"
CASES = [
    ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0002",
              "newClientOrderId": "Gab12cd34-g1", "newOrderRespType": "FULL"}),
    ("POST", {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "quantity": "1.5", "price": "2500.01",
              "newClientOrderId": "odd:id/with.chars_~-", "timeInForce": "GTC", "newOrderRespType": "FULL"}),
    ("DELETE", {"symbol": "BTCUSDT", "origClientOrderId": "Gab12cd34-g7"}),
    ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "quantity": "1", "price": "1",
              "newClientOrderId": "x y+z&w=é", "recvWindow": 7000}),
]


@pytest.mark.parametrize("method,params", CASES)
def test_signed_request_equals_ccxt_sign(method, params):
    async def ccxt_sign():
        ex = ccxt_async.binance({"apiKey": "my-key", "secret": "my-secret", "urls": binance_urls(BASE),
                                 "options": {"recvWindow": 5000, "timeDifference": 0}})
        ex.nonce = lambda: 1_700_000_000_123
        try:
            return ex.sign("order", ["private"], method, dict(params))
        finally:
            await ex.close()

    expected = asyncio.run(ccxt_sign())
    url, headers, body = OrderSigner("my-key", "my-secret", binance_urls(BASE)["api"]["private"]).request(
        method, params, 1_700_000_000_123, 5000)
    # the same signed query; the order path sends it in the url for a POST too (no body)
    expected_query = expected["body"] if method == "POST" else expected["url"].partition("?")[2]
    assert url == expected["url"].partition("?")[0] + "?" + expected_query
    assert body is None
    assert headers == {"X-MBX-APIKEY": expected["headers"]["X-MBX-APIKEY"]}


def test_encoding_matches_ccxt_urlencode_for_any_text():
    pairs = [("a", "plain-._~"), ("b", "x y"), ("c", "ü/:?&=+%"), ("d", 12), ("e", 0.5), ("f", "")]
    assert encode_query(pairs) == ccxt_async.binance().urlencode(dict(pairs))


def test_pem_keys_are_left_to_ccxt():
    assert hmac_secret("abc123")
    assert not hmac_secret("-----BEGIN PRIVATE KEY-----\nMC4CAQ...\n-----END PRIVATE KEY-----")
    assert not hmac_secret("")


def test_orders_signed_here_are_accepted_and_a_wrong_secret_is_refused():
    with SimulatorThread(speed="step") as sim:
        async def run():
            async with ExchangeClient(sim.rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET) as client:
                assert client._signer is not None
                placed = await client.submit("sig-1", "BTCUSDT", "buy", "limit", 0.001, 20000.0)
                assert placed["clientOrderId"] == "sig-1" and placed["status"] == "NEW"
                assert await client.cancel("sig-1", "BTCUSDT") is not None
                assert (await client.order("sig-1", "BTCUSDT"))["status"] == "CANCELED"
            wrong = ExchangeClient(sim.rest_url, DEFAULT_API_KEY, "not-the-secret", max_retries=0)
            await wrong.start()   # public requests and the clock need no signature
            try:
                with pytest.raises(Exception) as refused:
                    await wrong.submit("sig-2", "BTCUSDT", "buy", "limit", 0.001, 20000.0)
                assert "-1022" in str(refused.value) or "ignature" in str(refused.value)
                assert "not-the-secret" not in str(refused.value)
            finally:
                await wrong.close()
        asyncio.run(run())
