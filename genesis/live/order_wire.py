"""Kept-open HTTP/1.1 connections for the two latency-critical requests, a new order
and its cancel (signed POST and DELETE /api/v3/order).

Why not ccxt's aiohttp session: from the signed query to the bytes on the socket,
aiohttp's request machinery (session, connector, timers, request writer) costs about
320 µs on this path when its code has not run for a few milliseconds, which is every
decision's case. Here a request is one prebuilt line plus headers written straight to
an already open connection (a few µs), and the answer is read by a small HTTP/1.1
parser (status line, headers, a Content-Length or chunked body). Everything else
(markets, balances, queries, listen keys, and any order when no connection is ready)
still goes through ccxt, and the answer is classified by the same code as ccxt's.

One request at a time per connection, never pipelined. `send` takes an idle
connection, or returns None at once when none is ready (the caller then sends through
ccxt) and opens one in the background: two spare connections are kept open, so
that the next order, or two sent at once, find one. A connection whose answer is abandoned (a timeout cancels its
wait) is closed, so a late answer can never be read as another request's.

Nothing written here is logged: the request holds the API key and the signature."""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from urllib.parse import urlsplit

log = logging.getLogger("genesis.live.order_wire")

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
_RETRY_CONNECT_S = 1.0   # after a failed connect, the next attempt waits this long


class WireError(ConnectionError):
    """The connection failed or closed after the request was written: the request
    may have reached the exchange. Messages never hold the request."""


class WireAnswer:
    """One HTTP answer: status, headers (name -> value, as sent), body text."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict, body: str):
        self.status = status
        self.headers = headers
        self.body = body


def _chunked(buf: bytearray) -> tuple[bytes, int] | None:
    """A complete chunked body at the start of `buf`: (body, bytes used), or None
    while it is incomplete. Raises ValueError on a malformed chunk."""
    out = bytearray()
    pos = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip() or b"x", 16)
        pos = eol + 2
        if size == 0:                       # trailers (usually none), then an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                line_empty = eol == pos
                pos = eol + 2
                if line_empty:
                    return bytes(out), pos
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        pos += size + 2
        if len(out) > MAX_BODY_BYTES:
            raise ValueError("answer body too large")


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request in flight at most."""

    def __init__(self, wire: OrderWire):
        self.wire = wire
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.buf = bytearray()
        self.head: tuple | None = None     # (status, headers, keep_alive, length or -1 chunked or None to close)
        self.open = False

    # ---------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:           # nothing asked: an answer to a request we gave up on
            self.close()
            return
        self.buf += data
        try:
            self._parse()
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            self._fail(WireError(f"unreadable HTTP answer ({exc})"))
            self.close()

    def eof_received(self):
        if self.head is not None and self.head[3] is None:   # body runs to the close
            self._done(bytes(self.buf), keep=False)
        return False                       # close the transport

    def connection_lost(self, exc) -> None:
        self.open = False
        self.wire._forget(self)
        self._fail(WireError("the connection closed before the answer"
                             + (f" ({type(exc).__name__})" if exc is not None else "")))

    # ---------------------------------------------------------------- requests
    def usable(self) -> bool:
        return self.open and self.waiter is None and not self.transport.is_closing()

    def request(self, data: bytes, waiter: asyncio.Future) -> None:
        self.waiter = waiter
        self.buf.clear()
        self.head = None
        waiter.add_done_callback(self._abandoned)
        self.transport.write(data)

    def _abandoned(self, waiter: asyncio.Future) -> None:
        if waiter.cancelled() and self.waiter is waiter:   # a timeout gave up on it
            self.waiter = None
            self.close()

    def close(self) -> None:
        self.open = False
        self.wire._forget(self)
        if self.transport is not None:
            self.transport.abort()

    # ---------------------------------------------------------------- answers
    def _parse(self) -> None:
        buf = self.buf
        while self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ValueError("answer head too large")
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[:end + 4]
            version, status_text = lines[0].split(" ", 2)[:2]
            status = int(status_text)
            if 100 <= status < 200:        # an interim answer (100 Continue): the real one follows
                continue
            headers: dict[str, str] = {}
            lower: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ValueError("header line without ':'")
                name, value = name.strip(), value.strip()
                low = name.lower()
                if low in lower:
                    value = f"{lower[low]}, {value}"
                    name = next(k for k in headers if k.lower() == low)
                headers[name] = lower[low] = value
            conn = lower.get("connection", "").lower()
            keep = ("close" not in conn) if version == "HTTP/1.1" else ("keep-alive" in conn)
            if "chunked" in lower.get("transfer-encoding", "").lower():
                length = -1
            elif "content-length" in lower:
                length = int(lower["content-length"])
                if not 0 <= length <= MAX_BODY_BYTES:
                    raise ValueError("bad Content-Length")
            elif status in (204, 304):
                length = 0
            else:
                length, keep = None, False
            self.head = (status, headers, keep, length)
        status, headers, keep, length = self.head
        if length is None:
            if len(buf) > MAX_BODY_BYTES:
                raise ValueError("answer body too large")
            return                          # read to the close (eof_received)
        if length == -1:
            found = _chunked(buf)
            if found is None:
                return
            body, used = found
        else:
            if len(buf) < length:
                return
            body, used = bytes(buf[:length]), length
        extra = len(buf) > used            # bytes nobody asked for: do not reuse the connection
        self._done(body, keep and not extra)

    def _done(self, body: bytes, keep: bool) -> None:
        status, headers = self.head[0], self.head[1]
        waiter, self.waiter, self.head = self.waiter, None, None
        self.buf.clear()
        if keep:
            self.wire._idle_again(self)
        else:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(WireAnswer(status, headers, body.decode("utf-8", "replace")))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class OrderWire:
    """A small pool of kept-open HTTP/1.1 connections to one REST origin."""

    def __init__(self, base_url: str, *, spare: int = 2, max_idle: int = 3, connect_timeout_s: float = 5.0,
                 user_agent: str = "genesis", ssl_context: ssl.SSLContext | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the order connection needs an http(s) url, got {parts.scheme or 'none'}")
        self.tls = parts.scheme == "https"
        # https: the system's certificate authorities and host name check, unless given
        self.ssl_context = (ssl_context or ssl.create_default_context()) if self.tls else None
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default = 443 if self.tls else 80
        self.origin = f"{parts.scheme}://{parts.netloc}"
        host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        self._prefix = f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
        self.spare = int(spare)
        self.max_idle = max(int(max_idle), self.spare)
        self.connect_timeout_s = float(connect_timeout_s)
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._connecting = 0
        self._connect_failed_at = -1e9
        self._tasks: set[asyncio.Task] = set()
        self.closed = False
        self.sent = 0          # requests written
        self.connects = 0      # connections opened

    def __repr__(self) -> str:
        return f"OrderWire({self.origin!r}, idle={len(self._idle)})"

    async def start(self) -> bool:
        """Open the spare connection(s) now; False when the exchange cannot be reached
        (orders then go through ccxt until a connection opens)."""
        while len(self._idle) + self._connecting < self.spare:
            self._connecting += 1
            if not await self._open():
                return False
        return True

    def ready(self) -> bool:
        """Whether `send` would write at once (an idle open connection exists)."""
        idle = self._idle
        while idle and not idle[-1].usable():
            idle.pop()
        if idle:
            return True
        self._refill()
        return False

    def send(self, method: str, url: str, headers: dict) -> asyncio.Future | None:
        """Write `method url` (a url under this origin) with `headers` and no body on an
        idle connection; a future of its WireAnswer (or WireError), or None when no
        connection is ready (nothing was written)."""
        if not self.ready() or not url.startswith(self.origin):
            return None
        conn = self._idle.pop()
        target = url[len(self.origin):] or "/"
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        data = f"{method} {target} HTTP/1.1\r\n{self._prefix}{lines}Content-Length: 0\r\n\r\n".encode("latin-1")
        waiter = asyncio.get_running_loop().create_future()
        conn.request(data, waiter)
        self.sent += 1
        self._refill()
        return waiter

    async def close(self) -> None:
        """Close every connection and stop opening new ones."""
        self.closed = True
        for conn in list(self._all):
            conn.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---------------------------------------------------------------- pool
    def _idle_again(self, conn: _Connection) -> None:
        if self.closed or len(self._idle) >= self.max_idle:
            conn.close()
        else:
            self._idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    def _refill(self) -> None:
        """Open a connection in the background when fewer than `spare` are idle."""
        if (self.closed or len(self._idle) + self._connecting >= self.spare
                or time.monotonic() - self._connect_failed_at < _RETRY_CONNECT_S):
            return
        try:
            task = asyncio.get_running_loop().create_task(self._open())
        except RuntimeError:     # no running loop (closing down)
            return
        self._connecting += 1    # counted now: another send before the task runs opens no second one
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self) -> bool:
        """Open one connection (the caller counted it in `_connecting`)."""
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port,
                                                       ssl=self.ssl_context,
                                                       server_hostname=self.host if self.tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._connect_failed_at = time.monotonic()
            log.warning("order connection to %s failed (%s); orders go through ccxt meanwhile", self.origin,
                        type(exc).__name__)
            return False
        finally:
            self._connecting -= 1
        self.connects += 1
        if self.closed:
            conn.close()
            return False
        self._all.add(conn)
        self._idle.append(conn)
        return True
