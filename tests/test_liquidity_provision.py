"""Liquidity provision on the real capture, through the real engine and paper exchange on
the Strategist tier: quotes rest post-only at their distances and sizes, are replaced
when old and when the reference moves, fill as maker with the maker fee, keep the
inventory under its maximum while the skew pulls it toward the target, and are pulled
while the market state says so and while trading is halted. Adverse selection (the mid's
move against each fill a few seconds later) is measured on the full capture."""
from __future__ import annotations

import bisect
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from genesis.config.checks import check_config
from genesis.engine.engine import Engine
from genesis.engine.feeds import open_feed, sample_paths, shared_data_dir
from genesis.engine.markets import Markets
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]
ETH = "ETHUSDT"
SID = "eth_market_making"
EQUITY = 10_000.0
SAMPLE = [p for p in sample_paths() if p.name.startswith("ethusdt")]
SHARED = shared_data_dir()
FULL = sorted((SHARED / "binance_spot_ws_raw").glob("ethusdt_*.gz")) if SHARED else []
needs_full = pytest.mark.skipif(not FULL, reason="the full capture (../shared/data/binance_spot_ws_raw) is absent")
# tight quotes, so that the few minutes of the capture fill some of them
PARAMS = {"price_source": "microprice", "spread_bps": 2, "level_multipliers": [1, 2, 3],
          "level_sizes_pct": [40, 35, 25], "size_pct": 2, "min_spread_bps": 1, "refresh": "10s",
          "refresh_move_bps": 2, "fill_delay": "2s", "target_base_pct": 1, "inventory_limit_pct": 4,
          "skew_bps_per_pct": 1.0, "size_skew_per_pct": 0.2}
MAKER_FEE_PCT, TAKER_FEE_PCT = 0.02, 0.1
BPS = 1e4


def config(tmp_path: Path, **params):
    """The shipped configuration with only the market maker enabled (these parameters
    over its own) and a maker fee unlike the taker fee."""
    root = tmp_path / "config"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(ROOT / folder, root / folder)
    data = yaml.safe_load((root / "strategies.yaml").read_text())
    for inst in data["strategies"]:
        inst["enabled"] = inst["id"] == SID
        if inst["enabled"]:
            inst["params"] = {**PARAMS, **params}
    (root / "strategies.yaml").write_text(yaml.safe_dump(data))
    settings = yaml.safe_load((root / "genesis.yaml").read_text())
    settings["paper"].update(maker_fee_pct=MAKER_FEE_PCT, taker_fee_pct=TAKER_FEE_PCT)
    (root / "genesis.yaml").write_text(yaml.safe_dump(settings))
    return check_config(root)


@dataclass
class Run:
    """What a replay showed: the engine's journal entries, each with the input event
    being processed, the book tickers, the inventory and the strategy's resting quotes."""

    engine: Engine
    entries: list = field(default_factory=list)        # (input event, (ts, kind, rule, symbol, data))
    tickers: list = field(default_factory=list)        # (ts, bid, bid_qty, ask, ask_qty)
    inventory: list = field(default_factory=list)      # (ts, holding value as % of equity)
    resting: list = field(default_factory=list)        # (ts, [RestingOrder]) after each ticker
    rested: dict = field(default_factory=dict)         # client id -> the RestingOrder first seen (exchange's price)
    books: dict = field(default_factory=dict)          # id(input event) -> the exchange's (bid, ask) as it quoted
    held: dict = field(default_factory=dict)           # id(input event) -> base held as it quoted

    def of(self, kind: str) -> list:
        return [(ev, e) for ev, e in self.entries if e[1] == kind]

    def mid_at(self, ts: int) -> float:
        """The mid of the last ticker at or before ts."""
        i = bisect.bisect_right(self.tickers, (ts, math.inf)) - 1
        _, bid, _, ask, _ = self.tickers[max(i, 0)]
        return (bid + ask) / 2


def replay(cfg, files, start_usd: float = 0.0, during=None) -> Run:
    """Run the capture through a Strategist engine; `start_usd`: a market buy at the
    first ticker (inventory to start from); `during(engine, event)`: called before each event."""
    engine = Engine(cfg, "strategist", starting_equity=EQUITY)
    run = Run(engine)
    current: list = [None]
    engine.observers.append(lambda *entry: run.entries.append((current[0], entry)))
    for event in open_feed(files):
        if during is not None:
            during(engine, event)
        current[0] = event
        seen, held = len(run.entries), engine.view.holding(ETH)
        engine.process(event)
        if event.kind != "book_ticker":
            continue
        if any(e[1] == "order" for _, e in run.entries[seen:]):   # the event stays referenced: its id is not reused
            run.books[id(event)] = engine.view.best(ETH)
            run.held[id(event)] = held
        f = event.fields
        if start_usd and not run.tickers:
            bought = engine.submit(OrderIntent("test", ETH, "buy", start_usd, f["ask"], "entry", True))
            assert bought.sent, bought.reason
        run.tickers.append((event.ts, f["bid"], f["bid_qty"], f["ask"], f["ask_qty"]))
        run.inventory.append((event.ts, engine.view.holding_value(ETH) / engine.view.equity * 100))
        resting = engine.view.open_orders(SID, ETH)
        run.resting.append((event.ts, resting))
        for quote in resting:
            run.rested.setdefault(quote.client_id, quote)
    engine.finish()
    return run


def microprice(event) -> float:
    f = event.fields
    return (f["bid"] * f["ask_qty"] + f["ask"] * f["bid_qty"]) / (f["bid_qty"] + f["ask_qty"])


def quotes(run: Run) -> list:
    """The strategy's orders (the only post-only ones): (input event, order entry data)."""
    return [(ev, e[4]) for ev, e in run.of("order") if e[4]["type"] == "limit_maker"]


def rounds(run: Run) -> list:
    """The strategy's quote rounds: the orders placed while processing one input event."""
    out: dict = {}
    for ev, order in quotes(run):
        out.setdefault(id(ev), (ev, []))[1].append(order)
    return list(out.values())


def time_weighted(points: list, value) -> float:
    """The time-weighted mean of value(y) over (ts, y) points."""
    total = sum(value(y) * (points[i + 1][0] - t) for i, (t, y) in enumerate(points[:-1]))
    return total / (points[-1][0] - points[0][0])


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The bundled ETH capture with inventory to start from, skew off (the quotes sit
    exactly at their distances and sizes)."""
    cfg = config(tmp_path_factory.mktemp("sample"), skew_bps_per_pct=0, size_skew_per_pct=0)
    return replay(cfg, SAMPLE, start_usd=150)


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory):
    """The full ETH capture (both days) from 1.5% of equity in ETH, target 0.5%: with the
    skew and with none. The rules turn the second day's market state volatile; quotes
    are pulled only in panic and maintenance here, so that both days are quoted."""
    runs = {}
    for name, skew in (("skew", {}), ("none", {"skew_bps_per_pct": 0, "size_skew_per_pct": 0})):
        cfg = config(tmp_path_factory.mktemp(name), target_base_pct=0.5, pull_on_states=["panic", "maintenance"],
                     **skew)
        runs[name] = replay(cfg, FULL, start_usd=150)
    return runs


# ------------------------------------------------------------------ placing
def test_quotes_rest_post_only_at_their_distances_and_sizes_on_the_tick_grid(sample_run):
    market = Markets.load().get(ETH)
    tick, step = market.tick_size, market.step_size
    two_sided = joined = 0
    for event, orders in rounds(sample_run):
        f = event.fields
        ref = microprice(event)
        book_bid, book_ask = sample_run.books[id(event)]
        bids = [o for o in orders if o["side"] == "buy"]
        asks = [o for o in orders if o["side"] == "sell"]
        assert all(o["type"] == "limit_maker" for o in orders)
        for side, placed in (("buy", bids), ("sell", asks)):
            sign = -1 if side == "buy" else 1
            for mult, order in zip(PARAMS["level_multipliers"], placed):
                exact = ref * (1 + sign * PARAMS["spread_bps"] * mult / BPS)
                crosses = exact >= min(f["ask"], book_ask) if side == "buy" else exact <= max(f["bid"], book_bid)
                if crosses:   # post-only would be rejected by the ticker or the exchange's book: join instead
                    joined += 1
                    join = min(f["bid"], book_bid) if side == "buy" else max(f["ask"], book_ask)
                    assert order["limit_price"] == join
                    continue
                assert order["limit_price"] == pytest.approx(exact, rel=1e-12)
                price = sample_run.rested[order["client_id"]].price   # as it rests at the exchange
                assert abs(price / tick - round(price / tick)) < 1e-6, f"{price} is off the tick grid"
                # rounded away from the book by less than a tick (a buy down, a sell up)
                assert 0 <= sign * (price - exact) < tick + 1e-9, (side, mult, price, exact)
        # sizes: each level's share of size_pct of equity; asks offer no more than is held
        size = EQUITY * PARAMS["size_pct"] / 100
        held = sample_run.held[id(event)] * ref
        room = EQUITY * PARAMS["inventory_limit_pct"] / 100 - held
        for placed, total in ((bids, min(size, room)), (asks, min(size, held))):
            if total * min(PARAMS["level_sizes_pct"]) / 100 >= 10:    # every level above the minimum order
                assert len(placed) == len(PARAMS["level_sizes_pct"]), (event.ts, total, placed)
                for share, order in zip(PARAMS["level_sizes_pct"], placed):
                    expected = total * share / 100
                    assert abs(order["qty"] * order["limit_price"] - expected) <= 0.02 * expected + step * ref, \
                        (order, expected)
                    assert sample_run.rested[order["client_id"]].remaining == pytest.approx(order["qty"], abs=step)
        two_sided += bool(bids) and bool(asks)
    assert two_sided >= 5, "too few two-sided quote rounds to judge"
    assert joined <= two_sided, "joining the book is the exception"


def test_every_quote_decided_is_sent(sample_run):
    refused = [e[4] for _, e in sample_run.of("refused") if e[4]["strategy"] == SID]
    assert refused == [], f"{len(refused)} quotes refused, the first: {refused[:1]}"


def test_a_quote_never_crosses_the_book_it_is_placed_in(sample_run):
    rejected = [e for _, e in sample_run.of("order_rejected") if e[4].get("rule") == "exchange"]
    assert rejected == [], rejected[:3]
    for event, orders in rounds(sample_run):
        f = event.fields
        book_bid, book_ask = sample_run.books[id(event)]
        for order in orders:
            price = sample_run.rested[order["client_id"]].price
            if order["side"] == "buy":
                assert price < min(f["ask"], book_ask)
            else:
                assert price > max(f["bid"], book_bid)


# ------------------------------------------------------------------ refreshing
def test_quotes_are_replaced_when_old_and_when_the_reference_moves(sample_run):
    refresh_ms, tolerance = 10_000, PARAMS["refresh_move_bps"]
    placed = {o["client_id"]: (ev, o) for ev, o in quotes(sample_run)}
    fills = sorted(e[0] for _, e in sample_run.of("fill"))
    on_time = early = 0
    for event, entry in sample_run.of("order_canceled"):
        data = entry[4]
        if data["client_id"] not in placed:
            continue
        assert data["by_algorithm"] is True, "a refresh is a planned cancel, not a decision of the moment"
        quoted_event, order = placed[data["client_id"]]
        age_ms = entry[0] - quoted_event.ts
        assert age_ms <= refresh_ms + 1_000, f"{data['client_id']} rested {age_ms} ms"
        if age_ms >= refresh_ms:
            on_time += 1
            continue
        moved = abs(microprice(event) / microprice(quoted_event) - 1) * BPS
        passed = microprice(event) < order["limit_price"] if order["side"] == "buy" \
            else microprice(event) > order["limit_price"]
        filled = any(quoted_event.ts <= t <= entry[0] for t in fills)
        assert moved > tolerance or passed or filled, (data["client_id"], age_ms, moved)
        early += 1
    assert on_time >= 3 and early >= 3, (on_time, early)
    # every replacement placed a new round: the strategy quoted throughout
    quoted = sum(1 for _, resting in sample_run.resting if resting) / len(sample_run.resting)
    assert quoted > 0.9, f"quotes rested after only {quoted:.0%} of the tickers"


# ------------------------------------------------------------------ filling
def test_fills_are_maker_at_the_quote_price_with_the_maker_fee(sample_run):
    placed = {o["client_id"]: o for _, o in quotes(sample_run)}
    fills = [e[4] for _, e in sample_run.of("fill") if e[4]["client_id"] in placed]
    assert len(fills) >= 2, "the quotes should fill on the capture"
    for fill in fills:
        assert fill["maker"] is True
        assert fill["price"] == sample_run.rested[fill["client_id"]].price
        assert fill["fee_usd"] == pytest.approx(fill["notional_usd"] * MAKER_FEE_PCT / 100, abs=1e-8)


# ------------------------------------------------------------------ inventory
@needs_full
def test_inventory_stays_under_its_maximum_and_the_skew_pulls_it_toward_the_target(full_runs):
    limit, target = PARAMS["inventory_limit_pct"], 0.5
    drift = {}
    for name, run in full_runs.items():
        inventory = run.inventory
        peak = max(pct for _, pct in inventory)
        assert peak <= limit * 1.01, f"{name}: inventory reached {peak:.2f}% (limit {limit}%)"
        drift[name] = time_weighted(inventory, lambda pct: abs(pct - target))
        print(f"{name}: inventory {inventory[0][1]:.2f}% -> {inventory[-1][1]:.2f}%, peak {peak:.2f}%, "
              f"mean distance from the {target}% target {drift[name]:.2f} points")
        # no bid ever asked for more than the room left under the limit
        for event, orders in rounds(run):
            bids = sum(o["qty"] * o["limit_price"] for o in orders if o["side"] == "buy")
            i = bisect.bisect_right(inventory, (event.ts, math.inf)) - 1
            held = inventory[max(i, 0)][1] * EQUITY / 100
            assert held + bids <= EQUITY * limit / 100 * 1.01, (event.ts, held, bids)
    assert drift["skew"] < drift["none"] * 0.85, drift


@needs_full
def test_adverse_selection_is_measured_and_within_bounds(full_runs):
    run = full_runs["skew"]
    placed = {o["client_id"] for _, o in quotes(run)}
    after_ms = 5_000
    moves = []
    for _, entry in run.of("fill"):
        fill = entry[4]
        if fill["client_id"] not in placed or entry[0] + after_ms > run.tickers[-1][0]:
            continue
        before, later = run.mid_at(entry[0]), run.mid_at(entry[0] + after_ms)
        against = (before - later) if fill["side"] == "buy" else (later - before)   # > 0: the mid moved against us
        moves.append(against / before * BPS)
    assert len(moves) >= 5, "too few fills to measure adverse selection"
    mean = sum(moves) / len(moves)
    print(f"adverse selection over {len(moves)} fills: mid moved {mean:+.2f} bps against the fill after "
          f"{after_ms // 1000} s (worst {max(moves):+.2f} bps)")
    assert -10 < mean < 10
    assert max(moves) < 50


# ------------------------------------------------------------------ pulling
def test_quotes_are_pulled_while_the_market_state_says_so_and_while_halted(tmp_path):
    cfg = config(tmp_path)
    first = [None]
    windows = {"volatile": (40_000, 70_000), "halted": (100_000, 130_000)}
    done: set = set()

    def during(engine, event):
        first[0] = first[0] or event.ts
        at = event.ts - first[0]
        for name, (start, end) in windows.items():
            if at >= start and (name, "start") not in done:
                done.add((name, "start"))
                if name == "volatile":
                    engine.pin({"market_state": "volatile"})
                else:
                    engine.change_state("hold", "test_halt", rule="test_halt", kind="halt")
            if at >= end and (name, "end") not in done:
                done.add((name, "end"))
                if name == "volatile":
                    engine.pin({"market_state": "normal"})
                else:
                    engine.change_state("release", "test_halt", rule="test_halt")

    run = replay(cfg, SAMPLE, start_usd=150, during=during)
    t0 = first[0]
    for name, (start, end) in windows.items():
        inside = [resting for ts, resting in run.resting if t0 + start + 1_000 <= ts < t0 + end]
        before = [resting for ts, resting in run.resting if t0 + start - 5_000 <= ts < t0 + start]
        after = [resting for ts, resting in run.resting if t0 + end + 1_000 <= ts < t0 + end + 5_000]
        assert inside and all(not r for r in inside), f"{name}: quotes rested while they should be pulled"
        assert any(before) and any(after), f"{name}: the strategy should quote before and after"
        tried = [e for ev, e in run.of("intent") + run.of("refused") if t0 + start + 1_000 <= e[0] < t0 + end]
        assert tried == [], f"{name}: the strategy should not try to quote"
