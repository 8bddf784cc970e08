"""OrderBook: Binance diff-depth sync, deletes, gaps, walking the book, ticker fallback."""
from __future__ import annotations

import pytest

from genesis.engine.book import OrderBook
from genesis.engine.events import Event


def snapshot(book: OrderBook, last_id: int = 100) -> None:
    book.apply_snapshot(last_id,
                        [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)],
                        [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0)])


def test_snapshot_sets_levels_and_best_prices():
    b = OrderBook("BTCUSDT")
    assert b.best_bid() is None and b.best_ask() is None and b.source == ""
    snapshot(b)
    assert b.synced and b.source == "depth" and b.last_update_id == 100
    assert b.best_bid() == 100.0 and b.best_ask() == 101.0
    assert b.levels("bid", 2) == [(100.0, 1.0), (99.0, 2.0)]
    assert b.levels("asks", 5) == [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0)]
    assert b.levels("buy", 0) == []
    assert b.depth() == (3, 3)


def test_pre_snapshot_diffs_are_buffered_and_replayed():
    b = OrderBook("BTCUSDT")
    # the real capture: diffs first, the REST snapshot a few lines later
    assert not b.apply_diff(90, 95, [(100.0, 9.0)], [])              # u <= L: dropped at replay
    assert not b.apply_diff(96, 100, [(97.0, 9.0)], [])              # u == L: dropped
    assert not b.apply_diff(101 - 3, 103, [(100.0, 5.0)], [(101.0, 0.0)])   # U <= L+1 <= u
    assert not b.apply_diff(104, 106, [], [(101.5, 4.0)])
    assert b.buffered == 4 and not b.synced and b.best_bid() is None
    snapshot(b, 100)
    assert b.synced and b.buffered == 0 and b.gaps == 0
    assert b.last_update_id == 106
    assert b.dropped == 2
    assert b.levels("bid", 3) == [(100.0, 5.0), (99.0, 2.0), (98.0, 3.0)]   # 97 never applied
    assert b.levels("ask", 2) == [(101.5, 4.0), (102.0, 2.0)]            # 101 deleted
    # live diffs continue the sequence
    assert b.apply_diff(107, 107, [(100.5, 1.0)], [])
    assert b.best_bid() == 100.5 and b.last_update_id == 107


def test_buffer_is_bounded_keeping_the_newest():
    b = OrderBook("BTCUSDT", buffer_limit=1000)
    for i in range(1500):
        b.apply_diff(i * 2 + 1, i * 2 + 2, [(50.0, float(i + 1))], [])
    assert b.buffered == 1000
    b.apply_snapshot(2 * 1499, [(49.0, 1.0)], [(51.0, 1.0)])   # only the last diff is newer
    assert b.synced and b.last_update_id == 3000
    assert b.levels("bid", 2) == [(50.0, 1500.0), (49.0, 1.0)]


def test_deletes_move_the_best_price():
    b = OrderBook("BTCUSDT")
    snapshot(b)
    assert b.apply_diff(101, 101, [(100.0, 0.0)], [(101.0, 0.0), (104.0, 0.0)])  # 104 absent: no-op
    assert b.best_bid() == 99.0 and b.best_ask() == 102.0
    assert b.apply_diff(102, 103, [(99.0, 0.0), (98.0, 0.0)], [])
    assert b.best_bid() is None and b.levels("bid", 5) == []
    assert b.apply_diff(104, 104, [(95.0, 1.5), (96.0, 0.5)], [(102.0, 0.25)])
    assert b.best_bid() == 96.0 and b.levels("ask", 1) == [(102.0, 0.25)]
    assert b.depth() == (2, 2)


def test_duplicate_is_dropped_and_gap_loses_sync_until_next_snapshot():
    b = OrderBook("BTCUSDT")
    snapshot(b)
    assert b.apply_diff(101, 105, [(100.0, 2.0)], [])
    assert not b.apply_diff(101, 105, [(100.0, 7.0)], [])      # duplicate
    assert b.levels("bid", 1) == [(100.0, 2.0)] and b.dropped == 1
    assert not b.apply_diff(107, 110, [(100.0, 3.0)], [])      # 106 missing
    assert not b.synced and b.gaps == 1
    assert b.best_bid() is None and b.best_ask() is None       # no ticker: nothing known
    assert not b.apply_diff(111, 112, [(100.0, 4.0)], [])      # buffered for the resync
    b.apply_snapshot(110, [(100.0, 3.0)], [(101.0, 1.0)])
    assert b.synced and b.last_update_id == 112 and b.levels("bid", 1) == [(100.0, 4.0)]
    assert b.gaps == 1


def test_first_diff_after_snapshot_must_straddle():
    b = OrderBook("BTCUSDT")
    snapshot(b, 100)
    assert not b.apply_diff(102, 104, [], [])                  # 101 missing
    assert not b.synced and b.gaps == 1


def test_overlapping_diff_is_applied():
    b = OrderBook("BTCUSDT")
    snapshot(b)
    assert b.apply_diff(101, 105, [(100.0, 2.0)], [])
    assert b.apply_diff(104, 108, [(100.0, 3.0)], [])          # U <= last+1 <= u
    assert b.last_update_id == 108 and b.levels("bid", 1) == [(100.0, 3.0)]


def test_walk_buy_and_sell_across_levels():
    b = OrderBook("BTCUSDT")
    snapshot(b)
    filled, vwap, worst = b.walk("buy", 2.5)
    assert filled == 2.5 and worst == 102.0
    assert vwap == pytest.approx((1.0 * 101 + 1.5 * 102) / 2.5)
    filled, vwap, worst = b.walk("sell", 4.0)
    assert filled == 4.0 and worst == 98.0
    assert vwap == pytest.approx((1.0 * 100 + 2.0 * 99 + 1.0 * 98) / 4.0)
    # more than the book holds: only the visible quantity
    assert b.walk("buy", 10.0) == (6.0, pytest.approx((101 + 204 + 309) / 6.0), 103.0)
    # a limit price stops the walk
    assert b.walk("buy", 10.0, limit=102.0) == (3.0, pytest.approx((101 + 204) / 3.0), 102.0)
    assert b.walk("sell", 1.0, limit=100.5) == (0.0, None, None)
    assert b.walk("buy", 0.0) == (0.0, None, None)
    # walking does not change the book unless asked to
    assert b.levels("ask", 3) == [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0)]
    with pytest.raises(ValueError):
        b.walk("bid", 1.0)


def test_walk_consume_takes_liquidity_until_the_level_updates():
    b = OrderBook("BTCUSDT")
    snapshot(b)
    assert b.walk("buy", 1.5, consume=True)[0] == 1.5
    assert b.levels("ask", 2) == [(102.0, 1.5), (103.0, 3.0)]
    b.walk("buy", 0.1 + 0.2, consume=True)       # float residue must not leave a dust level
    b.walk("buy", 1.2, consume=True)
    assert b.levels("ask", 1) == [(103.0, 3.0)]
    assert b.apply_diff(101, 101, [], [(102.0, 2.0)])    # the exchange restates the level
    assert b.best_ask() == 102.0


def test_ticker_is_the_book_without_depth():
    b = OrderBook("ETHUSDT")
    b.apply_ticker(2000.0, 1.5, 2000.5, 0.8)
    assert b.source == "ticker"
    assert b.best_bid() == 2000.0 and b.best_ask() == 2000.5
    assert b.levels("bid", 5) == [(2000.0, 1.5)] and b.levels("ask", 5) == [(2000.5, 0.8)]
    assert b.walk("buy", 2.0) == (0.8, 2000.5, 2000.5)
    assert b.walk("sell", 1.0) == (1.0, 2000.0, 2000.0)
    assert b.walk("buy", 2.0, limit=2000.4) == (0.0, None, None)
    assert b.walk("buy", 0.5, consume=True) == (0.5, 2000.5, 2000.5)
    assert b.levels("ask", 1) == [(2000.5, pytest.approx(0.3))]


def test_synced_depth_wins_over_ticker_and_ticker_returns_after_a_gap():
    b = OrderBook("BTCUSDT")
    b.apply_ticker(99.5, 1.0, 100.5, 1.0)
    snapshot(b)
    b.apply_ticker(99.7, 1.0, 100.3, 1.0)
    assert b.best_bid() == 100.0 and b.best_ask() == 101.0
    b.apply_diff(105, 106, [], [])                              # gap
    assert b.source == "ticker" and b.best_bid() == 99.7 and b.best_ask() == 100.3
    assert b.walk("sell", 5.0) == (1.0, 99.7, 99.7)


def test_on_event_dispatches_market_events():
    b = OrderBook("BTCUSDT")
    b.on_event(Event("depth", 1, "BTCUSDT", {"_first_id": 99, "_last_id": 101,
                                             "_bids": [(100.0, 4.0)], "_asks": []}))
    b.on_event(Event("depth", 2, "BTCUSDT", {"_snapshot": True, "_last_update_id": 100,
                                             "_bids": [(100.0, 1.0)], "_asks": [(101.0, 1.0)]}))
    assert b.synced and b.levels("bid", 1) == [(100.0, 4.0)]
    b.on_event(Event("book_ticker", 3, "BTCUSDT", {"bid": 1.0, "bid_qty": 1.0, "ask": 2.0, "ask_qty": 1.0}))
    assert b.best_bid() == 100.0
    assert not b.on_event(Event("trade", 4, "BTCUSDT", {"price": 1.0}))
