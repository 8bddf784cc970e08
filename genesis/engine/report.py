"""The replay report: dollars first, percent second. Built when a replay or a paper run
ends; its tables by pair, strategy and day come from the run's journal
(genesis.engine.runrecord)."""
from __future__ import annotations

import math
import textwrap

from genesis.durations import format_utc
from genesis.engine.engine import Engine
from genesis.engine.events import MS_PER_DAY
from genesis.engine.runrecord import RunRecord, read_record, utc_day
from genesis.words import counted, usd

MIN_MINUTES_FOR_SHARPE = 30
WIDTH = 80                 # the text report fits an 80-column terminal
TABLE_ROWS = {"pair": 15, "strategy": 15, "day": 15}   # rows printed; the JSON and the HTML page hold all
PLURALS = {"pair": "pairs", "strategy": "strategies", "day": "days"}
ROW_DECIMALS = 6           # dollars in the tables' rows: their sums agree with the totals to the cent
FIRINGS_SHOWN = 12         # rules listed on the "rule firings" line, most firings first


def build_report(engine: Engine, feed, starting_equity: float, elapsed_s: float, mode: str = "replay") -> dict:
    """Figures of a finished replay."""
    closed = [e for e in engine.closed_trades]
    wins = [t for t in closed if t["pnl_usd"] > 0]
    m = engine.metrics.m
    equity = m["equity_usd"]
    pnl = equity - starting_equity
    marks = [eq for _, eq in engine.stats.equity_marks]
    returns = [b / a - 1 for a, b in zip(marks, marks[1:]) if a > 0]
    sharpe = None  # meaningless on a few minutes of data
    if len(returns) >= MIN_MINUTES_FOR_SHARPE:
        mean = sum(returns) / len(returns)
        std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
        sharpe = round(mean / std * math.sqrt(525_600), 3) if std > 0 else 0.0
    in_mode = engine.time_in_mode_ms()
    total_ms = sum(in_mode.values()) or 1
    record = read_record(engine)
    return {
        "mode": mode,
        "tier": engine.tier,
        "events": engine.stats.events,
        "events_per_second": round(engine.stats.events / elapsed_s) if elapsed_s > 0 else None,
        "feed": {"sources": [str(s) for s in feed.sources], "digest": feed.digest(), "malformed": feed.malformed,
                 "out_of_order": feed.out_of_order, "problems": getattr(feed, "issue_count", None)},
        "data_range": data_range(getattr(feed, "first_ts", None), getattr(feed, "last_ts", None)),
        "trades": len(closed),
        "wins": len(wins),
        "win_rate_pct": _rate(len(wins), len(closed)),
        "realised_pnl_usd": round(sum(t["pnl_usd"] for t in closed), 2),
        "pnl_usd": round(pnl, 2),
        "pnl_pct": round(pnl / starting_equity * 100, 4) if starting_equity else 0.0,
        "starting_equity_usd": starting_equity,
        "final_equity_usd": round(equity, 2),
        "max_drawdown_usd": round(engine.stats.max_drawdown_usd, 2),
        "max_drawdown_pct": round(engine.stats.max_drawdown_pct, 4),
        "sharpe_1m_annualised": sharpe,
        "fees_usd": round(engine.account.fees_usd, 4),
        "intents": engine.stats.intents,
        "orders": engine.stats.orders,
        "refused": engine.stats.rejected,
        "rule_firings": dict(sorted(engine.stats.firings.items())),
        "time_in_state_pct": {k: round(v / total_ms * 100, 2) for k, v in sorted(in_mode.items())},
        "final_state": engine.state.mode,
        "notifications": len(engine.notifications),
        "rule_errors": sum(engine.rules.errors.values()) + sum(engine.metrics.errors.values()),
        **breakdowns(record, engine, equity),
    }


def data_range(first_ms: int | None, last_ms: int | None) -> dict:
    """The event times of the first and the last input event, and the time between."""
    return {"first_event_ms": first_ms, "last_event_ms": last_ms,
            "first_event_utc": format_utc(first_ms) if first_ms is not None else None,
            "last_event_utc": format_utc(last_ms) if last_ms is not None else None,
            "duration_s": (last_ms - first_ms) / 1000 if first_ms is not None and last_ms is not None else None}


def _rate(wins: int, trades: int) -> float | None:
    """Win rate in percent; None (shown "n/a") without a trade."""
    return round(wins / trades * 100, 2) if trades else None


# --------------------------------------------------------------------------- tables
def breakdowns(record: RunRecord, engine: Engine, final_equity: float) -> dict:
    """The report's tables: closed trades, wins, realised P&L and fees by pair, by strategy
    (the one whose order opened the trade) and by UTC day (with the day's equity P&L).
    Empty when the run had no journal to read."""
    if not record.journaled:
        return {"by_pair": [], "by_strategy": [], "by_day": []}
    by_pair = _group("symbol", record, lambda t: t.symbol, lambda f: f.symbol)
    by_strategy = _group("strategy", record, lambda t: t.strategy, lambda f: f.strategy)
    by_day = _group("day", record, lambda t: utc_day(t.closed_ms), lambda f: utc_day(f.ts))
    day_pnl = dict(record.day_pnl)
    open_day = utc_day(engine.account.day * MS_PER_DAY)   # the day not closed yet: its P&L so far
    day_pnl[open_day] = day_pnl.get(open_day, 0.0) + final_equity - engine.account.day_open_equity
    known = {row["day"]: row for row in by_day}
    for day in day_pnl:
        known.setdefault(day, _row("day", day))
    by_day = sorted(known.values(), key=lambda row: row["day"])
    for row in by_day:
        row["pnl_usd"] = round(day_pnl.get(row["day"], 0.0), ROW_DECIMALS)
    return {"by_pair": by_pair, "by_strategy": by_strategy, "by_day": by_day}


def _row(key: str, name: str) -> dict:
    return {key: name, "trades": 0, "wins": 0, "win_rate_pct": None, "realised_pnl_usd": 0.0, "fees_usd": 0.0}


def _group(key: str, record: RunRecord, of_trade, of_fee) -> list[dict]:
    """Rows of trades and fees grouped by `key`, sorted by it."""
    rows: dict[str, dict] = {}
    for trade in record.trades:
        row = rows.setdefault(of_trade(trade), _row(key, of_trade(trade)))
        row["trades"] += 1
        row["wins"] += trade.pnl_usd > 0
        row["realised_pnl_usd"] += trade.pnl_usd
    for fee in record.fees:
        rows.setdefault(of_fee(fee), _row(key, of_fee(fee)))["fees_usd"] += fee.fee_usd
    for row in rows.values():
        row["win_rate_pct"] = _rate(row["wins"], row["trades"])
        row["realised_pnl_usd"] = round(row["realised_pnl_usd"], ROW_DECIMALS)
        row["fees_usd"] = round(row["fees_usd"], ROW_DECIMALS)
    return [rows[name] for name in sorted(rows)]


# --------------------------------------------------------------------------- text


def win_rate(rate: float | None) -> str:
    """'62.5%', or 'n/a' without a trade."""
    return "n/a" if rate is None else f"{rate:.1f}%"


def human_span(seconds: float) -> str:
    """A duration in words: '45 s', '3 min 0 s', '2 h 5 min', '12 days 3 h'."""
    s = int(round(seconds))
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{counted(days, 'day')} {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s" if seconds < 10 else f"{secs} s"


def range_text(rng: dict) -> str:
    """'2024-08-08 23:54:15 to 23:57:15 UTC (3 min 0 s)'; the second date only when it differs."""
    if rng.get("first_event_ms") is None:
        return "no events"
    first, last = rng["first_event_utc"].removesuffix(" UTC"), rng["last_event_utc"].removesuffix(" UTC")
    if first[:10] == last[:10]:
        last = last[11:]
    return f"{first} to {last} UTC ({human_span(rng['duration_s'])})"


def _wrapped(label: str, text: str) -> list[str]:
    """A report line `label  text`, wrapped to WIDTH under its text column."""
    head = f"  {label:<16}"
    return textwrap.wrap(text, WIDTH, initial_indent=head, subsequent_indent=" " * len(head),
                         break_on_hyphens=False, break_long_words=False) or [head.rstrip()]


def firings_text(firings: dict, shown: int = FIRINGS_SHOWN) -> str:
    """'rule x3, other x1', most firings first; past `shown` rules, "and N more"."""
    if not firings:
        return "none"
    most = sorted(firings.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{rule} x{n:,}" for rule, n in most[:shown])
    if len(most) > shown:
        text += f", and {len(most) - shown:,} more rules (--json lists all)"
    return text


def headline(report: dict) -> str:
    """'Replay on tier sniper: 35,979 events (32,133 events/s)'."""
    return (f"{report['mode'].capitalize()} on tier {report['tier']}: {counted(report['events'], 'event')}"
            + (f" ({report['events_per_second']:,} events/s)" if report.get("events_per_second") else ""))


def summary(report: dict) -> list[tuple[str, str]]:
    """The report's figures as (label, text) lines."""
    feed = report["feed"]
    trades = f"{report['trades']:,} closed"
    if report["trades"]:
        trades += (f", {report['wins']:,} won (win rate {win_rate(report['win_rate_pct'])}), "
                   f"realised {usd(report['realised_pnl_usd'])}")
    else:
        trades += ", win rate n/a"
    sharpe = report["sharpe_1m_annualised"]
    return [
        ("data", range_text(report.get("data_range") or {})),
        ("feed", f"{feed['malformed']:,} malformed, {feed['out_of_order']:,} out of order"),
        ("P&L", f"{usd(report['pnl_usd'])} ({report['pnl_pct']:+.4f}%)  "
                f"equity {usd(report['starting_equity_usd'])} -> {usd(report['final_equity_usd'])}"),
        ("trades", trades),
        ("max drawdown", f"{usd(report['max_drawdown_usd'])} ({report['max_drawdown_pct']:.3f}%)"),
        ("Sharpe", f"{sharpe:.2f} (1-minute equity returns, annualised)" if sharpe is not None
                   else f"n/a (under {MIN_MINUTES_FOR_SHARPE} minutes of data)"),
        ("fees", usd(report["fees_usd"], decimals=4)),
        ("intents", f"{report['intents']:,} ({report['refused']:,} refused), {counted(report['orders'], 'order')}"),
        ("time in state", ", ".join(f"{k} {v:.1f}%" for k, v in report["time_in_state_pct"].items())),
        ("final state", report["final_state"]),
        ("rule firings", firings_text(report["rule_firings"])),
    ]


TABLES = (("pair", "By pair"), ("strategy", "By strategy (whose order opened the trade)"),
          ("day", "By day (UTC; P&L is the change in equity, open positions included)"))


def format_report(report: dict) -> str:
    """The report as aligned text, 80 columns wide."""
    lines = [headline(report)]
    for label, text in summary(report):
        lines += _wrapped(label, text)
    for key, title in TABLES:
        rows = report.get(f"by_{key}") or []
        if rows:
            lines += ["", title, *format_table(key, rows)]
    return "\n".join(lines)


def table_cells(key: str, rows: list[dict]) -> tuple[list[str], list[list[str]], list[str]]:
    """A breakdown (`key` pair, strategy or day) as text cells: (headers, one list per
    row, the total row)."""
    name = {"pair": "symbol", "strategy": "strategy", "day": "day"}[key]
    headers = [key, "trades", "won", "win rate", "realised", "fees"] + (["P&L"] if key == "day" else [])

    def cells(row: dict, label: str) -> list[str]:
        out = [label, f"{row['trades']:,}", f"{row['wins']:,}", win_rate(row["win_rate_pct"]),
               usd(row["realised_pnl_usd"]), usd(row["fees_usd"], decimals=4)]
        return out + ([usd(row["pnl_usd"])] if key == "day" else [])

    total = {"trades": sum(r["trades"] for r in rows), "wins": sum(r["wins"] for r in rows),
             "realised_pnl_usd": sum(r["realised_pnl_usd"] for r in rows),
             "fees_usd": sum(r["fees_usd"] for r in rows), "pnl_usd": sum(r.get("pnl_usd", 0.0) for r in rows)}
    total["win_rate_pct"] = _rate(total["wins"], total["trades"])
    return headers, [cells(row, row[name]) for row in rows], cells(total, "total")


def format_table(key: str, rows: list[dict]) -> list[str]:
    """One breakdown as aligned lines within WIDTH: at most TABLE_ROWS[key] rows, then
    "and N more", then the total."""
    headers, body, footer = table_cells(key, rows)
    shown = body[:TABLE_ROWS[key]]
    widths = [max(len(line[i]) for line in [headers, *shown, footer]) for i in range(len(headers))]
    room = WIDTH - 2 - sum(widths[1:]) - 2 * (len(widths) - 1)
    widths[0] = max(8, min(widths[0], room))

    def line(values: list[str]) -> str:
        first = values[0] if len(values[0]) <= widths[0] else values[0][:widths[0] - 3] + "..."
        return "  " + "  ".join([first.ljust(widths[0])] + [v.rjust(w) for v, w in zip(values[1:], widths[1:])])

    out = [line(headers)] + [line(values) for values in shown]
    if len(body) > len(shown):
        more = len(body) - len(shown)
        out.append(f"  ... and {more:,} more {PLURALS[key] if more != 1 else key} (all in --json and --plot FILE.html)")
    if len(body) > 1:
        out.append(line(footer))
    return out
