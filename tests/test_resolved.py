"""Resolved messages: an alerts-stage rule that notified when it fired says so when its
condition clears (Alertmanager's resolved notification), and the messages of a rule's own
`resolve:` carry the resolved status, which PagerDuty reads to close the incident. Through
the real engine and dispatcher to an HTTP receiver on 127.0.0.1."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_engine_cli import ListFeed
from test_notify import Receiver

from genesis.config.checks import check_config
from genesis.engine.events import Event
from genesis.engine.runner import open_session
from genesis.notify.channels import Message
from genesis.notify.dispatcher import dispatcher_for

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000


def _tick(ts: int) -> Event:
    return Event("book_ticker", ts, "BTCUSDT", {"bid": 59_999.0, "ask": 60_001.0, "bid_qty": 1.0, "ask_qty": 1.0,
                                                "mid": 60_000.0})


def _probe(ts: int, memory_pct: float) -> Event:
    return Event("system_probe", ts, "", {"memory_pct": memory_pct, "cpu_pct": 5.0, "disk_free_mb": 50_000.0})


def _run(tmp_path, events, root: Path = ROOT, routing_key_env="PD"):
    """Run `events` through the shipped configuration; warnings and pages go to a
    PagerDuty channel at a local receiver. (notes, journal actions, receiver bodies)"""
    receiver = Receiver()
    config = check_config(root)
    assert config.ok, [p.message for p in config.problems]
    webhook = config.files.settings.data["notifications"]["channels"]["pager"]   # defaults filled in
    channels = {"pd": {**webhook, "kind": "pagerduty", "routing_key_env": routing_key_env, "url_env": None,
                       "endpoint": receiver.url + "/pd", "retries": 0, "min_interval": "0s"}}
    dispatcher = dispatcher_for({"channels": channels}, tmp_path, environ={routing_key_env: "rk-123"}).start()
    session = open_session(root, config, "sniper", ListFeed(events), f"sqlite:///{tmp_path / 'j.db'}", "replay",
                           notify=lambda note: dispatcher.submit(Message.of(note), ["pd"]))
    for event in session.feed:
        session.engine.process(event)
    session.journal.flush()
    actions = [(r.rule, json.loads(r.data)) for r in session.journal.entries() if r.kind == "action"]
    notes = list(session.engine.notifications)
    session.journal.close()
    assert dispatcher.wait_idle(10) and dispatcher.close()
    receiver.close()
    return notes, actions, [body for _, body in receiver.received]


def test_an_alert_that_clears_sends_a_resolved_message_and_pagerduty_resolves(tmp_path):
    events = [_tick(T0 + i * 1000) for i in range(20)]
    events[3], events[12] = _probe(T0 + 3000, 75.0), _probe(T0 + 12_000, 40.0)
    notes, actions, bodies = _run(tmp_path, events)
    mine = [(n.ts - T0, n.status, n.text) for n in notes if n.rule == "memory_warning"]
    assert mine == [(3000, "firing", "Memory use is 75%."),
                    (12_000, "resolved", "Resolved: memory_warning (memory_pct > 70 no longer holds).")]
    assert [d.get("status", "firing") for rule, d in actions if rule == "memory_warning"] == ["firing", "resolved"]
    sent = [(b["event_action"], b["dedup_key"]) for b in bodies if b["dedup_key"] == "genesis-memory_warning"]
    assert sent == [("trigger", "genesis-memory_warning"), ("resolve", "genesis-memory_warning")]


def test_a_rules_own_resolve_message_is_sent_as_resolved_and_not_doubled(tmp_path):
    events = [_tick(T0 + i * 1000) for i in range(70)]
    events[5] = Event("api_status", T0 + 5000, "", {"reachable": False})
    events[50] = Event("api_status", T0 + 50_000, "", {"reachable": True})
    notes, _, bodies = _run(tmp_path, events)
    mine = [(n.ts - T0, n.status, n.text) for n in notes if n.rule == "exchange_unreachable"]
    assert mine == [(35_000, "firing", "The exchange API has been unreachable for 30 s. New orders are halted."),
                    (50_000, "resolved", "The exchange API is reachable again.")]
    assert [b["event_action"] for b in bodies if b["dedup_key"] == "genesis-exchange_unreachable"] == \
        ["trigger", "resolve"]


def test_a_rule_outside_the_alerts_stage_gets_no_automatic_resolved_message(tmp_path):
    root = tmp_path / "config"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(".*", "tests", "bench", "docs", "genesis", "*.db",
                                                              "logs", "deploy", "rule_tests"))
    (root / "rules" / "watch.yaml").write_text(
        "rules:\n"
        "  - id: memory_watch\n"
        "    stage: risk\n"
        '    when: "memory_pct > 70"\n'
        "    severity: warning\n"
        '    then: [{notify: "Memory is high while trading."}]\n')
    events = [_tick(T0 + i * 1000) for i in range(20)]
    events[3], events[12] = _probe(T0 + 3000, 75.0), _probe(T0 + 12_000, 40.0)
    notes, actions, _ = _run(tmp_path, events, root)
    assert [(n.rule, n.status) for n in notes if n.rule in ("memory_watch", "memory_warning")] == [
        ("memory_watch", "firing"), ("memory_warning", "firing"), ("memory_warning", "resolved")]   # stage order
    assert [rule for rule, d in actions if d.get("status") == "resolved"] == ["memory_warning"]
