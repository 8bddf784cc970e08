"""A local Binance spot order book kept in sync from diff-depth updates.

Sync follows Binance's procedure for `<symbol>@depth` streams:

1. diffs that arrive before any snapshot are buffered (bounded; the oldest are
   dropped first) and replayed, in order, when the snapshot arrives;
2. after a snapshot with `lastUpdateId` L, diffs with `u <= L` are dropped and the
   first one applied must have `U <= L + 1 <= u`;
3. after that each diff must continue the previous one: `U == previous u + 1`.
   A diff whose `u` is not newer than the book (a duplicate) is dropped. A diff that
   overlaps the book (`U <= previous u < u`) is applied: diffs carry absolute
   quantities per level, so re-applying the overlap is harmless (this is the rule in
   Binance's current documentation, and identical to `U == u + 1` on a clean stream).
   A diff that leaves a hole (`U > previous u + 1`) is a gap: the book is marked out of
   sync (`synced` False, `gaps` += 1), its depth levels are dropped, and diffs are
   buffered again until the next snapshot.

While the depth book is not synced (or there never was depth data), the last
bookTicker is the book: one level on each side. While it is synced the depth levels
are the book and bookTicker updates are only remembered.

Diffs can also be deferred (`defer_diff`): the sequence rules run at once (ids, sync,
gaps, drops and the snapshot buffer are always as if each diff had been applied), and
the levels of accepted diffs are merged into one pending update per price and side
(the last quantity wins). The pending levels are written into the book when it is next
read (`catch_up`) or when they grow past PENDING_LEVELS_MAX, so a level updated by many
diffs is written once.

Storage: one dict price -> quantity per side, plus one ascending list of the prices
per side kept sorted with `bisect` (a new level or a deleted level costs a binary
search and one memmove; the whole book is never re-sorted). The best bid is the last
bid price, the best ask the first ask price.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from struct import pack, unpack
from typing import Iterable

Levels = Iterable[tuple[float, float]]

EPS = 1e-12   # quantities are multiples of 1e-8; below this a float residue is zero

BUY_SIDES = ("buy", "bid", "bids")
SELL_SIDES = ("sell", "ask", "asks")


# merged (side, price) updates held unapplied at most: enough to batch the per-level work
# over a few hundred diffs, few enough that a book nobody reads stays small
# (bench/bench_memory.py, symbols)
PENDING_LEVELS_MAX = 4096


class OrderBook:
    """The order book of one symbol."""

    __slots__ = (
        "symbol", "_bids", "_asks", "_bid_px", "_ask_px", "last_update_id", "synced",
        "gaps", "dropped", "_buffer", "_ticker", "_pend_bids", "_pend_asks",
    )

    def __init__(self, symbol: str, buffer_limit: int = 1000):
        self.symbol = symbol
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_px: list[float] = []     # ascending; best bid is the last
        self._ask_px: list[float] = []     # ascending; best ask is the first
        self.last_update_id: int | None = None   # id the depth levels are valid at
        self.synced = False                # depth levels are a faithful copy of the exchange's
        self.gaps = 0                      # sequence gaps seen since creation
        self.dropped = 0                   # stale or duplicate diffs ignored
        self._buffer: deque = deque(maxlen=buffer_limit)   # diffs waiting for a snapshot
        self._ticker: list[float] | None = None            # [bid, bid_qty, ask, ask_qty]
        self._pend_bids: dict[float, float] = {}           # merged levels of deferred diffs,
        self._pend_asks: dict[float, float] = {}           # not written until the book is read

    # ----------------------------------------------------------------- deferral

    def defer_diff(self, first_id: int, last_id: int, bids: Levels, asks: Levels) -> None:
        """Take a diff with the sequence rules of `apply_diff`, but only merge its levels
        into the pending updates; they are written the next time the book is read.

        Used when nothing reads depth on every update: the per-level work then leaves
        the per-event path and runs once per price. Call `catch_up` before `apply_diff`
        on a book with deferred diffs."""
        if not self._accepts(first_id, last_id, bids, asks):   # a hole drops pending levels too
            return
        pb = self._pend_bids
        pa = self._pend_asks
        pb.update(bids)
        pa.update(asks)
        self.last_update_id = last_id
        if len(pb) + len(pa) > PENDING_LEVELS_MAX:
            self.catch_up()

    def catch_up(self) -> None:
        """Write the pending levels of deferred diffs into the book.

        Diffs carry absolute quantities, so a level's state depends only on its last
        update, and the book ends as if the diffs had been applied one by one."""
        pb = self._pend_bids
        if pb:
            self._apply_side(self._bids, self._bid_px, pb.items())
            pb.clear()
        pa = self._pend_asks
        if pa:
            self._apply_side(self._asks, self._ask_px, pa.items())
            pa.clear()

    # ----------------------------------------------------------------- updates

    def apply_snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> None:
        """Replace the depth levels by a REST snapshot, then replay buffered diffs."""
        self._pend_bids.clear()       # pending levels are older than the snapshot's
        self._pend_asks.clear()
        self._bids.clear()
        self._asks.clear()
        for price, qty in bids:
            if qty > 0:
                self._bids[price] = qty
        for price, qty in asks:
            if qty > 0:
                self._asks[price] = qty
        self._bid_px = sorted(self._bids)
        self._ask_px = sorted(self._asks)
        self.last_update_id = int(last_update_id)
        self.synced = True
        pending = list(self._buffer)
        self._buffer.clear()
        for first_id, last_id, b, a in pending:
            self.apply_diff(first_id, last_id, b, a)

    def apply_diff(self, first_id: int, last_id: int, bids: Levels, asks: Levels) -> bool:
        """Apply one diff update (Binance `U`, `u`, `b`, `a`; quantity 0 deletes a level).

        Returns True when the diff changed the book, False when it was buffered,
        dropped as stale, or caused a gap."""
        if not self._accepts(first_id, last_id, bids, asks):
            return False
        self._apply_side(self._bids, self._bid_px, bids)
        self._apply_side(self._asks, self._ask_px, asks)
        self.last_update_id = last_id
        return True

    def _accepts(self, first_id: int, last_id: int, bids: Levels, asks: Levels) -> bool:
        """The sequence rules for one diff: True when its levels are to be applied (the
        caller then moves `last_update_id` on); otherwise it is buffered (no snapshot
        yet, or a hole that loses sync) or dropped as stale, and counted."""
        if not self.synced:
            self._buffer.append((first_id, last_id, bids, asks))
            return False
        last = self.last_update_id
        if last_id <= last:
            self.dropped += 1
            return False
        if first_id > last + 1:        # a hole between the book and this diff
            self._lose_sync()
            self._buffer.append((first_id, last_id, bids, asks))
            return False
        # here U <= last + 1 <= u: the first diff after a snapshot straddles
        # lastUpdateId + 1, each later one continues the previous u
        return True

    @staticmethod
    def _apply_side(book: dict, prices: list, updates: Levels,
                    _insort=insort, _bisect=bisect_left) -> None:
        pop = book.pop
        for price, qty in updates:
            if qty > 0:
                if price not in book:
                    _insort(prices, price)
                book[price] = qty
            elif pop(price, None) is not None:
                del prices[_bisect(prices, price)]

    def _lose_sync(self) -> None:
        self.synced = False
        self.gaps += 1
        self._bids.clear()
        self._asks.clear()
        self._bid_px.clear()
        self._ask_px.clear()
        self._pend_bids.clear()
        self._pend_asks.clear()
        self._buffer.clear()

    def apply_ticker(self, bid: float, bid_qty: float, ask: float, ask_qty: float) -> None:
        """Remember the latest bookTicker; it is the book while depth is not synced."""
        t = self._ticker
        if t is None:
            self._ticker = [bid, bid_qty, ask, ask_qty]
        else:
            t[0] = bid
            t[1] = bid_qty
            t[2] = ask
            t[3] = ask_qty

    def on_event(self, event) -> bool:
        """Update from a market-data Event ('depth' diff or snapshot, 'book_ticker')."""
        f = event.fields
        kind = event.kind
        if kind == "depth":
            if f.get("_snapshot"):
                self.apply_snapshot(f["_last_update_id"], f.get("_bids", ()), f.get("_asks", ()))
                return True
            return self.apply_diff(f["_first_id"], f["_last_id"], f.get("_bids", ()), f.get("_asks", ()))
        if kind == "book_ticker":
            self.apply_ticker(f["bid"], f["bid_qty"], f["ask"], f["ask_qty"])
            return True
        return False

    # ------------------------------------------------------------------- reads

    @property
    def source(self) -> str:
        """'depth' when the synced depth book is the book, 'ticker' when bookTicker
        is, '' when there is no data."""
        if self.synced:
            return "depth"
        return "ticker" if self._ticker is not None else ""

    @property
    def buffered(self) -> int:
        """Diffs waiting for a snapshot."""
        return len(self._buffer)

    def best_bid(self) -> float | None:
        if self._pend_bids or self._pend_asks:
            self.catch_up()
        if self.synced:
            return self._bid_px[-1] if self._bid_px else None
        t = self._ticker
        return t[0] if t is not None and t[1] > 0 else None

    def best_ask(self) -> float | None:
        if self._pend_bids or self._pend_asks:
            self.catch_up()
        if self.synced:
            return self._ask_px[0] if self._ask_px else None
        t = self._ticker
        return t[2] if t is not None and t[3] > 0 else None

    def levels(self, side: str, n: int = 10) -> list[tuple[float, float]]:
        """The best `n` levels of one side, best first, as (price, qty).

        `side` names the side of the book: 'bid'/'bids'/'buy' or 'ask'/'asks'/'sell'."""
        self.catch_up()
        bid = _is_bid_side(side)
        if self.synced:
            if bid:
                book, px = self._bids, self._bid_px
                return [(p, book[p]) for p in px[-1:-n - 1:-1]] if n > 0 else []
            book, px = self._asks, self._ask_px
            return [(p, book[p]) for p in px[:max(n, 0)]]
        t = self._ticker
        if t is None or n <= 0:
            return []
        if bid:
            return [(t[0], t[1])] if t[1] > 0 else []
        return [(t[2], t[3])] if t[3] > 0 else []

    def displayed(self, side: str, price: float) -> float | None:
        """The quantity the book shows at `price` on one side ('bid'/'buy' or
        'ask'/'sell'); None when the book cannot tell.

        Synced depth: the level's quantity, 0.0 when there is no level at that price.
        bookTicker only: its size when `price` is that side's best price, 0.0 when
        `price` is better than the best (nobody is there), None when it is worse (the
        level is not shown) or when there is no data."""
        self.catch_up()
        bid = _is_bid_side(side)
        if self.synced:
            return (self._bids if bid else self._asks).get(price, 0.0)
        t = self._ticker
        if t is None:
            return None
        best, qty = (t[0], t[1]) if bid else (t[2], t[3])
        if qty <= 0:
            return None
        if price == best:
            return qty
        better = price > best if bid else price < best
        return 0.0 if better else None

    def depth(self) -> tuple[int, int]:
        """Number of (bid, ask) levels in the book."""
        self.catch_up()
        if self.synced:
            return len(self._bid_px), len(self._ask_px)
        t = self._ticker
        if t is None:
            return 0, 0
        return int(t[1] > 0), int(t[3] > 0)

    def walk(self, side: str, qty: float, limit: float | None = None,
             consume: bool = False) -> tuple[float, float | None, float | None]:
        """What a taker order of `qty` would get: (filled_qty, vwap, worst_price).

        `side` is the taker's side: 'buy' consumes asks upward, 'sell' consumes bids
        downward. With `limit`, levels worse than the limit price are not touched.
        With `consume`, the filled quantity is removed from the local book (it comes
        back when the exchange next updates those levels). Nothing to fill gives
        (0.0, None, None)."""
        self.catch_up()
        buy = _is_taker_buy(side)
        if qty <= 0:
            return 0.0, None, None
        if self.synced:
            if buy:
                book, px = self._asks, self._ask_px
                order = iter(px)
            else:
                book, px = self._bids, self._bid_px
                order = reversed(px)
            left = qty
            cost = 0.0
            worst = None
            levels = 0
            emptied = []
            for price in order:
                if limit is not None and (price > limit if buy else price < limit):
                    break
                avail = book[price]
                take = avail if avail < left else left
                cost += take * price
                worst = price
                levels += 1
                left -= take
                if consume:
                    if avail - take <= EPS:
                        emptied.append(price)
                    else:
                        book[price] = avail - take
                if left <= EPS:
                    break
            if consume and emptied:
                for price in emptied:
                    del book[price]
                    del px[bisect_left(px, price)]
            if worst is None:
                return 0.0, None, None
            filled = qty - left if left > EPS else qty
            if levels == 1:
                return filled, worst, worst       # exact, without division residue
            return filled, cost / filled, worst
        t = self._ticker
        if t is None:
            return 0.0, None, None
        price, avail = (t[2], t[3]) if buy else (t[0], t[1])
        if avail <= 0 or (limit is not None and (price > limit if buy else price < limit)):
            return 0.0, None, None
        filled = avail if avail < qty else qty
        if consume:
            rest = avail - filled
            t[3 if buy else 1] = rest if rest > EPS else 0.0
        return filled, price, price

    def __repr__(self) -> str:
        return (f"OrderBook({self.symbol!r}, source={self.source!r}, bid={self.best_bid()}, "
                f"ask={self.best_ask()}, gaps={self.gaps})")

    # ----------------------------------------------------------------- snapshots

    def __getstate__(self) -> dict:
        """The book as a snapshot pickles it: each side's levels (and pending levels) as
        packed arrays of prices and quantities, not thousands of float objects for the
        pickler to visit one by one; the sorted price lists are rebuilt from them."""
        return {"symbol": self.symbol, "bids": _pack(self._bids), "asks": _pack(self._asks),
                "pending_bids": _pack(self._pend_bids), "pending_asks": _pack(self._pend_asks),
                "last_update_id": self.last_update_id, "synced": self.synced, "gaps": self.gaps,
                "dropped": self.dropped, "buffer": self._buffer, "ticker": self._ticker}

    def __setstate__(self, state: dict) -> None:
        self.symbol = state["symbol"]
        self._bids = _unpack(state["bids"])
        self._asks = _unpack(state["asks"])
        self._bid_px = sorted(self._bids)
        self._ask_px = sorted(self._asks)
        self._pend_bids = _unpack(state["pending_bids"])
        self._pend_asks = _unpack(state["pending_asks"])
        self.last_update_id = state["last_update_id"]
        self.synced = state["synced"]
        self.gaps = state["gaps"]
        self.dropped = state["dropped"]
        self._buffer = state["buffer"]
        self._ticker = state["ticker"]


def _pack(levels: dict[float, float]) -> tuple[bytes, bytes]:
    """(prices, quantities) as native doubles, in the dict's order (exact both ways)."""
    form = f"{len(levels)}d"
    return pack(form, *levels.keys()), pack(form, *levels.values())


def _unpack(packed: tuple[bytes, bytes]) -> dict[float, float]:
    prices, qtys = packed
    form = f"{len(prices) // 8}d"
    return dict(zip(unpack(form, prices), unpack(form, qtys)))


def _is_bid_side(side: str) -> bool:
    if side in BUY_SIDES:
        return True
    if side in SELL_SIDES:
        return False
    raise ValueError(f"unknown book side {side!r}")


def _is_taker_buy(side: str) -> bool:
    if side == "buy":
        return True
    if side == "sell":
        return False
    raise ValueError(f"unknown order side {side!r}")


class Books:
    """The order books of every symbol an exchange sees (paper and live alike)."""

    def __init__(self):
        self.books: dict[str, OrderBook] = {}

    def amend_price(self, order, price: float) -> tuple[float | None, str | None]:
        """An amend's new price for `order`, rounded to the symbol's tick, or why it is
        refused (not positive, or outside the symbol's filters). Needs `self.markets`."""
        if not price > 0:
            return None, "the new price must be positive"
        new_price = self.markets.round_price(order.symbol, price, order.side)
        problem = self.markets.check(order.symbol, order.remaining, new_price)
        return (None, problem) if problem else (new_price, None)

    def book(self, symbol: str) -> OrderBook:
        """The symbol's book, created empty on first use."""
        b = self.books.get(symbol)
        if b is None:
            b = self.books[symbol] = OrderBook(symbol)
        return b

    def best(self, symbol: str) -> tuple[float, float] | None:
        """(best bid, best ask), or None while either side is unknown."""
        b = self.books.get(symbol)
        if b is None:
            return None
        bid, ask = b.best_bid(), b.best_ask()
        if bid is None or ask is None:
            return None
        return bid, ask
