"""What a run loop of `genesis run` measures about itself, on the wall clock: how late it
got to input and duties that were due (event-loop lag), how long each input event took
through the pipeline, and (live) each order's round trip to the exchange. The loop notes
them; the health probe puts the worst lag since its previous probe in its `system_probe`
reading, and /metrics serves the histograms. The deterministic pipeline never reads them."""
from __future__ import annotations

from bisect import bisect_left

EVENT_BUCKETS_S = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 1.0)
ORDER_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class Histogram:
    """Counts of observed values by upper bound, as Prometheus histograms keep them."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)   # the last one: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one value."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        """(upper bound, values at or under it) for each bound, then ("+Inf", all)."""
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts):
            total += count
            out.append((bound, total))
        return out


class LoopWatch:
    """Lag, event and order timings of one run loop. The loop's thread notes; other threads
    read (a reading may miss a note made at the same instant, never more)."""

    def __init__(self):
        self.event_seconds = Histogram(EVENT_BUCKETS_S)   # one input event through the pipeline
        self.order_seconds = Histogram(ORDER_BUCKETS_S)   # an order's request until the exchange's answer
        self._worst_lag_s = 0.0
        self.slowest_write = None   # the run's journal's take_slowest_write_ms, once it is open

    def late(self, seconds: float) -> None:
        """The loop got to something that was due `seconds` ago."""
        if seconds > self._worst_lag_s:
            self._worst_lag_s = seconds

    def take_slowest_write_ms(self) -> float | None:
        """The journal's slowest write since the previous call, ms (None: no journal yet, or no write)."""
        return self.slowest_write() if self.slowest_write is not None else None

    def take_lag_ms(self) -> float:
        """The worst lag since the previous call, in ms (0 when never late); starts a new period."""
        worst, self._worst_lag_s = self._worst_lag_s, 0.0
        return round(worst * 1000.0, 3)
