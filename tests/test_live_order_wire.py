"""genesis.live.order_wire (the kept-open order connection) against real sockets on
127.0.0.1: a small scripted HTTP server for the edges of HTTP/1.1 (chunked bodies,
answers in pieces, closes, garbage, late answers), and the simulator for the order
fast path (`ExchangeClient.send_order_now` + `submit(sent=)`)."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest

from genesis.live.order_wire import OrderWire, WireError
from genesis.live.rest import ExchangeClient, OrderRejected
from genesis.simulator import SimulatorThread

KEY = "wire-test-key-P3xT9"
SECRET = "wire-test-secret-Hq7Lm2Zr"


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that answers each request with the next scripted
    reply: bytes (written in one piece), a list of bytes (written piece by piece),
    ("then close", bytes) (written, then the connection closed), "close" (close
    without answering) or "hang" (never answer). Records requests and
    connections."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.eofs = 0
        self.server = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                reply = self.replies.pop(0) if self.replies else b"HTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n"
                if reply == "close":
                    break
                if reply == "hang":
                    if await reader.read() == b"":
                        self.eofs += 1
                    break
                if isinstance(reply, tuple):    # ("then close", bytes)
                    writer.write(reply[1])
                    await writer.drain()
                    break
                for piece in reply if isinstance(reply, list) else [reply]:
                    writer.write(piece)
                    await writer.drain()
                    if isinstance(reply, list):
                        await asyncio.sleep(0.005)
                if b"Connection: close" in (b"".join(reply) if isinstance(reply, list) else reply):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.eofs += 1
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":1}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + \
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def run(replies, scenario):
    async def main():
        async with ScriptedServer(replies) as server:
            wire = OrderWire(server.url + "/api/v3")
            assert await wire.start()
            try:
                return await scenario(wire, server)
            finally:
                await wire.close()

    return asyncio.run(main())


async def answer(wire: OrderWire, url: str, timeout: float = 2.0):
    for _ in range(200):                       # a connection may still be opening
        waiter = wire.send("POST", url, {"X-MBX-APIKEY": KEY})
        if waiter is not None:
            async with asyncio.timeout(timeout):
                return await waiter
        await asyncio.sleep(0.005)
    raise AssertionError("no order connection became ready")


def test_requests_reuse_one_kept_open_connection_and_carry_the_headers():
    async def scenario(wire, server):
        first = await answer(wire, server.url + "/api/v3/order?a=1&signature=ff")
        second = await answer(wire, server.url + "/api/v3/order?a=2")
        for n in range(3, 9):
            await answer(wire, server.url + f"/api/v3/order?a={n}")
        return first, second, server.requests, server.connections

    replies = [ok(b'{"n":1}', b"X-MBX-USED-WEIGHT-1M: 3\r\nx-mbx-order-count-10s: 1\r\n"), ok(b'{"n":2}')] + [ok()] * 6
    first, second, requests, connections = run(replies, scenario)
    assert (first.status, first.body, second.body) == (200, '{"n":1}', '{"n":2}')
    assert first.headers["X-MBX-USED-WEIGHT-1M"] == "3" and first.headers["x-mbx-order-count-10s"] == "1"
    head = requests[0].decode()
    assert head.startswith("POST /api/v3/order?a=1&signature=ff HTTP/1.1\r\n")
    assert f"\r\nX-MBX-APIKEY: {KEY}\r\n" in head and "\r\nHost: 127.0.0.1:" in head
    assert "\r\nContent-Length: 0\r\n" in head
    assert len(requests) == 8 and connections <= 3     # kept open (two spares): no connection per request


def test_chunked_answers_answers_in_pieces_and_interim_100():
    chunked = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\n{\"cod\r\n" b"9\r\ne\":-2010}\r\n" b"0\r\nX-Trailer: 1\r\n\r\n")
    pieces = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nCont", b"ent-Length: 10\r\n\r", b"\n{\"a\":", b"\"bc\"}"]

    async def scenario(wire, server):
        return [await answer(wire, server.url + "/api/v3/order?x") for _ in range(3)]

    first, second, third = run([chunked, [bytes([b]) for b in chunked], pieces], scenario)
    assert (first.status, first.body) == (400, '{"code":-2010}') == (second.status, second.body)
    assert (third.status, third.body) == (200, '{"a":"bc"}')


def test_connection_close_answer_is_read_and_the_connection_not_reused():
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    to_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"until\":\"close\"}"

    async def scenario(wire, server):
        a = await answer(wire, server.url + "/api/v3/order?1")
        b = await answer(wire, server.url + "/api/v3/order?2")
        c = await answer(wire, server.url + "/api/v3/order?3")
        return a, b, c, server.connections, wire.connects

    a, b, c, connections, connects = run([closing, to_close, ok()], scenario)
    assert (a.body, b.body, c.body) == ("{}", '{"until":"close"}', '{"ok":1}')
    assert connections >= 3 and connects == connections    # each close cost a new connection


@pytest.mark.parametrize("reply, expected", [
    ("close", "closed before the answer"),
    (("then close", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial\""), "closed before the answer"),
    (b"NOT HTTP AT ALL\r\n\r\n", "unreadable HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "unreadable HTTP answer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "unreadable HTTP answer"),
], ids=["closed", "cut-short", "not-http", "bad-length", "bad-chunk"])
def test_a_broken_answer_is_a_wire_error_that_never_holds_the_request(reply, expected):
    async def scenario(wire, server):
        with pytest.raises(WireError) as e:
            await answer(wire, server.url + f"/api/v3/order?signature={'ab' * 32}")
        after = await answer(wire, server.url + "/api/v3/order?next")   # a fresh connection serves the next
        return str(e.value), after

    text, after = run([reply, ok()], scenario)
    assert expected in text
    assert "signature" not in text and KEY not in text
    assert after.status == 200


def test_an_abandoned_answer_closes_its_connection_so_it_is_never_read_as_another():
    async def scenario(wire, server):
        with pytest.raises(TimeoutError):
            await answer(wire, server.url + "/api/v3/order?slow", timeout=0.2)
        await asyncio.sleep(0.1)
        eofs = server.eofs
        nxt = await answer(wire, server.url + "/api/v3/order?next")
        return eofs, nxt

    eofs, nxt = run(["hang", ok(b'{"n":2}')], scenario)
    assert eofs == 1                      # the server saw the abandoned connection close
    assert nxt.body == '{"n":2}'


def test_send_returns_none_without_a_ready_connection_and_opens_one():
    async def main():
        wire = OrderWire("http://127.0.0.1:9/api/v3", connect_timeout_s=0.5)   # nothing listens on port 9
        started = await wire.start()
        none = wire.send("POST", "http://127.0.0.1:9/api/v3/order?x", {})
        await wire.close()
        return started, none

    started, none = asyncio.run(main())
    assert started is False and none is None
    with pytest.raises(ValueError, match="http"):
        OrderWire("ws://127.0.0.1:1/")


# --------------------------------------------------------------------------- the order fast path, on the simulator


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", api_key=KEY, api_secret=SECRET,
                         balances={"USDT": "100000", "BTC": "1", "ETH": "10"}) as s:
        yield s


def client_for(sim, **kw) -> ExchangeClient:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("backoff_s", (0.02, 0.1))
    kw.setdefault("recv_window_ms", 1000)
    return ExchangeClient(sim.rest_url, KEY, SECRET, **kw)


def test_send_order_now_writes_before_returning_and_submit_reads_the_answer(sim):
    async def main():
        c = client_for(sim)
        await c.start()
        try:
            sent = c.send_order_now("fast-1", "BTCUSDT", "buy", "market", 0.002)
            assert sent is not None and c._wire.sent == 1          # written, no task ran yet
            assert "fast-1" in c.last_sent and c.order_gate.granted == 1
            assert "signature" not in repr(sent) and KEY not in repr(sent)
            answer = await c.submit("fast-1", "BTCUSDT", "buy", "market", 0.002, sent=sent)
            # a refusal through the fast path is the same OrderRejected as through ccxt
            refused = c.send_order_now("fast-2", "BTCUSDT", "buy", "market", 5.0)
            with pytest.raises(OrderRejected) as e:
                await c.submit("fast-2", "BTCUSDT", "buy", "market", 5.0, sent=refused)
            invalid = c.send_order_now("bad id with spaces", "BTCUSDT", "buy", "market", 0.002)
            return answer, str(e.value), invalid, c.last_sent
        finally:
            await c.close()

    answer, refused, invalid, last_sent = asyncio.run(main())
    assert (answer["clientOrderId"], answer["status"]) == ("fast-1", "FILLED") and answer["fills"]
    assert "code -2010" in refused and SECRET not in refused
    assert invalid is None and last_sent == {}
    placed = sim.state()["accounts"][KEY]["orders"]
    assert [(o["clientOrderId"], o["status"]) for o in placed] == [("fast-1", "FILLED")]   # fast-2 was refused


def test_fast_path_answer_lost_after_execution_is_found_not_sent_twice(sim):
    sim.set_faults(http_timeout_after_next=1, http_timeout_s=3, http_only=["POST /api/v3/order"])
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])

    async def main():
        c = client_for(sim, timeout_s=0.3)
        await c.start()
        try:
            sent = c.send_order_now("fast-3", "BTCUSDT", "buy", "limit", 0.001, bid - 300)
            started = time.monotonic()
            answer = await c.submit("fast-3", "BTCUSDT", "buy", "limit", 0.001, bid - 300, sent=sent)
            return answer, time.monotonic() - started
        finally:
            await c.close()

    answer, took = asyncio.run(main())
    assert (answer["clientOrderId"], answer["status"]) == ("fast-3", "NEW") and took < 1.5
    placed = sim.state()["accounts"][KEY]["orders"]
    assert [(o["clientOrderId"], o["status"]) for o in placed] == [("fast-3", "NEW")]


def test_fast_path_steps_aside_when_a_gate_would_wait_or_no_connection_is_ready(sim, caplog):
    caplog.set_level(logging.DEBUG)

    async def main():
        c = client_for(sim)
        await c.start()
        try:
            c.gate.penalize(429, 0.3)                                       # banned for a moment
            banned = c.send_order_now("gate-1", "BTCUSDT", "buy", "market", 0.001)
            c.gate._banned_until = 0.0
            for conn in list(c._wire._idle):                                  # no ready connection
                conn.close()
            closed = c.send_order_now("gate-2", "BTCUSDT", "buy", "market", 0.001)
            answer = await c.submit("gate-2", "BTCUSDT", "buy", "market", 0.001)   # through ccxt meanwhile
            await asyncio.sleep(0.2)                                           # the spare reopens
            again = c.send_order_now("gate-3", "BTCUSDT", "buy", "market", 0.001)
            third = await c.submit("gate-3", "BTCUSDT", "buy", "market", 0.001, sent=again)
            return banned, closed, answer, again is not None, third, c.order_gate.granted
        finally:
            await c.close()

    banned, closed, answer, reopened, third, granted = asyncio.run(main())
    assert banned is None and closed is None
    assert answer["status"] == "FILLED" and reopened and third["status"] == "FILLED"
    assert granted == 2                 # only the two orders sent; the refused fast paths counted nothing
    for record in caplog.records:
        assert SECRET not in record.getMessage() and "signature=" not in record.getMessage()


# --------------------------------------------------------------------------- quantities and prices as text

from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.live.rest import _fmt


def _fmt_by_decimal(value: float) -> str:
    d = Decimal(repr(float(value))).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN)
    return format(d.normalize(), "f")


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.floats(min_value=1e-8, max_value=1e14, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=10**12).map(lambda n: n / 10 ** 8),        # exchange-step values
    st.integers(min_value=1, max_value=10**9).map(lambda n: n * 0.01),             # with float noise
))
def test_the_fast_decimal_text_is_the_decimal_paths_text(value):
    expected = _fmt_by_decimal(value)
    if Decimal(expected) > 0:
        assert _fmt(value, "quantity") == expected


# --------------------------------------------------------------------------- https (the real exchange's scheme)


def _self_signed(tmp_path):
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_checks_the_certificate_and_then_serves_orders(tmp_path):
    import ssl  # noqa: PLC0415

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def main():
        async def serve(reader, writer):
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(ok(b'{"tls":true}'))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            untrusted = OrderWire(f"https://localhost:{port}/api/v3", connect_timeout_s=2)
            refused = await untrusted.start()          # the system does not trust a self-signed certificate
            await untrusted.close()
            client_ctx = ssl.create_default_context(cafile=str(cert))
            wire = OrderWire(f"https://localhost:{port}/api/v3", ssl_context=client_ctx, connect_timeout_s=2)
            assert await wire.start()
            got = await answer(wire, f"https://localhost:{port}/api/v3/order?x=1")
            await wire.close()
            return refused, got
        finally:
            server.close()
            await server.wait_closed()

    refused, got = asyncio.run(main())
    assert refused is False
    assert (got.status, got.body) == (200, '{"tls":true}')
