"""Websocket connections, their subscriptions and the websocket faults.

Each connection has an outgoing queue drained by its own writer task, so a slow
client never holds up the replay. Faults are applied per connection when a message
is queued (duplicates and reordering, market streams only) and when it is sent (delay,
drop after N messages or X seconds, half-open or mute after N messages)."""
from __future__ import annotations

import asyncio
from collections import deque

import msgspec
from aiohttp import web

from .faults import Faults

_encode = msgspec.json.encode
SIM_KEY = web.AppKey("sim", object)     # the Simulator, in the aiohttp application
MAX_QUEUE = 100_000          # a client this far behind is disconnected, as Binance does


def dumps(obj) -> str:
    """Compact JSON text."""
    return _encode(obj).decode()


class Conn:
    """One websocket connection."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, kind: str, combined: bool,
                 faults: Faults):
        self.ws = ws
        self.request = request
        self.kind = kind                  # market | user | api
        self.combined = combined          # /stream envelopes
        self.faults = faults
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()
        self.sent = 0
        self.opened = asyncio.get_running_loop().time()
        self.half_open = False
        self.muted = False                # sends nothing more, still reads and answers pings
        self.dead = False
        self.streams: set[str] = set()
        self.listen_keys: dict[str, str] = {}     # listenKey -> api key (user data on /ws, /stream)
        self.subs: dict[int, str] = {}            # ws-api subscriptionId -> api key
        self.next_sub = 0
        self.session_key: str | None = None      # ws-api session.logon
        self._held: str | None = None
        self.task: asyncio.Task | None = None

    def _targeted(self) -> bool:
        return self.kind in self.faults.spec.ws_targets

    def push(self, text: str, market: bool = False) -> None:
        """Queue one message (market messages may be duplicated or held back one)."""
        if self.dead or self.half_open or self.muted:
            return
        if market and self._targeted():
            f = self.faults
            if self._held is None and f.chance("ws_reorder_rate"):
                self._held = text
                return
            self._append(text)
            if f.chance("ws_duplicate_rate"):
                self._append(text)
            if self._held is not None:
                held, self._held = self._held, None
                self._append(held)
            return
        self._append(text)

    def _append(self, text: str) -> None:
        if len(self.queue) >= MAX_QUEUE:
            self.abort()
            return
        self.queue.append(text)
        self.wake.set()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.dead = True
        self.wake.set()
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def writer(self) -> None:
        """Send queued messages, applying the send-side faults."""
        loop = asyncio.get_running_loop()
        while not self.dead:
            spec = self.faults.spec
            targeted = self._targeted()
            timeout = None
            if targeted and spec.ws_drop_every_s > 0:
                timeout = self.opened + spec.ws_drop_every_s - loop.time()
                if timeout <= 0:
                    self.faults.fired["ws_drop_every_s"] = self.faults.fired.get("ws_drop_every_s", 0) + 1
                    self.abort()
                    return
            if not self.queue:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            if self.half_open:
                return
            if targeted and 0 < spec.ws_mute_after <= self.sent:   # sent its N: nothing more, pings still answered
                self.faults.fired["ws_mute_after"] = self.faults.fired.get("ws_mute_after", 0) + 1
                self.muted = True
                self.queue.clear()
                return
            text = self.queue.popleft()
            if targeted and spec.ws_delay_ms > 0:
                await asyncio.sleep(spec.ws_delay_ms / 1000)
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self.dead = True
                return
            self.sent += 1
            if targeted and 0 < spec.ws_drop_after <= self.sent:
                self.faults.fired["ws_drop_after"] = self.faults.fired.get("ws_drop_after", 0) + 1
                self.abort()
                return
            if targeted and 0 < spec.ws_half_open_after <= self.sent:
                self.faults.fired["ws_half_open_after"] = self.faults.fired.get("ws_half_open_after", 0) + 1
                self.half_open = True
                self.queue.clear()
                return


class Hub:
    """Every open connection, by market stream and by account."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.conns: set[Conn] = set()
        self.by_stream: dict[str, set[Conn]] = {}

    def add(self, conn: Conn) -> None:
        self.conns.add(conn)
        conn.task = asyncio.get_running_loop().create_task(conn.writer())

    def remove(self, conn: Conn) -> None:
        conn.dead = True
        conn.wake.set()
        self.conns.discard(conn)
        for s in conn.streams:
            subs = self.by_stream.get(s)
            if subs is not None:
                subs.discard(conn)

    def subscribe(self, conn: Conn, stream: str) -> None:
        conn.streams.add(stream)
        self.by_stream.setdefault(stream, set()).add(conn)

    def unsubscribe(self, conn: Conn, stream: str) -> None:
        conn.streams.discard(stream)
        self.by_stream.get(stream, set()).discard(conn)

    def wants(self, stream: str) -> bool:
        """Whether any connection listens to `stream`."""
        return bool(self.by_stream.get(stream))

    def publish(self, stream: str, data: dict) -> None:
        """Send one market event to its subscribers (raw on /ws, envelope on /stream)."""
        subs = self.by_stream.get(stream)
        if not subs:
            return
        raw = combined = None
        for conn in list(subs):
            if conn.combined:
                if combined is None:
                    combined = dumps({"stream": stream, "data": data})
                conn.push(combined, market=True)
            else:
                if raw is None:
                    raw = dumps(data)
                conn.push(raw, market=True)

    def publish_user(self, api_key: str, event: dict) -> None:
        """Send one user-data event to every connection subscribed for this account."""
        raw = None
        for conn in list(self.conns):
            for lk, key in conn.listen_keys.items():
                if key == api_key:
                    if conn.combined:
                        conn.push(dumps({"stream": lk, "data": event}))
                    else:
                        raw = raw or dumps(event)
                        conn.push(raw)
            for sid, key in conn.subs.items():
                if key == api_key:
                    conn.push(dumps({"subscriptionId": sid, "event": event}))

    def summary(self) -> dict:
        """Open connections, subscribers per market stream, user-data subscribers."""
        live = [c for c in self.conns if not c.dead]
        return {"count": len(live),
                "streams": {s: n for s, subs in sorted(self.by_stream.items()) if (n := sum(not c.dead for c in subs))},
                "user": sum(bool(c.listen_keys or c.subs) for c in live)}

    async def close_all(self) -> None:
        """Close every connection with 1001 (used at shutdown); abort the ones that do
        not answer within half a second."""
        async def close(conn: Conn) -> None:
            conn.dead = True
            conn.wake.set()
            if conn.task is not None:
                conn.task.cancel()
            try:
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server shutdown"), 0.5)
            except (TimeoutError, ConnectionError, RuntimeError):
                conn.abort()

        await asyncio.gather(*(close(c) for c in list(self.conns)))
        self.conns.clear()
        self.by_stream.clear()
