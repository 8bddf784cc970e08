"""A Binance-spot-compatible exchange simulator on 127.0.0.1 (``genesis simulate``).

Public API: ``Simulator`` (asyncio), ``SimulatorThread`` (background thread),
``SimConfig``, ``FaultSpec``, ``ccxt_overrides`` / ``ccxt_config`` (point ccxt at it).
See docs/simulator.md."""
from __future__ import annotations

from .ccxt_setup import ccxt_config, ccxt_overrides
from .config import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimConfig
from .faults import FaultSpec
from .server import Simulator
from .thread import SimulatorThread

__all__ = [
           "DEFAULT_API_KEY",
           "DEFAULT_API_SECRET",
           "FaultSpec",
           "SimConfig",
           "Simulator",
           "SimulatorThread",
           "ccxt_config",
           "ccxt_overrides",
]
