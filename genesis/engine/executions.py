"""Executions: one admitted order intent (the parent) from its planned slices to its end.

The engine opens an execution when the execution policy has planned an intent's slices,
tells it which slices left (and which were dropped: nothing to sell, no price, a
`cancel_all` before a scheduled slice was due), and passes it every report on those
slices (fills, cancels, rejections). Once every planned slice has left and ended, or was
dropped, the execution is done: an `execution_done` event with what was measured:

* `slices`: slices actually sent (`planned_slices`: what the policy planned);
* `sent_usd` / `filled_usd` / `unfilled_usd`: value sent (at the price each slice was
  sized with), filled, and the parent's value that did not fill;
* `avg_price`: the average fill price (0 when nothing filled);
* `slippage_bps`: the fills against the touch when each slice was sent, value-weighted,
  in basis points, adverse positive (a maker fill at its own price is negative);
* `impact_pct`: the average fill price against the mid at arrival (the decision), in %,
  adverse positive (a buy filled above the arrival mid, a sell below it); 0 when
  nothing filled or no mid was known (`filled_usd` or `arrival_mid` 0 says so);
* `mid_move_bps`: the mid when the execution ended against the arrival mid, adverse
  positive (how far the market moved while the order worked);
* `duration_ms`: event time from the decision to the end;
* `end`: `done`, `aborted` (an iceberg's abort_slippage_pct), `expired` (a VWAP held back
  by its participation cap) or `cancelled` (a rule's cancel_all); `abort_reason` says why.

A slice planned at the decision counts as waiting until it leaves or is dropped; an
execution worked by an algorithm over time (genesis/engine/algos.py) waits until the
algorithm says it has ended.

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
    strategy: str = ""
    started: int = 0             # event time of the decision
    over_time: bool = False      # worked by an algorithm that decides as it goes
    waiting: int = 0             # planned slices not yet sent nor dropped (over time: 1 until the algorithm ends)
    working: set = field(default_factory=set)   # client ids sent and not ended
    child_usd: dict = field(default_factory=dict)   # client id -> value filled, while it works
    sent: int = 0
    sent_usd: float = 0.0
    filled_qty: float = 0.0
    filled_usd: float = 0.0
    slipped_usd: float = 0.0     # sum of fill value x its slippage (%) against the touch when sent
    end: str = "done"
    abort_reason: str = ""

    def done_event(self, ts: int, mid: float) -> Event:
        """The `execution_done` event of this execution; `mid`: the mid now."""
        impact = average = slippage = move = 0.0
        sign = 1 if self.side == "buy" else -1
        if self.filled_qty > 0:
            average = self.filled_usd / self.filled_qty
            slippage = self.slipped_usd / self.filled_usd * 100 if self.filled_usd else 0.0
            if self.arrival_mid > 0:
                impact = sign * (average - self.arrival_mid) / self.arrival_mid * 100
        if self.arrival_mid > 0 and mid > 0:
            move = sign * (mid - self.arrival_mid) / self.arrival_mid * 1e4
        return Event("execution_done", ts, self.symbol, {
            "side": self.side, "algo": self.algo, "manual": self.manual, "strategy": self.strategy,
            "notional_usd": round(self.notional_usd, 6), "planned_slices": self.planned, "slices": self.sent,
            "sent_usd": round(self.sent_usd, 6), "filled_usd": round(self.filled_usd, 6),
            "filled_qty": self.filled_qty, "unfilled_usd": round(max(self.notional_usd - self.filled_usd, 0.0), 6),
            "arrival_mid": self.arrival_mid, "avg_price": average, "slippage_bps": round(slippage, 4),
            "impact_pct": round(impact, 6), "mid_move_bps": round(move, 4), "duration_ms": ts - self.started,
            "end": self.end, "abort_reason": self.abort_reason, "_parent": self.parent})


class Executions:
    """The executions not done yet, and which parent each sent slice belongs to."""

    def __init__(self) -> None:
        self.open: dict[str, Execution] = {}
        self.by_client: dict[str, str] = {}    # client id -> parent id

    def start(self, execution: Execution) -> None:
        """A parent order whose slices were just planned."""
        execution.waiting = 1 if execution.over_time else execution.planned
        self.open[execution.parent] = execution

    def sent(self, parent: str, client_id: str, notional_usd: float) -> None:
        """A planned slice left as order `client_id`."""
        ex = self.open.get(parent)
        if ex is None:
            return
        if not ex.over_time:
            ex.waiting -= 1
        ex.sent += 1
        ex.sent_usd += notional_usd
        ex.working.add(client_id)
        self.by_client[client_id] = parent

    def dropped(self, parent: str, ts: int, mid: float) -> list[Event]:
        """A planned slice that will never leave; the `execution_done` it completes, if any."""
        ex = self.open.get(parent)
        if ex is None or ex.over_time:
            return []
        ex.waiting -= 1
        return self._finish(ex, ts, mid)

    def ended(self, parent: str, end: str, reason: str, ts: int, mid: float) -> list[Event]:
        """The algorithm working `parent` stopped (`end`: done, aborted, expired, cancelled);
        the `execution_done`, once its last working slice has ended."""
        ex = self.open.get(parent)
        if ex is None:
            return []
        ex.waiting, ex.end, ex.abort_reason = 0, end, reason
        return self._finish(ex, ts, mid)

    def parent_of(self, client_id: str) -> str | None:
        """The parent order a working slice belongs to."""
        return self.by_client.get(client_id)

    def on_report(self, event: Event, mid: float) -> tuple[list[Event], float | None]:
        """A fill, cancel or rejection of one of the slices: (the `execution_done` it
        completes, if any; the value the slice filled if it has now ended, else None)."""
        client_id = event.fields.get("_client_id")
        parent = self.by_client.get(client_id)
        ex = self.open.get(parent) if parent else None
        if ex is None:
            return [], None
        if event.kind == "fill":
            value = event.fields["qty"] * event.fields["price"]
            ex.filled_qty += event.fields["qty"]
            ex.filled_usd += value
            ex.slipped_usd += value * event.fields.get("slippage_pct", 0.0)
            ex.child_usd[client_id] = ex.child_usd.get(client_id, 0.0) + value
            if event.fields.get("_remaining", 0.0) > _DONE_QTY:
                return [], None   # partly filled: the rest is still working
        ex.working.discard(client_id)
        del self.by_client[client_id]
        return self._finish(ex, event.ts, mid), ex.child_usd.pop(client_id, 0.0)

    def _finish(self, ex: Execution, ts: int, mid: float) -> list[Event]:
        if ex.waiting > 0 or ex.working:
            return []
        del self.open[ex.parent]
        return [ex.done_event(ts, mid)]
