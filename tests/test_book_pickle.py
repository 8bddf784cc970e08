"""An order book as a snapshot pickles it (levels packed as doubles, the sorted price
lists rebuilt) comes back equal in every field, dict order included, and goes on
exactly as the original under the same further updates."""
from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.engine.book import OrderBook

PRICES = [0.1, 99.0, 99.5, 100.0, 100.01, 101.5, 65012.37, 1e-8]
QTYS = [0.0, 0.0, 1.0, 2.5, 0.00012345, 3.0]
levels = st.lists(st.tuples(st.sampled_from(PRICES), st.sampled_from(QTYS)), max_size=6)
op = st.one_of(
    st.tuples(st.just("diff"), st.integers(-2, 3), st.integers(1, 3), levels, levels),
    st.tuples(st.just("defer"), st.integers(-2, 3), st.integers(1, 3), levels, levels),
    st.tuples(st.just("snap"), st.integers(-2, 2), levels, levels),
    st.tuples(st.just("ticker"), st.sampled_from(PRICES), st.sampled_from(QTYS)),
)

SLOTS = OrderBook.__slots__


def fields(b: OrderBook) -> dict:
    """Every slot, dicts as their items in order (equal dicts may differ in order)."""
    out = {}
    for name in SLOTS:
        value = getattr(b, name)
        out[name] = list(value.items()) if isinstance(value, dict) else value
    out["_buffer"] = (list(b._buffer), b._buffer.maxlen)
    return out


def play(b: OrderBook, ops, head: list) -> None:
    for o in ops:
        if o[0] in ("diff", "defer"):
            _, gap, n, bids, asks = o
            first = head[0] + gap
            last = first + n
            head[0] = max(head[0], last)
            if o[0] == "diff":
                b.catch_up()
                b.apply_diff(first, last, bids, asks)
            else:
                b.defer_diff(first, last, bids, asks)
        elif o[0] == "snap":
            _, offset, bids, asks = o
            b.apply_snapshot(head[0] + offset, bids, asks)
        else:
            _, price, qty = o
            b.apply_ticker(price, qty, price * 1.001, qty)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=25), st.lists(op, max_size=10), st.integers(1, 5))
def test_a_pickled_book_is_the_same_book(before, after, buffer_limit):
    book = OrderBook("BTCUSDT", buffer_limit=buffer_limit)
    head = [1000]
    play(book, before, head)
    copy = pickle.loads(pickle.dumps(book, protocol=pickle.HIGHEST_PROTOCOL))
    assert fields(copy) == fields(book)
    head_copy = list(head)
    play(book, after, head)
    play(copy, after, head_copy)
    assert fields(copy) == fields(book)
    assert (copy.best_bid(), copy.best_ask(), copy.levels("buy", 5), copy.levels("sell", 5)) == \
        (book.best_bid(), book.best_ask(), book.levels("buy", 5), book.levels("sell", 5))


def test_the_levels_are_packed_not_pickled_one_by_one():
    """A book of 2,000 levels a side pickles to packed doubles: about 16 bytes a level,
    where pickling each price and quantity as an object takes about twice that."""
    book = OrderBook("BTCUSDT")
    bids = [(60_000.0 - i * 0.01, 0.001 * (i + 1)) for i in range(2000)]
    asks = [(60_000.01 + i * 0.01, 0.002 * (i + 1)) for i in range(2000)]
    book.apply_snapshot(1, bids, asks)
    blob = pickle.dumps(book, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < 4000 * 16 + 2000
    assert pickle.loads(blob).levels("sell", 3) == asks[:3]
