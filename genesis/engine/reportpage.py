"""The replay report as one self-contained HTML page (`genesis replay --plot FILE.html`):
the figures, the chart as inline SVG, the tables by pair, strategy and day in full, each
strategy against buy-and-hold, the execution quality by algorithm, the rule firings and
the trade list. No script, no stylesheet or font from elsewhere:
opening it loads nothing from the network."""
from __future__ import annotations

import re
from html import escape

from genesis.durations import format_utc
from genesis.engine.report import (HOLD_TITLE, QUALITY_TITLE, TABLES, firings_text, headline, hold_cells,
                                   human_span, quality_cells, range_text, summary, table_cells)
from genesis.engine.runrecord import RunRecord
from genesis.words import usd

ROWS_SHOWN = 1000   # firings and trades listed on the page; "and N more" after (the CSV has every trade)

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #2b2f33; background: #fbfaf7;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.4em; font-weight: 600; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; font-weight: 600; margin-top: 2em; border-bottom: 1px solid #e3e0d8; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { padding: 0.2em 0.8em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 1px solid #cfcabd; font-weight: 600; }
tfoot td { border-top: 1px solid #cfcabd; font-weight: 600; }
table.summary th { text-align: left; font-weight: 500; color: #6b7075; }
table.summary td { text-align: left; white-space: normal; }
figure { margin: 1em 0; background: white; border: 1px solid #e3e0d8; }
figure svg { width: 100%; height: auto; display: block; }
.note { color: #6b7075; }
"""


def _table(headers: list[str], rows: list[list[str]], footer: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    foot = "<tfoot><tr>" + "".join(f"<td>{escape(c)}</td>" for c in footer) + "</tr></tfoot>" if footer else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>"


def _more(total: int, shown: int, what: str) -> str:
    return f'<p class="note">... and {total - shown:,} more {what}</p>' if total > shown else ""


def _inline_svg(svg: str) -> str:
    """The SVG element alone, to sit inside the page: without the XML declaration, the
    DOCTYPE and the metadata block (whose namespace names are web addresses)."""
    svg = svg[svg.index("<svg"):]
    return re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)


def report_page(report: dict, record: RunRecord, svg: str) -> str:
    """The page's HTML."""
    parts = [f"<h1>{escape(headline(report))}</h1>",
             '<table class="summary">' + "".join(f"<tr><th>{escape(label)}</th><td>{escape(text)}</td></tr>"
                                                 for label, text in summary(report)) + "</table>",
             f"<figure>{_inline_svg(svg)}</figure>"]
    for key, title in TABLES:
        rows = report.get(f"by_{key}") or []
        parts.append(f"<h2>{escape(title)}</h2>")
        if rows:
            headers, body, footer = table_cells(key, rows)
            parts.append(_table(headers, body, footer if len(body) > 1 else None))
        else:
            parts.append('<p class="note">nothing traded</p>')
    parts.append(f"<h2>{escape(HOLD_TITLE)}</h2>")
    if report.get("vs_buy_and_hold"):
        parts.append(_table(*hold_cells(report["vs_buy_and_hold"], move=True)))
    else:
        parts.append('<p class="note">no strategy ran</p>')
    parts.append(f"<h2>{escape(QUALITY_TITLE)}</h2>")
    quality = report.get("execution_quality") or {}
    if quality.get("by_algo"):
        headers, body, footer = quality_cells(quality)
        parts.append(_table(headers, body, footer if len(body) > 1 else None))
    else:
        parts.append('<p class="note">no execution finished</p>')
    parts.append("<h2>Rule firings</h2>")
    parts.append(f"<p>{escape(firings_text(report['rule_firings'], shown=len(report['rule_firings'])))}</p>")
    if record.firings:
        shown = record.firings[:ROWS_SHOWN]
        parts.append(_table(["event time (UTC)", "rule", "symbol"],
                            [[format_utc(f.ts), f.rule, f.symbol or "-"] for f in shown]))
        parts.append(_more(len(record.firings), len(shown), "firings"))
    parts.append("<h2>Trades</h2>")
    if record.trades:
        shown = record.trades[:ROWS_SHOWN]
        rows = [[format_utc(trade.opened_ms), format_utc(trade.closed_ms), trade.symbol, trade.strategy,
                 trade.closed_by or "-", trade.exit_reason, human_span(trade.hold_s), f"{trade.entry_price:,.8g}",
                 f"{trade.exit_price:,.8g}", usd(trade.fees_usd, decimals=4), usd(trade.pnl_usd)] for trade in shown]
        parts.append(_table(["opened", "closed", "symbol", "strategy", "closed by", "exit reason", "held",
                             "entry price", "exit price", "fees", "P&L"], rows))
        parts.append(_more(len(record.trades), len(shown), "trades (--trades FILE.csv lists every one)"))
    else:
        parts.append('<p class="note">no trade closed</p>')
    sources = ", ".join(escape(s) for s in report["feed"]["sources"])
    parts.append(f'<p class="note">Input: {sources}. Times are event times in UTC.</p>')
    title = escape(f"Genesis {report['mode']} report, tier {report['tier']}: "
                   f"{range_text(report.get('data_range') or {})}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(p for p in parts if p) + "\n</body>\n</html>\n")
