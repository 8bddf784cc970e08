"""End-to-end tilt scenarios: the real CLI (`genesis replay --commands`) on the bundled
3-minute BTCUSDT/ETHUSDT sample, with scripted operator commands, checked through the
JSON report and the SQLite journal (rule, level, action and event time of each
intervention).

The tilt rules only record during the 30-day calibration, and the sample lasts three
minutes, so each scenario runs on a copy of the shipped configuration in which the
trader is past calibration (`tilt_calibrated: trader_days >= 0`).

What commands alone can raise in three minutes: loss reaction, revenge, config
thrashing, rage quit, quick cancels (resting limit orders cancelled at once) and
bargaining (`amend`). Trade frequency, size swings and unusual hours read baselines with
their own calibration: tests/test_scenarios_tilt_long.py covers them on 30 days of
candles, with level 3 and graduated re-entry; tests/test_kill_during_lockout.py reaches
level 3 from commands in a live `genesis run`.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PARTS = ("genesis.yaml", "alerts.yaml", "strategies.yaml", "rules", "tiers")
CALIBRATION = 'expr: "trader_days >= 30"'
PAST_CALIBRATION = 'expr: "trader_days >= 0"'
REASON = "the spread is wide and my plan says buy"   # at least 5 words
# the shipped spread strategy buys BTCUSDT once at this offset of the sample (+152.07 s)
STRATEGY_ENTRY_MS = 152_073

COVERS = {  # rule book rule -> a test here that asserts it fires (tests/test_scenario_coverage.py)
    "tilt_level_1": "test_a_revenge_trader_after_a_loss_gets_a_level_1_notice",
    "tilt_debt_notice": "test_a_revenge_trader_after_a_loss_gets_a_level_1_notice",
    "tilt_level_2": "test_four_indicators_escalate_to_level_2_halving_sizes_and_asking_for_a_reason",
    "indicator_config_thrashing": "test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes",
    "indicator_rage_quit": "test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes",
    "indicator_loss_reaction": "test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes",
    "indicator_revenge": "test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes",
    "indicator_quick_cancels": "test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes",
    "indicator_bargaining": "test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes",
}


# ---------------------------------------------------------------- helpers
def calibrated_config(tmp_path: Path) -> Path:
    """The shipped configuration, as a trader past the 30-day calibration has it."""
    config = tmp_path / "config"
    config.mkdir()
    for part in CONFIG_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, config / part)
        else:
            shutil.copy2(src, config / part)
    tilt = config / "rules" / "tilt.yaml"
    text = tilt.read_text(encoding="utf-8")
    assert text.count(CALIBRATION) == 1, "rules/tilt.yaml no longer holds the calibration expression"
    tilt.write_text(text.replace(CALIBRATION, PAST_CALIBRATION), encoding="utf-8")
    return config


def order(after: str, side: str, symbol: str, usd: float = 40, reason: str | None = None) -> dict:
    cmd = {"after": after, "kind": "order", "side": side, "symbol": symbol, "notional_usd": usd}
    if reason is not None:
        cmd["reason"] = reason
    return cmd


def cmd(after: str, kind: str, **payload) -> dict:
    return {"after": after, "kind": kind, **payload}


def offset_ms(after: str) -> int:
    assert after.endswith("s")
    return int(float(after[:-1]) * 1000)


class Run:
    """One replay: the JSON report and the journal of its run."""

    def __init__(self, report: dict, entries: list[dict], script: list[dict]):
        self.report, self.entries, self.script = report, entries, script
        started = [e for e in entries if e["kind"] == "engine_started"]
        assert len(started) == 1
        self.first_ts = started[0]["ts"]
        ops = [e for e in entries if e["kind"] == "operator"]
        assert len(ops) == len(script), "every scripted command is journaled once, in order"
        for op, command in zip(ops, script):
            assert op["rule"] == command["kind"]
        self.ops = ops

    def rel(self, entry: dict) -> int:
        return entry["ts"] - self.first_ts

    def kind(self, kind: str, rule: str | None = None) -> list[dict]:
        return [e for e in self.entries if e["kind"] == kind and (rule is None or e["rule"] == rule)]

    def tilt_entries(self) -> list[dict]:
        return [e for e in self.entries if e["rule"].startswith("tilt_") and e["kind"] in ("fire", "resolve", "action")]

    def applied_at(self, index: int) -> dict:
        """The operator entry of the script's command `index`; it applied after the first
        input event at or past its offset, at that event's time."""
        op = self.ops[index]
        want = self.first_ts + offset_ms(self.script[index]["after"])
        assert want <= op["ts"] < want + 1000, (index, op["ts"] - self.first_ts)
        return op

    def caused_by(self, entry: dict, index: int) -> bool:
        """`entry` was journaled while the script's command `index` was being applied."""
        before = self.ops[index - 1]["seq"] if index else 0
        op = self.ops[index]
        return before < entry["seq"] < op["seq"] and entry["ts"] == op["ts"]


def replay(tmp_path: Path, commands: list[dict], config: Path | None = None) -> Run:
    config = config or calibrated_config(tmp_path)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"commands": commands}, sort_keys=False), encoding="utf-8")
    db = tmp_path / "j.db"
    proc = subprocess.run(
        [sys.executable, "cli.py", "replay", "--tier", "sniper", "--config", str(config), "--commands", str(script),
         "--db", f"sqlite:///{db}", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    conn = sqlite3.connect(db)
    try:
        runs = conn.execute("SELECT DISTINCT run_id FROM entries").fetchall()
        assert len(runs) == 1
        rows = conn.execute("SELECT seq, ts, kind, rule, symbol, data FROM entries ORDER BY seq").fetchall()
    finally:
        conn.close()
    entries = [{"seq": s, "ts": ts, "kind": k, "rule": r, "symbol": sym, "data": json.loads(d) if d else {}}
               for s, ts, k, r, sym, d in rows]
    assert report["rule_errors"] == 0
    return Run(report, entries, commands)


def tilt_firings(report: dict) -> dict:
    return {k: v for k, v in report["rule_firings"].items() if k.startswith("tilt_")}


# a losing round trip (fees), then re-entry within 2 s of the loss and two more orders
# within 300 s of it: loss reaction (at 31 s) and revenge (3rd entry after a loss, 40 s)
REVENGE = [
    order("20s", "buy", "BTCUSDT"),
    order("30s", "sell", "BTCUSDT"),       # closes at a loss
    order("31s", "buy", "ETHUSDT"),        # ~1 s after the loss: loss reaction
    order("35s", "sell", "ETHUSDT"),
    order("40s", "buy", "BTCUSDT"),        # 3rd order within 300 s of a loss: revenge
    order("45s", "sell", "BTCUSDT"),
]
# one operator session with four risk edits (config thrashing), then three quits
THRASH_AND_QUIT = [
    cmd("5s", "connect"),
    cmd("6s", "set", key="tier.limits.daily_loss_usd", value=20),
    cmd("7s", "set", key="tier.limits.daily_loss_usd", value=22),
    cmd("8s", "set", key="tier.limits.daily_loss_usd", value=24),
    cmd("9s", "set", key="tier.limits.daily_loss_usd", value=21),
    cmd("10s", "disconnect"),
    cmd("11s", "disconnect"),
    cmd("12s", "disconnect"),              # 3rd disconnect in 10 min: rage quit
]


# ---------------------------------------------------------------- 1. calm trader
def test_a_calm_trader_sees_no_tilt_intervention(tmp_path):
    script = [
        order("15s", "buy", "BTCUSDT", 30),
        cmd("45s", "journal", text="Bought a small BTC position on my plan; I will take it off in a minute."),
        order("105s", "sell", "BTCUSDT", 30),
    ]
    run = replay(tmp_path, script)
    report = run.report
    assert tilt_firings(report) == {}
    assert run.tilt_entries() == []
    assert report["final_state"] == "ACTIVE"
    assert report["time_in_state_pct"] == {"ACTIVE": 100.0}
    assert report["refused"] == 0 and run.kind("refused") == []
    assert [op["data"]["status"] for op in run.ops] == ["applied"] * 3
    # both manual orders and the strategy's entry went out at full size
    assert report["orders"] == 3 and report["trades"] == 1
    intents = run.kind("intent")
    assert [(run.rel(i) >= offset_ms(a), i["data"]["strategy"]) for i, a in zip(intents, ("15s", "105s", "152s"))] \
        == [(True, "operator"), (True, "operator"), (True, "btc_eth_spread")]
    assert all("size_factor" not in i["data"] for i in intents)
    assert intents[2]["data"]["notional_final"] == intents[2]["data"]["notional_usd"] > 49
    assert run.applied_at(0)["ts"] == intents[0]["ts"]


# ---------------------------------------------------------------- 2. revenge trader
def test_a_revenge_trader_after_a_loss_gets_a_level_1_notice(tmp_path):
    run = replay(tmp_path, REVENGE)
    report = run.report
    assert report["refused"] == 0 and report["orders"] == 7   # six manual, the strategy's entry
    closed = run.kind("position_closed")
    assert run.rel(closed[0]) == run.rel(run.applied_at(1)) and closed[0]["data"]["pnl_usd"] < 0
    assert run.applied_at(2)["ts"] - closed[0]["ts"] <= 2000          # re-entry within 2 s of the loss

    fires = run.kind("fire", "tilt_level_1")
    assert len(fires) == 1 and report["rule_firings"]["tilt_level_1"] == 1
    fire = fires[0]
    assert fire["data"]["values"] == {"tilt_level": 1}
    # the third order after the loss (40 s) tips it, not the re-entry at 31 s alone
    assert run.caused_by(fire, 4)
    assert fire["ts"] == run.applied_at(4)["ts"]
    notes = run.kind("action", "tilt_level_1")
    assert len(notes) == 1 and notes[0]["ts"] == fire["ts"] and notes[0]["data"]["action"] == "notify"
    assert notes[0]["data"]["severity"] == "info"
    assert "(2 of 9)" in notes[0]["data"]["text"] and "5-minute break" in notes[0]["data"]["text"]
    # level 1 is a notice only: no size cut, no reason asked, no lock
    assert "tilt_level_2" not in report["rule_firings"] and "tilt_level_3" not in report["rule_firings"]
    assert report["final_state"] == "ACTIVE"
    assert all("size_factor" not in i["data"] for i in run.kind("intent"))
    # the loss taken while tilted (45 s) starts a tilt debt of 10% of it
    debt = run.kind("fire", "tilt_debt_notice")
    assert len(debt) == 1 and run.caused_by(debt[0], 5)
    loss = run.kind("position_closed")[2]["data"]["pnl_usd"]
    assert abs(debt[0]["data"]["values"]["tilt_debt_usd"] - 0.10 * -loss) < 1e-9


def test_revenge_alone_without_a_reaction_within_2s_is_only_one_indicator(tmp_path):
    """Control for scenario 2: the same trades, but the re-entry waits 3.5 s after the
    loss; revenge alone (one indicator) is below level 1."""
    script = [dict(c) for c in REVENGE]
    script[2]["after"] = "33.5s"
    run = replay(tmp_path, script)
    assert run.applied_at(2)["ts"] - run.kind("position_closed")[0]["ts"] > 2000
    assert tilt_firings(run.report) == {}
    assert run.tilt_entries() == []


# ---------------------------------------------------------------- 3. config thrasher
def test_a_config_thrasher_who_rage_quits_gets_a_level_1_notice(tmp_path):
    run = replay(tmp_path, THRASH_AND_QUIT)
    assert [op["data"]["status"] for op in run.ops] == ["applied"] * len(THRASH_AND_QUIT)
    fires = run.kind("fire", "tilt_level_1")
    assert len(fires) == 1 and run.report["rule_firings"]["tilt_level_1"] == 1
    # four edits alone and two quits do not reach it; the third disconnect does
    assert run.caused_by(fires[0], 7) and fires[0]["ts"] == run.applied_at(7)["ts"]
    assert fires[0]["data"]["values"] == {"tilt_level": 1}
    note = run.kind("action", "tilt_level_1")
    assert len(note) == 1 and "(2 of 9)" in note[0]["data"]["text"]
    assert tilt_firings(run.report) == {"tilt_level_1": 1}
    assert run.report["final_state"] == "ACTIVE"
    # risk edits wait an hour of market time: none reached the tier file
    assert "daily_loss_usd: 25" in (tmp_path / "config" / "tiers" / "sniper.yaml").read_text()


def test_a_new_session_clears_config_thrashing(tmp_path):
    """Control for scenario 3: thrashing counts edits of one session; reconnecting
    between the quits starts a new session, so the third quit finds one indicator."""
    script = [
        cmd("10s", "connect"),
        cmd("20s", "set", key="tier.limits.daily_loss_usd", value=20),
        cmd("25s", "set", key="tier.limits.daily_loss_usd", value=22),
        cmd("30s", "set", key="tier.limits.daily_loss_usd", value=24),
        cmd("35s", "set", key="tier.limits.daily_loss_usd", value=21),
        cmd("50s", "disconnect"),
        cmd("55s", "connect"),
        cmd("60s", "disconnect"),
        cmd("65s", "connect"),
        cmd("70s", "disconnect"),
    ]
    run = replay(tmp_path, script)
    assert tilt_firings(run.report) == {}
    assert run.tilt_entries() == []


# ---------------------------------------------------------------- 4. escalation
def test_four_indicators_escalate_to_level_2_halving_sizes_and_asking_for_a_reason(tmp_path):
    script = THRASH_AND_QUIT + [
        order("20s", "buy", "BTCUSDT"),
        order("30s", "sell", "BTCUSDT"),                     # loss
        order("31s", "buy", "ETHUSDT"),                      # loss reaction
        order("35s", "sell", "ETHUSDT"),
        order("40s", "buy", "BTCUSDT"),                      # revenge: 4 indicators
        order("45s", "sell", "BTCUSDT"),                     # an exit needs no reason: sells
        order("46s", "sell", "BTCUSDT", reason="too short a reason"),   # nothing left to sell
        order("50s", "sell", "BTCUSDT", reason=REASON),      # nothing left to sell
        order("60s", "buy", "ETHUSDT"),                      # no reason: refused
        order("70s", "buy", "ETHUSDT", 40, reason=REASON),   # halved to $20
        order("80s", "sell", "ETHUSDT", reason=REASON),
    ]
    run = replay(tmp_path, script)
    report = run.report
    n = len(THRASH_AND_QUIT)

    level1 = run.kind("fire", "tilt_level_1")
    assert len(level1) == 1 and run.caused_by(level1[0], n - 1)
    fire2 = run.kind("fire", "tilt_level_2")
    assert len(fire2) == 1 and report["rule_firings"]["tilt_level_2"] == 1
    fire2 = fire2[0]
    assert fire2["data"]["values"] == {"tilt_level": 2}
    assert run.caused_by(fire2, n + 4) and fire2["ts"] == run.applied_at(n + 4)["ts"]
    # level 1 gives way to level 2 at the same moment
    resolved = run.kind("resolve", "tilt_level_1")
    assert len(resolved) == 1 and resolved[0]["ts"] == fire2["ts"] and resolved[0]["seq"] < fire2["seq"]
    actions = run.kind("action", "tilt_level_2")
    assert all(a["ts"] == fire2["ts"] for a in actions)
    actions = [a["data"] for a in actions]
    assert actions[0] == {"action": "scale_size", "slot": "tilt", "factor": 0.5}
    assert actions[1] == {"action": "require", "kind": "reason", "min_words": 5}
    assert actions[2]["action"] == "notify" and actions[2]["severity"] == "warning"
    assert "(4 of 9)" in actions[2]["text"] and "halved" in actions[2]["text"]
    assert "tilt_level_3" not in report["rule_firings"]

    # a manual buy without a reason of at least 5 words is refused by the level-2 rule,
    # journaled like every refusal; exits never wait for a reason
    statuses = [op["data"]["status"] for op in run.ops[n:]]
    assert statuses == ["applied"] * 6 + ["refused", "refused", "refused", "applied", "applied"]
    assert any(run.caused_by(e, n + 5) for e in run.kind("order"))            # the 45 s exit went out
    for i in (n + 6, n + 7):
        assert "nothing to sell" in run.ops[i]["data"]["result"]
    assert "written reason" in run.ops[n + 8]["data"]["result"] and "5 words" in run.ops[n + 8]["data"]["result"]
    refusal = [e for e in run.entries if e["kind"] == "refused" and run.caused_by(e, n + 8)]
    assert len(refusal) == 1 and refusal[0]["rule"] == "tilt_level_2"
    assert not any(run.caused_by(e, n + 8) for e in run.entries if e["kind"] in ("intent", "order"))

    # the reasoned buy at 70 s goes out at half size; the sell is not cut
    buy = [e for e in run.kind("intent") if run.caused_by(e, n + 9)]
    assert len(buy) == 1
    assert buy[0]["data"]["size_factor"] == 0.5
    assert buy[0]["data"]["notional_usd"] == 40.0 and buy[0]["data"]["notional_final"] == 20.0
    sell = [e for e in run.kind("intent") if run.caused_by(e, n + 10)]
    assert len(sell) == 1 and "size_factor" not in sell[0]["data"]
    # the strategy's entry is halved too
    strat = [e for e in run.kind("intent") if e["data"]["strategy"] == "btc_eth_spread"]
    assert len(strat) == 1 and run.rel(strat[0]) == STRATEGY_ENTRY_MS and strat[0]["data"]["size_factor"] == 0.5
    # halved, not halted
    assert report["final_state"] == "ACTIVE" and report["time_in_state_pct"] == {"ACTIVE": 100.0}


# ---------------------------------------------------------------- 5. cancel storm
def limit_buy(after: str, price: float = 50_000) -> dict:
    return {**order(after, "buy", "BTCUSDT"), "limit": price}   # far below the market: rests


def test_a_cancel_storm_then_bargaining_gets_a_level_1_notice(tmp_path):
    """Five resting orders each cancelled a second after it was placed (quick cancels),
    then one order moved six times (bargaining): the sixth amendment is the second
    indicator, and the level-1 notice comes at its event time."""
    script = []
    for i in range(5):
        script += [limit_buy(f"{10 + 2 * i}s"), cmd(f"{11 + 2 * i}s", "cancel", client_id=f"g{i + 1}")]
    script.append(limit_buy("30s"))
    script += [cmd(f"{31 + i}s", "amend", client_id="g6", price=50_010 + 10 * i) for i in range(6)]
    run = replay(tmp_path, script)
    assert [op["data"]["status"] for op in run.ops] == ["applied"] * len(script)
    assert [run.ops[2 * i + 1]["data"]["result"] for i in range(5)] == [f"order g{i + 1} cancelled" for i in range(5)]
    cancels = run.kind("order_canceled")
    assert len(cancels) == 5 and all(c["data"]["age_s"] <= 5 and not c["data"]["by_exchange"] for c in cancels)
    amended = run.kind("order_amended")
    assert [a["data"]["amendments"] for a in amended] == [1, 2, 3, 4, 5, 6]
    assert [a["data"]["price"] for a in amended] == [50_010.0 + 10 * i for i in range(6)]
    assert run.ops[-1]["data"]["result"] == "order g6 amended: now resting at 50060"
    # the storm alone is one indicator (no notice); the sixth amendment (> 5) is the second
    fires = run.kind("fire", "tilt_level_1")
    assert len(fires) == 1 and fires[0]["data"]["values"] == {"tilt_level": 1}
    assert run.caused_by(fires[0], len(script) - 1) and fires[0]["ts"] == amended[-1]["ts"]
    note = run.kind("action", "tilt_level_1")
    assert len(note) == 1 and "(2 of 9)" in note[0]["data"]["text"]
    assert tilt_firings(run.report) == {"tilt_level_1": 1}
    assert run.report["final_state"] == "ACTIVE" and run.report["trades"] == 0


def test_slow_cancels_and_five_amendments_are_no_storm(tmp_path):
    """Control for scenario 5: cancels 6 s after placing are not quick, and five
    amendments are not bargaining: no intervention."""
    script = []
    for i in range(5):
        script += [limit_buy(f"{10 + 7 * i}s"), cmd(f"{16 + 7 * i}s", "cancel", client_id=f"g{i + 1}")]
    script.append(limit_buy("60s"))
    script += [cmd(f"{61 + i}s", "amend", client_id="g6", price=50_010 + 10 * i) for i in range(5)]
    run = replay(tmp_path, script)
    assert all(c["data"]["age_s"] > 5 for c in run.kind("order_canceled"))
    assert len(run.kind("order_amended")) == 5
    assert tilt_firings(run.report) == {}
    assert run.tilt_entries() == []


# ---------------------------------------------------------------- 6. calibration records
def shipped_config(tmp_path: Path) -> Path:
    """The shipped configuration as it is: a new trader, in the 30-day calibration."""
    config = tmp_path / "config"
    config.mkdir()
    for part in CONFIG_PARTS:
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, config / part)
    return config


def test_during_calibration_indicators_are_journaled_on_and_off_and_nothing_intervenes(tmp_path):
    """A new trader (day 0 of the 30-day calibration) raises six indicators: each one's
    recording rule journals a `fire` with its value when it switches on, and a `resolve`
    when it switches off (config thrashing, at the reconnect that starts a new session);
    tilt_level stays 0, so no tilt rule fires, no size is cut, nothing is locked."""
    script = THRASH_AND_QUIT + REVENGE                   # g1 ... g6: the six market orders
    for i in range(5):                                   # five resting orders cancelled within a second
        script += [limit_buy(f"{50 + 2 * i}s"), cmd(f"{51 + 2 * i}s", "cancel", client_id=f"g{7 + i}")]
    script.append(limit_buy("70s"))                      # g12, moved six times: bargaining
    script += [cmd(f"{71 + i}s", "amend", client_id="g12", price=50_010 + 10 * i) for i in range(6)]
    script.append(cmd("90s", "connect"))                 # a new session: config thrashing switches off
    run = replay(tmp_path, script, config=shipped_config(tmp_path))
    assert [op["data"]["status"] for op in run.ops] == ["applied"] * len(script)

    names = ("config_thrashing", "rage_quit", "loss_reaction", "revenge", "quick_cancels", "bargaining")
    for name in names:
        fires = run.kind("fire", f"indicator_{name}")
        assert len(fires) == 1, (name, fires)
        assert fires[0]["data"]["values"] == {f"ind_{name}": True}
    # each switched on where its command made it true
    assert run.caused_by(run.kind("fire", "indicator_config_thrashing")[0], 4)     # the fourth risk edit
    assert run.caused_by(run.kind("fire", "indicator_rage_quit")[0], 7)            # the third disconnect
    assert run.caused_by(run.kind("fire", "indicator_bargaining")[0], len(script) - 2)  # the sixth amend
    # ... and config thrashing switched off at the reconnect, journaled with its value
    off = run.kind("resolve", "indicator_config_thrashing")
    assert len(off) == 1 and run.caused_by(off[0], len(script) - 1)
    assert off[0]["data"]["values"] == {"ind_config_thrashing": False}
    # calibration: recorded, never acted on
    assert run.tilt_entries() == [] and tilt_firings(run.report) == {}
    assert not [e for e in run.entries if e["rule"].startswith("indicator_") and e["kind"] == "action"]
    assert all("size_factor" not in i["data"] for i in run.kind("intent"))
    assert run.report["final_state"] == "ACTIVE"
    # the one refusal is a limit, not tilt: the strategy's entry while the resting g12 counts as a position
    assert [(r["rule"], r["data"]["strategy"]) for r in run.kind("refused")] == [("max_open_positions", "btc_eth_spread")]
