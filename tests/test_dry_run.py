"""Dry run end to end: the real `genesis run --mode dry-run` (market data over the
exchange's websocket streams and REST depth snapshots, orders filled by the paper
exchange against that live book) against the project's Binance simulator on
127.0.0.1, with no API key in the environment. The simulator's own state says that no
order reached it, its balances never moved and no user-data stream was opened; the
journal, across a kill -9, is exactly what the input log regenerates."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from decimal import Decimal

import pytest
from live_helpers import KEY_ENV, ROOT, LiveProc, Stepper, account

from genesis.simulator import SimulatorThread

BALANCES = {"USDT": "1000", "BTC": "0", "ETH": "0"}


class DryProc(LiveProc):
    """`genesis run --mode dry-run` on one journal, started and killed like a trader's process."""

    def command(self) -> list[str]:
        return [sys.executable, "cli.py", "run", "--mode", "dry-run", "--tier", self.tier, "--db", self.url,
                "--config", str(self.config), "--rest-url", self.sim.rest_url, "--ws-url", self.sim.ws_url]

    def start(self, reconciled_before: int | None = None) -> None:
        """Start without any API key in the environment; wait until the engine beats and
        has market data for every symbol the exchange trades."""
        env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
        with self.out.open("a") as out:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        self.wait(self.alive, "the engine's heartbeat")
        symbols = set(self.sim.state()["books"])
        seen = len(self.inputs("book_ticker"))
        self.wait(lambda: symbols <= {f["_symbol"] for f in self.inputs("book_ticker")[seen:]},
                  f"market data for {', '.join(sorted(symbols))} after the start")

    def caught_up(self, symbol: str = "BTCUSDT") -> bool:
        """The engine's depth book of `symbol` was synced from a REST snapshot and holds
        every update the simulator's book has had."""
        target = self.sim.state()["books"][symbol]["lastUpdateId"]
        depth = [f for f in self.inputs("depth") if f["_symbol"] == symbol]
        if not any(f["_snapshot"] for f in depth):
            return False
        return max(f.get("_last_id") or f.get("_last_update_id") or 0 for f in depth) >= target


def rest_depth(sim, symbol: str = "BTCUSDT") -> dict:
    with urllib.request.urlopen(f"{sim.rest_url}/api/v3/depth?symbol={symbol}&limit=1000", timeout=10) as answer:
        return json.loads(answer.read())


def walk(levels: list, qty: float) -> float:
    """The average price of taking `qty` from price levels, best first."""
    left, cost = qty, 0.0
    for price, size in ((float(p), float(q)) for p, q in levels):
        take = min(left, size)
        cost += take * price
        left -= take
        if left <= 1e-12:
            return cost / qty
    raise AssertionError(f"the book holds less than {qty}")


def nothing_reached_the_exchange(sim) -> None:
    state = sim.state()
    acct = account(sim)
    assert acct["orders"] == [] and acct["trades"] == [], acct
    for asset, amount in BALANCES.items():
        bal = acct["balances"][asset]
        assert Decimal(bal["free"]) == Decimal(amount) and Decimal(bal["locked"]) == 0, (asset, bal)
    assert state["limits"]["orders_10s"] == 0 and state["limits"]["orders_1d"] == 0, state["limits"]
    assert state["connections"]["user"] == 0, state["connections"]   # no user-data stream: no listenKey


def journal_rows(proc: LiveProc) -> list:
    return proc.rows("SELECT run_id, seq, ts, kind, rule, symbol, data FROM entries ORDER BY run_id, seq")


def regenerated(proc: LiveProc) -> list:
    """The run's journal entries regenerated from its input log alone: the log read through
    a fresh engine (no journal, no exchange) with the run's recorded operator commands at
    their points, as recovery does."""
    from sqlalchemy import select  # noqa: PLC0415

    from genesis.config.snapshot import load_snapshot  # noqa: PLC0415
    from genesis.engine.engine import Engine  # noqa: PLC0415
    from genesis.engine.journal import Journal, encode_data, recorded_changes, runs  # noqa: PLC0415
    from genesis.engine.markets import Markets  # noqa: PLC0415
    from genesis.engine.runner import Session, _after_event  # noqa: PLC0415
    from genesis.live.dryrun import DryRunExchange  # noqa: PLC0415
    from genesis.live.segment import read_inputs  # noqa: PLC0415

    journal = Journal(proc.url, create=False)
    try:
        with journal.engine.connect() as conn:
            run = conn.execute(select(runs)).one()
            changes = recorded_changes(conn, run.id, scripted=True)
    finally:
        journal.engine.dispose()
    files = json.loads(run.config_files)
    config = load_snapshot(files)
    markets = Markets.load()
    engine = Engine(config, run.tier, markets=markets, exchange=DryRunExchange.for_config(markets, config))
    out: list = []
    engine.observers.append(lambda ts, kind, rule, symbol, data: out.append(
        (run.id, len(out) + 1, ts, kind, rule, symbol, encode_data(data))))
    session = Session(engine, None, None, False, engine.account.equity(), files, changes, ROOT)
    for event in read_inputs(json.loads(run.feed_paths)[0]):
        engine.process(event)
        _after_event(session, lambda _text: None)
    return out


@pytest.fixture
def market():
    with SimulatorThread(speed="step", balances=BALANCES) as sim, Stepper(sim) as stepper:
        yield sim, stepper


def test_dry_run_fills_on_paper_against_the_live_book_and_sends_nothing(tmp_path, market):
    sim, stepper = market
    dry = DryProc(tmp_path, sim)
    try:
        dry.start()
        assert "dry run on tier sniper" in dry.tail() and "GENESIS_API_KEY" not in dry.tail()
        dry.wait(dry.caught_up, "the depth book synced from a snapshot")
        with stepper.paused():   # the simulator's book and the engine's hold still
            dry.wait(dry.caught_up, "every depth update of the paused book")
            book = rest_depth(sim)
            done = dry.cli("order", "buy", "BTCUSDT", "40")
            assert done.returncode == 0 and done.stdout.startswith("applied: buy BTCUSDT $40.00"), \
                done.stdout + done.stderr
            dry.wait(lambda: dry.count("fill") == 1, "the paper fill")
        fill = dry.entries("fill")[0]
        assert fill["client_id"] == "g1" and fill["side"] == "buy" and fill["maker"] is False
        best_bid, best_ask = float(book["bids"][0][0]), float(book["asks"][0][0])
        assert best_bid < best_ask <= fill["price"]
        assert fill["price"] == pytest.approx(walk(book["asks"], fill["qty"]), rel=1e-9)   # the live book, walked
        assert fill["notional_usd"] == pytest.approx(40, abs=fill["price"] * 1e-5 + 0.01)
        run = dry.rows("SELECT mode, feed_digest FROM runs")
        assert run == [("dry-run", f"dry-run:{sim.rest_url}")]
        nothing_reached_the_exchange(sim)
        assert dry.stop() == 0
        assert journal_rows(dry) == regenerated(dry)   # the journal is a function of the input log
    finally:
        dry.stop()


def test_dry_run_resumes_after_kill_with_the_same_position(tmp_path, market):
    sim, _stepper = market
    dry = DryProc(tmp_path, sim)
    try:
        dry.start()
        dry.wait(dry.caught_up, "the depth book synced from a snapshot")
        assert dry.cli("order", "buy", "BTCUSDT", "40").returncode == 0
        dry.wait(lambda: dry.count("fill") == 1, "the paper fill")
        bought = dry.entries("fill")[0]
        dry.kill()
        before = journal_rows(dry)
        assert [row[3] for row in before].count("fill") == 1
        dry.start()
        status = subprocess.run([sys.executable, "cli.py", "status", "--db", dry.url], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=False)
        assert "dry-run" in status.stdout and "BTCUSDT" in status.stdout, status.stdout
        after = journal_rows(dry)
        assert after[:len(before)] == before   # the journal's prefix is kept, the run continued
        assert dry.rows("SELECT count(*), min(mode) FROM runs") == [(1, "dry-run")]
        # the same position: selling "everything up to $40" sells exactly what was bought
        sold = dry.cli("order", "sell", "BTCUSDT", "40")
        assert sold.returncode == 0 and "(g2)" in sold.stdout, sold.stdout + dry.tail()
        dry.wait(lambda: dry.count("position_closed") == 1, "the position closed")
        closed = dry.entries("position_closed")[0]
        sell = [f for f in dry.entries("fill") if f["side"] == "sell"]
        assert len(sell) == 1 and sell[0]["qty"] == bought["qty"], (sell, bought)
        assert closed["_symbol"] == "BTCUSDT"
        nothing_reached_the_exchange(sim)
        assert dry.stop() == 0
        assert journal_rows(dry) == regenerated(dry)
        tier = dry.cli("tier")   # rebuilt from the dry run's input log
        assert tier.returncode == 0 and tier.stdout.startswith("tier sniper"), tier.stdout + tier.stderr
    finally:
        dry.stop()


def test_the_modes_of_genesis_run_are_documented_in_its_help():
    shown = " ".join(subprocess.run([sys.executable, "cli.py", "run", "--help"], cwd=ROOT, capture_output=True,
                                    text=True, timeout=60, check=True).stdout.split())
    assert "[paper|dry-run|live]" in shown and "no keys, nothing sent" in shown
