"""Executions: one admitted order intent (the parent) from its planned slices to its end.

The engine opens an execution when the execution policy has planned an intent's slices,
tells it which slices left (and which were dropped: nothing to sell, no price, a
`cancel_all` before a scheduled slice was due), and passes it every report on those
slices (fills, cancels, rejections). Once every planned slice has left and ended, or was
dropped, the execution is done: an `execution_done` event with what was measured:

* `slices`: slices actually sent (`planned_slices`: what the policy planned);
* `sent_usd` / `filled_usd`: value sent (at the price each slice was sized with) and filled;
* `impact_pct`: the average fill price against the mid at arrival (the decision), in %,
  adverse positive (a buy filled above the arrival mid, a sell below it); 0 when
  nothing filled or no mid was known (`filled_usd` or `arrival_mid` 0 says so).

Event time only, no randomness: a replay gives the same executions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from genesis.engine.events import Event

_DONE_QTY = 1e-12   # a fill leaving less than this open ends its order


@dataclass
class Execution:
    """One parent order and what its slices did so far."""

    parent: str
    symbol: str
    side: str
    algo: str
    manual: bool
    notional_usd: float          # the parent's value, as planned
    planned: int                 # slices the policy planned
    arrival_mid: float           # mid when the decision was made (0: not known)
    waiting: int = 0             # planned slices not yet sent nor dropped
    working: set = field(default_factory=set)   # client ids sent and not ended
    sent: int = 0
    sent_usd: float = 0.0
    filled_qty: float = 0.0
    filled_usd: float = 0.0

    def done_event(self, ts: int) -> Event:
        """The `execution_done` event of this execution."""
        impact = 0.0
        if self.filled_qty > 0 and self.arrival_mid > 0:
            average = self.filled_usd / self.filled_qty
            move = (average - self.arrival_mid) / self.arrival_mid * 100
            impact = move if self.side == "buy" else -move
        return Event("execution_done", ts, self.symbol, {
            "side": self.side, "algo": self.algo, "manual": self.manual,
            "notional_usd": round(self.notional_usd, 6), "planned_slices": self.planned, "slices": self.sent,
            "sent_usd": round(self.sent_usd, 6), "filled_usd": round(self.filled_usd, 6),
            "arrival_mid": self.arrival_mid, "impact_pct": round(impact, 6), "_parent": self.parent})


class Executions:
    """The executions not done yet, and which parent each sent slice belongs to."""

    def __init__(self) -> None:
        self.open: dict[str, Execution] = {}
        self.by_client: dict[str, str] = {}    # client id -> parent id

    def start(self, execution: Execution) -> None:
        """A parent order whose slices were just planned."""
        execution.waiting = execution.planned
        self.open[execution.parent] = execution

    def sent(self, parent: str, client_id: str, notional_usd: float) -> None:
        """A planned slice left as order `client_id`."""
        ex = self.open.get(parent)
        if ex is None:
            return
        ex.waiting -= 1
        ex.sent += 1
        ex.sent_usd += notional_usd
        ex.working.add(client_id)
        self.by_client[client_id] = parent

    def dropped(self, parent: str, ts: int) -> list[Event]:
        """A planned slice that will never leave; the `execution_done` it completes, if any."""
        ex = self.open.get(parent)
        if ex is None:
            return []
        ex.waiting -= 1
        return self._finish(ex, ts)

    def on_report(self, event: Event) -> list[Event]:
        """A fill, cancel or rejection of one of the slices; the `execution_done` it completes, if any."""
        client_id = event.fields.get("_client_id")
        parent = self.by_client.get(client_id)
        ex = self.open.get(parent) if parent else None
        if ex is None:
            return []
        if event.kind == "fill":
            ex.filled_qty += event.fields["qty"]
            ex.filled_usd += event.fields["qty"] * event.fields["price"]
            if event.fields.get("_remaining", 0.0) > _DONE_QTY:
                return []   # partly filled: the rest is still working
        ex.working.discard(client_id)
        del self.by_client[client_id]
        return self._finish(ex, event.ts)

    def _finish(self, ex: Execution, ts: int) -> list[Event]:
        if ex.waiting > 0 or ex.working:
            return []
        del self.open[ex.parent]
        return [ex.done_event(ts)]
