"""Promotion gates read measured data, never constants: order latency from `order_sent`,
slicing and market impact from `execution_done` (what the execution policy really sent
and how it filled against the mid at arrival), in paper mode through the real engine and
the real CLI (`genesis replay`, `genesis tier`); the live counterpart runs against the
simulator in tests/test_live_session.py. A gate with no samples in its window is "not
measured yet": it does not pass, and `genesis tier` says so instead of a number."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from scenario_helpers import cli, config_copy, replay
from test_engine_actions import BTC, S, T0, config_dir, entries, ticker

from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.events import Event
from genesis.engine.journal import Journal
from genesis.engine.feeds import sample_paths
from genesis.strategies import OrderIntent

CANCEL_ON_DIAL = """\
rules:
  - id: t_cancel_all
    stage: risk
    on: journal_entry
    then: [cancel_all]
"""


def engine_for(tmp_path: Path, tier: str, rules: str = "rules: []\n", max_position_pct: float | None = None,
               iceberg: bool = True) -> Engine:
    """The real engine on a copy of the shipped configuration (a journal in memory)."""
    root = config_dir(tmp_path, rules)
    path = root / "tiers" / f"{tier}.yaml"
    if max_position_pct is not None:
        path.write_text(re.sub(r"max_position_pct: \d+", f"max_position_pct: {max_position_pct}", path.read_text()))
    if not iceberg:
        text = path.read_text()
        assert "iceberg:\n    enabled: true" in text
        path.write_text(text.replace("iceberg:\n    enabled: true", "iceberg:\n    enabled: false"))
    result = check_config(root)
    assert result.ok, [p.message for p in result.problems]
    journal = Journal("sqlite://")
    journal.open_run(tier, "test", "test", [], "test")
    return Engine(result, tier, journal=journal)


def data(engine: Engine, kind: str) -> list[dict]:
    """The journaled data of every entry of one kind, in order."""
    return [d for _, _, _, d in entries(engine, kind)]


def buy(engine: Engine, notional: float, manual: bool = True) -> None:
    engine.submit(OrderIntent("" if manual else "t", BTC, "buy", notional, 60_000.0,
                              "manual" if manual else "entry", True, manual))


def test_a_sliced_execution_reports_its_slices_fills_and_impact_against_the_arrival_mid(tmp_path):
    """Hunter (here with a 100% position limit and no iceberg) slices a $600 buy in its
    mandatory band ($500 to $2,000: 3 market slices 1 s apart). The book moves up between slices,
    which are sent at the first event at or after their due time: each slice's order_sent
    latency is that event-time wait (0 for the first). execution_done comes once the
    last slice filled: slices sent = planned, value sent and filled, and the impact is the
    average fill price against the mid when the buy was decided."""
    engine = engine_for(tmp_path, "hunter", max_position_pct=100, iceberg=False)
    mid = 60_000.0
    engine.process(ticker(T0, mid=mid))
    buy(engine, 600)
    [intent] = data(engine, "intent")
    assert intent["algo"] == "sliced" and intent["slices"] == 3
    ts = T0
    while not data(engine, "execution_done"):
        ts += 700   # a tick every 0.7 s, the price 6 USD higher each time
        mid += 6
        engine.process(ticker(ts, mid=mid))
        assert ts < T0 + 120 * S
    sent, fills = data(engine, "order_sent"), data(engine, "fill")
    assert len(sent) == len(data(engine, "order")) == len(fills) == intent["slices"]
    assert [e["client_id"] for e in sent] == [e["client_id"] for e in data(engine, "order")]
    assert sent[0]["latency_ms"] == 0.0
    # a later slice waited from its due time to the next tick: under 700 ms, and not all 0
    assert all(0 <= e["latency_ms"] < 700 for e in sent[1:])
    assert any(e["latency_ms"] > 0 for e in sent[1:])
    [done] = data(engine, "execution_done")
    assert (done["algo"], done["side"], done["manual"]) == ("sliced", "buy", True)
    assert done["slices"] == done["planned_slices"] == intent["slices"]
    assert done["notional_usd"] == 600 and done["sent_usd"] == pytest.approx(600)
    filled = sum(f["qty"] * f["price"] for f in fills)
    qty = sum(f["qty"] for f in fills)
    assert done["filled_usd"] == pytest.approx(filled)
    assert done["arrival_mid"] == 60_000.0
    assert done["impact_pct"] == pytest.approx((filled / qty / 60_000.0 - 1) * 100, abs=1e-6)
    assert done["impact_pct"] > 0.01   # the later slices paid the higher asks
    # the metrics the Hunter gates read
    m = engine.metrics.m
    assert (m["big_executions_30d"], m["sliced_orders_pct_30d"], m["filled_executions_30d"]) == (1, 100, 1)
    assert m["max_impact_pct_30d"] == pytest.approx(done["impact_pct"])


def test_a_single_market_order_over_200_usd_is_measured_as_not_sliced(tmp_path):
    """Sniper (here with a 50% position limit) sends $300 as one market order (it slices
    from $500 only): an execution over $200 in 1 slice, so the slicing share is 0%,
    measured. The buy fills at the ask and the sell at the bid: each an adverse (positive)
    impact of half the spread against the arrival mid."""
    engine = engine_for(tmp_path, "sniper", max_position_pct=50)
    engine.process(ticker(T0))
    buy(engine, 300, manual=False)
    engine.process(ticker(T0 + S))
    engine.submit(OrderIntent("t", BTC, "sell", 300.0, 60_000.0, "exit", False))
    first, second = data(engine, "execution_done")
    assert (first["algo"], first["slices"], first["sent_usd"] > 200) == ("market", 1, True)
    half_spread_pct = 0.01 / 60_000 * 100
    assert first["impact_pct"] == pytest.approx(half_spread_pct, abs=1e-6)
    assert second["side"] == "sell" and second["impact_pct"] == pytest.approx(half_spread_pct, abs=1e-6)
    m = engine.metrics.m
    assert (m["big_executions_30d"], m["sliced_orders_pct_30d"]) == (2, 0)
    assert [e["latency_ms"] for e in data(engine, "order_sent")] == [0.0, 0.0]


def test_cancel_all_before_a_slice_is_due_ends_the_execution_with_the_slices_sent(tmp_path):
    """A rule's cancel_all drops the slices not yet due: the execution ends at once with
    the slices that did leave, and its planned count says what the policy meant to do."""
    engine = engine_for(tmp_path, "hunter", rules=CANCEL_ON_DIAL, max_position_pct=100, iceberg=False)
    engine.process(ticker(T0))
    buy(engine, 600)
    [intent] = data(engine, "intent")
    engine.process(Event("journal_entry", T0 + 1, "", {"words": 1}))
    [done] = data(engine, "execution_done")
    assert done["slices"] == 1 and done["planned_slices"] == intent["slices"] > 1
    assert done["filled_usd"] > 0 and not engine.scheduled
    assert engine.metrics.m["sliced_orders_pct_30d"] == 0   # over $200 left, in 1 slice: not sliced


def test_validate_refuses_a_gate_on_a_measured_metric_without_its_sample_count(tmp_path):
    root = config_dir(tmp_path, "rules: []\n")
    path = root / "rules" / "tiers.yaml"
    text = path.read_text()
    gate = '"sent_orders_30d > 0 and fast_orders_pct_30d >= tier.promotion.min_fast_orders_pct"'
    assert gate in text
    path.write_text(text.replace(gate, '"fast_orders_pct_30d >= tier.promotion.min_fast_orders_pct"')
                    .replace("measured_by: big_executions_30d", "measured_by: big_executions_3d"))
    messages = [p.message for p in check_config(root).problems]
    assert "'fast_orders_pct_30d' has no data while sent_orders_30d is 0: require it in the same condition " \
           "('sent_orders_30d > 0 and ...')" in messages
    assert "unknown metric 'big_executions_3d' (did you mean 'big_executions_30d'?)" in messages


# --------------------------------------------------------------------------- the CLI
def _gate_line(out: str, metric: str) -> str:
    [line] = [ln for ln in out.splitlines() if re.match(r"  \[(ok|  )\] ", ln) and f"{metric} " in ln]
    return line


@pytest.fixture(scope="module")
def paper_runs(tmp_path_factory) -> dict:
    """`genesis replay` of the bundled sample with strategies off, on Sniper and Hunter,
    with no order and with one manual buy ($40 on Sniper, $400 on Hunter: an iceberg)."""
    runs = {}
    for tier, usd in (("sniper", 40), ("hunter", 400)):
        for name, script in (("idle", []), ("traded", [{"after": "60s", "kind": "order", "side": "buy",
                                                         "symbol": "BTCUSDT", "notional_usd": usd}])):
            tmp = tmp_path_factory.mktemp(f"{tier}_{name}")
            run = replay(tmp, tier, config_copy(tmp, equity=9_000), sample_paths(), script)
            out = cli("tier", "--db", f"sqlite:///{run.db}")
            assert out.returncode == 0, out.stderr
            runs[tier, name] = (run, out.stdout)
    return runs


def test_with_no_orders_the_measured_gates_are_not_measured_yet(paper_runs):
    run, out = paper_runs["sniper", "idle"]
    assert not run.of("order") and not run.of("order_sent")
    assert _gate_line(out, "fast_orders_pct_30d").startswith("  [  ] sent_orders_30d > 0 and fast_orders_pct_30d >= 90")
    assert "fast_orders_pct_30d: not measured yet, sent_orders_30d = 0" in out
    run, out = paper_runs["hunter", "idle"]
    assert not run.of("execution_done")
    assert "big_executions_30d = 0, sliced_orders_pct_30d: not measured yet" in _gate_line(out, "sliced_orders_pct_30d")
    assert "filled_executions_30d = 0, max_impact_pct_30d: not measured yet" in _gate_line(out, "max_impact_pct_30d")
    assert _gate_line(out, "max_impact_pct_30d").startswith("  [  ] ")   # no data never passes a "<=" gate


def test_measured_orders_pass_the_gates_with_their_journaled_values(paper_runs):
    run, out = paper_runs["sniper", "traded"]
    sent = run.of("order_sent")
    assert [e["data"]["latency_ms"] for e in sent] == [0.0]
    assert sent[0]["data"]["client_id"] == run.of("order")[0]["data"]["client_id"]
    line = _gate_line(out, "fast_orders_pct_30d")
    assert line.startswith("  [ok] ") and "fast_orders_pct_30d = 100, sent_orders_30d = 1" in line

    run, out = paper_runs["hunter", "traded"]
    [intent] = run.of("intent")
    [done] = run.of("execution_done")
    d = done["data"]
    assert intent["data"]["algo"] == d["algo"] == "iceberg"
    assert d["slices"] == d["planned_slices"] == intent["data"]["slices"] == len(run.of("order")) >= 3
    fills = run.of("fill")
    assert d["filled_usd"] == pytest.approx(sum(f["data"]["qty"] * f["data"]["price"] for f in fills), abs=1e-5)
    qty = sum(f["data"]["qty"] for f in fills)
    assert d["impact_pct"] == pytest.approx((d["filled_usd"] / qty / d["arrival_mid"] - 1) * 100, abs=1e-5)
    # slices after the first were sent at the first event at or after their due time
    latencies = [e["data"]["latency_ms"] for e in run.of("order_sent")]
    assert latencies[0] == 0.0 and all(0 <= x < 1000 for x in latencies)
    line = _gate_line(out, "sliced_orders_pct_30d")
    assert line.startswith("  [ok] ") and "big_executions_30d = 1, sliced_orders_pct_30d = 100" in line
    line = _gate_line(out, "max_impact_pct_30d")
    assert f"max_impact_pct_30d = {d['impact_pct']:,.4g}" in line
    assert line.startswith("  [ok] " if d["impact_pct"] <= 0.5 else "  [  ] ")


def test_the_journal_is_identical_on_a_second_replay(paper_runs, tmp_path):
    """Latency and impact come from event time and the recorded book only: a replay gives
    the same measurements."""
    first, _ = paper_runs["hunter", "traded"]
    again = replay(tmp_path, "hunter", first.config, sample_paths(), first.script)
    keep = ("order_sent", "execution_done")
    assert [e for e in again.entries if e["kind"] in keep] == [e for e in first.entries if e["kind"] in keep]


# --------------------------------------------------------------------------- live
def test_live_orders_are_measured_from_the_input_to_the_written_request(tmp_path):
    """`genesis run --mode live` against the simulator: before any order the latency gate
    is not measured yet; a manual buy's request is stamped when written, and the session
    logs an order_sent input with the time from the command's input to that write (the
    replayed log gives `genesis tier` the same value); the execution's impact is its fill
    against the mid when it was decided."""
    from decimal import Decimal  # noqa: PLC0415

    from live_helpers import LiveProc, order  # noqa: PLC0415

    from genesis.simulator import SimulatorThread  # noqa: PLC0415

    balances = {"USDT": Decimal("1000"), "BTC": Decimal("0"), "ETH": Decimal("0")}
    with SimulatorThread(speed=2, balances={k: str(v) for k, v in balances.items()}) as sim:
        live = LiveProc(tmp_path, sim)
        try:
            live.start()
            before = live.cli("tier")
            assert before.returncode == 0, before.stderr
            assert "fast_orders_pct_30d: not measured yet, sent_orders_30d = 0" in before.stdout
            assert order(live, "buy")["status"] == "applied"
            live.wait(lambda: live.count("order_sent") >= 1 and live.count("execution_done") >= 1,
                      "the order's send report and the end of its execution")
            [sent] = live.entries("order_sent")
            assert sent["client_id"] == "g1" and 0 < sent["latency_ms"] < 1000, sent
            [logged] = live.inputs("order_sent")   # an input: in the log before it was processed
            assert (logged["_client_id"], logged["latency_ms"]) == ("g1", sent["latency_ms"])
            [done] = live.entries("execution_done")
            fills = live.entries("fill")
            qty = sum(f["qty"] for f in fills)
            filled = sum(f["qty"] * f["price"] for f in fills)
            assert (done["slices"], done["planned_slices"], done["algo"]) == (1, 1, "market")
            assert done["filled_usd"] == pytest.approx(filled, abs=1e-6) and done["arrival_mid"] > 0
            assert done["impact_pct"] == pytest.approx((filled / qty / done["arrival_mid"] - 1) * 100, abs=1e-5)
            after = live.cli("tier")
            assert after.returncode == 0, after.stderr
            fast = 100 if sent["latency_ms"] <= 100 else 0
            assert f"fast_orders_pct_30d = {fast}, sent_orders_30d = 1" in after.stdout
        finally:
            live.stop()
