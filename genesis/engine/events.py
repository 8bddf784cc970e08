"""The one event model every source produces: market data, own orders and fills,
operator commands, timers and system probes.

An event is a kind, an event time in integer milliseconds (never wall time: replay,
paper and live make the same decisions), a symbol ('' for account-wide events) and a
dict of fields. The fields dict is what rule expressions read as `event.<field>`;
it always holds `symbol` and `hour_utc`. Fields whose names start with '_' are for
the engine only (order-book levels, exchange ids) and are never visible to rules.
"""
from __future__ import annotations

from dataclasses import dataclass

from genesis.engine.slotstate import reduce_slots

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000


class Event:
    """One input to the pipeline."""

    # compiled, an extension type: a field per slot, typed as annotated (genesis/declarations.py)
    __slots__ = ("kind", "ts", "symbol", "fields", "seq")

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self, kind: str, ts: int, symbol: str = "", fields: dict | None = None, seq: int = -1):
        self.kind = kind
        self.ts = ts
        self.symbol = symbol
        fields = {} if fields is None else fields
        fields["symbol"] = symbol
        fields["hour_utc"] = (ts // MS_PER_HOUR) % 24
        self.fields = fields
        self.seq = seq

    def public_fields(self) -> dict:
        """Fields rules may read (engine-only fields start with '_')."""
        return {k: v for k, v in self.fields.items() if not k.startswith("_")}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.fields.items() if k not in ("symbol", "hour_utc") and not k.startswith("_")}
        return f"Event({self.kind!r}, ts={self.ts}, symbol={self.symbol!r}, {shown})"


@dataclass(frozen=True)
class FeedIssue:
    """A line a feed could not use as it was: malformed, or out of event-time order."""

    source: str      # file name
    line: int        # 1-based line (or row) number
    problem: str     # what was wrong; never the whole raw line
