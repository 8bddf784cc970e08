"""The pipeline: one deterministic path from an input event to decisions and orders.

    event -> exchange book (paper) -> metrics -> rule stages -> actions -> trading state
          -> strategies -> pre-trade rules -> execution policy -> orders -> journal

Replay, paper trading and (later) live trading run this same object; only the source
of events and the exchange behind `submit` differ. Event time drives every decision.
"""
from __future__ import annotations

import heapq
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import NamedTuple

from genesis.config.checks import CheckedConfig
from genesis.config.ruleset import CompiledAction, Ruleset, compile_ruleset
from genesis.durations import parse_duration
from genesis.engine import exits
from genesis.engine.account import Account
from genesis.engine.candles import CandleBuilder
from genesis.engine.dayreport import DayStart, day_report, day_start, format_day_report
from genesis.engine.equitymarks import EquityMarks
from genesis.engine.events import MS_PER_DAY, Event
from genesis.engine.exchange import Exchange
from genesis.engine.algos import Step, Touch
from genesis.engine.execution import URGENT_REASONS, Slice, choose, plan, working_algo, works_over_time
from genesis.engine.inflight import order_figures, sell_problem
from genesis.engine.executions import Execution, Executions
from genesis.engine.volume import MINUTE_MS, VolumeBook
from genesis.engine.journal import Journal
from genesis.engine.markets import Markets
from genesis.engine.metricset import MetricSet
from genesis.engine.paper import OrderRequest, PaperExchange
from genesis.engine.rules import EVAL_ERRORS, Firing, RuleRunner
from genesis.engine.slotstate import reduce_slots
from genesis.engine.state import STATE_CHANGES, TradingState, Transition, next_utc_midnight
from genesis.vocabulary import STAGES
from genesis.strategies import CancelIntent, MarketView, OrderIntent, RestingOrder, registry

MARKET_KINDS = frozenset(("book_ticker", "trade", "depth", "candle"))
FIGURES_ALWAYS = frozenset(("fill", "day_closed"))   # kinds after which the account figures are recomputed
FIGURES_WITH_POSITIONS = frozenset(("book_ticker", "candle"))   # ... and these while a position is held
# input events about our own account (live): settled and journaled like the paper exchange's
AMEND_KINDS = ("order_amended", "order_amend_rejected")   # live: the exchange's answer to an amend
EXCHANGE_REPORTS = frozenset(("fill", "order_canceled", "order_rejected", "external_order", "external_fill",
                              "position_mismatch", "reconciled", "order_sent", *AMEND_KINDS))
CANDLE_BOOK_QTY = 1e6  # base units offered at a candle close when the feed has no book
CHECKPOINT_EVERY = 5000
STAGE_ORDER = tuple(s for s in STAGES if s != "pre_trade")   # pre_trade runs per order intent
MAX_SWEEPS = 64   # a guard only: validate rejects action cycles, so chains settle long before



class Amended(NamedTuple):
    """What came of an amendment."""

    problem: str | None   # why it was not done (the order is then untouched); None when done
    filled: bool          # the new price crossed the book: the order filled at once

@dataclass
class Notification:
    """A message a rule sent, with where it goes."""

    ts: int
    severity: str
    rule: str
    text: str
    channels: list
    status: str = "firing"   # "resolved": sent as its rule's condition cleared


@dataclass
class Submitted:
    """What became of one order intent: the client ids sent now and scheduled for later,
    or the refusal (rule and reason)."""

    sent: list = field(default_factory=list)
    scheduled: list = field(default_factory=list)
    refused_by: str = ""
    reason: str = ""


@dataclass
class Stats:
    """Running figures for the report and the status line."""

    events: int = 0
    by_kind: Counter = field(default_factory=Counter)
    firings: Counter = field(default_factory=Counter)
    state_ms: Counter = field(default_factory=Counter)
    max_drawdown_usd: float = 0.0
    max_drawdown_pct: float = 0.0
    intents: int = 0
    rejected: int = 0
    orders: int = 0
    fills: int = 0
    last_decision: str = ""
    equity_marks: EquityMarks = field(default_factory=EquityMarks)   # (minute, equity), one a minute


def _notifies(actions) -> bool:
    """Whether a rule's `then` or `resolve` sends a notification."""
    return any(a.action.name == "notify" for a in actions)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


class EngineCore:
    """The state and the pipeline of `Engine`, which is the class to use. Compiled, this is an
    extension type: a field per slot, typed as annotated (genesis/declarations.py).
    Every attribute of the engine is one of these slots."""

    __slots__ = (
        "config", "routing", "journal", "notify_callback", "quiet", "observers", "notifications", "silences",
        "tier", "ruleset", "metrics", "rules", "state", "account", "markets", "exchange", "view", "strategies",
        "candles", "candle_feed_symbols", "ticker_symbols", "selling", "sent", "pending", "scheduled",
        "intent_reason", "order_owner", "planned_cancels", "executions", "volume", "touch", "algos",
        "algo_wakes", "wake_seq", "now", "tier_since", "stats", "order_seq", "mode", "mode_since",
        "next_account_tick", "started", "current", "_running", "closed_trades", "day_start", "pinned",
        "released", "last_override", "waiting_orders", "flush_before_send"
    )

    def __reduce__(self):
        return reduce_slots(self)   # the same pickle compiled or not (genesis/engine/slotstate.py)

    def __init__(self, config: CheckedConfig, tier: str, journal: Journal | None = None,
                 markets: Markets | None = None, starting_equity: float | None = None, start_ts: int = 0,
                 notify=None, exchange: Exchange | None = None):
        """`exchange`: where orders go (built on `markets`); the paper exchange when None."""
        self.config = config
        settings = config.files.settings.data
        paper = settings["paper"]
        self.routing = config.files.routing()
        self.journal = journal
        self.notify_callback = notify
        self.quiet = False   # input re-read after a restart: notifications are journaled, the callback not called
        # callables (ts, kind, rule, symbol, data) told of every journal entry, journal or not:
        # firings, refusals, intents, orders, actions (notifications, locks), state changes
        self.observers: list = []
        self.notifications: list[Notification] = []
        self.silences: dict[str, tuple[int, str]] = {}   # rule -> (until ms, reason): journaled, not delivered
        self.tier = tier
        self.ruleset: Ruleset = compile_ruleset(config, tier)
        self.metrics: MetricSet = MetricSet(self.ruleset, config.flags)
        self.rules = RuleRunner(self.ruleset)
        self.state = TradingState()
        equity = starting_equity if starting_equity is not None else float(paper["starting_equity_usd"])
        self.account = Account(equity, start_ts, settings["account_metrics"])
        self.markets = markets or Markets.load()
        self.exchange: Exchange = exchange or PaperExchange(self.markets, {"USDT": equity}, paper["taker_fee_pct"],
                                                            paper["maker_fee_pct"])
        self.view = MarketView(self)
        self._depth_laziness()
        self.strategies = self._strategies(tier)
        self.candles = CandleBuilder()
        self.candle_feed_symbols: set = set()
        self.ticker_symbols: set = set()
        self.selling: dict = {}            # symbol -> base quantity in sell orders not yet settled
        self.sent: dict = {}               # client_id -> [symbol, side, qty, filled, price] until settled
        self.pending: deque = deque()
        self.scheduled: list = []          # (due, seq, OrderRequest-like dict)
        self.intent_reason: dict = {}      # client_id -> intent reason
        self.order_owner: dict = {}        # client_id -> the strategy whose intent sent it, until settled
        self.planned_cancels: set = set()  # client ids a strategy or an algorithm asked to cancel
        self.executions = Executions()     # parent orders from their planned slices to execution_done
        self.volume = VolumeBook()         # traded volume: VWAP's participation cap and volume profile
        self.touch = Touch(self.exchange, self.volume)
        self.algos: dict = {}              # parent id -> the algorithm working it over time (genesis/engine/algos.py)
        self.algo_wakes: list = []         # heap of (event time, seq, parent id): when an algorithm wants to look again
        self.wake_seq = 0
        self.now = start_ts
        self.tier_since = start_ts
        self.stats = Stats()
        self.order_seq = 0
        self.mode = self.state.mode
        self.mode_since = start_ts
        self.next_account_tick = 0
        self.started = False
        self.current: Event | None = None   # the input event being processed
        self._running = False   # inside the pipeline: what state changes cause runs in its turn
        self.closed_trades: list = []
        self.day_start = DayStart()   # the running totals when the current day began (daily report)
        self.pinned: dict = {}  # values held fixed over the engine's own (rule tests)
        self.released = False   # pinned values were released: the next account figures are all made
        self.last_override: int | None = None   # event time of the last accepted emergency override
        self.waiting_orders: list[OrderIntent] = []   # operator market orders for a symbol with no price yet
        # live mode turns this off: its input log, written before each input is processed,
        # already makes every decision reproducible (and so durable) before the order leaves
        self.flush_before_send = True

    # ------------------------------------------------------------------ setup
    def _strategies(self, tier: str, keep: list = ()) -> list:
        """Strategy instances that run in `tier`; instances in `keep` whose definition
        is unchanged carry on with their state (a reload must not reset a lookback)."""
        unlocked = set(self.config.tiers[tier]["strategies"])
        running = {(s.id, s.kind, tuple(s.symbols), repr(sorted(s.given.items()))): s for s in keep}
        out = []
        for inst in self.config.files.strategies.data["strategies"]:
            if not inst["enabled"] or inst["kind"] not in unlocked:
                continue
            if inst.get("tiers") and tier not in inst["tiers"]:
                continue
            cls = registry.get(inst["kind"])
            if cls is None:
                self._journal(0, "notice", "", "", {"text": f"strategy kind {inst['kind']} is not available yet; "
                                                             f"instance {inst['id']} does not run"})
                continue
            params = inst["params"]
            key = (inst["id"], inst["kind"], tuple(inst["symbols"]), repr(sorted(params.items())))
            out.append(running.get(key) or cls(inst["id"], inst["symbols"], params))
        return out

    def _depth_laziness(self) -> None:
        """Depth diffs may wait in the book until read, unless a metric or rule reads depth events."""
        self.exchange.lazy_depth = "depth" not in self.metrics.interesting and "depth" not in self.rules.event_rules

    def note(self, kind: str, rule: str = "", symbol: str = "", data: dict | None = None) -> None:
        """Journal one entry at the current event time and tell the observers (an
        operator command's answer, an applied configuration)."""
        self._journal(self.now, kind, rule, symbol, data)

    def _journal(self, ts: int, kind: str, rule: str = "", symbol: str = "", data: dict | None = None) -> None:
        if self.journal is not None:
            self.journal.append(ts, kind, rule, symbol, data)
        for observe in self.observers:
            observe(ts, kind, rule, symbol, data)

    # ------------------------------------------------------------------ the pipeline
    def process(self, event: Event, *, at_now: bool = False) -> None:
        """Run one event, and everything it causes, through the pipeline.

        An input event (market data; live, an exchange report) moves event time on and
        is counted: replay and recovery find their place by that count. With
        `at_now=True` the event happens at the current event time without being an
        input (an operator's command, an accepted configuration edit): it is stamped
        `now`, not counted, and everything it causes runs before this returns."""
        if at_now:
            self.pending.append(event)
            self._drain()
            return
        try:
            self.begin(event)
            # complete() when it has something to do: most market events leave nothing
            if self.pending or self.waiting_orders or self.algo_wakes or self.scheduled \
                    or self.stats.events % CHECKPOINT_EVERY == 0:
                self.complete()
        finally:
            self._running = False

    def begin(self, event: Event) -> None:
        """The first half of `process`: the input event's own step, where strategies
        decide. What it caused waits in `pending` until `complete()`; the live session
        sends the orders decided here in between, so they leave before the engine's
        book-keeping of them. Nothing else may touch the engine in between."""
        self.current = event
        self._running = True
        if not self.started:
            self.started = True
            self.account.start(event.ts)
            self.tier_since = event.ts
            self._internal(Event("engine_started", event.ts))
        # the clock: event time never goes back; a new UTC day closes the last; locks expire
        ts = event.ts
        if ts < self.now:
            ts = self.now
        if not self.mode_since:
            self.mode_since = ts
        self.now = ts
        if ts // MS_PER_DAY > self.account.day:
            for day in self.account.roll_day(ts):
                self._internal(day)
        if self.state.locks:
            self.change_state("expire_locks", "expiry", now=ts)
        kind = event.kind
        stats = self.stats
        stats.events += 1
        stats.by_kind[kind] += 1
        if kind in MARKET_KINDS:   # the exchange's books, then prices, volumes and candles built from trades
            produced = self.exchange.on_market(event)
            if produced:
                self.pending.extend(produced)
            symbol, f = event.symbol, event.fields
            if kind == "book_ticker":
                self.ticker_symbols.add(symbol)
                self.account.on_price(symbol, f["mid"], event.ts)
            elif kind == "trade":
                self.volume.on_trade(symbol, f["qty"])
                if symbol not in self.candle_feed_symbols:
                    candle = self.candles.on_trade(event)
                    if candle is not None:
                        self.volume.on_candle(symbol, candle.ts - MINUTE_MS, candle.fields["volume"], counts=False)
                        self.pending.append(candle)
            elif kind == "candle":
                if not f.get("_built"):
                    self.candle_feed_symbols.add(symbol)
                if f["interval_s"] == 60:   # a candle from the feed: its volume is the market's
                    self.volume.on_candle(symbol, event.ts - MINUTE_MS, f["volume"], counts=True)
                self.account.on_price(symbol, f["close"], event.ts)
                if symbol not in self.ticker_symbols:
                    # a candle-only feed: the close is the price on both sides, with ample size
                    # (documented simplification; no spread or depth is known)
                    self.exchange.book(symbol).apply_ticker(f["close"], CANDLE_BOOK_QTY, f["close"], CANDLE_BOOK_QTY)
        elif kind == "volume_profile":   # live start: the exchange's recent 1-minute volumes
            self.volume.seed(event.symbol, event.fields["_candles"])
        if kind in EXCHANGE_REPORTS:   # live: the exchange reports on our orders; settle like paper's
            stats.by_kind[kind] -= 1
            self.pending.appendleft(event)
        else:
            self._step(event)

    def complete(self) -> None:
        """The second half of `process`: everything the input event caused. (`process`
        calls it only when one of the conditions below holds: keep both in step.)"""
        if self.pending:
            self._drain()
        if self.waiting_orders:
            self._release_waiting()
        if self.algo_wakes or self.scheduled:
            self._due_orders()
        if self.journal is not None and self.stats.events % CHECKPOINT_EVERY == 0:
            self.journal.checkpoint(self.stats.events, self.current.ts, self.metrics.m["equity_usd"])
        self._running = False

    def _internal(self, event: Event) -> None:
        self.pending.append(event)

    def _drain(self) -> None:
        """Run every pending event (and what each causes) through the pipeline, in order."""
        pending = self.pending
        if not pending:
            return
        running, self._running = self._running, True
        try:
            while pending:
                event = pending.popleft()
                if event.kind == "order_canceled":
                    event.fields.setdefault("by_exchange", False)
                    event.fields.setdefault("by_rule", False)
                    planned = event.fields.get("_client_id") in self.planned_cancels
                    if planned:   # asked by a strategy or an algorithm (paper: now; live: reported later)
                        self.planned_cancels.discard(event.fields["_client_id"])
                        event.fields["by_rule"] = False
                    event.fields["by_algorithm"] = planned
                if event.ts < self.now:
                    event.ts = self.now
                self.stats.by_kind[event.kind] += 1
                self._record(event)
                self._step(event)
                if event.kind == "day_closed":
                    self._close_day(event)
        finally:
            self._running = running

    def _close_day(self, closed: Event) -> None:
        """The daily report of the day `closed` ends: journaled, and sent to the
        `report` route of alerts.yaml (genesis.engine.dayreport)."""
        report = day_report(self, self.day_start, closed)
        self.day_start = day_start(self)
        self._journal(closed.ts, "daily_report", "", "", report)
        self._notify("daily_report", "info", "firing", format_day_report(report), route="report")

    def _record(self, event: Event) -> None:
        """Journal the engine's own events and let the account see fills."""
        kind = event.kind
        child_usd = parent = None
        if kind in ("fill", "order_canceled", "order_rejected"):
            self._settle(event)
            parent = self.executions.parent_of(event.fields.get("_client_id"))
            done, child_usd = self.executions.on_report(event, self._arrival_mid(event.symbol))
            self.pending.extend(done)
        if kind == "fill":
            self.stats.fills += 1
            reason = self.intent_reason.get(event.fields.get("_client_id"), "signal")
            data = event.public_fields()
            data["client_id"] = event.fields.get("_client_id", "")
            if "_trade_id" in event.fields:   # live: the exchange's trade id, for reconciliation
                data["trade_id"] = event.fields["_trade_id"]
            if "_fee_base" in event.fields:   # live: a buy's fee taken from the coins bought
                data["fee_base"] = event.fields["_fee_base"]
            self._journal(event.ts, "fill", "", event.symbol, data)
            for closed in self.account.on_fill(event, reason):
                self.closed_trades.append(closed.public_fields())
                self.pending.append(closed)
        elif kind in ("order_canceled", "order_rejected", "order_amended", "position_closed", "reconciled",
                      "external_order", "external_fill", "position_mismatch", "day_closed", "drawdown_recovered",
                      "lock_released", "engine_started", "order_amend_rejected", "halt_reset", "reflection",
                      "order_sent", "execution_done"):
            data = event.public_fields()
            if "_reason" in event.fields:
                data["reason"] = event.fields["_reason"]
            if "_client_id" in event.fields and kind in ("order_canceled", "order_rejected", "order_sent",
                                                         *AMEND_KINDS):
                data["client_id"] = event.fields["_client_id"]
            self._journal(event.ts, kind, "", event.symbol, data)
        if child_usd is not None and parent in self.algos:   # a child of a working algorithm ended
            working = self.algos[parent][0]
            self._work(parent, working.child_ended(event.fields["_client_id"], child_usd, self.now, self.touch))

    def _settle(self, event: Event) -> None:
        """Keep `sent` (orders in flight) and `selling` in step with what orders have
        filled or given up, as the account takes each report in."""
        sent = self.sent.get(event.fields.get("_client_id"))
        if sent is None:
            return
        symbol = sent[0]
        if event.kind == "fill" and event.fields.get("_remaining", 0.0) > 1e-12:
            done = event.fields["qty"]       # partly filled: the rest is still working
        else:                                # complete (lot rounding included), cancelled or rejected
            done = sent[2] - sent[3]
        sent[3] += done
        if sent[1] == "sell":
            self.selling[symbol] = max(self.selling.get(symbol, 0.0) - done, 0.0)
        if sent[3] >= sent[2] - 1e-12:
            del self.sent[event.fields["_client_id"]]
            self.order_owner.pop(event.fields["_client_id"], None)
            self.planned_cancels.discard(event.fields["_client_id"])   # filled before the cancel reached it

    def _step(self, event: Event) -> None:
        """Metrics, account figures, rules and actions, then strategies, for one event."""
        kind = event.kind
        if kind == "journal_entry":
            self.change_state("journal_written", "journal_entry", words=int(event.fields.get("words", 0)))
        changed: set = set()
        metrics = self.metrics
        metrics.on_event(event, changed)
        if event.ts >= self.next_account_tick or kind in FIGURES_ALWAYS \
                or (kind in FIGURES_WITH_POSITIONS and self.account.positions):
            self._account_figures(changed)
            for recovered in self.account.check_recovery(event.ts):
                self.pending.append(recovered)
        if changed:
            metrics.recompute_derived(changed)
        rules = self.rules
        # the common case, decided before any set is built: nothing for any rule to look at
        if not rules.begin_event(event.ts, kind, changed, metrics.group) or metrics.dirty_groups \
                or metrics.unseen:
            self._evaluate(event, changed)
            rules, metrics = self.rules, self.metrics
        if rules.new_errors or rules.recovered or metrics.new_errors or metrics.recovered:
            self._report_expression_errors()
        if kind in MARKET_KINDS:
            for strategy in self.strategies:
                for intent in strategy.on_event(event, self.view):
                    if isinstance(intent, CancelIntent):
                        self._cancel_for(intent)
                    else:
                        self._submit_intent(intent)

    def _evaluate(self, event: Event, changed: set) -> None:
        """After `RuleRunner.begin_event` found something to look at: run the rule
        stages in order for what `changed` touched, each stage's actions
        applied before the next stage reads, and repeat until nothing changes (a fixed
        point: `genesis validate` proves the action graph has no cycle).

        Within a stage: account-wide rules first, then each symbol's per-symbol rules
        (the event's symbol first), each group in rule-book order, with `m` showing that
        symbol's values.

        The common case (only the symbol in view has anything to look at: no other
        symbol's values moved, no timer is due, no event rule runs, every group has
        started) takes the sweep `RuleRunner.steps` planned once for these names; the
        first firing hands over to `_sweeps` where that sweep had got to."""
        rules, metrics = self.rules, self.metrics
        home = metrics.group
        if not (metrics.dirty_groups or metrics.unseen or rules.due) and event.kind not in rules.event_rules:
            started = rules.started_groups
            if "" in started and home in started and started.issuperset(metrics.groups_seen):
                steps = rules.steps(changed, metrics.symbol_names)
                if steps is not None:
                    self._run_steps(event, changed, steps, home)
                    return
        glob = changed - metrics.symbol_names
        local: dict = {home: changed - glob} if home else {}
        if metrics.dirty_groups:   # a window of another symbol moved: what moved for it goes to `unseen`
            for group in sorted(metrics.dirty_groups):
                metrics.view(group)
            metrics.dirty_groups.clear()
            metrics.view(home)
        if metrics.unseen:   # moved while out of view (an order's symbol looked at)
            for group, names in metrics.unseen.items():
                local.setdefault(group, set()).update(names)
            metrics.unseen.clear()
        if rules.due:
            for group in rules.groups_due():
                if group:
                    local.setdefault(group, set())
        self._sweeps(event, glob, local, home, event.kind in rules.event_rules)

    def _run_steps(self, event: Event, changed: set, steps: tuple, home: str) -> None:
        """`_evaluate`'s common case: each stage's account-wide rules, then the rules of
        the symbol in view, as `_sweeps` would run them; on the first firing, its
        actions are applied and `_sweeps` goes on from there."""
        rules, m = self.rules, self.metrics.m
        for position, account, own in steps:
            if account:
                firings = rules.evaluate(account, "", event, m)
                if firings:   # next: this stage's per-symbol rules
                    self._hand_over(event, changed, home, firings, "", position)
                    return
            if own:
                firings = rules.evaluate(own, home, event, m)
                if firings:   # next: the following stage
                    self._hand_over(event, changed, home, firings, home, position + 1)
                    return

    def _hand_over(self, event: Event, changed: set, home: str, firings: list, group: str, position: int) -> None:
        """Apply firings `_run_steps` met and let `_sweeps` finish the sweep from stage
        `position` (its account-wide part skipped when the firings were account-wide)."""
        glob = changed - self.metrics.symbol_names
        local: dict = {home: changed - glob} if home else {}
        made_glob: set = set()
        made_local: dict = {}
        self._act_on(firings, event, group, glob, local, made_glob, made_local)
        self._sweeps(event, glob, local, home, False, (position, not group, made_glob, made_local))

    def _sweeps(self, event: Event, glob: set, local: dict, home: str, event_rules: bool,
                resume: tuple | None = None) -> None:
        """The stages in order, sweep after sweep until nothing changes (see `_evaluate`).
        `resume` = (stage position, account-wide part done, names made so far) starts
        the first sweep part-way, where `_run_steps` stopped. Every stage is visited:
        one that a firing of an earlier stage gave work runs in the same sweep."""
        rules, metrics = self.rules, self.metrics
        for _ in range(MAX_SWEEPS):
            made_glob: set = set()
            made_local: dict = {}
            plan, symbol_work = self._plan(glob, local)
            plans: dict = {}   # group -> its plan for this sweep
            event_stages = rules.event_stages.get(event.kind, ()) if event_rules else ()
            first, account_done = 0, -1
            if resume is not None:
                first, skip_account, made_glob, made_local = resume
                account_done = first if skip_account else -1
                resume = None
            for position, stage in enumerate(STAGE_ORDER):
                if position < first:
                    continue
                todo = plan.get(stage) if position != account_done else None
                if not todo and not symbol_work and stage not in event_stages:
                    continue
                rules, metrics = self.rules, self.metrics   # a tier change swaps both: go on with the new ones
                firings = rules.evaluate(todo, "", event, metrics.m) if todo else []
                if stage in event_stages:
                    if event.symbol:
                        metrics.view(event.symbol)
                    firings += rules.evaluate_events(stage, event, metrics.m)
                if firings:
                    self._act_on(firings, event, "", glob, local, made_glob, made_local)
                    (plan, symbol_work), plans = self._plan(glob, local), {}
                if not symbol_work or stage not in rules.symbol_stages:
                    continue
                if glob & rules.symbol_rule_reads:
                    groups = metrics.groups_seen
                else:
                    groups = sorted(local, key=lambda g: (g != home, g)) if len(local) > 1 else local
                for group in groups:
                    if not group:
                        continue
                    group_plan = plans.get(group)
                    if group_plan is None:
                        names = local.get(group)
                        group_plan = plans[group] = rules.plan(group, glob | names if names else glob)
                    todo = group_plan.get(stage)
                    if not todo:
                        continue
                    metrics.view(group)
                    moved = metrics.unseen.pop(group, None)
                    if moved:   # what moved while out of view: now, and for earlier stages next sweep
                        local.setdefault(group, set()).update(moved)
                        made_local.setdefault(group, set()).update(moved)
                        group_plan = plans[group] = rules.plan(group, glob | local[group])
                        todo = group_plan.get(stage, [])
                    firings = rules.evaluate(todo, group, event, metrics.m)
                    if firings:
                        self._act_on(firings, event, group, glob, local, made_glob, made_local)
                        (plan, symbol_work), plans = self._plan(glob, local), {}
            if symbol_work or "" not in rules.started_groups:
                rules.mark_started(("", *metrics.groups_seen))
            if not made_glob and not made_local:
                break
            glob, local, event_rules, rules.due = made_glob, made_local, False, {}
        else:
            self._journal(event.ts, "rule_error", "", event.symbol,
                          {"error": f"rules did not settle after {MAX_SWEEPS} passes", "what": "engine"})
        if home and self.metrics.group != home:
            self.metrics.view(home)

    def _plan(self, glob: set, local: dict) -> tuple[dict, bool]:
        """What a sweep has to do for these changes (again after actions changed names or
        swapped the rule set): the account-wide rules to evaluate, by stage, and whether
        any per-symbol rule may need evaluating (a per-symbol name changed, an
        account-wide name such a rule reads changed, a symbol is new or has a timer due)."""
        rules = self.rules
        started = rules.started_groups
        symbol_work = rules.has_symbol_rules and (
            not glob.isdisjoint(rules.symbol_rule_reads) or any(local.values()) or (rules.due and any(rules.due))
            or not started.issuperset(local) or not started.issuperset(self.metrics.groups_seen))
        return rules.plan("", glob), symbol_work

    def _act_on(self, firings: list, event: Event, group: str, glob: set, local: dict, made_glob: set,
                made_local: dict) -> None:
        """Apply one stage's firings for one group and note what their actions changed."""
        if len(firings) > 1:
            firings.sort(key=lambda f: self.rules.order[f.rule.rule.id])
        changed: set = set()
        for firing in firings:
            self._apply(firing, event, changed)
        self._account_figures(changed)
        self.metrics.recompute_derived(changed)
        if not changed:
            return
        symbol_names = self.metrics.symbol_names
        for name in changed:
            if name in symbol_names:
                shown = self.metrics.group
                local.setdefault(shown, set()).add(name)
                made_local.setdefault(shown, set()).add(name)
            else:
                glob.add(name)
                made_glob.add(name)

    def _report_expression_errors(self) -> None:
        """Journal each rule or metric whose expression started (or stopped) failing, and
        raise an `expression_error` event that alert rules can page on."""
        for source in (self.rules, self.metrics):
            while source.new_errors:
                err = source.new_errors.pop(0)
                self._journal(err.ts, "rule_error", err.source, err.group, err.record())
                self.pending.append(Event("expression_error", self.now, err.group, {
                    "source": err.source, "what": err.what, "stage": err.stage, "error": err.error,
                    "expression": err.expression}))
            while source.recovered:
                name, group = source.recovered.pop(0)
                self._journal(self.now, "rule_recovered", name, group, {})

    def _account_figures(self, changed: set) -> None:
        """Account figures into the metrics: the money figures when the account moved (or
        all of them after pinned ones were released), the time-based ones every time."""
        now = self.now
        self.next_account_tick = now - now % 1000 + 1000
        figures = self.account.figures(now, full=self.released)
        self.released = False
        figures["size_factor"] = self.state.size_factor(now)
        figures["days_at_tier"] = (now - self.tier_since) / MS_PER_DAY
        figures["uptime_s"] = (now - self.account.first_ts) / 1000.0
        figures.update(self.pinned)
        metrics = self.metrics
        metrics.set_values(figures, changed)
        m, st = metrics.m, self.stats
        st.max_drawdown_usd = max(st.max_drawdown_usd, m["drawdown_usd"])
        st.max_drawdown_pct = max(st.max_drawdown_pct, m["drawdown_pct"])
        minute = now // 60_000
        st.equity_marks.add(minute, m["equity_usd"])

    # ------------------------------------------------------------------ trading state
    def change_state(self, change: str, by: str, **args) -> list[Transition]:
        """The one door for trading-state changes (holds, locks, size slots, operator
        requirements), as NautilusTrader's `set_trading_state`: applies the TradingState
        method `change` (one of STATE_CHANGES) to `args`, journals each transition as a
        `state` entry {change, ..., by} where `by` says why (the rule id, or 'override',
        'reset', 'reflection', 'expiry', 'journal_entry'), tells the observers, raises
        `lock_released` for each lock that ended, and journals the mode when it moved.
        Called between events (an operator's command), what the change caused runs now."""
        if change not in STATE_CHANGES:
            raise ValueError(f"unknown trading-state change {change!r} (one of {', '.join(STATE_CHANGES)})")
        done = getattr(self.state, change)(**args)
        now = self.now
        for t in done:
            self._journal(now, "state", t.rule or by, t.symbol, {"change": t.change, **t.data, "by": by})
            if t.change == "lock_released":   # what follows a lock (re-entry rules) follows
                self._internal(Event("lock_released", now, t.symbol, {"rule": t.rule}))
        mode = self.state.mode
        if mode != self.mode:
            self._journal(now, "state", "", "", {"mode": mode, "from": self.mode, "holds": dict(self.state.holds),
                                                 "by": by})
            self.stats.state_ms[self.mode] += now - self.mode_since if self.mode_since else 0
            self.mode_since = now
            self.mode = mode
        if not self._running:
            self._drain()
        return done

    # ------------------------------------------------------------------ actions
    def _apply(self, firing: Firing, event: Event, changed: set) -> None:
        rule = firing.rule
        rid = rule.rule.id
        self.stats.firings[rid] += 1 if firing.kind == "fire" else 0
        self.stats.last_decision = f"{rid} {firing.kind}d"
        symbol = firing.group or event.symbol
        self._journal(firing.ts, firing.kind, rid, symbol, {"values": firing.values})
        actions = rule.then if firing.kind == "fire" else rule.resolve
        status = "firing"
        if firing.kind == "resolve":
            exits.on_resolve(self, rid)
            status = "resolved"
            if rule.rule.stage == "alerts" and _notifies(rule.then) and not _notifies(rule.resolve):
                detail = self._notify(rid, rule.rule.severity, "resolved", "Resolved: " + rid + " ("
                                      + " and ".join(c.source for c in rule.rule.when) + " no longer holds).")
                self._journal(firing.ts, "action", rid, symbol, detail)
        for action in actions:
            self._act(action, rid, rule.rule.severity, event, changed, firing.group, status)

    def _notify(self, rid: str, severity: str, status: str, text: str, route: str | None = None) -> dict:
        """Send a notification of rule `rid` to the channels of `route` (default: its
        severity's; none while the rule is silenced); the detail to journal."""
        channels = list(self.routing.get(route or severity, []))
        detail = {"action": "notify", "severity": severity, "text": text, "channels": channels}
        silence = self.silences.get(rid)
        if silence is not None and self.now < silence[0]:
            detail["silenced"] = silence[1]
            detail["channels"] = channels = []
        if status != "firing":
            detail["status"] = status
        note = Notification(self.now, severity, rid, text, channels, status)
        self.notifications.append(note)
        if self.notify_callback and not self.quiet:
            self.notify_callback(note)
        return detail

    def _act(self, compiled: CompiledAction, rid: str, severity: str, event: Event, changed: set,
             group: str = "", status: str = "firing") -> None:
        """Carry out one action of rule `rid`; `group` is the symbol of a per-symbol rule;
        `status` "resolved" for the actions of its `resolve:`."""
        action, now, m = compiled.action, self.now, self.metrics.m
        name, arg = action.name, action.arg
        detail: dict = {"action": name}
        if name in ("halt", "reduce_only"):
            self.change_state("hold", rid, rule=rid, kind=name)
        elif name == "resume":
            self.change_state("release", rid, rule=rid)
        elif name == "cancel_all":
            for _, _, req in self.scheduled:   # slices not due yet never leave
                self._dropped(req)
            self.scheduled.clear()
            for parent in list(self.algos):    # algorithms stop (their working children are cancelled below)
                self._work(parent, Step(end="cancelled", reason=f"rule {rid} cancelled all orders"))
            self.algo_wakes.clear()
            for produced in self.exchange.cancel_all(now, manual=False):
                produced.fields["by_rule"] = True    # a safety rule's, not the trader's or a strategy's
                self.pending.append(produced)
        elif name == "close_positions":
            for symbol, pos in list(self.account.positions.items()):
                mid = self.account.mids.get(symbol, 0.0)
                if pos.qty > 0 and mid:
                    self._submit_intent(OrderIntent(rid, symbol, "sell", pos.qty * mid, mid, "risk", False))
        elif name == "lock":
            symbol = (group or event.symbol) if arg["scope"] == "symbol" else ""
            if arg["until"] == "utc_midnight":
                until = next_utc_midnight(now)
            else:
                steps = arg["duration"]
                steps = steps if isinstance(steps, list) else [steps]
                n = self.state.escalation(rid, now, int(parse_duration(arg["repeat_window"]) * 1000))
                until = now + int(parse_duration(steps[min(n, len(steps) - 1)]) * 1000)
            required = self.state.requirements.get(rid, {})
            words = required["min_words"] if required.get("kind") == "journal_entry" else 0
            made = self.change_state("lock", rid, rule=rid, symbol=symbol, until=until,
                                     reason=arg.get("reason", rid), journal_words=words)
            detail["lock"] = made[0].data["lock"]
        elif name == "scale_size":
            factor = compiled.params["factor"].fn(m, event.fields, None) if "factor" in compiled.params \
                else float(arg["factor"])
            expires = now + int(parse_duration(arg["duration"]) * 1000) if "duration" in arg else None
            slot = arg.get("slot", rid)
            # a per-symbol rule scales its symbol only
            self.change_state("scale", rid, slot=slot, factor=float(factor), expires=expires, symbol=group)
            detail.update(slot=slot, factor=factor)
        elif name == "notify":
            detail = self._notify(rid, severity, status, self._render(arg, compiled, event, group))
        elif name == "require":   # merged into what a tier change of the same rule recorded as waiting
            waiting = self.state.requirements.get(rid, {})
            self.change_state("require", rid, rule=rid,
                              requirement={**(waiting if waiting.get("kind") == arg["kind"] else {}), **arg})
            detail.update(arg)
        elif name == "set":
            self.metrics.set_values(dict(arg), changed)
            detail["set"] = arg
        elif name in ("promote", "demote"):
            detail.update(exits.tier_change(self, 1 if name == "promote" else -1, rid))
        elif name == "rebase_peak":
            detail["peak_usd"] = self.account.rebase_peak()
        self._journal(now, "action", rid, group or event.symbol, detail)

    def _render(self, text: str, compiled: CompiledAction, event: Event, group: str = "") -> str:
        parts = text.split("${")
        out = [parts[0]]
        order = event.fields if event.kind == "order_intent" else None   # pre-trade messages read order.*
        for part, template in zip(parts[1:], compiled.templates):
            if template is None:      # ${symbol}
                value = group or event.symbol
            else:
                try:
                    value = template.fn(self.metrics.m, event.fields, order)
                except (ArithmeticError, TypeError, ValueError, KeyError):
                    value = "?"
            out.append(_fmt(value) + part.split("}", 1)[1])
        return "".join(out)

    def change_tier(self, step: int, rid: str) -> dict:
        """Move one tier up (+1) or down (-1) for rule `rid`; at the lowest tier a
        demotion halts instead. Returns the change for the journal."""
        ranks = {d["rank"]: name for name, d in self.config.tiers.items()}
        target = ranks.get(self.config.tiers[self.tier]["rank"] + step)
        if target is None:
            if step < 0:
                self.change_state("hold", rid, rule=rid, kind="halt")
                return {"tier": self.tier, "note": "already at the lowest tier: halted instead"}
            return {"tier": self.tier, "note": "already at the top tier"}
        previous = self.tier
        self.switch_ruleset(compile_ruleset(self.config, target), target)
        self.tier_since = self.now
        return {"tier": target, "from": previous}

    def switch_ruleset(self, ruleset: Ruleset, tier: str, config: CheckedConfig | None = None) -> None:
        """Swap in a recompiled rule set (tier change or accepted config edit), keeping
        every metric's history, flag values and rule states."""
        old_metrics, old_rules = self.metrics, self.rules
        if config is not None:
            self.config = config
        self.metrics = MetricSet(ruleset, self.config.flags)
        self.metrics.adopt(old_metrics, self.now)
        self.rules = RuleRunner(ruleset)
        self.rules.adopt(old_rules)
        self.ruleset, self.tier = ruleset, tier
        self._depth_laziness()
        self.strategies = self._strategies(tier, keep=self.strategies)
        if config is None:
            self._journal(self.now, "tier", "", "", {"tier": tier})

    # ------------------------------------------------------------------ orders
    def _submit_intent(self, intent: OrderIntent) -> Submitted:
        """Pre-trade rules, trading state, size multipliers and execution policy for one
        intent; the client ids sent and scheduled, or why it was refused. Pre-trade rules
        read what is in flight as well as positions (genesis/engine/inflight.py)."""
        now = self.now
        self.stats.intents += 1
        record = {"strategy": intent.strategy, "side": intent.side, "notional_usd": round(intent.notional_usd, 6),
                  "reason": intent.reason, "opens_position": intent.opens_position}
        notional = intent.notional_usd
        if intent.side == "sell":   # a sell of what other sells in flight already sell would send nothing
            problem = sell_problem(self.sent, self.selling, self.account, self.markets, intent.symbol)
            if problem:
                return self._refuse(intent, "execution", problem, record)
        if intent.manual and intent.opens_position and not intent.has_reason:  # exits never wait for words
            for rid, required in self.state.requirements.items():
                if required.get("kind") == "reason":
                    words = required["min_words"]
                    return self._refuse(intent, rid, f"manual orders need a short written reason right now "
                                                     f"(at least {words} words): add --reason", record)
        if intent.reason != "risk":  # engine-issued risk exits bypass the gates they serve
            home = self.metrics.group
            if intent.symbol and self.rules.pre_trade_per_symbol:
                self.metrics.view(intent.symbol)   # pre-trade rules read the order's symbol's values
            try:
                outcome = self._pre_trade(intent, record)
            finally:
                if home:
                    self.metrics.view(home)
            if isinstance(outcome, Submitted):   # refused
                return outcome
            notional = outcome
            admission = self.state.admit(intent.symbol, intent.opens_position, now)
            if not admission.allowed:
                return self._refuse(intent, "trading_state", admission.reason, record)
            notional *= admission.size_factor
            if admission.size_factor != 1.0:
                record["size_factor"] = admission.size_factor
            if notional <= 0:
                cut = ", ".join(self.state.zero_slots(intent.symbol, now))
                return self._refuse(intent, "trading_state", f"sizes are at 0% for now ({cut})", record)
        self._supersede(intent)
        policy = self.config.tiers[self.tier]["execution"]
        over_time = False
        if intent.limit_price:  # a resting order is one order: slicing is for orders that take the book
            algo, slices = "limit", [Slice(now, 1.0)]
        else:
            urgent = intent.reason in URGENT_REASONS
            algo = choose(policy, notional, urgent)
            over_time = works_over_time(policy, algo)
            slices = [] if over_time else plan(policy, algo, notional, now)
        if not slices and not over_time:
            return self._refuse(intent, "execution", "no execution algorithm of this tier takes an order this large",
                                record)
        best = self.exchange.best(intent.symbol)
        if not (intent.limit_price or ((best[1] if intent.side == "buy" else best[0]) if best else intent.price)):
            return self._refuse(intent, "execution", f"no price for {intent.symbol} yet", record)
        parent = f"p{self.order_seq + 1}"
        working = None
        if over_time:
            info = self.markets.get(intent.symbol)
            working = working_algo(policy, algo, intent.symbol, intent.side, notional, now,
                                   info.min_notional * 1.01 if info else 0.0, parent, self.touch)
        planned = working.planned if working else len(slices)
        record.update(algo=algo, slices=planned, notional_final=round(notional, 6))
        self._journal(now, "intent", intent.strategy, intent.symbol, record)
        self.stats.last_decision = f"{intent.strategy} {intent.side} {intent.symbol} ${notional:,.2f} ({algo})"
        result = Submitted()
        self.executions.start(Execution(parent, intent.symbol, intent.side, algo, intent.manual, notional, planned,
                                        self._arrival_mid(intent.symbol), intent.strategy, now, over_time))
        if working is not None:
            self.order_seq += 1   # the parent's id is taken
            self.algos[parent] = (working, intent)
            self._work(parent, working.start(now, self.touch), result)
            return result
        for s in slices:
            self.order_seq += 1
            req = self._child(intent, parent, notional * s.fraction, intent.limit_price, s.due,
                              s is slices[-1] and self._exits_all(intent))
            if s.due <= now:
                if self._send(req):
                    result.sent.append(req["client_id"])
            else:
                self.scheduled.append((s.due, self.order_seq, req))
                result.scheduled.append(req["client_id"])
        return result

    def _exits_all(self, intent: OrderIntent) -> bool:
        """Whether a sell leaves too little to be worth keeping: what would remain is worth
        less than twice the exchange's minimum order value (it could hardly be sold on its
        own). Then its last slice sells everything still held and free, lot-rounding dust
        included; a smaller sell leaves the rest of the position held."""
        if intent.side != "sell":
            return False
        held = self.account.positions.get(intent.symbol)
        info = self.markets.get(intent.symbol)
        least = 2 * info.min_notional if info else 0.0
        return held is not None and held.qty * intent.price - intent.notional_usd < max(least, 1e-9)

    def _supersede(self, intent: OrderIntent) -> None:
        """A decision the other way on the same symbol by the same strategy stops what its
        earlier parent orders still had to do there: their algorithms end `cancelled`
        (working children cancelled) and their slices not yet due are dropped. An exit
        then never races the rest of its own entry."""
        for parent, (working, earlier) in list(self.algos.items()):
            if earlier.strategy == intent.strategy and earlier.symbol == intent.symbol and earlier.side != intent.side:
                self._work(parent, Step(cancel=list(working.working), end="cancelled",
                                        reason=f"superseded by a {intent.side} of {intent.symbol} ({intent.reason})"))
        if self.scheduled:
            keep = []
            for item in self.scheduled:
                req = item[2]
                if req["strategy"] == intent.strategy and req["symbol"] == intent.symbol and req["side"] != intent.side:
                    self._dropped(req)
                else:
                    keep.append(item)
            self.scheduled = keep

    def _child(self, intent: OrderIntent, parent: str, notional: float, limit: float | None, due: int,
               sell_all: bool) -> dict:
        """The request for one child order of `parent` (client id from `order_seq`)."""
        return {"client_id": f"g{self.order_seq}", "symbol": intent.symbol, "side": intent.side,
                "notional": notional, "price": intent.price, "reason": intent.reason,
                "manual": intent.manual, "sell_all": sell_all,
                "limit": limit, "post_only": intent.post_only, "strategy": intent.strategy,
                "parent": parent, "due": due,
                "chosen": intent.notional_usd}   # the size decided, before rules and multipliers

    def _work(self, parent: str, step: Step, result: Submitted | None = None) -> None:
        """Carry out what the algorithm working `parent` asked for: cancels, children, its
        next wake, its end."""
        working, intent = self.algos[parent]
        for client_id in step.cancel:
            if client_id not in self.planned_cancels:   # asked once is enough (live: the answer may still come)
                self._planned_cancel(client_id)
        for child in step.send:
            self.order_seq += 1
            req = self._child(intent, parent, child.notional, child.limit, self.now,
                              child.sell_all and self._exits_all(intent))
            if self._send(req):
                working.child_sent(req["client_id"], child.notional)
                if result is not None:
                    result.sent.append(req["client_id"])
        if step.end:
            del self.algos[parent]
            self.pending.extend(self.executions.ended(parent, step.end, step.reason, self.now,
                                                      self._arrival_mid(intent.symbol)))
        elif step.wake is not None:
            self.wake_seq += 1
            heapq.heappush(self.algo_wakes, (step.wake, self.wake_seq, parent))

    def _pre_trade(self, intent: OrderIntent, record: dict) -> float | Submitted:
        """The pre-trade rules for one intent: the notional it may go out with, or the
        refusal (a rule rejected it, or a rule could not be evaluated: fail closed). The
        rules read what is in flight as well as positions (genesis/engine/inflight.py)."""
        now, m = self.now, self.metrics.m
        notional = intent.notional_usd
        fields = intent.fields()
        fields["hour_utc"] = (now // 3_600_000) % 24
        fields.update(order_figures(self.sent, self._planned_slices(), self.account, intent.symbol, intent.side,
                                    intent.notional_usd, m.get("same_direction_pct", 0.0)))
        firings, failed = self.rules.check_intent(fields, m, now, intent.symbol)
        if failed:
            self._report_expression_errors()
            err = failed[0]
            return self._refuse(intent, err.source, f"rule {err.source} could not be evaluated ({err.error}); "
                                                    "orders are refused until it can", record)
        for firing in firings:
            rid = firing.rule.rule.id
            self.stats.firings[rid] += 1
            self._journal(now, "fire", rid, intent.symbol, {"values": firing.values, "intent": record})
            for compiled in firing.rule.then:
                if compiled.action.name == "reject":
                    text = self._render(compiled.action.arg, compiled, Event("order_intent", now, intent.symbol,
                                                                             dict(fields)))
                    return self._refuse(intent, rid, text, record)
                if compiled.action.name == "resize":
                    cap_fn = compiled.params.get("max_notional_usd")
                    try:
                        cap = cap_fn.fn(m, None, fields) if cap_fn else float(compiled.action.arg["max_notional_usd"])
                    except EVAL_ERRORS as exc:
                        return self._refuse(intent, rid, f"rule {rid} could not size the order "
                                                         f"({type(exc).__name__}: {exc})", record)
                    notional = min(notional, cap)
                    record["resized_to"] = round(notional, 6)
                    if notional <= 0:
                        return self._refuse(intent, rid, "no room is left under this limit "
                                                         "(positions and orders in flight use it)", record)
                elif compiled.action.name == "notify":
                    self._act(compiled, rid, firing.rule.rule.severity, Event("order_intent", now,
                                                                            intent.symbol, dict(fields)), set())
        if intent.opens_position:
            for err in self.rules.blocking():
                return self._refuse(intent, err.source, f"risk rule {err.source} cannot be evaluated ({err.error}); "
                                                        "new exposure is refused until it can", record)
        return notional

    def _refuse(self, intent: OrderIntent, rule: str, reason: str, record: dict) -> Submitted:
        self.stats.rejected += 1
        record["refused"] = reason
        self._journal(self.now, "refused", rule, intent.symbol, record)
        self.stats.last_decision = f"refused {intent.side} {intent.symbol}: {reason}"
        self.pending.append(Event("order_rejected", self.now, intent.symbol,
                                  {"rule": rule, "manual": intent.manual, "_reason": reason}))
        return Submitted(refused_by=rule, reason=reason)

    def _arrival_mid(self, symbol: str) -> float:
        """The mid when an execution is decided (its market impact is measured from it); 0 when unknown."""
        best = self.exchange.best(symbol)
        return (best[0] + best[1]) / 2 if best else self.account.mids.get(symbol, 0.0)

    def _dropped(self, req: dict) -> None:
        """A planned slice that does not leave (no price, nothing left to sell)."""
        self.pending.extend(self.executions.dropped(req["parent"], self.now, self._arrival_mid(req["symbol"])))

    def _send(self, req: dict) -> bool:
        """Send one order (slice) to the exchange; False when there was nothing to send
        (no price; a sell whose quantity other sells in flight already cover)."""
        symbol, side = req["symbol"], req["side"]
        limit = req.get("limit")
        best = self.exchange.best(symbol)
        market = (best[1] if side == "buy" else best[0]) if best else req["price"]
        ref = market or limit          # the market when decided: slippage is measured from it
        price = limit or ref           # what one unit will cost: sizes the order
        if not ref:
            self._dropped(req)
            return False
        if side == "sell":
            held = self.account.positions.get(symbol)
            free = (held.qty if held else 0.0) - self.selling.get(symbol, 0.0)  # slices sent, not yet settled
            qty = free if req["sell_all"] else min(req["notional"] / price, free)
            if symbol in self.markets:
                qty = self.markets.round_qty_down(symbol, qty)  # what the exchange will fill
            if qty <= 0:
                self._dropped(req)
                return False
            self.selling[symbol] = self.selling.get(symbol, 0.0) + qty
        else:
            qty = req["notional"] / price
        self.sent[req["client_id"]] = [symbol, side, qty, 0.0, price]
        self.order_owner[req["client_id"]] = req["strategy"]
        kind = ("limit_maker" if req.get("post_only") else "limit") if limit else "market"
        waited_ms = self.now - req["due"]   # event time from when the slice was due (its decision) to now
        order = OrderRequest(client_id=req["client_id"], symbol=symbol, side=side, type=kind, qty=qty,
                             price=limit, decision_price=ref, manual=req["manual"], waited_ms=waited_ms)
        self.intent_reason[req["client_id"]] = req["reason"]
        self.stats.orders += 1
        self._journal(self.now, "order", "", symbol, {"client_id": req["client_id"], "side": side,
                                                      "qty": qty, "type": kind, "decision_price": ref,
                                                      "strategy": req["strategy"], "parent": req["parent"]}
                      | ({"limit_price": limit} if limit else {}))
        if self.journal is not None and self.flush_before_send:
            self.journal.flush()  # the decision is durable before the order leaves the process
        self.pending.append(Event("order_new", self.now, symbol, {
            "side": side, "qty": qty, "price": price, "notional_usd": qty * price, "manual": req["manual"],
            "_client_id": req["client_id"], "chosen_notional_usd": req.get("chosen", qty * price)}))
        self.executions.sent(req["parent"], req["client_id"], qty * price)
        if not self.exchange.reports_sent:   # paper: the order reaches the exchange now, in event time
            self.pending.append(Event("order_sent", self.now, symbol, {
                "latency_ms": float(waited_ms), "manual": req["manual"], "_client_id": req["client_id"]}))
        for produced in self.exchange.submit(order, self.now):
            if produced.kind == "order_canceled":  # the exchange dropped the unfilled rest
                produced.fields["by_exchange"] = True
            self.pending.append(produced)
        return True

    def amend(self, client_id: str, price: float) -> Amended:
        """Move one of Genesis's resting orders to a new limit price (journaled as
        'order_amended'); what came of it."""
        produced, problem = self.exchange.amend(client_id, price, self.now)
        if problem:
            return Amended(problem, False)
        for event in produced:
            if event.kind == "order_canceled":
                event.fields["by_exchange"] = True
            self.pending.append(event)
        self._drain()
        return Amended(None, any(e.kind == "fill" for e in produced))

    def strategy_orders(self, strategy: str, symbol: str | None = None) -> list[RestingOrder]:
        """A strategy's orders open at the exchange (of one symbol), in the order they were sent."""
        owner = self.order_owner
        return [RestingOrder(cid, o.symbol, o.side, o.price, o.remaining)
                for cid, o in self.exchange.open_orders.items()
                if owner.get(cid) == strategy and (symbol is None or o.symbol == symbol)]

    def _cancel_for(self, intent: CancelIntent) -> None:
        """A strategy cancels one of its own open orders (others' are left alone)."""
        if self.order_owner.get(intent.client_id) != intent.strategy:
            return
        self._planned_cancel(intent.client_id)

    def _planned_cancel(self, client_id: str) -> None:
        """Cancel an order as planned by a strategy or an execution algorithm (its cancel
        event says `by_algorithm`: it is not counted as a decision of the moment)."""
        self.planned_cancels.add(client_id)
        produced = self.exchange.cancel(client_id, self.now, manual=False)
        for event in produced:
            event.fields["by_exchange"] = False
            self.pending.append(event)
        if produced:   # paper: settled now, so that what is decided next sees the order gone
            self._drain()

    def _due_orders(self) -> None:
        """Send the planned slices that are due, and wake the algorithms that asked to look again."""
        wakes = self.algo_wakes
        if wakes and wakes[0][0] <= self.now:
            while wakes and wakes[0][0] <= self.now:
                _, _, parent = heapq.heappop(wakes)
                if parent in self.algos:
                    self._work(parent, self.algos[parent][0].wake(self.now, self.touch))
            self._drain()
        if not self.scheduled:
            return
        due = [s for s in self.scheduled if s[0] <= self.now]
        if not due:
            return
        self.scheduled = [s for s in self.scheduled if s[0] > self.now]
        for _, _, req in sorted(due, key=lambda s: (s[0], s[1])):
            self._send(req)
        self._drain()

    def next_due(self) -> int | None:
        """Event time of the next slice or algorithm wake that waits for time to pass (the
        live session feeds a `clock` input then, when no market data comes), or None."""
        dues = [due for due, _, _ in self.scheduled]
        if self.algo_wakes:
            dues.append(self.algo_wakes[0][0])
        return min(dues) if dues else None

    def _planned_slices(self) -> list:
        """What is to be sent later: the slices scheduled, and what each working algorithm
        has not sent yet (as one slice each), for the in-flight limits."""
        if not self.algos:
            return self.scheduled
        later = [(0, 0, {"symbol": w.symbol, "side": w.side, "notional": w.unsent_usd()})
                 for w, _ in self.algos.values()]
        return self.scheduled + later

    def pin(self, values: dict) -> None:
        """Hold metric, account or flag values fixed from the next event on (rule tests)."""
        self.pinned.update(values)
        self.next_account_tick = 0  # apply at the next event

    def unpin(self, names) -> None:
        """Release pinned account figures: the engine's own apply again from the next event."""
        for name in names:
            self.pinned.pop(name, None)
        self.released = True   # every figure again, not only those the account moved
        self.next_account_tick = 0

    def submit(self, intent: OrderIntent) -> Submitted:
        """An order intent from outside the strategies (an operator's order, rule tests):
        decided now, with everything it causes (refusal, orders, fills) run before this
        returns. What became of it: the client ids sent and scheduled, or the refusal."""
        result = self._submit_intent(intent)
        self._drain()
        return result

    def submit_when_priced(self, intent: OrderIntent) -> None:
        """Keep an operator's market order for a symbol that has no price yet (its market
        data has not come): it is decided like `submit` at the end of the first input
        event after which the symbol has a price, at that price."""
        self.waiting_orders.append(intent)

    def _release_waiting(self) -> None:
        """Decide the waiting operator orders whose symbol now has a price: at the best
        ask for a buy, the best bid for a sell (cut to what is held)."""
        ready = [i for i in self.waiting_orders if self.exchange.best(i.symbol)]
        if not ready:
            return
        self.waiting_orders = [i for i in self.waiting_orders if not self.exchange.best(i.symbol)]
        for intent in ready:
            bid, ask = self.exchange.best(intent.symbol)
            intent.price = ask if intent.side == "buy" else bid
            if intent.side == "sell":
                held = self.account.positions.get(intent.symbol)
                intent.notional_usd = min(intent.notional_usd, held.qty * intent.price if held else 0.0)
            self._submit_intent(intent)
        self._drain()

    def cancel(self, client_id: str) -> bool:
        """The operator cancels one open order; True when the exchange cancelled it at
        once (paper), False when the cancel was sent and the exchange confirms it later
        (live). The order must be in `exchange.open_orders`."""
        produced = self.exchange.cancel(client_id, self.now, manual=True)
        for event in produced:
            event.fields["by_exchange"] = False
            self.pending.append(event)
        self._drain()
        return bool(produced)

    # ------------------------------------------------------------------ the end
    def time_in_mode_ms(self) -> Counter:
        """Event time spent in each trading mode (ACTIVE, REDUCING, HALTED) up to now, ms."""
        spent = Counter(self.stats.state_ms)
        spent[self.mode] += self.now - self.mode_since if self.mode_since else 0
        return spent

    def finish(self) -> None:
        """Flush the journal at the end of the input."""
        self.stats.state_ms = self.time_in_mode_ms()
        self.mode_since = self.now
        if self.journal is not None:
            self.journal.checkpoint(self.stats.events, self.now, self.metrics.m["equity_usd"])


class Engine(EngineCore):
    """One trading pipeline for one tier.

    A plain class over the compiled `EngineCore`: its methods can be wrapped or replaced
    at run time (as tests do), which an extension type's cannot, and the core's compiled
    calls of them go to the replacement."""
