"""Orders, own trades and accounts of the simulated exchange, with their Binance JSON
shapes (REST order/cancel/myTrades/account answers and user-data events)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
Q8 = Decimal("0.00000001")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


def f8(value: Decimal) -> str:
    """Binance's 8-decimal string form of an amount."""
    return f"{value:.8f}"


def round8(value: Decimal) -> Decimal:
    """Half-up to 8 decimals (commission precision)."""
    return value.quantize(Q8, rounding=ROUND_HALF_UP)


@dataclass(slots=True)
class Trade:
    """One fill of one own order."""

    symbol: str
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def as_my_trade(self) -> dict:
        """GET /api/v3/myTrades row."""
        return {"symbol": self.symbol, "id": self.id, "orderId": self.order_id, "orderListId": -1,
                "price": f8(self.price), "qty": f8(self.qty), "quoteQty": f8(self.quote_qty),
                "commission": f8(self.commission), "commissionAsset": self.commission_asset,
                "time": self.time, "isBuyer": self.is_buyer, "isMaker": self.is_maker, "isBestMatch": True}

    def as_fill(self) -> dict:
        """One entry of a FULL order answer's ``fills``."""
        return {"price": f8(self.price), "qty": f8(self.qty), "commission": f8(self.commission),
                "commissionAsset": self.commission_asset, "tradeId": self.id}


@dataclass(slots=True)
class Order:
    """One order and its state."""

    symbol: str
    order_id: int
    client_id: str
    side: str                     # BUY | SELL
    type: str                     # MARKET | LIMIT | LIMIT_MAKER
    tif: str                      # GTC | IOC | FOK ('GTC' for market orders, as Binance shows)
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    locked: Decimal = ZERO        # still locked for the resting part (quote for buys, base for sells)
    pending_market: bool = False  # a market remainder left by the partial-fill fault
    stp: str = "NONE"             # selfTradePreventionMode
    prevented_qty: Decimal = ZERO  # quantity expired by self-trade prevention
    prevented_match_id: int | None = None
    prevented_matches: list = field(default_factory=list)   # the taker's view, for its new-order answer
    queue_ahead: Decimal | None = ZERO  # resting: recorded quantity ahead at its price (None: not shown yet)
    trades: list = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed

    def _common(self) -> dict:
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_id, "price": f8(self.price), "origQty": f8(self.orig_qty),
                "executedQty": f8(self.executed), "cummulativeQuoteQty": f8(self.cum_quote),
                "status": self.status, "timeInForce": self.tif, "type": self.type, "side": self.side}

    def as_query(self) -> dict:
        """GET /api/v3/order (and openOrders / allOrders rows)."""
        d = self._common()
        d.update({"stopPrice": f8(ZERO), "icebergQty": f8(ZERO), "time": self.time,
                  "updateTime": self.update_time, "isWorking": self.type != "MARKET" or self.pending_market,
                  "workingTime": self.time, "origQuoteOrderQty": f8(self.orig_quote_qty),
                  "selfTradePreventionMode": self.stp})
        self._prevented(d)
        return d

    def _prevented(self, d: dict) -> None:
        """Binance's conditional fields of an order that self-trade prevention expired."""
        if self.prevented_match_id is not None:
            d["preventedMatchId"] = self.prevented_match_id
            d["preventedQuantity"] = f8(self.prevented_qty)

    def as_new(self, resp_type: str, transact_time: int) -> dict:
        """POST /api/v3/order answer for newOrderRespType ACK, RESULT or FULL."""
        ack = {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
               "clientOrderId": self.client_id, "transactTime": transact_time}
        if resp_type == "ACK":
            return ack
        d = self._common()
        d.update({"transactTime": transact_time, "origQuoteOrderQty": f8(self.orig_quote_qty),
                  "workingTime": self.time, "selfTradePreventionMode": self.stp})
        if resp_type == "FULL":
            d["fills"] = [t.as_fill() for t in self.trades]
        if self.prevented_matches:
            d["preventedMatches"] = list(self.prevented_matches)
        self._prevented(d)
        return d

    def as_cancel(self, cancel_id: str, transact_time: int) -> dict:
        """DELETE /api/v3/order answer."""
        d = self._common()
        d["origClientOrderId"] = self.client_id
        d["clientOrderId"] = cancel_id
        d.update({"transactTime": transact_time, "origQuoteOrderQty": f8(self.orig_quote_qty),
                  "selfTradePreventionMode": self.stp})
        return d

    def report(self, exec_type: str, now: int, trade: Trade | None = None,
               cancel_id: str | None = None, reason: str = "NONE", extra: dict | None = None) -> dict:
        """The executionReport user-data event for one state change (`extra`: conditional
        fields, e.g. those of a TRADE_PREVENTION report)."""
        t = trade
        report = {
            "e": "executionReport", "E": now, "s": self.symbol,
            "c": cancel_id if cancel_id is not None else self.client_id,
            "S": self.side, "o": self.type, "f": self.tif, "q": f8(self.orig_qty), "p": f8(self.price),
            "P": f8(ZERO), "F": f8(ZERO), "g": -1,
            "C": self.client_id if cancel_id is not None else "",
            "x": exec_type, "X": self.status, "r": reason, "i": self.order_id,
            "l": f8(t.qty if t else ZERO), "z": f8(self.executed), "L": f8(t.price if t else ZERO),
            "n": f8(t.commission) if t else "0", "N": t.commission_asset if t else None,
            "T": t.time if t else now, "t": t.id if t else -1, "I": 0,
            "w": self.is_open and (self.type != "MARKET" or self.pending_market),
            "m": t.is_maker if t else False, "M": False, "O": self.time, "Z": f8(self.cum_quote),
            "Y": f8(t.quote_qty if t else ZERO), "Q": f8(self.orig_quote_qty), "W": self.time, "V": self.stp,
        }
        if extra:
            report.update(extra)
        return report


class Account:
    """Balances, orders and trades behind one API key."""

    def __init__(self, api_key: str, balances: dict[str, Decimal]):
        self.api_key = api_key
        self.balances: dict[str, list[Decimal]] = {a: [Decimal(v), ZERO] for a, v in balances.items()}
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.update_time = 0
        self._changed: set[str] = set()

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def change(self, asset: str, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        """Move `free` / `locked` by the given amounts (negative to take)."""
        row = self.balances.setdefault(asset, [ZERO, ZERO])
        row[0] += free
        row[1] += locked
        self._changed.add(asset)

    def take_changed(self, now: int) -> dict | None:
        """The outboundAccountPosition event for the assets changed since the last call."""
        if not self._changed:
            return None
        self.update_time = now
        assets, self._changed = sorted(self._changed), set()
        return {"e": "outboundAccountPosition", "E": now, "u": now,
                "B": [{"a": a, "f": f8(self.balances[a][0]), "l": f8(self.balances[a][1])} for a in assets]}

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, oldest first."""
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def find(self, symbol: str, order_id: int | None, client_id: str | None) -> Order | None:
        """An order by id, or the latest one with that client id."""
        if order_id is not None:
            o = self.orders.get(order_id)
            return o if o is not None and o.symbol == symbol and (client_id is None or o.client_id == client_id) \
                else None
        for o in reversed(self.orders.values()):
            if o.symbol == symbol and o.client_id == client_id:
                return o
        return None

    def balance_rows(self, omit_zero: bool = False) -> list[dict]:
        """``balances`` of GET /api/v3/account."""
        return [{"asset": a, "free": f8(f), "locked": f8(lk)} for a, (f, lk) in sorted(self.balances.items())
                if not (omit_zero and f == 0 and lk == 0)]

    def state(self) -> dict:
        """Everything about the account, for /sim/state."""
        return {"balances": {a: {"free": f8(f), "locked": f8(lk)} for a, (f, lk) in sorted(self.balances.items())},
                "orders": [o.as_query() for o in self.orders.values()],
                "trades": [t.as_my_trade() for t in self.trades]}
