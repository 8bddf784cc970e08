"""The daily report (genesis.engine.dayreport): built as each UTC day closes, journaled in
a real SQLite journal, delivered to the `report` route through the real dispatcher to an
HTTP receiver on 127.0.0.1, and printed by `genesis report --day` from the journal. Its
figures are checked against the journal's own fills, closed positions, firings and
day_closed entries, never against constants."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_engine_cli import ListFeed
from test_notify import Receiver

from genesis.config.checks import check_config
from genesis.engine.dayreport import format_day_report
from genesis.engine.events import Event
from genesis.engine.runner import open_session, operate
from genesis.notify.channels import Message
from genesis.notify.dispatcher import dispatcher_for

ROOT = Path(__file__).resolve().parents[1]
DAY1 = int(datetime(2024, 8, 8, tzinfo=timezone.utc).timestamp() * 1000)
HOUR = 3_600_000


def _tick(ts: int, mid: float) -> Event:
    return Event("book_ticker", ts, "BTCUSDT", {"bid": mid - 1, "ask": mid + 1, "bid_qty": 1.0, "ask_qty": 1.0,
                                                "mid": mid})


def _day(entry_ts: int) -> str:
    return datetime.fromtimestamp(entry_ts / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    """2024-08-07 22:00 to 08-10 02:00, a tick a minute: on the 7th a manual buy and sell
    (one closed trade), on the 8th a buy held over midnight, on the 9th the exchange
    unreachable for 50 s (a halt until it is back); the report route is a webhook to a
    receiver."""
    tmp = tmp_path_factory.mktemp("daily")
    db = f"sqlite:///{tmp / 'journal.db'}"
    receiver = Receiver()
    config = check_config(ROOT)
    webhook = config.files.settings.data["notifications"]["channels"]["pager"]   # with its defaults filled in
    notifications = {"channels": {"hook": {**webhook, "url_env": "REPORT_HOOK", "retries": 0, "min_interval": "0s",
                                            "group_wait": "0s"}}}   # one message per report
    dispatcher = dispatcher_for(notifications, tmp, environ={"REPORT_HOOK": receiver.url + "/report"}).start()
    start = DAY1 - 2 * HOUR
    events, mid = [], 60_000.0
    for i in range(52 * 60):
        ts = start + i * 60_000
        mid += 3.0 if (i // 90) % 2 == 0 else -2.0
        events.append(_tick(ts, mid))
    outage_at = DAY1 + 30 * HOUR
    events += [Event("api_status", outage_at + 5_000, "", {"reachable": False}),
               Event("api_status", outage_at + 55_000, "", {"reachable": True})]
    events += [_tick(outage_at + s * 1000, mid) for s in range(10, 60, 5)]   # the clock goes on during it
    events.sort(key=lambda e: e.ts)

    def notify(note):
        if note.rule == "daily_report":   # only the reports go to the hook here
            dispatcher.submit(Message.of(note), ["hook"])

    session = open_session(ROOT, config, "sniper", ListFeed(events), db, "replay", notify=notify)
    script = {DAY1 - HOUR: ("buy", 40), DAY1 - HOUR // 2: ("sell", 1_000), DAY1 + 20 * HOUR: ("buy", 40)}
    for event in session.feed:
        session.engine.process(event)
        if event.ts in script:
            side, usd = script[event.ts]
            status, said = operate(session, "order", {"side": side, "symbol": "BTCUSDT", "notional_usd": usd})
            assert status == "applied", said
    session.engine.finish()
    session.journal.flush()
    rows = [(r.ts, r.kind, r.rule, json.loads(r.data)) for r in session.journal.entries()]
    notes = [n for n in session.engine.notifications if n.rule == "daily_report"]
    session.journal.close()
    assert dispatcher.wait_idle(10) and dispatcher.close()
    receiver.close()
    return {"db": db, "rows": rows, "notes": notes, "received": receiver.received,
            "routing": session.engine.routing}


def _reports(run) -> dict:
    return {data["day"]: data for _, kind, _, data in run["rows"] if kind == "daily_report"}


def test_each_closed_day_has_one_report_and_the_open_day_none(three_days):
    reports = _reports(three_days)
    assert sorted(reports) == ["2024-08-07", "2024-08-08", "2024-08-09"]   # 08-10 is still open
    assert "exchange_unreachable" not in reports["2024-08-08"]["firings"]
    closes = [(ts, data) for ts, kind, _, data in three_days["rows"] if kind == "day_closed"]
    for ts, closed in closes:
        report = reports[_day(ts - 1)]
        assert report["pnl_usd"] == round(closed["pnl_usd"], 2)
        assert report["max_drawdown_pct"] == round(closed["max_drawdown_pct"], 4)


def test_trades_fees_and_firings_are_the_days_own(three_days):
    rows, reports = three_days["rows"], _reports(three_days)
    for day, report in reports.items():
        fills = [d for ts, kind, _, d in rows if kind == "fill" and _day(ts) == day]
        closed = [d for ts, kind, _, d in rows if kind == "position_closed" and _day(ts) == day]
        fired = Counter(rule for ts, kind, rule, _ in rows if kind == "fire" and _day(ts) == day)
        assert report["fills"] == len(fills)
        assert report["fees_usd"] == pytest.approx(sum(f["fee_usd"] for f in fills), abs=1e-4)
        assert report["trades"] == len(closed)
        assert report["wins"] == sum(1 for c in closed if c["pnl_usd"] > 0)
        assert report["realised_pnl_usd"] == pytest.approx(sum(c["pnl_usd"] for c in closed), abs=0.01)
        assert report["firings"] == dict(fired)
    assert reports["2024-08-07"]["trades"] == 1 and reports["2024-08-07"]["fills"] == 2
    assert reports["2024-08-08"]["trades"] == 0 and reports["2024-08-08"]["fills"] == 1   # held over midnight
    assert reports["2024-08-07"]["win_rate_pct"] in (0.0, 100.0)
    assert reports["2024-08-08"]["win_rate_pct"] is None


def test_a_halt_shows_in_the_time_in_each_state_and_the_firings_by_file(three_days):
    report = _reports(three_days)["2024-08-09"]
    assert report["firings_by_file"]["alerts.yaml"]["exchange_unreachable"] == 1
    halted = report["time_in_state_pct"]["HALTED"]
    # unreachable from +5 s, halted after 30 s of it, reachable again at +55 s: 20 s of the day
    assert halted == pytest.approx(20 / 86_400 * 100, abs=0.01)
    assert sum(report["time_in_state_pct"].values()) == pytest.approx(100, abs=0.02)
    assert report["state_at_close"] == "ACTIVE"
    assert [g["rule"] for g in report["promotion"]] == ["promote_sniper_to_hunter"]
    gate = report["promotion"][0]
    assert 0 <= gate["holding"] < gate["of"] and len(gate["waiting_on"]) == gate["of"] - gate["holding"]


def test_the_report_reaches_the_report_route(three_days):
    assert three_days["routing"]["report"] == ["console", "log"]          # the shipped alerts.yaml
    assert [n.channels for n in three_days["notes"]] == [["console", "log"]] * 3
    bodies = [body for path, body in three_days["received"] if path == "/report"]
    assert [b["text"].splitlines()[0] for b in bodies] == [
        f"Daily report {day} (UTC), tier sniper" for day in ("2024-08-07", "2024-08-08", "2024-08-09")]
    assert {(b["rule"], b["severity"]) for b in bodies} == {("daily_report", "info")}
    assert bodies[2]["text"] == format_day_report(_reports(three_days)["2024-08-09"])


def _report_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "report", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_genesis_report_prints_a_day_from_the_journal(three_days):
    db = three_days["db"]
    shown = _report_cli("--day", "2024-08-08", "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip("\n") == format_day_report(_reports(three_days)["2024-08-08"])
    latest = _report_cli("--db", db, "--json")
    assert latest.returncode == 0 and json.loads(latest.stdout) == _reports(three_days)["2024-08-09"]
    missing = _report_cli("--day", "2024-09-01", "--db", db)
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("no daily report for 2024-09-01 in the journal "
                                      "(days reported: 2024-08-07, 2024-08-08, 2024-08-09)")
    bad = _report_cli("--day", "8/8/2024", "--db", db)
    assert bad.returncode == 2 and "'8/8/2024' is not a date: write YYYY-MM-DD" in bad.stderr
    assert "Traceback" not in shown.stderr + missing.stderr + bad.stderr


def test_genesis_report_on_a_journal_without_reports_says_so(tmp_path):
    empty = _report_cli("--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert empty.returncode == 1 and "no daily report in the journal yet" in empty.stderr
