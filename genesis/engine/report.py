"""The replay report: dollars first, percent second. Built when a replay or a paper run
ends; its tables by pair, strategy and day, each strategy against buy-and-hold and the
execution quality by algorithm come from the run's journal (genesis.engine.runrecord)."""
from __future__ import annotations

import math
import textwrap

from genesis.durations import format_utc
from genesis.engine.engine import Engine
from genesis.engine.events import MS_PER_DAY
from genesis.engine.runrecord import ExecutionDone, RunRecord, read_record, utc_day
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
    returns, mean, std = engine.stats.equity_marks.return_stats()
    sharpe = None  # meaningless on a few minutes of data
    if returns >= MIN_MINUTES_FOR_SHARPE:
        sharpe = round(mean / std * math.sqrt(525_600), 3) if std > 0 else 0.0
    in_mode = engine.time_in_mode_ms()
    total_ms = sum(in_mode.values()) or 1
    record = read_record(engine)
    prices = price_moves(engine)
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
        "prices": prices,
        "vs_buy_and_hold": against_hold(record, engine, starting_equity, prices),
        "execution_quality": execution_quality(record.executions),
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


# --------------------------------------------------------------------------- against buy-and-hold
def price_moves(engine: Engine) -> dict:
    """Each symbol's first and last price in the run and the move between, in %."""
    last, first = engine.account.mids, engine.account.first_mids
    return {symbol: {"first_price": first[symbol], "last_price": last[symbol],
                     "change_pct": round((last[symbol] / first[symbol] - 1) * 100, 6)}
            for symbol in sorted(last) if first.get(symbol)}


def _strategy_symbols(record: RunRecord, engine: Engine) -> dict[str, list]:
    """Each strategy instance that runs at the end, placed an order or traded, with its
    configured symbols; the operator (and unknown openers) with the symbols they ordered."""
    configured = {inst["id"]: list(inst["symbols"]) for inst in engine.config.files.strategies.data["strategies"]}
    out = {s.id: list(s.symbols) for s in engine.strategies}
    acted = {name: set(symbols) for name, symbols in record.deciders.items()}
    for item in [*record.trades, *record.fees]:
        acted.setdefault(item.strategy, set()).add(item.symbol)
    for name, symbols in acted.items():
        out.setdefault(name, configured.get(name) or sorted(symbols))
    return out


def against_hold(record: RunRecord, engine: Engine, starting_equity: float, prices: dict) -> list[dict]:
    """Per strategy: realised P&L beside buy-and-hold of its symbols over the same data.
    The hold puts the strategy's peak exposure (the most it held at once, at cost) into
    its symbols in equal parts at their first price and values it at their last price,
    before fees; percentages are of the starting equity."""
    if not record.journaled:
        return []
    rows = []
    for name, symbols in sorted(_strategy_symbols(record, engine).items()):
        trades = [t for t in record.trades if t.strategy == name]
        realised = sum(t.pnl_usd for t in trades)
        exposure = record.peak_exposure.get(name, 0.0)
        moves = [prices[s]["change_pct"] for s in symbols if s in prices]
        move = sum(moves) / len(moves) if moves and len(moves) == len(symbols) else None
        hold = exposure * move / 100 if move is not None else None
        rows.append({"strategy": name, "symbols": symbols, "trades": len(trades),
                     "realised_pnl_usd": round(realised, ROW_DECIMALS),
                     "realised_pnl_pct": _of(realised, starting_equity),
                     "peak_exposure_usd": round(exposure, ROW_DECIMALS),
                     "hold_move_pct": None if move is None else round(move, 6),
                     "hold_pnl_usd": None if hold is None else round(hold, ROW_DECIMALS),
                     "hold_pnl_pct": None if hold is None else _of(hold, starting_equity),
                     "vs_hold_usd": None if hold is None else round(realised - hold, ROW_DECIMALS)})
    return rows


def _of(usd_value: float, starting_equity: float) -> float | None:
    """A dollar figure as % of the starting equity."""
    return round(usd_value / starting_equity * 100, 6) if starting_equity else None


# --------------------------------------------------------------------------- execution quality
def execution_quality(executions: list[ExecutionDone]) -> dict:
    """The `execution_done` entries by algorithm, and all of them together."""
    by_algo: dict[str, list] = {}
    for ex in executions:
        by_algo.setdefault(ex.data.get("algo") or "?", []).append(ex.data)
    return {"by_algo": [quality_row(algo, items) for algo, items in sorted(by_algo.items())],
            "total": quality_row("total", [ex.data for ex in executions])}


def _weighted(pairs: list[tuple[float, float]]) -> float | None:
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if weight > 0 else None


def quality_row(algo: str, items: list[dict]) -> dict:
    """One row of the execution quality table. Slippage and impact are averaged weighted
    by the value filled; a figure no entry carries is None."""
    filled = sum(d.get("filled_usd", 0.0) for d in items)
    notional = sum(d.get("notional_usd", 0.0) for d in items)
    slips = [(d["slippage_bps"], d.get("filled_usd", 0.0)) for d in items
             if d.get("slippage_bps") is not None and d.get("filled_usd", 0.0) > 0]
    impacts = [(d["impact_pct"], d.get("filled_usd", 0.0)) for d in items
               if d.get("impact_pct") is not None and d.get("filled_usd", 0.0) > 0]
    durations = [d["duration_ms"] for d in items if d.get("duration_ms") is not None]
    ends = [d["end"] for d in items if d.get("end") is not None]
    avg_slip, avg_impact = _weighted(slips), _weighted(impacts)
    return {"algo": algo, "executions": len(items), "slices": sum(d.get("slices", 0) for d in items),
            "planned_slices": sum(d.get("planned_slices", 0) for d in items),
            "notional_usd": round(notional, ROW_DECIMALS), "filled_usd": round(filled, ROW_DECIMALS),
            "fill_ratio_pct": round(filled / notional * 100, 4) if notional > 0 else None,
            "avg_slippage_bps": None if avg_slip is None else round(avg_slip, 4),
            "worst_slippage_bps": round(max(v for v, _ in slips), 4) if slips else None,
            "avg_impact_pct": None if avg_impact is None else round(avg_impact, 6),
            "avg_duration_s": round(sum(durations) / len(durations) / 1000, 3) if durations else None,
            "aborted": sum(end == "aborted" for end in ends) if ends else None}


# --------------------------------------------------------------------------- text


def win_rate(rate: float | None) -> str:
    """'62.5%', or 'n/a' without a trade."""
    return "n/a" if rate is None else f"{rate:.1f}%"


def short_span(value: float) -> str:
    """'0.4 s', '316 s': a short duration in a table cell."""
    return f"{value:.1f} s" if value < 10 else f"{value:,.0f} s"


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
    ] + ([("prices", prices_text(report["prices"]))] if report.get("prices") else [])


def prices_text(prices: dict) -> str:
    """'BTCUSDT $61,837.63 -> $61,726.13 (-0.18%), ...': each symbol's first and last price."""
    return ", ".join(f"{symbol} {usd(p['first_price'])} -> {usd(p['last_price'])} ({p['change_pct']:+.2f}%)"
                     for symbol, p in prices.items())


TABLES = (("pair", "By pair"), ("strategy", "By strategy (whose order opened the trade)"),
          ("day", "By day (UTC; P&L is the change in equity, open positions included)"))


HOLD_TITLE = "Against buy-and-hold (peak exposure held first to last price, before fees)"
QUALITY_TITLE = "Execution quality by algorithm (slippage and impact in bps, adverse positive)"


def format_report(report: dict) -> str:
    """The report as aligned text, 80 columns wide."""
    lines = [headline(report)]
    for label, text in summary(report):
        lines += _wrapped(label, text)
    for key, title in TABLES:
        rows = report.get(f"by_{key}") or []
        if rows:
            lines += ["", title, *format_table(key, rows)]
    rows = report.get("vs_buy_and_hold") or []
    if rows:
        headers, body = hold_cells(rows)
        lines += ["", HOLD_TITLE, *aligned(headers, body[:TABLE_ROWS["strategy"]], None, len(body), "strategy")]
    quality = report.get("execution_quality") or {}
    if quality.get("by_algo"):
        headers, body, footer = quality_cells(quality)
        lines += ["", QUALITY_TITLE, *aligned(headers, body, footer if len(body) > 1 else None, len(body), "algo")]
    return "\n".join(lines)


def _pct(value: float | None, decimals: int = 3) -> str:
    """'+1.234%', never '-0.000%'; '-' when unknown."""
    return "-" if value is None else f"{round(value, decimals) + 0.0:+.{decimals}f}%"


def hold_cells(rows: list[dict], move: bool = False) -> tuple[list[str], list[list[str]]]:
    """The buy-and-hold comparison as text cells: (headers, one list per strategy); with
    `move`, also the symbols' price move (the text report leaves it to the prices line)."""
    headers = ["strategy", "realised", "%", "exposure"] + (["move"] if move else []) + ["hold", "%", "vs hold"]

    def cells(row: dict) -> list[str]:
        return ([row["strategy"], usd(row["realised_pnl_usd"]), _pct(row["realised_pnl_pct"]),
                 usd(row["peak_exposure_usd"])] + ([_pct(row["hold_move_pct"], 2)] if move else [])
                + [usd(row["hold_pnl_usd"]), _pct(row["hold_pnl_pct"]), usd(row["vs_hold_usd"], signed=True)])
    return headers, [cells(row) for row in rows]


def quality_cells(quality: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """The execution quality table as text cells: (headers, one list per algorithm, the total)."""
    headers = ["algo", "execs", "slices", "filled", "fill", "slip", "worst", "impact", "time", "aborts"]

    def number(value: float | None, decimals: int = 2, suffix: str = "") -> str:
        """'1.23', never '-0.00'; '-' when unknown."""
        return "-" if value is None else f"{round(value, decimals) + 0.0:.{decimals}f}{suffix}"

    def cells(row: dict) -> list[str]:
        return [row["algo"], f"{row['executions']:,}", f"{row['slices']:,}", usd(row["filled_usd"], decimals=0),
                number(row["fill_ratio_pct"], 1, "%"), number(row["avg_slippage_bps"]),
                number(row["worst_slippage_bps"]),
                number(None if row["avg_impact_pct"] is None else row["avg_impact_pct"] * 100),
                "-" if row["avg_duration_s"] is None else short_span(row["avg_duration_s"]),
                "-" if row["aborted"] is None else f"{row['aborted']:,}"]
    return headers, [cells(row) for row in quality["by_algo"]], cells(quality["total"])


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
    return aligned(headers, body[:TABLE_ROWS[key]], footer if len(body) > 1 else None, len(body), key)


def aligned(headers: list[str], shown: list[list[str]], footer: list[str] | None, total_rows: int,
            key: str) -> list[str]:
    """Text cells as aligned lines within WIDTH (the first column cut to fit): the header,
    the rows shown, "and N more `key`s" when `total_rows` is more, then the footer."""
    widths = [max(len(line[i]) for line in [headers, *shown, *([footer] if footer else [])])
              for i in range(len(headers))]
    room = WIDTH - 2 - sum(widths[1:]) - 2 * (len(widths) - 1)
    widths[0] = max(8, min(widths[0], room))

    def line(values: list[str]) -> str:
        first = values[0] if len(values[0]) <= widths[0] else values[0][:widths[0] - 3] + "..."
        return "  " + "  ".join([first.ljust(widths[0])] + [v.rjust(w) for v, w in zip(values[1:], widths[1:])])

    out = [line(headers)] + [line(values) for values in shown]
    if total_rows > len(shown):
        more = total_rows - len(shown)
        out.append(f"  ... and {more:,} more {PLURALS.get(key, key + 's') if more != 1 else key} "
                   "(all in --json and --plot FILE.html)")
    if footer:
        out.append(line(footer))
    return out
