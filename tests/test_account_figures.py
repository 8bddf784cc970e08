"""Account figures are made again only when something they depend on moved (a fill, a
held symbol's price, a new day, a rebase): after any sequence of those, interleaved with
figures taken at other times, the figures the engine holds equal the ones made afresh
every time; and an engine's figures after a pin is released are its own again."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.config.checks import check_config
from genesis.engine.account import Account
from genesis.engine.engine import Engine
from genesis.engine.events import Event

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = check_config(ROOT).files.settings.data
T0 = 1_722_470_400_000          # 2024-08-01 00:00 UTC
HOUR = 3_600_000

op = st.one_of(
    st.tuples(st.just("price"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.floats(0.5, 2.0)),
    st.tuples(st.just("buy"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.floats(5.0, 80.0)),
    st.tuples(st.just("sell"), st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.floats(0.1, 1.0)),
    st.tuples(st.just("figures"), st.integers(1, 10 * HOUR)),
    st.tuples(st.just("rebase")),
    st.tuples(st.just("day"), st.integers(1, 2)),
)
BASE = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0}


def play(account: Account, o, now: int) -> int:
    kind = o[0]
    if kind == "price":
        account.on_price(o[1], BASE[o[1]] * o[2], now)
    elif kind in ("buy", "sell"):
        symbol = o[1]
        mid = account.mids.get(symbol, BASE[symbol])
        held = account.positions[symbol].qty if symbol in account.positions else 0.0
        qty = o[2] / mid if kind == "buy" else held * o[2]
        if qty > 0:
            account.on_fill(Event("fill", now, symbol, {"side": kind, "qty": qty, "price": mid,
                                                        "notional_usd": qty * mid, "fee_usd": qty * mid * 0.001}),
                            "signal")
    elif kind == "figures":
        now += o[1]
    elif kind == "rebase":
        account.rebase_peak()
    else:
        now = (now // 86_400_000 + o[1]) * 86_400_000 + 1
        account.roll_day(now)
    return now


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=30))
def test_figures_made_when_the_account_moved_equal_figures_made_every_time(ops):
    lazy = Account(1000.0, T0, SETTINGS["account_metrics"])
    eager = Account(1000.0, T0, SETTINGS["account_metrics"])
    held: dict = {}
    now = T0
    for o in ops:
        play(lazy, o, now)
        now = play(eager, o, now)
        held.update(lazy.figures(now))
        assert held == eager.figures(now, full=True)


def test_a_released_pin_gives_the_engine_its_own_figures_back():
    config = check_config(ROOT)
    engine = Engine(config, "sniper")
    engine.process(Event("book_ticker", T0, "BTCUSDT", {"bid": 60_000.0, "bid_qty": 1.0, "ask": 60_000.2,
                                                        "ask_qty": 1.0, "mid": 60_000.1, "spread_bps": 0.03}))
    own = engine.metrics.m["equity_usd"]
    engine.pin({"equity_usd": 5.0})
    engine.process(Event("book_ticker", T0 + 2000, "BTCUSDT", {"bid": 60_000.0, "bid_qty": 1.0, "ask": 60_000.2,
                                                               "ask_qty": 1.0, "mid": 60_000.1, "spread_bps": 0.03}))
    assert engine.metrics.m["equity_usd"] == 5.0
    engine.unpin(["equity_usd"])   # the account itself has not moved since
    engine.process(Event("book_ticker", T0 + 4000, "BTCUSDT", {"bid": 60_000.0, "bid_qty": 1.0, "ask": 60_000.2,
                                                               "ask_qty": 1.0, "mid": 60_000.1, "spread_bps": 0.03}))
    assert engine.metrics.m["equity_usd"] == own
