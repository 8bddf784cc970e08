"""`genesis status`: the state of the latest run, read from the journal alone."""
from __future__ import annotations

import json
import os
from collections import defaultdict

from sqlalchemy import func, inspect, select

from sqlalchemy.exc import DatabaseError, OperationalError

from genesis.engine.journal import Journal, JournalError, _describe, entries, progress, runs


def read_status(url: str) -> str:
    """A short text: tier, equity, drawdown, trading state, locks, open orders, positions."""
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        raise JournalError(f"no journal at {url}: nothing has run yet (start with `genesis run`)")
    journal = Journal(url, create=False)  # reading must never write into someone else's database
    try:
        return _summarise(journal)
    except (DatabaseError, OperationalError) as exc:
        raise JournalError(_describe(exc, url)) from None
    finally:
        journal.engine.dispose()


def _summarise(journal: Journal) -> str:
    with journal.engine.connect() as conn:
        if not inspect(conn).has_table("runs"):
            raise JournalError("this database holds no Genesis journal")
        run = conn.execute(select(runs).order_by(runs.c.id.desc())).first()
        if run is None:
            return "no runs in this journal yet"
        prog = conn.execute(select(progress).where(progress.c.run_id == run.id)).first()
        rows = conn.execute(select(entries).where(entries.c.run_id == run.id).order_by(entries.c.seq)).all()
        total = conn.execute(select(func.count()).select_from(entries)).scalar()
    tier, mode = run.tier, "ACTIVE"
    holdings: dict = defaultdict(float)
    orders: dict = {}
    locks: dict = {}
    last_ts = prog.ts if prog else 0
    decisions = []
    for row in rows:
        data = json.loads(row.data)
        last_ts = max(last_ts, row.ts)
        if row.kind == "state" and "mode" in data:
            mode = data["mode"]
        elif row.kind == "tier" and "tier" in data:
            tier = data["tier"]
        elif row.kind == "order":
            orders[data["client_id"]] = (row.symbol, data["side"], data["qty"])
        elif row.kind == "fill":
            # live: a buy's fee can be taken from the coins bought
            holdings[row.symbol] += data["qty"] - data.get("fee_base", 0.0) if data["side"] == "buy" else -data["qty"]
            orders.pop(data.get("client_id"), None)
        elif row.kind == "action" and "lock" in data:
            locks[(data["lock"]["rule"], data["lock"]["symbol"])] = data["lock"]
        elif row.kind == "lock_released":
            locks.pop((data.get("rule"), row.symbol), None)
        if row.kind in ("fire", "refused", "intent"):
            decisions.append(f"{row.kind} {row.rule} {row.symbol}".strip())
    equity = f"${prog.equity:,.2f}" if prog else "unknown"
    lines = [f"run {run.id} ({run.mode}, {'finished' if run.finished else 'not finished'}), tier {tier}",
             f"equity {equity}, trading state {mode}, {total} journal entries",
             "locks: " + (", ".join(f"{lk['reason']} until {lk['until']}" for lk in locks.values()
                                    if lk["until"] > last_ts or lk.get("needs_journal_words")) or "none"),
             "positions: " + (", ".join(f"{s} {q:.8f}" for s, q in holdings.items() if q > 1e-9) or "none"),
             "last decisions: " + ("; ".join(decisions[-5:]) or "none")]
    return "\n".join(lines)
