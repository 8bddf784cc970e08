"""A live or dry run trades by the symbol rules the exchange announces at start, not by
the bundled exchangeInfo: a dry run (LiveRunner in this process, real ccxt, real
websockets) against the project's simulator on 127.0.0.1 serving a derived symbol the
bundled file does not know (BTC001USDT), with a lot size of its own; its continuation
keeps the rules it started with although the exchange announces others by then; and a
configured symbol the exchange does not list stops `genesis run` with one clear line."""
from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from genesis.config.checks import check_config
from genesis.engine.markets import DEFAULT_PATH, Markets
from genesis.live.marketrules import rules_path
from genesis.live.rest import ExchangeClient
from genesis.live.session import LiveRunner, open_live_session
from genesis.live.streams import runner_streams
from genesis.simulator import SimulatorThread
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]
SYMBOL = "BTC001USDT"   # the simulator's first derived symbol: a clone of BTCUSDT
CONFIG_FILES = ("genesis.yaml", "alerts.yaml", "tiers", "rules")


def exchange_info(tmp: Path, step: str) -> Path:
    """The bundled exchangeInfo with BTCUSDT's (so its clones') lot step set to `step`."""
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    for entry in data["symbols"]:
        if entry["symbol"] == "BTCUSDT":
            for f in entry["filters"]:
                if f["filterType"] == "LOT_SIZE":
                    f["stepSize"] = f["minQty"] = step
    path = tmp / f"exchange_info-{step}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_config(root: Path, symbols: list[str]) -> Path:
    """The repository's configuration trading `symbols`, with no configured strategy."""
    root.mkdir()
    for name in CONFIG_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    settings = (root / "genesis.yaml").read_text(encoding="utf-8")
    settings, n = re.subn(r"(?m)^symbols: .*$", f"symbols: [{', '.join(symbols)}]", settings)
    assert n == 1
    (root / "genesis.yaml").write_text(settings, encoding="utf-8")
    (root / "strategies.yaml").write_text("strategies: []\n", encoding="utf-8")
    return root


class BuyOnce:
    """Buy $30 of the symbol on its first trade."""

    id, kind, given = "rules-test", "rules-test", {}

    def __init__(self, symbol: str):
        self.symbols = [symbol]
        self.done = False

    def on_event(self, event, view):
        if self.done or event.kind != "trade" or event.symbol != self.symbols[0]:
            return []
        self.done = True
        return [OrderIntent(self.id, event.symbol, "buy", 30.0, event.fields["price"], "entry", True)]


def dry_run(sim, root: Path, db_url: str, until) -> dict:
    """A dry run of `root`'s configuration on `sim` until `until(engine)` (or 15 s)."""

    async def main() -> dict:
        config = check_config(root)
        assert config.ok, config.problems
        session, log_path = open_live_session(root, config, "strategist", db_url, None, sim.rest_url, dry_run=True)
        session.engine.strategies = [BuyOnce(SYMBOL)]
        client = ExchangeClient(sim.rest_url, "", "")
        await client.start()
        market, user = runner_streams(sim.ws_url, client, [SYMBOL])
        runner = LiveRunner(session, client, market, user, log_path, [SYMBOL], say=lambda t: None,
                            config_root=None)
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not task.done() and not until(session.engine):
            await asyncio.sleep(0.05)
        runner.stop()
        await task
        engine = session.engine
        out = {"resumed": session.resumed, "log": log_path, "rules": engine.markets.get(SYMBOL),
               "known": set(engine.markets.symbols), "fills": engine.stats.fills,
               "held": engine.exchange.balances.get("BTC001", 0.0),
               "stats": {k: getattr(engine.stats, k) for k in ("events", "intents", "rejected", "orders",
                                                                "last_decision")}}
        runner.close(operator_left=False)
        await client.close()
        return out

    return asyncio.run(main())


def test_a_dry_run_trades_a_symbol_by_the_rules_the_exchange_announced_and_its_continuation_keeps_them(tmp_path):
    root = write_config(tmp_path / "config", [SYMBOL])
    db_url = f"sqlite:///{tmp_path / 'j.db'}"
    assert SYMBOL not in Markets.load()   # the bundled rules do not know it
    with SimulatorThread(speed=20, derived_symbols=1, exchange_info=str(exchange_info(tmp_path, "0.00010000"))) as sim:
        port = sim.port
        first = dry_run(sim, root, db_url, lambda engine: engine.stats.fills >= 1)
    assert not first["resumed"]
    assert first["known"] == {SYMBOL, *Markets.load().symbols}   # the others keep the bundled rules
    assert first["rules"].step_size == 0.0001 and first["rules"].base == "BTC001"   # the simulator's, not bundled
    assert first["fills"] >= 1, first["stats"]
    held = first["held"]   # the paper fill, rounded to the announced step (the bundled BTCUSDT's is 0.00001)
    assert held > 0 and math.isclose(held / 0.0001, round(held / 0.0001), abs_tol=1e-6), held
    recorded = json.loads(rules_path(first["log"]).read_text(encoding="utf-8"))
    assert [s["symbol"] for s in recorded["symbols"]] == [SYMBOL]

    # the exchange now announces a coarser step ($30 would round to nothing): the continued
    # run replays its log with the rules it started with, and goes on with them
    with SimulatorThread(speed=20, derived_symbols=1, port=port,
                         exchange_info=str(exchange_info(tmp_path, "0.01000000"))) as sim:
        again = dry_run(sim, root, db_url, lambda engine: True)
    assert again["resumed"] and again["log"] == first["log"]
    assert again["rules"] == first["rules"]
    assert again["fills"] == first["fills"] and again["held"] == held


def test_a_configured_symbol_the_exchange_does_not_list_stops_the_start_with_one_line(tmp_path):
    root = write_config(tmp_path / "config", ["BTCUSDT", "NOPE999USDT"])
    out_path = tmp_path / "run.out"
    with SimulatorThread(speed=20, derived_symbols=1) as sim:
        command = [sys.executable, "cli.py", "run", "--mode", "dry-run", "--tier", "strategist",
                   "--db", f"sqlite:///{tmp_path / 'j.db'}", "--config", str(root),
                   "--rest-url", sim.rest_url, "--ws-url", sim.ws_url]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "Traceback" not in out
        assert re.search(r"NOPE999USDT is not listed by the exchange at http://127\.0\.0\.1:\d+", done.stderr), out
        assert not list((tmp_path / "genesis-live").glob("*.markets.json"))   # nothing recorded, nothing started
        # with the symbol taken out, the same command starts (a listed derived symbol too)
        write_config(tmp_path / "fixed", ["BTCUSDT", SYMBOL])
        shutil.copy(tmp_path / "fixed" / "genesis.yaml", root / "genesis.yaml")
        with out_path.open("w") as out_file:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=out_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None and "recorded inputs replayed" not in \
                    out_path.read_text():
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
    text = out_path.read_text()
    assert "recorded inputs replayed" in text and "Traceback" not in text, text
    rules = json.loads(next((tmp_path / "genesis-live").glob("*.markets.json")).read_text(encoding="utf-8"))
    assert sorted(s["symbol"] for s in rules["symbols"]) == ["BTC001USDT", "BTCUSDT"]


def test_damaged_recorded_rules_are_a_clear_error_not_a_traceback(tmp_path):
    """A run's recorded symbol rules that cannot be read back stop its continuation with
    a line naming the file (launch turns it into a refusal, `genesis tier` into a
    journal error); rules the file holds are read back as written."""
    from genesis.live.marketrules import recorded, run_markets
    from genesis.live.segment import InputLogError

    log = tmp_path / "run-abcd1234-dryrun.inputs"
    assert recorded(log) is None and run_markets(log).symbols == Markets.load().symbols
    for damaged in ("{not json", json.dumps(["BTCUSDT"]), "\udcff"):
        rules_path(log).write_text(damaged, encoding="utf-8", errors="surrogateescape")
        for read in (recorded, run_markets):
            try:
                read(log)
            except InputLogError as exc:
                assert str(rules_path(log)) in str(exc) and "start a new run" in str(exc)
            else:
                raise AssertionError(f"{damaged!r} was read as symbol rules")
    bundled = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    entry = next(s for s in bundled["symbols"] if s["symbol"] == "ETHBTC")
    rules_path(log).write_text(json.dumps({"symbols": [{**entry, "symbol": "ETH001BTC"}]}), encoding="utf-8")
    assert recorded(log)["symbols"][0]["symbol"] == "ETH001BTC"
    assert "ETH001BTC" in run_markets(log) and "BTCUSDT" in run_markets(log)
