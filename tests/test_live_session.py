"""Live mode end to end: the real `genesis run --mode live` (ccxt for orders, websockets
for market data and the user-data stream) against the project's Binance simulator on
127.0.0.1, replaying the bundled capture. Each test ends by comparing the journal with
the exchange exactly (tests/live_helpers.py: agreement)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from live_helpers import KEY_ENV, ROOT, LiveProc, Stepper, account, agreement, order

from genesis.simulator import DEFAULT_API_SECRET, SimulatorThread

START = {"USDT": Decimal("1000"), "BTC": Decimal("0"), "ETH": Decimal("0")}
COVERS = {  # rule book rule -> a test here that asserts it fires (tests/test_scenario_coverage.py)
    "demote_external_order": "test_an_order_placed_outside_genesis_is_adopted_and_demotes",
}


@pytest.fixture
def sim():
    with SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}) as s:
        yield s


@pytest.fixture
def live(tmp_path, sim):
    proc = LiveProc(tmp_path, sim)
    yield proc
    proc.stop()


def test_live_refuses_without_keys_or_confirmation_and_never_shows_a_secret(tmp_path, sim):
    base = [sys.executable, "cli.py", "run", "--mode", "live", "--db", f"sqlite:///{tmp_path / 'j.db'}",
            "--rest-url", sim.rest_url, "--ws-url", sim.ws_url]
    env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
    no_keys = subprocess.run([*base, "--confirm", "live"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)
    assert no_keys.returncode == 2
    assert "GENESIS_API_KEY and GENESIS_API_SECRET" in no_keys.stderr and "nothing was started" in no_keys.stderr
    keyed = dict(os.environ, **KEY_ENV)
    unconfirmed = subprocess.run(base, cwd=ROOT, env=keyed, capture_output=True, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
    assert unconfirmed.returncode == 2 and "--confirm live" in unconfirmed.stderr
    wrong = subprocess.run([*base, "--confirm", "yes"], cwd=ROOT, env=keyed, capture_output=True, text=True,
                           timeout=60)
    assert wrong.returncode == 2 and "must be 'live'" in wrong.stderr
    bad_secret = dict(keyed, GENESIS_API_SECRET="not-the-secret-0123456789")
    refused = subprocess.run([*base, "--confirm", "live"], cwd=ROOT, env=bad_secret, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1 and "cannot reach the exchange" not in refused.stdout
    for text in (no_keys.stdout + no_keys.stderr, unconfirmed.stderr, refused.stdout + refused.stderr):
        assert DEFAULT_API_SECRET not in text and "not-the-secret" not in text and "signature=" not in text
    assert not account(sim)["orders"]


def test_market_and_limit_orders_fill_cancel_and_agree_with_the_exchange(live, sim):
    live.start()
    buy = order(live, "buy")
    assert buy["status"] == "applied" and "1 order sent (g1)" in buy["result"]
    live.wait(lambda: live.count("fill") >= 1, "the buy's fill")
    sell = order(live, "sell")
    assert sell["status"] == "applied"
    live.wait(lambda: live.count("position_closed") >= 1, "the round trip to close")
    # a resting limit far below the market, then cancelled by the operator
    rest = order(live, "buy", usd=30, limit=40000)
    assert "resting: g3" in rest["result"]
    live.wait(lambda: any(o["clientOrderId"].endswith("-g3") and o["status"] == "NEW" for o in account(sim)["orders"]),
              "the limit order on the exchange")
    cancel = live.cli("cancel", "g3")
    assert cancel.returncode == 0 and "cancel of order g3 sent" in cancel.stdout, cancel.stdout
    live.wait(lambda: live.count("order_canceled") >= 1, "the cancel confirmation")
    cancelled = live.entries("order_canceled")[0]
    assert cancelled["manual"] is True and cancelled["by_exchange"] is False
    assert [o["status"] for o in account(sim)["orders"]] == ["FILLED", "FILLED", "CANCELED"]
    assert live.stop() == 0
    figures = agreement(live, sim, START)
    assert figures == {"trades": 2, "orders": 3, "fills": 2}
    closed = live.entries("position_closed")
    assert len(closed) == 1 and closed[0]["pnl_usd"] < 0   # fees and the spread


def test_partial_fills_arrive_one_by_one(live, sim):
    live.start()
    sim.set_faults({"partial_next": 1, "partial_ratio": 0.5, "partial_rest": "later"})
    # a marketable limit buy a little above the ask: half now, the rest as trades print
    ask = float(sim.state()["books"]["BTCUSDT"]["bestAsk"])
    placed = order(live, "buy", usd=45, limit=round(ask * 1.002, 2))
    assert placed["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 2, "both parts of the fill", timeout=90)

    def all_filled_and_journaled():
        # the rest may print as several trades: stopping before the last one would leave
        # a fill on the exchange that this run never saw (a restart would reconcile it)
        acct = account(sim)
        return (all(o["status"] == "FILLED" for o in acct["orders"])
                and live.count("fill") == len(acct["trades"]))

    live.wait(all_filled_and_journaled, "the whole order filled and every fill journaled", timeout=90)
    fills = live.entries("fill")
    assert len(fills) >= 2 and len({f["client_id"] for f in fills}) == 1
    assert live.stop() == 0
    agreement(live, sim, START)


def test_faults_nothing_lost_nothing_sent_twice(live, sim):
    """5xx after the order was placed, a timeout after placing, a forced 429 with
    Retry-After and a dropped market-data connection: the engine recovers and every
    order exists once on the exchange."""
    live.start()
    sim.set_faults({"http_only": ["POST /api/v3/order"], "http_error_after_next": 1, "http_error_status": 503})
    first = order(live, "buy")
    assert first["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 1, "the fill despite the 503")
    sim.set_faults({}, reset=True)
    sim.set_faults({"http_only": ["POST /api/v3/order"], "http_timeout_after_next": 1, "http_timeout_s": 1.5})
    second = order(live, "sell")
    assert second["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 2, "the fill despite the timeout")
    sim.set_faults({}, reset=True)
    sim.set_faults({"http_only": ["POST /api/v3/order"], "http_429_next": 1, "retry_after_s": 1})
    third = order(live, "buy")
    assert third["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 3, "the fill after the 429")
    sim.set_faults({}, reset=True)
    sim.set_faults({"ws_targets": ["market"], "ws_drop_after": 20})
    live.wait(lambda: any(e["connected"] is False and e["stream"] == "market" for e in live.inputs("ws_status")),
              "a dropped market stream", timeout=30)
    sim.set_faults({}, reset=True)
    # the depth sequence has a hole after the reconnect: the book is resynced from a REST
    # snapshot (the first one synced it at start)
    live.wait(lambda: len([d for d in live.inputs("depth") if d.get("_snapshot")]) >= 3, "a resync snapshot",
              timeout=30)
    fourth = order(live, "sell")
    assert fourth["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 4, "trading after the reconnect")
    # a rejected order: journaled with the exchange's reason, not retried, nothing on the books
    sim.set_faults({"reject_next": 1})
    fifth = order(live, "buy")
    assert fifth["status"] == "applied"
    live.wait(lambda: live.count("order_rejected") >= 1, "the rejection")
    rejected = live.entries("order_rejected")[0]
    assert rejected["rule"] == "exchange" and rejected["client_id"] == "g5" and "-2010" in rejected["reason"]
    sim.set_faults({}, reset=True)
    # a 418 ban with Retry-After: waited out, then the order goes through once
    sim.set_faults({"http_only": ["POST /api/v3/order"], "http_418_next": 1, "retry_after_s": 1})
    sixth = order(live, "buy")
    assert sixth["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 5, "the fill after the 418")
    sim.set_faults({}, reset=True)
    # duplicated and reordered market data: dropped by the stream, the book stays in sync
    sim.set_faults({"ws_targets": ["market"], "ws_duplicate_rate": 0.3, "ws_reorder_rate": 0.2})
    time.sleep(2)
    sim.set_faults({}, reset=True)
    seventh = order(live, "sell")
    assert seventh["status"] == "applied"
    live.wait(lambda: live.count("fill") >= 6, "trading after the noisy stream")
    assert live.stop() == 0
    assert agreement(live, sim, START)["orders"] == 6   # a rejected order is not on the exchange's books


def test_restart_finds_fills_that_happened_while_down(tmp_path):
    with SimulatorThread(speed=2, maker_fill="touch", balances={k: str(v) for k, v in START.items()}) as sim:
        live = LiveProc(tmp_path, sim)
        try:
            _restart_finds_fills(live, sim)
        finally:
            live.stop()


def _restart_finds_fills(live: LiveProc, sim) -> None:
    live.start()
    # the user stream's reports are held back, so that a fill that comes before the kill
    # below cannot reach the journal: every fill of this order happens "while down"
    sim.set_faults({"ws_targets": ["user"], "ws_delay_ms": 60000})
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    rest = order(live, "buy", usd=40, limit=bid)   # at the bid: the next sell trade at that price fills it
    assert "resting: g1" in rest["result"]
    live.wait(lambda: any(o["clientOrderId"].endswith("-g1") for o in account(sim)["orders"]), "the order to rest")
    live.kill()
    sim.set_faults({}, reset=True)
    assert live.count("fill") == 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not account(sim)["trades"]:
        time.sleep(0.2)
    assert account(sim)["trades"], "the recorded trades never reached the resting order"
    before = live.count("reconciled")
    live.start()
    found = live.entries("reconciled")[before:]
    assert found[0]["fills"] >= 1 and all(r["mismatch_usd"] == 0 for r in found)
    fill = live.entries("fill")[0]
    assert fill["client_id"] == "g1" and fill["maker"] is True
    assert (fill["_symbol"], fill["trade_id"]) == ("BTCUSDT", account(sim)["trades"][0]["id"])
    live.wait(lambda: live.count("reconciled") >= before + 2, "the reconciliation after the user stream connects")
    # the rest of the order (if the trades took it in parts) fills while the engine runs
    live.wait(lambda: [o["status"] for o in account(sim)["orders"]] == ["FILLED"], "the whole order to fill",
              timeout=90)
    live.wait(lambda: live.count("fill") == len(account(sim)["trades"]), "every part in the journal")
    assert live.stop() == 0
    agreement(live, sim, START)


def test_an_order_placed_outside_genesis_is_adopted_and_demotes(tmp_path, sim):
    import ccxt  # noqa: PLC0415

    from genesis.simulator import ccxt_config  # noqa: PLC0415

    live = LiveProc(tmp_path, sim, tier="hunter")
    try:
        live.start()
        live.stop()
        outside = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False))
        outside.load_markets()
        outside.create_order("BTC/USDT", "limit", "buy", 0.001, 30000, {"clientOrderId": "web_manual_1"})
        live.start()
        external = live.entries("external_order")
        assert len(external) == 1 and external[0]["notional_usd"] == 30.0
        fired = [e for e in live.entries("fire") if e["_rule"] == "demote_external_order"]
        assert len(fired) == 1
        assert [e for e in live.entries("tier")][-1] == {"tier": "sniper", "_ts": fired[0]["_ts"],
                                                         "_rule": "", "_symbol": ""}
        # adopted, never cancelled by Genesis
        assert [o["status"] for o in account(sim)["orders"] if o["clientOrderId"] == "web_manual_1"] == ["NEW"]
        # a restart does not report it again
        live.stop()
        live.start()
        assert len(live.entries("external_order")) == 1
    finally:
        live.stop()


def test_a_balance_change_it_cannot_explain_halts_trading(tmp_path, sim):
    """Coins paid in while it was down (a deposit: no trade explains them; a trade placed
    outside Genesis would be adopted as external): reconciliation finds the balances off
    by that much, raises the critical position_mismatch alert, and trading stays halted
    (also across a restart) until the trader looks."""
    live = LiveProc(tmp_path, sim)
    try:
        live.start()
        first = order(live, "buy")
        assert first["status"] == "applied", first
        live.wait(lambda: live.count("fill") >= 1, "Genesis's own fill")
        live.stop()
        sim.transfer("ETH", "0.01")   # a deposit: no order, no trade
        live.start()
        mismatch = live.entries("position_mismatch")
        assert len(mismatch) == 1 and mismatch[0]["diff_usd"] > 20   # ~0.01 ETH
        fired = [e for e in live.entries("fire") if e["_rule"] == "position_mismatch"]
        assert len(fired) == 1
        states = [e for e in live.entries("state") if "mode" in e]
        assert states[-1]["mode"] == "HALTED"
        refused = order(live, "sell")   # not even an exit: HALTED stops every new order
        assert refused["status"] == "refused" and refused["result"].startswith("sell BTCUSDT $")
        assert refused["result"].endswith(": trading is halted")
        live.stop()
        live.start()   # the halt is rebuilt from the input log: still halted
        again = order(live, "sell")
        assert again["status"] == "refused" and again["result"].startswith("sell BTCUSDT $")
        assert again["result"].endswith(": trading is halted")   # the sell is valued at the price of the moment
        assert len(live.entries("position_mismatch")) == 1
    finally:
        live.stop()


def test_slow_exchange_answers_raise_the_latency_alert(live, sim):
    live.start()
    # every answer 2.5 s late: the minute's mean, which still holds the start's fast
    # answers, crosses 200 ms after a few slow ones (at 260 ms it took half a minute)
    sim.set_faults({"http_delay_ms": 2500})
    placed = order(live, "buy", usd=12)
    assert placed["status"] == "applied", placed
    live.wait(lambda: live.count("fill") >= 1, "the buy's fill")
    placed = order(live, "sell")
    assert placed["status"] == "applied", placed
    live.wait(lambda: live.count("fill") >= 2, "the sell's fill")
    live.wait(lambda: any(e["_rule"] == "api_latency_high" for e in live.entries("fire")), "the latency alert",
              timeout=30)
    fired = [e for e in live.entries("fire") if e["_rule"] == "api_latency_high"][0]
    assert fired["values"]["api_latency_mean_1m"] > 200
    sim.set_faults({}, reset=True)
    assert live.stop() == 0
    agreement(live, sim, START)


def test_an_order_self_trade_prevention_expires_closes_at_once(tmp_path):
    """The simulator does what Binance does by default (EXPIRE_MAKER): a market buy that
    reaches Genesis's own resting sell expires that sell (EXPIRED_IN_MATCH) and fills
    from the book. The sell closes from its TRADE_PREVENTION report at once, as
    cancelled by the exchange, not at the next reconciliation."""
    with SimulatorThread(speed="step", balances={k: str(v) for k, v in START.items()}) as sim, \
            Stepper(sim) as market:
        live = LiveProc(tmp_path, sim, tier="hunter")       # adding to a position: more than one at once
        try:
            live.start()
            assert order(live, "buy", usd=25)["status"] == "applied"
            live.wait(lambda: live.count("fill") >= 1, "the buy's fill")
            with market.paused():                            # the book holds still from here
                ask = float(sim.state()["books"]["BTCUSDT"]["bestAsk"])
                sell = order(live, "sell", usd=15, limit=ask)   # at the best ask: it rests
                assert "resting: g2" in sell["result"], sell
                live.wait(lambda: any(o["clientOrderId"].endswith("-g2") and o["status"] == "NEW"
                                      for o in account(sim)["orders"]), "the sell on the exchange")
                reconciled = live.count("reconciled")
                bought = order(live, "buy", usd=15)               # g3 reaches g2 first
                assert bought["status"] == "applied", bought
                live.wait(lambda: live.count("order_canceled") >= 1, "the sell's close")
                live.wait(lambda: live.count("fill") >= 2, "the buy's fill")
                assert live.count("reconciled") == reconciled      # from the report, not a reconciliation
            states = {o["clientOrderId"].split("-", 1)[1]: o for o in account(sim)["orders"]}
            assert states["g2"]["status"] == "EXPIRED_IN_MATCH" and states["g3"]["status"] == "FILLED"
            closed = live.entries("order_canceled")[0]
            assert (closed["client_id"], closed["reason"], closed["by_exchange"], closed["manual"]) == \
                ("g2", "expired_in_match", True, True)
            assert [f["client_id"] for f in live.entries("fill")] == ["g1", "g3"]
            assert live.stop() == 0
            agreement(live, sim, START)
            live.start()                                   # the log replays to the same state
            assert live.count("order_canceled") == 1 and not live.entries("position_mismatch")
        finally:
            live.stop()


def by_cid(sim) -> dict:
    """The account's orders by client id without the run's prefix ('g1', 'g1.a1', ...)."""
    return {o["clientOrderId"].split("-", 1)[1]: o for o in account(sim)["orders"]}


def amend(live: LiveProc, cid: str, price: float) -> subprocess.CompletedProcess:
    done = live.cli("amend", cid, f"{price:.2f}")
    assert done.returncode in (0, 1), done.stderr
    return done


def test_live_amend_moves_the_order_survives_a_kill_and_fills_at_once_when_it_crosses(tmp_path):
    """genesis amend in live mode: the order is cancelled and placed again for what was
    left at the new price under the next client id (g1 -> g1.a1 -> ...); order_amended is
    counted each time. A kill while the replacement's answer is still out: after the
    restart, reconciliation finds the replacement. An amend across the book fills at once."""
    with SimulatorThread(speed="step", balances={k: str(v) for k, v in START.items()}) as sim, \
            Stepper(sim) as market:
        live = LiveProc(tmp_path, sim)
        try:
            live.start()
            bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
            placed = order(live, "buy", usd=30, limit=round(bid * 0.9, 2))
            assert "resting: g1" in placed["result"], placed
            live.wait(lambda: any(f["_client_id"] == "g1" for f in live.inputs("order_ack")), "the ack")
            qty = by_cid(sim)["g1"]["origQty"]
            moved = amend(live, "g1", bid * 0.92)
            assert moved.returncode == 0 and f"amend of order g1 to {round(bid * 0.92, 2):g} sent" in moved.stdout, \
                moved.stdout
            live.wait(lambda: live.count("order_amended") == 1, "the first amend")
            orders = by_cid(sim)
            assert orders["g1"]["status"] == "CANCELED" and orders["g1.a1"]["status"] == "NEW"
            assert Decimal(orders["g1.a1"]["price"]) == Decimal(f"{bid * 0.92:.2f}") and orders["g1.a1"]["origQty"] == qty
            # the replacement is placed, its answer and its reports held: the engine is killed before it hears
            sim.set_faults({"http_only": ["POST /api/v3/order"], "http_timeout_after_next": 1, "http_timeout_s": 20,
                            "ws_targets": ["user"], "ws_delay_ms": 5000})
            assert amend(live, "g1", bid * 0.93).returncode == 0
            live.wait(lambda: by_cid(sim).get("g1.a2", {}).get("status") == "NEW", "the second replacement")
            live.kill()
            sim.set_faults({}, reset=True)
            assert live.count("order_amended") == 1
            live.start()
            live.wait(lambda: live.count("order_amended") == 2, "the amend found by reconciliation")
            assert live.entries("order_amended")[-1]["price"] == round(bid * 0.93, 2)
            # across the book: the replacement takes at once
            with market.paused():
                ask = float(sim.state()["books"]["BTCUSDT"]["bestAsk"])
                assert amend(live, "g1", ask * 1.001).returncode == 0
                live.wait(lambda: live.count("fill") >= 1, "the fill of the crossing amend")
            amended = live.entries("order_amended")
            assert [a["amendments"] for a in amended] == [1, 2, 3] and {a["client_id"] for a in amended} == {"g1"}
            assert [a["old_price"] for a in amended[1:]] == [a["price"] for a in amended[:-1]]
            fills = live.entries("fill")
            assert {f["client_id"] for f in fills} == {"g1"} and not any(f["maker"] for f in fills)
            live.wait(lambda: by_cid(sim)["g1.a3"]["status"] == "FILLED", "the replacement filled")
            assert [o["status"] for o in account(sim)["orders"]] == ["CANCELED", "CANCELED", "CANCELED", "FILLED"]
            assert live.count("order_canceled") == 0          # the replaced orders are not cancels of g1
            assert live.stop() == 0
            agreement(live, sim, START)
        finally:
            live.stop()


def test_live_amend_refused_when_the_order_filled_first_and_settled_after_a_kill_half_way(tmp_path):
    """The order filled on the exchange before the amend arrived (its report held back on
    the user stream): the cancel finds nothing, the amend is refused in the journal, the
    fill arrives and nothing is lost. Then a kill between the amend's cancel and its new
    order (held, never executed): after the restart the order ends cancelled, nothing
    is placed twice or left behind."""
    with SimulatorThread(speed="step", balances={k: str(v) for k, v in START.items()}) as sim, \
            Stepper(sim) as market:
        live = LiveProc(tmp_path, sim, tier="hunter")
        try:
            live.start()
            # the order's answer, whose fills Genesis would take in at once, is lost (503 after it
            # executed): the order is found by a query, which lists no fills; the reconciliation
            # that follows takes 4 s (within recvWindow) to read them from myTrades and the report
            # is held 8 s
            sim.set_faults({"ws_targets": ["user"], "ws_delay_ms": 8000, "http_error_after_next": 1,
                            "http_only": ["POST /api/v3/order", "GET /api/v3/myTrades"], "http_delay_ms": 4000})
            with market.paused():
                ask = float(sim.state()["books"]["BTCUSDT"]["bestAsk"])
                placed = order(live, "buy", usd=15, limit=round(ask * 1.001, 2))   # fills at once
                assert "resting: g1" in placed["result"], placed   # as far as Genesis knows yet
                live.wait(lambda: any(f["_client_id"] == "g1" for f in live.inputs("order_ack")), "the ack")
                assert by_cid(sim)["g1"]["status"] == "FILLED" and live.count("fill") == 0
                assert amend(live, "g1", ask * 0.95).returncode == 0
                live.wait(lambda: live.count("order_amend_rejected") == 1, "the refusal")
            refused = live.entries("order_amend_rejected")[0]
            assert refused["client_id"] == "g1" and "already filled" in refused["reason"]
            live.wait(lambda: live.count("fill") == 1, "the fill")
            sim.set_faults({}, reset=True)
            again = amend(live, "g1", ask * 0.95)
            assert again.returncode == 1 and "refused: no open order 'g1'" in again.stdout
            assert "g1.a1" not in by_cid(sim) and live.count("order_amended") == 0
            # half-way: cancelled, and the new order never leaves the exchange's door
            bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
            assert "resting: g2" in order(live, "buy", usd=15, limit=round(bid * 0.9, 2))["result"]
            live.wait(lambda: any(f["_client_id"] == "g2" for f in live.inputs("order_ack")), "the ack of g2")
            sim.set_faults({"http_only": ["POST /api/v3/order"], "http_timeout_next": 1, "http_timeout_s": 30})
            assert amend(live, "g2", bid * 0.91).returncode == 0
            live.wait(lambda: by_cid(sim)["g2"]["status"] == "CANCELED", "the amend's cancel")
            time.sleep(0.3)
            live.kill()
            sim.set_faults({}, reset=True)
            live.start()
            closed = [c for c in live.entries("order_canceled") if c["client_id"] == "g2"]
            assert len(closed) == 1 and closed[0]["reason"].startswith("amend not completed")
            assert closed[0]["by_exchange"] is True
            assert "g2.a1" not in by_cid(sim) and not account(sim)["balances"]["USDT"]["locked"].strip("0.")
            assert live.stop() == 0
            agreement(live, sim, START)
        finally:
            live.stop()


def test_an_order_held_on_its_way_when_the_engine_is_killed_is_taken_in_after_the_restart(live, sim):
    """The engine is killed while the exchange holds its new-order request (delayed, still
    within recvWindow). The restarted engine asks for the order before it has arrived:
    it must not close it as not sent, but wait until no attempt of the dead process can
    still execute (its start + recvWindow + 0.5 s), ask again, and take the order in:
    its fill from myTrades, the order closed. Journal and exchange agree exactly."""
    live.start()
    sim.set_faults({"http_only": ["POST /api/v3/order"], "http_delay_ms": 4000})   # recvWindow is 5000
    buy = order(live, "buy")
    assert buy["status"] == "applied" and "1 order sent (g1)" in buy["result"]
    time.sleep(0.3)                                    # the request reaches the exchange and is held there
    live.kill()
    sim.set_faults({}, reset=True)                     # the held request goes on; nothing else is delayed
    assert account(sim)["orders"] == [] and live.count("fill") == 0
    before = live.count("reconciled")
    live.start()
    live.wait(lambda: [o["status"] for o in account(sim)["orders"]] == ["FILLED"], "the held order to execute")
    assert account(sim)["orders"][0]["clientOrderId"].endswith("-g1")
    assert not [r for r in live.entries("order_rejected") if "not sent" in r.get("reason", "")], \
        live.entries("order_rejected")
    first = live.entries("reconciled")[before]        # the start-up reconciliation waited for it
    assert first["not_sent"] == 0 and first["fills"] >= 1 and first["mismatch_usd"] == 0, first
    live.wait(lambda: live.count("fill") == len(account(sim)["trades"]), "every fill in the journal")
    fills = live.entries("fill")
    assert {f["client_id"] for f in fills} == {"g1"} and len(fills) == len(account(sim)["trades"])
    assert live.stop() == 0
    assert agreement(live, sim, START) == {"trades": len(fills), "orders": 1, "fills": len(fills)}
