"""Symbol rules from a Binance exchangeInfo document, in exact decimals, and the filter
checks Binance runs on a new order (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
MIN_NOTIONAL / NOTIONAL, PERCENT_PRICE, MAX_NUM_ORDERS)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from .errors import filter_failure, illegal, too_much_precision

ZERO = Decimal(0)


def load_exchange_info(path: str | Path) -> dict:
    """Read an exchangeInfo JSON file; a cryptofeed capture line
    (``<url> -> <time>: <json>``) is accepted too."""
    text = Path(path).read_text(encoding="utf-8").lstrip()
    if not text.startswith("{"):
        text = text.split("\n", 1)[0].split(": ", 1)[1]
    return json.loads(text)


def _d(value, default: str = "0") -> Decimal:
    return Decimal(str(value if value is not None else default))


@dataclass(slots=True)
class SymbolRules:
    """One symbol's trading rules."""

    symbol: str
    base: str
    quote: str
    status: str = "TRADING"
    base_precision: int = 8
    quote_precision: int = 8
    order_types: tuple = ("LIMIT", "LIMIT_MAKER", "MARKET")
    tick: Decimal = ZERO
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    step: Decimal = ZERO
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    market_step: Decimal = ZERO
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    min_notional: Decimal = ZERO
    min_notional_market: bool = True
    max_notional: Decimal = ZERO
    max_notional_market: bool = True
    notional_filter: str = "MIN_NOTIONAL"
    mult_up: Decimal = ZERO
    mult_down: Decimal = ZERO
    max_num_orders: int = 0
    stp_default: str = "NONE"                    # defaultSelfTradePreventionMode
    stp_allowed: tuple = ("NONE",)               # allowedSelfTradePreventionModes
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_exchange_info(cls, s: dict) -> SymbolRules:
        """Build from one entry of exchangeInfo's ``symbols``."""
        r = cls(symbol=s["symbol"], base=s.get("baseAsset", ""), quote=s.get("quoteAsset", ""),
                status=s.get("status", "TRADING"),
                base_precision=int(s.get("baseAssetPrecision", 8)),
                quote_precision=int(s.get("quoteAssetPrecision", s.get("quotePrecision", 8))),
                order_types=tuple(s.get("orderTypes", ("LIMIT", "LIMIT_MAKER", "MARKET"))),
                stp_default=str(s.get("defaultSelfTradePreventionMode", "NONE")),
                stp_allowed=tuple(s.get("allowedSelfTradePreventionModes", ("NONE",))), raw=s)
        for f in s.get("filters", ()):
            t = f.get("filterType")
            if t == "PRICE_FILTER":
                r.tick, r.min_price, r.max_price = _d(f.get("tickSize")), _d(f.get("minPrice")), _d(f.get("maxPrice"))
            elif t == "LOT_SIZE":
                r.step, r.min_qty, r.max_qty = _d(f.get("stepSize")), _d(f.get("minQty")), _d(f.get("maxQty"))
            elif t == "MARKET_LOT_SIZE":
                r.market_step, r.market_min_qty = _d(f.get("stepSize")), _d(f.get("minQty"))
                r.market_max_qty = _d(f.get("maxQty"))
            elif t == "MIN_NOTIONAL":
                r.min_notional = _d(f.get("minNotional"))
                r.min_notional_market = bool(f.get("applyToMarket", True))
            elif t == "NOTIONAL":
                r.notional_filter = "NOTIONAL"
                r.min_notional = _d(f.get("minNotional"))
                r.min_notional_market = bool(f.get("applyMinToMarket", True))
                r.max_notional = _d(f.get("maxNotional"))
                r.max_notional_market = bool(f.get("applyMaxToMarket", False))
            elif t == "PERCENT_PRICE":
                r.mult_up, r.mult_down = _d(f.get("multiplierUp")), _d(f.get("multiplierDown"))
            elif t == "PERCENT_PRICE_BY_SIDE":
                r.mult_up, r.mult_down = _d(f.get("askMultiplierUp")), _d(f.get("bidMultiplierDown"))
            elif t == "MAX_NUM_ORDERS":
                r.max_num_orders = int(f.get("maxNumOrders", f.get("limit", 0)))
        return r

    def floor_qty(self, qty: Decimal, market: bool = False) -> Decimal:
        """`qty` rounded down to the (market) lot step."""
        step = self.market_step if market and self.market_step > 0 else self.step
        if step <= 0:
            return qty
        return (qty // step) * step

    def check(self, side: str, kind: str, qty: Decimal, price: Decimal | None,
              ref_price: Decimal | None, open_orders: int) -> None:
        """Raise the -1013 filter failure Binance would give, or return.

        `price` is the limit price (None for a market order); `ref_price` is the
        reference for market notional and PERCENT_PRICE (Binance uses a 5-minute
        average; the simulator uses the last trade price)."""
        market = kind == "MARKET"
        if price is not None:
            if price <= 0 or (self.min_price > 0 and price < self.min_price) or \
                    (self.max_price > 0 and price > self.max_price) or \
                    (self.tick > 0 and price % self.tick != 0):
                raise filter_failure("PRICE_FILTER")
            if ref_price and self.mult_up > 0 and not (ref_price * self.mult_down <= price <= ref_price * self.mult_up):
                raise filter_failure("PERCENT_PRICE_BY_SIDE" if self.notional_filter == "NOTIONAL" else "PERCENT_PRICE")
        if qty <= 0 or qty < self.min_qty or (self.max_qty > 0 and qty > self.max_qty) or \
                (self.step > 0 and qty % self.step != 0):
            raise filter_failure("LOT_SIZE")
        if market and ((self.market_min_qty > 0 and qty < self.market_min_qty) or
                       (self.market_max_qty > 0 and qty > self.market_max_qty) or
                       (self.market_step > 0 and qty % self.market_step != 0)):
            raise filter_failure("MARKET_LOT_SIZE")
        ref = price if price is not None else ref_price
        if ref is not None:
            notional = qty * ref
            if (not market or self.min_notional_market) and notional < self.min_notional:
                raise filter_failure(self.notional_filter)
            if self.max_notional > 0 and (not market or self.max_notional_market) and notional > self.max_notional:
                raise filter_failure(self.notional_filter)
        if self.max_num_orders and open_orders >= self.max_num_orders and not market:
            raise filter_failure("MAX_NUM_ORDERS")


def rules_by_symbol(info: dict) -> dict[str, SymbolRules]:
    """Every symbol of an exchangeInfo document."""
    return {s["symbol"]: SymbolRules.from_exchange_info(s) for s in info.get("symbols", ())}


def check_decimal(name: str, text: str | None, decimals: int = 8) -> Decimal | None:
    """Parse a decimal request parameter as Binance does (-1100 on a bad form, -1111 on
    more than `decimals` places); None when absent."""
    if text is None or text == "":
        return None
    body = text.strip()
    ok = body.replace(".", "", 1).isdigit() and body.count(".") <= 1 and not body.startswith(".")
    if not ok or len(body) > 41:
        raise illegal(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
    value = Decimal(body)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > decimals:
        raise too_much_precision(name)
    return value


__all__ = ["SymbolRules", "check_decimal", "load_exchange_info", "rules_by_symbol"]
