"""Simulator settings, with their defaults (documented in docs/simulator.md)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

# The documented test pair: fine for a simulator on 127.0.0.1, never for a real account.
DEFAULT_API_KEY = "genesis-sim-key"
DEFAULT_API_SECRET = "genesis-sim-secret"
DEFAULT_BALANCES = {"USDT": "10000", "BTC": "0", "ETH": "0"}
DEFAULT_PORT = 8765
# self-trade prevention modes the simulator carries out (DECREMENT and TRANSFER are not offered)
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")
# how resting orders fill from recorded trades: queue position (default), strictly through, or at the price too
MAKER_FILLS = ("queue", "through", "touch")


@dataclass
class SimConfig:
    """Everything a simulator run can be told."""

    host: str = "127.0.0.1"
    port: int = 0                                  # 0: any free port (see Simulator.port)
    speed: float | str = "step"                    # N (1 = real time), "max", or "step"
    feeds: list = field(default_factory=list)      # capture files; [] = the bundled sample
    exchange_info: str | None = None               # exchangeInfo file; None = the bundled one
    api_key: str = DEFAULT_API_KEY
    api_secret: str = field(default=DEFAULT_API_SECRET, repr=False)
    extra_keys: dict = field(default_factory=dict, repr=False)  # more accounts: api key -> secret
    balances: dict = field(default_factory=lambda: dict(DEFAULT_BALANCES))
    maker_fee: str = "0.001"
    taker_fee: str = "0.001"
    maker_fill: str = "queue"                      # queue | through | touch
    keep_timestamps: bool = False                  # True: recorded E/T unchanged
    weight_limit: int = 6000                       # REQUEST_WEIGHT per window
    weight_window_s: float = 60.0
    ban_after: int = 3                             # 429s in a window before a 418 ban
    ban_s: float = 120.0
    orders_per_10s: int = 50
    stp_default: str = "EXPIRE_MAKER"              # defaultSelfTradePreventionMode of symbols that name none
    faults: dict = field(default_factory=dict)     # a fault spec (see faults.FaultSpec)
    seed: int = 0                                  # ids (order/listen key) and, unless set, faults
    derived_symbols: int = 0                       # more symbols cloned from the capture's (derived.py)
    derived_offset_ms: float = 100.0               # clone k replays k times this ahead of its source

    def validate(self) -> None:
        """Raise ValueError on a setting the simulator cannot run with."""
        check_loopback(self.host)
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port {self.port}: not a TCP port")
        parse_speed(self.speed)
        if self.maker_fill not in MAKER_FILLS:
            raise ValueError(f"maker_fill must be one of {', '.join(MAKER_FILLS)}")
        for name in ("maker_fee", "taker_fee"):
            value = _decimal(getattr(self, name), name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} {value}: a fee rate is between 0 and 1 (0.001 = 0.1%)")
        for asset, amount in self.balances.items():
            if _decimal(amount, f"balance {asset}") < 0:
                raise ValueError(f"balance {asset}: must not be negative")
        if self.stp_default not in STP_MODES:
            raise ValueError(f"stp_default {self.stp_default!r}: one of {', '.join(STP_MODES)}")
        if not 0 <= int(self.derived_symbols) <= 999:
            raise ValueError(f"derived_symbols {self.derived_symbols}: between 0 and 999")
        if not float(self.derived_offset_ms) >= 0:
            raise ValueError(f"derived_offset_ms {self.derived_offset_ms}: must not be negative")
        if not self.api_key or not self.api_secret:
            raise ValueError("an API key and secret are required")


def _decimal(value, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None


def check_loopback(host: str) -> None:
    """Refuse any address that is not loopback: the simulator is for this machine only."""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"host {host!r}: the simulator only listens on loopback (127.0.0.1, ::1, localhost)")


def parse_speed(speed) -> float | str:
    """'step' | 'max' | a positive number (1 = real time)."""
    if isinstance(speed, str):
        s = speed.strip().lower()
        if s in ("step", "max"):
            return s
        try:
            speed = float(s)
        except ValueError:
            raise ValueError(f"speed {speed!r}: use a number (1 = real time), 'max' or 'step'") from None
    if not speed > 0:
        raise ValueError(f"speed {speed}: must be positive (or 'max' / 'step')")
    return float(speed)


def parse_balances(items) -> dict:
    """``["USDT=10000", "BTC=0.5"]`` -> {"USDT": "10000", "BTC": "0.5"}."""
    out = {}
    for item in items or ():
        asset, eq, amount = item.partition("=")
        if not eq or not asset.strip():
            raise ValueError(f"--balance {item!r}: expected ASSET=AMOUNT")
        _decimal(amount.strip(), f"balance {asset}")
        out[asset.strip().upper()] = amount.strip()
    return out
