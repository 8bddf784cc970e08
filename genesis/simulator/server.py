"""The Simulator: one aiohttp server on loopback serving REST (``/api/v3``), market and
user-data websockets (``/ws``, ``/stream``, ``/ws-api/v3``) and the admin endpoints
(``/sim/...``), on top of the replayed market and the matching engine."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from decimal import Decimal
from typing import Self

from aiohttp import web

from . import admin, rest, ws
from .book import Book
from .config import STP_MODES, SimConfig, parse_speed
from .derived import DerivedReplayer, derive
from .exchange import Exchange
from .faults import Faults, FaultSpec
from .hub import SIM_KEY, Hub
from .klines import TradeTape
from .limits import Limits
from .market import Replayer
from .orders import Account
from .replay import load_capture
from .rules import load_exchange_info, rules_by_symbol

log = logging.getLogger("genesis.simulator")
LISTEN_KEY_TTL_MS = 60 * 60 * 1000


def _default_feeds() -> list:
    from genesis.engine.feeds import sample_paths

    return sample_paths()


def _default_exchange_info() -> str:
    from genesis.engine.feeds import exchange_info_path

    return str(exchange_info_path())


class Simulator:
    """A Binance-spot-compatible exchange on 127.0.0.1.

    ``Simulator(config)`` or ``Simulator(speed="step", port=0, ...)`` (keyword overrides
    of SimConfig); ``await start()``, then ``port``, ``rest_url``, ``ws_url``; ``await stop()``.
    """

    def __init__(self, config: SimConfig | None = None, **overrides):
        cfg = replace(config, **overrides) if config is not None else SimConfig(**overrides)
        cfg.validate()
        self.config = cfg
        self.speed = parse_speed(cfg.speed)
        self.exchange_info = load_exchange_info(cfg.exchange_info or _default_exchange_info())
        self._patch_rate_limits()
        self._patch_stp_modes()
        self.capture = load_capture(cfg.feeds or _default_feeds())
        self.exchange_info, self.clones = derive(self.exchange_info, self.capture, cfg.derived_symbols,
                                                 cfg.derived_offset_ms)
        self.rules = rules_by_symbol(self.exchange_info)
        self.books: dict[str, Book] = {s: Book(s) for s in self.rules}
        self.tapes: dict[str, TradeTape] = {}           # symbol -> replayed trades, for klines
        self.secrets = {cfg.api_key: cfg.api_secret, **cfg.extra_keys}
        assets = {a for r in self.rules.values() for a in (r.base, r.quote)}
        start = {a: Decimal(0) for a in assets}
        start.update({a: Decimal(str(v)) for a, v in cfg.balances.items()})
        self.accounts = {k: Account(k, start) for k in self.secrets}
        spec = FaultSpec.from_mapping({"seed": cfg.seed, **cfg.faults})
        self.faults = Faults(spec)
        self.limits = Limits(cfg.weight_limit, cfg.weight_window_s, cfg.ban_after, cfg.ban_s, cfg.orders_per_10s)
        self.hub = Hub(self.faults)
        self.exchange = Exchange(self.rules, self.books, self.accounts, self.faults, Decimal(cfg.maker_fee),
                                 Decimal(cfg.taker_fee), cfg.maker_fill, cfg.seed, self._emit)
        self.replay = (DerivedReplayer(self, self.capture, cfg.keep_timestamps, self.clones) if self.clones
                       else Replayer(self, self.capture, cfg.keep_timestamps))
        self.clock_offset_ms = 0
        self.listen_keys: dict[str, list] = {}          # listenKey -> [api key, expires ms]
        self.stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._replay_task: asyncio.Task | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ clock and helpers

    def now_ms(self) -> int:
        """The exchange clock: wall time plus the /sim/clock offset, in ms."""
        return int(time.time() * 1000) + self.clock_offset_ms

    @staticmethod
    def monotonic() -> float:
        """Seconds for rate-limit windows."""
        return time.monotonic()

    def book(self, symbol: str) -> Book:
        """The book of a symbol (created empty for symbols without data)."""
        b = self.books.get(symbol)
        if b is None:
            b = self.books[symbol] = Book(symbol)
        return b

    def tape(self, symbol: str) -> TradeTape:
        """The replayed trades of a symbol (created empty on first use)."""
        t = self.tapes.get(symbol)
        if t is None:
            t = self.tapes[symbol] = TradeTape()
        return t

    def account_uid(self, key: str) -> int:
        return 1000 + list(self.accounts).index(key)

    def _patch_rate_limits(self) -> None:
        """exchangeInfo's rateLimits tell the limits this simulator enforces."""
        cfg = self.config
        limits = [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": cfg.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": cfg.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
        ]
        self.exchange_info = {**self.exchange_info, "rateLimits": limits}

    def _patch_stp_modes(self) -> None:
        """Symbols that name no self-trade prevention modes get the simulator's: default
        `stp_default`, allowed NONE / EXPIRE_TAKER / EXPIRE_MAKER / EXPIRE_BOTH."""
        symbols = []
        for s in self.exchange_info.get("symbols", ()):
            s = dict(s)
            s.setdefault("defaultSelfTradePreventionMode", self.config.stp_default)
            s.setdefault("allowedSelfTradePreventionModes", list(STP_MODES))
            symbols.append(s)
        self.exchange_info = {**self.exchange_info, "symbols": symbols}

    def _emit(self, account: Account, event: dict) -> None:
        self.hub.publish_user(account.api_key, event)

    # ------------------------------------------------------------------ listen keys

    def new_listen_key(self, api_key: str, keep: str | None = None) -> str:
        """The account's active listenKey (created if none), valid 60 more minutes."""
        now = self.now_ms()
        lk = keep
        if lk is None:
            lk = next((k for k, (owner, exp) in self.listen_keys.items() if owner == api_key and exp > now), None)
        if lk is None:
            lk = self.exchange.new_id(60)
        self.listen_keys[lk] = [api_key, now + LISTEN_KEY_TTL_MS]
        return lk

    def listen_key_owner(self, lk: str) -> str | None:
        """The API key of a live listenKey, or None."""
        row = self.listen_keys.get(lk)
        return row[0] if row is not None and row[1] > self.now_ms() else None

    def close_listen_key(self, lk: str) -> None:
        self.listen_keys.pop(lk, None)
        for conn in list(self.hub.conns):
            if conn.listen_keys.pop(lk, None) is not None and not conn.listen_keys and not conn.streams:
                conn.abort()

    # ------------------------------------------------------------------ control (admin API)

    def step(self, n: int | None = None, ms: int | None = None, until_fill: bool = False) -> dict:
        """Replay records now: `n` of them, or `ms` of recorded time, or until a fill
        (at most `n` records when given); one record when nothing is said."""
        if n is None and ms is None and not until_fill:
            n = 1
        return self.replay.step(n, ms, until_fill)

    def set_faults(self, data: dict | None = None, reset: bool = False) -> dict:
        """Change the fault spec at run time (merged into the current one)."""
        spec = self.faults.update(data, reset)
        for conn in list(self.hub.conns):
            conn.wake.set()
        return spec.to_dict()

    def transfer(self, asset: str, amount, api_key: str | None = None) -> dict:
        """A deposit (amount > 0) or withdrawal (< 0) of `asset` on an account (the default
        key's): its balance changes with no trade, as a `balanceUpdate` then an
        `outboundAccountPosition` on its user-data streams report. Returns its balances."""
        from decimal import Decimal, InvalidOperation  # noqa: PLC0415

        key = api_key or self.config.api_key
        account = self.accounts.get(key)
        if account is None:
            raise ValueError("no such account")
        try:
            delta = Decimal(str(amount))
        except InvalidOperation:
            raise ValueError(f"amount {amount!r} is not a number") from None
        if not asset or not str(asset).isalnum():
            raise ValueError("asset: letters and digits, e.g. ETH")
        asset = str(asset).upper()
        if account.free(asset) + delta < 0:
            raise ValueError(f"a withdrawal of {-delta} {asset} is more than the free balance")
        account.change(asset, free=delta)
        now = self.now_ms()
        self._emit(account, {"e": "balanceUpdate", "E": now, "a": asset, "d": str(delta), "T": now})
        position = account.take_changed(now)
        if position is not None:
            self._emit(account, position)
        return account.state()["balances"]

    def set_clock(self, offset_ms: int) -> dict:
        """Move the exchange clock by `offset_ms` from wall time."""
        self.clock_offset_ms = int(offset_ms)
        return {"serverTime": self.now_ms(), "offset_ms": self.clock_offset_ms}

    def reset_limits(self, weight_limit: int | None = None) -> dict:
        """Forget used weight, 429 counts and bans (optionally set a new weight limit)."""
        if weight_limit is not None:
            self.limits.weight_limit = int(weight_limit)
        self.limits.reset()
        return self.limits.state(self.monotonic())

    def state(self) -> dict:
        """Balances, every order and every trade of every account, plus replay, limits
        and faults: what a client's journal is compared with."""
        return {"serverTime": self.now_ms(), "replay": self.replay.report(),
                "accounts": {k: a.state() for k, a in self.accounts.items()},
                "books": {s: {"lastUpdateId": b.snapshot_id(), "synced": b.synced, "gaps": b.gaps,
                              "bestBid": str(b.best("bids")), "bestAsk": str(b.best("asks"))}
                          for s, b in self.books.items() if b.synced or b.ticker is not None},
                "limits": self.limits.state(self.monotonic()), "faults": self.faults.state(),
                "connections": self.hub.summary()}

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """REST base, like https://api.binance.com (paths /api/v3/...)."""
        return self.base_url

    @property
    def ws_url(self) -> str:
        """Websocket base, like wss://stream.binance.com:9443 (paths /ws, /stream)."""
        return "ws" + self.base_url[4:]

    @property
    def ws_api_url(self) -> str:
        """WebSocket API endpoint, like wss://ws-api.binance.com/ws-api/v3."""
        return self.ws_url + "/ws-api/v3"

    def make_app(self) -> web.Application:
        app = web.Application()
        app[SIM_KEY] = self
        app.router.add_route("*", "/api/v3/{tail:.*}", rest.handle)
        app.router.add_get("/ws", ws.market_ws)
        app.router.add_get("/ws/{name}", ws.market_ws)
        app.router.add_get("/stream", ws.market_ws)
        app.router.add_get("/ws-api/v3", ws.ws_api)
        admin.add_routes(app)
        return app

    async def start(self) -> None:
        """Build the books (pre-roll), bind the port, start the replay unless in step mode."""
        self.stopping = asyncio.Event()
        self.replay.start(self.now_ms())
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        if self.speed != "step":
            self._replay_task = asyncio.get_running_loop().create_task(self.replay.run(self.speed))
        log.info("simulator listening on %s", self.base_url)

    async def stop(self) -> None:
        """Stop the replay, release held requests, close websockets, unbind."""
        self.stopping.set()
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replay_task
            self._replay_task = None
        await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
