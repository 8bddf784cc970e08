"""What is in flight: orders sent whose fills the account has not taken in yet (live,
fills arrive after the order leaves; paper, a resting limit order waits for the market)
and execution slices scheduled for later. Pre-trade limits count these as well as
positions, so that two orders sent back to back are held to the same limit as one order
of their combined size.

`sent` is the engine's book of orders sent and not settled: client id ->
[symbol, side, qty, filled qty, price]; `scheduled` its (due, seq, request) slices.
"""
from __future__ import annotations

from genesis.engine.account import Account


def buying_usd(sent: dict, scheduled: list, symbol: str) -> float:
    """Value of the buys of `symbol` in flight: the unfilled quantity of buy orders sent at
    the price each was sized at (its limit, else the market when sent: what the order
    commits) plus the notional of buy slices scheduled."""
    total = 0.0
    for sym, side, qty, filled, price in sent.values():
        if sym == symbol and side == "buy":
            total += max(qty - filled, 0.0) * price
    for _, _, req in scheduled:
        if req["symbol"] == symbol and req["side"] == "buy":
            total += req["notional"]
    return total


def pending_symbols(sent: dict, scheduled: list, account: Account) -> set:
    """Symbols with no position held but a buy in flight: positions about to open."""
    buying = {sym for sym, side, qty, filled, _ in sent.values() if side == "buy" and qty - filled > 1e-12}
    buying |= {req["symbol"] for _, _, req in scheduled if req["side"] == "buy"}
    return {sym for sym in buying if not _held(account, sym)}


def order_figures(sent: dict, scheduled: list, account: Account, symbol: str, side: str, notional: float,
                  same_direction_pct: float) -> dict:
    """The in-flight order fields pre-trade rules read (see genesis/vocabulary.py):
    exposure_usd, pending_positions and same_direction_pct. `same_direction_pct` is the
    account's figure, recomputed over held and pending positions when any is pending."""
    pos = account.positions.get(symbol)
    held_usd = max(pos.qty, 0.0) * account.mids.get(symbol, 0.0) if pos else 0.0
    exposure = held_usd + buying_usd(sent, scheduled, symbol) + (notional if side == "buy" else 0.0)
    pending = pending_symbols(sent, scheduled, account)
    if pending:
        held = {sym for sym, p in account.positions.items() if p.qty > 0}
        same_direction_pct = account.same_direction_pct(held | pending)
    return {"exposure_usd": exposure, "pending_positions": float(len(pending)),
            "same_direction_pct": same_direction_pct}


def sell_problem(sent: dict, selling: dict, account: Account, markets, symbol: str) -> str | None:
    """Why a sell of `symbol` has nothing to sell (None when some quantity is free):
    no position, or all of it already in sell orders that have not settled."""
    pos = account.positions.get(symbol)
    held = pos.qty if pos else 0.0
    if held <= 0:
        return f"nothing to sell: no {symbol} position"
    free = held - selling.get(symbol, 0.0)
    if symbol in markets:
        free = markets.round_qty_down(symbol, free)
    if free > 0:
        return None
    if selling.get(symbol, 0.0) > 0:
        being_sold = [cid for cid, (sym, s, *_) in sent.items() if sym == symbol and s == "sell"]
        return (f"nothing left to sell: {symbol} {held:.8g} held, already being sold by "
                f"{', '.join(being_sold) or 'orders in flight'}")
    return f"nothing left to sell: {symbol} {held:.8g} held is less than the exchange's lot size"


def _held(account: Account, symbol: str) -> bool:
    pos = account.positions.get(symbol)
    return pos is not None and pos.qty > 0
