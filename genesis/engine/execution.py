"""Execution policy from the tier file: which algorithm works an admitted intent, and the
child orders of the algorithms that are planned once.

Order of precedence: iceberg (where enabled, above its threshold), then a single market
order below `market_max_usd`, then the mandatory slicing band (`three_slice`), then VWAP,
then TWAP. Urgent intents (stop losses and the engine's risk exits) go at once: one market
order below `market_max_usd`, else the slicing band's market slices one second apart,
whatever their size (never resting at the touch, never spread over minutes).

A single market order, the slicing band and a TWAP with market children are planned at
the decision: slices spaced in event time. The iceberg, VWAP and a TWAP with limit
children react to the market while they work (genesis/engine/algos.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from genesis.engine.algos import Iceberg, LimitTwap, Touch, Vwap, WorkingAlgo

URGENT_REASONS = frozenset(("stop_loss", "risk"))


@dataclass
class Slice:
    """One child order of a parent intent, planned at the decision."""

    due: int           # event time to send it (ms)
    fraction: float    # share of the parent notional


def choose(policy: dict, notional: float, urgent: bool) -> str:
    """The algorithm for an intent of `notional` USD: iceberg, market, sliced, vwap, twap,
    or none (no algorithm of the tier takes it)."""
    band = policy["three_slice"]
    if urgent:
        return "sliced" if band["enabled"] and notional >= policy["market_max_usd"] else "market"
    ice = policy["iceberg"]
    if ice["enabled"] and notional > ice["min_usd"]:
        return "iceberg"
    if notional < policy["market_max_usd"]:
        return "market"
    if band["enabled"] and notional <= band["max_usd"]:
        return "sliced"
    for name in ("vwap", "twap"):
        if policy[name]["enabled"]:
            return name
    return "none"


def works_over_time(policy: dict, algo: str) -> bool:
    """Whether `algo` reacts to the market while it works (else its slices are planned now)."""
    if algo in ("iceberg", "vwap"):
        return True
    return algo == "twap" and policy["twap"]["order_type"] == "limit"


def plan(policy: dict, algo: str, notional: float, now: int) -> list[Slice]:
    """The slices of an algorithm planned at the decision (market, sliced, market TWAP)."""
    if algo == "market":
        return [Slice(now, 1.0)]
    if algo == "sliced":
        n = policy["three_slice"]["slices"]
        return [Slice(now + i * 1000, 1.0 / n) for i in range(n)]
    if algo == "twap":
        twap = policy["twap"]
        n = twap["slices"]
        step = int(twap["duration_s"] * 1000 / n)
        return [Slice(now + i * step, 1.0 / n) for i in range(n)]
    return []


def working_algo(policy: dict, algo: str, symbol: str, side: str, notional: float, now: int, min_usd: float,
                 parent: str, touch: Touch) -> WorkingAlgo:
    """The algorithm object that works a parent order over time."""
    if algo == "iceberg":
        return Iceberg(symbol, side, notional, now, min_usd, policy["iceberg"], parent, touch)
    if algo == "vwap":
        v = policy["vwap"]
        return Vwap(symbol, side, notional, now, min_usd, v["duration_s"], v["slices"], v["max_participation_pct"],
                    v["profile_days"], touch)
    t = policy["twap"]
    return LimitTwap(symbol, side, notional, now, min_usd, t["duration_s"], t["slices"])
