"""What each part of `genesis ui` says, as plain text and table rows, from the status
view (`genesis.engine.status.read_view`). Pure functions: no widgets, no database, so
the words can be read and tested on their own. Missing values (a run that has not
priced anything yet) read as a dash, never as a zero."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from genesis.words import counted, usd

DASH = "-"
TILT_WORDS = {0: "calm", 1: "a gentle notice", 2: "slowing down", 3: "resting"}
_MODE_WORDS = {"ACTIVE": "open", "REDUCING": "exits only", "HALTED": "paused"}

# calm colours: sage for good news, sand for caution, a soft rose for a pause
SAGE, SAND, ROSE, MIST = "#8fbc8f", "#d8b26e", "#c9a0a0", "#8a9aa8"
MODE_COLOURS = {"ACTIVE": SAGE, "REDUCING": SAND, "HALTED": ROSE}


def price(value) -> str:
    """A price with thousands separators and no needless zeros: 61,855.36, 0.0521."""
    if value is None:
        return DASH
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:,.6g}"


def qty(value) -> str:
    """A coin quantity: up to 8 decimals, trailing zeros dropped."""
    if value is None:
        return DASH
    return f"{value:,.8f}".rstrip("0").rstrip(".")


def title(view: dict) -> str:
    """The top line: which run, how it runs, and the event time it has reached."""
    run = view.get("run") or {}
    if not run.get("id"):
        return "Genesis · no run in this journal yet: `genesis run` starts one"
    if run.get("finished"):
        life = "finished"
    else:
        life = "running" if run.get("alive") else "not running"
    parts = [f"run {run['id']}", run.get("mode") or DASH, f"tier {run.get('tier') or DASH}", life]
    return "Genesis · " + " · ".join(parts) + f"   {view.get('at_utc') or DASH}"


def account(view: dict) -> Text:
    """Equity, today's P&L and drawdown (the sparkline is its own widget)."""
    text = Text()
    text.append("equity    ", style=MIST).append(usd(view.get("equity_usd")), style="bold")
    pnl = view.get("daily_pnl_usd")
    text.append("\ntoday     ", style=MIST).append(usd(pnl, signed=True), style=SAGE if (pnl or 0) > 0 else "")
    pct = view.get("drawdown_pct")
    text.append("\ndrawdown  ", style=MIST).append(usd(view.get("drawdown_usd")))
    if pct is not None:
        text.append(f" · {pct:,.2f}%", style=MIST)
    return text


def trading(view: dict, lines: int = 4) -> Text:
    """The trading state at a glance, in at most `lines` lines: mode, size, and what
    holds it (the State tab has the details)."""
    state = view.get("state") or {}
    rows = [_mode_line(state)]
    factor = state.get("size_factor")
    if factor is not None and factor < 1:
        rows.append(Text(f"sizes at {factor:.0%}", style=SAND))
    holds, locks = state.get("holds") or [], state.get("locks") or []
    if not holds and not locks:
        rows.append(Text("nothing holds trading", style=MIST))
    reasons = [Text(f"held by {hold['rule']}") for hold in holds]
    for lock in locks:
        reasons += [Text(f"lock: {lock.get('rule') or DASH} {lock.get('symbol') or ''}".rstrip()),
                    Text(f"  until {_short_utc(lock.get('until_utc'))}", style=MIST)]
    words = journal_words_needed(view)
    if words:
        reasons.append(Text(f"  + {words:,}-word journal", style=MIST))
    room = lines - len(rows)
    if len(reasons) > room:
        reasons = reasons[:room - 1] + [Text("more: press s", style=MIST)]
    return _lines(rows + reasons)


def _mode_line(state: dict) -> Text:
    """'ACTIVE · open', 'HALTED · paused'; an ACTIVE state with a lock says what the
    lock pauses."""
    mode = state.get("mode") or DASH
    words = _MODE_WORDS.get(mode, "")
    locks = state.get("locks") or []
    if mode == "ACTIVE" and locks:
        words = "entries paused" if any(not lock.get("symbol") for lock in locks) else "some symbols paused"
    line = Text().append(mode, style=f"bold {MODE_COLOURS.get(mode, '')}".strip())
    return line.append(f" · {words}" if words else "")


def _short_utc(utc_text: str | None) -> str:
    """'2024-08-09 00:55:45 UTC' -> '08-09 00:55 UTC' (fits a narrow box)."""
    if not utc_text or len(utc_text) < 16:
        return utc_text or DASH
    return f"{utc_text[5:16]} UTC"


def _lines(rows: list[Text]) -> Text:
    """Rows joined one per line, each cut with an ellipsis rather than wrapped."""
    text = Text("\n").join(rows)
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _lock_line(lock: dict) -> str:
    where = lock.get("symbol") or "all symbols"
    return f"{where} paused until {lock.get('until_utc') or DASH}"


def state_detail(view: dict) -> Group:
    """Every hold and lock with how it lifts, and what the engine waits for."""
    state = view.get("state") or {}
    head = _mode_line(state)
    factor = state.get("size_factor")
    if factor is not None:
        head.append(f"\nsizes at {factor:.0%} of what the rules allow" if factor < 1 else "\nfull sizes",
                    style=SAND if factor < 1 else MIST)
    parts: list = [head]
    for hold in state.get("holds") or []:
        parts += [Text(), Text(f"held by {hold['rule']} ({hold.get('kind') or 'hold'})", style="bold"),
                  _facts(("to lift", hold.get("lift")))]
    for lock in state.get("locks") or []:
        parts += [Text(), Text(_lock_line(lock), style="bold"),
                  _facts(("set by", f"{lock.get('rule') or DASH}: {lock.get('reason') or DASH}"),
                         ("to lift", lock.get("lift")))]
    awaiting = state.get("awaiting") or []
    if awaiting:
        parts += [Text(), Text("waiting for you", style="bold"), _facts(*(("", line) for line in awaiting))]
    keys = [hint for wanted, hint in ((journal_words_needed(view), "j writes the journal entry"),
                                      (any("reset" in line for line in awaiting), "r types a reset phrase"))
            if wanted]
    if keys:
        parts += [Text(), Text("Keys: " + "; ".join(keys) + ".", style=SAGE)]
    if not state.get("holds") and not state.get("locks") and not awaiting:
        parts += [Text(), Text("No rule holds trading and nothing waits for you.", style=MIST)]
    return Group(*parts)


def _facts(*pairs: tuple) -> Table:
    """Label and value rows, each value wrapped under itself."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style=MIST)
    grid.add_column(ratio=1)
    for label, value in pairs:
        grid.add_row(f"  {label}" if label else " ", value or DASH)
    return grid


def tilt_summary(view: dict) -> Text:
    """Tilt level in calm words and the signs showing, by name."""
    tilt = view.get("tilt") or {}
    level = int(tilt.get("level") or 0)
    rows = [Text().append(f"level {level}", style="bold").append(f" · {TILT_WORDS.get(level, DASH)}",
                                                        style=SAGE if level == 0 else SAND)]
    if not tilt.get("calibrated", True):
        rows.append(Text("still learning your pace", style=MIST))
    showing = [i for i in tilt.get("indicators") or [] if i.get("showing")]
    if showing:
        rows.append(Text(f"{counted(len(showing), 'sign')} of pressure:", style=MIST))
        rows.append(Text(", ".join(_indicator_name(i["name"]) for i in showing)))
    else:
        rows.append(Text("no signs of pressure", style=MIST))
    return _lines(rows)


def tilt_detail(view: dict) -> Text:
    """Each indicator the tilt score adds up, showing or not, in its own words."""
    tilt = view.get("tilt") or {}
    level = int(tilt.get("level") or 0)
    showing = sum(1 for i in tilt.get("indicators") or [] if i.get("showing"))
    text = Text().append(f"level {level}", style="bold").append(f" · {TILT_WORDS.get(level, DASH)}",
                                                       style=SAGE if level == 0 else SAND)
    if tilt.get("indicators"):
        text.append(f"\n{showing:,} of {counted(len(tilt['indicators']), 'sign')} showing", style=MIST)
    if not tilt.get("calibrated", True):
        text.append("\nStill learning your usual pace: nothing intervenes during calibration.", style=MIST)
    for ind in tilt.get("indicators") or []:
        mark, style = ("●", SAND) if ind.get("showing") else ("○", MIST)
        text.append(f"\n{mark} ", style=style).append(_indicator_name(ind["name"]), style="bold" if
                                                      ind.get("showing") else "")
        text.append(f": {ind.get('words') or ''}", style="" if ind.get("showing") else MIST)
    return text


def _indicator_name(name: str) -> str:
    return name.removeprefix("ind_").replace("_", " ")


def ladder_rows(view: dict) -> list[tuple]:
    """(step, limit, how far it is now, a bar of that against the limit, reached or not,
    rule). A P&L measure counts its loss; a step that reads a single trade has no
    standing value."""
    rows = []
    for step in view.get("ladder") or []:
        limit, value, reached = step.get("limit_usd"), step.get("value"), step.get("reached")
        if value is None:
            now, bar = None, "per trade" if step.get("measure") == "a single trade" else DASH
        else:
            now = max(0.0, -value) if "pnl" in (step.get("measure") or "") else max(0.0, value)
            bar = _bar(now, limit)
        status = DASH if reached is None else ("reached" if reached else "not yet")
        rows.append((step.get("step") or DASH, usd(limit), usd(now), bar, status, step.get("rule") or DASH))
    return rows


def _bar(value: float, limit, width: int = 10) -> str:
    if not limit:
        return DASH
    filled = max(0, min(width, round(width * value / limit)))
    return "█" * filled + "░" * (width - filled)


def position_rows(view: dict) -> list[tuple]:
    """(symbol, quantity, entry price, mark price, unrealised P&L)."""
    return [(p["symbol"], qty(p.get("qty")), price(p.get("entry_price")), price(p.get("mark_price")),
             usd(p.get("unrealised_usd"), signed=True)) for p in view.get("positions") or []]


def order_rows(view: dict) -> list[tuple]:
    """(client id, symbol, side, quantity, price, placed at)."""
    return [(o["client_id"] or DASH, o.get("symbol") or DASH, o.get("side") or DASH,
             f"{usd(o.get('notional_usd'))}, waits for a price" if o.get("waiting") else qty(o.get("qty")),
             price(o.get("price")), _clock(o.get("placed_utc"), view)) for o in view.get("orders") or []]


def decisions_text(view: dict):
    """Recent decisions and refusals with their reasons, newest first."""
    items = [(_clock(d.get("at_utc"), view), None, d.get("text") or d.get("kind"), _KIND_STYLES.get(d.get("kind")))
             for d in reversed(view.get("decisions") or [])]
    return _listing(items, "No decisions yet.")


def alerts_text(view: dict):
    """Recent alerts, newest first."""
    items = [(_clock(a.get("at_utc"), view), " · ".join(p for p in (a.get("severity"), a.get("rule")) if p),
              a.get("text"), _KIND_STYLES.get(a.get("severity"))) for a in reversed(view.get("alerts") or [])]
    return _listing(items, "No alerts. All quiet.")


def commands_text(view: dict):
    """Operator commands and the engine's answers, newest first."""
    items = [(f"#{c['id']}", f"{c.get('kind') or DASH} · {c.get('status') or DASH}", c.get("result"),
              _KIND_STYLES.get(c.get("status"))) for c in reversed(view.get("commands") or [])]
    return _listing(items, "No operator commands yet.")


def _listing(items: list[tuple], empty: str):
    """A two-column list: when, then a heading line (if any) and the words, wrapped
    under themselves rather than under the time."""
    if not items:
        return Text(empty, style=MIST)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style=MIST)
    grid.add_column(ratio=1)
    for when, heading, words, style in items:
        body = Text()
        if heading:
            body.append(heading, style=style or "bold").append("\n" if words else "")
        body.append(words or "", style=MIST if heading else (style or ""))
        grid.add_row(when, body)
    return grid


_KIND_STYLES = {"refused": SAND, "warning": f"bold {SAND}", "critical": f"bold {ROSE}", "applied": f"bold {SAGE}",
                "queued": "bold"}


def gates_text(view: dict) -> Text:
    """Each promotion gate: its conditions, met or not with their values now, and how
    many are met."""
    text = Text()
    for gate in view.get("gates") or []:
        conditions = gate.get("conditions") or []
        passed = sum(1 for c in conditions if c.get("passed"))
        if text:
            text.append("\n\n")
        text.append(f"promotion to {gate['to']}" if gate.get("to") else gate.get("rule") or DASH, style="bold")
        text.append(f" · {passed:,} of {counted(len(conditions), 'condition')} met", style=MIST)
        for cond in conditions:
            mark, style = ("✓", SAGE) if cond.get("passed") else ("·", MIST)
            text.append(f"\n {mark} ", style=style).append(cond.get("text") or "")
            values = cond.get("values") or {}
            if values:
                text.append(" (now " + ", ".join(_value(name, v, len(values) > 1) for name, v in
                                                 sorted(values.items())) + ")", style=MIST)
    return text or Text("This tier has no promotion gate.", style=MIST)


def _value(name: str, value, named: bool) -> str:
    shown = f"{value:,.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return f"{name} {shown}" if named else shown


def journal_words_needed(view: dict) -> int:
    """The words a journal entry needs to lift the locks waiting for one (0: none waits)."""
    return max((int(lock.get("journal_words") or 0) for lock in (view.get("state") or {}).get("locks") or []),
               default=0)


def word_count(text: str) -> int:
    """Words as the engine counts them in a journal entry (split on white space)."""
    return len(text.split())


def _clock(utc_text: str | None, view: dict) -> str:
    """'2024-08-09 00:54:45 UTC' -> '00:54:45' on the view's own day (the title shows
    it), '08-08 23:10' on another."""
    if not utc_text:
        return DASH
    parts = utc_text.split()
    if len(parts) < 2:
        return utc_text
    if parts[0] == (view.get("at_utc") or "")[:10]:
        return parts[1]
    return f"{parts[0][5:]} {parts[1][:5]}"
