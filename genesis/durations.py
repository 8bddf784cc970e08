"""Durations in configuration files: '500ms', '30s', '5m', '1h', '7d', and compound
ones written largest unit first, each unit at most once: '4h1s', '1d2h', '1m30s'."""
from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
# d, h, m, s, ms in this order; each optional, at least one present
_DURATION = re.compile(r"^(?=[0-9])" + "".join(rf"(?:({_NUMBER}){unit})?" for unit in ("d", "h", "m", "s", "ms")) + "$")
_EXAMPLES = "500ms, 30s, 5m, 1h, 7d, or compound largest unit first: 1h30m, 4h1s, 1d2h"


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError if it is not one."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a duration (write e.g. {_EXAMPLES})")
    return sum(float(n) * _UNITS[u] for n, u in zip(match.groups(), ("d", "h", "m", "s", "ms")) if n is not None)


def format_duration(ms: int) -> str:
    """A whole number of milliseconds written as a compound duration: 14401000 -> '4h1s'."""
    if ms <= 0:
        return "0s" if ms == 0 else "-" + format_duration(-ms)
    parts, rest = [], int(ms)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def format_utc(ms: int | float | None, seconds: bool = True) -> str:
    """An epoch-milliseconds time as readable UTC: 1723161285222 -> '2024-08-09 00:54:45 UTC'
    ('-' for None)."""
    if ms is None:
        return "-"
    from datetime import datetime, timezone  # noqa: PLC0415

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
