"""Notification delivery (genesis.notify) against real servers on 127.0.0.1 that the tests
start: an HTTP receiver (generic webhook, and the Slack, Discord, Telegram and PagerDuty
formats) and an SMTP server (aiosmtpd). They check the payloads received, that a
receiver that is down or answers 500 loses nothing and never blocks the caller, and
that no secret reaches an error text."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from scenario_helpers import edited_copy

from genesis.config.checks import check_config
from genesis.engine.events import Event
from genesis.engine.runner import open_session, replay
from genesis.notify.channels import Channel, Message
from genesis.notify.dispatcher import Dispatcher

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "T0KEN-s3cret-abc123"


class Receiver:
    """An HTTP server on 127.0.0.1 that records every JSON POST; `status` and `delay_s`
    set how it answers."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        self.status, self.delay_s = 200, 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):   # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, json.loads(body)))
                time.sleep(receiver.delay_s)
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def channel(name: str, kind: str, **settings) -> Channel:
    """A channel as genesis.yaml would give it, with fast retries."""
    timing = {k: settings.pop(k) for k in ("retries", "backoff_s", "min_interval_s", "group_wait_s", "fallback",
                                           "timeout_s") if k in settings}
    defaults = {"endpoint": None, "smtp_port": 587, "starttls": True, "path": "logs/alerts.jsonl",
                "max_bytes": 10_485_760, "backups": 5}
    return Channel(name, kind, {"kind": kind, **defaults, **settings},
                   min_interval_s=timing.get("min_interval_s", 0.0), group_wait_s=timing.get("group_wait_s", 0.0),
                   timeout_s=timing.get("timeout_s", 2.0), retries=timing.get("retries", 2),
                   backoff_s=timing.get("backoff_s", 0.01), fallback=timing.get("fallback"))


def critical(text: str = "Trading halted: daily loss limit reached.", rule: str = "daily_loss_limit") -> Message:
    return Message(1_723_118_400_000, "critical", rule, text)


def test_each_http_kind_posts_its_own_format_to_the_receiver(receiver):
    env = {"HOOK": f"{receiver.url}/hook/{TOKEN}", "SLACK": f"{receiver.url}/slack/{TOKEN}",
           "DISCORD": f"{receiver.url}/discord/{TOKEN}", "TG": TOKEN, "PD": TOKEN}
    channels = {
        "hook": channel("hook", "webhook", url_env="HOOK"),
        "slack": channel("slack", "slack", url_env="SLACK"),
        "discord": channel("discord", "discord", url_env="DISCORD"),
        "tg": channel("tg", "telegram", token_env="TG", chat_id=4242, endpoint=f"{receiver.url}/tg"),
        "pd": channel("pd", "pagerduty", routing_key_env="PD", endpoint=f"{receiver.url}/pd"),
    }
    dispatcher = Dispatcher(channels, environ=env).start()
    assert dispatcher.submit(critical(), list(channels))
    assert dispatcher.submit(Message(1_723_118_460_000, "critical", "daily_loss_limit", "Back under the limit.",
                                     status="resolved"), ["pd"])
    assert dispatcher.wait_idle(10) and dispatcher.close()
    got = dict(receiver.received[:5])
    assert got[f"/hook/{TOKEN}"] == {"ts": 1_723_118_400_000, "severity": "critical", "rule": "daily_loss_limit",
                                     "text": "Trading halted: daily loss limit reached.", "status": "firing",
                                     "source": "genesis"}
    assert got[f"/slack/{TOKEN}"] == {"text": "[critical] Trading halted: daily loss limit reached. (daily_loss_limit)"}
    assert got[f"/discord/{TOKEN}"]["content"].startswith("[critical] Trading halted")
    assert got[f"/tg/bot{TOKEN}/sendMessage"] == {
        "chat_id": 4242, "text": "[critical] Trading halted: daily loss limit reached. (daily_loss_limit)"}
    assert got["/pd"] == {"routing_key": TOKEN, "event_action": "trigger", "dedup_key": "genesis-daily_loss_limit",
                          "payload": {"summary": "Trading halted: daily loss limit reached.", "source": "genesis",
                                      "component": "daily_loss_limit", "severity": "critical"}}
    assert receiver.received[5] == ("/pd", {"routing_key": TOKEN, "event_action": "resolve",
                                            "dedup_key": "genesis-daily_loss_limit"})
    assert dict(dispatcher.sent) == {"hook": 1, "slack": 1, "discord": 1, "tg": 1, "pd": 2}
    assert not dispatcher.failures


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):   # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


def test_email_reaches_a_real_smtp_server():
    inbox = Inbox()
    with socket.socket() as probe:   # a free port: aiosmtpd's controller needs to know it in advance
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        mail = channel("mail", "email", smtp_host="127.0.0.1", smtp_port=port, starttls=False,
                       to=["trader@example.org"], **{"from": "genesis@example.org"})
        failures = Dispatcher({"mail": mail}, environ={}).deliver(critical(), ["mail"])
    finally:
        smtp.stop()
    assert failures == []
    sender, recipients, content = inbox.messages[0]
    assert sender == "genesis@example.org" and recipients == ["trader@example.org"]
    assert "Subject: [genesis critical] daily_loss_limit" in content
    assert "Trading halted: daily loss limit reached." in content


def test_a_receiver_answering_500_is_retried_then_the_page_goes_to_the_fallback(receiver):
    receiver.status = 500
    env = {"HOOK": f"{receiver.url}/hook/{TOKEN}"}
    channels = {"pager": channel("pager", "webhook", url_env="HOOK", retries=2, fallback="backup"),
                "backup": channel("backup", "slack", url_env="BACKUP")}
    env["BACKUP"] = f"{receiver.url}/backup"
    dispatcher = Dispatcher(channels, environ=env).start()
    dispatcher.submit(critical(), ["pager"])
    assert dispatcher.wait_idle(10)
    paths = [p for p, _ in receiver.received]
    assert paths == [f"/hook/{TOKEN}"] * 3 + ["/backup"] * 3   # 1 + 2 retries each; the backup answers 500 too
    first = dispatcher.failures[0]
    assert (first.channel, first.attempts, first.fallback) == ("pager", 3, "backup")
    assert first.error == "channel pager: the receiver answered HTTP 500"
    assert all(TOKEN not in f.error for f in dispatcher.failures)
    receiver.status = 200
    dispatcher.submit(critical("Again."), ["pager"])
    assert dispatcher.wait_idle(10) and dispatcher.close()
    assert receiver.received[-1] == (f"/hook/{TOKEN}", {**critical("Again.").record()})
    assert dispatcher.sent["pager"] == 1 and dispatcher.failed["pager"] == 1


def test_a_refused_request_and_a_missing_variable_are_not_retried(receiver):
    receiver.status = 404
    channels = {"hook": channel("hook", "webhook", url_env="HOOK", retries=3),
                "unset": channel("unset", "slack", url_env="NOT_SET_ANYWHERE", retries=3)}
    dispatcher = Dispatcher(channels, environ={"HOOK": f"{receiver.url}/gone"})
    failures = dispatcher.deliver(critical(), ["hook", "unset"])
    assert len(receiver.received) == 1
    assert [(f.channel, f.attempts) for f in failures] == [("hook", 1), ("unset", 1)]
    assert failures[1].error == "channel unset: environment variable NOT_SET_ANYWHERE is not set"


def test_a_slow_or_dead_receiver_never_blocks_the_caller(receiver):
    receiver.delay_s = 0.2
    dead = Receiver()
    dead_url = dead.url
    dead.close()   # nothing listens there now
    channels = {"slow": channel("slow", "webhook", url_env="SLOW", retries=0),
                "dead": channel("dead", "webhook", url_env="DEAD", retries=1)}
    dispatcher = Dispatcher(channels, environ={"SLOW": f"{receiver.url}/slow", "DEAD": f"{dead_url}/x"}).start()
    started = time.perf_counter()
    for n in range(10):
        assert dispatcher.submit(critical(f"message {n}"), ["slow", "dead"])
    assert time.perf_counter() - started < 0.1    # ten sends would take 2 s on the caller's thread
    assert dispatcher.close(timeout_s=60)
    assert dispatcher.sent["slow"] == 10 and dispatcher.failed["dead"] == 10
    assert dispatcher.failures[0].error.startswith("channel dead: could not reach the receiver")


def test_a_full_queue_refuses_at_once_and_says_so(receiver):
    receiver.delay_s = 0.5
    dispatcher = Dispatcher({"hook": channel("hook", "webhook", url_env="HOOK")}, queue_size=2,
                            environ={"HOOK": f"{receiver.url}/h"}).start()
    results = [dispatcher.submit(critical(f"m{n}"), ["hook"]) for n in range(6)]
    assert results[:2] == [True, True] and results.count(False) >= 3
    assert dispatcher.dropped == results.count(False)
    assert dispatcher.failures[0].error == "the notification queue is full (2 waiting)"
    assert dispatcher.close(timeout_s=10)


def test_min_interval_drops_a_repeat_of_the_same_message(receiver):
    now = [0.0]
    channels = {"hook": channel("hook", "webhook", url_env="HOOK", min_interval_s=300.0)}
    dispatcher = Dispatcher(channels, environ={"HOOK": f"{receiver.url}/h"}, clock=lambda: now[0])
    dispatcher.deliver(critical(), ["hook"])
    now[0] = 299.0
    dispatcher.deliver(critical(), ["hook"])           # the same rule and text within 5 minutes
    dispatcher.deliver(critical("Another text."), ["hook"])
    now[0] = 301.0
    dispatcher.deliver(critical(), ["hook"])
    assert [b["text"] for _, b in receiver.received] == [
        "Trading halted: daily loss limit reached.", "Another text.", "Trading halted: daily loss limit reached."]
    assert dispatcher.suppressed["hook"] == 1


def test_messages_that_come_within_group_wait_go_out_as_one(receiver, tmp_path):
    env = {"HOOK": f"{receiver.url}/hook", "SLACK": f"{receiver.url}/slack", "PD": TOKEN}
    log = channel("log", "log", group_wait_s=0.4)
    log.root = tmp_path
    channels = {"hook": channel("hook", "webhook", url_env="HOOK", group_wait_s=0.4),
                "slack": channel("slack", "slack", url_env="SLACK", group_wait_s=0.4),
                "pd": channel("pd", "pagerduty", routing_key_env="PD", endpoint=f"{receiver.url}/pd",
                              group_wait_s=0.4),
                "log": log,
                "now": channel("now", "webhook", url_env="HOOK")}   # no group_wait: each at once
    dispatcher = Dispatcher(channels, environ=env).start()
    first = critical()
    second = Message(1_723_118_400_500, "warning", "drawdown_warning", "Drawdown 6.1% of the day's peak.")
    third = Message(1_723_118_400_900, "info", "memory_warning", "Memory back to normal.", status="resolved")
    started = time.monotonic()
    for m in (first, second, third):
        assert dispatcher.submit(m, list(channels))
    deadline = time.monotonic() + 5
    while sum(p == "/hook" for p, _ in receiver.received) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    hooks = [b for p, b in receiver.received if p == "/hook"]
    assert [b["rule"] for b in hooks[:3]] == ["daily_loss_limit", "drawdown_warning", "memory_warning"]  # `now`
    grouped = hooks[3]
    assert time.monotonic() - started >= 0.4
    assert grouped["severity"] == "critical" and grouped["status"] == "firing"
    assert grouped["rule"] == "daily_loss_limit,drawdown_warning,memory_warning"
    assert grouped["alerts"] == [first.record(), second.record(), third.record()]
    assert grouped["text"].splitlines() == [
        "3 alerts:", "[critical] Trading halted: daily loss limit reached. (daily_loss_limit)",
        "[warning] Drawdown 6.1% of the day's peak. (drawdown_warning)",
        "[info] RESOLVED Memory back to normal. (memory_warning)"]
    assert dispatcher.wait_idle(5) and dispatcher.close()
    slack = [b for p, b in receiver.received if p == "/slack"]
    assert slack == [{"text": "[critical] " + grouped["text"]}]
    # PagerDuty keeps one incident per rule, so a group is sent as one event per message
    assert [(b["event_action"], b["dedup_key"]) for p, b in receiver.received if p == "/pd"] == [
        ("trigger", "genesis-daily_loss_limit"), ("trigger", "genesis-drawdown_warning"),
        ("resolve", "genesis-memory_warning")]
    lines = [json.loads(x) for x in (tmp_path / "logs" / "alerts.jsonl").read_text().splitlines()]
    assert lines == [first.record(), second.record(), third.record()]   # the log keeps one record each
    assert dict(dispatcher.sent) == {"now": 3, "hook": 1, "slack": 1, "pd": 1, "log": 1}


def test_a_group_still_held_is_sent_when_the_dispatcher_closes(receiver):
    dispatcher = Dispatcher({"hook": channel("hook", "webhook", url_env="HOOK", group_wait_s=600.0)},
                            environ={"HOOK": f"{receiver.url}/h"}).start()
    dispatcher.submit(critical(), ["hook"])
    dispatcher.submit(critical("Second.", rule="drawdown_halt"), ["hook"])
    time.sleep(0.1)
    assert receiver.received == []                     # held for ten minutes...
    assert dispatcher.close(timeout_s=5)               # ...but a stop sends it now
    assert [b["rule"] for _, b in receiver.received] == ["daily_loss_limit,drawdown_halt"]


def test_the_log_channel_writes_json_lines_and_rotates(tmp_path):
    log = channel("log", "log", path="alerts/alerts.jsonl", max_bytes=1024, backups=2)
    log.root = tmp_path
    dispatcher = Dispatcher({"log": log}, environ={})
    for n in range(30):
        assert dispatcher.deliver(critical(f"line {n:02d}"), ["log"]) == []
    files = sorted(p.name for p in (tmp_path / "alerts").iterdir())
    assert files == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"]
    last = [json.loads(x) for x in (tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert last[-1]["text"] == "line 29" and all(x["severity"] == "critical" for x in last)
    assert all(p.stat().st_size <= 1024 for p in (tmp_path / "alerts").iterdir())


def test_engine_alerts_that_fire_together_reach_the_receiver_as_one_page(receiver):
    """The exchange unreachable (30 s) and the market stream down (10 s) halt trading and
    page: through the engine's notify callback and the dispatcher to the webhook the
    `critical` route names. The shipped pager holds a page for its group_wait (10 s of
    wall clock), and the replay raises both within it: one grouped page."""
    from genesis.notify.channels import channels_from

    config = check_config(ROOT)
    settings = dict(config.files.settings.data["notifications"])
    channels = channels_from(settings, ROOT)
    assert channels["pager"].group_wait_s == 10.0
    dispatcher = Dispatcher({"pager": channels["pager"]},
                            environ={channels["pager"].settings["url_env"]: f"{receiver.url}/page"}).start()

    def notify(note):
        dispatcher.submit(Message.of(note), note.channels)

    t0 = 1_723_118_400_000
    events = [Event("book_ticker", t0 + i * 1000, "BTCUSDT",
                    {"bid": 59_999.0, "ask": 60_001.0, "bid_qty": 1.0, "ask_qty": 1.0, "mid": 60_000.0})
              for i in range(60)]
    events[5] = Event("api_status", t0 + 5000, "", {"reachable": False})
    events[6] = Event("ws_status", t0 + 6000, "", {"connected": False, "stream": "market"})
    from test_engine_cli import ListFeed   # noqa: PLC0415 - the same in-memory feed the runner tests use

    replay(open_session(ROOT, config, "sniper", ListFeed(events), None, "replay", notify=notify))
    time.sleep(0.2)
    assert receiver.received == []          # held for the group_wait...
    assert dispatcher.close(timeout_s=10)   # ...and sent at once when delivery stops
    [(path, page)] = receiver.received
    assert (path, page["rule"], page["severity"]) == ("/page", "websocket_down,exchange_unreachable", "critical")
    assert [a["rule"] for a in page["alerts"]] == ["websocket_down", "exchange_unreachable"]
    assert "unreachable for 30 s" in page["alerts"][1]["text"]
    assert page["alerts"][0]["ts"] == t0 + 16_000 and page["alerts"][1]["ts"] == t0 + 35_000


def _config_copy(tmp_path: Path, channels_yaml: str) -> Path:
    root = edited_copy(tmp_path)
    text = (root / "genesis.yaml").read_text()
    start = text.index("notifications:")
    end = text.index("safety:")
    (root / "genesis.yaml").write_text(text[:start] + channels_yaml + text[end:])
    return root


def genesis(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_validate_refuses_a_secret_by_value_and_an_unknown_kind_and_warns_about_unset_variables(tmp_path):
    root = _config_copy(tmp_path, f"""notifications:
  channels:
    console: {{kind: console}}
    log: {{kind: log}}
    pager: {{kind: webhook, url: "https://hooks.example.org/{TOKEN}"}}
    chat: {{kind: carrier_pigeon}}
""")
    out = genesis("validate", "--config", str(root))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(line.startswith("genesis.yaml:") and "unknown key 'url': secrets are never written" in line
               for line in lines), out.stdout
    assert any("this value is not one of: console, log, webhook, slack" in line for line in lines), out.stdout
    assert TOKEN not in out.stdout + out.stderr

    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    root1 = _config_copy(incomplete, """notifications:
  channels:
    console: {kind: console}
    log: {kind: log, fallback: lgo}
    pager: {kind: email, smtp_host: smtp.example.org, from: a@example.org}
""")
    out = genesis("validate", "--config", str(root1))
    assert out.returncode == 1
    assert "channel pager (email) needs to" in out.stdout
    assert "unknown channel 'lgo' (did you mean 'log'?)" in out.stdout

    fine = tmp_path / "fine"
    fine.mkdir()
    root2 = _config_copy(fine, """notifications:
  channels:
    console: {kind: console}
    log: {kind: log}
    pager: {kind: webhook, url_env: GENESIS_TEST_UNSET_URL, fallback: log}
""")
    out = genesis("validate", "--config", str(root2), env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK:")
    assert "warning: genesis.yaml:" in out.stderr and "GENESIS_TEST_UNSET_URL is not set" in out.stderr


def test_notify_test_sends_to_each_channel_and_says_what_happened(tmp_path, receiver):
    root = _config_copy(tmp_path, """notifications:
  channels:
    console: {kind: console}
    log: {kind: log}
    pager: {kind: webhook, url_env: GENESIS_TEST_HOOK, retries: 0}
""")
    env = {"PATH": "/usr/bin:/bin", "GENESIS_TEST_HOOK": f"{receiver.url}/hook/{TOKEN}"}
    out = genesis("notify", "test", "--config", str(root), env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pager (webhook): delivered" in out.stdout and "log (log): delivered" in out.stdout
    assert receiver.received[0][1]["status"] == "test"
    assert json.loads((tmp_path / "logs" / "alerts.jsonl").read_text().splitlines()[0])["rule"] == "notify_test"

    receiver.status = 500
    out = genesis("notify", "test", "pager", "--config", str(root), env=env, cwd=str(tmp_path))
    assert out.returncode == 1
    assert out.stdout.strip() == "pager (webhook): not delivered after 1 attempt: channel pager: " \
                                 "the receiver answered HTTP 500"
    out = genesis("notify", "test", "pagr", "--config", str(root), env=env, cwd=str(tmp_path))
    assert out.returncode == 2 and "unknown channel 'pagr'" in out.stderr


def _outage_events(t0: int) -> list:
    """Tickers each second for 3 minutes, the exchange unreachable from 5 s to 45 s and from 100 s to 140 s."""
    events = []
    for i in range(180):
        ts = t0 + i * 1000
        if i in (5, 100):
            events.append(Event("api_status", ts, "", {"reachable": False}))
        elif i in (45, 140):
            events.append(Event("api_status", ts, "", {"reachable": True}))
        else:
            events.append(Event("book_ticker", ts, "BTCUSDT",
                                {"bid": 59_999.0, "ask": 60_001.0, "bid_qty": 1.0, "ask_qty": 1.0, "mid": 60_000.0}))
    return events


def test_a_silenced_rule_is_journaled_not_delivered_until_the_silence_ends(tmp_path):
    from test_engine_cli import ListFeed   # noqa: PLC0415

    from genesis.engine.runner import operate   # noqa: PLC0415

    t0 = 1_723_118_400_000
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    session = open_session(ROOT, check_config(ROOT), "sniper", ListFeed(_outage_events(t0)), db, "paper")
    engine = session.engine
    feed = iter(session.feed)
    engine.process(next(feed))
    assert operate(session, "silence", {"rule": "exchange_unreachable", "duration": "1m", "reason": ""}) == \
        ("refused", "a silence needs a reason (--reason TEXT)")
    assert operate(session, "silence", {"rule": "exchange_unreachabel", "duration": "1m", "reason": "x"}) == \
        ("refused", "unknown rule 'exchange_unreachabel' (did you mean 'exchange_unreachable'?)")
    status, text = operate(session, "silence", {"rule": "exchange_unreachable", "duration": "soon", "reason": "x"})
    assert status == "refused" and text.startswith("'soon' is not a duration")
    status, text = operate(session, "silence", {"rule": "exchange_unreachable", "duration": "90s",
                                                "reason": "exchange maintenance"})
    assert status == "applied" and text.endswith("(event time): exchange maintenance")
    for event in feed:
        engine.process(event)
    engine.finish()
    session.journal.flush()
    notes = [(n.ts - t0, n.rule, n.channels) for n in engine.notifications if n.rule == "exchange_unreachable"]
    routed = list(engine.routing["critical"])
    # the first outage fires at 35 s and clears at 45 s, inside the silence (to 91 s): journaled only
    assert notes == [(35_000, "exchange_unreachable", []), (45_000, "exchange_unreachable", []),
                     (130_000, "exchange_unreachable", routed), (140_000, "exchange_unreachable", routed)]
    silenced = [json.loads(r.data) for r in session.journal.entries()
                if r.kind == "action" and json.loads(r.data).get("silenced")]
    assert len(silenced) == 2 and silenced[0]["silenced"] == "exchange maintenance"
    assert operate(session, "silence", {"rule": "memory_warning", "duration": "1h", "reason": "backup running"})[0] \
        == "applied"
    session.journal.flush()
    session.journal.close()

    listed = genesis("silence", "--list", "--db", db, cwd=str(ROOT))
    # exchange_unreachable's silence ended before the journal's last entry
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "memory_warning: until 2024-08-08 13:02:59 UTC (event time): backup running"


def test_a_failed_delivery_becomes_a_notify_failure_event_the_rules_read(tmp_path, receiver):
    """The worker queues the failure in the journal; the running engine applies it in
    turn (as it does an operator command): a `notify_failure` event, and the
    notification_failed alert routed to the warning channels."""
    from test_engine_cli import ListFeed   # noqa: PLC0415

    from genesis.engine.runner import _apply_queued_commands   # noqa: PLC0415
    from genesis.notify.dispatcher import dispatcher_for   # noqa: PLC0415

    receiver.status = 503
    t0 = 1_723_118_400_000
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    config = check_config(ROOT)
    session = open_session(ROOT, config, "sniper", ListFeed(_outage_events(t0)[:40]), db, "paper")
    notifications = {"channels": {"pager": {**config.files.settings.data["notifications"]["channels"]["pager"],
                                            "retries": 1, "backoff": "10ms", "group_wait": "0s"}}}
    dispatcher = dispatcher_for(notifications, ROOT, db,
                                environ={"GENESIS_PAGER_URL": f"{receiver.url}/page/{TOKEN}"}).start()
    for event in session.feed:
        session.engine.process(event)
    page = next(n for n in session.engine.notifications if n.rule == "exchange_unreachable")
    dispatcher.submit(Message(page.ts, page.severity, page.rule, page.text), page.channels)
    assert dispatcher.wait_idle(10) and dispatcher.close()
    assert len(receiver.received) == 2   # 1 + 1 retry
    said = []
    _apply_queued_commands(session, said.append)
    assert said == []    # a measurement, not the operator's command: journaled, not printed
    alert = session.engine.notifications[-1]
    assert alert.rule == "notification_failed" and alert.severity == "warning"
    assert alert.text == ("A critical notification of exchange_unreachable did not reach pager: "
                          "channel pager: the receiver answered HTTP 503.")
    assert alert.channels == list(session.engine.routing["warning"])
    session.journal.flush()
    kinds = [(r.kind, r.rule) for r in session.journal.entries()]
    assert ("operator", "observe") in kinds and ("fire", "notification_failed") in kinds
    [applied] = [json.loads(r.data) for r in session.journal.entries() if (r.kind, r.rule) == ("operator", "observe")]
    assert applied["payload"]["event"] == "notify_failure" and applied["status"] == "applied"
    assert applied["result"].startswith("notify_failure: channel=pager, kind=webhook, rule=exchange_unreachable, "
                                        "severity=critical, error=channel pager: the receiver answered HTTP 503")
    assert all(TOKEN not in str(r.data) for r in session.journal.entries())
    session.journal.close()


def test_a_resumed_run_does_not_send_again_what_it_sent_before_the_crash(tmp_path):
    """After a crash, the input already processed is read again to rebuild the state:
    its notifications are journaled again but not handed to the channels twice."""
    from test_engine_cli import ListFeed   # noqa: PLC0415

    from genesis.engine.runner import run   # noqa: PLC0415

    t0 = 1_723_118_400_000
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    config = check_config(ROOT)
    first: list = []
    session = open_session(ROOT, config, "sniper", ListFeed(_outage_events(t0)[:60]), db, "paper",
                           notify=first.append)
    for event in session.feed:
        session.engine.process(event)
    session.journal.flush()   # then the process dies: the run is not finished
    assert [(n.ts - t0, n.rule) for n in first] == [(35_000, "exchange_unreachable"), (45_000, "exchange_unreachable")]

    again: list = []
    resumed = open_session(ROOT, config, "sniper", ListFeed(_outage_events(t0)), db, "paper", notify=again.append)
    assert resumed.resumed
    run(resumed, None, ROOT, say=lambda _t: None, reload_every_s=3600)
    assert [(n.ts - t0, n.rule) for n in resumed.engine.notifications if n.rule == "exchange_unreachable"] == \
        [(35_000, "exchange_unreachable"), (45_000, "exchange_unreachable"),
         (130_000, "exchange_unreachable"), (140_000, "exchange_unreachable")]
    assert [(n.ts - t0, n.rule) for n in again] == [(130_000, "exchange_unreachable"), (140_000, "exchange_unreachable")]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    import datetime as dt   # noqa: PLC0415
    import ipaddress   # noqa: PLC0415

    from cryptography import x509   # noqa: PLC0415 - installed with ccxt
    from cryptography.hazmat.primitives import hashes, serialization   # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec   # noqa: PLC0415
    from cryptography.x509.oid import NameOID   # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_email_over_starttls_with_a_login_and_a_wrong_password_named_without_it(tmp_path, monkeypatch):
    """The server refuses mail and logins before STARTTLS (aiosmtpd's require_starttls):
    the channel upgrades, checks the server's certificate (trusted here through
    SSL_CERT_FILE) and logs in with the user and password from its variables."""
    import ssl   # noqa: PLC0415

    from aiosmtpd.smtp import AuthResult, LoginPassword   # noqa: PLC0415

    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"genesis", b"pw-42")
        logins.append((mechanism, auth_data.login.decode(), ok, session.ssl is not None))
        return AuthResult(success=ok)

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
                      authenticator=authenticator, auth_require_tls=True)
    smtp.start()
    try:
        mail = channel("mail", "email", smtp_host="127.0.0.1", smtp_port=port, starttls=True,
                       username_env="SMTP_USER", password_env="SMTP_PASSWORD", retries=0,
                       to=["trader@example.org"], **{"from": "genesis@example.org"})
        delivered = Dispatcher({"mail": mail}, environ={"SMTP_USER": "genesis", "SMTP_PASSWORD": "pw-42"}) \
            .deliver(critical(), ["mail"])
        refused = Dispatcher({"mail": mail}, environ={"SMTP_USER": "genesis", "SMTP_PASSWORD": "wrong-s3cret"}) \
            .deliver(critical(), ["mail"])
    finally:
        smtp.stop()
    assert delivered == [] and len(inbox.messages) == 1
    assert "Subject: [genesis critical] daily_loss_limit" in inbox.messages[0][2]
    assert [(user, ok, over_tls) for _, user, ok, over_tls in logins] == [("genesis", True, True),
                                                                          ("genesis", False, True)]
    [failure] = refused
    assert failure.error.startswith("channel mail: the SMTP server refused the message")
    assert "wrong-s3cret" not in failure.error and "pw-42" not in failure.error
