"""The status document: what a screen shows about a running engine, as plain JSON.

The engine's runner publishes it to the journal about once a second and at the end of a
run (`Journal.publish_status`); `genesis status` and `genesis ui` read it back without
touching the engine. Every part is derived from the configuration and the engine's
state, so a rule book that names its steps and metrics differently is shown as it is:
the ladder is every rule condition that reads `tier.drawdown.<step>`, the tilt
indicators are the metrics `tilt_score` adds up, the gates are the promotion rules'.
"""
from __future__ import annotations

import re

from genesis.durations import format_utc
from genesis.engine import exits
from genesis.engine.engine import Engine
from genesis.engine.gates import gates

EQUITY_POINTS = 120   # minutes of equity history kept for the sparkline
_LADDER_REF = re.compile(r"tier\.drawdown\.([a-z0-9_]+)")
_SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}


def status_document(engine: Engine) -> dict:
    """Everything a status screen shows, JSON-ready (times in ms and as UTC text)."""
    m = engine.metrics.m
    return {
        "at_ms": engine.now, "at_utc": format_utc(engine.now or None), "events": engine.stats.events,
        "tier": engine.tier,
        "equity_usd": _num(m.get("equity_usd")), "peak_equity_usd": _num(m.get("peak_equity_usd")),
        "daily_pnl_usd": _num(m.get("daily_pnl_usd")),
        "drawdown_usd": _num(m.get("drawdown_usd")), "drawdown_pct": _num(m.get("drawdown_pct")),
        "equity_history": [[minute * 60_000, round(eq, 2)] for minute, eq in
                           engine.stats.equity_marks.tail(EQUITY_POINTS)],
        "ladder": ladder(engine),
        "state": trading_state(engine),
        "tilt": tilt(engine),
        "positions": positions(engine),
        "orders": open_orders(engine),
        "gates": [{"rule": rule_id, "to": _promotes_to(engine),
                   "conditions": [{"text": text, "passed": ok, "values": {n: _plain(v) for n, v in values.items()}}
                                  for text, ok, values in rows]}
                  for rule_id, rows in gates(engine)],
    }


def ladder(engine: Engine) -> list:
    """The tier's drawdown ladder, lowest step first: for each `tier.drawdown.<step>` the
    rule condition of highest severity reading it, with the amount, the metric it
    measures, its value now and whether the condition holds now (None when it reads the
    triggering event, e.g. a single trade's loss)."""
    steps = engine.config.tiers[engine.tier].get("drawdown", {})
    chosen: dict = {}
    for stage_rules in engine.ruleset.rules.values():
        for rule in stage_rules:
            for cond in rule.conditions:
                for step in _LADDER_REF.findall(cond.checked.source):
                    rank = _SEVERITY_RANK.get(rule.rule.severity, 0)
                    if step not in chosen or rank > chosen[step][0]:
                        chosen[step] = (rank, rule, cond)
    rows = []
    for step, (_, rule, cond) in chosen.items():
        measured = sorted(n for n in cond.reads if n in engine.metrics.m and n not in engine.config.flags)
        reads_event = not measured
        rows.append({"step": step.removesuffix("_usd"), "limit_usd": _num(steps.get(step)),
                     "measure": "a single trade" if reads_event else ", ".join(measured),
                     "value": None if reads_event else _num(engine.metrics.m[measured[0]]),
                     "rule": rule.rule.id, "severity": rule.rule.severity,
                     "reached": None if reads_event else _holds(cond, engine)})
    return sorted(rows, key=lambda r: (r["limit_usd"] is None, r["limit_usd"] or 0, r["rule"]))


def trading_state(engine: Engine) -> dict:
    """Mode, what holds it and how each hold or lock is lifted."""
    state, now = engine.state, engine.now
    rules = {r.rule.id: r for stage in engine.ruleset.rules.values() for r in stage}
    holds = [{"rule": rid, "kind": kind, "lift": _lift_hold(rid, kind, state.requirements, rules)}
             for rid, kind in sorted(state.holds.items())]
    locks = [{"rule": lk.rule, "symbol": lk.symbol, "reason": lk.reason, "until_ms": lk.until,
              "until_utc": format_utc(lk.until), "journal_words": lk.needs_journal_words,
              "lift": lock_lift(lk.until, lk.needs_journal_words, now)}
             for lk in state.active_locks(now)]
    return {"mode": state.mode, "size_factor": round(state.size_factor(now), 4), "holds": holds, "locks": locks,
            "awaiting": exits.describe(state.requirements)}


def tilt(engine: Engine) -> dict:
    """Tilt level and score, and each indicator the score adds up, in its own words."""
    m, metrics = engine.metrics.m, engine.config.metrics
    score = metrics.get("tilt_score")
    names = sorted(score.exprs["expr"].names) if score is not None and "expr" in score.exprs else []
    return {"level": int(m.get("tilt_level", 0)), "score": int(m.get("tilt_score", 0)),
            "calibrated": bool(m.get("tilt_calibrated", 1)),
            "indicators": [{"name": n, "showing": bool(m.get(n)),
                            "words": metrics[n].spec.get("description", n.replace("_", " "))}
                           for n in names if n in metrics]}


def positions(engine: Engine) -> list:
    """Open positions valued at the latest mid price."""
    out = []
    for symbol, pos in sorted(engine.account.positions.items()):
        if pos.qty <= 0:
            continue
        mark = engine.account.mids.get(symbol)
        basis = pos.cost_usd - pos.proceeds_usd
        out.append({"symbol": symbol, "qty": pos.qty, "entry_price": _num(basis / pos.qty),
                    "mark_price": _num(mark), "unrealised_usd": _num(pos.qty * mark - basis) if mark else None})
    return out


def open_orders(engine: Engine) -> list:
    """Orders still open on the exchange, oldest first, then the operator's orders
    waiting for their symbol's first price (no client id yet; `qty` null, `notional_usd`)."""
    orders = sorted(engine.exchange.open_orders.values(), key=lambda o: o.created_ts)
    return [{"client_id": o.client_id, "symbol": o.symbol, "side": o.side, "qty": o.remaining,
             "price": o.price, "placed_utc": format_utc(o.created_ts), "waiting": False} for o in orders] + \
        [{"client_id": "", "symbol": i.symbol, "side": i.side, "qty": None, "notional_usd": i.notional_usd,
          "price": i.limit_price, "placed_utc": "", "waiting": True} for i in engine.waiting_orders]


def _lift_hold(rid: str, kind: str, requirements: dict, rules: dict) -> str:
    required = requirements.get(rid)
    if required and required.get("kind") == "confirmation":
        return f'a typed reset: genesis reset --phrase "{required.get("phrase")}"'
    if required and required.get("kind") == "reflection":
        return f"a written reflection of at least {required['min_words']:,} words (genesis reflect)"
    rule = rules.get(rid)
    if rule is not None and any(a.action.name == "resume" for a in rule.resolve):
        when = " and ".join(c.checked.source for c in rule.conditions)
        return f"lifts by itself once {when} no longer holds"
    return "genesis override (the emergency override)"


def lock_lift(until: int, journal_words: int, now: int) -> str:
    """How a lock ends, in words: its end time and the journal entry it waits for."""
    words = f"a journal entry of at least {journal_words:,} words (genesis journal)" if journal_words else ""
    if now < until:
        return f"until {format_utc(until)}" + (f" and {words}" if words else "")
    return words


def _holds(cond, engine: Engine):
    try:
        return bool(cond.fn(engine.metrics.m, None, None))
    except (ArithmeticError, TypeError, ValueError, KeyError, AttributeError):
        return None


def _promotes_to(engine: Engine):
    return (engine.config.tiers[engine.tier].get("promotion") or {}).get("to")


def _num(value):
    return None if value is None else round(float(value), 6)


def _plain(value):
    return _num(value) if isinstance(value, (int, float)) else value


def publish(engine: Engine) -> None:
    """Store the engine's status document in its journal (none without a journal)."""
    if engine.journal is not None:
        engine.journal.publish_status(status_document(engine))
