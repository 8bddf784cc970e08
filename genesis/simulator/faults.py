"""Fault injection: what can go wrong, switchable per run and at run time.

A fault spec is a flat mapping (JSON or YAML file, ``--fault KEY=VALUE`` flags, or
``POST /sim/faults``); every key is optional and defaults to "no fault". Counters
("…_next") are consumed as faults fire; rates (0..1) draw from one random generator
seeded by ``seed``, so a run with the same requests in the same order is reproducible.
See docs/simulator.md for the table of keys."""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class FaultSpec:
    """Every fault knob (see docs/simulator.md for units and meaning)."""

    seed: int = 0
    # REST (apply to /api/v3 requests that match http_only; /sim/* is never faulted)
    http_only: list = field(default_factory=list)      # substrings of "METHOD /path"; [] = all
    http_delay_ms: int = 0                  # every matching response delayed
    http_error_status: int = 503            # status of injected server errors
    http_error_next: int = 0                # next N requests: 5xx, not executed
    http_error_rate: float = 0.0
    http_error_after_next: int = 0          # next N requests: executed, then 5xx
    http_error_after_rate: float = 0.0
    http_timeout_next: int = 0              # next N requests: never answered, not executed
    http_timeout_rate: float = 0.0
    http_timeout_after_next: int = 0        # next N requests: executed, never answered
    http_timeout_after_rate: float = 0.0
    http_timeout_s: float = 30.0            # how long an unanswered request is held
    http_429_next: int = 0                  # forced 429 (-1003) on the next N requests
    http_418_next: int = 0                  # forced 418 (-1003) on the next N requests
    retry_after_s: int = 2                  # Retry-After of forced 429/418
    # orders
    reject_next: int = 0                    # next N new orders: -2010
    reject_rate: float = 0.0
    partial_next: int = 0                   # next N new orders fill only partial_ratio at first
    partial_rate: float = 0.0
    partial_ratio: float = 0.5
    partial_rest: str = "later"             # later | expire
    # websockets
    ws_targets: list = field(default_factory=lambda: ["market", "user", "api"])
    ws_drop_after: int = 0                  # abort the connection after N messages sent
    ws_drop_every_s: float = 0.0            # abort each connection X s after it opened
    ws_half_open_after: int = 0             # after N messages: silence, no close, no pong
    ws_mute_after: int = 0                  # after N messages: nothing more sent, but pings answered
    ws_duplicate_rate: float = 0.0          # market messages sent twice
    ws_reorder_rate: float = 0.0            # market messages swapped with the next one
    ws_delay_ms: int = 0                    # every ws message delayed

    @classmethod
    def from_mapping(cls, data: dict | None, base: FaultSpec | None = None) -> FaultSpec:
        """A spec from a mapping, on top of `base` (default: no faults). Unknown keys
        and bad values raise ValueError naming the key."""
        spec = FaultSpec(**asdict(base)) if base is not None else cls()
        known = {f.name: f for f in fields(cls)}
        for key, value in (data or {}).items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
            setattr(spec, key, _coerce(key, known[key].type, value))
        if spec.partial_rest not in ("later", "expire"):
            raise ValueError("partial_rest must be 'later' or 'expire'")
        bad = set(spec.ws_targets) - {"market", "user", "api"}
        if bad:
            raise ValueError(f"ws_targets: unknown {sorted(bad)}; use market, user, api")
        return spec

    def to_dict(self) -> dict:
        """The spec as plain JSON data."""
        return asdict(self)


def _coerce(key: str, typ: str, value):
    try:
        if typ == "list":
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
        if typ == "int":
            return int(value)
        if typ == "float":
            v = float(value)
            if key.endswith("_rate") and not 0 <= v <= 1:
                raise ValueError("a rate is between 0 and 1")
            return v
        return str(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"fault {key}: {e}") from None


def load_fault_file(path: str | Path) -> dict:
    """Read a fault spec file (JSON, or YAML when PyYAML is installed)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        data = yaml.safe_load(text)
    if isinstance(data, dict):
        return data
    raise ValueError(f"{path}: a fault spec is a mapping of fault names to values")


def parse_flags(flags) -> dict:
    """``["http_error_next=2", "ws_drop_after=10"]`` -> mapping."""
    out = {}
    for flag in flags or ():
        key, eq, value = flag.partition("=")
        if not eq:
            raise ValueError(f"--fault {flag!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


class Faults:
    """The live fault state: the spec, its seeded generator and what fired so far."""

    def __init__(self, spec: FaultSpec | None = None):
        self.spec = spec or FaultSpec()
        self.rng = random.Random(self.spec.seed)
        self.fired: dict[str, int] = {}

    def update(self, data: dict | None, reset: bool = False) -> FaultSpec:
        """Merge `data` into the spec (or start from no faults with `reset`). A new seed
        restarts the generator."""
        spec = FaultSpec.from_mapping(data, None if reset else self.spec)
        if reset or (data and "seed" in data):
            self.rng = random.Random(spec.seed)
        self.spec = spec
        return spec

    def take(self, counter: str, rate: str | None = None) -> bool:
        """True when the fault fires now: consumes one of `counter`, else draws `rate`."""
        spec = self.spec
        if getattr(spec, counter) > 0:
            setattr(spec, counter, getattr(spec, counter) - 1)
            self.fired[counter] = self.fired.get(counter, 0) + 1
            return True
        if rate is not None:
            p = getattr(spec, rate)
            if p > 0 and self.rng.random() < p:
                self.fired[rate] = self.fired.get(rate, 0) + 1
                return True
        return False

    def chance(self, rate: str) -> bool:
        """Draw one rate-based fault."""
        p = getattr(self.spec, rate)
        if p > 0 and self.rng.random() < p:
            self.fired[rate] = self.fired.get(rate, 0) + 1
            return True
        return False

    def http_applies(self, method: str, path: str) -> bool:
        """Whether REST faults apply to this request."""
        only = self.spec.http_only
        label = f"{method} {path}"
        return not only or any(o in label for o in only)

    def state(self) -> dict:
        """The spec plus what fired, for /sim/state."""
        return {"spec": self.spec.to_dict(), "fired": dict(self.fired)}
