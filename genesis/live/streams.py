"""Binance spot websocket streams for the live session (``websockets`` asyncio client).

``MarketStream``: combined-stream connections
(``<ws_url>/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms/...``),
as many as the streams need: at most ``max_streams`` streams on one (default 1024,
Binance's limit; genesis.yaml ``exchange.streams_per_connection``) and a ``streams=``
query of at most ``max_url_chars`` (4000: a long request line is refused by many
servers and proxies, aiohttp's at 8190 bytes), the streams in order (a symbol's channels
stay together unless a cut falls between them). Each connection deduplicates,
watches for silence and reconnects on its own, as below; all deliver to the same
callback. Every message's ``data`` goes to ``on_message(stream, data, recv_ns)`` (``recv_ns``:
``time.time_ns()`` at receipt), except

* exact duplicates: the same id as the last delivered message of that stream (trade
  ``t``, aggTrade ``a``, bookTicker / depth diff ``u``, partial depth
  ``lastUpdateId``), counted in ``duplicates``;
* messages older than the last delivered one of their stream (a lower id), counted in
  ``out_of_order``. Ids are remembered across reconnects, so what a new connection
  repeats is dropped too. A dropped depth diff leaves a hole in the update ids, which
  the order book (genesis.engine.book.OrderBook) detects and resyncs from a REST
  snapshot.

A connection is reopened after any drop, with exponential backoff (``backoff_s`` =
(first, max) seconds, jittered from a seeded ``random.Random``, seed + its number); the
combined url subscribes again. A connection that delivers nothing for ``stale_after_s`` is taken
for half-open (a live market never goes quiet that long): it is aborted and reopened.
``on_status(connected, reason)`` is called on every change of the whole stream: connected
once every connection is up, disconnected as soon as one is down (some symbols have no
data then); with several connections the reason names the one that changed
("connection 2 of 3: dropped ..."). The counters (``messages``, ``duplicates``,
``reconnects``: connections made after each one's first, ...) add up the connections'.

``UserStream``: the account's user-data stream over a listenKey
(``<ws_url>/ws/<listenKey>``). Before every (re)connect it asks
``client.new_listen_key()`` (Binance returns the active key, or a new one when the old
one expired or was closed); the key is kept alive every ``keepalive_s``; a refused
keepalive (-1125) or a ``listenKeyExpired`` event reconnects with a fresh key. A user
stream is quiet when nothing trades, so silence alone is not a failure: after
``stale_after_s`` without a message the connection is probed with a ping, and only a
missing pong (``ping_timeout_s``) marks it half-open. A connection can also stay up,
answering pings, and deliver nothing (the exchange lost the subscription): the session
calls ``expect(client_order_id)`` when an answer shows the exchange acted on an order
(a new order, a cancel), and when no report of that order arrives within
``report_timeout_s`` the connection is taken for half-open too. Either way it is
aborted and reopened with a fresh listenKey, which reconciles (below). Events (``executionReport``,
``outboundAccountPosition``, ``balanceUpdate``, ...; WebSocket-API envelopes
``{"subscriptionId", "event"}`` and combined envelopes are unwrapped) go to
``on_message(event, recv_ns)``. After every successful connection (the first one too)
``on_reconnected()`` is called, and awaited when it returns an awaitable, before any
message of that connection is delivered: events sent while the stream was down are
lost, and that is the moment to reconcile with REST (an exception it raises is logged;
the stream goes on).

Callbacks may be plain functions or coroutine functions. An exception raised by
``on_message`` or ``on_status`` ends ``run()`` (the connection is closed and reported first).
``stop()`` ends ``run()`` from the same event loop."""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
import re
import time

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

log = logging.getLogger("genesis.live.streams")

_decode = msgspec.json.decode
MAX_STREAMS_PER_CONNECTION = 1024   # Binance: at most 1024 streams on one connection
MAX_URL_CHARS = 4000                # the combined-stream query kept under common 4-8 KB request-line limits
_KEY_RE = re.compile(r"(/ws/)[A-Za-z0-9]{8,}")


def _mask_key(text: str) -> str:
    return _KEY_RE.sub(r"\1<listenKey>", text)


class _MaskFilter(logging.Filter):
    """The websockets library logs request lines at debug level; a listenKey in them is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record
            text = str(record.msg)
        record.msg, record.args = _mask_key(text), None
        return True


_WS_LOG = logging.getLogger("genesis.live.ws")
if not any(isinstance(f, _MaskFilter) for f in _WS_LOG.filters):
    _WS_LOG.addFilter(_MaskFilter())


def _id_key(stream: str) -> str | None:
    """The field whose value orders the messages of one stream, if any."""
    _, _, kind = stream.partition("@")
    if kind == "trade":
        return "t"
    if kind == "aggTrade":
        return "a"
    if kind == "bookTicker":
        return "u"
    if kind.startswith("depth"):
        head = kind.split("@")[0]
        return "lastUpdateId" if head[5:].isdigit() else "u"
    return None


async def _maybe_await(result) -> None:
    if result is not None and inspect.isawaitable(result):
        await result


class _Reconnecting:
    """The reconnect loop shared by both streams."""

    def __init__(self, on_status, backoff_s: tuple[float, float], seed: int, open_timeout_s: float, label: str):
        self.on_status = on_status
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self.open_timeout_s = float(open_timeout_s)
        self.reconnects = 0
        self.connections = 0
        self.connected = False
        self.last_message_ns: int | None = None
        self._label = label
        self._reported: bool | None = None
        self._rng = random.Random(seed)
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._ws = None
        self._why_closed: str | None = None     # set by whoever aborts the connection

    def stop(self) -> None:
        """End run(): close the connection and stop reconnecting."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        self._abort("stopped")

    def _abort(self, why: str) -> None:
        ws = self._ws
        if ws is None:
            return
        if self._why_closed is None:
            self._why_closed = why
        transport = getattr(ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def _status(self, connected: bool, reason: str) -> None:
        self.connected = connected
        if connected == self._reported:
            return
        self._reported = connected
        log.info("%s %s: %s", self._label, "connected" if connected else "disconnected", reason)
        if self.on_status is not None:
            await _maybe_await(self.on_status(connected, reason))

    async def _backoff(self, attempt: int) -> None:
        base, cap = self.backoff_s
        delay = min(cap, base * 2 ** max(attempt - 1, 0)) * (0.5 + 0.5 * self._rng.random())
        try:
            await asyncio.wait_for(self._stop_event.wait(), delay)
        except TimeoutError:
            pass

    async def _open(self, url: str):
        """A connection, or None (status reported) when it could not be opened."""
        try:
            return await connect(url, ping_interval=None, close_timeout=1.0, open_timeout=self.open_timeout_s,
                                 max_size=1 << 23, logger=_WS_LOG, proxy=None)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as e:
            await self._status(False, _mask_key(f"connect failed: {type(e).__name__}: {e}")[:200])
            return None

    async def _close(self, ws) -> None:
        try:
            await asyncio.wait_for(ws.close(), 1.5)
        except Exception:  # noqa: BLE001 - closing a broken connection
            transport = getattr(ws, "transport", None)
            if transport is not None:
                transport.abort()


def split_streams(streams: list[str], max_streams: int = MAX_STREAMS_PER_CONNECTION,
                  max_url_chars: int = MAX_URL_CHARS) -> list[list[str]]:
    """`streams` in order, cut into consecutive groups of at most `max_streams` whose
    ``streams=a/b/c`` query is at most `max_url_chars` long: one connection each."""
    if max_streams < 1:
        raise ValueError("at least one stream per connection")
    groups: list[list[str]] = []
    size = 0
    for stream in streams:
        if not groups or len(groups[-1]) >= max_streams or size + 1 + len(stream) > max_url_chars:
            groups.append([])
            size = len("streams=")
        groups[-1].append(stream)
        size += len(stream) + (len(groups[-1]) > 1)
    return groups


class _MarketConnection(_Reconnecting):
    """One combined-stream connection of a MarketStream, deduplicated, always reconnecting."""

    def __init__(self, ws_url: str, streams: list[str], on_message, on_status, stale_after_s: float,
                 backoff_s: tuple[float, float], seed: int, open_timeout_s: float, label: str):
        super().__init__(on_status, backoff_s, seed, open_timeout_s, label)
        self.streams = streams
        self.url = ws_url.rstrip("/") + "/stream?streams=" + "/".join(streams)
        self.on_message = on_message
        self.stale_after_s = float(stale_after_s)
        self.duplicates = 0
        self.out_of_order = 0
        self.messages = 0                       # delivered to on_message
        self.bad_messages = 0                   # not JSON, or not a stream envelope
        self.stale = 0                          # connections closed for silence
        self._keys = {s: _id_key(s) for s in streams}
        self._last: dict[str, int] = {}
        self._last_rx = 0.0

    def last_id(self, stream: str) -> int | None:
        """The id of the last message delivered on `stream`."""
        return self._last.get(stream)

    async def run(self) -> None:
        """Connect, deliver, reconnect, until stop()."""
        self._stop_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        attempt = 0
        try:
            while not self._stopping:
                if attempt:
                    await self._backoff(attempt)
                    if self._stopping:
                        break
                ws = await self._open(self.url)
                if ws is None:
                    attempt += 1
                    continue
                if self._stopping:
                    await self._close(ws)
                    break
                delivered = self.messages
                await self._session(ws)
                attempt = 1 if self.messages > delivered else attempt + 1
        finally:
            await self._status(False, "stopped")

    async def _session(self, ws) -> None:
        loop = asyncio.get_running_loop()
        self._ws, self._why_closed = ws, None
        if self.connections:
            self.reconnects += 1
        self.connections += 1
        self._last_rx = loop.time()
        watchdog = loop.create_task(self._watchdog(ws))
        reason = "closed"
        try:
            await self._status(True, "connected" if self.connections == 1 else "reconnected")
            async for raw in ws:
                self._last_rx = loop.time()
                await self._handle(raw, time.time_ns())
                # a burst of buffered frames must not hold back what this message caused
                # (an order about to leave): give the loop a turn after every message
                await asyncio.sleep(0)
            reason = f"closed by the server (code {ws.close_code})"
        except ConnectionClosed as e:
            reason = f"dropped ({type(e).__name__})"
        finally:
            watchdog.cancel()
            self._ws = None
            await self._close(ws)
            await self._status(False, self._why_closed or reason)

    async def _watchdog(self, ws) -> None:
        loop = asyncio.get_running_loop()
        stale = self.stale_after_s
        while True:
            idle = loop.time() - self._last_rx
            if idle >= stale:
                self.stale += 1
                log.warning("%s: no message for %.1f s; reconnecting", self._label, idle)
                self._abort(f"stale: no message for {stale:g} s")
                return
            await asyncio.sleep(stale - idle + 0.01)

    async def _handle(self, raw, recv_ns: int) -> None:
        try:
            msg = _decode(raw)
        except (msgspec.DecodeError, TypeError):
            self.bad_messages += 1
            log.warning("%s: undecodable message skipped", self._label)
            return
        if not isinstance(msg, dict):
            self.bad_messages += 1
            return
        stream = msg.get("stream")
        data = msg.get("data")
        if stream is None or data is None:
            if "error" in msg:
                log.warning("%s: error message %s", self._label, str(msg.get("error"))[:200])
            else:
                self.bad_messages += 1
            return
        key = self._keys.get(stream)
        if key is None and stream not in self._keys:
            key = self._keys[stream] = _id_key(stream)
        if key is not None and isinstance(data, dict):
            i = data.get(key)
            if type(i) is int:
                last = self._last.get(stream)
                if last is not None and i <= last:
                    if i == last:
                        self.duplicates += 1
                    else:
                        self.out_of_order += 1
                    return
                self._last[stream] = i
        self.messages += 1
        self.last_message_ns = recv_ns
        await _maybe_await(self.on_message(stream, data, recv_ns))


class MarketStream:
    """Market data over one or more combined-stream connections (at most
    `max_streams` streams and a `max_url_chars` query each), each deduplicated and
    reconnecting on its own, all delivering to the same `on_message`."""

    def __init__(self, ws_url: str, symbols: list[str], on_message, on_status, stale_after_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.05, 5.0), channels=("trade", "bookTicker", "depth@100ms"),
                 *, seed: int = 0, open_timeout_s: float = 10.0, max_streams: int = MAX_STREAMS_PER_CONNECTION,
                 max_url_chars: int = MAX_URL_CHARS):
        if not symbols or not channels:
            raise ValueError("a market stream needs at least one symbol and one channel")
        if not 1 <= int(max_streams) <= MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"streams per connection: between 1 and {MAX_STREAMS_PER_CONNECTION} (Binance's limit)")
        self.streams = [f"{s.lower()}@{c}" for s in symbols for c in channels]
        self.on_status = on_status
        groups = split_streams(self.streams, int(max_streams), int(max_url_chars))
        n = len(groups)
        self.parts = [
            _MarketConnection(ws_url, group, on_message, self._part_status(i), stale_after_s, backoff_s, seed + i,
                              open_timeout_s, "market stream" if n == 1 else f"market stream {i + 1}/{n}")
            for i, group in enumerate(groups)]
        self._up = [False] * n
        self._reported: bool | None = None
        self._by_stream = {s: part for part in self.parts for s in part.streams}

    @property
    def url(self) -> str:
        """The first connection's url (the only one when every stream fits in one)."""
        return self.parts[0].url

    @property
    def urls(self) -> list[str]:
        """Every connection's url."""
        return [p.url for p in self.parts]

    @property
    def connected(self) -> bool:
        """Every connection is up."""
        return all(p.connected for p in self.parts)

    def _total(self, name: str) -> int:
        return sum(getattr(p, name) for p in self.parts)

    duplicates = property(lambda self: self._total("duplicates"), doc="Exact repeats dropped.")
    out_of_order = property(lambda self: self._total("out_of_order"), doc="Older messages dropped.")
    messages = property(lambda self: self._total("messages"), doc="Messages delivered to on_message.")
    bad_messages = property(lambda self: self._total("bad_messages"), doc="Not JSON, or not a stream envelope.")
    stale = property(lambda self: self._total("stale"), doc="Connections closed for silence.")
    reconnects = property(lambda self: self._total("reconnects"), doc="Connections made after each one's first.")
    connections = property(lambda self: self._total("connections"), doc="Connections made.")

    @property
    def last_message_ns(self) -> int | None:
        """Receipt time of the last message delivered on any connection."""
        return max((p.last_message_ns for p in self.parts if p.last_message_ns is not None), default=None)

    def last_id(self, stream: str) -> int | None:
        """The id of the last message delivered on `stream`."""
        part = self._by_stream.get(stream)
        return part.last_id(stream) if part is not None else None

    def _part_status(self, i: int):
        """Connection i's status changes, folded into the stream's: connected once every
        connection is up, disconnected as soon as one is down."""
        async def changed(connected: bool, reason: str) -> None:
            self._up[i] = connected
            n = len(self.parts)
            why = reason if n == 1 else f"connection {i + 1} of {n}: {reason}"
            if connected and all(self._up) and self._reported is not True:
                if self._reported is None and n > 1:   # the first time every connection is up
                    why = f"connected ({n} connections)"
                self._reported = True
                if self.on_status is not None:
                    await _maybe_await(self.on_status(True, why))
            elif not connected and self._reported is not False:
                self._reported = False
                if self.on_status is not None:
                    await _maybe_await(self.on_status(False, why))
        return changed

    def stop(self) -> None:
        """End run(): close every connection and stop reconnecting."""
        for part in self.parts:
            part.stop()

    async def run(self) -> None:
        """Run every connection until stop(); an exception of one (raised by a callback)
        stops the others and ends run() with it."""
        tasks = [asyncio.ensure_future(p.run()) for p in self.parts]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = next((t for t in done if not t.cancelled() and t.exception() is not None), None)
            if failed is not None:
                self.stop()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise failed.exception()
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class UserStream(_Reconnecting):
    """The account's user-data stream over a listenKey, kept alive, always reconnecting."""

    def __init__(self, ws_url: str, client, on_message, on_status, keepalive_s: float = 1800.0,
                 stale_after_s: float = 60.0, backoff_s: tuple[float, float] = (0.05, 5.0), *,
                 on_reconnected=None, ping_timeout_s: float = 10.0, seed: int = 0, open_timeout_s: float = 10.0,
                 report_timeout_s: float | None = None):
        super().__init__(on_status, backoff_s, seed, open_timeout_s, "user stream")
        self.ws_url = ws_url.rstrip("/")
        self.client = client
        self.on_message = on_message
        self.on_reconnected = on_reconnected
        self.keepalive_s = float(keepalive_s)
        self.stale_after_s = float(stale_after_s)
        self.ping_timeout_s = float(ping_timeout_s)
        self.messages = 0
        self.bad_messages = 0
        self.keepalives = 0
        self.new_keys = 0                       # times the listenKey changed
        self.stale = 0
        self.report_timeout_s = float(report_timeout_s) if report_timeout_s else None
        self.missed_reports = 0                 # connections closed for a report that never came
        self._key: str | None = None
        self._last_rx = 0.0
        self._expected: dict[str, float] = {}   # client order id -> loop time its report is due by
        self._seen: dict[str, float] = {}       # client order id -> loop time of its last report
        self._poke: asyncio.Event | None = None

    @property
    def listen_key(self) -> str | None:
        """The listenKey of the current (or last) connection."""
        return self._key

    async def run(self) -> None:
        """Get a listenKey, connect, deliver, keep alive, reconnect, until stop()."""
        from .rest import ExchangeError  # at run time: rest imports nothing from here

        self._stop_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        attempt = 0
        try:
            while not self._stopping:
                if attempt:
                    await self._backoff(attempt)
                    if self._stopping:
                        break
                try:
                    key = await self.client.new_listen_key()
                except ExchangeError as e:
                    await self._status(False, f"no listenKey: {e}"[:200])
                    attempt += 1
                    continue
                if key != self._key:
                    if self._key is not None:
                        self.new_keys += 1
                    self._key = key
                ws = await self._open(f"{self.ws_url}/ws/{key}")
                if ws is None:
                    attempt += 1
                    continue
                if self._stopping:
                    await self._close(ws)
                    break
                delivered = self.messages
                await self._session(ws, key)
                attempt = 1 if self.messages > delivered else attempt + 1
        finally:
            await self._status(False, "stopped")

    def expect(self, client_order_id: str) -> None:
        """An answer shows the exchange acted on this order: its report must arrive within
        `report_timeout_s` (unless it came already), or the connection is taken for half-open."""
        if self.report_timeout_s is None or self._ws is None or not client_order_id:
            return
        if client_order_id in self._seen or client_order_id in self._expected:
            return
        self._expected[client_order_id] = asyncio.get_running_loop().time() + self.report_timeout_s
        if self._poke is not None:
            self._poke.set()

    def _report_seen(self, msg: dict, now: float) -> None:
        """An executionReport arrived: its order's report is no longer awaited."""
        for cid in (msg.get("c"), msg.get("C")):
            if cid:
                self._expected.pop(cid, None)
                self._seen[cid] = now
        if len(self._seen) > 4096:   # only recent ones matter: an answer follows its report within seconds
            horizon = now - 60.0 - (self.report_timeout_s or 0.0)
            self._seen = {c: t for c, t in self._seen.items() if t >= horizon}

    async def _session(self, ws, key: str) -> None:
        loop = asyncio.get_running_loop()
        self._ws, self._why_closed = ws, None
        self._expected.clear()                   # the reconciliation after this connect finds what was missed
        if self.connections:
            self.reconnects += 1
        self.connections += 1
        self._last_rx = loop.time()
        tasks = [loop.create_task(self._keepalive(key)), loop.create_task(self._watchdog(ws))]
        reason = "closed"
        try:
            await self._status(True, "connected" if self.connections == 1 else "reconnected")
            if self.on_reconnected is not None:
                try:
                    await _maybe_await(self.on_reconnected())
                except Exception:  # the stream must outlive a failed reconciliation
                    log.exception("user stream: on_reconnected failed")
            async for raw in ws:
                self._last_rx = loop.time()
                if not await self._handle(raw, time.time_ns()):
                    self._why_closed = "listenKey expired"
                    break
            else:
                reason = f"closed by the server (code {ws.close_code})"
        except ConnectionClosed as e:
            reason = f"dropped ({type(e).__name__})"
        finally:
            for t in tasks:
                t.cancel()
            self._ws = None
            await self._close(ws)
            await self._status(False, self._why_closed or reason)

    async def _keepalive(self, key: str) -> None:
        from .rest import ExchangeUnavailable, RequestFailed

        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.client.keepalive(key)
                self.keepalives += 1
            except RequestFailed as e:
                log.warning("user stream: keepalive refused (%s); reconnecting with a new listenKey", e.code)
                self._abort(f"listenKey refused (code {e.code})")
                return
            except ExchangeUnavailable as e:
                log.warning("user stream: keepalive failed: %s", e)

    async def _watchdog(self, ws) -> None:
        loop = asyncio.get_running_loop()
        stale = self.stale_after_s
        poke = self._poke = asyncio.Event()
        while True:
            now = loop.time()
            due = min(self._expected.values(), default=None)
            if due is not None and now >= due:
                self.stale += 1
                self.missed_reports += 1
                log.warning("user stream: no report within %.1f s of an order's answer; reconnecting",
                            self.report_timeout_s)
                self._abort(f"half-open: no report within {self.report_timeout_s:g} s of an order's answer")
                return
            idle = now - self._last_rx
            if idle < stale:
                wait = stale - idle + 0.01 if due is None else min(stale - idle, due - now) + 0.01
                poke.clear()
                try:
                    await asyncio.wait_for(poke.wait(), wait)
                except TimeoutError:
                    pass
                continue
            try:
                pong = await ws.ping()
                await asyncio.wait_for(pong, self.ping_timeout_s)
            except (TimeoutError, ConnectionClosed):
                self.stale += 1
                log.warning("user stream: no message for %.1f s and no pong; reconnecting", idle)
                self._abort(f"stale: no message for {stale:g} s and no pong")
                return
            self._last_rx = loop.time()          # quiet but alive

    async def _handle(self, raw, recv_ns: int) -> bool:
        """Deliver one message; False when the listenKey expired."""
        try:
            msg = _decode(raw)
        except (msgspec.DecodeError, TypeError):
            self.bad_messages += 1
            log.warning("user stream: undecodable message skipped")
            return True
        if isinstance(msg, dict) and "event" in msg and "subscriptionId" in msg:
            msg = msg["event"]
        elif isinstance(msg, dict) and "stream" in msg and "data" in msg:
            msg = msg["data"]
        if not isinstance(msg, dict) or "e" not in msg:
            self.bad_messages += 1
            return True
        if msg["e"] in ("listenKeyExpired", "eventStreamTerminated"):
            log.warning("user stream: %s; reconnecting", msg["e"])
            return False
        if msg["e"] == "executionReport":
            self._report_seen(msg, asyncio.get_running_loop().time())
        self.messages += 1
        self.last_message_ns = recv_ns
        await _maybe_await(self.on_message(msg, recv_ns))
        return True


def runner_streams(ws_url: str, client, symbols: list[str], user_timeout_s: float | None = None,
                   streams_per_connection: int = MAX_STREAMS_PER_CONNECTION):
    """(market, user): the two stream factories a LiveRunner is built with. Each takes
    the runner and returns a stream that puts what it receives, and every connect and
    drop as a `ws_status` system event naming the stream ('market' or 'user'), on the
    runner's queue. Every connect of the
    user stream, the first too, is followed by a reconciliation: whatever happened
    between the start-up reconciliation (or the drop) and the connect is found.
    `user_timeout_s` (genesis.yaml `exchange.user_stream_timeout`): how long the user
    stream may stay quiet before a ping (which must be answered as fast), and how soon
    an order's report must follow its answer (UserStream defaults when None).
    `streams_per_connection` (genesis.yaml `exchange.streams_per_connection`): the most
    market streams one connection carries; more symbols open more connections, all
    feeding the same queue, and 'market' is connected while every one of them is."""
    def status(runner, stream: str):
        return lambda up, _why: runner.put(("system", "ws_status", {"connected": up, "stream": stream}))

    def market(runner):
        def deliver(stream, data, ns):
            runner.put(("market", stream, data, ns))

        return MarketStream(ws_url, symbols, on_message=deliver, on_status=status(runner, "market"),
                            max_streams=streams_per_connection)

    def user(runner):
        timeouts = {} if user_timeout_s is None else {
            "stale_after_s": user_timeout_s, "ping_timeout_s": user_timeout_s, "report_timeout_s": user_timeout_s}
        return UserStream(ws_url, client, on_message=lambda data, _ns: runner.put(("user", data)),
                          on_status=status(runner, "user"), on_reconnected=lambda: runner.put(("reconcile",)),
                          **timeouts)

    return market, user
