"""The live edge's alerts delivered end to end: `genesis run --mode live` against the
simulator on 127.0.0.1, its warnings routed to a webhook and its pages to another, both
an HTTP receiver the test starts. Slow exchange answers raise `slow_orders` and
`api_latency_high`; coins bought elsewhere while it was down raise `position_mismatch`
at the restart; another process locking the journal makes its writes fail, which raises
`database_write_failures` (and nothing is lost); the simulator going away raises `exchange_unreachable`,
`websocket_down` and `user_stream_down`. The `for:` windows and the latency threshold are
shortened in this test's configuration copy (the shipped values are pinned by
rule_tests/alerts_test.yaml); the path from the exchange to the receiver is the real one."""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from live_helpers import LiveProc, order
from scenario_helpers import edited_copy
from test_metrics_endpoint import free_port, scrape
from test_notify import Receiver

from genesis.simulator import SimulatorThread, ccxt_config

ROOT = Path(__file__).resolve().parents[1]
START = {"USDT": Decimal("1000"), "BTC": Decimal("0"), "ETH": Decimal("0")}
EDITS = {
    "alerts.yaml": {
        "  warning: [console, log]\n": "  warning: [console, log, hook]\n",
        "  critical: [console, log, pager]\n": "  critical: [console, log, page]\n",
        'when: "not api_reachable"\n    for: 30s': 'when: "not api_reachable"\n    for: 3s',
        'when: "not ws_market_connected"\n    for: 10s': 'when: "not ws_market_connected"\n    for: 2s',
        'when: "not ws_user_connected"\n    for: 10s': 'when: "not ws_user_connected"\n    for: 2s',
        'when: "api_latency_mean_1m > 200"': 'when: "api_latency_mean_1m > 100"',
    },
    "genesis.yaml": {
        "    pager: {kind: webhook, url_env: GENESIS_PAGER_URL, min_interval: 5m, group_wait: 10s}\n":
            "    pager: {kind: webhook, url_env: GENESIS_PAGER_URL, min_interval: 5m, group_wait: 10s}\n"
            "    hook: {kind: webhook, url_env: GENESIS_TEST_HOOK_URL, retries: 0}\n"
            "    page: {kind: webhook, url_env: GENESIS_TEST_PAGE_URL, retries: 0}\n",
        "health_probe: {interval: 15s}": "health_probe: {interval: null}",
    },
}


def _config(tmp: Path, metrics_port: int | None = None) -> Path:
    """The shipped configuration with EDITS, serving /metrics on `metrics_port` (None: not at all)."""
    port = "null" if metrics_port is None else metrics_port
    served = {"metrics_endpoint: {port: 9464}": f"metrics_endpoint: {{port: {port}}}"}
    return edited_copy(tmp, {**EDITS, "genesis.yaml": {**EDITS["genesis.yaml"], **served}})


@contextlib.contextmanager
def routed_to(receiver: Receiver):
    """The channel variables of the config copy, pointing at `receiver` (LiveProc passes
    the test's environment on)."""
    saved = {k: os.environ.get(k) for k in ("GENESIS_TEST_HOOK_URL", "GENESIS_TEST_PAGE_URL")}
    os.environ["GENESIS_TEST_HOOK_URL"] = receiver.url + "/hook"
    os.environ["GENESIS_TEST_PAGE_URL"] = receiver.url + "/page"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def live_scene(tmp_path_factory):
    """Run the scene once: every body the receiver got, and /metrics after the slow orders."""
    tmp = tmp_path_factory.mktemp("live_alerts")
    receiver = Receiver()
    sim = SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}).start()
    port = free_port()
    live = LiveProc(tmp, sim, config=_config(tmp, port))
    with routed_to(receiver):
        scraped = _scene(live, sim, receiver, port)
    return receiver.received, scraped


@pytest.fixture(scope="module")
def delivered(live_scene):
    """Every body the receiver got, by path."""
    return live_scene[0]


def _scene(live: LiveProc, sim, receiver: Receiver, port: int) -> dict:
    try:
        live.start()
        sim.set_faults({"http_delay_ms": 700})            # every answer 0.7 s late: acks too
        for n in range(5):
            placed = order(live, "buy" if n % 2 == 0 else "sell", usd=12)
            assert placed["status"] == "applied", placed
            live.wait(lambda: live.count("fill") >= n + 1, f"fill {n + 1}")
        live.wait(lambda: {"slow_orders", "api_latency_high"} <= {b["rule"] for _, b in receiver.received},
                  "the slow-answer alerts at the receiver", timeout=30)
        time.sleep(1.0)                                    # /metrics is brought up to date every 0.5 s
        scraped = scrape(port)
        sim.set_faults({}, reset=True)
        live.stop()                                        # coins paid in while it is down: no trade explains them
        sim.transfer("ETH", "0.01")
        live.start()
        live.wait(lambda: "position_mismatch" in {b["rule"] for _, b in receiver.received},
                  "the mismatch page at the receiver", timeout=30)
        # another process holds the journal: each write waits out the busy timeout (2 s) and fails
        lock = sqlite3.connect(live.db, timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            live.wait(lambda: "database_write_failures" in {b["rule"] for _, b in receiver.received},
                      "the journal-write page at the receiver", timeout=30)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        # nothing was lost: the entries of the failed writes are written once the journal is free
        live.wait(lambda: live.rows("SELECT count(*) FROM entries WHERE kind = 'fire' AND rule = ?",
                                    ("database_write_failures",))[0][0] == 1, "the firing in the journal", timeout=20)
        sim.stop()                                         # the exchange is gone: REST and both streams
        wanted = {"exchange_unreachable", "websocket_down", "user_stream_down"}
        live.wait(lambda: wanted <= {b["rule"] for _, b in receiver.received}, "the outage pages at the receiver",
                  timeout=45)
        return scraped
    finally:
        live.stop()
        sim.stop()
        receiver.close()


@pytest.mark.parametrize(("rule", "route", "severity", "text"), [
    ("slow_orders", "/page", "critical", r"The last \d+ orders each took over 500 ms to acknowledge\."),
    ("api_latency_high", "/hook", "warning", r"API latency averages [\d,.]+ ms over the last minute\."),
    ("position_mismatch", "/page", "critical",
     r"Positions disagree with the exchange by [\d,.]+ USD\. Trading is halted until reconciled\."),
    ("database_write_failures", "/page", "critical",
     r"\d+ journal writes failed in 60 s\. Trading halts so that nothing goes unrecorded\."),
    ("exchange_unreachable", "/page", "critical",
     r"The exchange API has been unreachable for 30 s\. New orders are halted\."),
    ("websocket_down", "/page", "critical", r"The market-data websocket has been down for 10 s\."),
    ("user_stream_down", "/page", "critical", r"The user-data websocket has been down for 10 s: .*"),
])
def test_each_live_alert_reaches_its_route(delivered, rule, route, severity, text):
    bodies = [(path, body) for path, body in delivered if body["rule"] == rule]
    assert bodies, f"{rule} never reached the receiver; got {sorted({b['rule'] for _, b in delivered})}"
    path, body = bodies[0]
    assert (path, body["severity"], body["status"], body["source"]) == (route, severity, "firing", "genesis")
    assert re.fullmatch(text, body["text"]), body["text"]


def test_order_round_trips_and_event_times_are_served_at_metrics(live_scene):
    """Five orders whose every answer came 0.7 s late: each round trip is in the histogram's
    buckets above 0.5 s; every input event is timed."""
    scraped = live_scene[1]
    trips = scraped[("genesis_order_round_trip_seconds_count", ())]
    assert trips >= 5
    assert scraped[("genesis_order_round_trip_seconds_bucket", (("le", "0.5"),))] == 0
    assert scraped[("genesis_order_round_trip_seconds_bucket", (("le", "+Inf"),))] == trips
    assert scraped[("genesis_order_round_trip_seconds_sum", ())] >= 0.7 * trips
    assert scraped[("genesis_event_seconds_count", ())] > 100


def test_request_weight_used_elsewhere_over_95_percent_pages(tmp_path):
    """Another client on the same IP spends the minute's weight (the exchange counts per
    IP); Genesis learns it from the header of its next answer: rate_limit_critical."""
    receiver = Receiver()
    sim = SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}, weight_limit=1000).start()
    live = LiveProc(tmp_path, sim, config=_config(tmp_path))
    try:
        with routed_to(receiver):
            live.start()
            outside = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
            outside.load_markets()
            while (used := sim.state()["limits"]["used_weight"]) < 960:   # 96%, and not over the limit
                outside.fetch_order_book("BTC/USDT", limit=100 if used > 900 else 1000)
            assert order(live, "buy", usd=12)["status"] == "applied"
            live.wait(lambda: any(b["rule"] == "rate_limit_critical" for _, b in receiver.received),
                      "the rate-limit page at the receiver", timeout=30)
    finally:
        live.stop()
        sim.stop()
        receiver.close()
    [(path, body)] = [(p, b) for p, b in receiver.received if b["rule"] == "rate_limit_critical"]
    assert (path, body["severity"]) == ("/page", "critical")
    used_pct = float(re.fullmatch(r"Request-weight use is at ([\d.]+)% of the exchange limit\.", body["text"]).group(1))
    assert 95 < used_pct <= 100
