"""The daily report: what a trading day did, built when the engine closes the day at
00:00 UTC of event time (in live trading, the wall clock) from the differences of the
engine's running totals, so it costs nothing per event. The engine journals it as a
`daily_report` entry and sends it to the `report` route of alerts.yaml;
`genesis report --day YYYY-MM-DD` prints it from the journal."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

MS_PER_DAY = 86_400_000


@dataclass
class DayStart:
    """The engine's running totals when a day began."""

    closed_trades: int = 0
    fees_usd: float = 0.0
    fills: int = 0
    orders: int = 0
    intents: int = 0
    refused: int = 0
    firings: Counter = field(default_factory=Counter)
    in_mode_ms: Counter = field(default_factory=Counter)


def day_start(engine) -> DayStart:
    """The running totals now: the start of the next day's figures."""
    return DayStart(len(engine.closed_trades), engine.account.fees_usd, engine.stats.fills, engine.stats.orders,
                    engine.stats.intents, engine.stats.rejected, Counter(engine.stats.firings),
                    engine.time_in_mode_ms())


def day_report(engine, start: DayStart, closed) -> dict:
    """The report of the day that the `day_closed` event `closed` ends."""
    day = datetime.fromtimestamp((closed.ts - 1) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
    trades = engine.closed_trades[start.closed_trades:]
    wins = [t for t in trades if t["pnl_usd"] > 0]
    firings = {rule: n - start.firings.get(rule, 0) for rule, n in sorted(engine.stats.firings.items())
               if n > start.firings.get(rule, 0)}
    files = {rule.id: rule.doc.file for rule in engine.config.rules}
    by_file: dict = {}
    for rule, n in firings.items():
        by_file.setdefault(files.get(rule, "?"), {})[rule] = n
    in_mode = engine.time_in_mode_ms()
    spent = {mode: in_mode.get(mode, 0) - start.in_mode_ms.get(mode, 0) for mode in sorted(set(in_mode))}
    total = sum(v for v in spent.values() if v > 0) or 1
    return {
        "day": day,
        "tier": engine.tier,
        "pnl_usd": round(closed.fields["pnl_usd"], 2),
        "pnl_pct": round(closed.fields["pnl_pct"], 4),
        "max_drawdown_pct": round(closed.fields["max_drawdown_pct"], 4),
        "equity_usd": round(engine.metrics.m["equity_usd"], 2),
        "trades": len(trades),
        "wins": len(wins),
        "win_rate_pct": round(len(wins) / len(trades) * 100, 2) if trades else None,
        "realised_pnl_usd": round(sum(t["pnl_usd"] for t in trades), 2),
        "fees_usd": round(engine.account.fees_usd - start.fees_usd, 4),
        "fills": engine.stats.fills - start.fills,
        "orders": engine.stats.orders - start.orders,
        "intents": engine.stats.intents - start.intents,
        "refused": engine.stats.rejected - start.refused,
        "firings": firings,
        "firings_by_file": by_file,
        "time_in_state_pct": {mode: round(max(ms, 0) / total * 100, 2) for mode, ms in spent.items() if ms > 0},
        "state_at_close": engine.state.mode,
        "tilt_level_at_close": engine.metrics.m.get("tilt_level"),   # None without a tilt rule book
        "promotion": _promotion(engine),
    }


def _promotion(engine) -> list[dict]:
    """Each promotion rule of the tier: how many of its conditions hold."""
    from genesis.engine.gates import gates  # noqa: PLC0415 - gates builds on the engine

    return [{"rule": rule, "holding": sum(1 for _, passed, _ in rows if passed), "of": len(rows),
             "waiting_on": [text for text, passed, _ in rows if not passed]} for rule, rows in gates(engine)]


def format_day_report(report: dict) -> str:
    """The report as a short text: the message sent and what `genesis report` prints."""
    win = "n/a" if report["win_rate_pct"] is None else f"{report['win_rate_pct']:.1f}%"
    lines = [
        f"Daily report {report['day']} (UTC), tier {report['tier']}",
        f"  P&L             ${report['pnl_usd']:,.2f} ({report['pnl_pct']:+.2f}%), equity ${report['equity_usd']:,.2f}",
        f"  trades          {report['trades']} closed, {report['wins']} won (win rate {win}), "
        f"realised ${report['realised_pnl_usd']:,.2f}",
        f"  fees            ${report['fees_usd']:,.4f} on {report['fills']} fills",
        f"  orders          {report['orders']} sent, {report['refused']} of {report['intents']} intents refused",
        f"  max drawdown    {report['max_drawdown_pct']:.2f}%",
        "  time in state   " + (", ".join(f"{k} {v:.1f}%" for k, v in report["time_in_state_pct"].items()) or "-"),
        f"  at the close    {report['state_at_close']}"
        + ("" if report["tilt_level_at_close"] is None else f", tilt level {report['tilt_level_at_close']:g}"),
    ]
    if report["firings_by_file"]:
        lines.append("  rule firings")
        for file, rules in sorted(report["firings_by_file"].items()):
            lines.append(f"    {file}: " + ", ".join(f"{rule} x{n}" for rule, n in rules.items()))
    else:
        lines.append("  rule firings    none")
    for gate in report["promotion"]:
        waiting = f"; waiting on {', '.join(gate['waiting_on'])}" if gate["waiting_on"] else ""
        lines.append(f"  promotion       {gate['rule']}: {gate['holding']} of {gate['of']} conditions hold{waiting}")
    return "\n".join(lines)
