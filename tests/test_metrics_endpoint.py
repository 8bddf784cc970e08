"""The Prometheus endpoint (genesis.observe.prometheus): scraped over HTTP on 127.0.0.1
from a real engine, and from a running `genesis run`."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from scenario_helpers import edited_copy

from genesis.config.checks import check_config
from genesis.engine.events import Event
from genesis.engine.runner import open_session
from genesis.observe.prometheus import MetricsEndpoint

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict:
    """{(name, ((label, value), ...)): value} of every sample at /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def ticker(ts: int) -> Event:
    return Event("book_ticker", ts, "BTCUSDT", {"bid": 59_999.0, "ask": 60_001.0, "bid_qty": 1.0, "ask_qty": 1.0,
                                                "mid": 60_000.0})


def test_a_scrape_shows_the_engines_state_firings_and_counts():
    from test_engine_cli import ListFeed   # noqa: PLC0415

    events = [ticker(T0 + i * 1000) for i in range(80)]
    events[5] = Event("api_status", T0 + 5000, "", {"reachable": False})
    events[60] = Event("api_status", T0 + 60_000, "", {"reachable": True})
    session = open_session(ROOT, check_config(ROOT), "sniper", ListFeed(events), None, "replay")
    endpoint = MetricsEndpoint()
    endpoint.serve("127.0.0.1", 0)
    try:
        feed = iter(session.feed)
        for _ in range(50):                      # unreachable since 5 s: halted at 35 s
            session.engine.process(next(feed))
        endpoint.update(session.engine)
        first = scrape(endpoint.port)
        for event in feed:
            session.engine.process(event)
        endpoint.update(session.engine)
        second = scrape(endpoint.port)
    finally:
        endpoint.close()
    assert first[("genesis_trading_state", (("state", "HALTED"),))] == 1.0
    assert first[("genesis_trading_state", (("state", "ACTIVE"),))] == 0.0
    assert first[("genesis_rule_firings_total", (("rule", "exchange_unreachable"), ("severity", "critical")))] == 1.0
    assert first[("genesis_events_total", ())] == 50.0
    assert first[("genesis_tier", (("tier", "sniper"),))] == 1.0
    assert first[("genesis_equity_usd", ())] == session.engine.config.files.settings.data["paper"]["starting_equity_usd"]
    assert second[("genesis_trading_state", (("state", "ACTIVE"),))] == 1.0
    assert second[("genesis_events_total", ())] == 80.0
    assert second[("genesis_rule_firings_total", (("rule", "exchange_unreachable"), ("severity", "critical")))] == 1.0


def _config(tmp_path: Path, port: int) -> Path:
    return edited_copy(tmp_path, {"genesis.yaml": {"metrics_endpoint: {port: 9464}": f"metrics_endpoint: {{port: {port}}}"}})


def test_genesis_run_serves_metrics_while_it_runs(tmp_path):
    port = free_port()
    root = _config(tmp_path, port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "run", "--tier", "sniper", "--speed", "1",
                             "--db", f"sqlite:///{tmp_path / 'j.db'}", "--config", str(root)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, seen = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            try:
                seen = scrape(port)
            except OSError:
                seen = {}
            if seen.get(("genesis_events_total", ()), 0) > 0:
                break
            time.sleep(0.2)
        assert seen.get(("genesis_events_total", ()), 0) > 0, "no events counted at /metrics within 60 s"
        assert seen[("genesis_trading_state", (("state", "ACTIVE"),))] == 1.0
        assert seen[("genesis_equity_usd", ())] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert f"metrics on http://127.0.0.1:{port}/metrics" in out
    assert "Traceback" not in out + err


def test_a_port_in_use_is_reported_and_trading_goes_on(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        root = _config(tmp_path, port)
        result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "run", "--tier", "sniper", "--speed", "max",
                                 "--db", f"sqlite:///{tmp_path / 'j.db'}", "--config", str(root)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"genesis: no metrics endpoint: 127.0.0.1:{port} is not free" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_the_dashboard_and_scrape_config_name_what_the_endpoint_serves():
    import json   # noqa: PLC0415
    import re   # noqa: PLC0415

    import yaml   # noqa: PLC0415

    from genesis.observe.loopwatch import LoopWatch   # noqa: PLC0415

    endpoint = MetricsEndpoint(LoopWatch())
    families = list(endpoint.registry.collect())
    served = {metric.name for metric in families} | {sample.name for metric in families for sample in metric.samples}
    served |= {f"{name}_total" for name in served}
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"genesis_[a-z_]+", target["expr"])}
    assert used and used <= served, used - served
    scrape_config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    default_port = json.loads((ROOT / "schema" / "settings.schema.json").read_text())[
        "properties"]["metrics_endpoint"]["properties"]["port"]["default"]
    assert scrape_config["scrape_configs"][0]["static_configs"][0]["targets"] == [f"127.0.0.1:{default_port}"]
