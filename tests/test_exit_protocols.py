"""Each tier's halt exit protocol ends as README's Tiers table says, through the real
engine, the shipped rule books and the operator commands: Sniper's stop ends at 00:00
UTC, Hunter's halt at the typed reset (`genesis reset`), Strategist's lockout after 24 h
and a 500-word journal entry; a promotion waits for its written reflection
(`genesis reflect`), and `genesis tier` names what is awaited."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.journal import Journal
from genesis.engine.operator import apply_command
from genesis.engine.state import ACTIVE, HALTED, REDUCING
from genesis.engine.tierview import format_tier

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
MIDNIGHT = 1_723_161_600_000    # 2024-08-09 00:00:00 UTC
S, H = 1000, 3_600_000
BTC = "BTCUSDT"
HUNTER_PHRASE = "I have reviewed the drawdown and reset the halt"


def engine_for(tier: str, equity: float) -> Engine:
    journal = Journal("sqlite://")
    journal.open_run(tier, "test", "test", [], "test")
    return Engine(check_config(ROOT), tier, journal=journal, starting_equity=equity)


def ticker(ts: int, mid: float) -> Event:
    mid = round(mid, 2)   # on the exchange's tick
    return Event("book_ticker", ts, BTC, {"bid": mid - 0.01, "bid_qty": 50.0, "ask": mid + 0.01, "ask_qty": 50.0,
                                          "mid": mid, "spread_bps": 0.02 / mid * 1e4})


def sold_down_to(ts: int, price: float, qty: float = 5.0) -> Event:
    """A public sale printing at `price` (it trades through resting buys above it)."""
    return Event("trade", ts, BTC, {"price": price, "qty": qty, "notional_usd": price * qty, "aggressor": "sell"})


def buy(engine: Engine, usd: float) -> tuple[str, str]:
    return apply_command(engine, "order", {"side": "buy", "symbol": BTC, "notional_usd": usd, "reason": "plan"})


def bought(engine: Engine, usd: float, ts: int, mid: float = 60_000.0) -> int:
    """A manual buy at `ts`, then a flat minute with sales a tick under the bid every second,
    so that every slice has gone out and filled (an iceberg's rest at the bid); returns the time."""
    status, said = buy(engine, usd)
    assert status == "applied", said
    for _ in range(60):
        ts += S
        engine.process(ticker(ts, mid))
        engine.process(sold_down_to(ts, round(mid, 2) - 0.02))
    assert not engine.scheduled and not engine.algos and engine.account.positions[BTC].qty > 0
    return ts


def crash(engine: Engine, ts: int, rule: str, mid: float = 60_000.0) -> tuple[int, float]:
    """The price falls 0.25% a second until `rule` fires; returns (time, price)."""
    while engine.stats.firings[rule] == 0:
        mid *= 0.9975
        ts += S
        engine.process(ticker(ts, mid))
        assert mid > 10_000, f"{rule} never fired"
    return ts, mid


def started(engine: Engine) -> int:
    for i in range(5):
        engine.process(ticker(T0 + i * S, 60_000.0))
    return T0 + 4 * S


def test_sniper_halts_on_a_drawdown_and_trades_again_after_midnight_utc():
    engine = engine_for("sniper", 10_000)
    ts = bought(engine, 499, started(engine))
    ts, mid = crash(engine, ts, "drawdown_halt_automatic")
    assert engine.stats.firings["drawdown_critical"] == 1 and engine.state.mode == REDUCING
    assert BTC not in engine.account.positions           # the halt closed the position
    assert engine.metrics.m["drawdown_since_rebase_usd"] >= 75
    assert buy(engine, 100)[0] == "refused"
    engine.process(ticker(MIDNIGHT - S, mid))
    assert engine.state.mode == REDUCING and buy(engine, 100)[0] == "refused"   # still the halt's day

    engine.process(ticker(MIDNIGHT + S, mid))
    assert engine.state.mode == ACTIVE and not engine.state.holds, engine.state.holds   # no REDUCING left over
    assert not engine.state.active_locks(engine.now)
    m = engine.metrics.m
    assert m["drawdown_since_rebase_usd"] == 0 and m["peak_since_rebase_usd"] == m["equity_usd"]
    assert m["drawdown_usd"] >= 75                        # the all-time peak is unchanged (the hard stop's)
    assert engine.stats.firings["drawdown_reference_after_lock"] == 1
    status, said = buy(engine, 100)
    assert status == "applied" and "1 order sent" in said, said


def test_hunter_halt_waits_for_the_typed_reset_then_trading_resumes():
    engine = engine_for("hunter", 40_000)
    ts = bought(engine, 2_000, started(engine))
    ts, mid = crash(engine, ts, "drawdown_halt_manual_reset")
    assert engine.state.mode == HALTED
    assert engine.state.requirements["drawdown_halt_manual_reset"]["phrase"] == HUNTER_PHRASE
    for t in range(ts + S, ts + 120 * S, S):              # the close's slices go out
        engine.process(ticker(t, mid))
    engine.process(ticker(MIDNIGHT + H, mid))             # the next day: still halted
    assert engine.state.mode == HALTED and buy(engine, 100)[0] == "refused"
    attempts = engine.metrics.m["override_attempts_24h"]

    assert apply_command(engine, "reset", {"phrase": "let me trade"}) == (
        "refused", f'the phrase does not match the one the halt asks for (drawdown_halt_manual_reset: '
                   f'"{HUNTER_PHRASE}"); nothing was changed')
    assert engine.state.mode == HALTED
    assert apply_command(engine, "reset", {"phrase": HUNTER_PHRASE, "rule": "hard_stop_drawdown"})[1] == \
        "hard_stop_drawdown does not wait for a reset (waiting: drawdown_halt_manual_reset)"
    status, said = apply_command(engine, "reset", {"phrase": HUNTER_PHRASE})
    assert (status, said) == ("applied", "reset of drawdown_halt_manual_reset accepted; trading state is ACTIVE")
    assert engine.state.mode == ACTIVE and "drawdown_halt_manual_reset" not in engine.state.requirements
    assert engine.metrics.m["override_attempts_24h"] == attempts   # not an override attempt
    assert engine.stats.firings["drawdown_reference_after_reset"] == 1
    assert apply_command(engine, "reset", {"phrase": HUNTER_PHRASE}) == ("refused", "nothing waits for a reset")
    status, said = buy(engine, 100)
    assert status == "applied" and " sent (g" in said, said
    engine.journal.flush()
    resets = [json.loads(r.data) for r in engine.journal.entries() if r.kind == "halt_reset"]
    assert [r["rule"] for r in resets] == ["drawdown_halt_manual_reset"]


def test_strategist_lockout_ends_after_24_hours_and_a_500_word_journal_entry():
    engine = engine_for("strategist", 100_000)
    ts = bought(engine, 5_000, started(engine))
    ts, mid = crash(engine, ts, "drawdown_halt_lockout")
    for t in range(ts + S, ts + 600 * S, 10 * S):         # the close's slices go out
        engine.process(ticker(t, mid))
    engine.process(ticker(ts + 24 * H + S, mid))
    assert engine.state.active_locks(engine.now) and buy(engine, 100)[0] == "refused"   # 24 h alone: no
    assert apply_command(engine, "journal", {"text": "bad day"})[0] == "applied"
    engine.process(ticker(ts + 25 * H, mid))
    assert engine.state.active_locks(engine.now)           # too short
    assert apply_command(engine, "journal", {"text": " ".join(["lesson"] * 500)})[0] == "applied"
    engine.process(ticker(ts + 25 * H + S, mid))
    assert not engine.state.active_locks(engine.now) and engine.state.mode == ACTIVE, engine.state.snapshot()
    assert engine.stats.firings["drawdown_reference_after_lock"] >= 1
    status, said = buy(engine, 100)
    assert status == "applied", said


GATES = {"days_at_tier": 30, "equity_usd": 2_100}


def promotion_due(engine: Engine) -> None:
    """Every Sniper gate holds (the case of rule_tests/tiers_test.yaml)."""
    engine.pin(GATES)
    ts = T0
    for i in range(20):
        engine.process(Event("day_closed", ts + i * S, "", {"pnl_usd": 5, "pnl_pct": 0.5, "traded": True,
                                                             "max_drawdown_pct": 2}))
    engine.process(Event("order_sent", ts + 30 * S, BTC, {"latency_ms": 50}))
    for i, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        engine.process(Event("position_closed", ts + (40 + i) * S, symbol, {"pnl_usd": 5}))
    assert engine.stats.firings["promote_sniper_to_hunter"] == 1


def test_a_promotion_waits_for_its_reflection_then_happens_and_tier_names_what_is_awaited():
    engine = engine_for("sniper", 2_100)
    promotion_due(engine)
    assert engine.tier == "sniper"
    text = format_tier(engine, {"run": 1, "events": engine.stats.events})
    assert "awaited: promotion to hunter (promote_sniper_to_hunter) waits for a written reflection of at least " \
           "150 words (genesis reflect)" in text, text
    status, said = apply_command(engine, "reflect", {"text": "I was patient"})
    assert (status, engine.tier) == ("refused", "sniper")
    assert said.startswith("the reflection has 3 words and at least 150 are asked for")
    status, said = apply_command(engine, "reflect", {"text": " ".join(["patience"] * 150)})
    assert (status, said) == ("applied", "reflection of 150 words recorded: promoted to hunter")
    assert engine.tier == "hunter" and not engine.state.requirements
    assert "awaited" not in format_tier(engine, {"run": 1, "events": engine.stats.events})


def test_a_promotion_whose_gates_stop_holding_before_the_reflection_is_withdrawn():
    engine = engine_for("sniper", 2_100)
    promotion_due(engine)
    engine.pin({"equity_usd": 1_900})
    engine.process(Event("order_new", T0 + 60 * S, BTC, {"latency_ms": 50}))
    assert not engine.state.requirements
    assert apply_command(engine, "reflect", {"text": " ".join(["patience"] * 150)}) == (
        "applied", "reflection of 150 words recorded; nothing waited for one")
    assert engine.tier == "sniper"


def test_a_demotion_applies_at_once_and_asks_for_the_reflection_afterwards():
    engine = engine_for("hunter", 5_000)
    started(engine)
    engine.pin({"daily_pnl_pct": -16})
    engine.process(ticker(T0 + 10 * S, 60_000.0))
    assert engine.tier == "sniper"
    text = format_tier(engine, {"run": 1, "events": engine.stats.events})
    assert "awaited: a written reflection of at least 150 words is awaited after the demotion from hunter to " \
           "sniper (demote_daily_loss) (genesis reflect)" in text, text
    assert apply_command(engine, "reflect", {"text": " ".join(["lesson"] * 150)}) == (
        "applied", "reflection of 150 words recorded: demote_daily_loss's request is answered")
    assert not engine.state.requirements


def test_a_demotion_at_the_lowest_tier_halts_until_the_reflection():
    engine = engine_for("sniper", 1_000)
    started(engine)
    engine.pin({"daily_pnl_pct": -16})
    engine.process(ticker(T0 + 10 * S, 60_000.0))
    assert engine.tier == "sniper" and engine.state.holds.get("demote_daily_loss") == "halt"
    assert apply_command(engine, "reflect", {"text": " ".join(["lesson"] * 150)}) == (
        "applied", "reflection of 150 words recorded: the halt of demote_daily_loss is lifted")
    assert "demote_daily_loss" not in engine.state.holds


# --------------------------------------------------------------------------- the CLI, end to end
def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, input=stdin)


def test_reset_and_reflect_commands_are_queued_then_answered_by_the_next_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'j.db'}"
    asked = _cli("reset", "--db", db, stdin="I have reviewed the drawdown and reset the halt\n")
    assert asked.returncode == 0 and "Type the phrase the halt asks for" in asked.stdout, asked.stderr
    assert "queued (#1): no engine is running" in asked.stdout
    queued = _cli("reflect", "what got me here was patience", "--db", db)
    assert queued.returncode == 0 and "queued (#2)" in queued.stdout, queued.stderr
    ran = _cli("run", "--speed", "max", "--db", db, "--config", str(ROOT))
    assert ran.returncode == 0, ran.stderr
    con = sqlite3.connect(tmp_path / "j.db")
    try:
        rows = con.execute("SELECT id, kind, status, result, payload FROM commands ORDER BY id").fetchall()
        reflections = con.execute("SELECT data FROM entries WHERE kind = 'reflection'").fetchall()
    finally:
        con.close()
    assert rows[0][:4] == (1, "reset", "refused", "nothing waits for a reset")
    assert '"phrase": "I have reviewed the drawdown and reset the halt"' in rows[0][4]
    assert rows[1][:4] == (2, "reflect", "applied", "reflection of 6 words recorded; nothing waited for one")
    assert [json.loads(r[0])["words"] for r in reflections] == [6]


def test_reflect_without_text_is_a_usage_error(tmp_path):
    out = _cli("reflect", "--db", f"sqlite:///{tmp_path / 'j.db'}")
    assert out.returncode == 2 and "give the reflection as TEXT or --file" in out.stderr
