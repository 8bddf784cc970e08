"""The live session: one asyncio loop that feeds the engine from Binance's streams and
REST answers, sends the orders it decides, and survives being killed.

Start-up, every time:
1. the journal run of this account and tier is opened (or continued);
2. the run's input log is read back through the engine with nothing sent: the state
   (orders, positions, metrics, locks, tilt) is what it was at the stop;
3. reconciliation with the exchange (genesis/live/reconcile.py): fills that happened
   while down, orders that never left, external orders, balances;
4. streams: market data and the user-data stream; every input is written to the log,
   then applied to the order book-keeping, then processed by the engine.

Later reconciliations (after the user-data stream (re)connects, or when an order's
outcome is unknown) run as a task beside the loop: their requests never hold up the
inputs, the operator's commands or the heartbeat, and each finding comes back through
the queue as an input (`found`), worked out against the state when it is processed. A
new order's answer is taken in at once, fills included (`LiveExchange.answer_fills`),
and tells the user-data stream which report must follow (`UserStream.expect`).

Orders leave only after the journal holds the decision (the engine flushes it) and
the input that caused it is in the log. Client order ids are `<prefix><engine id>`
with a prefix fixed per run, so a retry or a restart can never place an order twice.

A dry run (`genesis run --mode dry-run`, genesis/live/dryrun.py) is this same session
with the paper exchange as the engine's exchange (its `paper` flag): orders fill on
paper against the live book, so step 3 and the user-data stream are left out, no
balance is asked for and nothing is ever sent.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from genesis.engine.account import Account
from genesis.engine.events import Event
from sqlalchemy import select

from genesis.config.snapshot import snapshot
from genesis.durations import parse_duration
from genesis.engine.journal import runs
from genesis.engine.recovery import describe
from genesis.engine.volume import MINUTES_PER_DAY, PROFILE_DAYS_KEPT
from genesis.engine.statusdoc import publish as publish_status
from genesis.engine.runner import STATUS_EVERY_S, Session, _after_event, _apply_queued_commands, disconnect, \
    open_session, reload_config
from genesis.live.amend import send_amend
from genesis.live.credentials import Credentials, redact
from genesis.live.dryrun import DryRunExchange
from genesis.live.exchange import LiveExchange, LiveOrder
from genesis.live.marketrules import adopt, recorded, run_rules
from genesis.live.messages import BadMessage, market_event, snapshot_event, system_event
from genesis.live.reconcile import reconcile, trade_cursors
from genesis.live.rest import ExchangeError
from genesis.live.segment import InputLog, compact, read_inputs


_TICK = ("tick",)   # a queue item that only wakes the run loop
LIVE_SWITCH_INTERVAL_S = 0.0001
GC_YOUNG_THRESHOLD = 700   # objects, as CPython's default first-generation threshold
HEARTBEAT_S = 1.0   # seconds between heartbeats (genesis status calls an engine alive for 3 s after one)
# symbols whose klines are fetched at once at start (VWAP's volume profile: 11 pages of
# weight 2 a symbol); at 50+ symbols one at a time would take a minute of round trips
PROFILE_FETCHES_AT_ONCE = 8


class RecoveryFailed(Exception):
    """The run's state cannot be rebuilt from its input log; live trading must not start."""


@dataclass
class LiveFeed:
    """What the journal knows a live run's input by: a stable identity and the log."""

    identity: str
    log_path: Path | None = None
    sources: list = field(default_factory=list)

    def digest(self) -> str:
        return self.identity


def log_dir(db_url: str) -> Path:
    """Where a journal's live input logs live: beside a SQLite file, else ./genesis-live."""
    if db_url.startswith("sqlite:///") and len(db_url) > len("sqlite:///"):
        return Path(db_url[len("sqlite:///"):]).resolve().parent / "genesis-live"
    return Path("genesis-live").resolve()


def open_live_session(config_root: Path, config, tier: str, db_url: str, creds: Credentials | None, rest_url: str,
                      notify=None, dry_run: bool = False) -> tuple[Session, Path]:
    """The journal session of this account's live run on `tier` (continued if unfinished);
    returns it and the run's input-log path. The engine gets a LiveExchange. With
    `dry_run` (no `creds` needed) it is the dry run on `rest_url`'s market data instead:
    mode "dry-run", and the engine gets the paper exchange (genesis/live/dryrun.py)."""
    # a new run gets a random token: its input log's name and its client order ids carry
    # it, so neither can collide with another run's, even one in a journal made afresh
    token = secrets.token_hex(4)
    account = "dryrun" if dry_run else creds.fingerprint
    fresh = log_dir(db_url) / f"run-{token}-{account}.inputs"
    feed = LiveFeed(f"dry-run:{rest_url}" if dry_run else f"live:{account}:{rest_url}", fresh, [fresh])

    def run_log(journal) -> Path:
        with journal.engine.connect() as conn:
            stored = conn.execute(select(runs.c.feed_paths).where(runs.c.id == journal.run_id)).scalar()
        path = Path(json.loads(stored)[0]) if stored else fresh   # a continued run keeps its own log
        feed.log_path, feed.sources = path, [path]
        return path

    def with_run_rules(markets, journal) -> Path:
        # a continued run's symbol rules are the ones it recorded at its start, in place
        # before a snapshot is restored (its layout includes them) or anything replayed
        path = run_log(journal)
        kept = recorded(path)
        if kept is not None:
            adopt(markets, kept)
        return path

    def live_exchange(markets, journal, _config) -> LiveExchange:
        return LiveExchange(markets, prefix=f"G{with_run_rules(markets, journal).name.split('-')[1]}-")

    def paper_exchange(markets, journal, run_config) -> DryRunExchange:
        with_run_rules(markets, journal)
        return DryRunExchange.for_config(markets, run_config)

    session = open_session(config_root, config, tier, feed, db_url, "dry-run" if dry_run else "live", notify=notify,
                           exchange_for=paper_exchange if dry_run else live_exchange)
    path = feed.log_path
    engine = session.engine
    engine.flush_before_send = False   # the input log holds the decision's inputs before the order leaves
    return session, path


class LiveRunner:
    """Runs one live session until stopped."""

    def __init__(self, session: Session, client, market_stream_factory, user_stream_factory, log_path: Path,
                 symbols: list[str], say=print, status=None, config_root: Path | None = None,
                 poll_s: float = 0.2, clock=time.time, watch=None):
        self.session = session
        self.watch = watch   # a genesis.observe.loopwatch.LoopWatch, or None
        self.engine = session.engine
        self.exchange: LiveExchange = session.engine.exchange
        self.client = client
        self.log_path = log_path
        self.symbols = symbols
        self.say = say
        self.status = status
        self.config_root = config_root or session.config_root
        self.poll_s = poll_s
        self.clock = clock
        self.queue: asyncio.Queue = asyncio.Queue()
        self.market_stream_factory = market_stream_factory
        self.user_stream_factory = user_stream_factory
        self.log: InputLog | None = None
        self.start_balances: dict[str, float] = {}
        self.tasks: set = set()
        self.stopping = asyncio.Event()
        self.bad_messages = 0
        self.snapshot_pending: set[str] = set()
        self.reconciled: dict = {}
        self.polling = None    # a worker-thread database poll in flight
        self.next_beat = 0.0   # time.monotonic() of the next heartbeat
        self.gc_runs = 0       # garbage collections the loop ran
        self.sending: set[str] = set()      # client ids whose new-order request is under way
        self.reconcile_pending = False
        self.reconciling = None   # the reconciliation task running beside the loop
        self.reconcile_again = False   # one was asked for while it ran: another after it
        self.looping = False      # the run loop takes inputs: findings go through its queue
        self.watching = None   # a worker-thread read of the configuration files in flight
        self.arrival_ns = 0                   # time.time_ns() the market message being processed arrived
        self.input_ns = 0                     # time.time_ns() the loop took the input (or command) being processed
        self.decided_from: dict[str, int] = {}   # client id -> arrival of the message it was decided on
        self.stages: dict | None = None      # bench: client id -> (arrival, taken from the queue, decided) ns
        self.taken_ns = 0
        self.exchange.on_behind = lambda: self.reconcile_later(1.0)   # a report shows fills not taken in yet
        # a dry run (genesis/live/dryrun.py): orders fill on paper against the live book, so there
        # is no account to read, no user-data stream and nothing to reconcile
        self.paper = bool(getattr(self.exchange, "paper", False))

    # ------------------------------------------------------------ time
    def local_ts(self) -> int:
        """Exchange time now: the local clock corrected by the tracked offset, never
        earlier than the engine's clock."""
        ts = int(self.clock() * 1000) + int(getattr(self.client, "clock_offset_ms", 0) or 0)
        return max(ts, self.engine.now)

    # ------------------------------------------------------------ inputs
    def process(self, event, record: bool = True) -> None:
        """One input: to the log, to the order book-keeping, through the engine (the run
        loop does the same in two halves, sending the orders decided in between)."""
        if event.ts < self.engine.now:
            event.ts = self.engine.now
        if record:
            self.log.write(event)
        self.exchange.apply(event)
        self.engine.process(event)
        _after_event(self.session, self.say)

    def convert(self, item: tuple) -> list:
        """A raw item from a stream or a request task -> engine events."""
        kind = item[0]
        if kind == "market":
            stream, data = item[1], item[2]
            self.arrival_ns = item[3] if len(item) > 3 else 0   # when it reached the socket (latency figures)
            if self.stages is not None:
                self.taken_ns = time.time_ns()
            return [market_event(stream, data, self.local_ts())]
        if kind == "user":
            data = item[1]
            try:
                ts = int(data.get("E") or 0) or self.local_ts()
                return self.exchange.on_user(data, max(ts, self.engine.now))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise BadMessage(f"user-data event not understood ({type(exc).__name__})") from None
        if kind == "found":   # a reconciliation's finding, worked out against the state now
            _, make, done = item
            try:
                return make()
            except Exception as exc:  # noqa: BLE001 - the reconciliation that asked says it
                if not done.done():
                    done.set_exception(exc)
                return []
        if kind == "rest":
            _, order, answer, error, unknown, latency_ms = item
            self.sending.discard(order.client_id)   # under way until its answer is taken in
            if answer is not None and "fills" in answer:   # placed: the exchange reports it on the user stream
                self._expect_report(order)
            return self.exchange.on_rest(order, answer, error, unknown, latency_ms, self.local_ts())
        if kind == "cancel":
            _, order, error = item
            if error is None:
                self._expect_report(order)
            return self.exchange.on_cancel_answer(order, error, self.local_ts())
        if kind == "amend":
            self.sending.discard(item[1].client_id)
            return self.exchange.on_amend_answer(*item[1:], self.local_ts())
        if kind == "sent":
            _, order, latency_ms = item
            return [Event("order_sent", self.local_ts(), order.symbol, {
                "latency_ms": round(latency_ms, 3), "manual": order.manual, "_client_id": order.client_id})]
        if kind == "system":
            _, name, fields = item
            return [system_event(name, fields, self.local_ts())]
        if kind == "snapshot":
            _, symbol, snap = item
            self.snapshot_pending.discard(symbol)
            return [snapshot_event(symbol, snap, self.local_ts())]
        return []

    def put(self, item: tuple) -> None:
        """Hand an item to the engine's loop (called by streams and request tasks)."""
        self.queue.put_nowait(item)

    def _expect_report(self, order: LiveOrder) -> None:
        """An answer shows the exchange acted on `order`: the user stream must report it soon."""
        for stream in getattr(self, "streams", ()):
            expect = getattr(stream, "expect", None)
            if expect is not None:
                expect(self.exchange.exchange_id(order.client_id))

    def found(self, make):
        """A reconciliation's finding (`make()` -> its events, worked out when processed):
        processed at once before the loop runs (start-up), else queued as an input like
        any other; returns its events, or a future of them."""
        if not self.looping:
            events = make()
            for event in events:
                self.process(event)
            return events
        done = asyncio.get_running_loop().create_future()
        self.put(("found", make, done))
        return done

    # ------------------------------------------------------------ orders out
    def send_outbox(self) -> int:
        """Send every order and cancel the engine queued: a new order is written to an
        order connection at once when it can be (`send_order_now`); each gets a task
        that reads its answer (or sends it). Returns how many still need a loop turn to
        leave."""
        if not self.exchange.outbox:
            return 0
        outbox, self.exchange.outbox = self.exchange.outbox, []
        send_now = getattr(self.client, "send_order_now", None)
        pending = 0
        for what, order in outbox:
            sent = None
            if what == "new":
                decided_ns = self.arrival_ns or self.input_ns or time.time_ns()   # the input it was decided on
                if self.arrival_ns:
                    self.decided_from[order.client_id] = self.arrival_ns   # the market message behind the decision
                    if self.stages is not None:
                        self.stages[order.client_id] = (self.arrival_ns, self.taken_ns, time.time_ns())
                self.sending.add(order.client_id)   # reconciliation leaves it alone until the answer is in
                if send_now is not None:
                    sent = send_now(self.exchange.exchange_id(order.client_id), order.symbol, order.side,
                                    order.type, order.qty, order.price)
                coro = self._send_new(order, sent, decided_ns)
            else:
                coro = self._send_cancel(order) if what == "cancel" else send_amend(self, order)
            pending += sent is None
            task = asyncio.get_running_loop().create_task(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return pending

    async def _send_new(self, order: LiveOrder, sent=None, decided_ns: int = 0) -> None:
        from genesis.live.rest import OrderRejected  # noqa: PLC0415

        started = time.perf_counter()
        self.sending.add(order.client_id)
        reported = []
        if sent is not None:   # written already: its latency is known now
            self._report_sent(order, decided_ns, reported)
        try:
            answer = await self.client.submit(self.exchange.exchange_id(order.client_id), order.symbol, order.side,
                                              order.type, order.qty, order.price, sent=sent)
            self.put(("rest", order, answer, None, False, (time.perf_counter() - started) * 1000))
        except OrderRejected as exc:
            self.put(("rest", order, None, redact(str(exc)), False, (time.perf_counter() - started) * 1000))
        except Exception as exc:  # noqa: BLE001 - gave up or failed oddly: the exchange is asked later
            self.say(f"order {order.client_id}: outcome unknown ({redact(str(exc))}); asking the exchange")
            self.put(("rest", order, None, None, True, (time.perf_counter() - started) * 1000))
            self.reconcile_later(2.0)
        finally:   # `sending` keeps it until the loop takes its answer in (convert)
            self._report_sent(order, decided_ns, reported)

    def _report_sent(self, order: LiveOrder, decided_ns: int, reported: list) -> None:
        """Once per order whose request was written: an `order_sent` input with its latency,
        the event time it waited to be due (a scheduled slice) plus the wall-clock time
        from the input it was decided on (a market message: when it reached the socket;
        else when the loop took the input or command) to its first attempt's write."""
        stamps = getattr(self.client, "first_sent_ns", None)
        written = stamps.pop(self.exchange.exchange_id(order.client_id), None) if stamps is not None else None
        if written is None or reported:
            return
        reported.append(written)
        self.put(("sent", order, order.waited_ms + max(written - decided_ns, 0) / 1e6))

    async def _send_cancel(self, order: LiveOrder) -> None:
        try:
            answer = await self.client.cancel(self.exchange.exchange_id(order.client_id), order.symbol)
            self.put(("cancel", order, None if answer is not None else "unknown order"))
        except Exception as exc:  # noqa: BLE001 - the order's fate comes from the stream or reconciliation
            self.put(("cancel", order, redact(str(exc))))
            self.reconcile_later(2.0)

    def reconcile_later(self, delay_s: float) -> None:
        """Queue a reconciliation after `delay_s` (one pending at a time)."""
        if self.reconcile_pending:
            return
        self.reconcile_pending = True

        def due() -> None:
            self.reconcile_pending = False
            self.put(("reconcile",))
        asyncio.get_running_loop().call_later(delay_s, due)

    @property
    def depth_levels(self) -> int:
        """Levels a side of a REST depth snapshot (genesis.yaml exchange.depth_snapshot_levels,
        read from the configuration in force)."""
        return int(self.engine.config.files.settings.data["exchange"]["depth_snapshot_levels"])

    async def _fetch_snapshot(self, symbol: str) -> None:
        try:
            snap = await self.client.depth_snapshot(symbol, self.depth_levels)
        except Exception as exc:  # noqa: BLE001 - any failure: ask again on the next gap
            self.snapshot_pending.discard(symbol)
            self.say(f"depth snapshot for {symbol} failed: {redact(str(exc))}")
            return
        self.put(("snapshot", symbol, snap))

    # ------------------------------------------------------------ phases
    def recover(self) -> int:
        """Read the run's input log back through the engine, sending nothing: the
        segments after the snapshot the session restored, else the whole log."""
        count = 0
        restored = self.session.restored
        self.engine.quiet = True   # its notifications were sent before the restart
        try:
            for event in read_inputs(self.log_path, first=restored.segment if restored is not None else 0):
                self.process(event, record=False)
                count += 1
        finally:
            self.engine.quiet = False
        return count

    def adopt_market_rules(self) -> None:
        """Trade by the symbol rules the exchange announced when the client started (its
        exchangeInfo), recorded beside the input log before the first input; a continued
        run reads back the ones it started with (genesis/live/marketrules.py).
        UnlistedSymbols names a configured symbol the exchange does not list."""
        where = f"the exchange at {self.client.rest_url}" if hasattr(self.client, "rest_url") else "the exchange"
        info = run_rules(self.log_path, getattr(self.client, "markets", None), self.symbols, where)
        if info is not None:
            adopt(self.engine.markets, info)

    async def load_start_balances(self) -> None:
        """The account's balances when the run began (kept beside the log): what
        reconciliation measures Genesis's own fills against. A dry run's are the paper
        exchange's (nothing is asked of the exchange)."""
        if self.paper:
            self.start_balances = dict(self.exchange.balances)
            return
        path = self.log_path.with_suffix(".start.json")
        if path.exists():
            kept = json.loads(path.read_text(encoding="utf-8"))
            self.start_balances = kept["balances"]
            self._follow_trades_from(kept.get("trades_from") or {})
            return
        totals = {asset: free + locked for asset, (free, locked) in (await self.client.balances()).items()}
        # the account's trades so far are in those balances: external ones are looked for after
        # them (read after the balances, so that a trade in between is counted once, in them)
        cursors = await trade_cursors(self.client, self.symbols)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"balances": totals, "trades_from": cursors}), encoding="utf-8")
        os.replace(tmp, path)
        self.start_balances = totals
        self._follow_trades_from(cursors)

    def _follow_trades_from(self, cursors: dict) -> None:
        """Start reading myTrades for external fills at `cursors` ({symbol: trade id}), or
        later where the rebuilt state already has (its reconciliations moved them on)."""
        for symbol, first in cursors.items():
            self.exchange.trades_from[symbol] = max(int(first), self.exchange.trades_from.get(symbol, 0))

    def clock_inputs(self) -> list:
        """A `clock` input when a planned slice or an execution algorithm's wake is due and
        no market data has come to move the engine's clock (a quiet symbol, a dropped
        stream): logged like any input, so a recovery replays the same decisions."""
        due = self.engine.next_due()
        now = self.local_ts()
        return [Event("clock", now, "", {})] if due is not None and due <= now else []

    async def seed_volume_profile(self) -> None:
        """VWAP's volume profile (genesis/engine/volume.py) starts from the exchange's recent
        1-minute klines of each symbol, as one `volume_profile` input per symbol: logged,
        so a recovery rebuilds the same profile. Skipped when no tier enables VWAP. The
        symbols' klines are asked for PROFILE_FETCHES_AT_ONCE symbols at a time (each
        symbol's pages in turn; the weight gate paces them all), and the inputs are
        processed in the configuration's symbol order once all have answered."""
        tiers = self.engine.config.tiers
        if not any(t["execution"]["vwap"]["enabled"] for t in tiers.values()):
            return
        at_once = asyncio.Semaphore(PROFILE_FETCHES_AT_ONCE)

        async def one(symbol: str) -> list | None:
            async with at_once:
                return await self._recent_volumes(symbol)

        profiles = await asyncio.gather(*(one(symbol) for symbol in self.symbols))
        for symbol, candles in zip(self.symbols, profiles):
            if candles:
                self.process(Event("volume_profile", self.local_ts(), symbol, {"_candles": candles}))

    async def _recent_volumes(self, symbol: str) -> list | None:
        """[open time, volume] of `symbol`'s closed 1-minute klines over the profile's
        days; None (said) when the exchange could not give them."""
        minutes = PROFILE_DAYS_KEPT * MINUTES_PER_DAY
        rows: list = []
        end = None
        try:
            while len(rows) < minutes:
                page = await self.client.klines(symbol, "1m", 1000, end)
                if not page:
                    break
                rows[:0] = page
                end = int(page[0][0]) - 1
                if len(page) < 1000:
                    break
        except Exception as exc:  # noqa: BLE001 - the profile is a refinement: VWAP falls back to even slices
            self.say(f"volume profile of {symbol} not loaded ({redact(str(exc))}); VWAP slices evenly until "
                     "enough candles have been seen")
            return None
        return [[int(r[0]), float(r[5])] for r in rows[:-1]]   # the last kline is still open

    async def reconcile(self) -> dict:
        """Bring the engine in line with the exchange (see genesis/live/reconcile.py); a dry
        run has nothing on the exchange to reconcile with."""
        if self.paper:
            return {}
        # its findings are inputs: queued between the loop's other inputs (never holding them up)
        # once the loop runs, each worked out against the state when it is processed
        found = await reconcile(self.exchange, self.client, self.found, self.local_ts,
                                self.start_balances, self.symbols, in_flight=self.sending)
        done = self.found(lambda: [Event("reconciled", self.local_ts(), "", dict(found))])   # replays alike
        if not isinstance(done, list):
            await done
        self.reconciled = {k: v for k, v in found.items() if not k.startswith("_")}
        if self.session.journal.writer is None:
            self.session.journal.flush()   # the first, before trading starts: written before it goes on
        else:   # in the loop, never wait on the journal: a locked one would stall trading
            self._flush_in_background()
        return self.reconciled

    async def run(self) -> None:
        """Recover, reconcile, then trade until `stop()`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.adopt_market_rules()   # before anything is replayed or processed
        await self.load_start_balances()
        quote = self.start_balances.get("USDT", 0.0)
        if self.engine.stats.events == 0:
            self.engine.account = Account(quote, 0, self.engine.account.settings)
            self.session.starting_equity = quote
        if describe(self.session.restored):
            self.say(describe(self.session.restored))
        recovered = self.recover()
        journal_ = self.session.journal
        if journal_.seq < journal_.skip_until:
            raise RecoveryFailed(f"the input log {self.log_path} reproduces {journal_.seq} of the {journal_.skip_until} "
                                 "journal entries of this run (was it moved or cut?); nothing was sent")
        self.log = InputLog(self.log_path)
        self.exchange.live = True
        summary = await self.reconcile()
        await self.seed_volume_profile()
        self.say(f"dry run: {recovered} recorded inputs replayed; orders fill on paper against the live book"
                 if self.paper else f"live: {recovered} recorded inputs replayed; reconciled {summary}")
        if self.session.snapshots is not None:
            self.session.snapshots.prepare()   # the first snapshot then does not stop the loop to index
        gc.collect()
        gc.freeze()   # what start-up built (config, markets, ccxt, the rebuilt state) is never scanned again
        # automatic collection would stop whatever allocates at the threshold, often a
        # decision half-way to its order: the loop collects between inputs instead
        gc.disable()
        # the journal writer and the worker threads hold the GIL for up to the switch
        # interval (5 ms by default) when a market message wakes the loop: 0.1 ms bounds it
        sys.setswitchinterval(LIVE_SWITCH_INTERVAL_S)
        self.send_outbox()
        journal = self.session.journal
        journal.queue_command("connect", {})
        market = self.market_stream_factory(self)
        user = None if self.paper else self.user_stream_factory(self)   # a dry run has no account
        self.streams = tuple(stream for stream in (market, user) if stream is not None)
        for stream in self.streams:
            task = asyncio.get_running_loop().create_task(stream.run())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        next_poll = next_reload = next_status = next_clock = next_flush = next_publish = 0.0
        loop = asyncio.get_running_loop()
        journal.use_writer_thread()
        journal.on_write_failed = self._on_write_failed(loop)
        if self.watch is not None:
            self.watch.slowest_write = journal.take_slowest_write_ms
        storage = self.engine.config.files.settings.data["storage"]
        self.flush_s = float(storage["flush_interval_ms"]) / 1000.0
        # a tick item wakes the loop for its periodic duties; waiting on the queue alone
        # (not wait_for, which wraps the wait in a task) wakes it one loop turn after a
        # market message arrives
        interval = min(self.poll_s, self.flush_s)
        due = [loop.time() + interval]

        def tick() -> None:
            if self.watch is not None:   # how late the loop got to a timer: its lag
                self.watch.late(loop.time() - due[0])
            if not self.stopping.is_set():
                self.queue.put_nowait(_TICK)
                due[0] = loop.time() + interval
                self.ticker = loop.call_later(interval, tick)
        self.ticker = loop.call_later(interval, tick)
        self.looping = True   # from here a reconciliation's findings are queued inputs
        try:
            while not self.stopping.is_set():
                item = await self.queue.get()
                while item is not None:
                    self.arrival_ns, self.input_ns = 0, time.time_ns()
                    if item is _TICK:
                        events = self.clock_inputs()
                    elif item[0] == "reconcile":
                        self._reconcile_beside()   # its findings come back through the queue
                        events = []
                    else:
                        try:
                            events = self.convert(item)
                        except BadMessage as exc:
                            self.bad_messages += 1   # counted and said, never fatal; the rest flows on
                            self.say(f"malformed exchange message skipped ({self.bad_messages} so far): {exc}")
                            events = []
                    for event in events:
                        began = time.perf_counter()
                        if event.ts < self.engine.now:
                            event.ts = self.engine.now
                        self.log.write(event)
                        self.exchange.apply(event)
                        self.engine.begin(event)
                        try:
                            if self.send_outbox():
                                # the orders this input decided leave now, before the engine's
                                # book-keeping of them (nothing touches the engine meanwhile)
                                await asyncio.sleep(0)
                        finally:
                            self.engine.complete()
                        _after_event(self.session, self.say)
                        if self.watch is not None:
                            self.watch.event_seconds.observe(time.perf_counter() - began)
                            latency_ms = event.fields["latency_ms"] if event.kind == "order_ack" else 0.0
                            if latency_ms > 0:   # 0: an order taken in by reconciliation
                                self.watch.order_seconds.observe(latency_ms / 1000.0)
                    if item[0] == "found" and not item[2].done():
                        item[2].set_result(events)   # the reconciliation works out its next finding
                    if self.send_outbox():
                        await asyncio.sleep(0)   # let the request leave before the next input is processed
                    item = self.queue.get_nowait() if not self.queue.empty() else None
                self.send_outbox()
                self._collect_garbage()
                for symbol in sorted(self.exchange.snapshot_wanted - self.snapshot_pending):
                    self.snapshot_pending.add(symbol)
                    task = asyncio.get_running_loop().create_task(self._fetch_snapshot(symbol))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                self.exchange.snapshot_wanted.clear()
                wall = time.monotonic()
                if self.session.snapshots is not None and self.session.snapshots.due():
                    self._snapshot()
                # journal I/O runs on the journal's writer thread and in worker threads: the
                # event loop stays free for market data and orders
                if wall >= next_flush:   # decisions and fills reach the journal within storage.flush_interval_ms
                    next_flush = wall + self.flush_s
                    self._flush_in_background()
                if wall >= next_poll and self.polling is None:
                    next_poll = wall + self.poll_s
                    self.polling = loop.run_in_executor(None, self._poll_database)
                if self.polling is not None and self.polling.done():
                    try:
                        queued = self.polling.result()
                    except Exception as exc:  # noqa: BLE001 - the journal database is busy: next poll
                        self.say(f"journal poll failed: {exc}")
                        queued = False
                    self.polling = None
                    if queued:
                        self.arrival_ns, self.input_ns = 0, time.time_ns()   # their orders are decided now
                        _apply_queued_commands(self.session, self.say)
                        self.send_outbox()
                if wall >= next_reload and self.config_root is not None and self.watching is None:
                    next_reload = wall + 1.0
                    self.watching = loop.run_in_executor(None, snapshot, self.config_root)
                if self.watching is not None and self.watching.done():
                    files = self.watching.result()
                    self.watching = None
                    if files != self.session.config_files:
                        reload_config(self.session, self.config_root, self.say)
                if wall >= next_clock and hasattr(self.client, "sync_clock"):
                    next_clock = wall + 60.0
                    task = asyncio.get_running_loop().create_task(self.client.sync_clock())
                    self.tasks.add(task)
                    task.add_done_callback(self._clock_synced)
                if self.status is not None and wall >= next_status:
                    next_status = wall + 0.5
                    self.status(self.engine, False)
                if wall >= next_publish:
                    next_publish = wall + STATUS_EVERY_S
                    publish_status(self.engine)
        finally:
            gc.enable()
            self.ticker.cancel()
            for stream in self.streams:
                stream.stop()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _reconcile_beside(self) -> None:
        """Start a reconciliation as a task beside the loop, which goes on taking inputs
        and operator commands (its findings come back as inputs); one at a time: one asked
        for while it runs follows it."""
        if self.reconciling is not None:
            self.reconcile_again = True
            return

        async def reconciling() -> None:
            try:
                again = True
                while again and not self.stopping.is_set():
                    self.reconcile_again = False
                    try:
                        await self.reconcile()
                    except ExchangeError as exc:   # try again shortly; trading goes on meanwhile
                        self.say(f"reconciliation failed ({redact(str(exc))}); trying again in 5 s")
                        self.reconcile_later(5.0)
                    except Exception as exc:  # noqa: BLE001 - an odd answer: said, never a traceback
                        self.say(f"reconciliation failed ({type(exc).__name__}: {redact(str(exc))[:200]}); "
                                 "trying again in 5 s")
                        self.reconcile_later(5.0)
                    again = self.reconcile_again
            finally:
                self.reconciling = None

        task = asyncio.get_running_loop().create_task(reconciling())
        self.reconciling = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _snapshot(self) -> None:
        """Snapshot the run between two inputs: the input log begins a new segment, which
        is where a recovery from this snapshot starts reading; segments no kept snapshot
        needs are compressed, and removed after recovery.input_log_retention, off the loop."""
        segment = self.log.rotate()
        if not self.session.snapshots.take(self.engine.stats.events, segment):
            return
        retention = self.engine.config.files.settings.data["recovery"]["input_log_retention"]
        retention_s = parse_duration(retention) if retention else None
        journal, base = self.session.journal, self.log_path

        def compact_old() -> None:
            kept = journal.snapshots()   # the one just taken may not be stored yet: the older ones decide
            if kept:
                compact(base, min(s.segment for s in kept), retention_s)

        task = asyncio.get_running_loop().run_in_executor(None, compact_old)
        self.tasks.add(task)
        task.add_done_callback(self._compacted)

    def _compacted(self, task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.say(f"old input-log segments could not be compressed: {task.exception()}")

    def _collect_garbage(self) -> None:
        """Run the garbage collector here, between inputs, when as many objects have
        accumulated as would have started an automatic collection; like the automatic
        one, every 10th collection includes the middle generation, every 100th all."""
        if gc.get_count()[0] < GC_YOUNG_THRESHOLD:
            return
        self.gc_runs += 1
        gc.collect(2 if self.gc_runs % 100 == 0 else 1 if self.gc_runs % 10 == 0 else 0)

    def _flush_in_background(self) -> None:
        """Hand what is buffered to the journal's writer thread (a failure comes back
        through `_write_failed`)."""
        self.session.journal.flush_later()

    def _clock_synced(self, task) -> None:
        """A clock sync ended: one that failed (the exchange unreachable) is said, never a
        traceback; the next one comes a minute later."""
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.say(f"clock sync with the exchange failed ({redact(str(task.exception()))}); trying again in 60 s")

    def _on_write_failed(self, loop):
        """The journal's on_write_failed hook: each failure goes to the loop (none once it closed)."""
        def on_write_failed(error: str, duration_ms: float) -> None:
            if not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._write_failed, error, duration_ms)
                except RuntimeError:   # closed meanwhile: the session is over
                    pass
        return on_write_failed

    def _write_failed(self, error: str, duration_ms: float) -> None:
        """A journal write failed (a batch, a checkpoint, a retry, a heartbeat): its rows are
        kept (they go first with the next write), and it is a db_write event with `ok`
        false that the alert rules read. Good writes reach the rules through the health
        probe (the slowest of each period), not one event each."""
        self.say(f"journal write failed ({error}); what was not written is written again")
        self.put(("system", "db_write", {"ok": False, "duration_ms": round(duration_ms, 3)}))

    def _poll_database(self) -> bool:
        """Worker thread: the heartbeat (at most once a second: tools call an engine
        alive for 3 s after a beat), and whether operator commands are waiting."""
        journal = self.session.journal
        now = time.monotonic()
        if now >= self.next_beat:
            self.next_beat = now + HEARTBEAT_S
            journal.beat(int(time.time() * 1000))
        return journal.has_queued_commands()

    def stop(self) -> None:
        """Ask the loop to end after the current input."""
        self.stopping.set()
        self.queue.put_nowait(_TICK)   # wake it if it is waiting

    def close(self, operator_left: bool = True) -> None:
        """Journal the end of the operator's session and flush everything."""
        if operator_left and self.log is not None:   # only a session that got past recovery
            disconnect(self.session)
        self.engine.finish()
        publish_status(self.engine)
        self.session.journal.close()
        if self.log is not None:
            self.log.close()
