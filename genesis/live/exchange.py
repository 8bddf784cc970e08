"""The engine's exchange in live mode: the same interface as the paper exchange
(`submit`, `cancel`, `cancel_all`, `amend`, `book`, `best`, `on_market`, `open_orders`),
but orders go to Binance and their fates come back as input events.

`submit` and `cancel` only queue a request in `outbox` (the live session sends it);
acknowledgements, rejections, fills and cancels arrive later from the REST answers and
the user-data stream, through `on_rest` and `on_user`, as engine events. While the
input log of an interrupted run is replayed (`live` False) nothing is queued: those
requests were sent before the stop, and their fates are in the log or are found by
reconciliation.

Fees: a buy's commission in the base asset (Binance's default) is carried as
`_fee_base`, so the account holds what the exchange really credited.

Fills come from whichever source tells first, each trade once (by its trade id): the
new order's REST answer (Binance's FULL answer lists the `fills` of its immediate
execution, so a market order's position is right the moment its answer is in, even
while the user-data stream is silent), the stream's TRADE report, or `myTrades` at a
reconciliation. An answer saying the order ended (EXPIRED: a market order the book
could not fill whole) closes it at once, as its report would.

Orders placed on the account outside Genesis (another client, the web site, an earlier
run's leftovers) are adopted as external, never touched: `external_order` when one is
first seen (its user-data report, resting or filled at once, or a reconciliation's open
orders or `myTrades`), and `external_fill` for each of its trades (from the stream or
`myTrades`, by trade id). Their balance changes are kept apart (`external_net`), so the
balance check explains them instead of raising a mismatch.

Orders the exchange ends (a cancel, an expiry, self-trade prevention) close at once,
when their report says so: `order_canceled` with `by_exchange` unless Genesis asked.
Self-trade prevention (`x` = TRADE_PREVENTION, `X` = EXPIRED_IN_MATCH: the order would
have matched one of the account's own) closes with reason `expired_in_match`; its
prevented quantities (`A`, `B`, `pl`, `pL`, `pY`) describe the match that did NOT
happen and are never taken as a fill. Every closing report is checked against its
cumulative filled quantity `z`: when fills it counts have not arrived yet (they were
lost with a dropped stream), the order stays open and reconciliation is asked for
(`on_behind`), which takes the fills from `myTrades` and then closes the order.

Amend (`genesis amend g12 PRICE`) is a cancel, then a new order for what the cancel
left (the exchange's `origQty - executedQty`, so a fill that raced the cancel is never
ordered again) at the new price, under a new client order id: `G<token>-g12.a1`,
`.a2` ... (the n-th replacement); the engine keeps calling the order g12. `amend` only
queues it (the live session sends it, genesis/live/amend.py); its outcome comes back
as input events:
* `order_amended` when the replacement is first seen (its REST answer, its first
  report, or reconciliation), before any of its fills; the order then carries the new
  price and id. It loses its queue place, and fills at once if the new price crosses.
* `order_amend_rejected` when the cancel found nothing to cancel (the order had
  filled or ended first: its fills arrive as usual, nothing is lost) or the amend never
  reached the exchange before a stop: the order is as the exchange left it.
* `order_canceled` (by the exchange, reason `amend failed ...`) when the old order was
  cancelled but the new one was refused.
While an amend is under way, the old order's CANCELED report is the amend's own, a
cancel asked for meanwhile waits for the amend's outcome (then goes to whichever order
is live), and a second amend is refused. Reports of an earlier incarnation still
deliver its fills.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from genesis.engine.book import Books
from genesis.engine.events import Event
from genesis.engine.markets import Markets
from genesis.engine.paper import LIMIT_TYPES, OrderRequest

NEW, OPEN, DONE, UNKNOWN = "new", "open", "done", "unknown"
FILL_EPS = 5e-9   # quantities are multiples of at least 1e-8: below half of that is float noise


@dataclass
class LiveOrder:
    """One order Genesis placed, as far as Genesis knows it."""

    client_id: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float | None
    created_ts: int
    decision_price: float | None
    manual: bool
    status: str = NEW             # new (not acknowledged yet), open, done, unknown (outcome not known)
    exchange_id: int | None = None
    filled: float = 0.0
    cancel_requested: bool = False
    cancel_manual: bool | None = None
    trade_ids: set = field(default_factory=set)
    amendments: int = 0           # replacements placed so far: the exchange id's ".a<n>" suffix
    amend_price: float | None = None   # an amend under way, to this price
    waited_ms: int = 0            # event time from when it was due (its decision) to its submission

    @property
    def remaining(self) -> float:
        return max(self.qty - self.filled, 0.0)

    @property
    def notional_usd(self) -> float:
        return self.remaining * (self.price or self.decision_price or 0.0)


class LiveExchange(Books):
    """Orders to Binance, books from its streams, fates from its answers."""

    # what this process did, not what the run's input says: a snapshot leaves these out, so
    # that a restored engine re-reading later input sends nothing (`live` is set only once
    # recovery is over) and a restart's requests are its own (genesis/engine/snapshots.py)
    PROCESS_ATTRS = ("live", "outbox", "amends_tried")

    def __init__(self, markets: Markets, prefix: str = "G-"):
        self.markets = markets
        self.prefix = prefix          # client order ids on the exchange: prefix + the engine's id ('g12')
        super().__init__()
        self.orders: dict[str, LiveOrder] = {}        # every order of this run, by client id
        self.open_orders: dict[str, LiveOrder] = {}   # not done yet
        self.external: dict[str, dict] = {}           # orders on the account that Genesis did not place
        self.outbox: list[tuple[str, LiveOrder]] = []
        self.live = False
        self.snapshot_wanted: set[str] = set()
        self.balances: dict[str, tuple[float, float]] = {}   # from outboundAccountPosition
        self.net: dict[str, float] = {}   # asset -> change from Genesis's own fills this run
        self.mismatch_amounts: dict[str, float] = {}   # {asset: amount} last reported (again only if it changes)
        self.lazy_depth = False
        # the session reports each order's `order_sent` (with its latency) as an input once
        # the request was written; the engine does not
        self.reports_sent = True
        self.on_behind = None             # called when a report shows fills not taken in: reconcile soon
        self.amends_tried: set[str] = set()   # orders whose amend this process sent (its retries settled them)
        self.external_net: dict[str, float] = {}   # asset -> change from fills of external orders
        self.external_trades: set[tuple[str, int]] = set()   # (symbol, trade id) of external fills taken in
        self.trades_from: dict[str, int] = {}   # symbol -> first trade id `myTrades` has not been read from
        self.order_owner: dict[int, str] = {}   # exchange order id -> its client order id, as found

    # ------------------------------------------------------------ market data
    def on_market(self, event) -> list[Event]:
        """Keep the book; ask for a REST snapshot while the depth book is out of sync."""
        kind = event.kind
        if kind == "depth":
            b = self.book(event.symbol)
            b.on_event(event)
            f = event.fields
            bid, ask = b.best_bid(), b.best_ask()
            f["best_bid"] = 0.0 if bid is None else bid
            f["best_ask"] = 0.0 if ask is None else ask
            if not b.synced and not f.get("_snapshot"):
                self.snapshot_wanted.add(event.symbol)
        elif kind == "book_ticker":
            f = event.fields
            self.book(event.symbol).apply_ticker(f["bid"], f["bid_qty"], f["ask"], f["ask_qty"])
        return []

    # ------------------------------------------------------------ orders out
    def submit(self, req: OrderRequest, ts: int) -> list[Event]:
        """Check the order against the symbol's filters and queue it for sending."""
        m = self.markets.get(req.symbol)
        if m is None:
            return [self._reject(req.client_id, req.symbol, req.manual, ts, "unknown symbol")]
        if req.client_id in self.orders:
            return [self._reject(req.client_id, req.symbol, req.manual, ts, "duplicate client order id")]
        qty = self.markets.round_qty_down(req.symbol, req.qty)
        resting = req.type in LIMIT_TYPES
        price = self.markets.round_price(req.symbol, req.price, req.side) if resting else None
        problem = self.markets.check(req.symbol, qty, price or req.decision_price)
        if problem:
            return [self._reject(req.client_id, req.symbol, req.manual, ts, problem)]
        order = LiveOrder(req.client_id, req.symbol, req.side, req.type, qty, price, ts, req.decision_price,
                          req.manual, waited_ms=req.waited_ms)
        self.orders[order.client_id] = order
        self.open_orders[order.client_id] = order
        if self.live:
            self.outbox.append(("new", order))
        return []

    def cancel(self, client_id: str, ts: int, manual: bool | None = None) -> list[Event]:
        """Ask the exchange to cancel an open order; its cancel event comes back later."""
        o = self.open_orders.get(client_id)
        if o is None:
            return []   # asking again for one already asked is harmless: the exchange answers once
        o.cancel_requested, o.cancel_manual = True, manual
        if self.live and o.amend_price is None:   # during an amend: sent when the amend's outcome is in
            self.outbox.append(("cancel", o))
        return []

    def cancel_all(self, ts: int, symbol: str | None = None, manual: bool | None = None) -> list[Event]:
        """Ask to cancel every open order (of one symbol)."""
        for o in list(self.open_orders.values()):
            if symbol is None or o.symbol == symbol:
                self.cancel(o.client_id, ts, manual)
        return []

    def amend(self, client_id: str, price: float, ts: int) -> tuple[list[Event], str | None]:
        """Queue a move of a resting limit order to `price` (cancel, then a new order for
        what is left). Returns ([], None) when queued, else ([], why not). Only state the
        input log rebuilds is consulted, so a replay decides the same."""
        o = self.open_orders.get(client_id)
        if o is None:
            return [], f"no open order {client_id!r}"
        if o.type not in LIMIT_TYPES:
            return [], f"order {client_id} is not a resting limit order"
        if o.amend_price is not None:
            return [], f"an amend of order {client_id} is already under way"
        if o.cancel_requested:
            return [], f"a cancel of order {client_id} is under way"
        if o.status != OPEN:
            return [], f"order {client_id} is still being placed; amend it once the exchange has acknowledged it"
        new_price, problem = self.amend_price(o, price)
        if problem:
            return [], problem
        o.amend_price = new_price
        if self.live:
            self.outbox.append(("amend", o))
        return [], None

    def on_amend_answer(self, order: LiveOrder, outcome: str, answer: dict | None, error: str | None,
                        ts: int) -> list[Event]:
        """What the amend's requests found (genesis/live/amend.py): `placed` (the
        replacement's answer), `refused` (nothing to cancel: the order had filled or ended),
        `rejected` (cancelled, but the new order was refused; `answer` is the cancel's),
        `unknown` (given up: reconciliation finds out)."""
        if order.amend_price is None:
            return []                       # settled already (a report of the replacement came first)
        if outcome == "placed":   # the replacement's answer: it may have filled at once (an amend across the book)
            return self._amended(order, answer, ts) + self.answer_fills(order, answer, ts)
        if outcome == "refused":
            return [self._amend_rejected(order, ts, error or "the order had already filled or ended")]
        if outcome == "rejected":
            if order.client_id not in self.open_orders:
                return [self._amend_rejected(order, ts, f"the new order was refused: {error}")]
            done = float(answer.get("executedQty") or 0.0) + self.executed_before(order, answer.get("origQty"))
            if done > order.filled + FILL_EPS:   # fills of the old order not received yet: reconcile first
                if self.on_behind is not None:
                    self.on_behind()
                return []
            return self._canceled(order, ts, True, f"amend failed, the new order was refused: {error}")
        return []

    def amend_found(self, order: LiveOrder, info: dict, ts: int) -> list[Event]:
        """Reconciliation: the replacement of an amend under way is on the exchange."""
        return self._amended(order, info, ts) if order.amend_price is not None else []

    def amend_not_done(self, order: LiveOrder, ts: int,
                       reason: str = "the amend never reached the exchange; the order keeps its price") -> list[Event]:
        """Reconciliation: the amend under way did not happen (the order is still open at
        its old price, or it had ended before)."""
        if order.amend_price is None:
            return []
        return [self._amend_rejected(order, ts, reason)]

    def _amended(self, order: LiveOrder, info: dict, ts: int) -> list[Event]:
        qty = float(info.get("origQty") or info.get("q") or order.remaining)
        return [Event("order_amended", ts, order.symbol, {
            "amendments": order.amendments + 1, "price": order.amend_price, "old_price": order.price,
            "manual": order.manual, "notional_usd": qty * order.amend_price, "_client_id": order.client_id,
            "_exchange_id": info.get("orderId", info.get("i"))})]

    def _amend_rejected(self, order: LiveOrder, ts: int, reason: str) -> Event:
        return Event("order_amend_rejected", ts, order.symbol, {
            "manual": order.manual, "price": order.amend_price, "_client_id": order.client_id, "_reason": reason})

    def executed_before(self, order: LiveOrder, orig_qty) -> float:
        """What earlier incarnations of the order executed, as the exchange counts it:
        the order's quantity minus this incarnation's (a replacement is ordered for the rest)."""
        try:
            return max(order.qty - float(orig_qty), 0.0) if orig_qty not in (None, "") else 0.0
        except (TypeError, ValueError):
            return 0.0

    # ------------------------------------------------------------ fates in
    def on_rest(self, order: LiveOrder, answer: dict | None, error: str | None, unknown: bool,
                latency_ms: float, ts: int) -> list[Event]:
        """The REST answer to a new order, as events: acknowledged or rejected. An unknown
        outcome (gave up retrying) produces nothing: reconciliation asks the exchange."""
        if unknown:
            order.status = UNKNOWN
            return []
        if error is not None:
            return self._rejected(order, ts, error)
        ack = Event("order_ack", ts, order.symbol, {"latency_ms": float(latency_ms), "_client_id": order.client_id,
                                                    "_exchange_id": answer.get("orderId")})
        return [ack, *self.answer_fills(order, answer, ts)]

    def answer_fills(self, order: LiveOrder, answer: dict | None, ts: int) -> list[Event]:
        """What a new order's answer says it executed, as events at once: one fill per
        entry of Binance's FULL answer `fills` (the trade id makes the stream's report and
        reconciliation of the same trade count nothing more), then its end when the answer
        says it ended (EXPIRED: the part a market order could not fill). An answer that
        shows more executed than its fills (an order query's, which lists none) asks for a
        reconciliation, which takes them from myTrades."""
        if not isinstance(answer, dict) or order.client_id not in self.open_orders:
            return []
        status = answer.get("status")
        fills = answer.get("fills")
        events: list[Event] = []
        counted = 0.0
        if isinstance(fills, list):
            for n, f in enumerate(fills):
                try:
                    trade_id, qty, price = int(f["tradeId"]), float(f["qty"]), float(f["price"])
                    commission = float(f.get("commission") or 0.0)
                except (KeyError, TypeError, ValueError):
                    continue            # unreadable: reconciliation takes it from myTrades
                made = self._fill(order, ts, trade_id=trade_id, qty=qty, price=price, commission=commission,
                                  commission_asset=f.get("commissionAsset") or "", maker=False,
                                  done=status == "FILLED" and n == len(fills) - 1, counted=counted)
                counted += sum(e.fields["qty"] for e in made)
                events += made
        if status in ("EXPIRED", "EXPIRED_IN_MATCH"):
            events += self._ended(order, ts, {"z": answer.get("executedQty"), "q": answer.get("origQty")}, True,
                                  status.lower(), counted)
            return events
        try:
            executed = float(answer.get("executedQty") or 0.0) + self.executed_before(order, answer.get("origQty"))
        except (TypeError, ValueError):
            executed = 0.0
        if executed > order.filled + counted + FILL_EPS and self.on_behind is not None:
            self.on_behind()
        return events

    def on_cancel_answer(self, order: LiveOrder, error: str | None, ts: int) -> list[Event]:
        """A cancel the exchange refused (already filled or unknown) is no longer pending."""
        if error is not None and order.client_id in self.open_orders:
            order.cancel_requested = False
        return []

    def on_user(self, data: dict, ts: int) -> list[Event]:
        """A user-data stream event: executionReport -> fill / order_canceled /
        order_rejected; outboundAccountPosition -> balances."""
        kind = data.get("e")
        if kind == "outboundAccountPosition":
            for b in data.get("B", ()):
                self.balances[b["a"]] = (float(b["f"]), float(b["l"]))
            return []
        if kind != "executionReport":
            return []
        x = data.get("x")
        cid = data.get("C") if x == "CANCELED" and data.get("C") else data.get("c")
        engine_id, incarnation = self._parse(cid)
        order = self.orders.get(engine_id)
        if order is None:
            # an order placed outside Genesis: adopted, its fills kept apart; an id with this
            # run's prefix that it never used is nobody's concern
            return self._external_report(data, cid, ts) if engine_id is None else []
        status = data.get("X")
        lead: list[Event] = []
        if incarnation != order.amendments:
            if incarnation == order.amendments + 1 and order.amend_price is not None:
                lead = self._amended(order, data, ts)   # the replacement's first sign: amended, then its report
            elif incarnation < order.amendments and x == "TRADE":
                return self._fill(order, ts, trade_id=int(data["t"]), qty=float(data["l"]), price=float(data["L"]),
                                  commission=float(data.get("n") or 0.0), commission_asset=data.get("N") or "",
                                  maker=bool(data.get("m")), done=False)   # a fill of an order since replaced
            else:
                return []   # the replaced order's cancel, or an id this run never used
        elif x == "CANCELED" and order.amend_price is not None:
            return []       # the amend's own cancel: the amend's answer says what follows
        if x == "NEW":
            return lead
        return lead + self._report(order, x, status, data, ts)

    def _report(self, order: LiveOrder, x: str, status: str | None, data: dict, ts: int) -> list[Event]:
        """The events of an executionReport of the order's live incarnation."""
        if x == "TRADE":
            events = self._fill(order, ts, trade_id=int(data["t"]), qty=float(data["l"]), price=float(data["L"]),
                                commission=float(data.get("n") or 0.0), commission_asset=data.get("N") or "",
                                maker=bool(data.get("m")), done=status == "FILLED")
            if status == "EXPIRED_IN_MATCH":   # the trade ended the order: self-trade prevention took the rest
                counted = sum(e.fields["qty"] for e in events)
                events += self._ended(order, ts, data, True, "expired_in_match", counted)
            return events
        if x == "TRADE_PREVENTION" or status == "EXPIRED_IN_MATCH":
            if status != "EXPIRED_IN_MATCH":
                return []   # a prevention that leaves the order open (DECREMENT): its end is reported later
            return self._ended(order, ts, data, True, "expired_in_match")
        if x in ("CANCELED", "EXPIRED"):
            return self._ended(order, ts, data, x == "EXPIRED" or not order.cancel_requested, x.lower())
        if x == "REJECTED":
            return self._rejected(order, ts, data.get("r") or "rejected by the exchange")
        return []

    def exchange_id(self, client_id: str, incarnation: int | None = None) -> str:
        """The client order id the exchange knows for one of the engine's ids: of its live
        incarnation (the latest replacement after amends), or of the given one."""
        if incarnation is None:
            o = self.orders.get(client_id)
            incarnation = o.amendments if o is not None else 0
        return self.prefix + client_id + (f".a{incarnation}" if incarnation else "")

    def engine_id(self, exchange_client_id: str | None) -> str | None:
        """The engine's id for an exchange client order id (None when not ours)."""
        return self._parse(exchange_client_id)[0]

    def _parse(self, exchange_client_id: str | None) -> tuple[str | None, int]:
        """(engine id, incarnation) of an exchange client order id ('G1a2b-g12.a1' -> ('g12', 1))."""
        if not exchange_client_id or not exchange_client_id.startswith(self.prefix):
            return None, 0
        rest = exchange_client_id[len(self.prefix):]
        base, sep, n = rest.rpartition(".a")
        if sep and n.isdigit() and base:
            return base, int(n)
        return rest, 0

    def on_trade_record(self, order: LiveOrder, trade: dict, ts: int) -> list[Event]:
        """A fill found by reconciliation (`GET /api/v3/myTrades` row) that the stream missed."""
        qty = float(trade["qty"])
        done = order.filled + qty >= order.qty - 1e-9
        return self._fill(order, ts, trade_id=int(trade["id"]), qty=qty, price=float(trade["price"]),
                          commission=float(trade.get("commission") or 0.0),
                          commission_asset=trade.get("commissionAsset") or "", maker=bool(trade.get("isMaker")),
                          done=done)

    def finish_from_status(self, order: LiveOrder, status: str, ts: int) -> list[Event]:
        """Reconciliation: the exchange says the order ended (CANCELED, EXPIRED, REJECTED)."""
        if order.client_id not in self.open_orders:
            return []
        if status == "CANCELED" and order.amend_price is not None:   # the amend's cancel, no replacement
            return self._canceled(order, ts, True, "amend not completed: the order was cancelled, the new one "
                                                   "never placed")
        if status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH"):
            return self._canceled(order, ts, by_exchange=status != "CANCELED" or not order.cancel_requested,
                                  reason=status.lower())
        if status == "REJECTED":
            return self._rejected(order, ts, "rejected by the exchange")
        return []

    def never_sent(self, order: LiveOrder, ts: int) -> list[Event]:
        """Reconciliation: the exchange never saw this order (the engine stopped before
        it left). It is not sent late: the moment it was decided for has passed."""
        return self._rejected(order, ts, "not sent: the engine stopped before the order left")

    # ------------------------------------------------------------ orders placed outside Genesis
    def _external_report(self, data: dict, cid: str | None, ts: int) -> list[Event]:
        """The user-data report of an order Genesis did not place: adopted when first seen
        (placed, or filled at once), and each of its trades an `external_fill`."""
        x = data.get("x")
        symbol = str(data.get("s") or "")
        side = str(data.get("S") or "").lower()
        if not cid:
            return []
        events: list[Event] = []
        if x in ("NEW", "TRADE") and cid not in self.external:
            price = float(data.get("p") or 0.0) or float(data.get("L") or 0.0) or self._mid(symbol)
            events += self.external_found(symbol, cid, side, float(data.get("q") or 0.0) * price, data.get("i"), ts)
        if x == "TRADE":
            events += self.external_trade(symbol, cid, side, int(data["t"]), float(data["l"]), float(data["L"]),
                                          float(data.get("n") or 0.0), data.get("N") or "", ts)
        return events

    def external_found(self, symbol: str, cid: str, side: str, notional: float, order_id, ts: int) -> list[Event]:
        """`external_order` for an order placed outside Genesis, once (none when adopted already)."""
        if cid in self.external:
            return []
        fields = {"notional_usd": notional, "_exchange_client_id": cid, "_side": side}
        if order_id is not None:
            fields["_order_id"] = int(order_id)
        return [Event("external_order", ts, symbol, fields)]

    def external_trade(self, symbol: str, cid: str, side: str, trade_id: int, qty: float, price: float,
                       commission: float, commission_asset: str, ts: int) -> list[Event]:
        """`external_fill` for one trade of an external order, once per trade id."""
        if (symbol, trade_id) in self.external_trades or trade_id < self.trades_from.get(symbol, 0) or qty <= 0:
            return []   # taken in already (below trades_from: read by an earlier reconciliation, or before the run)
        return [Event("external_fill", ts, symbol, {
            "side": side, "qty": qty, "price": price, "notional_usd": qty * price, "_trade_id": trade_id,
            "_exchange_client_id": cid, "_commission": commission, "_commission_asset": commission_asset})]

    def _external_applied(self, event: Event) -> None:
        """An external fill: its balance change, kept apart from Genesis's own."""
        f = event.fields
        self.external_trades.add((event.symbol, int(f["_trade_id"])))
        m = self.markets.get(event.symbol)
        if m is None:
            return
        sign = 1.0 if f["side"] == "buy" else -1.0
        net = self.external_net
        net[m.base] = net.get(m.base, 0.0) + sign * f["qty"]
        net[m.quote] = net.get(m.quote, 0.0) - sign * f["notional_usd"]
        asset = f.get("_commission_asset") or ""
        if asset and f.get("_commission"):
            net[asset] = net.get(asset, 0.0) - f["_commission"]

    def _mid(self, symbol: str) -> float:
        """The book's mid price (0 before the first quotes)."""
        book = self.books.get(symbol)
        if book is None:
            return 0.0
        bid, ask = book.best_bid(), book.best_ask()
        return (bid + ask) / 2 if bid and ask else 0.0

    # ------------------------------------------------------------ internals
    def _fill(self, order: LiveOrder, ts: int, trade_id: int, qty: float, price: float, commission: float,
              commission_asset: str, maker: bool, done: bool, counted: float = 0.0) -> list[Event]:
        """One fill event (none for a trade seen already); `counted`: what fill events made
        from the same answer before this one add to `order.filled`."""
        if trade_id in order.trade_ids or qty <= 0 or order.client_id not in self.open_orders:
            return []   # seen already (stream and reconciliation may both report it)
        m = self.markets.get(order.symbol)
        notional = qty * price
        fee_base = 0.0
        if m is not None and commission_asset == m.base:
            fee_base, fee_usd = commission, commission * price
        elif m is not None and commission_asset == m.quote:
            fee_usd = commission
        else:
            fee_usd = 0.0   # paid in another asset (BNB): not in the account's quote figures
        decision = order.decision_price
        if decision:
            slip = ((price - decision) if order.side == "buy" else (decision - price)) / decision * 100
        else:
            slip = 0.0
        remaining = 0.0 if done else max(order.qty - order.filled - counted - qty, 0.0)
        fields = {"side": order.side, "price": price, "qty": qty, "notional_usd": notional, "fee_usd": fee_usd,
                  "slippage_pct": slip, "maker": maker, "_client_id": order.client_id, "_order_type": order.type,
                  "_remaining": remaining, "_manual": order.manual, "_worst_price": price, "_trade_id": trade_id}
        if fee_base:
            fields["_fee_base"] = fee_base
        elif fee_usd == 0.0 and commission and commission_asset:
            fields["_fee_other"] = [commission_asset, commission]   # e.g. BNB: for the balance check only
        if order.type in LIMIT_TYPES:
            fields["_limit_price"] = order.price
        return [Event("fill", ts, order.symbol, fields)]

    def apply(self, event: Event) -> None:
        """Bring the order book-keeping up to date with one of its own events (live and
        when the input log is replayed: the same state either way)."""
        if event.kind == "external_order":
            self.external[event.fields.get("_exchange_client_id", "")] = dict(event.fields)
            if event.fields.get("_order_id") is not None:
                self.order_owner[int(event.fields["_order_id"])] = event.fields.get("_exchange_client_id", "")
            return
        if event.kind == "external_fill":
            self._external_applied(event)
            return
        if event.kind == "reconciled":
            for symbol, first in (event.fields.get("_trades_from") or {}).items():
                self.trades_from[symbol] = max(int(first), self.trades_from.get(symbol, 0))
                # the trades below it are never read again: only newer ones need their ids
                self.external_trades = {t for t in self.external_trades if t[0] != symbol or t[1] >= first}
            return
        if event.kind == "position_mismatch":
            self.mismatch_amounts = dict(event.fields.get("_amounts") or {})
            return
        order = self.orders.get(event.fields.get("_client_id"))
        if order is None:
            return
        kind = event.kind
        if kind == "fill":
            f = event.fields
            order.trade_ids.add(f.get("_trade_id"))
            order.filled += f["qty"]
            m = self.markets.get(order.symbol)
            if m is not None:
                sign = 1.0 if order.side == "buy" else -1.0
                fee_base = f.get("_fee_base", 0.0)
                fee_quote = 0.0 if fee_base else f["fee_usd"]
                self.net[m.base] = self.net.get(m.base, 0.0) + sign * f["qty"] - fee_base
                self.net[m.quote] = self.net.get(m.quote, 0.0) - sign * f["notional_usd"] - fee_quote
                if "_fee_other" in f:
                    asset, amount = f["_fee_other"]
                    self.net[asset] = self.net.get(asset, 0.0) - amount
            if order.status in (NEW, UNKNOWN):
                order.status = OPEN
            if event.fields["_remaining"] <= 0:
                self._close(order)
        elif kind == "order_ack":
            order.exchange_id = event.fields.get("_exchange_id")
            if order.exchange_id is not None:
                self.order_owner[int(order.exchange_id)] = self.exchange_id(order.client_id)
            if order.status in (NEW, UNKNOWN):
                order.status = OPEN
        elif kind in ("order_canceled", "order_rejected"):
            self._close(order)
        elif kind == "order_amended":
            f = event.fields
            order.amendments, order.price, order.amend_price = int(f["amendments"]), f["price"], None
            if f.get("_exchange_id") is not None:
                order.exchange_id = f["_exchange_id"]
            self._after_amend(order)
        elif kind == "order_amend_rejected":
            order.amend_price = None
            self._after_amend(order)

    def _ended(self, order: LiveOrder, ts: int, data: dict, by_exchange: bool, reason: str,
               counted: float = 0.0) -> list[Event]:
        """A report that ends the order: closed at once when Genesis has every fill it
        reports (`z`, beyond the `counted` quantity of events made from the same report);
        otherwise left open for reconciliation, which takes the missing fills first."""
        if order.client_id not in self.open_orders:
            return []
        executed = float(data.get("z") or 0.0) + self.executed_before(order, data.get("q"))
        if executed > order.filled + counted + FILL_EPS:
            if self.on_behind is not None:
                self.on_behind()
            return []
        return self._canceled(order, ts, by_exchange, reason, remaining=max(order.remaining - counted, 0.0))

    def _canceled(self, order: LiveOrder, ts: int, by_exchange: bool, reason: str,
                  remaining: float | None = None) -> list[Event]:
        if order.client_id not in self.open_orders:
            return []
        left = order.remaining if remaining is None else remaining
        price = order.price or order.decision_price or 0.0
        manual = order.manual if order.cancel_manual is None else bool(order.cancel_manual)
        return [Event("order_canceled", ts, order.symbol, {
            "age_s": max(ts - order.created_ts, 0) / 1000.0, "manual": manual, "notional_usd": left * price,
            "by_exchange": by_exchange, "by_rule": order.cancel_requested and order.cancel_manual is False,
            "_client_id": order.client_id, "_reason": reason,
            "_remaining": left, "_order_type": order.type})]

    def _rejected(self, order: LiveOrder, ts: int, reason: str) -> list[Event]:
        if order.client_id not in self.open_orders:
            return []
        return [self._reject(order.client_id, order.symbol, order.manual, ts, reason, order.type)]

    def _after_amend(self, order: LiveOrder) -> None:
        """A cancel asked for while the amend was under way goes now, to the live order."""
        if order.cancel_requested and self.live and order.client_id in self.open_orders:
            self.outbox.append(("cancel", order))

    def _close(self, order: LiveOrder) -> None:
        order.status = DONE
        self.open_orders.pop(order.client_id, None)   # an amend under way still gets its answer

    @staticmethod
    def _reject(client_id: str, symbol: str, manual: bool, ts: int, reason: str, type_: str = "") -> Event:
        return Event("order_rejected", ts, symbol, {"rule": "exchange", "manual": manual, "_reason": reason,
                                                    "_client_id": client_id, "_order_type": type_})
