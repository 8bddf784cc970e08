"""Liquidity provision: layered post-only quotes on both sides of one symbol, after
Hummingbot's pure market making.

Each quote round places, on each side, one post-only limit order per level at
`spread_bps x level multiplier` from the reference price (the mid or the microprice),
sized by the level's share of `size_pct` of equity. Inventory (the symbol's holding as
a share of equity) is steered toward `target_base_pct`: both sides shift by
`skew_bps_per_pct` per percentage point of distance (above the target: down, so the
ask sells sooner and the bid buys later) and the sizes move from one side to the
other by `size_skew_per_pct`. Bids never add up to more than `inventory_limit_pct`
of equity with the holding; asks never offer more than is held (spot).

A round is replaced when it is `refresh` old, when the reference leaves the band of
`refresh_move_bps` around where it was quoted or passes one of the quotes, and
`fill_delay` after a fill (new quotes wait that long after each fill;
stale ones are still withdrawn). Replacing is two steps: the open quotes are
cancelled, and the new round is placed at the next event once they are gone (so
the pre-trade rules no longer count them as in flight). All quotes are pulled while
the symbol's market state is one of `pull_on_states`, and while new exposure is
refused (`view.may_open` false; with `asks_while_closed` the asks stay).

Per event the strategy only compares the reference with the round's band and the
time with its due time; the open orders are read only when it acts.
"""
from __future__ import annotations

from dataclasses import dataclass

from genesis.strategies.base import CancelIntent, MarketView, OrderIntent, Strategy

BPS = 1e4


@dataclass
class Round:
    """The quotes placed at one time: when, around which reference, and the band of
    the reference outside which they are replaced."""

    ts: int
    lo: float
    hi: float
    bids: bool          # whether bids were allowed when it was quoted


@dataclass
class Quote:
    """One level of one side."""

    side: str
    price: float
    notional: float


def reference(source: str, bid: float, bid_qty: float, ask: float, ask_qty: float) -> float:
    """The price quotes are placed around: the mid, or the microprice (the mid leaned
    toward the side with less size, where the next trade is likelier to move it)."""
    if source == "microprice" and bid_qty + ask_qty > 0:
        return (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)
    return (bid + ask) / 2


def _level_sizes(total: float, shares: list, minimum: float) -> list:
    """`total` split by `shares` (%), nearest level first. While a level would be below
    `minimum`, the farthest level is dropped and its share spread over the nearer ones
    in proportion; [] when even the whole is below it."""
    for count in range(len(shares), 0, -1):
        kept = shares[:count]
        part = sum(kept)
        sizes = [total * share / part for share in kept]
        if min(sizes) >= minimum:
            return sizes
    return []


def ladder(params: dict, ref: float, bids_seen: tuple, asks_seen: tuple, equity: float, held_value: float,
           bids: bool) -> list[Quote]:
    """The quotes of one round (nearest level first, bids then asks). `bids_seen` and
    `asks_seen`: the best bid and ask of each view of the book (the ticker, the
    exchange's book); a post-only quote must not cross any of them."""
    p = params
    if equity <= 0 or ref <= 0:
        return []
    gap = held_value / equity * 100 - p["target_base_pct"]    # percentage points above the target
    shift = -gap * p["skew_bps_per_pct"]                       # bps; both sides move the same way
    lean = p["size_skew_per_pct"] * gap
    size = equity * p["size_pct"] / 100
    bid_total = size * min(max(1 - lean, 0.0), 2.0) if bids else 0.0
    bid_total = min(bid_total, equity * p["inventory_limit_pct"] / 100 - held_value)
    ask_total = min(size * min(max(1 + lean, 0.0), 2.0), held_value)
    floor = p["min_spread_bps"]
    nearest = p["spread_bps"] * p["level_multipliers"][0]
    out: list[Quote] = []
    for side, total in (("buy", bid_total), ("sell", ask_total)):
        sign = -1 if side == "buy" else 1
        # a side's ladder moves as a block, no further toward the reference than min_spread_bps
        lean_in = min(-sign * shift, max(nearest - floor, 0.0))
        for mult, notional in zip(p["level_multipliers"],
                                  _level_sizes(max(total, 0.0), p["level_sizes_pct"], p["min_order_usd"])):
            away = max(p["spread_bps"] * mult - lean_in, floor)   # distance from the reference, bps
            price = ref * (1 + sign * away / BPS)
            if side == "buy" and price >= min(asks_seen):   # post-only would be rejected: join the bid
                price = min(bids_seen)
            elif side == "sell" and price <= max(bids_seen):
                price = max(asks_seen)
            out.append(Quote(side, price, notional))
    return out


class LiquidityProvision(Strategy):
    kind = "liquidity_provision"

    def __init__(self, instance_id, symbols, params):
        super().__init__(instance_id, symbols, params)
        self.symbol = self.symbols[0]
        self.refresh_ms = int(self.seconds("refresh") * 1000)
        self.fill_delay_ms = int(self.seconds("fill_delay") * 1000)
        self.pull_states = frozenset(self.params["pull_on_states"])
        self.round: Round | None = None
        self.placing = False          # a replacement waits for its cancels to complete
        self.asked: dict = {}         # client id -> when its cancel was asked (live confirms later)
        self.held: float | None = None
        self.quiet_until = 0          # no new quotes before this (ms): a fill was seen
        self.filled = False           # a fill since the round was placed
        self.tickers = False          # the symbol has a book ticker (else: candles set the book)

    # ------------------------------------------------------------ per event
    def on_event(self, event, view: MarketView) -> list:
        """Decide on one market event: nothing, cancels, or a new round of quotes."""
        if event.symbol != self.symbol:
            return []
        kind = event.kind
        if kind == "book_ticker":
            self.tickers = True
            f = event.fields
            top = (f["bid"], f["bid_qty"], f["ask"], f["ask_qty"])
        elif kind == "candle" and not self.tickers:
            top = view.top(self.symbol)
            if top is None:
                return []
        else:
            return []
        now = event.ts
        if view.market_state(self.symbol) in self.pull_states:
            return self._pull(view)
        bids = view.may_open(self.symbol)
        if not bids and not self.params["asks_while_closed"]:
            return self._pull(view)
        held = view.holding(self.symbol)
        if held != self.held:
            if self.held is not None:
                self.quiet_until, self.filled = now + self.fill_delay_ms, True
            self.held = held
        r = self.round
        if r is None and now < self.quiet_until:
            return []
        ref = reference(self.params["price_source"], *top)
        moved = r is not None and not r.lo <= ref <= r.hi
        if r is not None and not moved and not self.placing and now < r.ts + self.refresh_ms \
                and not self.filled and r.bids == bids:
            return []
        return self._act(view, now, ref, top, bids, moved)

    # ------------------------------------------------------------ acting
    def _act(self, view: MarketView, now: int, ref: float, top: tuple, bids: bool, moved: bool) -> list:
        """Replace the round (cancel first, place once the cancels are done), wait for
        the quiet time after a fill, or withdraw quotes the market moved away from."""
        open_quotes = view.open_orders(self.id, self.symbol)
        if now < self.quiet_until:
            if moved and open_quotes:   # stale quotes go now; new ones wait for the quiet time
                return self._pull(view, open_quotes)
            return []
        if open_quotes:
            self.placing = True
            return self._cancel(open_quotes, now, "refresh")
        self.placing, self.filled, self.asked = False, False, {}
        return self._place(view, now, ref, top, bids)

    def _cancel(self, open_quotes: list, now: int, reason: str) -> list[CancelIntent]:
        """Cancels for the quotes not asked already (live: until the exchange confirms;
        asked again after `refresh`)."""
        asked = self.asked
        fresh = [q for q in open_quotes if now - asked.get(q.client_id, -self.refresh_ms) >= self.refresh_ms]
        for q in fresh:
            asked[q.client_id] = now
        return [CancelIntent(self.id, q.client_id, reason) for q in fresh]

    def _place(self, view: MarketView, now: int, ref: float, top: tuple, bids: bool) -> list[OrderIntent]:
        p = self.params
        # a quote must cross neither the ticker nor the exchange's book (the paper
        # exchange's may be the depth book, which lags the ticker)
        bids_seen, asks_seen = [top[0]], [top[2]]
        book = view.best(self.symbol)
        if book:
            bids_seen.append(book[0])
            asks_seen.append(book[1])
        quotes = ladder(p, ref, tuple(bids_seen), tuple(asks_seen), view.equity, view.holding(self.symbol) * ref,
                        bids)
        tolerance = ref * p["refresh_move_bps"] / BPS
        # replaced once the reference moves past the tolerance, or past a quote of its own
        lo = max([ref - tolerance] + [q.price for q in quotes if q.side == "buy" and q.price < ref])
        hi = min([ref + tolerance] + [q.price for q in quotes if q.side == "sell" and q.price > ref])
        self.round = Round(now, lo, hi, bids)
        return [OrderIntent(self.id, self.symbol, q.side, q.notional, ref, "entry" if q.side == "buy" else "signal",
                            opens_position=q.side == "buy", limit_price=q.price, post_only=True) for q in quotes]

    def _pull(self, view: MarketView, open_quotes: list | None = None) -> list[CancelIntent]:
        """Withdraw every quote and forget the round (the next quotes are a new one)."""
        if self.round is None and not self.placing and open_quotes is None:
            return []
        self.round, self.placing = None, False
        quotes = view.open_orders(self.id, self.symbol) if open_quotes is None else open_quotes
        return self._cancel(quotes, view.now, "pull")
