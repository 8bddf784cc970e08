"""Shared parts of the live-mode tests: the real `genesis run --mode live` as a
subprocess against the project's simulator (genesis/simulator) on 127.0.0.1, the
journal read back with sqlite3, and the exact comparison of journal and exchange."""
from __future__ import annotations

import gzip
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from genesis.engine.journal import Journal
from genesis.simulator import DEFAULT_API_KEY, DEFAULT_API_SECRET

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = {"GENESIS_API_KEY": DEFAULT_API_KEY, "GENESIS_API_SECRET": DEFAULT_API_SECRET}


class LiveProc:
    """`genesis run --mode live` on one journal, started and killed like a trader's process."""

    def __init__(self, tmp: Path, sim, config: Path | None = None, tier: str = "sniper"):
        self.db = tmp / "journal.db"
        self.url = f"sqlite:///{self.db}"
        self.sim = sim
        self.config = config or ROOT
        self.tier = tier
        self.proc: subprocess.Popen | None = None
        self.out = tmp / "live.out"
        self.starts = 0

    def command(self) -> list[str]:
        return [sys.executable, "cli.py", "run", "--mode", "live", "--tier", self.tier, "--db", self.url,
                "--config", str(self.config), "--rest-url", self.sim.rest_url, "--ws-url", self.sim.ws_url,
                "--confirm", "live"]

    def start(self, reconciled_before: int | None = None) -> None:
        """Start and wait until the session has recovered and reconciled."""
        before = self.count("reconciled") if reconciled_before is None else reconciled_before
        with self.out.open("a") as out:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=dict(os.environ, **KEY_ENV),
                                         stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        self.wait(lambda: self.count("reconciled") > before, "reconciliation after start")
        self.wait(lambda: self.alive(), "the engine's heartbeat")
        # a price for every symbol the exchange trades, not just any (an order for a symbol
        # with no price yet waits for one, and the tests expect orders decided at once)
        symbols = set(self.sim.state()["books"])
        seen = len(self.inputs("book_ticker"))
        self.wait(lambda: symbols <= {f["_symbol"] for f in self.inputs("book_ticker")[seen:]},
                  f"market data for {', '.join(sorted(symbols))} after the start")

    def alive(self) -> bool:
        journal = Journal(self.url)
        try:
            return time.time() * 1000 - journal.last_beat() < 2000
        finally:
            journal.engine.dispose()

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """Ctrl-C; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def tail(self) -> str:
        """The end of the engine's output, without its status lines."""
        if not self.out.exists():
            return ""
        lines = [line for line in re.split(r"[\r\n]+", self.out.read_text(errors="replace"))
                 if line.strip() and "  P&L today " not in line]
        return "\n".join(lines)[-3000:]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "cli.py", *args, "--db", self.url, "--config", str(self.config)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)

    def queue(self, kind: str, **payload) -> int:
        journal = Journal(self.url)
        try:
            return journal.queue_command(kind, payload)
        finally:
            journal.engine.dispose()

    def settled(self, command_id: int) -> bool:
        rows = self.rows("SELECT status FROM commands WHERE id = ?", (command_id,))
        return bool(rows) and rows[0][0] != "queued"

    def rows(self, sql: str, args=()) -> list:
        if not self.db.exists():
            return []
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()

    def entries(self, kind: str) -> list[dict]:
        return [dict(json.loads(d), _ts=ts, _rule=r, _symbol=s) for ts, r, s, d in
                self.rows("SELECT ts, rule, symbol, data FROM entries WHERE kind = ? ORDER BY run_id, seq", (kind,))]

    def input_items(self):
        """Every input-log line of the journal's runs ({k, t, s, f}), every segment in order."""
        from genesis.live.segment import segments  # noqa: PLC0415

        folder = self.db.parent / "genesis-live"
        bases = {p.name.split(".inputs")[0] + ".inputs" for p in folder.glob("*.inputs*")} if folder.is_dir() else ()
        for base in sorted(bases):
            for _, path in segments(folder / base):
                try:
                    text = (gzip.decompress(path.read_bytes()).decode(errors="replace") if path.name.endswith(".gz")
                            else path.read_text(errors="replace"))
                except (OSError, EOFError):   # compressed or removed meanwhile
                    continue
                for line in text.splitlines():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue

    def inputs(self, kind: str) -> list[dict]:
        """Fields of the input-log events of one kind (system events are not journaled)."""
        return [dict(item["f"], _symbol=item.get("s")) for item in self.input_items() if item.get("k") == kind]

    def count(self, kind: str) -> int:
        rows = self.rows("SELECT count(*) FROM entries WHERE kind = ?", (kind,))
        return rows[0][0] if rows else 0

    def wait(self, ready, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"live engine exited ({self.proc.returncode}) waiting for {what}:\n{self.tail()}")
            time.sleep(0.05)
        fired = self.rows("SELECT rule, substr(data, 1, 300) FROM entries WHERE kind IN ('fire', 'position_mismatch', "
                          "'external_order', 'reconciled') ORDER BY run_id, seq DESC LIMIT 12")
        raise AssertionError(f"timed out waiting for {what}:\n{self.tail()}\nlatest firings and reconciliations "
                             f"(newest first): {fired}")


class Stepper:
    """Drives a `speed="step"` simulator from a thread at `speed` times real time (records
    of `period_s * speed` seconds of recorded time per step), and can hold the market
    still (`paused()`) so that a test can act on a book that does not move meanwhile."""

    def __init__(self, sim, speed: float = 2.0, period_s: float = 0.05):
        import threading  # noqa: PLC0415

        self.sim = sim
        self.ms = max(1, int(period_s * speed * 1000))
        self.period_s = period_s
        self.running = threading.Event()
        self.running.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sim-stepper", daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            if self.running.is_set():
                try:
                    self.sim.step(ms=self.ms)
                except Exception:  # noqa: BLE001 - the simulator is stopping
                    return
            self.done.wait(self.period_s)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join(timeout=10)

    def paused(self):
        """A context in which no market data is replayed."""
        import contextlib  # noqa: PLC0415

        @contextlib.contextmanager
        def hold():
            self.running.clear()
            time.sleep(self.period_s * 2)     # a step under way ends
            try:
                yield
            finally:
                self.running.set()
        return hold()


def account(sim) -> dict:
    return sim.state()["accounts"][DEFAULT_API_KEY]


def agreement(proc: LiveProc, sim, start: dict[str, Decimal]) -> dict:
    """Compare the journal with the exchange; returns the figures (asserting exact agreement):
    every exchange trade of the account is a journaled fill with the same trade id, price,
    quantity and fee; no client order id was used twice; balances equal the starting
    balances plus the journaled fills."""
    acct = account(sim)
    trades = {(t["symbol"], int(t["id"])): t for t in acct["trades"]}   # trade ids are per symbol
    fills = proc.entries("fill")
    by_trade = {}
    for f in fills:
        key = (f["_symbol"], f["trade_id"])
        assert key not in by_trade, f"trade {key} journaled twice"
        by_trade[key] = f
    assert set(by_trade) == set(trades), (sorted(by_trade), sorted(trades))
    for tid, t in trades.items():
        f = by_trade[tid]
        assert Decimal(str(f["qty"])) == Decimal(t["qty"]), (tid, f, t)
        assert Decimal(str(f["price"])) == Decimal(t["price"]), (tid, f, t)
        assert f["side"] == ("buy" if t["isBuyer"] else "sell")
    client_ids = [o["clientOrderId"] for o in acct["orders"]]
    assert len(client_ids) == len(set(client_ids)), "an order was sent twice"
    journaled = {e["client_id"] for e in proc.entries("order")}
    for cid in client_ids:   # an amended order's replacement is G<token>-g12.a1 (engine order g12)
        assert cid.split("-", 1)[1].split(".")[0] in journaled, f"{cid} on the exchange but not in the journal"
    # balances: start + what the journaled fills moved
    expected = dict(start)
    for f in fills:
        base, quote = f["_symbol"][:-4], f["_symbol"][-4:]
        qty, notional = Decimal(str(f["qty"])), Decimal(str(f["qty"])) * Decimal(str(f["price"]))
        trade = trades[(f["_symbol"], f["trade_id"])]
        fee = Decimal(trade["commission"])
        if f["side"] == "buy":
            expected[base] = expected.get(base, Decimal(0)) + qty - (fee if trade["commissionAsset"] == base else 0)
            expected[quote] = expected.get(quote, Decimal(0)) - notional - (fee if trade["commissionAsset"] == quote else 0)
            assert Decimal(str(f.get("fee_base", 0))) == (fee if trade["commissionAsset"] == base else 0)
        else:
            expected[base] = expected.get(base, Decimal(0)) - qty
            expected[quote] = expected.get(quote, Decimal(0)) + notional - fee
    for asset, bal in acct["balances"].items():
        total = Decimal(bal["free"]) + Decimal(bal["locked"])
        assert abs(total - expected.get(asset, Decimal(0))) <= Decimal("0.00000002"), (asset, total, expected)
    return {"trades": len(trades), "orders": len(client_ids), "fills": len(fills)}


def order(proc: LiveProc, side: str, symbol: str = "BTCUSDT", usd: float = 40, **extra) -> dict:
    """Queue an operator order and wait until the engine settles it: its status and result."""
    cid = proc.queue("order", side=side, symbol=symbol, notional_usd=usd, reason="", **extra)
    proc.wait(lambda: proc.settled(cid), f"command {cid}")
    status, result = proc.rows("SELECT status, result FROM commands WHERE id = ?", (cid,))[0]
    return {"status": status, "result": result}
