"""Operator commands applied to a running engine, each turned into events and actions
at the current event time so that a replay of the journal re-applies them exactly.

Commands: order (manual buy/sell, market or resting limit, with a written reason when a
rule requires one; refused for a symbol without market rules, and kept until its symbol
has a price when it has none yet), cancel, amend (move a resting order to a new price),
override (typed confirmation phrase, refused during the cooldown an accepted override
starts, logged either way), reset (the phrase a halt's `require: confirmation` declares:
lifts that halt only), reflect (a written reflection: a tier change waiting for one
applies), journal (a journal entry; lifts journal-gated locks), life (a life event that
lowers tilt sensitivity for some days), connect and disconnect (operator sessions),
silence and unsilence (a rule's notifications are journaled but not delivered until a
time: `genesis silence RULE 2h --reason TEXT`).

`observe` is not the operator's: it is how a measurement taken on the wall clock outside
the pipeline (host health, journal query time, a failed notification or log write)
enters the engine. It is queued like a command and applied in turn as the event it
names, so it is journaled at the point it was applied and a recovery replays it there.
"""
from __future__ import annotations

from datetime import datetime, timezone

from genesis.config.problems import suggestion
from genesis.durations import parse_duration
from genesis.engine import exits
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.strategies import OrderIntent
from genesis.vocabulary import BOOL, EVENTS, NUMBER, OBSERVED_EVENTS
from genesis.words import counted

KINDS = ("order", "cancel", "amend", "override", "reset", "reflect", "journal", "life", "connect", "disconnect",
         "silence", "unsilence", "observe", "notify_failure")


def _emit(engine: Engine, kind: str, symbol: str = "", fields: dict | None = None) -> None:
    """Run the command's event now, at the current event time."""
    engine.process(Event(kind, engine.now, symbol, fields or {}), at_now=True)


def _reason_needed(engine: Engine) -> int:
    """Words a manual order's reason needs now (0: none required)."""
    needed = [r["min_words"] for r in engine.state.requirements.values() if r.get("kind") == "reason"]
    return max(needed, default=0)


def apply_command(engine: Engine, kind: str, payload: dict) -> tuple[str, str]:
    """Apply one command; returns ('applied' | 'refused', message for the operator)."""
    if kind == "connect":
        _emit(engine, "operator_connect")
        return "applied", "session started"
    if kind == "disconnect":
        _emit(engine, "operator_disconnect")
        return "applied", "session ended"
    if kind == "journal":
        words = len(str(payload.get("text", "")).split())
        locked_before = len([lk for lk in engine.state.locks if lk.needs_journal_words])
        _emit(engine, "journal_entry", fields={"words": words})
        freed = locked_before - len([lk for lk in engine.state.locks if lk.needs_journal_words])
        tail = (f"; {'the lock' if freed == 1 else f'{freed} locks'} waiting for it will end when "
                f"{'its' if freed == 1 else 'their'} time is up") if freed else ""
        return "applied", f"journal entry of {counted(words, 'word')} recorded{tail}"
    if kind == "life":
        days = float(payload.get("days", 0))
        _emit(engine, "life_event", fields={"days": days})
        return "applied", f"life event recorded: tilt thresholds are one higher for {counted(days, 'day')}"
    if kind == "override":
        return _override(engine, str(payload.get("phrase", "")))
    if kind == "reset":
        return exits.reset(engine, str(payload.get("phrase", "")), str(payload.get("rule") or ""))
    if kind == "reflect":
        return exits.reflect(engine, str(payload.get("text", "")))
    if kind == "cancel":
        cid = str(payload.get("client_id", ""))
        if cid not in engine.exchange.open_orders:
            return "refused", f"no open order {cid!r}"
        # paper cancels at once; live, the exchange confirms on the user-data stream
        done = engine.cancel(cid)
        return "applied", f"order {cid} cancelled" if done else f"cancel of order {cid} sent"
    if kind == "amend":
        cid = str(payload.get("client_id", ""))
        try:
            price = float(payload.get("price"))
        except (TypeError, ValueError):
            return "refused", "amend needs a new price"
        amended = engine.amend(cid, price)
        if amended.problem:
            return "refused", amended.problem
        left = engine.exchange.open_orders.get(cid)
        if getattr(left, "amend_price", None) is not None:   # live: the exchange's answer comes later
            return "applied", f"amend of order {cid} to {left.amend_price:g} sent (cancel, then a new order)"
        where = (f"now resting at {left.price:g}" if left else "filled at once at the new price" if amended.filled
                 else "then cancelled by a rule the amendment set off (genesis status shows which)")
        return "applied", f"order {cid} amended: {where}"
    if kind == "order":
        return _order(engine, payload)
    if kind == "silence":
        return _silence(engine, payload)
    if kind == "observe":
        return observe(engine, str(payload.get("event", "")), payload.get("fields") or {})
    if kind == "notify_failure":   # as journals written before `observe` queued it
        return observe(engine, "notify_failure", payload)
    if kind == "unsilence":
        rule = str(payload.get("rule", ""))
        if engine.silences.pop(rule, None) is None:
            return "refused", f"{rule} is not silenced"
        return "applied", f"notifications of {rule} are delivered again"
    return "refused", f"unknown command {kind!r}"


def observe(engine: Engine, event: str, raw: dict) -> tuple[str, str]:
    """Process a measurement as the event `event` (one of vocabulary.OBSERVED_EVENTS) with
    its declared fields typed; refused when the kind is not an observation or a number
    is missing (a missing reading must never look like a zero)."""
    if event not in OBSERVED_EVENTS:
        return "refused", f"{event!r} is not an observation (one of {', '.join(OBSERVED_EVENTS)})"
    fields: dict = {}
    for name, (typ, _text) in EVENTS[event][1].items():
        value = raw.get(name)
        if typ == NUMBER:
            try:
                fields[name] = float(value)
            except (TypeError, ValueError):
                return "refused", f"{event} needs a number in {name!r}, got {value!r}"
        elif typ == BOOL:
            fields[name] = bool(value)
        else:
            fields[name] = "" if value is None else str(value)
    said = f"{event}: " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
    _emit(engine, event, fields=fields)
    return "applied", said


def _silence(engine: Engine, payload: dict) -> tuple[str, str]:
    """Silence a rule's notifications for a while: still journaled, not delivered."""
    rule = str(payload.get("rule", ""))
    reason = str(payload.get("reason", "")).strip()
    if rule not in engine.rules.by_id:
        return "refused", f"unknown rule {rule!r}{suggestion(rule, list(engine.rules.by_id))}"
    if not reason:
        return "refused", "a silence needs a reason (--reason TEXT)"
    try:
        seconds = parse_duration(str(payload.get("duration", "")))
    except ValueError as exc:
        return "refused", str(exc)
    if seconds <= 0:
        return "refused", "a silence needs a duration above zero (e.g. 2h)"
    until = engine.now + int(seconds * 1000)
    engine.silences[rule] = (until, reason)
    when = datetime.fromtimestamp(until / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "applied", f"notifications of {rule} silenced until {when} (event time): {reason}"


def _override(engine: Engine, phrase: str) -> tuple[str, str]:
    safety = engine.config.files.settings.data["safety"]
    expected = safety["override_phrase"]
    cooldown_ms = int(parse_duration(safety["override_cooldown"]) * 1000)
    last = engine.last_override
    # only an accepted override starts the cooldown: a mistyped phrase changes nothing
    if phrase != expected:
        accepted, why = False, ("the confirmation phrase does not match (genesis.yaml safety.override_phrase); "
                                "nothing was changed")
    elif last is not None and engine.now - last < cooldown_ms:
        hours = (last + cooldown_ms - engine.now) / 3_600_000
        accepted, why = False, (f"an override was accepted within the last {safety['override_cooldown']}; the next "
                                f"is possible at {_utc(last + cooldown_ms)} (in {hours:.1f} h); nothing was changed")
    else:
        accepted, why = True, (f"override accepted: every halt and lock is lifted; the next override is possible "
                               f"after {safety['override_cooldown']} (at {_utc(engine.now + cooldown_ms)})")
    _emit(engine, "override_attempt", fields={"accepted": accepted})  # logged either way
    if accepted:
        engine.last_override = engine.now
        # every hold and lock ends, and the typed resets their halts waited for; lifted locks
        # end like expired ones: what follows a lock (re-entry) follows
        engine.change_state("lift_all", "override")
    return ("applied" if accepted else "refused"), why


def _utc(ms: int) -> str:
    """An event time as people read it: 2024-08-09 23:55 UTC."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def unknown_symbol(symbol: str, markets, traded=()) -> str | None:
    """Why an order for `symbol` could never be sent (no market rules for it, and not one
    of `traded`: the configuration's symbols, whose rules a live run takes from the
    exchange), or None."""
    if symbol in markets or symbol in traded:
        return None
    return f"unknown symbol {symbol}: Genesis has market rules for {', '.join(sorted({*markets.symbols, *traded}))}"


def _order(engine: Engine, payload: dict) -> tuple[str, str]:
    symbol, side = str(payload["symbol"]).upper(), str(payload["side"])
    notional = float(payload["notional_usd"])
    what = f"{side} {symbol} ${notional:,.2f}"
    unknown = unknown_symbol(symbol, engine.markets)
    if unknown:
        return "refused", f"{what}: {unknown}"
    reason = str(payload.get("reason", "")).strip()
    # whether the reason is long enough is decided here; refusing is the engine's job, so
    # that the refusal is journaled and counted like every other
    has_reason = bool(reason) and len(reason.split()) >= max(_reason_needed(engine), 1)
    limit = float(payload.get("limit") or 0) or None
    held = engine.account.positions.get(symbol)
    if side == "sell" and (held is None or held.qty <= 0):
        return "refused", f"{what}: nothing to sell (no {symbol} position)"
    best = engine.exchange.best(symbol)
    price = limit or ((best[1] if side == "buy" else best[0]) if best else float(payload.get("price") or 0))
    intent = OrderIntent("operator", symbol, side, notional, price, "manual", side == "buy",
                         manual=True, has_reason=has_reason, limit_price=limit)
    if not price:   # a known symbol whose market data has not come yet (the start of a run)
        engine.submit_when_priced(intent)
        return "applied", f"{what} waits: {symbol} has no price yet; the order is decided as soon as it has one"
    if side == "sell":
        intent.notional_usd = notional = min(notional, held.qty * price)
        what = f"{side} {symbol} ${notional:,.2f}"
    result = engine.submit(intent)
    if result.refused_by:
        return "refused", f"{what}: {result.reason}"
    return "applied", f"{what}: {_sent_text(engine, result, limit)}"


def _sent_text(engine: Engine, result, limit: float | None) -> str:
    """What left for a decided order: exactly the orders sent, the slices of a sliced
    order that wait (scheduled), and a resting limit order's id."""
    resting = [cid for cid in result.sent if cid in engine.exchange.open_orders and limit]
    text = f"{counted(len(result.sent), 'order')} sent ({', '.join(result.sent)})" if result.sent else "no order sent"
    if result.scheduled:
        text += f"; {counted(len(result.scheduled), 'slice')} scheduled ({', '.join(result.scheduled)})"
    if resting:
        text += f"; resting: {', '.join(resting)} (amend or cancel by id)"
    return text
