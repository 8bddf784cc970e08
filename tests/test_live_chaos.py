"""Chaos: the live engine (`genesis run --mode live`, real ccxt and websockets) trades
against the project's simulator while it is killed with SIGKILL at random moments, in
the middle of order traffic, several times. After every restart (recovery from the
journal and the input log, then reconciliation) the journal and the exchange must
agree exactly: every exchange trade is one journaled fill, no order was sent twice,
and the balances are the starting ones plus the journaled fills.

The seed is printed; GENESIS_CHAOS_SEED=N repeats a run, GENESIS_CHAOS_ROUNDS=N runs more.
"""
from __future__ import annotations

import os
import random
import time
from decimal import Decimal

from live_helpers import LiveProc, account, agreement

from genesis.simulator import SimulatorThread

START = {"USDT": Decimal("2000"), "BTC": Decimal("0"), "ETH": Decimal("0")}
TERMINAL = ("FILLED", "CANCELED", "EXPIRED", "REJECTED")


def quiet(live: LiveProc, sim) -> bool:
    """Nothing in flight: every command answered, every exchange order ended or resting
    far from the market, every exchange trade journaled."""
    if live.rows("SELECT count(*) FROM commands WHERE status = 'queued'")[0][0]:
        return False
    acct = account(sim)
    if any(o["status"] not in TERMINAL and o["type"] != "LIMIT" for o in acct["orders"]):
        return False
    on_exchange = {o["clientOrderId"].split("-", 1)[1] for o in acct["orders"]}
    ended = {e.get("client_id") for e in live.entries("order_rejected")}
    if any(e["client_id"] not in on_exchange | ended for e in live.entries("order")):
        return False   # decided and sent, not yet at the exchange
    return live.count("fill") == len(acct["trades"])


def traffic(live: LiveProc, rng: random.Random, n: int, far: float) -> None:
    """Queue a burst of operator orders: market buys and sells, resting limits far below
    the market, and cancels of earlier ones."""
    for _ in range(n):
        pick = rng.random()
        symbol = rng.choice(["BTCUSDT", "ETHUSDT"])
        if pick < 0.45:
            live.queue("order", side="buy", symbol=symbol, notional_usd=rng.choice([20, 30, 45]), reason="")
        elif pick < 0.75:
            live.queue("order", side="sell", symbol=symbol, notional_usd=1000, reason="")
        elif pick < 0.9:
            live.queue("order", side="buy", symbol="BTCUSDT", notional_usd=25, reason="", limit=far)
        else:
            resting = [o["clientOrderId"].split("-", 1)[1] for o in account(live.sim)["orders"]
                       if o["status"] == "NEW"]
            if resting:
                live.queue("cancel", client_id=rng.choice(resting))


def test_sigkill_at_random_moments_keeps_journal_and_exchange_in_agreement(tmp_path):
    seed = int(os.environ.get("GENESIS_CHAOS_SEED", "20261122"))
    rounds = int(os.environ.get("GENESIS_CHAOS_ROUNDS", "4"))
    rng = random.Random(seed)
    print(f"chaos seed {seed}, {rounds} kills")
    with SimulatorThread(speed=2, balances={k: str(v) for k, v in START.items()}) as sim:
        live = LiveProc(tmp_path, sim)
        try:
            live.start()
            far = round(float(sim.state()["books"]["BTCUSDT"]["bestBid"]) * 0.7, 2)
            kills = 0
            for _ in range(rounds):
                traffic(live, rng, rng.randint(2, 6), far)
                time.sleep(rng.uniform(0.0, 0.6))        # somewhere in the middle of the traffic
                live.kill()
                kills += 1
                live.start()                              # recovery + reconciliation
                live.wait(lambda: quiet(live, sim), "the restarted engine to settle", timeout=60)
                agreement(live, sim, START)
                # the restarted engine is consistent with what it journaled before: nothing it
                # decided twice reached the exchange, and no reconciliation found a mismatch
                assert all(r["mismatch_usd"] == 0 for r in live.entries("reconciled"))
            # the sell waits for the buy's fill: queued together, a loaded machine may apply
            # both in one poll, and the sell then finds nothing to sell
            live.queue("order", side="buy", symbol="BTCUSDT", notional_usd=30, reason="")
            live.wait(lambda: quiet(live, sim), "the last buy", timeout=60)
            live.queue("order", side="sell", symbol="BTCUSDT", notional_usd=1000, reason="")
            live.wait(lambda: quiet(live, sim), "the last traffic", timeout=60)
            assert live.stop() == 0
            final = agreement(live, sim, START)
            assert kills == rounds and live.starts == rounds + 1
            assert final["trades"] >= 2, final
            assert not live.entries("position_mismatch")
        finally:
            live.stop()
