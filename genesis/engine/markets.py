"""Symbol rules from Binance `GET /api/v3/exchangeInfo`: assets, tick and step sizes,
quantity bounds, minimum notional and trading status, with the rounding and checks an
order must pass before it is sent.

Both schemas are read: the 2021 one (`MIN_NOTIONAL` filter) and the newer one
(`NOTIONAL` filter with `minNotional` / `maxNotional`). The bundled copy is
`genesis/data/exchange_info.json`; a file may also be a raw capture line
(`<url> -> <time>: <json>`), as in cryptofeed's recordings.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from genesis.paths import PACKAGE_DIR

DEFAULT_PATH = PACKAGE_DIR / "data" / "exchange_info.json"

# A value within this fraction of a step of the next multiple counts as that multiple
# (absorbs float residue such as 0.1 * 3 = 0.30000000000000004).
_SNAP = 1e-9


def _decimals(step: str) -> int:
    """Decimal places that matter in a step string such as '0.00001000' (-> 5)."""
    d = Decimal(step).normalize()
    exp = d.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    base: str
    quote: str
    status: str
    tick_size: float = 0.0
    min_price: float = 0.0
    max_price: float = 0.0
    step_size: float = 0.0
    min_qty: float = 0.0
    max_qty: float = 0.0
    min_notional: float = 0.0
    max_notional: float = 0.0       # 0: no maximum
    price_decimals: int = 8
    qty_decimals: int = 8

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"

    @classmethod
    def from_exchange_info(cls, s: dict) -> "SymbolInfo":
        kw: dict = {}
        for f in s.get("filters", ()):
            t = f.get("filterType")
            if t == "PRICE_FILTER":
                kw["tick_size"] = float(f.get("tickSize", 0))
                kw["min_price"] = float(f.get("minPrice", 0))
                kw["max_price"] = float(f.get("maxPrice", 0))
                kw["price_decimals"] = _decimals(f.get("tickSize", "0.00000001"))
            elif t == "LOT_SIZE":
                kw["step_size"] = float(f.get("stepSize", 0))
                kw["min_qty"] = float(f.get("minQty", 0))
                kw["max_qty"] = float(f.get("maxQty", 0))
                kw["qty_decimals"] = _decimals(f.get("stepSize", "0.00000001"))
            elif t in ("MIN_NOTIONAL", "NOTIONAL"):
                if "minNotional" in f:
                    kw["min_notional"] = float(f["minNotional"])
                if t == "NOTIONAL" and "maxNotional" in f:
                    kw["max_notional"] = float(f["maxNotional"])
        return cls(symbol=s["symbol"], base=s.get("baseAsset", ""), quote=s.get("quoteAsset", ""),
                   status=s.get("status", "TRADING"), **kw)


class Markets:
    """Every symbol's trading rules, by symbol name."""

    def __init__(self, symbols: dict[str, SymbolInfo]):
        self.symbols = symbols

    @classmethod
    def from_exchange_info(cls, data: dict, only: set[str] | None = None) -> "Markets":
        out = {}
        for s in data.get("symbols", ()):
            if only is None or s.get("symbol") in only:
                info = SymbolInfo.from_exchange_info(s)
                out[info.symbol] = info
        return cls(out)

    @classmethod
    def load(cls, path: str | Path | None = None, only: set[str] | None = None) -> "Markets":
        """Read an exchangeInfo JSON file (default: the bundled copy)."""
        text = Path(path if path is not None else DEFAULT_PATH).read_text(encoding="utf-8")
        stripped = text.lstrip()
        if not stripped.startswith("{"):       # '<url> -> <time>: {json}' capture line
            stripped = stripped.split("\n", 1)[0].split(": ", 1)[1]
        return cls.from_exchange_info(json.loads(stripped), only)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.symbols

    def __getitem__(self, symbol: str) -> SymbolInfo:
        return self.symbols[symbol]

    def get(self, symbol: str) -> SymbolInfo | None:
        return self.symbols.get(symbol)

    # ---------------------------------------------------------------- rounding

    def round_qty_down(self, symbol: str, qty: float) -> float:
        """`qty` rounded down to the symbol's step size (never up: you cannot spend
        what you do not have)."""
        s = self.symbols[symbol]
        step = s.step_size
        if step <= 0 or qty <= 0:
            return max(qty, 0.0)
        n = math.floor(qty / step + _SNAP)
        return round(n * step, s.qty_decimals)

    def round_price(self, symbol: str, price: float, side: str | None = None) -> float:
        """`price` on the symbol's tick grid. For a limit order the rounding never
        makes the price worse for the trader: a buy rounds down, a sell rounds up;
        with no side, to the nearest tick."""
        s = self.symbols[symbol]
        tick = s.tick_size
        if tick <= 0:
            return price
        x = price / tick
        if side == "buy":
            n = math.floor(x + _SNAP)
        elif side == "sell":
            n = math.ceil(x - _SNAP)
        elif side is None:
            n = math.floor(x + 0.5)
        else:
            raise ValueError(f"unknown side {side!r}")
        return round(n * tick, s.price_decimals)

    # ------------------------------------------------------------------ checks

    def check(self, symbol: str, qty: float, price: float | None) -> str | None:
        """Why the exchange would refuse an order of `qty` at `price`, or None.

        `price` is the limit price, or the reference price (best bid or ask) of a
        market order; with None the notional and price checks are skipped."""
        s = self.symbols.get(symbol)
        if s is None:
            return "unknown symbol"
        if s.status != "TRADING":
            return "symbol not trading"
        if not qty > 0 or qty < s.min_qty * (1 - _SNAP):
            return "quantity below lot size minimum"
        if s.max_qty > 0 and qty > s.max_qty * (1 + _SNAP):
            return "quantity above lot size maximum"
        if s.step_size > 0:
            n = qty / s.step_size
            if abs(n - round(n)) > 1e-6:
                return "quantity not a multiple of the step size"
        if price is None:
            return None
        if not price > 0:
            return "price must be positive"
        if s.min_price > 0 and price < s.min_price * (1 - _SNAP):
            return "price below minimum price"
        if s.max_price > 0 and price > s.max_price * (1 + _SNAP):
            return "price above maximum price"
        if s.tick_size > 0:
            n = price / s.tick_size
            if abs(n - round(n)) > 1e-6:
                return "price not a multiple of the tick size"
        notional = qty * price
        if notional < s.min_notional * (1 - _SNAP):
            return f"below minimum notional {s.min_notional}"
        if s.max_notional > 0 and notional > s.max_notional * (1 + _SNAP):
            return f"above maximum notional {s.max_notional}"
        return None
