"""What a run did, read back from its journal for the replay report: each closed trade
(who opened it, when, at what prices, its fees and P&L), the fee of every fill, each
rule firing with its time, the equity P&L of each UTC day, each strategy's peak exposure
and every `execution_done` entry.

The journal holds the whole run, also the part before a resumed run's snapshot, so the
record is complete where the engine's running figures may not be. A trade is a position
from the fill that opened it to the `position_closed` entry that ended it (the engine's
P&L, fees included); its strategy is the one whose order opened it ("operator" for a
manual order). An order's strategy is the one its `order` entry names (`strategy`); in
journals written before orders named it, that of the latest `intent` entry for the same
symbol and side before it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

UNKNOWN = "(unknown)"   # a fill whose order no intent in the journal planned (an external fill)


@dataclass
class Trade:
    """One closed position."""

    symbol: str
    strategy: str          # whose order opened it
    opened_ms: int
    closed_ms: int = 0
    closed_by: str = ""    # whose order closed it: a strategy, "operator", or a rule's risk exit
    exit_reason: str = ""
    hold_s: float = 0.0
    qty: float = 0.0       # base bought
    bought_usd: float = 0.0
    sold_qty: float = 0.0
    sold_usd: float = 0.0
    fees_usd: float = 0.0
    pnl_usd: float = 0.0   # fees included
    pnl_pct: float = 0.0

    @property
    def entry_price(self) -> float:
        """Average buy price."""
        return self.bought_usd / self.qty if self.qty else 0.0

    @property
    def exit_price(self) -> float:
        """Average sell price."""
        return self.sold_usd / self.sold_qty if self.sold_qty else 0.0


@dataclass(frozen=True)
class FillFee:
    """The fee of one fill."""

    ts: int
    symbol: str
    strategy: str
    fee_usd: float


@dataclass(frozen=True)
class Firing:
    """A rule firing (pre-trade firings included)."""

    ts: int
    rule: str
    symbol: str


@dataclass(frozen=True)
class ExecutionDone:
    """One `execution_done` entry: a parent order's execution, as journaled. Its fields
    are read with defaults (`data.get`), so older and newer journals both read."""

    ts: int
    symbol: str
    data: dict


@dataclass
class RunRecord:
    """The trades, fees, firings, day results and executions of one run, in journal order."""

    trades: list[Trade] = field(default_factory=list)
    fees: list[FillFee] = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)
    day_pnl: dict[str, float] = field(default_factory=dict)   # UTC day -> equity P&L of each closed day
    peak_exposure: dict[str, float] = field(default_factory=dict)   # strategy -> most USD it held at once, at cost
    deciders: dict[str, set] = field(default_factory=dict)   # strategy or "operator" -> symbols of its intents
    executions: list[ExecutionDone] = field(default_factory=list)
    journaled: bool = True   # False: the run had no journal to read (the record is empty)


def utc_day(ms: int) -> str:
    """The UTC day of an event time: '2024-08-08'."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def read_record(engine) -> RunRecord:
    """The record of the engine's run, from its journal (empty without one)."""
    journal = engine.journal
    if journal is None:
        return RunRecord(journaled=False)
    journal.flush()
    return record_of(journal.entries(journal.run_id))


def record_of(rows) -> RunRecord:
    """The record of a run from its journal entries (rows with ts, kind, rule, symbol, data)."""
    record = RunRecord()
    by_order: dict[str, str] = {}       # client id -> strategy
    latest: dict[tuple, str] = {}       # (symbol, side) -> strategy of the latest intent
    open_trades: dict[str, Trade] = {}  # symbol -> the trade its position belongs to
    held: dict[str, list] = {}          # symbol -> [quantity, average cost in USD] of its open trade
    for row in rows:
        kind = row.kind
        if kind == "fire":
            record.firings.append(Firing(row.ts, row.rule, row.symbol))
        elif kind == "intent":
            data = json.loads(row.data)
            record.deciders.setdefault(row.rule, set()).add(row.symbol)
            latest[(row.symbol, data.get("side"))] = row.rule
        elif kind == "order":
            data = json.loads(row.data)
            by_order[data.get("client_id", "")] = (data.get("strategy")
                                                   or latest.get((row.symbol, data.get("side")), UNKNOWN))
        elif kind == "fill":
            data = json.loads(row.data)
            strategy = by_order.get(data.get("client_id", ""), UNKNOWN)
            record.fees.append(FillFee(row.ts, row.symbol, strategy, data["fee_usd"]))
            _add_fill(open_trades, row, data, strategy)
            _note_exposure(record, open_trades, held, row.symbol, data)
        elif kind == "position_closed":
            data = json.loads(row.data)
            held.pop(row.symbol, None)
            trade = open_trades.pop(row.symbol, None) or Trade(row.symbol, UNKNOWN, row.ts)
            trade.closed_ms, trade.exit_reason, trade.hold_s = row.ts, data["exit_reason"], data["hold_s"]
            trade.pnl_usd, trade.pnl_pct = data["pnl_usd"], data["pnl_pct"]
            record.trades.append(trade)
        elif kind == "day_closed":
            record.day_pnl[utc_day(row.ts - 1)] = json.loads(row.data)["pnl_usd"]
        elif kind == "execution_done":
            record.executions.append(ExecutionDone(row.ts, row.symbol, json.loads(row.data)))
    return record


def _note_exposure(record: RunRecord, open_trades: dict, held: dict, symbol: str, fill: dict) -> None:
    """After a fill counted into its trade: what the trade holds at average cost (a buy adds
    its value, a sell takes out its share of the cost), and the peak of the exposure of the
    strategy the trade belongs to (all its open trades together)."""
    trade = open_trades.get(symbol)
    if trade is None:
        return
    position = held.setdefault(symbol, [0.0, 0.0])
    if fill["side"] == "buy":
        position[0] += fill["qty"]
        position[1] += fill["notional_usd"]
    elif position[0] > 0:
        position[1] *= max(position[0] - fill["qty"], 0.0) / position[0]
        position[0] -= fill["qty"]
    exposure = sum(held[s][1] for s, t in open_trades.items() if t.strategy == trade.strategy and s in held)
    if exposure > record.peak_exposure.get(trade.strategy, 0.0):
        record.peak_exposure[trade.strategy] = exposure


def _add_fill(open_trades: dict, row, data: dict, strategy: str) -> None:
    """Count a fill into the trade of its symbol (a buy with none open opens one)."""
    trade = open_trades.get(row.symbol)
    if trade is None:
        if data["side"] != "buy":
            return   # a sell of nothing this run bought: no trade to count it in
        trade = open_trades[row.symbol] = Trade(row.symbol, strategy, row.ts)
    trade.fees_usd += data["fee_usd"]
    if data["side"] == "buy":
        trade.qty += data["qty"]
        trade.bought_usd += data["notional_usd"]
    else:
        trade.sold_qty += data["qty"]
        trade.sold_usd += data["notional_usd"]
        trade.closed_by = strategy


# --------------------------------------------------------------------------- the trade list
TRADE_COLUMNS = ("opened_utc", "closed_utc", "symbol", "strategy", "closed_by", "exit_reason", "hold_s", "qty",
                 "entry_price", "exit_price", "bought_usd", "sold_usd", "fees_usd", "pnl_usd", "pnl_pct")


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def trade_row(trade: Trade) -> dict:
    """One row of the trade list, by column name (docs/reports.md)."""
    return {"opened_utc": _stamp(trade.opened_ms), "closed_utc": _stamp(trade.closed_ms), "symbol": trade.symbol,
            "strategy": trade.strategy, "closed_by": trade.closed_by, "exit_reason": trade.exit_reason,
            "hold_s": round(trade.hold_s, 3), "qty": round(trade.qty, 8), "entry_price": round(trade.entry_price, 8),
            "exit_price": round(trade.exit_price, 8), "bought_usd": round(trade.bought_usd, 6),
            "sold_usd": round(trade.sold_usd, 6), "fees_usd": round(trade.fees_usd, 8),
            "pnl_usd": round(trade.pnl_usd, 8), "pnl_pct": round(trade.pnl_pct, 4)}


def write_trades_csv(path: str | Path, trades: list[Trade]) -> None:
    """The trade list as CSV: a header of TRADE_COLUMNS, then one row per closed trade."""
    import csv  # noqa: PLC0415 - only --trades writes CSV

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=TRADE_COLUMNS)
        writer.writeheader()
        for trade in trades:
            writer.writerow(trade_row(trade))
