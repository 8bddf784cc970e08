"""All metrics of one rule set: declared primitives, derived expressions, account
figures and flags, kept in one mapping `m` that compiled expressions read.

`on_event` updates what the event touches and returns the names whose value changed,
so the rule stage re-evaluates only the rules that read them.
"""
from __future__ import annotations

from collections import Counter
from bisect import insort
from heapq import heappop

from genesis import vocabulary as voc
from genesis.config.ruleset import Ruleset
from genesis.engine.events import Event
from genesis.engine.metrics import Metric, SampledMetric, Timers, build_metric
from genesis.engine.rules import EVAL_ERRORS, ExpressionError
from genesis.engine.slotstate import reduce_slots

TICK_MS = 1000  # time-dependent metrics (since) are refreshed at this event-time resolution


class MetricSet:
    """Runtime state of every metric; `m` is the mapping rules read.

    Per-symbol names (metrics `by: symbol` and what derives from them, flags `by: symbol`)
    have a value per symbol; `m` shows one symbol's values at a time, the group in view.
    `view(symbol)` switches it; the engine switches to each symbol whose rules it
    evaluates. A per-symbol value that changes while another symbol is in view (a window
    expiring) marks its symbol in `dirty_groups`; what moved for a symbol while it was out
    of view is in `unseen` when it comes back into view."""

    # compiled, an extension type: a field per slot, typed as annotated (genesis/declarations.py)
    __slots__ = (
        "m", "symbol_flags", "flag_values", "symbol_names", "groups_seen", "dirty_groups", "errors",
        "health", "new_errors", "recovered", "metrics", "by_name", "by_kind", "reset_on",
        "sample_on", "sampled_every", "by_symbol", "time_dependent", "symbol_kept", "symbol_timed",
        "derived", "derived_exprs", "interesting", "_sampler_groups", "last_shown", "unseen",
        "timers", "scheduled", "held", "held_at", "shown_names", "direct_unseen", "cached",
        "derived_by_input", "derived_inputs", "group", "now", "next_tick", "_started_groups"
    )

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self, ruleset: Ruleset, flags: dict):
        self.m: dict = {name: 0.0 for name in voc.ACCOUNT_METRICS}
        self.m["size_factor"] = 1.0
        for name, flag in flags.items():
            self.m[name] = flag.default
        self.symbol_flags = {name: flag.default for name, flag in flags.items() if flag.by_symbol}
        self.flag_values: dict[str, dict] = {}    # symbol -> per-symbol flag values it has set
        self.symbol_names = ruleset.symbol_names
        self.groups_seen: list = []                # symbols in the order first seen
        self.dirty_groups: set = set()
        self.errors: Counter = Counter()           # metric -> evaluations that raised
        self.health: dict[tuple, ExpressionError] = {}
        self.new_errors: list[ExpressionError] = []
        self.recovered: list[tuple] = []
        self.metrics: list[Metric] = []
        self.by_name: dict[str, Metric] = {}
        self.by_kind: dict[str, list[Metric]] = {}
        self.reset_on: dict[str, list[Metric]] = {}
        self.sample_on: dict[str, list[SampledMetric]] = {}
        self.sampled_every: list[SampledMetric] = []
        self.by_symbol: list[Metric] = []
        self.time_dependent: list[Metric] = []
        for name, mdef in ruleset.metrics.items():
            if mdef.primitive == "expr":
                continue
            exprs = {(opt,): fn for (metric, opt), fn in ruleset.metric_exprs.items() if metric == name}
            metric = build_metric(name, mdef.primitive, mdef.spec, exprs)
            self.metrics.append(metric)
            self.by_name[name] = metric
            self.m[name] = metric.default
            if isinstance(metric, SampledMetric):
                if metric.sample_on:
                    self.sample_on.setdefault(metric.sample_on, []).append(metric)
                else:
                    self.sampled_every.append(metric)
            else:
                self.by_kind.setdefault(mdef.source, []).append(metric)
            if "reset_on" in mdef.spec:
                self.reset_on.setdefault(mdef.spec["reset_on"], []).append(metric)
            if metric.time_dependent:
                self.time_dependent.append(metric)
        for metric in self.metrics:  # sampled metrics follow their source's grouping
            if isinstance(metric, SampledMetric):
                source = metric.source_metric = self.by_name.get(metric.source)
                metric.by_symbol = bool(source and source.by_symbol)
            if metric.by_symbol:
                self.by_symbol.append(metric)
        # view()'s lists: per-symbol values kept as they move, and those that move with time alone
        self.symbol_kept = [(metric.name, metric) for metric in self.by_symbol if not metric.time_dependent]
        self.symbol_timed = [(metric.name, metric) for metric in self.by_symbol if metric.time_dependent]
        self.derived = ruleset.derived
        self.derived_exprs = dict(ruleset.derived)
        # kinds that touch some metric: only these move the per-symbol view (other
        # events leave `m` showing the symbol of the last event that mattered)
        self.interesting = set(self.by_kind) | set(self.reset_on) | set(self.sample_on)
        self._sampler_groups: set = set()
        self.last_shown: dict[str, dict] = {}      # symbol -> its per-symbol values when it left the view
        self.unseen: dict[str, set] = {}           # symbol -> names that moved while it was out of view
        for name, _ in self.derived:
            self.m[name] = 0.0
        self.timers: Timers = Timers()
        self.scheduled: dict = {}
        self.held: dict[str, set] = {}             # symbol -> names that moved at `held_at` while out of view
        self.held_at = 0
        self.shown_names = sorted(n for n in self.m if n in self.symbol_names)
        # a per-symbol value that moves while its symbol is out of view goes straight to
        # `unseen` (compared with what its rules last saw); with per-symbol derived names
        # the symbol is viewed instead, so that what derives from it is recomputed
        self.direct_unseen = not any(name in self.symbol_names for name, _ in self.derived)
        self.cached: dict[str, dict] = {}          # symbol -> {name: value} of its per-symbol metrics
        self.derived_by_input: dict[str, tuple] = {}   # name -> positions in `derived` of what reads it
        for position, (_, expr) in enumerate(self.derived):
            for name in expr.reads:
                self.derived_by_input[name] = self.derived_by_input.get(name, ()) + (position,)
        self.derived_inputs = frozenset(self.derived_by_input)
        self.group = ""
        self.now = 0
        self.next_tick = 0
        self._started_groups: set = set()
        self._recompute_all_derived()

    # ------------------------------------------------------------------ helpers
    def _group_of(self, metric: Metric, symbol: str) -> str:
        return symbol if metric.by_symbol else ""

    def _schedule(self, metric: Metric, group: str) -> None:
        due = metric.next_due(group)
        if due is not None:
            self._schedule_at((metric.name, group), due)

    def _schedule_at(self, key: tuple, due: int) -> None:
        """Set (metric name, group)'s next due time, unless an earlier one is pending."""
        current = self.scheduled.get(key)
        if current is None or due < current or current <= self.now:
            self.scheduled[key] = due
            self.timers.add(due, key)

    def _failed(self, name: str, group: str, expression: str, exc: Exception, values: dict) -> None:
        self.errors[name] += 1
        key = (name, group)
        if key not in self.health:
            err = ExpressionError(name, "metric", "", group, expression, f"{type(exc).__name__}: {exc}", values,
                                  self.now)
            self.health[key] = err
            self.new_errors.append(err)

    def _healthy(self, name: str, group: str) -> None:
        if self.health and (name, group) in self.health:
            del self.health[(name, group)]
            self.recovered.append((name, group))

    def _show(self, metric: Metric, group: str, changed: set, held: bool = False, schedule: bool = False) -> None:
        """Copy a group's value into m when that group is the one in view; a per-symbol
        value is also kept for its symbol, in view or not. With `schedule`, the metric's
        next due time for the group (a window's next expiry, the next sample) is set too.
        (`advance` and `on_event` inline the group-in-view part, a call less per metric
        moved: keep the three in step.)"""
        value = metric.value(group, self.now)
        name = metric.name
        if schedule:
            self._schedule(metric, group)
        if metric.by_symbol:
            if group != self.group:
                self._show_out(name, group, value, held)
                return
            values = self.cached.get(group)
            if values is None:
                values = self.cached[group] = {}
            values[name] = value
        if self.m.get(name) != value:
            self.m[name] = value
            changed.add(name)

    def _show_out(self, name: str, group: str, value, held: bool) -> None:
        """A per-symbol value moved for a symbol out of view: kept for it, and marked
        for its rules (`dirty_groups`, `held` with `held`, else `unseen`)."""
        values = self.cached.get(group)
        if values is None:
            values = self.cached[group] = {}
        values[name] = value
        last = self.last_shown.get(group)
        if last is None or not self.direct_unseen:
            self.dirty_groups.add(group)
        elif last.get(name) != value:
            if held:
                self.held.setdefault(group, set()).add(name)
                self.held_at = self.now
            else:
                self.unseen.setdefault(group, set()).add(name)

    def _start_samplers(self, group: str) -> None:
        if group in self._sampler_groups:
            return
        self._sampler_groups.add(group)
        if group and group not in self.groups_seen:
            self.groups_seen.append(group)
        metric: SampledMetric
        for metric in self.sampled_every:
            if metric.by_symbol and not group:
                continue   # a per-symbol sampler has nothing to sample for events of no symbol
            g = group if metric.by_symbol else ""
            if (metric.name, g) not in self._started_groups:
                self._started_groups.add((metric.name, g))
                metric.state(g).next = self.now
                self._schedule(metric, g)

    # ------------------------------------------------------------------ updates
    def _release_held(self) -> None:
        """The clock moved past the held moment: what moved for symbols that did not come
        into view meanwhile goes to `unseen`."""
        for group, names in self.held.items():
            last = self.last_shown.get(group)
            values = self.cached.get(group, {})
            moved = {name for name in names if last is None or values.get(name) != last.get(name)}
            if moved:
                self.unseen.setdefault(group, set()).update(moved)
        self.held = {}

    def advance(self, now: int, changed: set) -> None:
        """Move the clock: expire windows, take due samples, refresh time-based values."""
        self.now = now
        if self.held and now > self.held_at:
            self._release_held()
        heap = self.timers.heap
        if heap and heap[0][0] <= now:
            scheduled, by_name, timers, cached, m = self.scheduled, self.by_name, self.timers, self.cached, self.m
            while heap and heap[0][0] <= now:
                key = heappop(heap)[2]
                due = scheduled.get(key)
                if due is None or due > now:   # cancelled, or superseded by a later schedule
                    continue
                del scheduled[key]
                name, group = key
                metric: Metric = by_name[name]
                value, due_next = metric.on_due(group, due, now, m)
                if metric.by_symbol:
                    if group != self.group:
                        # a symbol out of view whose window or sample falls due exactly now: its rules
                        # see the move with that symbol's own events of this moment (the next candle of
                        # each pair has the same time), or when the clock moves on, not half-applied first
                        if due_next is not None:
                            self._schedule_at(key, due_next)
                        self._show_out(name, group, value, due == now)
                        continue
                    values = cached.get(group)
                    if values is None:
                        values = cached[group] = {}
                    values[name] = value
                if due_next is not None:
                    current = scheduled.get(key)
                    if current is None or due_next < current or current <= now:
                        scheduled[key] = due_next
                        timers.add(due_next, key)
                if m.get(name) != value:
                    m[name] = value
                    changed.add(name)
        if now >= self.next_tick:
            self.next_tick = now - now % TICK_MS + TICK_MS
            metric: Metric
            for metric in self.time_dependent:
                group = self.group if metric.by_symbol else ""
                if group in metric.groups:   # with nothing recorded it stays at its default
                    self._show(metric, group, changed)

    def on_event(self, event: Event, changed: set) -> None:
        """Update every metric the event touches; add changed names to `changed`."""
        kind, symbol = event.kind, event.symbol
        if kind not in self.interesting:   # most market events: only the clock may move something
            ts = event.ts
            heap = self.timers.heap
            if ts < self.next_tick and not self.held and (not heap or heap[0][0] > ts):
                self.now = ts
            else:
                self.advance(ts, changed)
            return
        if symbol and symbol != self.group:
            # the event's symbol comes into view first: what the clock changes for the
            # symbol that was in view marks that symbol dirty, not this one
            if event.ts > self.now:
                self.now = event.ts
            self.view(symbol)
            if self.unseen:
                changed.update(self.unseen.pop(symbol, ()))
        self.advance(event.ts, changed)
        if symbol not in self._sampler_groups:
            self._start_samplers(symbol)
        m, fields, ts = self.m, event.fields, event.ts
        scheduled, cached = self.scheduled, self.cached
        metric: Metric
        for metric in self.reset_on.get(kind, ()):
            metric.reset(self._group_of(metric, symbol) if metric.by_symbol else None)
            self._show(metric, self._group_of(metric, symbol), changed)
        for metric in self.by_kind.get(kind, ()):
            by_symbol = metric.by_symbol
            group = symbol if by_symbol else ""
            try:
                moved = metric.update(ts, group, m, fields)
            except EVAL_ERRORS as exc:
                expression = " / ".join([f.checked.source for f in (metric.where, metric.value_fn) if f is not None])
                self._failed(metric.name, group, expression or f"field {metric.field}", exc,
                             {"event": event.public_fields()})
                continue
            if self.health:
                self._healthy(metric.name, group)
            if moved is None:
                continue
            value, due = moved
            name = metric.name
            key = (name, group)
            if by_symbol:
                if group != self.group:
                    if due is not None:
                        self._schedule_at(key, due)
                    self._show_out(name, group, value, False)
                    continue
                values = cached.get(group)
                if values is None:
                    values = cached[group] = {}
                values[name] = value
            if due is not None:
                current = scheduled.get(key)
                if current is None or due < current or current <= ts:
                    scheduled[key] = due
                    self.timers.add(due, key)
            if m.get(name) != value:
                m[name] = value
                changed.add(name)
        for metric in self.sample_on.get(kind, ()):
            group = self._group_of(metric, symbol)
            metric.take(group, ts, metric.source_value(group, ts, m))
            self._show(metric, group, changed)

    def view(self, group: str) -> None:
        """Show `group`'s per-symbol values in `m`, derived ones recomputed. The names
        whose value for `group` moved since `group` was last in view (a window expiring,
        a sample, time passing) are added to `unseen[group]`, for its rules to look at.
        A switch of view is not itself a change: each symbol's rules have seen that
        symbol's values already."""
        if group == self.group:
            return
        m = self.m
        if self.group:
            self.last_shown[self.group] = {name: m[name] for name in self.shown_names}
        self.group = group
        if not group:
            return
        values = self.cached.get(group)
        if values is None:
            values = self.cached[group] = {}
        now = self.now
        metric: Metric
        if self.direct_unseen:   # nothing derived reads a per-symbol name: no need to know what the switch moved
            for name, metric in self.symbol_kept:
                value = values.get(name)
                if value is None:
                    value = values[name] = metric.value(group, now)
                m[name] = value
            for name, metric in self.symbol_timed:
                m[name] = metric.value(group, now)
            if self.symbol_flags:
                own = self.flag_values.get(group, {})
                for name, default in self.symbol_flags.items():
                    m[name] = own.get(name, default)
        else:
            self._view_tracked(group, values, now)
        if self.held:
            self.held.pop(group, None)   # what moved for it is found below
        last = self.last_shown.get(group)
        moved = set(self.shown_names) if last is None else {name for name in self.shown_names if m[name] != last[name]}
        if moved:
            self.unseen.setdefault(group, set()).update(moved)

    def _view_tracked(self, group: str, values: dict, now: int) -> None:
        """`view`'s copy of a group's values when derived names read per-symbol ones:
        what the switch moved is recomputed."""
        m = self.m
        shown: set = set()
        metric: Metric
        for metric in self.by_symbol:
            name = metric.name
            value = None if metric.time_dependent else values.get(name)
            if value is None:
                value = metric.value(group, now)
                if not metric.time_dependent:
                    values[name] = value
            if m.get(name) != value:
                m[name] = value
                shown.add(name)
        if self.symbol_flags:
            own = self.flag_values.get(group, {})
            for name, default in self.symbol_flags.items():
                value = own.get(name, default)
                if m.get(name) != value:
                    m[name] = value
                    shown.add(name)
        self.recompute_derived(shown)

    def set_values(self, values: dict, changed: set) -> None:
        """Set account figures or flags (a per-symbol flag for the symbol in view)."""
        m = self.m
        for name, value in values.items():
            if m.get(name) != value:
                m[name] = value
                changed.add(name)
        flags = self.symbol_flags
        if flags and self.group and not flags.keys().isdisjoint(values):
            own = self.flag_values.setdefault(self.group, {})
            for name in flags.keys() & values.keys():
                own[name] = values[name]

    def symbol_flag(self, symbol: str, name: str):
        """A per-symbol flag's value for `symbol` (its default until a rule set it)."""
        return self.flag_values.get(symbol, {}).get(name, self.symbol_flags.get(name))

    def recompute_derived(self, changed: set) -> None:
        """Re-evaluate derived metrics whose inputs changed, in dependency order."""
        if not changed or changed.isdisjoint(self.derived_inputs):   # most events: nothing derived reads what moved
            return
        by_input = self.derived_by_input
        todo: set = set()
        for name in changed:
            positions = by_input.get(name)
            if positions:
                todo.update(positions)
        if not todo:
            return
        m, derived = self.m, self.derived
        order = sorted(todo)   # positions to evaluate, in `derived` order; grows as values move
        i = 0
        while i < len(order):
            position = order[i]
            i += 1
            name, expr = derived[position]
            try:
                value = expr.fn(m, None, None)
            except EVAL_ERRORS as exc:
                group = self.group if name in self.symbol_names else ""
                self._failed(name, group, expr.checked.source, exc, {n: m.get(n) for n in sorted(expr.reads)})
                continue
            if self.health:
                self._healthy(name, self.group if name in self.symbol_names else "")
            if m.get(name) != value:
                m[name] = value
                changed.add(name)
                for reader in by_input.get(name, ()):   # what reads it comes later in `derived`
                    if reader not in todo:
                        todo.add(reader)
                        insort(order, reader, i)

    def _recompute_all_derived(self) -> None:
        for name, expr in self.derived:
            try:
                self.m[name] = expr.fn(self.m, None, None)
            except EVAL_ERRORS as exc:
                self._failed(name, "", expr.checked.source, exc, {n: self.m.get(n) for n in sorted(expr.reads)})

    def adopt(self, old: "MetricSet", now: int) -> None:
        """Take over another rule set's metric histories, flag values, view and timers
        (a tier change or an accepted configuration edit keeps every history)."""
        for name, metric in self.by_name.items():
            previous = old.by_name.get(name)
            if previous is None or previous.family() is not metric.family():
                continue
            if previous.spec == metric.spec:
                metric.groups = previous.groups
            else:
                metric.adopt(previous, now)  # same history, new definition (e.g. an edited window)
        derived = {name for name, _ in self.derived}
        self.m.update({k: v for k, v in old.m.items() if k in self.m and k not in derived})
        self.flag_values = {g: {k: v for k, v in values.items() if k in self.symbol_flags}
                            for g, values in old.flag_values.items()}
        self.timers, self.scheduled = old.timers, old.scheduled
        self.held, self.held_at = old.held, old.held_at
        self.group, self.now = old.group, old.now
        self.groups_seen, self._started_groups = old.groups_seen, old._started_groups
        self.last_shown, self.unseen = old.last_shown, old.unseen
        self.errors, self.health = old.errors, old.health
        for metric in self.metrics:
            group = self.group if metric.by_symbol else ""
            if group in metric.groups:
                self.m[metric.name] = metric.value(group, now)
        self._recompute_all_derived()  # tier values may have changed

