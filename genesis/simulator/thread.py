"""SimulatorThread: a Simulator on its own event loop in a background thread, for
synchronous code and tests::

    with SimulatorThread(speed="step") as sim:
        ex = ccxt.binance(ccxt_config(sim.rest_url))
        ...
        sim.step(100)
        assert sim.state()["accounts"][...]
"""
from __future__ import annotations

import asyncio
import threading
from typing import Self

from .server import Simulator


class SimulatorThread:
    """Runs a Simulator in a daemon thread; a context manager."""

    def __init__(self, config=None, **overrides):
        self._config = config
        self._overrides = overrides
        self.sim: Simulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._done: asyncio.Event | None = None

    def start(self, timeout: float = 30.0) -> SimulatorThread:
        """Start the thread and wait until the simulator listens (re-raises its errors)."""
        self._thread = threading.Thread(target=self._main, name="genesis-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the simulator did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        try:
            self.sim = Simulator(self._config, **self._overrides)
            await self.sim.start()
            self._done = asyncio.Event()
        except BaseException as e:  # noqa: BLE001 - handed to the starting thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        await self._done.wait()
        await self.sim.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the simulator and join the thread."""
        if self._loop is not None and self._done is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._done.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def call(self, fn, *args, **kwargs):
        """Run `fn(*args, **kwargs)` on the simulator's loop and return its result."""
        async def run():
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # conveniences, all run on the simulator's loop
    def step(self, n: int | None = None, ms: int | None = None, until_fill: bool = False) -> dict:
        """Replay records now (see Simulator.step)."""
        return self.call(self.sim.step, n, ms, until_fill)

    def state(self) -> dict:
        """Simulator.state()."""
        return self.call(self.sim.state)

    def set_faults(self, data: dict | None = None, reset: bool = False, **faults) -> dict:
        """Merge faults (a mapping and/or keywords) into the live spec."""
        return self.call(self.sim.set_faults, {**(data or {}), **faults}, reset)

    def transfer(self, asset: str, amount, api_key: str | None = None) -> dict:
        """Simulator.transfer(): a deposit (> 0) or withdrawal (< 0), no trade."""
        return self.call(self.sim.transfer, asset, amount, api_key)

    def set_clock(self, offset_ms: int) -> dict:
        """Simulator.set_clock()."""
        return self.call(self.sim.set_clock, offset_ms)

    def reset_limits(self, weight_limit: int | None = None) -> dict:
        """Simulator.reset_limits()."""
        return self.call(self.sim.reset_limits, weight_limit)

    @property
    def port(self) -> int:
        return self.sim.port

    @property
    def rest_url(self) -> str:
        return self.sim.rest_url

    @property
    def ws_url(self) -> str:
        return self.sim.ws_url

    @property
    def ws_api_url(self) -> str:
        return self.sim.ws_api_url

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
