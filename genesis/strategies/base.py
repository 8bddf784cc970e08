"""The strategy plugin interface."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from genesis.durations import parse_duration


@dataclass
class OrderIntent:
    """What a strategy (or the operator) wants; the pre-trade stage may refuse or cut it."""

    strategy: str
    symbol: str
    side: str                 # 'buy' or 'sell'
    notional_usd: float
    price: float              # reference price at decision time
    reason: str               # 'entry', 'signal', 'stop_loss', 'take_profit', 'timeout', 'manual', 'risk'
    opens_position: bool
    manual: bool = False
    has_reason: bool = False
    limit_price: float | None = None   # a resting limit order at this price; None: market
    post_only: bool = False            # with limit_price: rejected rather than take liquidity (LIMIT_MAKER)

    def fields(self) -> dict:
        """The order_intent fields rules read as order.<field>."""
        return {"symbol": self.symbol, "side": self.side, "qty": self.notional_usd / self.price if self.price else 0.0,
                "price": self.price, "notional_usd": self.notional_usd, "opens_position": self.opens_position,
                "manual": self.manual, "has_reason": self.has_reason, "strategy": self.strategy, "hour_utc": 0}


@dataclass
class CancelIntent:
    """A strategy withdraws one of its own resting orders (a quote refresh, pulled quotes)."""

    strategy: str
    client_id: str
    reason: str = "refresh"


@dataclass
class RestingOrder:
    """One of a strategy's orders still open at the exchange."""

    client_id: str
    symbol: str
    side: str
    price: float          # limit price
    remaining: float      # base quantity still open


class MarketView:
    """What a strategy may read: mids, its holdings, equity, the time."""

    def __init__(self, engine):
        self._engine = engine

    @property
    def now(self) -> int:
        return self._engine.now

    def mid(self, symbol: str) -> float | None:
        return self._engine.account.mids.get(symbol)

    def holding(self, symbol: str) -> float:
        """Base quantity held."""
        pos = self._engine.account.positions.get(symbol)
        return pos.qty if pos else 0.0

    def holding_value(self, symbol: str) -> float:
        mid = self.mid(symbol) or 0.0
        return self.holding(symbol) * mid

    @property
    def equity(self) -> float:
        return self._engine.metrics.m.get("equity_usd", 0.0)

    def best(self, symbol: str) -> tuple[float, float] | None:
        """(best bid, best ask) of the book, or None while either side is unknown."""
        return self._engine.exchange.best(symbol)

    def top(self, symbol: str) -> tuple[float, float, float, float] | None:
        """(bid, bid qty, ask, ask qty) at the top of the book (for a microprice), or None."""
        book = self._engine.exchange.book(symbol)
        bids, asks = book.levels("buy", 1), book.levels("sell", 1)
        if not bids or not asks:
            return None
        return bids[0][0], bids[0][1], asks[0][0], asks[0][1]

    def open_orders(self, strategy: str, symbol: str | None = None) -> list[RestingOrder]:
        """The strategy's orders still open at the exchange (of one symbol), oldest first."""
        return self._engine.strategy_orders(strategy, symbol)

    def may_open(self, symbol: str) -> bool:
        """Whether a new position in `symbol` would be admitted now (trading state, locks,
        sizes above 0%); pre-trade rules may still refuse a given order."""
        return self._engine.state.admit(symbol, True, self.now).allowed \
            and self._engine.state.size_factor(self.now, symbol) > 0

    def market_state(self, symbol: str) -> str:
        """The symbol's market regime flag (rules/market_state.yaml), '' where none is configured."""
        value = self._engine.metrics.symbol_flag(symbol, "market_state")
        return "" if value is None else str(value)


registry: dict[str, type] = {}


class Strategy:
    """Base class: subclasses set `kind` and implement on_event."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            registry[cls.kind] = cls

    def __init__(self, instance_id: str, symbols: list[str], params: dict):
        self.id = instance_id
        self.symbols = list(symbols)
        self.given = dict(params)
        self.params = dict(params)   # the loader filled in the kind's schema defaults

    def seconds(self, key: str) -> float:
        """A duration parameter in seconds."""
        return parse_duration(self.params[key])

    def on_event(self, event, view: MarketView) -> list[OrderIntent]:
        """React to one market event; return order intents."""
        raise NotImplementedError

    def intent(self, symbol: str, side: str, notional: float, price: float, reason: str) -> OrderIntent:
        """An intent from this instance."""
        return OrderIntent(self.id, symbol, side, notional, price, reason, opens_position=side == "buy")

    def size(self, view: MarketView) -> float:
        """Order notional before limits and multipliers: size_pct of equity."""
        return view.equity * self.params["size_pct"] / 100.0
