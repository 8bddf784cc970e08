"""The replay report: dollars first, percent second."""
from __future__ import annotations

import math

from genesis.engine.engine import Engine


MIN_MINUTES_FOR_SHARPE = 30


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
    return {
        "mode": mode,
        "tier": engine.tier,
        "events": engine.stats.events,
        "events_per_second": round(engine.stats.events / elapsed_s) if elapsed_s > 0 else None,
        "feed": {"sources": [str(s) for s in feed.sources], "digest": feed.digest(), "malformed": feed.malformed,
                 "out_of_order": feed.out_of_order},
        "trades": len(closed),
        "win_rate_pct": round(len(wins) / len(closed) * 100, 2) if closed else 0.0,
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
    }


def format_report(report: dict) -> str:
    """The report as aligned text."""
    lines = [
        f"{report['mode'].capitalize()} on tier {report['tier']}: {report['events']:,} events"
        + (f" ({report['events_per_second']:,} events/s)" if report.get("events_per_second") else ""),
        f"  feed            {report['feed']['malformed']} malformed, {report['feed']['out_of_order']} out of order",
        f"  P&L             ${report['pnl_usd']:,.2f} ({report['pnl_pct']:+.4f}%)  "
        f"equity ${report['starting_equity_usd']:,.2f} -> ${report['final_equity_usd']:,.2f}",
        f"  trades          {report['trades']} closed, win rate {report['win_rate_pct']:.1f}%",
        f"  max drawdown    ${report['max_drawdown_usd']:,.2f} ({report['max_drawdown_pct']:.3f}%)",
        "  Sharpe          " + (f"{report['sharpe_1m_annualised']:.2f} (1-minute equity returns, annualised)"
                                 if report["sharpe_1m_annualised"] is not None
                                 else f"n/a (under {MIN_MINUTES_FOR_SHARPE} minutes of data)"),
        f"  fees            ${report['fees_usd']:,.4f}",
        f"  intents         {report['intents']} ({report['refused']} refused), {report['orders']} orders",
        "  time in state   " + ", ".join(f"{k} {v:.1f}%" for k, v in report["time_in_state_pct"].items()),
        f"  final state     {report['final_state']}",
        "  rule firings    " + (", ".join(f"{k} x{v}" for k, v in report["rule_firings"].items()) or "none"),
    ]
    return "\n".join(lines)
