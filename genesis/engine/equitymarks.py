"""The equity curve a run keeps: the equity at the first account update of each minute,
for the report's Sharpe ratio, the chart and the status screen, in bounded memory.

Marks are kept in two typed arrays (16 bytes a minute, where a list of tuples took about
120); past MAX_MARKS (a year of minutes, 8.4 MB) every other mark is dropped, so a run
of any length holds at most that many. The minute returns the Sharpe ratio is made of
are summed as they come (Welford's mean and sum of squares), so dropping marks never
changes it."""
from __future__ import annotations

import math
from array import array

MAX_MARKS = 525_600


class EquityMarks:
    """(minute, equity) marks, one per minute, oldest first."""

    def __init__(self, max_marks: int = MAX_MARKS):
        self.minutes = array("q")
        self.values = array("d")
        self.max_marks = max_marks
        self.returns = 0          # minute returns seen (between marks whose earlier equity is positive)
        self._mean = 0.0
        self._m2 = 0.0
        self._last: float | None = None

    def add(self, minute: int, equity: float) -> None:
        """The first equity of `minute`; later ones of the same minute are ignored."""
        if self.minutes and self.minutes[-1] == minute:
            return
        previous, self._last = self._last, equity
        if previous is not None and previous > 0:
            r = equity / previous - 1
            self.returns += 1
            delta = r - self._mean
            self._mean += delta / self.returns
            self._m2 += delta * (r - self._mean)
        self.minutes.append(minute)
        self.values.append(equity)
        if len(self.minutes) > self.max_marks:
            start = (len(self.minutes) - 1) % 2   # the latest mark always stays
            self.minutes, self.values = self.minutes[start::2], self.values[start::2]

    def return_stats(self) -> tuple[int, float, float]:
        """(count, mean, sample standard deviation) of the minute returns (std 0 under two)."""
        std = math.sqrt(self._m2 / (self.returns - 1)) if self.returns > 1 else 0.0
        return self.returns, self._mean, std

    def tail(self, n: int) -> list[tuple[int, float]]:
        """The last `n` marks."""
        return list(zip(self.minutes[-n:], self.values[-n:]))

    def __iter__(self):
        return zip(self.minutes, self.values)

    def __len__(self) -> int:
        return len(self.minutes)
