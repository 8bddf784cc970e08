"""genesis.live.reconcile's balance check: the real ExchangeClient against the simulator on
127.0.0.1 (step mode). A balance difference Genesis's fills do not explain is raised once,
however its USD value moves with the price, and again only when the coins differ anew."""
from __future__ import annotations

import asyncio

from genesis.engine.markets import Markets
from genesis.live.exchange import LiveExchange
from genesis.live.reconcile import reconcile
from genesis.live.rest import ExchangeClient
from genesis.simulator import SimulatorThread
from genesis.simulator.config import DEFAULT_API_KEY, DEFAULT_API_SECRET


def test_an_unexplained_difference_is_raised_once_whatever_the_price_and_again_when_it_grows():
    with SimulatorThread(speed="step", balances={"USDT": "1000", "ETH": "1", "BTC": "0"}) as sim:
        exchange = LiveExchange(Markets.load(), prefix="Gtest-")
        # as if 0.01 ETH had been bought for 30 USDT... and 30 USDT paid in besides
        start = {"USDT": 970.0, "ETH": 0.99, "BTC": 0.0}
        raised = []

        def emit(make):   # reconcile's findings, processed at once (as before the run loop starts)
            events = make()
            for event in events:
                if event.kind != "reconciled":
                    raised.append(event)
                exchange.apply(event)
            return events

        async def check() -> dict:
            client = ExchangeClient(sim.rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, timeout_s=2.0)
            await client.start()
            try:
                return await reconcile(exchange, client, emit, lambda: 1_000, start, ["ETHUSDT"])
            finally:
                await client.close()

        first = asyncio.run(check())        # no ETH price yet: only the USDT side has a value
        assert first["mismatch_usd"] == 30.0
        assert [e.kind for e in raised] == ["position_mismatch"]
        assert raised[0].fields["diff_usd"] == 30.0

        exchange.book("ETHUSDT").apply_ticker(2999.0, 1.0, 3001.0, 1.0)
        priced = asyncio.run(check())       # the same coins, now worth 60 USD: not raised again
        assert abs(priced["mismatch_usd"] - 60.0) < 1e-6
        exchange.book("ETHUSDT").apply_ticker(3099.0, 1.0, 3101.0, 1.0)
        moved = asyncio.run(check())
        assert abs(moved["mismatch_usd"] - 61.0) < 1e-6
        assert len(raised) == 1

        sim.transfer("ETH", "0.01")        # more coins, and no trade explains them
        grown = asyncio.run(check())
        assert grown["mismatch_usd"] > 61.0
        assert len(raised) == 2 and raised[1].fields["diff_usd"] == round(grown["mismatch_usd"], 8)
