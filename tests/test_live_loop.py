"""The live run loop in this process (LiveRunner against the simulator on 127.0.0.1,
real ccxt, real websockets): new orders leave on the order connection, and the garbage
collector runs between inputs only."""
from __future__ import annotations

import asyncio
import gc
import time
import weakref
from pathlib import Path

from genesis.config.checks import check_config
from genesis.live.credentials import Credentials, Secret
from genesis.live.rest import ExchangeClient
from genesis.live.session import LiveRunner, open_live_session
from genesis.live.streams import runner_streams
from genesis.simulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimulatorThread
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]


class Cycle:
    """Cyclic garbage: freed only by the garbage collector."""

    def __init__(self):
        self.me = self


class EveryFewTrades:
    """Buy $12 of BTC when flat, sell it when holding, on every 20th BTCUSDT trade; makes
    one piece of cyclic garbage per trade and notes whether automatic collection is on."""

    id, kind, symbols, given = "loop-test", "loop-test", ["BTCUSDT"], {}

    def __init__(self, freed: list):
        self.trades = 0
        self.freed = freed
        self.made = 0
        self.gc_enabled_seen: set = set()

    def on_event(self, event, view):
        if event.kind != "trade" or event.symbol != "BTCUSDT":
            return []
        self.gc_enabled_seen.add(gc.isenabled())
        garbage = Cycle()
        weakref.finalize(garbage, self.freed.append, 1)
        self.made += 1
        del garbage
        self.trades += 1
        if self.trades % 20:
            return []
        price = event.fields["price"]
        if view.holding("BTCUSDT") > 0:
            return [OrderIntent(self.id, "BTCUSDT", "sell", view.holding_value("BTCUSDT") * 2, price, "signal", False)]
        return [OrderIntent(self.id, "BTCUSDT", "buy", 12.0, price, "entry", True)]


def test_orders_leave_on_the_order_connection_and_garbage_is_collected_between_inputs(tmp_path):
    freed: list = []
    strategy = EveryFewTrades(freed)

    async def main(sim):
        config = check_config(ROOT)
        creds = Credentials(Secret(DEFAULT_API_KEY), Secret(DEFAULT_API_SECRET))
        session, log_path = open_live_session(ROOT, config, "strategist", f"sqlite:///{tmp_path / 'j.db'}", creds,
                                              sim.rest_url)
        session.engine.strategies = [strategy]
        client = ExchangeClient(sim.rest_url, DEFAULT_API_KEY, DEFAULT_API_SECRET)
        await client.start()
        through_ccxt = []
        fetch = client._ex.fetch

        async def counting_fetch(url, method="GET", headers=None, body=None):
            if method == "POST" and "/order?" in url:
                through_ccxt.append(1)
            return await fetch(url, method, headers, body)

        client._ex.fetch = counting_fetch

        market, user = runner_streams(sim.ws_url, client, ["BTCUSDT"])

        runner = LiveRunner(session, client, market, user, log_path, ["BTCUSDT"], say=lambda t: None,
                            config_root=None)
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (session.engine.stats.fills < 6 or strategy.made < 2000):
            await asyncio.sleep(0.1)
        runner.stop()
        await task
        gc_after = gc.isenabled()
        fills = session.engine.stats.fills
        runner.close(operator_left=False)
        sent = client._wire.sent
        await client.close()
        return fills, sent + len(through_ccxt), sent, gc_after, runner.gc_runs

    was_enabled = gc.isenabled()
    with SimulatorThread(speed=20) as sim:
        fills, posted, on_connection, gc_after, gc_runs = asyncio.run(main(sim))
        placed = [o for o in sim.state()["accounts"][DEFAULT_API_KEY]["orders"]]
    assert was_enabled and gc_after                       # automatic collection is back after the run
    assert strategy.gc_enabled_seen == {False}            # ... and was off while the engine decided
    assert fills >= 6 and len(placed) >= 6 and all(o["status"] == "FILLED" for o in placed)
    assert posted == len(placed)                 # every order request sent reached the exchange, once
    # the new orders left on the order connection (its spare connections were ready),
    # not through ccxt's session
    assert on_connection >= len(placed) - 1, (on_connection, len(placed))
    # the loop's own collections freed the cyclic garbage made while trading
    assert gc_runs >= 1 and len(freed) >= strategy.made // 2, (len(freed), strategy.made, gc_runs)
