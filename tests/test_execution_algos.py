"""Execution algorithms on the real capture (the bundled BTCUSDT sample), through the CLI,
the real engine and the paper exchange: the iceberg (limit slices at the touch, one
visible at a time, re-posted as the touch moves, abort), TWAP with market and with limit
children, VWAP's participation cap, and the `execution_done` figures, each checked
against the journal and the feed itself."""
from __future__ import annotations

import gzip
import json
from bisect import bisect_right
from functools import cache
from pathlib import Path

import pytest
import yaml

from scenario_helpers import CANDLES, DAY, MINUTE, REPO, config_copy, replay

from genesis.engine.volume import VolumeBook

SAMPLE = REPO / "genesis" / "data" / "sample" / "btcusdt_20240808_sample.gz"
EQUITY = 1_000_000   # 5% of it (the manual position cap) leaves room for every order here


@cache
def trades() -> list:
    """The sample's trades [(event time ms, base qty)], as the engine times them (E)."""
    out = []
    with gzip.open(SAMPLE, "rt") as f:
        for line in f:
            msg = json.loads(line.split(" ", 1)[1])
            if msg.get("stream", "").endswith("@trade"):
                out.append((msg["data"]["E"], float(msg["data"]["q"])))
    return out


def policy(**changes) -> dict:
    """The Strategist's execution policy with sections replaced."""
    data = yaml.safe_load((REPO / "tiers" / "strategist.yaml").read_text())["execution"]
    for section, values in changes.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    return data


def run(tmp: Path, execution: dict, orders: list) -> object:
    """Replay the sample on the Strategist tier (no strategies) with operator orders
    [(seconds after the first event, side, usd)]."""
    config = config_copy(tmp, equity=EQUITY, tier_edits={"strategist": {"execution": execution}})
    script = [{"after": f"{s}s", "kind": "order", "side": side, "symbol": "BTCUSDT", "notional_usd": usd}
              for s, side, usd in orders]
    return replay(tmp, "strategist", config, [SAMPLE], script)


def children(r, parent_intent_seq: int) -> list[dict]:
    """The 'order' entries after an intent (all of one parent while only one works)."""
    return [e for e in r.entries if e["kind"] == "order" and e["seq"] > parent_intent_seq]


def done(r) -> list[dict]:
    return [e["data"] for e in r.of("execution_done")]


def fills_of(r, ids: set) -> list[dict]:
    return [e["data"] for e in r.of("fill") if e["data"]["client_id"] in ids]


def test_iceberg_rests_one_visible_slice_at_the_touch_and_fills_the_parent(tmp_path):
    r = run(tmp_path, policy(), [(20, "buy", 1_000)])
    intent = r.of("intent")[0]
    assert intent["data"]["algo"] == "iceberg"
    planned = intent["data"]["slices"]
    ice = policy()["iceberg"]
    assert ice["min_slices"] <= planned <= ice["max_slices"]
    orders = children(r, intent["seq"])
    assert orders and all(o["data"]["type"] == "limit" for o in orders)
    # each child joins the best bid: strictly below the ask it saw, never more than a visible slice
    for o in orders:
        d = o["data"]
        assert d["limit_price"] < d["decision_price"]
        assert d["qty"] * d["limit_price"] <= 1_000 / planned * (1 + ice["size_jitter_pct"] / 100) * 1.02
    # one child at a time: each new child is sent after the previous one ended
    ended = {e["data"]["client_id"]: e["seq"] for e in r.entries
             if e["kind"] == "order_canceled" or (e["kind"] == "fill")}
    ids = [o["data"]["client_id"] for o in orders]
    for before, after in zip(ids, ids[1:]):
        sent_at = next(o["seq"] for o in orders if o["data"]["client_id"] == after)
        assert ended.get(before, 10**9) < sent_at, f"{after} was sent while {before} still worked"
    # re-pegs are the algorithm's own cancels, not the trader's
    for c in r.of("order_canceled"):
        assert c["data"]["by_algorithm"] and not c["data"]["manual"]
    [ex] = done(r)
    fills = fills_of(r, set(ids))
    filled = sum(f["qty"] * f["price"] for f in fills)
    assert ex["algo"] == "iceberg" and ex["end"] == "done"
    assert ex["filled_usd"] == pytest.approx(filled, rel=1e-9)
    assert ex["filled_usd"] == pytest.approx(1_000, rel=0.02)
    assert all(f["maker"] for f in fills), "an iceberg's slices rest: they fill as maker"
    assert ex["slices"] == len(orders) >= planned


def test_iceberg_aborts_when_the_mid_moves_past_abort_slippage(tmp_path):
    # a threshold of 0.001%: the first tick against the order aborts it
    r = run(tmp_path, policy(iceberg={"abort_slippage_pct": 0.001, "min_slices": 10, "max_slices": 10}),
            [(20, "buy", 3_000)])
    [ex] = done(r)
    assert ex["end"] == "aborted" and "against the order" in ex["abort_reason"]
    assert ex["unfilled_usd"] > 0
    ids = {o["data"]["client_id"] for o in children(r, r.of("intent")[0]["seq"])}
    last = max(e["seq"] for e in r.entries if e["kind"] == "execution_done")
    assert not [o for o in r.of("order") if o["seq"] > last], "nothing is sent after the abort"
    assert not set(r.report.get("open_orders", [])) & ids


def test_twap_with_market_children_slices_evenly_in_time(tmp_path):
    execution = policy(iceberg={"enabled": False}, three_slice={"enabled": False}, vwap={"enabled": False},
                       twap={"enabled": True, "duration_s": 60, "slices": 6, "order_type": "market"})
    r = run(tmp_path, execution, [(20, "buy", 1_200)])
    intent = r.of("intent")[0]
    assert intent["data"]["algo"] == "twap"
    orders = children(r, intent["seq"])
    assert [o["data"]["type"] for o in orders] == ["market"] * 6
    start = intent["ts"]
    for i, o in enumerate(orders):   # due every 10 s; sent at the first event at or after that
        assert start + i * 10_000 <= o["ts"] < start + i * 10_000 + 1_000
        assert o["data"]["qty"] * o["data"]["decision_price"] == pytest.approx(200, rel=1e-6)
    [ex] = done(r)
    assert ex["slices"] == 6 and ex["end"] == "done"


def test_twap_with_limit_children_rolls_the_unfilled_part_and_finishes_at_market(tmp_path):
    execution = policy(iceberg={"enabled": False}, three_slice={"enabled": False}, vwap={"enabled": False},
                       twap={"enabled": True, "duration_s": 60, "slices": 4, "order_type": "limit"})
    r = run(tmp_path, execution, [(20, "buy", 2_000)])
    intent = r.of("intent")[0]
    orders = children(r, intent["seq"])
    limits = [o for o in orders if o["data"]["type"] == "limit"]
    assert limits and all(o["data"]["limit_price"] < o["data"]["decision_price"] for o in limits)
    start = intent["ts"]
    filled = 0.0
    for i, o in enumerate(limits):
        # each child asks for what the schedule says should be done by its slot, less what filled
        slot = round((o["ts"] - start) / 15_000)
        assert o["ts"] - start - slot * 15_000 < 1_000
        want = 2_000 * (slot + 1) / 4 - filled
        assert o["data"]["qty"] * o["data"]["limit_price"] == pytest.approx(want, rel=1e-6)
        filled += sum(f["qty"] * f["price"] for f in fills_of(r, {o["data"]["client_id"]}))
    markets = [o for o in orders if o["data"]["type"] == "market"]
    assert len(markets) <= 1 and all(o["ts"] >= start + 60_000 for o in markets)
    [ex] = done(r)
    assert ex["end"] == "done" and ex["filled_usd"] == pytest.approx(2_000, rel=0.02)


def test_vwap_children_stay_under_the_participation_cap(tmp_path):
    cap = 1
    execution = policy(iceberg={"enabled": False}, three_slice={"enabled": False},
                       vwap={"enabled": True, "duration_s": 60, "slices": 6, "max_participation_pct": cap})
    r = run(tmp_path, execution, [(30, "buy", 40_000)])   # far more than 10% of a minute's BTC volume here
    intent = r.of("intent")[0]
    assert intent["data"]["algo"] == "vwap"
    orders = children(r, intent["seq"])
    assert orders
    times = [t for t, _ in trades()]
    qty_before = [0.0]
    for _, q in trades():
        qty_before.append(qty_before[-1] + q)

    def traded(lo: int, hi: int) -> float:   # base volume with lo < T <= hi
        return qty_before[bisect_right(times, hi)] - qty_before[bisect_right(times, lo)]

    previous = intent["ts"]
    for o in orders[1:]:   # the first child is held to the last minute's volume
        assert o["data"]["type"] == "market"
        volume = traded(previous, o["ts"])
        assert o["data"]["qty"] <= cap / 100 * volume * 1.000001 + 1e-9
        previous = o["ts"]
    [ex] = done(r)
    assert ex["algo"] == "vwap" and ex["end"] == "expired" and ex["unfilled_usd"] > 0
    assert "participation cap" in ex["abort_reason"]
    assert ex["duration_ms"] <= 2 * 60_000 + 1_000


def test_execution_done_figures_agree_with_the_fills(tmp_path):
    r = run(tmp_path, policy(), [(20, "buy", 1_000), (100, "sell", 1_000)])
    intents = r.of("intent")
    assert len(intents) == 2
    for ex, intent, upto in zip(done(r), intents, [intents[1]["seq"], 10**9]):
        parent_orders = [e for e in r.of("order") if intent["seq"] < e["seq"] < upto]
        ids = {o["data"]["client_id"] for o in parent_orders}
        fills = fills_of(r, ids)
        qty = sum(f["qty"] for f in fills)
        value = sum(f["qty"] * f["price"] for f in fills)
        avg = value / qty
        assert ex["avg_price"] == pytest.approx(avg, rel=1e-9)
        sign = 1 if ex["side"] == "buy" else -1
        assert ex["impact_pct"] == pytest.approx(sign * (avg - ex["arrival_mid"]) / ex["arrival_mid"] * 100,
                                                 abs=1e-6)
        slip = sum(f["qty"] * f["price"] * f["slippage_pct"] for f in fills) / value * 100
        assert ex["slippage_bps"] == pytest.approx(slip, abs=1e-3)
        assert ex["duration_ms"] >= 0 and ex["strategy"] == "operator"


@pytest.mark.skipif(CANDLES is None, reason="real candles ../shared/data/binance_spot_ohlcv not present (CI has them)")
def test_vwap_volume_profile_is_the_mean_volume_of_the_same_minutes_on_recent_days():
    """The profile VWAP sizes its children by, fed the real 30-day BTC candles: each
    interval's weight is the mean volume of its minutes of the UTC day over the last
    `profile_days` days, computed here from the file itself."""
    rows = json.loads(gzip.decompress((CANDLES / "BTC_USDT-1m.json.gz").read_bytes()))
    book = VolumeBook()
    for start, *_, volume in rows[:-1]:
        book.on_candle("BTCUSDT", start, float(volume), counts=True)
    last_start = rows[-2][0]
    start = last_start + MINUTE   # the next minute, and the 15 after it
    days, n = 3, 5
    weights = book.weights("BTCUSDT", start, 15 * MINUTE, n, days)
    by_start = {row[0]: float(row[5]) for row in rows[:-1]}
    expected = []
    for i in range(n):
        total = 0.0
        for minute in range(3):
            t = start + (i * 3 + minute) * MINUTE
            seen = [by_start[t - d * DAY] for d in range(1, days + 1) if t - d * DAY in by_start]
            total += sum(seen) / len(seen)
        expected.append(total)
    assert weights == pytest.approx(expected, rel=1e-9)
    assert max(weights) > 1.2 * min(weights)   # a real profile, not even slices
    assert book.traded("BTCUSDT") == pytest.approx(sum(by_start.values()))
