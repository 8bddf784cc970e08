"""Durations in configuration files: '500ms', '30s', '5m', '1h', '7d'."""
from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError if it is not one."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a duration (write e.g. 500ms, 30s, 5m, 1h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]
