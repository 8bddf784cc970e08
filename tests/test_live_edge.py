"""The live edge under stress: the real `genesis run --mode live` (ccxt, websockets) against
the project's simulator on 127.0.0.1 with its faults.

* a user-data stream that stays connected but goes silent (answering pings, or not) is
  reopened within seconds (`exchange.user_stream_timeout`), and a new order's fills are
  taken from its REST answer at once, counted once when the stream's report comes later;
* a reconciliation with slow exchange answers runs beside the loop: market data, the
  heartbeat and operator commands go on meanwhile;
* an exchange that is down at start is waited for (backoff, a status line per attempt);
* an order placed outside Genesis that fills at once is adopted as external, from the
  user-data stream and from myTrades, and never surfaces as a position mismatch;
* SIGTERM in every state ends with exit 143 and every client closed (no "Unclosed ..."
  or "Task was destroyed" from asyncio, aiohttp or ccxt).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from live_helpers import KEY_ENV, ROOT, LiveProc, account, agreement, order
from scenario_helpers import edited_copy

from genesis.simulator import SimulatorThread, ccxt_config

START = {"USDT": Decimal("1000"), "BTC": Decimal("0"), "ETH": Decimal("0")}
BALANCES = {k: str(v) for k, v in START.items()}
LEAKS = ("Unclosed", "unclosed", "Task was destroyed", "ResourceWarning", "Traceback", "Exception ignored",
         "release all resources")


def config(tmp: Path, user_timeout: str = "2s") -> Path:
    """The shipped configuration with a short user-stream timeout and no metrics port
    (tests run side by side)."""
    return edited_copy(tmp, {"genesis.yaml": {
        "  rate_limit_use_pct: 80\n": f"  rate_limit_use_pct: 80\n  user_stream_timeout: {user_timeout}\n",
        "metrics_endpoint: {port: 9464}": "metrics_endpoint: {port: null}",
        "health_probe: {interval: 15s}": "health_probe: {interval: null}",
    }})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ws_user(live: LiveProc) -> list[tuple[int, bool]]:
    """(input time, connected) of the user stream's status inputs."""
    return [(e["_t"], e["connected"]) for e in inputs_timed(live, "ws_status") if e.get("stream") == "user"]


def inputs_timed(live: LiveProc, kind: str) -> list[dict]:
    """Input-log events of one kind (every segment, in order) with their position (`_n`)."""
    return [dict(item["f"], _t=item["t"], _n=n, _symbol=item.get("s"))
            for n, item in enumerate(live.input_items(), 1) if item.get("k") == kind]


def drop_user_streams(sim) -> None:
    """The exchange closes every listenKey (and its streams): the user stream reconnects,
    which starts a reconciliation."""
    sim.call(lambda: [sim.sim.close_listen_key(k) for k in list(sim.sim.listen_keys)])


def outside_client(sim):
    outside = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
    outside.load_markets()
    return outside


# --------------------------------------------------------------------------- 1: the user stream


def test_a_silent_user_stream_is_reopened_within_seconds_and_fills_come_from_the_answer(tmp_path):
    with SimulatorThread(speed=2, balances=BALANCES) as sim:
        live = LiveProc(tmp_path, sim, config=config(tmp_path, "2s"))
        try:
            live.start()
            assert order(live, "buy", usd=40)["status"] == "applied"
            live.wait(lambda: live.count("fill") == 1 and len(account(sim)["trades"]) == 1, "the first buy")
            time.sleep(0.5)                     # its reports are in: the connection has sent them
            # the stream stays up and answers pings, but sends nothing more
            sim.set_faults({"ws_targets": ["user"], "ws_mute_after": 1})
            downs = sum(1 for _, up in ws_user(live) if not up)
            sold = order(live, "sell", usd=1000)
            sent = time.monotonic()              # the sell left as its command was applied
            assert sold["status"] == "applied", sold
            # the sell's fill comes from its REST answer, not from the (silent) stream
            live.wait(lambda: live.count("fill") == 2, "the sell's fill from its answer", timeout=5)
            live.wait(lambda: live.count("position_closed") == 1, "the position closed", timeout=5)
            live.wait(lambda: sum(1 for _, up in ws_user(live) if not up) > downs, "the silent stream noticed",
                      timeout=10)
            noticed = time.monotonic() - sent
            assert noticed < 2.0 + 1.5, noticed  # user_stream_timeout 2s after the answer, not 70 s
            sim.set_faults({}, reset=True)
            ack = [a for a in inputs_timed(live, "order_ack") if a["_client_id"] == "g2"][0]
            fill = [f for f in inputs_timed(live, "fill") if f["_client_id"] == "g2"][0]
            down = [s["_n"] for s in inputs_timed(live, "ws_status")
                    if s.get("stream") == "user" and not s["connected"]]
            assert fill["_n"] == ack["_n"] + 1 < down[downs]   # taken in with the answer, long before the stream
            live.wait(lambda: ws_user(live)[-1][1], "the user stream reopened")
            live.wait(lambda: live.count("reconciled") >= 3, "the reconciliation after reopening")

            # a late report of a trade the answer delivered counts nothing more
            sim.set_faults({"ws_targets": ["user"], "ws_delay_ms": 800})
            reports = len([s for s in inputs_timed(live, "ws_status") if s.get("stream") == "user"])
            assert order(live, "buy", usd=30)["status"] == "applied"
            live.wait(lambda: live.count("fill") == 3, "the third fill", timeout=5)
            time.sleep(3.5)                      # every delayed report has arrived
            sim.set_faults({}, reset=True)
            assert live.count("fill") == 3 == len(account(sim)["trades"])
            assert len([s for s in inputs_timed(live, "ws_status") if s.get("stream") == "user"]) == reports

            # half-open: no message and no pong either
            sim.set_faults({"ws_targets": ["user"], "ws_half_open_after": 1})
            downs = sum(1 for _, up in ws_user(live) if not up)
            began = time.monotonic()
            assert order(live, "sell", usd=1000)["status"] == "applied"
            live.wait(lambda: sum(1 for _, up in ws_user(live) if not up) > downs, "the half-open stream noticed",
                      timeout=10)
            assert time.monotonic() - began < 7.0   # quiet 2 s, then 2 s without a pong
            sim.set_faults({}, reset=True)
            live.wait(lambda: live.count("fill") == len(account(sim)["trades"]) == 4, "every fill")
            assert live.stop() == 0
            agreement(live, sim, START)
            assert not live.entries("position_mismatch")
        finally:
            live.stop()


# --------------------------------------------------------------------------- 2: reconciliation beside the loop

SLOW = {"http_only": ["GET /api/v3/openOrders", "GET /api/v3/account", "GET /api/v3/myTrades", "GET /api/v3/order"],
        "http_delay_ms": 3000}


def test_a_reconciliation_with_slow_answers_never_holds_up_inputs_or_commands(tmp_path):
    with SimulatorThread(speed=2, balances=BALANCES) as sim:
        live = LiveProc(tmp_path, sim, config=config(tmp_path, "5s"))
        try:
            live.start()
            live.wait(lambda: live.count("reconciled") >= 2, "the reconciliation after the user stream connected")
            before = live.count("reconciled")
            sim.set_faults(SLOW)                 # every reconciliation request takes 3 s
            drop_user_streams(sim)
            began = time.monotonic()
            time.sleep(1.0)                      # reconnected, reconciling
            tickers = len(live.inputs("book_ticker"))
            placed = live.cli("order", "buy", "BTCUSDT", "30")
            took = time.monotonic() - began
            assert placed.returncode == 0 and "applied" in placed.stdout, placed.stdout + placed.stderr
            assert "no engine" not in placed.stdout   # `genesis order` saw the heartbeat: a running engine
            assert live.count("reconciled") == before, "the order was applied only after the reconciliation"
            live.wait(lambda: live.count("fill") == 1, "the fill while reconciling", timeout=5)
            assert live.count("reconciled") == before
            assert live.alive()                  # the heartbeat went on
            assert len(live.inputs("book_ticker")) > tickers   # market data went on
            live.wait(lambda: live.count("reconciled") > before, "the slow reconciliation", timeout=40)
            assert time.monotonic() - began > 6.0 > took   # it overlapped the order, and was slow
            done = live.entries("reconciled")[-1]
            assert done["mismatch_usd"] == 0 and done["fills"] == 0, done   # the fill came from its answer
            sim.set_faults({}, reset=True)
            assert order(live, "sell", usd=1000)["status"] == "applied"
            live.wait(lambda: live.count("fill") == 2 == len(account(sim)["trades"]), "the sell")
            assert live.stop() == 0
            agreement(live, sim, START)
            assert not live.entries("position_mismatch")
        finally:
            live.stop()


# --------------------------------------------------------------------------- 3: an exchange down at start


class Elsewhere:
    """The URLs of an exchange that is not there yet."""

    def __init__(self, port: int):
        self.rest_url, self.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"


def test_an_exchange_down_at_start_is_waited_for_with_backoff_then_traded_on(tmp_path):
    port = free_port()
    live = LiveProc(tmp_path, Elsewhere(port), config=config(tmp_path))
    with live.out.open("a") as out:
        live.proc = subprocess.Popen(live.command(), cwd=ROOT, env=dict(os.environ, **KEY_ENV), stdout=out,
                                     stderr=subprocess.STDOUT)
    sim = None
    try:
        live.wait(lambda: live.tail().count("waiting for the exchange at") >= 3, "three attempts", timeout=20)
        lines = [line for line in live.tail().splitlines() if "waiting for the exchange at" in line]
        assert lines[0].startswith(f"waiting for the exchange at http://127.0.0.1:{port}: attempt 1, next in 0.5s (")
        assert "attempt 2, next in 1s" in lines[1] and "attempt 3, next in 2s" in lines[2]
        assert live.count("reconciled") == 0
        sim = SimulatorThread(speed=2, port=port, balances=BALANCES).start()
        live.sim = sim
        live.wait(lambda: live.count("reconciled") >= 1, "the start once the exchange answers", timeout=30)
        live.wait(live.alive, "the heartbeat")
        assert f"the exchange at http://127.0.0.1:{port} answered" in live.tail()
        live.wait(lambda: {f["_symbol"] for f in live.inputs("book_ticker")} >= {"BTCUSDT"}, "market data")
        assert order(live, "buy", usd=25)["status"] == "applied"
        live.wait(lambda: live.count("fill") == 1, "the fill")
        assert live.stop() == 0
        agreement(live, sim, START)
        assert not any(leak in live.tail() for leak in LEAKS), live.tail()
    finally:
        live.stop()
        if sim is not None:
            sim.stop()


def test_the_wait_for_the_exchange_gives_up_after_start_timeout_with_one_line():
    import asyncio  # noqa: PLC0415

    from genesis.live.launch import LaunchRefused, wait_for_exchange  # noqa: PLC0415
    from genesis.live.rest import ExchangeClient  # noqa: PLC0415

    url = f"http://127.0.0.1:{free_port()}"
    said: list[str] = []

    async def main() -> str:
        client = ExchangeClient(url, "edge-test-key-0123", "edge-test-secret-4567")
        try:
            await wait_for_exchange(client, url, asyncio.Event(), said.append, give_up_s=1.0, first_s=0.2)
        except LaunchRefused as exc:
            return str(exc)
        finally:
            await client.close()
        return ""

    began = time.monotonic()
    refused = asyncio.run(main())
    assert 0.5 < time.monotonic() - began < 5.0
    assert refused.startswith(f"cannot reach the exchange at {url} (") and "gave up after" in refused, refused
    assert "\n" not in refused and "edge-test-secret" not in refused
    assert [line.split(",")[0] for line in said] == [f"waiting for the exchange at {url}: attempt 1",
                                                     f"waiting for the exchange at {url}: attempt 2"], said


# --------------------------------------------------------------------------- 4: external fills


def test_an_outside_order_that_fills_at_once_is_adopted_from_the_stream_and_from_my_trades(tmp_path):
    with SimulatorThread(speed=2, balances=BALANCES) as sim:
        live = LiveProc(tmp_path, sim, tier="strategist", config=config(tmp_path))   # two demotions to go
        try:
            live.start()
            outside = outside_client(sim)
            # while it runs: the user-data stream reports it
            outside.create_order("ETH/USDT", "market", "buy", 0.02, None, {"clientOrderId": "web_now_1"})
            live.wait(lambda: live.count("external_fill") >= 1, "the external fill from the stream", timeout=10)
            adopted = live.entries("external_order")
            assert len(adopted) == 1 and adopted[0]["_symbol"] == "ETHUSDT" and adopted[0]["notional_usd"] > 40
            fired = [e for e in live.entries("fire") if e["_rule"] == "demote_external_order"]
            assert len(fired) == 1
            assert [e for e in live.entries("tier")][-1]["tier"] == "hunter"
            # a reconciliation reads the same trade from myTrades: not taken twice, balances explained
            before = live.count("reconciled")
            drop_user_streams(sim)
            live.wait(lambda: live.count("reconciled") > before, "a reconciliation")
            assert live.entries("reconciled")[-1]["mismatch_usd"] == 0
            assert live.entries("reconciled")[-1]["external_fills"] == 0
            # Genesis's own trading goes on; its fills are its own
            assert order(live, "buy", usd=25)["status"] == "applied"
            live.wait(lambda: live.count("fill") == 1, "Genesis's own fill")
            assert live.stop() == 0
            # while it is down: found by the start-up reconciliation in myTrades
            outside.create_order("ETH/USDT", "market", "sell", 0.01, None, {"clientOrderId": "web_down_2"})
            before = live.count("reconciled")
            live.start()
            found = live.entries("reconciled")[before]
            assert found["external"] == 1 and found["external_fills"] >= 1 and found["mismatch_usd"] == 0, found
            assert [e["_symbol"] for e in live.entries("external_order")] == ["ETHUSDT", "ETHUSDT"]
            assert len([e for e in live.entries("fire") if e["_rule"] == "demote_external_order"]) == 2
            assert [e for e in live.entries("tier")][-1]["tier"] == "sniper"
            outside_trades = [t for t in account(sim)["trades"] if t["symbol"] == "ETHUSDT"]
            fills = live.entries("external_fill")
            assert sorted(f["qty"] for f in fills) == sorted(float(t["qty"]) for t in outside_trades)
            assert not live.entries("position_mismatch")
            states = [e for e in live.entries("state") if "mode" in e]
            assert not states or states[-1]["mode"] != "HALTED"
            assert order(live, "sell", usd=1000)["status"] == "applied"   # not halted: it trades on
            live.wait(lambda: live.count("fill") == 2, "the sell")
            live.stop()
            live.start()                         # the log replays to the same state: nothing again
            assert len(live.entries("external_fill")) == len(fills) and not live.entries("position_mismatch")
            assert live.entries("reconciled")[-1]["mismatch_usd"] == 0
        finally:
            live.stop()


# --------------------------------------------------------------------------- 5: clean shutdown


def run_and_terminate(tmp: Path, rest_url: str, ws_url: str, ready, what: str) -> tuple[int, str]:
    """`genesis run --mode live` with ResourceWarnings as errors, SIGTERM once `ready(output)`:
    (exit code, everything it wrote)."""
    out = tmp / f"{what}.out"
    (tmp / what).mkdir()
    cmd = [sys.executable, "-W", "error::ResourceWarning", "cli.py", "run", "--mode", "live", "--tier", "sniper",
           "--db", f"sqlite:///{tmp / 'journal.db'}", "--config", str(config(tmp / what)), "--rest-url", rest_url,
           "--ws-url", ws_url, "--confirm", "live"]
    with out.open("w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **KEY_ENV), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready(out.read_text(errors="replace")):
            assert proc.poll() is None, f"{what}: exited early:\n{out.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"{what}: not ready:\n{out.read_text(errors='replace')[-3000:]}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, out.read_text(errors="replace")


def test_sigterm_in_every_state_exits_143_with_every_client_closed(tmp_path):
    port = free_port()
    code, text = run_and_terminate(tmp_path, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}",
                                   lambda t: "attempt 2, next in" in t, "down")
    assert code == 143, text
    assert "stopped while waiting for the exchange" in text and not any(leak in text for leak in LEAKS), text
    with SimulatorThread(speed=2, balances=BALANCES) as sim:
        code, text = run_and_terminate(tmp_path, sim.rest_url, sim.ws_url,
                                       lambda t: "reconciled" in t and sim.state()["connections"]["user"] >= 1,
                                       "running")
        assert code == 143, text
        assert "stopped; the journal and the input log are saved" in text
        assert not any(leak in text for leak in LEAKS), text
        dropped: list[float] = []

        def reconciling(t: str) -> bool:
            """Started and connected: every reconciliation request is made slow, the user
            stream dropped (a reconciliation starts), and 2 s later it is still under way."""
            if not dropped and "reconciled" in t and sim.state()["connections"]["user"] >= 1:
                sim.set_faults(SLOW)
                drop_user_streams(sim)
                dropped.append(time.monotonic())
            return bool(dropped) and time.monotonic() - dropped[0] > 2.0

        code, text = run_and_terminate(tmp_path, sim.rest_url, sim.ws_url, reconciling, "reconciling")
        stopped = time.monotonic()
        sim.set_faults({}, reset=True)
        assert code == 143, text
        assert not any(leak in text for leak in LEAKS), text
        assert stopped - dropped[0] < 2.0 + 10.0, "SIGTERM waited for the slow reconciliation"


if __name__ == "__main__":   # pragma: no cover
    sys.exit(pytest.main([__file__, "-q", "-n", "0"]))
