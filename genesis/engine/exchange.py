"""The exchange the engine trades through: one interface for paper and live.

The engine takes an exchange at construction (`Engine(..., exchange=...)`; the paper
exchange when none is given) and uses only what this Protocol names, as NautilusTrader's
venues implement one interface. Two implementations ship:

- `genesis.engine.paper.PaperExchange` fills orders at once against the recorded books;
- `genesis.live.exchange.LiveExchange` queues orders for Binance and turns the answers
  into input events (the live session sends them).

Every method that changes an order returns the events it caused now (fills, cancels,
rejections), which the engine runs through the pipeline; an exchange whose answers come
later (live) returns none and reports them as input events.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from genesis.engine.book import OrderBook
from genesis.engine.events import Event
from genesis.engine.markets import Markets
from genesis.engine.paper import OrderRequest


@runtime_checkable
class Exchange(Protocol):
    """What the engine asks of an exchange."""

    markets: Markets
    # client id -> an open order (at least `symbol`, `side`, `price`, `remaining`)
    open_orders: dict
    # True: the exchange (the live session) reports each order's `order_sent` as an input;
    # False: an order reaches the exchange when submitted and the engine reports it
    reports_sent: bool
    # True: depth diffs may wait in the books until read (set by the engine)
    lazy_depth: bool

    def on_market(self, event: Event) -> list[Event]:
        """Keep the books (and fill resting orders) from one market event."""

    def book(self, symbol: str) -> OrderBook:
        """The symbol's order book, created empty on first use."""

    def best(self, symbol: str) -> tuple[float, float] | None:
        """(best bid, best ask), or None while either side is unknown."""

    def submit(self, req: OrderRequest, ts: int) -> list[Event]:
        """Place one order."""

    def cancel(self, client_id: str, ts: int, manual: bool | None = None) -> list[Event]:
        """Cancel one open order (asking again is harmless)."""

    def cancel_all(self, ts: int, symbol: str | None = None, manual: bool | None = None) -> list[Event]:
        """Cancel every open order (of one symbol)."""

    def amend(self, client_id: str, price: float, ts: int) -> tuple[list[Event], str | None]:
        """Move a resting limit order to `price`: (events, None), or ([], why not)."""
