"""`genesis ui`: the Textual dashboard driven with Textual's pilot (and snapshot tests
at 80x24) over the journal of a real replay of the bundled sample with scripted operator
commands (tests/ui_helpers.py): an open position, a resting order, refusals, alerts and
a level-3 tilt lockout waiting for a journal entry. Commands typed in the dashboard
reach the journal's command queue, and a running `genesis run` applies one and the
answer shows."""
from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console
from scenario_helpers import edited_copy
from textual.widgets import DataTable, Input, Static, TabbedContent, TextArea
from ui_helpers import REASON, ROOT, loaded, replay_tilted_session

from genesis.cli import cli
from genesis.engine.journal import Journal, JournalError
from genesis.engine.status import read_view
from genesis.ui import forms
from genesis.ui.app import GenesisApp


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Path:
    """The journal of one real replay of the bundled sample with the tilted session."""
    return replay_tilted_session(tmp_path_factory.mktemp("ui"))


@pytest.fixture
def journal(replayed, tmp_path) -> str:
    """A copy of the replay's journal for one test (the commands it queues stay there)."""
    copy = tmp_path / "journal.db"
    shutil.copy(replayed, copy)
    return f"sqlite:///{copy}"


def plain(renderable, width: int = 78) -> str:
    """What a widget's content reads as on screen."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def shown(app: GenesisApp, selector: str) -> str:
    """A dashboard widget's text with its line wrapping undone."""
    return " ".join(plain(app.dashboard.query_one(selector, Static).content).split())


async def answered(app: GenesisApp, pilot, count: int) -> None:
    """Wait until `count` commands have been answered."""
    for _ in range(500):
        if len(app.answers) >= count:
            return
        await pilot.pause(0.02)
    raise AssertionError(f"{count} command(s) were never answered: {app.answers}")


def run(coroutine_fn, url: str, **kwargs):
    """Run `coroutine_fn(app, pilot)` against a GenesisApp on `url` at 80x24."""
    async def main():
        app = GenesisApp(url, **{"refresh_s": 60, **kwargs})   # reads on start and after each answer
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(app, pilot)
            return await coroutine_fn(app, pilot)
    return asyncio.run(main())


def queued(url: str) -> list[tuple]:
    """(id, kind, payload, status) of every command in the journal's queue."""
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        rows = con.execute("SELECT id, kind, payload, status FROM commands ORDER BY id").fetchall()
    finally:
        con.close()
    return [(i, kind, json.loads(payload), status) for i, kind, payload, status in rows]


async def type_text(pilot, text: str) -> None:
    for char in text:
        await pilot.press("space" if char == " " else char)


# ---------------------------------------------------------------- what it shows
def test_the_dashboard_shows_what_the_journal_holds(journal):
    view = read_view(journal)
    position, order = view["positions"][0], view["orders"][0]
    lock = view["state"]["locks"][0]

    async def look(app, pilot):
        title = shown(app, "#title")
        assert f"run {view['run']['id']}" in title and "tier sniper" in title and "finished" in title
        assert view["at_utc"] in title                                  # event time, not the wall clock
        account = shown(app, "#account")
        assert f"${view['equity_usd']:,.2f}" in account
        assert f"-${abs(view['daily_pnl_usd']):,.2f}" in account and f"{view['drawdown_pct']:,.2f}%" in account
        assert app.dashboard.query_one("#equity-spark").data == [p[1] for p in view["equity_history"]]
        trading = shown(app, "#trading")
        assert "entries paused" in trading and f"lock: {lock['rule']}" in trading
        assert lock["until_utc"][5:16] in trading                      # until when, in UTC
        tilt = shown(app, "#tilt-summary")
        showing = [i for i in view["tilt"]["indicators"] if i["showing"]]
        assert f"level {view['tilt']['level']} · resting" in tilt and f"{len(showing)} signs of pressure" in tilt
        state = shown(app, "#state-text")
        assert lock["lift"].split(" and ")[-1] in state                 # how to lift it
        assert "j writes the journal entry" in state

        positions = app.dashboard.query_one("#positions-table", DataTable)
        assert positions.row_count == len(view["positions"])
        assert positions.get_row_at(0)[0] == position["symbol"]
        assert positions.get_row_at(0)[4] == f"-${abs(position['unrealised_usd']):,.2f}"
        orders = app.dashboard.query_one("#orders-table", DataTable)
        assert [orders.get_row_at(i)[0] for i in range(orders.row_count)] == [o["client_id"] for o in view["orders"]]
        assert orders.get_row_at(0)[4] == f"{order['price']:,.2f}"
        ladder = app.dashboard.query_one("#ladder-table", DataTable)
        assert [ladder.get_row_at(i)[0] for i in range(ladder.row_count)] == [s["step"] for s in view["ladder"]]

        # newest first, each with its time (the view's day: time only) and its words
        assert shown(app, "#decisions-text") == " ".join(f"{d['at_utc'][11:19]} {d['text']}"
                                                         for d in reversed(view["decisions"]))
        assert view["alerts"][-1]["text"] in shown(app, "#alerts-text")
        gate = view["gates"][0]
        met = sum(c["passed"] for c in gate["conditions"])
        assert f"promotion to {gate['to']} · {met} of {len(gate['conditions'])} conditions met" in \
            shown(app, "#gates-text")
        tilt_detail = shown(app, "#tilt-text")
        for indicator in showing:
            assert indicator["words"] in tilt_detail

    run(look, journal)


def test_the_digit_keys_switch_tabs_and_the_screen_is_updated_in_place(journal):
    async def look(app, pilot):
        tabs = app.dashboard.query_one("#tabs", TabbedContent)
        await pilot.press("3")
        assert tabs.active == "orders"
        await pilot.press("4")
        assert tabs.active == "decisions"
        await pilot.press("s")
        assert tabs.active == "state"
        widgets = list(app.dashboard.walk_children())
        orders = app.dashboard.query_one("#orders-table", DataTable)
        before = app.view
        for _ in range(100):                            # refresh_s=0.1: several reads in place
            await pilot.pause(0.05)
            if app.view is not before:
                break
        assert app.view is not before, "the journal was not read again"
        assert list(app.dashboard.walk_children()) == widgets   # nothing rebuilt, nothing flickers
        assert app.dashboard.query_one("#orders-table", DataTable) is orders

    run(look, journal, refresh_s=0.1)


# ---------------------------------------------------------------- commands
def test_cancel_and_amend_act_on_the_selected_order_and_reach_the_command_queue(journal):
    order = read_view(journal)["orders"][0]

    async def act(app, pilot):
        await pilot.press("3", "c")
        form = app.screen
        assert isinstance(form, forms.CancelForm)
        assert form.query_one("#client_id", Input).value == order["client_id"]
        await pilot.press("enter")
        await answered(app, pilot, 1)
        await pilot.press("a")
        await pilot.press("tab")                 # from the client id to the price
        await type_text(pilot, "69,500")   # thousands separators are fine
        await pilot.press("enter")
        await answered(app, pilot, 2)
        return app.answers, shown(app, "#answer")

    answers, answer_line = run(act, journal)
    rows = queued(journal)
    assert [(kind, payload, status) for _, kind, payload, status in rows] == [
        ("cancel", {"client_id": order["client_id"]}, "queued"),
        ("amend", {"client_id": order["client_id"], "price": 69500.0}, "queued")]
    assert [a.command_id for a in answers] == [r[0] for r in rows]
    assert Journal(journal, create=False).command(answers[0].command_id).kind == "cancel"
    # no engine runs on a finished replay: said calmly, and the command waits for the next start
    assert answers[1].status == "queued"
    assert "no engine is running on this journal; it applies when `genesis run` next starts" in answer_line


def test_an_order_with_an_unknown_symbol_or_a_bad_amount_says_what_to_write_and_is_sent_once_fixed(journal):
    async def act(app, pilot):
        await pilot.press("o")
        form = app.screen
        assert isinstance(form, forms.OrderForm)
        form.query_one("#symbol", Input).focus()
        await type_text(pilot, "doge")
        await pilot.press("enter")
        await pilot.pause()
        unknown = plain(form.query_one("#problem", Static).content)
        form.query_one("#symbol", Input).value = "eth"
        await type_text(pilot, "usdt")
        await pilot.press("tab")
        await type_text(pilot, "x")
        await pilot.press("enter")
        await pilot.pause()
        problem = plain(form.query_one("#problem", Static).content)
        assert app.screen is form and queued(journal) == []     # nothing sent
        assert form.focused.id == "usd"
        form.query_one("#usd", Input).value = ""
        await type_text(pilot, "25")
        await pilot.press("tab")
        await type_text(pilot, "2500")
        await pilot.press("tab")
        form.query_one("#reason", Input).value = REASON
        await pilot.press("enter")
        await answered(app, pilot, 1)
        return unknown, problem

    unknown, problem = run(act, journal)
    assert "symbol: unknown symbol DOGE: Genesis has market rules for BTCUSDT" in unknown   # as `genesis order`
    assert "amount: write a number above 0, e.g. 40" in problem
    [(_, kind, payload, status)] = queued(journal)
    assert kind == "order" and status == "queued"
    assert payload == {"side": "buy", "symbol": "ETHUSDT", "notional_usd": 25.0, "limit": 2500.0, "reason": REASON}


def test_an_order_for_a_configured_symbol_outside_the_bundled_rules_is_sent(journal):
    """As `genesis order`: a symbol of the configuration (`genesis ui` passes genesis.yaml's
    symbols; a live run trades them by the exchange's rules) is queued, not refused."""
    async def act(app, pilot):
        await pilot.press("o")
        form = app.screen
        assert isinstance(form, forms.OrderForm)
        form.query_one("#symbol", Input).focus()
        await type_text(pilot, "solusdt")
        await pilot.press("tab")
        await type_text(pilot, "30")
        await pilot.press("enter")
        await answered(app, pilot, 1)

    run(act, journal, traded=("BTCUSDT", "SOLUSDT"))
    [(_, kind, payload, status)] = queued(journal)
    assert kind == "order" and status == "queued" and payload["symbol"] == "SOLUSDT"


def test_the_journal_editor_counts_words_against_what_the_lock_needs(journal, replayed):
    con = sqlite3.connect(replayed)
    try:
        required = [json.loads(d) for (d,) in con.execute(
            "SELECT data FROM entries WHERE kind = 'action' AND rule = 'tilt_level_3'")]
    finally:
        con.close()
    needed = next(a["min_words"] for a in required if a.get("kind") == "journal_entry")
    entry = "I moved the same order six times and cancelled five more within seconds"

    async def act(app, pilot):
        await pilot.press("j")
        editor = app.screen
        assert isinstance(editor, forms.JournalEditor)
        before = plain(editor.query_one("#count", Static).content)
        area = editor.query_one("#entry", TextArea)
        area.focus()
        area.insert(entry)                       # as pasted; then a few keys typed
        await pilot.press("enter", "o", "k")
        await pilot.pause()
        after = plain(editor.query_one("#count", Static).content)
        await pilot.press("ctrl+s")
        await answered(app, pilot, 1)
        return before, after

    before, after = run(act, journal)
    assert f"0 of the {needed:,} words" in before
    assert f"{len(entry.split()) + 1} of the {needed:,} words" in after
    [(_, kind, payload, _status)] = queued(journal)
    assert kind == "journal" and payload == {"text": entry + "\nok"}


def test_reset_and_override_send_the_typed_phrase_and_escape_sends_nothing(journal):
    async def act(app, pilot):
        await pilot.press("r")
        assert isinstance(app.screen, forms.ResetForm)
        await pilot.press("escape")
        assert app.screen is app.dashboard
        await pilot.press("r")
        app.screen.query_one("#phrase", Input).value = "I accept the drawdown"
        await pilot.press("enter")
        await answered(app, pilot, 1)
        await pilot.press("e")
        assert isinstance(app.screen, forms.OverrideForm)
        await pilot.press("enter")                    # an empty phrase is not sent
        await pilot.pause()
        assert app.screen is not app.dashboard and len(app.answers) == 1
        await type_text(pilot, "go on")
        await pilot.press("enter")
        await answered(app, pilot, 2)

    run(act, journal)
    assert [(kind, payload) for _, kind, payload, _ in queued(journal)] == [
        ("reset", {"phrase": "I accept the drawdown"}), ("override", {"phrase": "go on"})]


def test_a_running_engine_applies_an_order_sent_from_the_dashboard(tmp_path):
    config = edited_copy(tmp_path)                        # the shipped configuration, in a folder of its own
    url = f"sqlite:///{tmp_path / 'live.db'}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    engine = subprocess.Popen([sys.executable, "cli.py", "run", "--tier", "sniper", "--speed", "1", "--db", url,
                               "--config", str(config)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (read_view(url).get("run") or {}).get("alive"):
                    break
            except JournalError:                          # not created yet, or its tables not yet
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the engine never beat on its journal")

        async def act(app, pilot):
            assert "· running" in shown(app, "#title")
            await pilot.press("o")
            app.screen.query_one("#symbol", Input).value = "BTCUSDT"
            app.screen.query_one("#usd", Input).value = "20"
            app.screen.query_one("#usd", Input).focus()
            await pilot.press("enter")
            await answered(app, pilot, 1)
            for _ in range(100):                      # the dashboard reads the engine's answer back
                if "applied" in shown(app, "#commands-text"):
                    break
                await pilot.pause(0.05)
            return app.answers[0], shown(app, "#answer"), shown(app, "#commands-text")

        answer, line, sent = run(act, url)
    finally:
        engine.send_signal(signal.SIGINT)               # stops cleanly, as Ctrl-C does
        try:
            _, errors = engine.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            engine.kill()
            _, errors = engine.communicate()
    assert "Traceback" not in errors, errors
    assert answer.status == "applied", answer
    assert "buy BTCUSDT $20.00: 1 order sent" in answer.result
    assert answer.result in line
    assert f"#{answer.command_id}" in sent and "order · applied" in sent


def test_on_a_journal_where_nothing_has_run_yet_an_order_waits_in_the_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Journal(url).engine.dispose()                         # a journal with no run in it yet

    async def act(app, pilot):
        assert "no run in this journal yet" in shown(app, "#title")
        await pilot.press("o")
        app.screen.query_one("#symbol", Input).value = "BTCUSDT"
        app.screen.query_one("#usd", Input).value = "30"
        await pilot.press("tab", "tab", "enter")         # to the amount field, then send
        await answered(app, pilot, 1)
        return app.answers[0]

    answer = run(act, url)
    assert answer.status == "queued" and "applies when `genesis run` next starts" in answer.result
    assert [(kind, payload) for _, kind, payload, _ in queued(url)] == [
        ("order", {"side": "buy", "symbol": "BTCUSDT", "notional_usd": 30.0, "reason": ""})]


# ---------------------------------------------------------------- the command line
def test_a_bad_db_is_a_clear_error_before_the_screen_is_taken(tmp_path):
    runner = CliRunner()
    nonsense = runner.invoke(cli, ["ui", "--db", "nonsense"])
    assert nonsense.exit_code == 1 and "is not a database URL" in nonsense.output
    missing = runner.invoke(cli, ["ui", "--db", f"sqlite:///{tmp_path / 'none.db'}"])
    assert missing.exit_code == 1 and "no journal at" in missing.output and "nothing has run yet" in missing.output
    (tmp_path / "other.db").write_bytes(b"this is not a database at all" * 100)
    garbage = runner.invoke(cli, ["ui", "--db", f"sqlite:///{tmp_path / 'other.db'}"])
    assert garbage.exit_code == 1 and "not a readable SQLite database" in garbage.output
    for result in (nonsense, missing, garbage):
        assert "Traceback" not in result.output and result.output.startswith("genesis: ")


def test_without_a_terminal_it_points_to_genesis_status(journal):
    result = CliRunner().invoke(cli, ["ui", "--db", journal])
    assert result.exit_code == 1
    assert "needs a terminal" in result.output and "genesis status --watch" in result.output


# ---------------------------------------------------------------- snapshots (80x24)
def _snapshot_app(journal: str) -> GenesisApp:
    return GenesisApp(journal, refresh_s=60)


async def _wait_loaded(pilot) -> None:
    await loaded(pilot.app, pilot)


def test_snapshot_of_the_dashboard(journal, snap_compare):
    assert snap_compare(_snapshot_app(journal), terminal_size=(80, 24), run_before=_wait_loaded)


def test_snapshot_of_the_decisions_tab(journal, snap_compare):
    async def before(pilot):
        await _wait_loaded(pilot)
        await pilot.press("4")
    assert snap_compare(_snapshot_app(journal), terminal_size=(80, 24), run_before=before)


def test_snapshot_of_the_journal_editor(journal, snap_compare):
    async def before(pilot):
        await _wait_loaded(pilot)
        await pilot.press("j")
        await type_text(pilot, "Six moves")
    assert snap_compare(_snapshot_app(journal), terminal_size=(80, 24), run_before=before)
