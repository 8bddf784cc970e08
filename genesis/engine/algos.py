"""Execution algorithms that work a parent order over time: each decides, when it wakes
and when one of its child orders ends, which children to send and which to cancel.

* `LimitTwap`: TWAP with limit children. Every `duration_s / slices` one child rests at
  the touch (a buy at the best bid) for what the schedule says should be done by then;
  when the next child is due, the one still working is cancelled and its unfilled part
  rolls into the next. At the end the rest goes as one market order.
* `Vwap`: market children at `slices` even times over `duration_s`, each sized by the
  volume profile (genesis/engine/volume.py: the symbol's traded volume at those minutes
  of the day over recent days; equal weights where no history is known), and capped so
  that what the execution takes stays within `max_participation_pct` of the volume the
  market traded in the interval before each child. What the cap holds back rolls on;
  after `duration_s` the execution goes on at the same pace up to twice `duration_s`,
  then ends `expired` with the rest unfilled.
* `Iceberg`: limit children at the touch showing only the visible size (the parent split
  into `min_slices..max_slices` parts with `size_jitter_pct` jitter); each is re-posted
  at the new touch when the touch moves away from it (a buy's best bid rises above it), and the next is posted
  `min_interval_s..max_interval_s` after one fills. When the mid has moved more than
  `abort_slippage_pct` against the order since the first slice, the working child is
  cancelled and the execution ends `aborted`.

The time-sliced market algorithms (one market order, the 3-slice band, TWAP with market
children) are planned once at the decision (genesis/engine/execution.py) and need none of
this. Event time only; jitter comes from a generator seeded by the parent's id, so a
replay works the order exactly the same way.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

REPEG_CHECK_MS = 1000   # an iceberg looks at the touch (re-peg, abort) at least this often


@dataclass
class Child:
    """One child order an algorithm asks for."""

    notional: float              # USD at the price it is sized with
    limit: float | None = None   # None: a market order
    sell_all: bool = False       # a sell: everything still held and free (the last child of an exit)


@dataclass
class Step:
    """What an algorithm wants done now."""

    send: list = field(default_factory=list)     # Child
    cancel: list = field(default_factory=list)   # client ids of its own working children
    wake: int | None = None                      # call `wake` again at this event time (ms)
    end: str = ""                                # "done", "aborted", "expired": the algorithm stops
    reason: str = ""                             # why it aborted or expired


class Touch:
    """What an algorithm reads of the market: the book's best prices, the traded volume."""

    def __init__(self, exchange, volume):
        self._exchange = exchange
        self._volume = volume

    def best(self, symbol: str) -> tuple[float, float] | None:
        """(best bid, best ask), or None while unknown."""
        return self._exchange.best(symbol)

    def traded(self, symbol: str) -> float:
        """Base quantity the market has traded so far (a running total)."""
        return self._volume.traded(symbol)

    def weights(self, symbol: str, start: int, duration_ms: int, n: int, days: int) -> list[float]:
        """The volume profile's share of each of `n` even intervals from `start` (last `days` days)."""
        return self._volume.weights(symbol, start, duration_ms, n, days)

    def recent_volume(self, symbol: str, span_ms: int) -> float:
        """Base quantity traded in the last `span_ms` (from the last 1-minute volumes)."""
        return self._volume.recent(symbol, span_ms)


def _mid(best) -> float:
    return (best[0] + best[1]) / 2 if best else 0.0


class WorkingAlgo:
    """Base class: the parent's side, size and children in flight."""

    name = ""

    def __init__(self, symbol: str, side: str, notional: float, now: int, min_usd: float):
        self.symbol, self.side, self.notional = symbol, side, notional
        self.started = now
        self.min_usd = min_usd          # below this a child is not worth sending (exchange minimum)
        self.working: dict = {}         # client id -> notional sent
        self.done_usd = 0.0             # filled by children that ended
        self.planned = 1

    @property
    def buy(self) -> bool:
        return self.side == "buy"

    def touch_price(self, touch: Touch) -> float | None:
        """Our side's best price: a buy joins the best bid, a sell the best ask."""
        best = touch.best(self.symbol)
        if not best:
            return None
        return best[0] if self.buy else best[1]

    def unsent_usd(self) -> float:
        """What the parent still has to send (for in-flight limits)."""
        return max(self.notional - self.done_usd - sum(self.working.values()), 0.0)

    def child_sent(self, client_id: str, notional: float) -> None:
        """A child left as `client_id`."""
        self.working[client_id] = notional

    def child_ended(self, client_id: str, filled_usd: float, now: int, touch: Touch) -> Step:
        """One of its children filled completely, was cancelled or rejected."""
        sent = self.working.pop(client_id, 0.0)
        self.done_usd += filled_usd
        return self.after_child(sent, filled_usd, now, touch)

    def start(self, now: int, touch: Touch) -> Step:
        """The decision: the first children and the first wake."""
        raise NotImplementedError

    def wake(self, now: int, touch: Touch) -> Step:
        """A wake it asked for."""
        raise NotImplementedError

    def after_child(self, sent_usd: float, filled_usd: float, now: int, touch: Touch) -> Step:
        """What follows a child's end (`sent_usd` sent, `filled_usd` of it filled)."""
        raise NotImplementedError

    def left_usd(self) -> float:
        return self.notional - self.done_usd


class LimitTwap(WorkingAlgo):
    """TWAP whose children rest at the touch; the rest goes at market at the end."""

    name = "twap"

    def __init__(self, symbol, side, notional, now, min_usd, duration_s: float, slices: int):
        super().__init__(symbol, side, notional, now, min_usd)
        self.slices = self.planned = slices
        self.step_ms = int(duration_s * 1000 / slices)
        self.index = 0                 # children due so far
        self.resend = False            # a child is being cancelled: send the next when it has ended
        self.final = False             # the closing market order has been sent

    def _target(self) -> float:
        return self.notional * min(self.index, self.slices) / self.slices

    def start(self, now, touch):
        return self.wake(now, touch)

    def wake(self, now, touch):
        # the slot `now` is in: after a stall (no input, a restart) missed slots are not replayed one by one
        self.index = max(self.index + 1, (now - self.started) // self.step_ms + 1)
        step = Step(wake=self.started + self.index * self.step_ms)
        if self.index > self.slices:
            step.wake = None
        if self.working:               # the next child waits for this one's outcome
            self.resend = True
            step.cancel = list(self.working)
            return step
        step.send = self._next(touch)
        return self._maybe_end(step)

    def after_child(self, sent_usd, filled_usd, now, touch):
        step = Step()
        if self.resend and not self.working:
            self.resend = False
            step.send = self._next(touch)
        return self._maybe_end(step)

    def _next(self, touch) -> list:
        if self.final:
            return []
        if self.index > self.slices:   # the end: what is left goes at market
            self.final = True
            left = self.left_usd()
            return [Child(left, None, sell_all=not self.buy)] if left >= self.min_usd else []
        want = self._target() - self.done_usd
        price = self.touch_price(touch)
        if want < self.min_usd or not price:
            return []
        return [Child(want, price)]

    def _maybe_end(self, step: Step) -> Step:
        if not self.working and not step.send and (self.final or self.index > self.slices) \
                and not self.resend:
            step.end, step.wake = "done", None
        return step


class Vwap(WorkingAlgo):
    """Market children sized by the volume profile, capped at a share of traded volume."""

    name = "vwap"

    def __init__(self, symbol, side, notional, now, min_usd, duration_s: float, slices: int,
                 max_participation_pct: float, profile_days: int, touch: Touch):
        super().__init__(symbol, side, notional, now, min_usd)
        self.slices = self.planned = slices
        self.step_ms = max(int(duration_s * 1000 / slices), 1)
        weights = touch.weights(symbol, now, self.step_ms * slices, slices, profile_days)
        total = sum(weights)
        cum, self.targets = 0.0, []
        for w in weights:
            cum += w / total
            self.targets.append(notional * cum)
        self.targets[-1] = notional
        self.cap = max_participation_pct / 100.0
        self.index = 0
        self.last_traded = touch.traded(symbol)
        # the first child is held to the volume of the interval before the decision
        self.first_volume = touch.recent_volume(symbol, self.step_ms)
        self.sent_usd = 0.0

    def start(self, now, touch):
        return self.wake(now, touch)

    def wake(self, now, touch):
        if self.index >= 2 * self.slices:   # twice the duration: what is left is given up
            return Step(end="expired", reason=f"{self.name} stopped after twice its duration with "
                                              f"${max(self.left_usd(), 0):,.2f} unfilled: the participation "
                                              f"cap held it back")
        traded = touch.traded(self.symbol)
        volume = self.first_volume if self.index == 0 else traded - self.last_traded
        self.last_traded = traded
        target = self.targets[min(self.index, self.slices - 1)]
        self.index += 1
        step = Step(wake=self.started + self.index * self.step_ms)
        best = touch.best(self.symbol)
        price = (best[1] if self.buy else best[0]) if best else 0.0
        room = self.cap * volume * price
        want = min(target - self.sent_usd, room, self.left_usd() - sum(self.working.values()))
        if want >= self.min_usd and price:
            self.sent_usd += want
            last = self.sent_usd >= self.notional * (1 - 1e-9)
            step.send = [Child(want, None, sell_all=last and not self.buy)]
        if self.sent_usd >= self.notional * (1 - 1e-9) or self.left_usd() < self.min_usd:
            step.wake = None
            if not self.working and not step.send:
                step.end = "done"
        return step

    def after_child(self, sent_usd, filled_usd, now, touch):
        # a child that filled less than sent gives its rest back to the schedule
        self.sent_usd = self.done_usd + sum(self.working.values())
        if not self.working and (self.sent_usd >= self.notional * (1 - 1e-9) or self.left_usd() < self.min_usd):
            return Step(end="done")
        return Step()


class Iceberg(WorkingAlgo):
    """Limit children at the touch, one visible slice at a time."""

    name = "iceberg"

    def __init__(self, symbol, side, notional, now, min_usd, policy: dict, parent: str, touch: Touch):
        super().__init__(symbol, side, notional, now, min_usd)
        self.rng = random.Random(zlib.crc32(parent.encode()))
        n = self.rng.randint(policy["min_slices"], policy["max_slices"])
        jitter = policy["size_jitter_pct"] / 100.0
        weights = [1.0 + self.rng.uniform(-jitter, jitter) for _ in range(n)]
        total = sum(weights)
        self.visible = [notional * w / total for w in weights]
        self.planned = n
        self.interval = (policy["min_interval_s"] * 1000, policy["max_interval_s"] * 1000)
        self.abort_pct = policy["abort_slippage_pct"]
        self.first_mid = _mid(touch.best(symbol))
        self.index = 0                 # visible slices posted so far
        self.owed = 0.0                # the part of the current slice not filled yet
        self.price: float | None = None   # where the working child rests
        self.repegging = False
        self.next_post = now

    def _pause(self) -> int:
        low, high = self.interval
        return int(self.rng.uniform(low, high))

    def start(self, now, touch):
        return self._post(now, touch, Step())

    def _post(self, now: int, touch: Touch, step: Step) -> Step:
        """Post the rest of the current slice, or the next slice, at the touch."""
        if self.owed < self.min_usd:
            if self.index >= len(self.visible):
                step.end, step.wake = ("done", None) if not self.working else ("", None)
                return step
            self.owed += self.visible[self.index]
            self.index += 1
            if self.index == len(self.visible):   # the last slice takes what rounding left
                self.owed = self.left_usd() - sum(self.working.values())
        price = self.touch_price(touch)
        if price is None or self.owed < self.min_usd:
            step.wake = now + REPEG_CHECK_MS
            return step
        self.price = price
        step.send.append(Child(self.owed, price, sell_all=not self.buy and self.index == len(self.visible)))
        step.wake = now + REPEG_CHECK_MS
        return step

    def _adverse_pct(self, touch: Touch) -> float:
        mid = _mid(touch.best(self.symbol))
        if not mid or not self.first_mid:
            return 0.0
        move = (mid - self.first_mid) / self.first_mid * 100
        return move if self.buy else -move

    def wake(self, now, touch):
        step = Step()
        adverse = self._adverse_pct(touch)
        if adverse > self.abort_pct:
            step.cancel = list(self.working)
            step.end = "aborted"
            step.reason = (f"the mid moved {adverse:.2f}% against the order since the first slice "
                           f"(abort_slippage_pct {self.abort_pct:g}%)")
            return step
        if self.working:
            price = self.touch_price(touch)
            away = price is not None and (price > self.price if self.buy else price < self.price)
            if away and not self.repegging:   # the touch moved away from it: re-post at the new touch
                self.repegging = True
                step.cancel = list(self.working)
            step.wake = now + REPEG_CHECK_MS
            return step
        if now >= self.next_post:
            return self._post(now, touch, step)
        step.wake = self.next_post
        return step

    def child_sent(self, client_id, notional):
        super().child_sent(client_id, notional)
        self.owed = 0.0

    def after_child(self, sent_usd, filled_usd, now, touch):
        step = Step()
        self.owed += max(sent_usd - filled_usd, 0.0)
        repegged, self.repegging = self.repegging, False
        if repegged and self.owed >= self.min_usd:   # cancelled to move: post the rest at the new touch
            return self._post(now, touch, step)
        if self.owed >= self.min_usd:      # cancelled or rejected by the exchange: post the rest again
            step.wake = now + REPEG_CHECK_MS
            self.next_post = now
            return step
        self.owed = 0.0
        if self.index >= len(self.visible):
            step.end = "done"
            return step
        self.next_post = now + self._pause()
        step.wake = self.next_post
        return step
