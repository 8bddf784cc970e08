"""Declared metrics computed incrementally in event time.

Each primitive keeps O(1) amortised state per event: sliding windows are deques with
running sums, min/max use monotonic deques, and window expiry is driven by a heap of
due times so that a count over 60 minutes falls as time passes without any event.
Metrics declared `by: symbol` keep one state per symbol; `m[name]` always shows the
value for the symbol of the event being processed.
"""
from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections import Counter, deque

from genesis.durations import parse_duration
from genesis.engine.slotstate import reduce_slots

def _ms(text: str) -> int:
    return int(parse_duration(text) * 1000)


class _Window:
    """Values of matching events over a time window or the last N samples."""

    __slots__ = ("window_ms", "samples", "items", "total", "total_sq", "mins", "maxs", "track_extremes",
                 "drops")

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self, window_ms: int | None, samples: int | None, track_extremes: bool):
        self.window_ms, self.samples = window_ms, samples
        self.items: deque = deque()
        self.total = 0.0
        self.total_sq = 0.0
        self.track_extremes = track_extremes
        self.mins: deque = deque()
        self.maxs: deque = deque()
        self.drops = 0

    def add(self, ts: int, value: float) -> None:
        item = (ts, value)  # one object in every deque: _drop matches by identity
        self.items.append(item)
        self.total += value
        self.total_sq += value * value
        if self.track_extremes:
            while self.mins and self.mins[-1][1] >= value:
                self.mins.pop()
            self.mins.append(item)
            while self.maxs and self.maxs[-1][1] <= value:
                self.maxs.pop()
            self.maxs.append(item)
        if self.samples is not None and len(self.items) > self.samples:
            self._drop()

    def _drop(self) -> None:
        item = self.items.popleft()
        self.total -= item[1]
        self.total_sq -= item[1] * item[1]
        self.drops += 1
        if self.drops % 512 == 0:  # running sums drift by rounding: re-add them exactly now and then
            # (lists, not generators: a generator would keep the method from compiling as cpdef)
            self.total = math.fsum([v for _, v in self.items])
            self.total_sq = math.fsum([v * v for _, v in self.items])
        if self.track_extremes:
            if self.mins and self.mins[0] is item:
                self.mins.popleft()
            if self.maxs and self.maxs[0] is item:
                self.maxs.popleft()

    def expire(self, now: int) -> bool:
        """Drop items older than the window; True when something left."""
        if self.window_ms is None:
            return False
        cutoff = now - self.window_ms
        dropped = False
        while self.items and self.items[0][0] <= cutoff:
            self._drop()
            dropped = True
        if not self.items:
            self.total = self.total_sq = 0.0  # keep float drift from piling up
        return dropped

    def next_expiry(self) -> int | None:
        if self.window_ms is None or not self.items:
            return None
        return self.items[0][0] + self.window_ms

    def clear(self) -> None:
        self.items.clear()
        self.mins.clear()
        self.maxs.clear()
        self.total = self.total_sq = 0.0


class Metric:
    """One declared metric over events of one kind (base class)."""

    # compiled, an extension type: a field per slot, typed as annotated (genesis/declarations.py)
    __slots__ = ("name", "spec", "by_symbol", "where", "value_fn", "field", "default", "groups")

    time_dependent = False  # value changes with time alone (re-read on timer ticks)
    sampled = False         # a statistic of another metric's samples (SampledMetric)

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self, name: str, spec: dict, exprs: dict):
        self.name = name
        self.spec = spec
        self.by_symbol = spec.get("by") == "symbol"
        self.where = exprs.get(("where",))
        self.value_fn = exprs.get(("value",))
        self.field = spec.get("field")
        self.default = float(spec["default"])   # filled in per primitive by the schema
        self.groups: dict[str, object] = {}

    def state(self, group: str):
        st = self.groups.get(group)
        if st is None:
            st = self.groups[group] = self.new_state()
        return st

    def new_state(self):
        raise NotImplementedError

    def sample(self, m, fields) -> float:
        if self.value_fn is not None:
            return float(self.value_fn(m, fields, None))
        return float(fields[self.field]) if self.field else 1.0

    def matches(self, m, fields) -> bool:
        return self.where is None or bool(self.where(m, fields, None))

    def on_event(self, ts: int, group: str, m, fields) -> bool:
        """Update from a matching-kind event; True when the group's value changed."""
        raise NotImplementedError

    def update(self, ts: int, group: str, m, fields) -> tuple | None:
        """`on_event` fused with `value` and `next_due`: the group's value and next due
        time when the event changed it, else None."""
        if not self.on_event(ts, group, m, fields):
            return None
        return self.value(group, ts), self.next_due(group)

    def value(self, group: str, now: int) -> float:
        raise NotImplementedError

    def expire(self, group: str, now: int) -> bool:
        return False

    def next_due(self, group: str) -> int | None:
        return None

    def on_due(self, group: str, when: int, now: int, m) -> tuple:
        """A timer set from `next_due` came due at `when`, the clock now at `now`: what
        left the window is dropped. Returns the group's value and its next due time
        (None when nothing is due). Subclasses fuse the three steps (a call each)."""
        self.expire(group, now)
        return self.value(group, now), self.next_due(group)

    def family(self) -> type:
        """Definitions of the same family can take over each other's history (`adopt`)."""
        return type(self)

    def adopt(self, old: "Metric", now: int) -> None:
        """Take over another definition's history where the primitive allows it
        (windows are re-cut to this metric's window); otherwise start empty."""
        if isinstance(self, WindowMetric) and isinstance(old, WindowMetric):
            for group, st in old.groups.items():
                if isinstance(st, _Window):
                    fresh = self.state(group)
                    if isinstance(fresh, _Window):
                        for ts, value in st.items:
                            fresh.add(ts, value)
                        fresh.expire(now)

    def reset(self, group: str | None = None) -> None:
        if group is None:
            self.groups.clear()
        else:
            self.groups.pop(group, None)


class WindowMetric(Metric):
    """count, sum, mean, std, min, max, rate, zscore over a window (or whole history)."""

    __slots__ = ("primitive", "window_ms", "samples", "floor")

    def __init__(self, name, spec, exprs, primitive: str):
        super().__init__(name, spec, exprs)
        self.primitive = primitive
        self.window_ms = _ms(spec["window"]) if "window" in spec else None
        self.samples = spec.get("samples")
        self.floor = spec.get("floor")
        if primitive == "count":
            self.default = 0.0

    def new_state(self):
        if self.floor is not None and self.window_ms is None and self.samples is None:
            return [0.0]  # a clamped running total (path dependent, so no window)
        return _Window(self.window_ms, self.samples, self.primitive in ("min", "max"))

    def on_event(self, ts, group, m, fields) -> bool:
        # matches(), state() and sample() inlined: this runs for every event of the kind
        if self.where is not None and not self.where(m, fields, None):
            return False
        st = self.groups.get(group)
        if st is None:
            st = self.groups[group] = self.new_state()
        if self.value_fn is not None:
            value = float(self.value_fn(m, fields, None))
        else:
            value = float(fields[self.field]) if self.field else 1.0
        if isinstance(st, list):
            before = st[0]
            st[0] = max(self.floor, st[0] + value)
            return st[0] != before
        st.add(ts, value)
        return True

    def value(self, group, now) -> float:
        st = self.groups.get(group)
        if st is None:
            return self.default
        if isinstance(st, list):
            return st[0]
        n = len(st.items)
        p = self.primitive
        if p == "count":
            return float(n)
        if n == 0:
            return self.default
        if p == "sum":
            return st.total if self.floor is None else max(self.floor, st.total)
        if p == "mean":
            return st.total / n
        if p == "rate":
            return n / (self.window_ms / 1000.0)
        if p == "min":
            return st.mins[0][1]
        if p == "max":
            return st.maxs[0][1]
        var = max(st.total_sq / n - (st.total / n) ** 2, 0.0)
        if p == "std":
            return math.sqrt(var)
        # zscore of the latest value against the window
        std = math.sqrt(var)
        return 0.0 if std == 0 else (st.items[-1][1] - st.total / n) / std

    def family(self) -> type:
        return WindowMetric

    def expire(self, group, now) -> bool:
        st = self.groups.get(group)
        return st.expire(now) if isinstance(st, _Window) else False

    def next_due(self, group) -> int | None:
        if self.window_ms is None:
            return None
        st = self.groups.get(group)
        return st.items[0][0] + self.window_ms if isinstance(st, _Window) and st.items else None


class StatWindowMetric(WindowMetric):
    """mean, std or zscore without a floor (the commonest windows): the value from the
    window's running sums (`window_value`), without WindowMetric.value's dispatch on the
    primitive; an event's update and a timer's expiry each fused into one call."""

    __slots__ = ()

    def window_value(self, st: _Window) -> float:
        """The statistic of a window that holds at least one value."""
        raise NotImplementedError

    def value(self, group, now) -> float:
        st: _Window = self.groups.get(group)
        if st is None or not st.items:
            return self.default
        return self.window_value(st)

    def update(self, ts, group, m, fields) -> tuple | None:
        # WindowMetric.on_event inlined (keep the two in step): calling it costs 1.2% of a
        # candle replay's instructions
        if self.where is not None and not self.where(m, fields, None):
            return None
        st: _Window = self.groups.get(group)
        if st is None:
            st = self.groups[group] = self.new_state()
        if self.value_fn is not None:
            st.add(ts, float(self.value_fn(m, fields, None)))
        else:
            st.add(ts, float(fields[self.field]) if self.field else 1.0)
        window_ms = self.window_ms
        return self.window_value(st), (None if window_ms is None else st.items[0][0] + window_ms)

    def on_due(self, group, when, now, m) -> tuple:
        st: _Window = self.groups.get(group)
        if st is None:
            return self.default, None
        st.expire(now)
        if not st.items:
            return self.default, None
        window_ms = self.window_ms
        return self.window_value(st), (None if window_ms is None else st.items[0][0] + window_ms)


class MeanMetric(StatWindowMetric):
    """mean over a window."""

    __slots__ = ()

    def window_value(self, st) -> float:
        return st.total / len(st.items)


class StdMetric(StatWindowMetric):
    """Standard deviation over a window."""

    __slots__ = ()

    def window_value(self, st) -> float:
        n = len(st.items)
        return math.sqrt(max(st.total_sq / n - (st.total / n) ** 2, 0.0))


class ZscoreMetric(StatWindowMetric):
    """z-score of the latest value against its window."""

    __slots__ = ()

    def window_value(self, st) -> float:
        n = len(st.items)
        std = math.sqrt(max(st.total_sq / n - (st.total / n) ** 2, 0.0))
        return 0.0 if std == 0 else (st.items[-1][1] - st.total / n) / std


class LastMetric(Metric):
    __slots__ = ()

    def new_state(self):
        return [None]

    def on_event(self, ts, group, m, fields) -> bool:
        if not self.matches(m, fields):
            return False
        st = self.state(group)
        value = self.sample(m, fields)
        changed = st[0] != value
        st[0] = value
        return changed

    def value(self, group, now) -> float:
        st = self.groups.get(group)
        return self.default if st is None or st[0] is None else st[0]


class EwmaMetric(Metric):
    __slots__ = ("halflife_ms",)

    def __init__(self, name, spec, exprs):
        super().__init__(name, spec, exprs)
        self.halflife_ms = _ms(spec["halflife"])

    def new_state(self):
        return [None, 0]

    def on_event(self, ts, group, m, fields) -> bool:
        if not self.matches(m, fields):
            return False
        st = self.state(group)
        x = self.sample(m, fields)
        if st[0] is None:
            st[0] = x
        else:
            decay = 0.5 ** (max(ts - st[1], 0) / self.halflife_ms)
            st[0] = st[0] * decay + x * (1.0 - decay)
        st[1] = ts
        return True

    def value(self, group, now) -> float:
        st = self.groups.get(group)
        return self.default if st is None or st[0] is None else st[0]


class SinceMetric(Metric):
    """Seconds since the last matching event; changes with time alone."""

    __slots__ = ()

    time_dependent = True

    def new_state(self):
        return [None]

    def on_event(self, ts, group, m, fields) -> bool:
        if not self.matches(m, fields):
            return False
        self.state(group)[0] = ts
        return True

    def value(self, group, now) -> float:
        st = self.groups.get(group)
        if st is None or st[0] is None:
            return self.default
        return (now - st[0]) / 1000.0


class StreakMetric(Metric):
    __slots__ = ("while_fn",)

    def __init__(self, name, spec, exprs):
        super().__init__(name, spec, exprs)
        self.while_fn = exprs[("while",)]

    def new_state(self):
        return [0]

    def on_event(self, ts, group, m, fields) -> bool:
        if not self.matches(m, fields):  # an event `where` leaves out neither extends nor breaks the streak
            return False
        st = self.state(group)
        before = st[0]
        st[0] = st[0] + 1 if self.while_fn(m, fields, None) else 0
        return st[0] != before

    def value(self, group, now) -> float:
        st = self.groups.get(group)
        return 0.0 if st is None else float(st[0])


class DistinctMetric(Metric):
    __slots__ = ("window_ms", "samples")

    def __init__(self, name, spec, exprs):
        super().__init__(name, spec, exprs)
        self.window_ms = _ms(spec["window"]) if "window" in spec else None
        self.samples = spec.get("samples")

    def new_state(self):
        return (deque(), Counter())

    def on_event(self, ts, group, m, fields) -> bool:
        if not self.matches(m, fields):
            return False
        items, counts = self.state(group)
        key = fields[self.field]
        before = len(counts)
        items.append((ts, key))
        counts[key] += 1
        if self.samples is not None and len(items) > self.samples:
            self._drop(items, counts)
        return len(counts) != before

    @staticmethod
    def _drop(items, counts) -> None:
        _, key = items.popleft()
        counts[key] -= 1
        if counts[key] == 0:
            del counts[key]

    def value(self, group, now) -> float:
        st = self.groups.get(group)
        return 0.0 if st is None else float(len(st[1]))

    def expire(self, group, now) -> bool:
        st = self.groups.get(group)
        if st is None or self.window_ms is None:
            return False
        items, counts = st
        before = len(counts)
        while items and items[0][0] <= now - self.window_ms:
            self._drop(items, counts)
        return len(counts) != before

    def next_due(self, group) -> int | None:
        st = self.groups.get(group)
        if st is None or self.window_ms is None or not st[0]:
            return None
        return st[0][0][0] + self.window_ms


class SampledMetric(Metric):
    """baseline and percentile: statistics of another metric's sampled values."""

    __slots__ = ("primitive", "source", "window_ms", "every_ms", "sample_on", "calibration_ms", "stat", "k",
                 "source_metric")

    sampled = True

    def __init__(self, name, spec, exprs, primitive: str):
        super().__init__(name, spec, exprs)
        self.primitive = primitive
        self.source = spec[primitive]
        self.window_ms = _ms(spec["window"])
        self.every_ms = _ms(spec["sample_every"]) if "sample_on" not in spec else None
        self.sample_on = spec.get("sample_on")
        self.calibration_ms = _ms(spec["calibration"])
        self.stat = spec["stat"]
        self.k = float(spec["k"])
        self.source_metric: Metric | None = None   # the metric sampled, when declared (the metric set sets it)

    def new_state(self):
        return _Samples(self.default)

    def source_value(self, group: str, now: int, m) -> float:
        """The sampled metric's value now: its value for `group` when it is a declared
        metric (`source_metric`), else what `m` shows (an account figure, a derived metric)."""
        source = self.source_metric
        if source is not None:
            return source.value(group if source.by_symbol else "", now)
        return float(m.get(self.source, 0.0))

    def on_due(self, group, when, now, m) -> tuple:
        """The sample due at `when` is taken."""
        self.take(group, when, self.source_value(group, now, m))
        st: _Samples = self.groups[group]
        return st.value, st.next

    def take(self, group: str, now: int, source_value: float) -> bool:
        """Record one sample of the source metric; True when the statistic changed."""
        st: _Samples = self.groups.get(group)
        if st is None:
            st = self.groups[group] = _Samples(self.default)
        if st.first is None:
            st.first = now
        items, values = st.items, st.sorted
        items.append((now, source_value))
        position = bisect_right(values, source_value)   # insort, with the insert as one block move
        values[position:position] = (source_value,)     # (list.insert shifts the items one by one)
        cutoff = now - self.window_ms
        while items[0][0] <= cutoff:
            del values[bisect_left(values, items.popleft()[1])]
        if self.every_ms:
            st.next = now + self.every_ms
        before = st.value
        if self.primitive == "percentile":   # the sample just taken is in the window, so it is not empty
            # samples equal to the current value (up to rounding) do not count as below it
            st.value = 100.0 * bisect_left(values, source_value - abs(source_value) * 1e-9 - 1e-12) / len(values)
        else:
            st.value = self._baseline(st, now)
        return st.value != before

    def _baseline(self, st, now) -> float:
        values = st.sorted
        if now - st.first < self.calibration_ms:
            return self.default
        median = _quantile(values, 0.5)
        iqr = _quantile(values, 0.75) - _quantile(values, 0.25)
        return {"median": median, "iqr": iqr, "lower": median - self.k * iqr,
                "upper": median + self.k * iqr}[self.stat]

    def value(self, group, now) -> float:
        st: _Samples = self.groups.get(group)
        return self.default if st is None else st.value

    def next_due(self, group) -> int | None:
        st: _Samples = self.groups.get(group)
        return None if st is None else st.next


class _Samples:
    """One group's samples: (time, value) in arrival order, the values sorted, the first
    sample's time, the next sample's time and the statistic's current value."""

    __slots__ = ("items", "sorted", "first", "next", "value")

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self, value: float):
        self.items: deque = deque()
        self.sorted: list = []
        self.first: int | None = None
        self.next: int | None = None
        self.value = value


def _quantile(sorted_values: list, q: float) -> float:
    n = len(sorted_values)
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


_WINDOW_CLASSES = {"mean": MeanMetric, "std": StdMetric, "zscore": ZscoreMetric}


def build_metric(name: str, primitive: str, spec: dict, exprs: dict) -> Metric:
    """The runtime object for one declared (non-derived) metric."""
    if primitive in _WINDOW_CLASSES and spec.get("floor") is None:
        return _WINDOW_CLASSES[primitive](name, spec, exprs, primitive)
    if primitive in ("count", "sum", "mean", "std", "min", "max", "rate", "zscore"):
        return WindowMetric(name, spec, exprs, primitive)
    if primitive == "last":
        return LastMetric(name, spec, exprs)
    if primitive == "ewma":
        return EwmaMetric(name, spec, exprs)
    if primitive == "since":
        return SinceMetric(name, spec, exprs)
    if primitive == "streak":
        return StreakMetric(name, spec, exprs)
    if primitive == "distinct":
        return DistinctMetric(name, spec, exprs)
    if primitive in ("baseline", "percentile"):
        return SampledMetric(name, spec, exprs, primitive)
    raise ValueError(f"unknown primitive {primitive!r}")


class Timers:
    """Due times in event time: (due_ts, order, key) popped as the clock passes them."""

    __slots__ = ("heap", "counter")

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self):
        self.heap: list = []
        self.counter = 0

    def add(self, due: int, key) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (due, self.counter, key))

    def pop_due(self, now: int):
        """Keys whose time has come, in due order (the same key may appear twice)."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[2]
