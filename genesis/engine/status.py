"""`genesis status`: the state of the latest run, read from the journal alone.

`read_view` gathers it (the run, whether an engine is beating on the journal, the
engine's latest status document, recent decisions, alerts and commands) as one
JSON-ready dict; `genesis status --json` prints it, `format_status` writes it for an
80-column terminal and `genesis ui` draws it. A journal written without status documents
(an engine driven in-process) still gives equity, state, locks, positions and orders,
rebuilt from its entries.
"""
from __future__ import annotations

import json
import os
import textwrap
import time
from collections import defaultdict

from sqlalchemy import func, inspect, select
from sqlalchemy.exc import DatabaseError, OperationalError

from genesis.durations import format_utc
from genesis.engine.commandqueue import ALIVE_MS
from genesis.engine.journal import (Journal, JournalError, commands, describe_error, entries, heartbeat, progress,
                                    runs, url_problem)
from genesis.engine.journal import status as status_docs
from genesis.engine.statusdoc import lock_lift
from genesis.words import counted, usd

RECENT = 8             # decisions and alerts shown
DECISION_KINDS = ("fire", "refused", "intent")
LABEL = 11             # width of the label column of the text form


def read_view(url: str) -> dict:
    """Everything `genesis status` and `genesis ui` show about the latest run."""
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        raise JournalError(f"no journal at {url}: nothing has run yet (start with `genesis run`)")
    problem = url_problem(url)
    if problem:
        raise JournalError(problem)
    journal = Journal(url, create=False)  # reading must never write into someone else's database
    try:
        with journal.engine.connect() as conn:
            return _gather(conn)
    except (DatabaseError, OperationalError) as exc:
        raise JournalError(describe_error(exc, url)) from None
    finally:
        journal.engine.dispose()


def _gather(conn) -> dict:
    tables = inspect(conn)
    if not tables.has_table("runs"):
        raise JournalError("this database holds no Genesis journal")
    run = conn.execute(select(runs).order_by(runs.c.id.desc())).first()
    if run is None:
        return {"run": None}
    prog = conn.execute(select(progress).where(progress.c.run_id == run.id)).first()
    doc_row = (conn.execute(select(status_docs.c.doc).where(status_docs.c.run_id == run.id)).first()
               if tables.has_table("status") else None)
    beat = conn.execute(select(func.max(heartbeat.c.wall_ms)).where(heartbeat.c.run_id == run.id)).scalar()
    rows = conn.execute(select(entries).where(entries.c.run_id == run.id).order_by(entries.c.seq)).all()
    total = conn.execute(select(func.count()).select_from(entries).where(entries.c.run_id == run.id)).scalar()
    recent_commands = conn.execute(select(commands).where(commands.c.kind.notin_(("connect", "disconnect", "observe",
                                                                                  "notify_failure")))
                                   .order_by(commands.c.id.desc()).limit(5)).all()
    view = _from_entries(rows, prog)
    if doc_row is not None:
        view.update(json.loads(doc_row.doc))
    age_ms = time.time() * 1000 - beat if beat else None
    view["run"] = {"id": run.id, "mode": run.mode, "tier": view.get("tier") or run.tier, "finished": bool(run.finished),
                   "alive": age_ms is not None and age_ms < ALIVE_MS and not run.finished,
                   "heartbeat_age_s": round(age_ms / 1000, 1) if age_ms is not None else None,
                   "feed": [os.path.basename(p) for p in json.loads(run.feed_paths)]}
    view["journal_entries"] = total
    view["commands"] = [{"id": c.id, "kind": c.kind, "status": c.status, "result": c.result}
                        for c in recent_commands]
    return view


def _from_entries(rows, prog) -> dict:
    """What the entries alone tell (decisions and alerts always come from here)."""
    mode, tier = "ACTIVE", None
    holdings: dict = defaultdict(float)
    orders: dict = {}
    locks: dict = {}
    decisions, alerts = [], []
    last_ts = prog.ts if prog else 0
    for row in rows:
        data = json.loads(row.data)
        last_ts = max(last_ts, row.ts)
        if row.kind == "state" and "mode" in data:
            mode = data["mode"]
        elif row.kind == "tier" and "tier" in data:
            tier = data["tier"]
        elif row.kind == "order":
            orders[data["client_id"]] = {"client_id": data["client_id"], "symbol": row.symbol, "side": data["side"],
                                         "qty": data["qty"], "price": data.get("price"),
                                         "placed_utc": format_utc(row.ts)}
        elif row.kind == "fill":
            # live: a buy's fee can be taken from the coins bought
            holdings[row.symbol] += data["qty"] - data.get("fee_base", 0.0) if data["side"] == "buy" else -data["qty"]
            orders.pop(data.get("client_id"), None)
        elif row.kind in ("order_canceled", "order_rejected", "order_expired"):
            orders.pop(data.get("client_id"), None)
        elif row.kind == "action" and "lock" in data:
            locks[(data["lock"]["rule"], data["lock"]["symbol"])] = data["lock"]
        elif row.kind == "lock_released":
            locks.pop((data.get("rule"), row.symbol), None)
        elif row.kind == "action" and data.get("action") == "notify":
            alerts.append({"at_utc": format_utc(row.ts), "severity": data.get("severity", ""), "rule": row.rule,
                           "text": data.get("text", "")})
        if row.kind in DECISION_KINDS:
            decisions.append({"at_utc": format_utc(row.ts), "kind": row.kind, "rule": row.rule, "symbol": row.symbol,
                              "text": _decision_text(row.kind, row.rule, row.symbol, data)})
    equity = prog.equity if prog else None
    shown_locks = [{"rule": lk["rule"], "symbol": lk["symbol"], "reason": lk["reason"], "until_ms": lk["until"],
                    "until_utc": format_utc(lk["until"]), "journal_words": lk.get("needs_journal_words", 0),
                    "lift": lock_lift(lk["until"], lk.get("needs_journal_words", 0), last_ts)}
                   for lk in locks.values() if lk["until"] > last_ts or lk.get("needs_journal_words")]
    return {"at_ms": last_ts or None, "at_utc": format_utc(last_ts or None), "events": prog.events if prog else 0,
            "tier": tier, "equity_usd": equity,
            "state": {"mode": mode, "holds": [], "locks": shown_locks, "awaiting": []},
            "positions": [{"symbol": s, "qty": q, "entry_price": None, "mark_price": None, "unrealised_usd": None}
                          for s, q in sorted(holdings.items()) if q > 1e-9],
            "orders": list(orders.values()), "decisions": decisions[-RECENT:], "alerts": alerts[-RECENT:]}


def _decision_text(kind: str, rule: str, symbol: str, data: dict) -> str:
    where = f" on {symbol}" if symbol else ""
    if kind == "refused":
        side = f"{data.get('side', '')} {symbol} ${data.get('notional_usd', 0):,.2f}".strip()
        return f"{side} refused by {rule}: {data.get('refused', '')}"
    if kind == "intent":
        return (f"{rule} {data.get('side', '')} {symbol} ${data.get('notional_final', data.get('notional_usd', 0)):,.2f}"
                f" ({data.get('algo', 'market')})")
    return f"{rule} fired{where}"


# ---------------------------------------------------------------------------- text
def format_status(view: dict, width: int = 80) -> str:
    """The view as labelled lines wrapped to `width` columns."""
    run = view.get("run")
    if run is None:
        return "no runs in this journal yet"
    lines = [f"run {run['id']} ({run['mode']}, {'finished' if run['finished'] else 'not finished'}), "
             f"tier {run['tier']}"]
    add = _adder(lines, width)
    add("", _liveness(run, view))
    equity = view.get("equity_usd")
    state = view.get("state") or {}
    lines.append(f"equity {usd(equity) if equity is not None else 'unknown'}, trading state "
                 f"{state.get('mode', 'ACTIVE')}, {view.get('journal_entries', 0):,} journal entries")
    if view.get("daily_pnl_usd") is not None:
        add("today", f"P&L {usd(view['daily_pnl_usd'], signed=True)}; drawdown {usd(view['drawdown_usd'])} "
                     f"({view['drawdown_pct']:.2f}%) from the peak of {usd(view['peak_equity_usd'])}")
    if view.get("ladder"):
        add("ladder", "; ".join(_step(s) for s in view["ladder"]))
    _state_lines(add, state)
    tilt = view.get("tilt")
    if tilt:
        showing = [i["words"] for i in tilt["indicators"] if i["showing"]]
        add("tilt", f"level {tilt['level']} of 3, {counted(len(showing), 'sign')} of pressure showing"
                    + ("" if tilt["calibrated"] else " (still learning your habits: nothing intervenes yet)"))
        for words in showing:
            add("", "- " + words)
    add("positions", "; ".join(_position(p) for p in view.get("positions", [])) or "none")
    add("orders", "; ".join(_order(o) for o in view.get("orders", [])) or "none")
    for gate in view.get("gates", []):
        passed = sum(1 for c in gate["conditions"] if c["passed"])
        add("promotion", f"to {gate['to']}: {passed} of {len(gate['conditions'])} gates hold "
                         "(genesis tier lists each)")
    for item in view.get("decisions", [])[-5:]:
        add("decided", f"{item['at_utc'][11:19]} {item['text']}")
    for item in view.get("alerts", [])[-3:]:
        add("alert", f"{item['at_utc'][11:19]} {item['severity']}: {item['text']}")
    queued = [c for c in view.get("commands", []) if c["status"] == "queued"]
    if queued:
        add("queued", ", ".join(f"#{c['id']} {c['kind']}" for c in queued) + " (applied in order when the engine "
                      "reads them)")
    return "\n".join(lines)


def _adder(lines: list, width: int):
    def add(label: str, text: str) -> None:
        lines.extend(textwrap.wrap(text, width=width, initial_indent=f"{label:<{LABEL}}",
                                   subsequent_indent=" " * LABEL, break_on_hyphens=False) or [label])
    return add


def _liveness(run: dict, view: dict) -> str:
    at = f"event time {view.get('at_utc', '-')} after {view.get('events', 0):,} events"
    if run["alive"]:
        return f"{at}; an engine is running on this journal (last heartbeat {run['heartbeat_age_s']:.1f} s ago)"
    if run["finished"]:
        return f"{at}; the run finished: the next `genesis run` starts a new run"
    return f"{at}; no engine is running on this journal: the same `genesis run` command resumes this run"


def _state_lines(add, state: dict) -> None:
    factor = state.get("size_factor")
    if factor is not None and factor != 1:
        add("sizes", f"{factor:.0%} of normal")
    for hold in state.get("holds", []):
        kind = "halted" if hold["kind"] == "halt" else "only exposure-reducing orders"
        add("held by", f"{hold['rule']} ({kind}): lifted by {hold['lift']}")
    for lock in state.get("locks", []):
        scope = lock["symbol"] or "all symbols"
        add("locked", f"{lock['reason']} ({scope}): {lock['lift']}")
    for line in state.get("awaiting", []):
        add("awaiting", line)


def _step(step: dict) -> str:
    text = f"{step['step']} {usd(step['limit_usd'], decimals=0 if step['limit_usd'] == int(step['limit_usd']) else 2)}"
    if step["value"] is None:
        return text + f" ({step['measure']})"
    mark = " reached" if step["reached"] else ""
    return text + f" ({step['measure']} {step['value']:,.2f}{mark})"


def _order(o: dict) -> str:
    if o.get("waiting"):
        return f"{o['side']} {usd(o['notional_usd'])} of {o['symbol']} waits for its first price"
    return f"{o['client_id']} {o['side']} {o['qty']:.8g} {o['symbol']}" + (f" at {o['price']:,.8g}" if o.get("price")
                                                                          else "")


def _position(p: dict) -> str:
    text = f"{p['symbol']} {p['qty']:.8f}"
    if p.get("entry_price"):
        text += f" from {p['entry_price']:,.2f}"
    if p.get("unrealised_usd") is not None:
        text += f", unrealised {usd(p['unrealised_usd'], signed=True)}"
    return text
