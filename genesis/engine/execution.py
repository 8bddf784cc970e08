"""Execution policy from the tier file: how an admitted intent becomes child orders.

Order of precedence: iceberg (where enabled, above its threshold), then a single
market order below `market_max_usd`, then the mandatory slicing band, then TWAP and
VWAP (time-spread slices) above it. Slices are spaced in event time; the iceberg's
size jitter and spacing come from a generator seeded by the parent order's id, so a
replay schedules exactly the same children.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass


@dataclass
class Slice:
    """One child order of a parent intent."""

    due: int           # event time to send it (ms)
    fraction: float    # share of the parent notional


def plan(policy: dict, notional: float, now: int, parent_id: str) -> tuple[str, list]:
    """(algorithm name, slices) for an intent of `notional` USD under a tier's execution policy."""
    ice = policy["iceberg"]
    if ice["enabled"] and notional > ice["min_usd"]:
        rng = random.Random(zlib.crc32(parent_id.encode()))
        n = rng.randint(ice["min_slices"], ice["max_slices"])
        jitter = ice["size_jitter_pct"] / 100.0
        weights = [1.0 + rng.uniform(-jitter, jitter) for _ in range(n)]
        total = sum(weights)
        due, slices = now, []
        for w in weights:
            slices.append(Slice(due, w / total))
            due += int(rng.uniform(ice["min_interval_s"], ice["max_interval_s"]) * 1000)
        return "iceberg", slices
    if notional < policy["market_max_usd"]:
        return "market", [Slice(now, 1.0)]
    band = policy["three_slice"]
    if band["enabled"] and notional <= band["max_usd"]:
        n = band["slices"]
        return "sliced", [Slice(now + i * 1000, 1.0 / n) for i in range(n)]
    for name in ("vwap", "twap"):
        algo = policy[name]
        if algo["enabled"]:
            n = algo["slices"]
            step = int(algo["duration_s"] * 1000 / n)
            return name, [Slice(now + i * step, 1.0 / n) for i in range(n)]
    return "none", []
