"""The account figures the engine owns: balances, positions, equity, drawdown, the
trading day, and the events they produce (position_closed, day_closed,
drawdown_recovered). Spot only: a position is a long holding of a base asset.
The thresholds behind these figures (direction window, correlation cut-off, dust,
recovery depth) come from genesis.yaml `account_metrics`.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from genesis.durations import parse_duration
from genesis.engine.events import MS_PER_DAY, Event


@dataclass
class Position:
    """A long holding of one symbol's base asset."""

    qty: float = 0.0
    cost_usd: float = 0.0      # quote spent, fees included
    proceeds_usd: float = 0.0  # quote received from partial exits, fees deducted
    opened: int = 0
    exit_reason: str = "signal"


class Account:
    """Balances and positions from fills, valued at mid prices."""

    def __init__(self, starting_equity: float, start_ts: int, settings: dict):
        """`settings`: genesis.yaml `account_metrics` (defaults filled in)."""
        self.settings = settings
        self.direction_minutes = max(1, int(parse_duration(settings["direction_window"]) // 60))
        self.quote = starting_equity
        self.positions: dict[str, Position] = {}
        self.mids: dict[str, float] = {}
        self.history: dict[str, deque] = {}   # symbol -> (minute, mid) over the direction window
        self.peak = starting_equity
        self.rebased_peak = starting_equity   # highest equity since the last rebase_peak action
        self.deepest_pct = 0.0                 # deepest drawdown since the last peak
        self.day = start_ts // MS_PER_DAY
        self.day_open_equity = starting_equity
        self.day_traded = False
        self.day_max_dd_pct = 0.0
        self.daily_returns: dict[str, deque] = {}
        self.day_open_mids: dict[str, float] = {}
        self.first_mids: dict[str, float] = {}       # the first mid of each symbol in the run (the report)
        self.fees_usd = 0.0
        self.first_ts = start_ts
        self.uncorrelated_pairs = 0.0  # changes only when a day closes
        self.moved = True   # what the money figures depend on changed since `figures` last made them

    def start(self, ts: int) -> None:
        """The first event: the trading day and the trader's history begin here."""
        self.first_ts = ts
        self.day = ts // MS_PER_DAY
        self.moved = True

    # ------------------------------------------------------------------ prices
    def on_price(self, symbol: str, mid: float, ts: int) -> None:
        """A new mid price; a held symbol's moves the account (`moved`)."""
        if mid <= 0:
            return
        self.mids[symbol] = mid
        minute = ts // 60_000
        hist = self.history.get(symbol)
        if hist is None:   # the symbol's first price
            hist = self.history[symbol] = deque(maxlen=self.direction_minutes + 1)
            self.first_mids.setdefault(symbol, mid)
        if not hist or hist[-1][0] != minute:
            hist.append((minute, mid))
        if symbol not in self.day_open_mids:
            self.day_open_mids[symbol] = mid
        pos = self.positions.get(symbol)
        if pos is not None and pos.qty > 0:
            self.moved = True

    # ------------------------------------------------------------------ fills
    def on_fill(self, fill: Event, reason: str) -> list[Event]:
        """Apply a fill; returns a position_closed event when a holding is closed."""
        f = fill.fields
        symbol, side, qty, notional, fee = fill.symbol, f["side"], f["qty"], f["notional_usd"], f["fee_usd"]
        self.moved = True
        self.fees_usd += fee
        self.day_traded = True
        pos = self.positions.setdefault(symbol, Position())
        fee_base = f.get("_fee_base", 0.0)   # live: Binance takes a buy's fee from the coins bought
        if side == "buy":
            if pos.qty <= 0:
                pos.opened, pos.cost_usd, pos.proceeds_usd = fill.ts, 0.0, 0.0
            pos.qty += qty - fee_base
            pos.cost_usd += notional + fee
            self.quote -= notional + (0.0 if fee_base else fee)
            self.mids.setdefault(symbol, f["price"])
            return []
        pos.qty -= qty
        pos.proceeds_usd += notional - fee
        pos.exit_reason = reason
        self.quote += notional - fee
        value = max(pos.qty, 0.0) * self.mids.get(symbol, f["price"])
        if value >= self.settings["dust_usd"]:   # less than dust counts as closed
            return []
        pnl = pos.proceeds_usd - pos.cost_usd
        closed = Event("position_closed", fill.ts, symbol, {
            "pnl_usd": round(pnl, 8), "pnl_pct": pnl / pos.cost_usd * 100 if pos.cost_usd else 0.0,
            "hold_s": (fill.ts - pos.opened) / 1000.0, "exit_reason": reason})
        del self.positions[symbol]
        return [closed]

    # ------------------------------------------------------------------ figures
    def equity(self) -> float:
        """Quote balance plus holdings at mid."""
        return self.quote + sum(p.qty * self.mids.get(s, 0.0) for s, p in self.positions.items())

    def same_direction_pct(self, symbols=None) -> float:
        """Largest share of `symbols` (default: the positions held) whose price change
        over the direction window has the same sign; 0 with fewer than two that have moved."""
        if symbols is None:
            symbols = [s for s, p in self.positions.items() if p.qty > 0]
            if len(symbols) < 2:
                return 0.0
        moves = []
        for symbol in symbols:
            hist = self.history.get(symbol)
            if hist and len(hist) >= 2:
                moves.append(hist[-1][1] - hist[0][1])
        if len(moves) < 2:
            return 0.0
        up = sum(1 for d in moves if d > 0)
        down = sum(1 for d in moves if d < 0)
        return max(up, down) / len(moves) * 100.0

    def _uncorrelated_pairs(self) -> int:
        min_days, cutoff = self.settings["correlation_min_days"], self.settings["correlation_cutoff"]
        series = {s: list(r) for s, r in self.daily_returns.items() if len(r) >= min_days}
        names = sorted(series)
        count = 0
        for a in names:
            if all(b == a or abs(_correlation(series[a], series[b])) < cutoff for b in names):
                count += 1
        return count

    def figures(self, now: int, full: bool = False) -> dict:
        """The account metrics at `now`: every one when something the money figures depend
        on changed since the last call (a fill, a held symbol's price, a new day, a rebase)
        or with `full`; otherwise only `trader_days`, the one that moves with time alone."""
        trader_days = (now - self.first_ts) / MS_PER_DAY
        if not (self.moved or full):
            return {"trader_days": trader_days}
        self.moved = False
        equity = self.equity()
        if equity > self.peak:
            self.peak = equity
        if equity > self.rebased_peak:
            self.rebased_peak = equity
        drawdown = self.peak - equity
        dd_pct = drawdown / self.peak * 100 if self.peak > 0 else 0.0
        self.deepest_pct = max(self.deepest_pct, dd_pct)
        self.day_max_dd_pct = max(self.day_max_dd_pct, dd_pct)
        exposure = sum(p.qty * self.mids.get(s, 0.0) for s, p in self.positions.items())
        daily = equity - self.day_open_equity
        return {
            "equity_usd": equity, "peak_equity_usd": self.peak, "drawdown_usd": drawdown, "drawdown_pct": dd_pct,
            "peak_since_rebase_usd": self.rebased_peak, "drawdown_since_rebase_usd": self.rebased_peak - equity,
            "daily_pnl_usd": daily,
            "daily_pnl_pct": daily / self.day_open_equity * 100 if self.day_open_equity else 0.0,
            "open_positions": float(len([p for p in self.positions.values() if p.qty > 0])),
            "exposure_usd": exposure, "exposure_pct": exposure / equity * 100 if equity > 0 else 0.0,
            "same_direction_pct": self.same_direction_pct(),
            "uncorrelated_pairs_30d": self.uncorrelated_pairs,
            "trader_days": trader_days,
        }

    def rebase_peak(self) -> float:
        """Restart the rebased peak at the current equity (the all-time peak stays); returns it."""
        self.rebased_peak = self.equity()
        self.moved = True
        return self.rebased_peak

    def check_recovery(self, now: int) -> list[Event]:
        """drawdown_recovered when equity is back at its peak after a drawdown."""
        if self.deepest_pct > self.settings["recovery_min_pct"] and self.equity() >= self.peak:
            depth, self.deepest_pct = self.deepest_pct, 0.0
            return [Event("drawdown_recovered", now, "", {"depth_pct": depth})]
        return []

    def roll_day(self, now: int) -> list[Event]:
        """day_closed for every UTC day boundary passed by `now`."""
        out = []
        while now // MS_PER_DAY > self.day:
            self.day += 1
            close_ts = self.day * MS_PER_DAY
            equity = self.equity()
            pnl = equity - self.day_open_equity
            out.append(Event("day_closed", close_ts, "", {
                "pnl_usd": pnl, "pnl_pct": pnl / self.day_open_equity * 100 if self.day_open_equity else 0.0,
                "traded": self.day_traded, "max_drawdown_pct": self.day_max_dd_pct}))
            for symbol, mid in self.mids.items():
                opened = self.day_open_mids.get(symbol, mid)
                if opened > 0:
                    self.daily_returns.setdefault(symbol, deque(maxlen=30)).append(math.log(mid / opened))
            self.uncorrelated_pairs = float(self._uncorrelated_pairs())
            self.day_open_mids = dict(self.mids)
            self.day_open_equity = equity
            self.day_traded = False
            self.day_max_dd_pct = 0.0
            self.moved = True
        return out


def _correlation(a: list, b: list) -> float:
    n = min(len(a), len(b))
    if n < 3:
        return 1.0
    a, b = a[-n:], b[-n:]
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 1.0
