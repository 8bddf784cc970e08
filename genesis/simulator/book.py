"""The simulator's own order book of one symbol, in exact decimals, kept from the
recorded REST snapshot and diff-depth updates (Binance's sync procedure: diffs before
the snapshot are buffered, those with ``u <= lastUpdateId`` dropped). It is what
``GET /api/v3/depth`` serves and what market orders walk. The simulator's own orders
neither add to nor take from it (no market impact)."""
from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)


def _levels(rows) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in rows]


class Book:
    """Bids and asks of one symbol, plus the last bookTicker and trade price."""

    def __init__(self, symbol: str):
        self.symbol = symbol
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_update_id: int | None = None
        self.synced = False
        self.gaps = 0
        self.ticker: tuple[Decimal, Decimal, Decimal, Decimal] | None = None
        self.ticker_id = 0
        self.last_price: Decimal | None = None
        self._pending: list = []

    def apply_snapshot(self, last_update_id: int, bids, asks) -> None:
        """Replace the levels by a REST snapshot, then apply buffered newer diffs."""
        self.bids = {p: q for p, q in _levels(bids) if q > 0}
        self.asks = {p: q for p, q in _levels(asks) if q > 0}
        self.last_update_id = int(last_update_id)
        self.synced = True
        pending, self._pending = self._pending, []
        for diff in pending:
            self.apply_diff(*diff)

    def apply_diff(self, first_id: int, last_id: int, bids, asks) -> bool:
        """Apply one depthUpdate (``U``, ``u``, ``b``, ``a``); False if buffered or stale.

        A hole in the recorded ids is counted in `gaps` and applied anyway: the
        recording is the exchange."""
        if not self.synced:
            self._pending.append((first_id, last_id, bids, asks))
            del self._pending[:-1000]
            return False
        if last_id <= self.last_update_id:
            return False
        if first_id > self.last_update_id + 1:
            self.gaps += 1
        for side, rows in ((self.bids, bids), (self.asks, asks)):
            for p, q in rows:
                price, qty = Decimal(p), Decimal(q)
                if qty > 0:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.last_update_id = last_id
        return True

    def apply_ticker(self, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str) -> None:
        """Remember the latest bookTicker (the book when no snapshot was recorded)."""
        self.ticker = (Decimal(bid), Decimal(bid_qty), Decimal(ask), Decimal(ask_qty))
        self.ticker_id = update_id

    def levels(self, side: str, limit: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """Best-first (price, qty) levels of 'bids' or 'asks'."""
        if not self.synced:
            t = self.ticker
            if t is None:
                return []
            row = (t[0], t[1]) if side == "bids" else (t[2], t[3])
            return [row] if row[1] > 0 else []
        book = self.bids if side == "bids" else self.asks
        prices = sorted(book, reverse=side == "bids")
        if limit is not None:
            prices = prices[:limit]
        return [(p, book[p]) for p in prices]

    def best(self, side: str) -> Decimal | None:
        """Best bid ('bids') or best ask ('asks') price."""
        if not self.synced:
            t = self.ticker
            return None if t is None else (t[0] if side == "bids" else t[2])
        book = self.bids if side == "bids" else self.asks
        if not book:
            return None
        return max(book) if side == "bids" else min(book)

    def displayed(self, side: str, price: Decimal) -> Decimal | None:
        """The quantity shown at `price` on one side ('BUY' -> bids, 'SELL' -> asks);
        None when the book cannot tell. Synced: the level's quantity (0 when there is no
        level). bookTicker only: its size when `price` is that side's best price, 0 when
        `price` is better than it, None when worse (not shown) or without data."""
        bid = side == "BUY"
        if self.synced:
            return (self.bids if bid else self.asks).get(price, ZERO)
        t = self.ticker
        if t is None:
            return None
        best, qty = (t[0], t[1]) if bid else (t[2], t[3])
        if qty <= 0:
            return None
        if price == best:
            return qty
        return ZERO if (price > best if bid else price < best) else None

    def reference_price(self) -> Decimal | None:
        """Last trade price, else the mid price: the market-order notional reference."""
        if self.last_price is not None:
            return self.last_price
        b, a = self.best("bids"), self.best("asks")
        return (b + a) / 2 if b is not None and a is not None else (b or a)

    def snapshot_id(self) -> int:
        """The update id a /depth answer is valid at."""
        return self.last_update_id if self.last_update_id is not None else self.ticker_id
