"""Market-state scenario on real candles: Binance's 2021-04-25 04:00-08:45 system upgrade
maintenance; trading pauses (sizes at 0%) and resumes one minute after the exchange is
back, through `genesis replay --commands` and the journal."""
from __future__ import annotations

from datetime import UTC, datetime

from test_scenarios_risk import BTC, after, config_copy, journal, ms, needs_data, replay

# last candle before the gap opens 04:00 (closes 04:01); next opens 08:45 (closes 08:46)
LAST_CLOSE = datetime(2021, 4, 25, 4, 1, tzinfo=UTC)
BACK_CLOSE = datetime(2021, 4, 25, 8, 46, tzinfo=UTC)
MINUTE = 60_000

COVERS = {  # rule book rule -> a test here that asserts it fires (tests/test_scenario_coverage.py)
    "market_maintenance_enter": "test_an_exchange_maintenance_window_pauses_and_resumes_trading",
    "market_maintenance_exit": "test_an_exchange_maintenance_window_pauses_and_resumes_trading",
    "market_panic_enter": "test_the_crash_day_walks_normal_volatile_panic_and_back",
    "market_panic_exit": "test_the_crash_day_walks_normal_volatile_panic_and_back",
    "market_volatile_enter": "test_the_crash_day_walks_normal_volatile_panic_and_back",
    "market_volatile_exit": "test_the_crash_day_walks_normal_volatile_panic_and_back",
    "market_dead_enter": "test_a_dead_market_halves_sizes_and_wakes_up",
    "market_dead_exit": "test_a_dead_market_halves_sizes_and_wakes_up",
}


def order(at: datetime, side: str) -> dict:
    return {"after": after(at), "kind": "order", "side": side, "symbol": "BTCUSDT", "notional_usd": 40}


@needs_data
def test_an_exchange_maintenance_window_pauses_and_resumes_trading(tmp_path):
    config = config_copy(tmp_path)
    script = [
        order(datetime(2021, 4, 25, 3, 30, tzinfo=UTC), "buy"),
        # no events during the window: both apply at the first candle after it, while
        # the exit rule still waits its `for: 1m`
        order(datetime(2021, 4, 25, 5, 0, tzinfo=UTC), "sell"),
        order(datetime(2021, 4, 25, 5, 0, tzinfo=UTC), "buy"),
        order(datetime(2021, 4, 25, 9, 0, tzinfo=UTC), "buy"),
    ]
    report, db = replay(tmp_path, "sniper", config, script)
    assert report["rule_firings"]["market_maintenance_enter"] == 1
    assert report["rule_firings"]["market_maintenance_exit"] == 1

    enter = journal(db, "fire", "market_maintenance_enter")
    assert len(enter) == 1 and enter[0]["ts"] == ms(LAST_CLOSE) + MINUTE   # the first close that never came
    assert enter[0]["data"]["values"] == {"exchange_maintenance": 1.0, "market_state": "normal"}
    actions = [a["data"] for a in journal(db, "action", "market_maintenance_enter")]
    assert actions[:2] == [{"action": "set", "set": {"market_state": "maintenance"}},
                           {"action": "scale_size", "slot": "market_state", "factor": 0.0}]
    leave = journal(db, "fire", "market_maintenance_exit")
    assert len(leave) == 1 and leave[0]["ts"] == ms(BACK_CLOSE) + MINUTE    # back, then held for 1 minute
    assert {"action": "set", "set": {"market_state": "normal"}} in \
        [a["data"] for a in journal(db, "action", "market_maintenance_exit")]

    ops = journal(db, "operator")
    assert [o["data"]["status"] for o in ops] == ["applied", "applied", "refused", "applied"]
    assert [o["ts"] for o in ops[1:3]] == [ms(BACK_CLOSE)] * 2
    # an exit still goes out; a new position waits: sizes are at 0% while in maintenance
    assert "sell BTCUSDT" in ops[1]["data"]["result"]
    assert ops[2]["data"]["result"] == "buy BTCUSDT $40.00: sizes are at 0% for now (market_state of BTCUSDT)"
    refused = journal(db, "refused")
    assert len(refused) == 1 and refused[0]["rule"] == "trading_state" and refused[0]["data"]["size_factor"] == 0.0
    assert not [e for e in journal(db, "order") if e["ts"] == ms(BACK_CLOSE) and e["data"]["side"] == "buy"]
    # after the window a buy goes out again
    buys = [e for e in journal(db, "fill") if e["data"]["side"] == "buy"]
    assert len(buys) == 2 and buys[1]["ts"] == ms(datetime(2021, 4, 25, 9, 0, tzinfo=UTC))
    assert BTC.is_file()


def _fires(db, prefix: str = "market_") -> list[dict]:
    return [e for e in journal(db, "fire") if e["rule"].startswith(prefix)]


@needs_data
def test_the_crash_day_walks_normal_volatile_panic_and_back(tmp_path):
    """On 30 days of BTC candles the market state moves only along the ladder the rule
    book allows, each change with the values its rule requires and its size multiplier;
    on 2021-05-19 the crash drives it into PANIC (sizes at 25%, an order sized so), and
    PANIC is left for VOLATILE once range and volume calm down."""
    panic_at = datetime(2021, 5, 19, 11, 32, tzinfo=UTC)   # asserted below from the values
    script = [{"after": after(datetime(2021, 5, 19, 12, 0, tzinfo=UTC)), "kind": "order", "side": "buy",
               "symbol": "BTCUSDT", "notional_usd": 48}]
    report, db = replay(tmp_path, "sniper", config_copy(tmp_path), script)
    fires = _fires(db)
    factors = {"market_volatile_enter": 0.75, "market_volatile_exit": 1.0, "market_panic_enter": 0.25,
               "market_panic_exit": 0.75, "market_maintenance_enter": 0.0, "market_maintenance_exit": 1.0}
    to_state = {"market_volatile_enter": "volatile", "market_volatile_exit": "normal", "market_panic_enter": "panic",
                "market_panic_exit": "volatile", "market_maintenance_enter": "maintenance",
                "market_maintenance_exit": "normal"}
    state = "normal"
    for fire in fires:
        rule, values = fire["rule"], fire["data"]["values"]
        assert values["market_state"] == state, (utc_text(fire), rule)     # a change from where it was
        if rule == "market_panic_enter":
            assert values["atr_rank_24h"] >= 95 and values["volume_z_60m"] >= 3
        elif rule == "market_panic_exit":
            assert values["atr_rank_24h"] < 80 and values["volume_z_60m"] < 1.5
        elif rule == "market_volatile_enter":
            assert values["atr_rank_24h"] >= 80 or values["vol_rank_24h"] >= 85
        elif rule == "market_volatile_exit":
            assert values["atr_rank_24h"] < 60 and values["vol_rank_24h"] < 65
        actions = [a["data"] for a in journal(db, "action", rule) if a["ts"] == fire["ts"]]
        assert {"action": "scale_size", "slot": "market_state", "factor": factors[rule]} in actions
        assert {"action": "set", "set": {"market_state": to_state[rule]}} in actions
        state = to_state[rule]
    counts = report["rule_firings"]
    assert counts["market_panic_enter"] >= 1 and counts["market_volatile_enter"] >= 1
    assert counts["market_panic_exit"] >= counts["market_panic_enter"] - 1   # PANIC is always left
    assert counts["market_volatile_exit"] >= 1

    crash = [f for f in fires if f["rule"] == "market_panic_enter" and f["ts"] >= ms(datetime(2021, 5, 19, tzinfo=UTC))]
    assert crash[0]["ts"] == ms(panic_at)
    left = [f for f in fires if f["rule"] == "market_panic_exit" and f["ts"] > crash[0]["ts"]]
    assert left and left[0]["ts"] - crash[0]["ts"] >= 10 * MINUTE          # calm held for its 10 minutes
    # the order at 12:00, in PANIC: sized at 25% ($48 -> $12)
    intent = [e for e in journal(db, "intent") if e["rule"] == "operator"]
    assert len(intent) == 1 and intent[0]["data"]["size_factor"] == 0.25
    assert intent[0]["data"]["notional_final"] == 12.0


def utc_text(entry: dict) -> str:
    return datetime.fromtimestamp(entry["ts"] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


ETH = BTC.parent / "ETH_USDT-1m.json.gz" if BTC is not None else None


@needs_data
def test_a_dead_market_halves_sizes_and_wakes_up(tmp_path):
    """DEAD (a quiet range with thin volume) never lasts the shipped 15 minutes in these
    30 days (the longest quiet stretch is 7 minutes, on ETH), so this copy of the rule
    book asks for 5: the state then goes normal -> dead -> normal on the real ETH candles,
    each change with the values its rule requires and the size multiplier it sets."""
    config = config_copy(tmp_path)
    path = config / "rules" / "market_state.yaml"
    text = path.read_text(encoding="utf-8")
    shipped = '''when: "market_state == 'normal' and atr_rank_24h <= 10 and volume_z_60m <= -1"
    for: 15m'''
    assert text.count(shipped) == 1
    path.write_text(text.replace(shipped, shipped.replace("for: 15m", "for: 5m")), encoding="utf-8")
    report, db = replay(tmp_path, "sniper", config, [], files=[ETH])
    enters, exits = journal(db, "fire", "market_dead_enter"), journal(db, "fire", "market_dead_exit")
    assert report["rule_firings"]["market_dead_enter"] == len(enters) >= 1
    assert len(exits) >= len(enters) - 1
    for enter in enters:
        v = enter["data"]["values"]
        assert v["market_state"] == "normal" and v["atr_rank_24h"] <= 10 and v["volume_z_60m"] <= -1
        acts = [a["data"] for a in journal(db, "action", "market_dead_enter") if a["ts"] == enter["ts"]]
        assert {"action": "scale_size", "slot": "market_state", "factor": 0.5} in acts
        assert {"action": "set", "set": {"market_state": "dead"}} in acts
    for leave in exits:
        v = leave["data"]["values"]
        assert v["market_state"] == "dead" and (v["atr_rank_24h"] >= 25 or v["volume_z_60m"] > 0)
        assert {"action": "set", "set": {"market_state": "normal"}} in \
            [a["data"] for a in journal(db, "action", "market_dead_exit") if a["ts"] == leave["ts"]]
    # each stay in DEAD ends after its own entry
    for enter, leave in zip(enters, exits):
        assert leave["ts"] > enter["ts"]
