"""A paper exchange: orders fill against the recorded order book, balances move. A dry
run (`genesis run --mode dry-run`) fills against the live book with it: see
genesis/live/dryrun.py.

Deterministic: no randomness, no wall clock; every time is the `ts` (ms) it is given,
and the same market events and orders always give the same fills.

Matching model
- Market orders walk the synced depth book (best level first). When depth is not
  synced, the book is the last bookTicker: its best price with its size. Quantity
  beyond the visible book is not filled: the filled part gives one 'fill' event
  (price = VWAP) and the rest one 'order_canceled' (`_reason` 'insufficient
  liquidity').
- Limit orders that cross the book fill at once as taker, walking levels up to the
  limit price; what is left rests. A resting order fills as maker, at its limit price,
  for at most a public trade's quantity; one trade's quantity is shared by the
  resting orders in price-time priority.
- Queue position: a resting order waits behind the quantity the book displayed at its
  price on its side when it was placed (`queue_ahead`): the synced depth book's level
  (0 when there is none), or, while the bookTicker is the book, its size when the
  price is the best price and 0 when the price improves on it. A price behind the
  ticker's best is not visible: its queue is taken the first time the book shows it.
  A trade at exactly the order's price first consumes the queue ahead and only then
  fills the order; a trade through its price (buy: trade price < limit; sell: >)
  fills it at once. When the level's displayed quantity shrinks below the queue ahead
  (cancellations ahead of us), the queue ahead shrinks to it; growth is behind us and
  changes nothing. Our own orders are not in the recorded book: each one's queue is
  market quantity only, and a trade's market volume ahead of one of our orders at a
  price is ahead of our later orders at that price too.
- Post-only ('limit_maker', Binance LIMIT_MAKER): rests like a limit order, but one
  that would take on arrival (buy price >= best ask, sell price <= best bid) is
  rejected ('order would immediately match and take'). An amend keeps it post-only.
- Our taker fills remove the liquidity they took from the local book until the
  exchange next updates those levels, so two orders in a row do not both take the
  same displayed quantity.

Balances and fees
- `balances` is the free balance per asset. A resting order locks what it may spend
  (a buy: remaining qty x limit price plus the maker fee, in quote; a sell: the base
  quantity) in `locked`; fills spend from the lock, cancels release it.
- Simplification: every fee is charged in the quote currency (notional x fee% / 100)
  and deducted from the quote balance (a buy pays notional + fee, a sell receives
  notional - fee). Binance charges the received asset (or BNB); charging the quote
  keeps the base quantity of a position exactly the ordered quantity and makes
  `fee_usd` directly comparable across sides.
- Amounts (notional, fee, balances) are rounded to 8 decimals, Binance's asset
  precision, so repeated fills do not accumulate float residue.

Events returned: 'fill', 'order_canceled', 'order_rejected'. 'order_new' and
'order_sent' belong to the executor that calls `submit` (it knows the decision time):
a paper order reaches this exchange at once, in event time (`reports_sent` is False).
"""
from __future__ import annotations

from dataclasses import dataclass

from genesis.engine.book import Books
from genesis.engine.events import Event
from genesis.engine.markets import Markets

AMOUNT_DECIMALS = 8
_EPS = 1e-12
LIMIT_TYPES = ("limit", "limit_maker")
WOULD_TAKE = "order would immediately match and take"


@dataclass
class OrderRequest:
    client_id: str
    symbol: str
    side: str               # 'buy' | 'sell'
    type: str               # 'market' | 'limit' | 'limit_maker' (post-only)
    qty: float              # base quantity
    price: float | None = None            # limit price
    decision_price: float | None = None   # price when the decision was made, for slippage
    manual: bool = False
    waited_ms: int = 0      # event time from when the order was due (its decision) to its submission


@dataclass
class OpenOrder:
    """A resting limit order."""

    client_id: str
    symbol: str
    side: str
    price: float            # limit price, on the tick grid
    qty: float              # ordered base quantity (after rounding to the step)
    remaining: float        # base quantity still open
    created_ts: int
    manual: bool = False
    decision_price: float | None = None
    seq: int = 0            # arrival order, for time priority
    locked: float = 0.0     # amount of `locked_asset` this order holds
    locked_asset: str = ""
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    fees: float = 0.0
    type: str = "limit"     # 'limit' | 'limit_maker'
    amendments: int = 0
    queue_ahead: float | None = 0.0   # displayed quantity ahead at our price; None: not seen yet

    @property
    def notional_usd(self) -> float:
        """Value of the open quantity in quote currency."""
        return _amt(self.remaining * self.price)


def _amt(x: float) -> float:
    return round(x, AMOUNT_DECIMALS)


class PaperExchange(Books):
    """Fills orders against the recorded books of every symbol it sees."""

    def __init__(self, markets: Markets, balances: dict[str, float],
                 taker_fee_pct: float = 0.1, maker_fee_pct: float = 0.1):
        self.markets = markets
        self.balances: dict[str, float] = {k: float(v) for k, v in balances.items()}
        self.locked: dict[str, float] = {}
        self.taker_fee_pct = float(taker_fee_pct)
        self.maker_fee_pct = float(maker_fee_pct)
        super().__init__()
        self.open_orders: dict[str, OpenOrder] = {}
        self._resting: dict[str, list[OpenOrder]] = {}   # symbol -> resting orders
        self._seq = 0
        # True when nothing reads depth events: diffs are then applied when the book is read
        self.lazy_depth = False
        # False: an order reaches this exchange when submitted, so the engine reports its
        # `order_sent` itself (live: the session reports when the request was written)
        self.reports_sent = False

    # ------------------------------------------------------------ market data

    def on_market(self, event) -> list[Event]:
        """Update the symbol's book; fill resting orders a trade prints through.

        'depth' events get `best_bid` / `best_ask` (0.0 when a side is empty)."""
        kind = event.kind
        if kind == "book_ticker":   # the commonest: first
            f = event.fields
            b = self.books.get(event.symbol) or self.book(event.symbol)
            b.apply_ticker(f["bid"], f["bid_qty"], f["ask"], f["ask_qty"])
            resting = self._resting.get(event.symbol)
            if resting and not b.synced:
                self._see_levels(b, resting)
            return []
        if kind == "trade":
            orders = self._resting.get(event.symbol)
            return self._on_trade(event, orders) if orders else []
        if kind == "depth":
            b = self.book(event.symbol)
            f = event.fields
            resting = self._resting.get(event.symbol)
            # with orders resting, levels are read at once: a level that shrinks and grows
            # back between two trades still shortens the queue ahead
            if self.lazy_depth and not f.get("_snapshot") and not resting:
                b.defer_diff(f["_first_id"], f["_last_id"], f.get("_bids", ()), f.get("_asks", ()))
                return []
            b.catch_up()
            b.on_event(event)
            bid, ask = b.best_bid(), b.best_ask()
            f["best_bid"] = 0.0 if bid is None else bid
            f["best_ask"] = 0.0 if ask is None else ask
            if resting:
                self._see_levels(b, resting)
            return []
        if kind == "candle":
            orders = self._resting.get(event.symbol)
            return self._on_candle(event, orders) if orders else []
        return []

    @staticmethod
    def _see_levels(book, orders: list[OpenOrder]) -> None:
        """Shorten each resting order's queue ahead to what its level now displays (a
        queue not seen yet is taken as displayed)."""
        for o in orders:
            shown = book.displayed(o.side, o.price)
            if shown is None:
                continue
            if o.queue_ahead is None or shown < o.queue_ahead:
                o.queue_ahead = shown

    def _on_candle(self, event, orders: list[OpenOrder]) -> list[Event]:
        """A candle from a candle feed (no trades known): its low traded through the resting
        buys above it and its high through the sells below it, for at most its volume
        each way. Only prices strictly passed fill (the queue at the low or high is unknown),
        and only orders that rested since the candle opened (its low or high may be older)."""
        f = event.fields
        opened = event.ts - int(f["interval_s"] * 1000)
        out: list[Event] = []
        for side, price in (("buy", f["low"]), ("sell", f["high"])):
            passed = [o for o in orders if o.side == side and o.created_ts <= opened
                      and (o.price > price if side == "buy" else o.price < price)]
            if passed:
                out.extend(self._on_trade(Event("trade", event.ts, event.symbol, {"price": price, "qty": f["volume"]}),
                                          passed))
        return out

    def _on_trade(self, event, orders: list[OpenOrder]) -> list[Event]:
        f = event.fields
        price = f["price"]
        avail = f["qty"]
        hit = [o for o in orders if (price <= o.price if o.side == "buy" else price >= o.price)]
        if not hit:
            return []
        # price priority (best for the counterparty first), then time priority
        hit.sort(key=lambda o: (-o.price if o.side == "buy" else o.price, o.seq))
        out: list[Event] = []
        to_queue = 0.0       # this trade's volume that went to market quantity queued at its price
        for o in hit:
            if o.price != price:                 # traded through: the level ahead is gone
                o.queue_ahead = 0.0
            elif o.queue_ahead is None:          # level never shown: nothing known, no fill
                continue
            else:
                ahead = _amt(o.queue_ahead - to_queue)
                ahead = ahead if ahead > 0 else 0.0
                take = ahead if ahead < avail else avail
                avail = _amt(avail - take)
                to_queue = _amt(to_queue + take)
                o.queue_ahead = _amt(ahead - take)
            if avail <= _EPS or o.queue_ahead > 0:
                continue
            q = o.remaining if o.remaining <= avail else avail
            q = self.markets.round_qty_down(o.symbol, q)
            if q <= 0:
                continue
            avail -= q
            out.append(self._fill_resting(o, q, event.ts))
        return out

    # ----------------------------------------------------------------- orders

    def submit(self, req: OrderRequest, ts: int) -> list[Event]:
        """Place an order; returns the fill, cancel and reject events it caused."""
        m = self.markets.get(req.symbol)
        if m is None:
            return [self._reject(req, ts, "unknown symbol")]
        if req.side not in ("buy", "sell"):
            return [self._reject(req, ts, f"unknown side {req.side!r}")]
        if req.type != "market" and req.type not in LIMIT_TYPES:
            return [self._reject(req, ts, f"unknown order type {req.type!r}")]
        if req.client_id in self.open_orders:
            return [self._reject(req, ts, "duplicate client order id")]
        if not (req.qty > 0):
            return [self._reject(req, ts, "quantity below lot size minimum")]
        qty = self.markets.round_qty_down(req.symbol, req.qty)
        buy = req.side == "buy"
        book = self.book(req.symbol)
        if req.type == "market":
            ref = book.best_ask() if buy else book.best_bid()
            if ref is None:
                return [self._reject(req, ts, "no market price")]
            reason = self.markets.check(req.symbol, qty, ref)
            if reason:
                return [self._reject(req, ts, reason)]
            filled, vwap, _ = book.walk(req.side, qty)
            reason = self._funds_problem(m, buy, filled, vwap or ref, self.taker_fee_pct)
            if reason:
                return [self._reject(req, ts, reason)]
            out: list[Event] = []
            if filled > 0:
                filled, vwap, worst = book.walk(req.side, qty, consume=True)
                remaining = _rest(qty, filled, m.qty_decimals)
                out.append(self._fill_taker(req, m, filled, vwap, worst, remaining, ts))
            else:
                remaining = qty
            if remaining > 0:
                out.append(Event("order_canceled", ts, req.symbol, {
                    "age_s": 0.0, "manual": False, "notional_usd": _amt(remaining * ref),
                    "_client_id": req.client_id, "_reason": "insufficient liquidity",
                    "_remaining": remaining, "_order_type": "market",
                }))
            return out

        # limit, limit_maker
        if req.price is None or not req.price > 0:
            return [self._reject(req, ts, "limit order needs a positive price")]
        price = self.markets.round_price(req.symbol, req.price, req.side)
        reason = self.markets.check(req.symbol, qty, price)
        if reason:
            return [self._reject(req, ts, reason)]
        post_only = req.type == "limit_maker"
        fee_pct = self.maker_fee_pct if post_only else max(self.taker_fee_pct, self.maker_fee_pct)
        reason = self._funds_problem(m, buy, qty, price, fee_pct)
        if reason:
            return [self._reject(req, ts, reason)]
        if post_only and self.would_take(req.symbol, req.side, price):
            return [self._reject(req, ts, WOULD_TAKE)]
        out = []
        remaining = qty
        filled, vwap, worst = book.walk(req.side, qty, limit=price, consume=True)
        if filled > 0:
            remaining = _rest(qty, filled, m.qty_decimals)
            out.append(self._fill_taker(req, m, filled, vwap, worst, remaining, ts, limit=price))
        if remaining > 0:
            self._seq += 1
            o = OpenOrder(client_id=req.client_id, symbol=req.symbol, side=req.side, price=price,
                          qty=qty, remaining=remaining, created_ts=ts, manual=req.manual,
                          decision_price=req.decision_price, seq=self._seq,
                          filled_qty=filled, type=req.type,
                          queue_ahead=book.displayed(req.side, price))
            if buy:
                o.locked_asset = m.quote
                o.locked = _amt(remaining * price * (1 + self.maker_fee_pct / 100))
            else:
                o.locked_asset = m.base
                o.locked = remaining
            self._move(o.locked_asset, -o.locked)
            self.locked[o.locked_asset] = _amt(self.locked.get(o.locked_asset, 0.0) + o.locked)
            self.open_orders[o.client_id] = o
            self._resting.setdefault(o.symbol, []).append(o)
        return out

    def cancel(self, client_id: str, ts: int, manual: bool | None = None) -> list[Event]:
        """Cancel a resting order; [] when the id is unknown (or already done).

        `manual` says whether the operator cancelled it (default: as the order was
        placed)."""
        o = self.open_orders.get(client_id)
        if o is None:
            return []
        notional = o.notional_usd
        self._close(o)
        return [Event("order_canceled", ts, o.symbol, {
            "age_s": (ts - o.created_ts) / 1000.0,
            "manual": o.manual if manual is None else bool(manual),
            "notional_usd": notional,
            "_client_id": client_id, "_reason": "canceled", "_remaining": o.remaining,
            "_order_type": o.type,
        })]

    def amend(self, client_id: str, price: float, ts: int) -> tuple[list[Event], str | None]:
        """Move a resting order to a new limit price (cancel-replace: it loses its time
        priority and fills at once if the new price crosses the book).

        Returns (events, None) with an 'order_amended' event first, or ([], why not)
        with the order left untouched."""
        o = self.open_orders.get(client_id)
        if o is None:
            return [], f"no open order {client_id!r}"
        new_price, problem = self.amend_price(o, price)
        if problem:
            return [], problem
        if o.type == "limit_maker" and self.would_take(o.symbol, o.side, new_price):
            return [], WOULD_TAKE
        m = self.markets.get(o.symbol)
        if o.side == "buy":
            fee_pct = self.maker_fee_pct if o.type == "limit_maker" else max(self.taker_fee_pct, self.maker_fee_pct)
            need = _amt(o.remaining * new_price * (1 + fee_pct / 100))
            have = _amt(self.balances.get(m.quote, 0.0) + o.locked)
            if need > have + _EPS:
                return [], f"insufficient {m.quote} balance: need {need}, free {have}"
        self._close(o)
        req = OrderRequest(client_id=client_id, symbol=o.symbol, side=o.side, type=o.type, qty=o.remaining,
                           price=new_price, decision_price=o.decision_price, manual=o.manual)
        amended = Event("order_amended", ts, o.symbol, {
            "amendments": o.amendments + 1, "price": new_price, "old_price": o.price, "manual": o.manual,
            "notional_usd": _amt(o.remaining * new_price), "_client_id": client_id})
        out = self.submit(req, ts)
        again = self.open_orders.get(client_id)
        if again is not None:
            again.amendments, again.created_ts = o.amendments + 1, o.created_ts
        return [amended, *out], None

    def cancel_all(self, ts: int, symbol: str | None = None, manual: bool | None = None) -> list[Event]:
        """Cancel every resting order (of one symbol), oldest first."""
        ids = [o.client_id for o in sorted(self.open_orders.values(), key=lambda o: o.seq)
               if symbol is None or o.symbol == symbol]
        out: list[Event] = []
        for cid in ids:
            out.extend(self.cancel(cid, ts, manual))
        return out

    def would_take(self, symbol: str, side: str, price: float) -> bool:
        """True when a limit order at `price` would match the book on arrival (a buy at or
        above the best ask, a sell at or below the best bid): what a post-only order may
        not do."""
        book = self.book(symbol)
        if side == "buy":
            ask = book.best_ask()
            return ask is not None and price >= ask
        bid = book.best_bid()
        return bid is not None and price <= bid

    # -------------------------------------------------------------- internals

    def _funds_problem(self, m, buy: bool, qty: float, price: float, fee_pct: float) -> str | None:
        if buy:
            need = _amt(qty * price * (1 + fee_pct / 100))
            have = self.balances.get(m.quote, 0.0)
            if need > have + _EPS:
                return f"insufficient {m.quote} balance: need {need}, free {have}"
        else:
            have = self.balances.get(m.base, 0.0)
            if qty > have + _EPS:
                return f"insufficient {m.base} balance: need {qty}, free {have}"
        return None

    def _move(self, asset: str, delta: float) -> None:
        self.balances[asset] = _amt(self.balances.get(asset, 0.0) + delta)

    def _unlock(self, o: OpenOrder, amount: float) -> None:
        o.locked = _amt(o.locked - amount)
        a = o.locked_asset
        self.locked[a] = _amt(self.locked.get(a, 0.0) - amount)

    def _close(self, o: OpenOrder) -> None:
        """Take a resting order off the book and give back what it still locks."""
        del self.open_orders[o.client_id]
        lst = self._resting[o.symbol]
        lst.remove(o)
        if not lst:
            del self._resting[o.symbol]
        left = o.locked
        if left:
            self._unlock(o, left)
            self._move(o.locked_asset, left)

    def _reject(self, req: OrderRequest, ts: int, reason: str) -> Event:
        return Event("order_rejected", ts, req.symbol, {
            "rule": "exchange", "manual": req.manual, "_reason": reason,
            "_client_id": req.client_id, "_order_type": req.type,
        })

    def _fill_fields(self, side: str, price: float, qty: float, fee_pct: float,
                     decision: float | None, maker: bool) -> dict:
        notional = _amt(qty * price)
        fee = _amt(notional * fee_pct / 100)
        if decision:
            slip = (price - decision) / decision * 100 if side == "buy" else (decision - price) / decision * 100
        else:
            slip = 0.0
        return {"side": side, "price": price, "qty": qty, "notional_usd": notional,
                "fee_usd": fee, "slippage_pct": slip, "maker": maker}

    def _fill_taker(self, req: OrderRequest, m, qty: float, vwap: float, worst: float,
                    remaining: float, ts: int, limit: float | None = None) -> Event:
        f = self._fill_fields(req.side, vwap, qty, self.taker_fee_pct, req.decision_price, False)
        notional, fee = f["notional_usd"], f["fee_usd"]
        if req.side == "buy":
            self._move(m.base, qty)
            self._move(m.quote, -(notional + fee))
        else:
            self._move(m.base, -qty)
            self._move(m.quote, notional - fee)
        f.update({"_client_id": req.client_id, "_order_type": req.type, "_remaining": remaining,
                  "_manual": req.manual, "_worst_price": worst})
        if limit is not None:
            f["_limit_price"] = limit
        return Event("fill", ts, req.symbol, f)

    def _fill_resting(self, o: OpenOrder, qty: float, ts: int) -> Event:
        m = self.markets.get(o.symbol)
        f = self._fill_fields(o.side, o.price, qty, self.maker_fee_pct, o.decision_price, True)
        notional, fee = f["notional_usd"], f["fee_usd"]
        if o.side == "buy":
            spend = _amt(notional + fee)
            take = min(spend, o.locked)
            self._unlock(o, take)
            if spend > take:                 # rounding residue beyond the lock
                self._move(m.quote, take - spend)
            self._move(m.base, qty)
        else:
            self._unlock(o, min(qty, o.locked))
            self._move(m.quote, notional - fee)
        o.remaining = _rest(o.remaining, qty, m.qty_decimals)
        o.filled_qty = _amt(o.filled_qty + qty)
        o.filled_notional = _amt(o.filled_notional + notional)
        o.fees = _amt(o.fees + fee)
        if o.remaining <= 0:
            self._close(o)
        f.update({"_client_id": o.client_id, "_order_type": o.type, "_remaining": o.remaining,
                  "_manual": o.manual, "_worst_price": o.price, "_limit_price": o.price})
        return Event("fill", ts, o.symbol, f)


def _rest(qty: float, filled: float, decimals: int) -> float:
    r = round(qty - filled, decimals)
    return r if r > 0 else 0.0
