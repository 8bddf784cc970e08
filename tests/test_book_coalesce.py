"""OrderBook.defer_diff merges deferred diffs' levels and catch_up writes them once: the
sequence state (ids, sync, gaps, drops, the snapshot buffer) after every step, and the
levels and price lists after every read, are exactly as with apply_diff one by one."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.engine import book as book_mod
from genesis.engine.book import OrderBook

PRICES = [99.0, 99.5, 100.0, 100.5, 101.0, 101.5]     # a small grid: prices repeat
QTYS = [0.0, 0.0, 1.0, 2.5, 3.0]                       # 0 deletes a level

levels = st.lists(st.tuples(st.sampled_from(PRICES), st.sampled_from(QTYS)), max_size=6)

# how a diff's ids relate to the newest id seen so far (`head`)
DIFF_KINDS = ["next", "next", "next", "overlap", "stale", "hole"]

op = st.one_of(
    st.tuples(st.just("diff"), st.sampled_from(DIFF_KINDS), st.integers(1, 4), levels, levels),
    st.tuples(st.just("snap"), st.integers(-3, 3), levels, levels),
    st.tuples(st.just("read"), st.integers(0, 5)),
)

READS = [   # every read path catches up
    lambda b: b.catch_up(),
    lambda b: b.best_bid(),
    lambda b: b.best_ask(),
    lambda b: b.levels("ask", 3),
    lambda b: b.depth(),
    lambda b: b.walk("sell", 1.0),
]


def sequence(b: OrderBook) -> dict:
    """What a reader sees between a defer and a catch-up: no levels, no pending work."""
    return {"last_update_id": b.last_update_id, "synced": b.synced, "gaps": b.gaps,
            "dropped": b.dropped, "buffer": list(b._buffer), "buffered": b.buffered,
            "source": b.source}


def state(b: OrderBook) -> dict:
    """Every field the coalescing must leave as one-by-one application does."""
    return {"bids": b._bids, "asks": b._asks, "bid_px": b._bid_px, "ask_px": b._ask_px,
            "pending": (b._pend_bids, b._pend_asks), **sequence(b)}


def diff_ids(kind: str, n: int, head: int) -> tuple[int, int]:
    """(U, u) of a diff of `kind` spanning `n` ids, given the newest id `head`."""
    if kind == "next":
        return head + 1, head + n
    if kind == "overlap":
        return head - n + 1, head + n
    if kind == "stale":
        return head - n - 1, head - 1 + (n % 2)      # u == head is a duplicate
    return head + 2 + n, head + 2 + 2 * n           # a hole


def run(ops, max_pending: int, buffer_limit: int) -> None:
    """Feed `ops` to one book through apply_diff and to another through defer_diff and
    its read paths; compare the sequence state after every step, everything at every
    read and at the end."""
    direct = OrderBook("BTCUSDT", buffer_limit=buffer_limit)
    lazy = OrderBook("BTCUSDT", buffer_limit=buffer_limit)
    saved = book_mod.PENDING_LEVELS_MAX
    book_mod.PENDING_LEVELS_MAX = max_pending
    try:
        head = 1000
        for o in ops:
            if o[0] == "diff":
                _, kind, n, bids, asks = o
                first_id, last_id = diff_ids(kind, n, head)
                head = max(head, last_id)
                direct.apply_diff(first_id, last_id, bids, asks)
                lazy.defer_diff(first_id, last_id, bids, asks)
            elif o[0] == "snap":
                _, offset, bids, asks = o
                direct.apply_snapshot(head + offset, bids, asks)
                lazy.apply_snapshot(head + offset, bids, asks)
            else:
                READS[o[1]](lazy)
                assert state(lazy) == state(direct)
            assert sequence(lazy) == sequence(direct)
            assert len(lazy._pend_bids) + len(lazy._pend_asks) <= max_pending
        lazy.catch_up()
        assert state(lazy) == state(direct)
        assert lazy._bid_px == sorted(lazy._bids) and lazy._ask_px == sorted(lazy._asks)
    finally:
        book_mod.PENDING_LEVELS_MAX = saved


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(op, max_size=40), max_pending=st.sampled_from([1, 2, 3, 5, 4096]),
       buffer_limit=st.sampled_from([2, 1000]))
def test_catch_up_matches_one_by_one(ops, max_pending, buffer_limit):
    run(ops, max_pending, buffer_limit)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.one_of(
    st.tuples(st.just("diff"), st.sampled_from(["next", "next", "overlap", "stale"]),
              st.integers(1, 3), levels, levels),
    st.tuples(st.just("read"), st.integers(0, 5))), min_size=5, max_size=60),
    snap=st.tuples(st.just("snap"), st.integers(-2, 0), levels, levels),
    hole=st.tuples(st.just("diff"), st.just("hole"), st.integers(1, 3), levels, levels),
    at=st.integers(0, 60))
def test_catch_up_matches_one_by_one_around_a_gap(ops, snap, hole, at):
    """A synced book, many coalescable diffs, one hole somewhere among them."""
    ops = [snap] + ops[:at] + [hole] + ops[at:]
    run(ops, 4096, 1000)


def test_concrete_batch_coalesces_to_the_last_quantity():
    direct = OrderBook("BTCUSDT")
    lazy = OrderBook("BTCUSDT")
    diffs = [
        (101, 102, [(100.0, 5.0), (99.0, 0.0)], [(101.0, 2.0)]),
        (103, 104, [(100.0, 0.0)], [(101.5, 1.0)]),                # deletes 100.0
        (103, 104, [(100.0, 9.0)], []),                            # duplicate: dropped
        (104, 106, [(100.0, 7.0), (100.5, 1.0)], [(101.5, 0.0)]),  # overlap: applied
    ]
    for b in (direct, lazy):
        b.apply_snapshot(100, [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)],
                         [(101.0, 1.0), (102.0, 2.0)])
    for d in diffs:
        direct.apply_diff(*d)
        lazy.defer_diff(*d)
    assert lazy._bids == {100.0: 1.0, 99.0: 2.0, 98.0: 3.0}    # nothing applied yet
    assert lazy._pend_bids == {100.0: 7.0, 99.0: 0.0, 100.5: 1.0}   # one update per price
    assert lazy._pend_asks == {101.0: 2.0, 101.5: 0.0}
    assert sequence(lazy) == sequence(direct)
    lazy.catch_up()
    assert state(lazy) == state(direct)
    assert lazy.levels("bid", 5) == [(100.5, 1.0), (100.0, 7.0), (98.0, 3.0)]
    assert lazy.levels("ask", 5) == [(101.0, 2.0), (102.0, 2.0)]
    assert (lazy.last_update_id, lazy.dropped, lazy.gaps) == (106, 1, 0)

    # a hole, then a diff after it: both buffered, the depth levels gone
    hole = (110, 112, [(97.0, 1.0)], [])
    after = (113, 114, [], [(105.0, 1.0)])
    for d in ((107, 107, [(96.0, 1.0)], []), hole, after):
        direct.apply_diff(*d)
        lazy.defer_diff(*d)
    assert state(lazy) == state(direct)       # the hole dropped the pending levels too
    lazy.catch_up()
    assert state(lazy) == state(direct)
    assert not lazy.synced and lazy.gaps == 1 and lazy.last_update_id == 107
    assert list(lazy._buffer) == [hole, after] and lazy._bids == {} and lazy._bid_px == []


def synced_pair() -> tuple[OrderBook, OrderBook]:
    """Two books at the same snapshot: one for apply_diff, one for defer_diff."""
    direct, lazy = OrderBook("BTCUSDT"), OrderBook("BTCUSDT")
    for b in (direct, lazy):
        b.apply_snapshot(100, [(99.0, 1.0)], [(101.0, 1.0)])
    return direct, lazy


def test_sequence_state_between_defers_is_one_by_one():
    """last_update_id, dropped, gaps, synced and the buffer move with each defer, while
    the levels wait for a read."""
    direct, lazy = synced_pair()
    steps = [   # diff, then (last_update_id, dropped, gaps, synced, buffered) after it
        ((101, 103, [(99.0, 2.0)], []), (103, 0, 0, True, 0)),
        ((102, 103, [(99.0, 5.0)], []), (103, 1, 0, True, 0)),     # duplicate u
        ((90, 95, [], [(101.0, 0.0)]), (103, 2, 0, True, 0)),      # stale
        ((103, 105, [(98.0, 1.0)], []), (105, 2, 0, True, 0)),     # overlap
        ((106, 106, [], [(102.0, 3.0)]), (106, 2, 0, True, 0)),
        ((109, 110, [(97.0, 1.0)], []), (106, 2, 1, False, 1)),    # hole
        ((111, 112, [], []), (106, 2, 1, False, 2)),               # buffered
    ]
    for diff, expected in steps:
        direct.apply_diff(*diff)
        lazy.defer_diff(*diff)
        seen = (lazy.last_update_id, lazy.dropped, lazy.gaps, lazy.synced, lazy.buffered)
        assert seen == expected
        assert sequence(lazy) == sequence(direct)
        if lazy.synced:
            assert lazy._bids == {99.0: 1.0}       # not caught up by those reads
    assert state(lazy) == state(direct)


def test_pending_levels_past_the_bound_are_written(monkeypatch):
    monkeypatch.setattr(book_mod, "PENDING_LEVELS_MAX", 4)
    direct, lazy = synced_pair()
    diffs = [(101, 101, [(98.0, 1.0), (97.0, 1.0), (99.0, 0.0)], []),
             (102, 102, [(98.0, 2.0)], [(101.0, 4.0)]),         # 4 pending: at the bound
             (103, 103, [], [(102.0, 1.0)])]                    # 5: written
    for d in diffs:
        direct.apply_diff(*d)
        lazy.defer_diff(*d)
        if d[0] < 103:
            assert lazy._bids == {99.0: 1.0} and lazy._asks == {101.0: 1.0}
    assert lazy._pend_bids == {} and lazy._pend_asks == {}
    assert state(lazy) == state(direct)


def test_default_bound_counts_unique_levels():
    """The same prices updated again and again stay pending; new prices past
    PENDING_LEVELS_MAX are written."""
    _, lazy = synced_pair()
    bound = book_mod.PENDING_LEVELS_MAX
    uid = 100
    for i in range(3 * bound // 100):                       # 100 prices, many times
        uid += 1
        lazy.defer_diff(uid, uid, [(50.0 + p, float(i + 1)) for p in range(100)], [])
    assert len(lazy._pend_bids) == 100 and lazy._bids == {99.0: 1.0}
    written = False
    for i in range(bound // 100 + 1):                       # new prices: past the bound
        uid += 1
        lazy.defer_diff(uid, uid, [], [(200.0 + 100 * i + p, 1.0) for p in range(100)])
        assert len(lazy._pend_bids) + len(lazy._pend_asks) <= bound
        written = written or len(lazy._asks) > 1
    assert written and len(lazy._bids) == 100 and lazy.last_update_id == uid   # 99.0 among them
