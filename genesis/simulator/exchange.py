"""The matching engine: accounts, new orders, cancels and fills against the recorded book.

Rules (see docs/simulator.md):

* MARKET orders walk the simulator's book (best level first) and fill as taker; what
  the book cannot fill expires. ``quoteOrderQty`` spends (or raises) a quote amount.
* LIMIT orders fill at once as taker up to their price (IOC: the rest expires; FOK: all
  or nothing); the rest of a GTC order rests, locks its funds, and fills as maker at its
  own price. ``maker_fill="queue"`` (the default): the order waits behind the quantity
  the book displayed at its price when it rested; a recorded trade at its price first
  consumes that queue, a trade through its price fills it at once, a level that
  shrinks below the queue shortens it; one trade's quantity is shared by the resting
  orders in price-time priority. ``"through"``: a trade strictly through its price
  fills it; ``"touch"``: also a trade at its price; each order up to the printed
  quantity. LIMIT_MAKER that would take is rejected.
* Commission is charged on the asset received (buy: base, sell: quote), received
  amount x fee rate, half-up to 8 decimals, as Binance does without BNB.
* Own orders never change the book (no market impact).
* Self-trade prevention: an incoming order that reaches a resting order of the same
  account (its walk gets to that order's price) is handled by its
  ``selfTradePreventionMode`` (default: the symbol's ``defaultSelfTradePreventionMode``):
  EXPIRE_TAKER expires the incoming order's rest, EXPIRE_MAKER the resting order (the
  incoming one goes on), EXPIRE_BOTH both; each expired order ends ``EXPIRED_IN_MATCH``
  with a ``TRADE_PREVENTION`` executionReport. NONE: own orders never meet (no
  self-trades are simulated).

Every state change produces an executionReport, then one outboundAccountPosition
with the assets that changed; `emit(account, event)` delivers them."""
from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from decimal import Decimal

from . import errors as E
from .book import Book
from .config import STP_MODES
from .faults import Faults
from .orders import ZERO, Account, Order, Trade, f8, round8
from .rules import SymbolRules, check_decimal

ORDER_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER")
_BOOLEAN = {"true": True, "false": False}
_KNOWN_STP = (*STP_MODES, "DECREMENT", "TRANSFER")
_CLIENT_ID = re.compile(r"^[.A-Za-z0-9:/_-]{1,36}$")
_ALPHABET = string.ascii_letters + string.digits


def _req(p: dict, name: str) -> str:
    v = p.get(name)
    if v is None or v == "":
        raise E.mandatory(name)
    return v


def _int_param(p: dict, name: str) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        return None
    if not v.lstrip("-").isdigit():
        raise E.illegal(name, "^[0-9]{1,20}$")
    return int(v)


def _order_params(p: dict, rules: SymbolRules) -> tuple:
    """(side, type, timeInForce, quantity, quoteOrderQty, price) of a new order, with
    Binance's parameter errors (-1100, -1102, -1106, -1111, -1115, -1116)."""
    side = _req(p, "side").upper()
    if side not in ("BUY", "SELL"):
        raise E.illegal("side", "BUY, SELL")
    kind = _req(p, "type").upper()
    if kind not in ORDER_TYPES or kind not in rules.order_types:
        raise E.err(E.INVALID_ORDER_TYPE)
    tif = p.get("timeInForce")
    if kind == "LIMIT":
        if not tif:
            raise E.mandatory("timeInForce")
        if tif not in ("GTC", "IOC", "FOK"):
            raise E.err(E.INVALID_TIF)
    elif tif:
        raise E.ApiError(-1106, "Parameter 'timeInForce' sent when not required.")
    qty = check_decimal("quantity", p.get("quantity"), rules.base_precision)
    quote_qty = check_decimal("quoteOrderQty", p.get("quoteOrderQty"), rules.quote_precision)
    price = check_decimal("price", p.get("price"), rules.quote_precision)
    if kind == "MARKET":
        if price is not None:
            raise E.ApiError(-1106, "Parameter 'price' sent when not required.")
        if qty is None and quote_qty is None:
            raise E.err(E.QTY_MISSING)
        if qty is not None and quote_qty is not None:
            raise E.ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    else:
        if qty is None:
            raise E.mandatory("quantity")
        if price is None:
            raise E.mandatory("price")
        if quote_qty is not None:
            raise E.ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    return side, kind, tif, qty, quote_qty, price


def _stp_mode(p: dict, rules: SymbolRules) -> str:
    """The order's selfTradePreventionMode: the parameter, or the symbol's default."""
    mode = p.get("selfTradePreventionMode")
    if mode is None or mode == "":
        return rules.stp_default if rules.stp_default in STP_MODES else "NONE"
    mode = mode.upper()
    if mode not in _KNOWN_STP:
        raise E.illegal("selfTradePreventionMode", ", ".join(_KNOWN_STP))
    if mode not in rules.stp_allowed or mode not in STP_MODES:
        raise E.ApiError(-1013, "This symbol does not allow the specified self-trade prevention mode.")
    return mode


class Exchange:
    """Books, rules and accounts of the simulated exchange."""

    def __init__(self, rules: dict[str, SymbolRules], books: dict[str, Book], accounts: dict[str, Account],
                 faults: Faults, maker_fee: Decimal, taker_fee: Decimal, maker_fill: str = "queue",
                 seed: int = 0, emit: Callable[[Account, dict], None] | None = None):
        self.rules = rules
        self.books = books
        self.accounts = accounts
        self.faults = faults
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.maker_fill = maker_fill
        self.emit = emit or (lambda account, event: None)
        self._next_order = 1
        self._next_trade: dict[str, int] = {}
        self._ids = random.Random(seed)
        self._resting: dict[str, dict[int, tuple[Account, Order]]] = {}
        self._next_match: dict[str, int] = {}    # prevented match ids count from 0 per symbol

    # ------------------------------------------------------------------ helpers

    def new_id(self, n: int = 22) -> str:
        """A Binance-like random id (client order ids, listen keys), seeded."""
        return "".join(self._ids.choice(_ALPHABET) for _ in range(n))

    def _symbol(self, p: dict) -> tuple[str, SymbolRules]:
        symbol = _req(p, "symbol").upper()
        rules = self.rules.get(symbol)
        if rules is None:
            raise E.err(E.INVALID_SYMBOL)
        return symbol, rules

    def _flush(self, acct: Account, now: int) -> None:
        ev = acct.take_changed(now)
        if ev is not None:
            self.emit(acct, ev)

    def _report(self, acct: Account, order: Order, x: str, now: int, trade: Trade | None = None,
                cancel_id: str | None = None) -> None:
        self.emit(acct, order.report(x, now, trade, cancel_id))

    # ------------------------------------------------------------------ new order

    def _validate(self, acct: Account, p: dict, new_id: bool = True) -> tuple:
        """A new order's parameters and filter checks, as Binance makes them before the
        matching engine: (symbol, rules, side, type, timeInForce, quantity,
        quoteOrderQty, price, stp mode, client id, response type, book). Without
        `new_id` a missing client id stays "" (the id generator is not drawn)."""
        symbol, rules = self._symbol(p)
        side, kind, tif, qty, quote_qty, price = _order_params(p, rules)
        stp = _stp_mode(p, rules)
        cid = p.get("newClientOrderId") or ("web_" + self.new_id(18) if new_id else "web_")
        if not _CLIENT_ID.match(cid):
            raise E.illegal("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        resp_type = (p.get("newOrderRespType") or "FULL").upper()
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise E.illegal("newOrderRespType", "ACK, RESULT, FULL")
        book = self.books.get(symbol) or Book(symbol)
        ref = book.reference_price()
        if quote_qty is not None:
            if rules.min_notional_market and quote_qty < rules.min_notional:
                raise E.filter_failure(rules.notional_filter)
        else:
            rules.check(side, kind, qty, price, ref, len(acct.open_orders(symbol)))
        return symbol, rules, side, kind, tif, qty, quote_qty, price, stp, cid, resp_type, book

    def test_order(self, acct: Account, p: dict) -> dict:
        """POST /api/v3/order/test: every check of a new order before the matching engine
        (parameters, filters), nothing placed. ``{}``, or with computeCommissionRates=true
        the commission rates the order would pay (raises ApiError)."""
        compute = (p.get("computeCommissionRates") or "false").lower()
        if compute not in _BOOLEAN:
            raise E.illegal("computeCommissionRates", "true, false")
        self._validate(acct, p, new_id=False)
        if not _BOOLEAN[compute]:
            return {}
        zero = f8(ZERO)
        return {"standardCommissionForOrder": {"maker": f8(self.maker_fee), "taker": f8(self.taker_fee)},
                "specialCommissionForOrder": {"maker": zero, "taker": zero},
                "taxCommissionForOrder": {"maker": zero, "taker": zero},
                "discount": {"enabledForAccount": False, "enabledForSymbol": True, "discountAsset": "BNB",
                             "discount": "0.25000000"}}

    def place(self, acct: Account, p: dict, now: int) -> dict:
        """POST /api/v3/order: validate, match, answer (raises ApiError)."""
        (symbol, rules, side, kind, tif, qty, quote_qty, price, stp, cid, resp_type,
         book) = self._validate(acct, p)
        if any(o.client_id == cid for o in acct.open_orders()):
            raise E.rejected(E.DUPLICATE_ORDER)
        if self.faults.take("reject_next", "reject_rate"):
            raise E.rejected("New order rejected (simulated fault).")
        if kind == "MARKET":
            order = self._market(acct, rules, book, symbol, side, qty, quote_qty, cid, now, stp)
        else:
            order = self._limit(acct, rules, book, symbol, side, kind, tif, qty, price, cid, now, stp)
        return order.as_new(resp_type, now)

    def _partial(self, fills: list, qty: Decimal, rules: SymbolRules, market: bool) -> tuple[list, bool]:
        """The partial-fill fault: only partial_ratio of the order fills at once."""
        if not fills or not self.faults.take("partial_next", "partial_rate"):
            return fills, False
        cap = rules.floor_qty(qty * Decimal(str(self.faults.spec.partial_ratio)), market)
        return self._cap(fills, cap), True

    def _walk(self, book: Book, rules: SymbolRules, side: str, qty: Decimal | None,
              quote: Decimal | None, limit: Decimal | None = None) -> list[tuple[Decimal, Decimal]]:
        """Taker fills (price, qty) for `qty` base (or `quote` amount) against the book."""
        fills = []
        left, left_quote = qty, quote
        for price, avail in book.levels("asks" if side == "BUY" else "bids"):
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            if left is not None:
                take = min(avail, left)
            else:
                take = rules.floor_qty(min(avail, left_quote / price), market=True)
            if take <= 0:
                break
            fills.append((price, take))
            if left is not None:
                left -= take
                if left <= 0:
                    break
            else:
                left_quote -= take * price
                if left_quote <= 0:
                    break
        return fills

    def _own_in_reach(self, acct: Account, symbol: str, side: str, limit: Decimal | None) -> list[Order]:
        """The account's resting orders an incoming `side` order could reach, best first."""
        resting = self._resting.get(symbol)
        if not resting:
            return []
        other = "SELL" if side == "BUY" else "BUY"
        own = [o for a, o in resting.values() if a is acct and o.side == other and not o.pending_market
               and (limit is None or (o.price <= limit if side == "BUY" else o.price >= limit))]
        own.sort(key=lambda o: (o.price if side == "BUY" else -o.price, o.order_id))
        return own

    def _match(self, acct: Account, book: Book, rules: SymbolRules, symbol: str, side: str, qty: Decimal | None,
               quote: Decimal | None, limit: Decimal | None, stp: str) -> tuple[list, bool]:
        """The incoming order's path: ("fill", price, qty) and ("meet", own resting order)
        steps in price order, and whether self-trade prevention stops it (EXPIRE_TAKER /
        EXPIRE_BOTH at the first own order it reaches). An own order is reached when the
        walk gets to its price (before the book's quantity at that price)."""
        own = self._own_in_reach(acct, symbol, side, limit) if stp != "NONE" else []
        if not own:
            return [("fill", px, q) for px, q in self._walk(book, rules, side, qty, quote, limit)], False
        steps: list = []
        left, left_quote = qty, quote
        i, done = 0, False
        for price, avail in book.levels("asks" if side == "BUY" else "bids"):
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            while i < len(own) and (own[i].price <= price if side == "BUY" else own[i].price >= price):
                steps.append(("meet", own[i]))
                if stp != "EXPIRE_MAKER":
                    return steps, True
                i += 1
            if left is not None:
                take = min(avail, left)
            else:
                take = rules.floor_qty(min(avail, left_quote / price), market=True)
            if take <= 0:
                done = True
                break
            steps.append(("fill", price, take))
            if left is not None:
                left -= take
                done = left <= 0
            else:
                left_quote -= take * price
                done = left_quote <= 0
            if done:
                break
        if not done:            # quantity left: the walk would go on to the own orders within its reach
            for o in own[i:]:
                steps.append(("meet", o))
                if stp != "EXPIRE_MAKER":
                    return steps, True
        return steps, False

    def _prevent(self, acct: Account, order: Order, counter: Order, match_id: int, price: Decimal,
                 match_qty: Decimal, now: int) -> None:
        """Self-trade prevention expires `order`'s remaining quantity: EXPIRED_IN_MATCH,
        with a TRADE_PREVENTION report carrying Binance's prevented-quantity fields."""
        left = order.remaining
        order.prevented_qty += left
        order.prevented_match_id = match_id
        extra = {"v": match_id, "A": f8(order.prevented_qty), "B": f8(left), "U": counter.order_id,
                 "Cs": counter.symbol, "pl": f8(match_qty), "pL": f8(price), "pY": f8(match_qty * price)}
        self._finish(acct, order, "EXPIRED_IN_MATCH", now, exec_type="TRADE_PREVENTION", extra=extra)

    def _apply_steps(self, acct: Account, rules: SymbolRules, order: Order, steps: list, stopped: bool,
                     now: int) -> None:
        """Fills and self-trade preventions of an incoming order, in the order its walk met them."""
        for step in steps:
            if step[0] == "fill":
                self._fill(acct, rules, order, step[1], step[2], False, now)
                continue
            maker = step[1]
            symbol = order.symbol
            match_id = self._next_match.get(symbol, 0)
            self._next_match[symbol] = match_id + 1
            match_qty = min(order.remaining, maker.remaining)
            expire_taker = stopped and step is steps[-1]
            row = {"preventedMatchId": match_id, "makerOrderId": maker.order_id, "price": f8(maker.price)}
            if expire_taker:
                row["takerPreventedQuantity"] = f8(order.remaining)
            if order.stp in ("EXPIRE_MAKER", "EXPIRE_BOTH"):
                row["makerPreventedQuantity"] = f8(maker.remaining)
                self._prevent(acct, maker, order, match_id, maker.price, match_qty, now)
            order.prevented_matches.append(row)
            if expire_taker:
                self._prevent(acct, order, maker, match_id, maker.price, match_qty, now)

    def _cap(self, fills: list, cap: Decimal) -> list:
        out, left = [], cap
        for price, q in fills:
            if left <= 0:
                break
            take = min(q, left)
            out.append((price, take))
            left -= take
        return out

    def _new_order(self, acct, symbol, side, kind, tif, price, qty, quote_qty, cid, now, stp="NONE") -> Order:
        order = Order(symbol=symbol, order_id=self._next_order, client_id=cid, side=side, type=kind,
                      tif=tif, price=price, orig_qty=qty, orig_quote_qty=quote_qty, time=now, update_time=now,
                      stp=stp)
        self._next_order += 1
        acct.orders[order.order_id] = order
        return order

    def _market(self, acct, rules, book, symbol, side, qty, quote_qty, cid, now, stp="NONE") -> Order:
        steps, stopped = self._match(acct, book, rules, symbol, side, qty, quote_qty, None, stp)
        fills = [(st[1], st[2]) for st in steps if st[0] == "fill"]
        filled = sum((q for _, q in fills), ZERO)
        cost = sum((px * q for px, q in fills), ZERO)
        if side == "BUY":
            need = quote_qty if quote_qty is not None else cost
            if acct.free(rules.quote) < need:
                raise E.rejected(E.INSUFFICIENT_BALANCE)
        elif acct.free(rules.base) < (qty if qty is not None else filled):
            raise E.rejected(E.INSUFFICIENT_BALANCE)
        if quote_qty is not None:
            qty = filled
            if qty <= 0 or qty < rules.min_qty:
                raise E.filter_failure("LOT_SIZE")
        order = self._new_order(acct, symbol, side, "MARKET", "GTC", ZERO, qty,
                                quote_qty if quote_qty is not None else ZERO, cid, now, stp)
        self._report(acct, order, "NEW", now)
        partial = False
        if len(fills) == len(steps):            # no own order met: the partial-fill fault may apply
            fills, partial = self._partial(fills, qty, rules, True)
            steps = [("fill", px, q) for px, q in fills]
        self._apply_steps(acct, rules, order, steps, stopped, now)
        if order.remaining > 0 and order.is_open:
            if partial and self.faults.spec.partial_rest == "later" and order.executed > 0:
                order.pending_market = True
                self._resting.setdefault(symbol, {})[order.order_id] = (acct, order)
            else:
                self._finish(acct, order, "EXPIRED", now)
        self._flush(acct, now)
        return order

    def _limit(self, acct, rules, book, symbol, side, kind, tif, qty, price, cid, now, stp="NONE") -> Order:
        lock_asset, lock = (rules.quote, price * qty) if side == "BUY" else (rules.base, qty)
        if acct.free(lock_asset) < lock:
            raise E.rejected(E.INSUFFICIENT_BALANCE)
        steps, stopped = self._match(acct, book, rules, symbol, side, qty, None, price, stp)
        if kind == "LIMIT_MAKER" and steps:     # it would take (from the book or from an own order)
            raise E.rejected(E.WOULD_TAKE)
        fills = [(st[1], st[2]) for st in steps if st[0] == "fill"]
        order = self._new_order(acct, symbol, side, kind, tif if kind == "LIMIT" else "GTC", price, qty,
                                ZERO, cid, now, stp)
        self._report(acct, order, "NEW", now)
        filled = sum((q for _, q in fills), ZERO)
        partial = False
        if tif == "FOK":
            if filled < qty or stopped:         # all or nothing: no fill, no prevented match
                steps, stopped = [], False
        elif len(fills) == len(steps):          # no own order met: the partial-fill fault may apply
            fills, partial = self._partial(fills, qty, rules, False)
            steps = [("fill", px, q) for px, q in fills]
        self._apply_steps(acct, rules, order, steps, stopped, now)
        if order.remaining > 0 and order.is_open:
            rest_expires = tif in ("IOC", "FOK") or (partial and self.faults.spec.partial_rest == "expire")
            if rest_expires:
                self._finish(acct, order, "EXPIRED", now)
            else:
                order.locked = price * order.remaining if side == "BUY" else order.remaining
                order.queue_ahead = book.displayed(side, price)
                acct.change(lock_asset, -order.locked, order.locked)
                self._resting.setdefault(symbol, {})[order.order_id] = (acct, order)
        self._flush(acct, now)
        return order

    # ------------------------------------------------------------------ fills

    def _fill(self, acct: Account, rules: SymbolRules, order: Order, price: Decimal, qty: Decimal,
              maker: bool, now: int) -> Trade:
        quote_amt = price * qty
        rate = self.maker_fee if maker else self.taker_fee
        buy = order.side == "BUY"
        if buy:
            commission, asset = round8(qty * rate), rules.base
            if maker:
                acct.change(rules.quote, ZERO, -quote_amt)
                order.locked -= quote_amt
            else:
                acct.change(rules.quote, -quote_amt)
            acct.change(rules.base, qty - commission)
        else:
            commission, asset = round8(quote_amt * rate), rules.quote
            if maker:
                acct.change(rules.base, ZERO, -qty)
                order.locked -= qty
            else:
                acct.change(rules.base, -qty)
            acct.change(rules.quote, quote_amt - commission)
        tid = self._next_trade.get(order.symbol, 1)
        self._next_trade[order.symbol] = tid + 1
        trade = Trade(order.symbol, tid, order.order_id, price, qty, quote_amt, commission, asset, now, buy, maker)
        order.executed += qty
        order.cum_quote += quote_amt
        order.status = "FILLED" if order.executed >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = now
        order.trades.append(trade)
        acct.trades.append(trade)
        self._report(acct, order, "TRADE", now, trade)
        if not order.is_open:
            self._resting.get(order.symbol, {}).pop(order.order_id, None)
        return trade

    def _finish(self, acct: Account, order: Order, status: str, now: int, cancel_id: str | None = None,
                exec_type: str | None = None, extra: dict | None = None) -> None:
        """Close an open order (CANCELED, EXPIRED or EXPIRED_IN_MATCH) and release what it locked."""
        if order.locked > 0:
            rules = self.rules[order.symbol]
            asset = rules.quote if order.side == "BUY" else rules.base
            acct.change(asset, order.locked, -order.locked)
            order.locked = ZERO
        order.status = status
        order.pending_market = False
        order.update_time = now
        self._resting.get(order.symbol, {}).pop(order.order_id, None)
        self.emit(acct, order.report(exec_type or status, now, cancel_id=cancel_id, extra=extra))

    def on_book_change(self, symbol: str) -> None:
        """The recorded book of `symbol` changed: a resting order's queue ahead shrinks to
        what its level now displays (growth is behind it); a queue not shown yet is
        taken as displayed. Only in ``maker_fill="queue"``."""
        resting = self._resting.get(symbol)
        if not resting or self.maker_fill != "queue":
            return
        book = self.books[symbol]
        for _, order in resting.values():
            if order.pending_market:
                continue
            shown = book.displayed(order.side, order.price)
            if shown is not None and (order.queue_ahead is None or shown < order.queue_ahead):
                order.queue_ahead = shown

    def _fill_queued(self, rules: SymbolRules, orders: list, price: Decimal, qty: Decimal, now: int) -> int:
        """One recorded trade against resting orders in the queue-position model:
        price-time priority; at the trade's price the queue ahead is consumed first; a
        trade through an order's price fills it. Returns the number of fills."""
        hit = [(a, o) for a, o in orders if (price <= o.price if o.side == "BUY" else price >= o.price)]
        hit.sort(key=lambda ao: (-ao[1].price if ao[1].side == "BUY" else ao[1].price, ao[1].order_id))
        avail, to_queue, n = qty, ZERO, 0
        for acct, order in hit:
            if order.price != price:
                order.queue_ahead = ZERO
            elif order.queue_ahead is None:
                continue
            else:
                ahead = max(order.queue_ahead - to_queue, ZERO)
                take = min(ahead, avail)
                avail -= take
                to_queue += take
                order.queue_ahead = ahead - take
            if avail <= 0 or order.queue_ahead > 0:
                continue
            q = min(avail, order.remaining)
            avail -= q
            self._fill(acct, rules, order, order.price, q, True, now)
            self._flush(acct, now)
            n += 1
        return n

    def on_market_trade(self, symbol: str, price: Decimal, qty: Decimal, now: int) -> int:
        """A recorded trade printed: fill resting orders it reaches (see `maker_fill`),
        and finish the market remainders the partial-fill fault left. Returns the
        number of fills."""
        resting = self._resting.get(symbol)
        if not resting:
            return 0
        rules = self.rules[symbol]
        touch = self.maker_fill == "touch"
        queue = self.maker_fill == "queue"
        queued = []
        n = 0
        for acct, order in list(resting.values()):
            if queue and not order.pending_market:
                queued.append((acct, order))
                continue
            if order.pending_market:
                fills = self._walk(self.books[symbol], rules, order.side, order.remaining, None)
                if order.side == "BUY":
                    fills = self._affordable(fills, acct.free(rules.quote), rules)
                else:
                    fills = self._cap(fills, acct.free(rules.base))
                for px, q in fills:
                    self._fill(acct, rules, order, px, q, False, now)
                    n += 1
                if order.is_open:
                    self._finish(acct, order, "EXPIRED", now)
            else:
                if order.side == "BUY":
                    through = price < order.price or (touch and price == order.price)
                else:
                    through = price > order.price or (touch and price == order.price)
                if not through:
                    continue
                self._fill(acct, rules, order, order.price, min(qty, order.remaining), True, now)
                n += 1
            self._flush(acct, now)
        if queued:
            n += self._fill_queued(rules, queued, price, qty, now)
        return n

    @staticmethod
    def _affordable(fills, budget: Decimal, rules: SymbolRules) -> list:
        out = []
        for px, q in fills:
            if px * q > budget:
                q = rules.floor_qty(budget / px, True)
                if q > 0:
                    out.append((px, q))
                break
            out.append((px, q))
            budget -= px * q
        return out

    # ------------------------------------------------------------------ cancel and queries

    def _lookup(self, acct: Account, p: dict) -> tuple[str, Order | None]:
        symbol, _ = self._symbol(p)
        oid = _int_param(p, "orderId")
        cid = p.get("origClientOrderId") or None
        if oid is None and cid is None:
            raise E.err(E.BOTH_IDS_MISSING)
        return symbol, acct.find(symbol, oid, cid)

    def cancel(self, acct: Account, p: dict, now: int) -> dict:
        """DELETE /api/v3/order."""
        _, order = self._lookup(acct, p)
        if order is None or not order.is_open:
            raise E.err(E.UNKNOWN_ORDER)
        cancel_id = p.get("newClientOrderId") or ("web_" + self.new_id(18))
        self._finish(acct, order, "CANCELED", now, cancel_id)
        self._flush(acct, now)
        return order.as_cancel(cancel_id, now)

    def cancel_all(self, acct: Account, p: dict, now: int) -> list:
        """DELETE /api/v3/openOrders (symbol required)."""
        symbol, _ = self._symbol(p)
        orders = acct.open_orders(symbol)
        if not orders:
            raise E.err(E.UNKNOWN_ORDER)
        out = []
        for order in orders:
            cancel_id = "web_" + self.new_id(18)
            self._finish(acct, order, "CANCELED", now, cancel_id)
            out.append(order.as_cancel(cancel_id, now))
        self._flush(acct, now)
        return out

    def query(self, acct: Account, p: dict) -> dict:
        """GET /api/v3/order."""
        _, order = self._lookup(acct, p)
        if order is None:
            raise E.err(E.NO_SUCH_ORDER)
        return order.as_query()

    def open_orders(self, acct: Account, p: dict) -> list:
        """GET /api/v3/openOrders (symbol optional)."""
        symbol = None
        if p.get("symbol"):
            symbol, _ = self._symbol(p)
        return [o.as_query() for o in acct.open_orders(symbol)]

    def all_orders(self, acct: Account, p: dict) -> list:
        """GET /api/v3/allOrders: orderId (from), startTime, endTime, limit."""
        symbol, _ = self._symbol(p)
        start, end, oid = _int_param(p, "startTime"), _int_param(p, "endTime"), _int_param(p, "orderId")
        limit = min(_int_param(p, "limit") or 500, 1000)
        rows = [o for o in acct.orders.values() if o.symbol == symbol and (oid is None or o.order_id >= oid)
                and (start is None or o.time >= start) and (end is None or o.time <= end)]
        rows = rows[:limit] if oid is not None else rows[-limit:]
        return [o.as_query() for o in rows]

    def my_trades(self, acct: Account, p: dict) -> list:
        """GET /api/v3/myTrades: orderId, startTime, endTime, fromId, limit."""
        symbol, _ = self._symbol(p)
        start, end = _int_param(p, "startTime"), _int_param(p, "endTime")
        oid, from_id = _int_param(p, "orderId"), _int_param(p, "fromId")
        limit = min(_int_param(p, "limit") or 500, 1000)
        rows = [t for t in acct.trades if t.symbol == symbol and (oid is None or t.order_id == oid)
                and (from_id is None or t.id >= from_id) and (start is None or t.time >= start)
                and (end is None or t.time <= end)]
        rows = rows[:limit] if from_id is not None else rows[-limit:]
        return [t.as_my_trade() for t in rows]
