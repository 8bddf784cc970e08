"""Reconciliation: after a restart, and whenever the user-data stream was interrupted,
bring what Genesis believes in line with what the exchange says.

1. Every order Genesis still counts as open is asked for by its client order id: fills
   the stream never delivered are taken from `myTrades` (by trade id, so nothing is
   counted twice), orders that ended are closed, and an order the exchange never saw
   (the engine stopped between deciding and sending) is closed as not sent, but only
   once no attempt to send it can still execute (Binance drops a request whose signed
   timestamp is older than recvWindow). An order never acknowledged (status new or
   unknown) that the exchange does not have may still be on its way until its last
   attempt (a send of this process that gave up: the client's `last_sent`) or, for an
   order of a process that stopped, this client's start is `recv_window_ms` + 0.5 s old
   (`ExchangeClient.unseen_until`). Reconciliation waits for that (only when such an
   order exists, once for all of them), then asks again: an order found then is taken
   in like any other (acknowledged, fills from myTrades, closed if it ended), one still
   missing is closed as not sent. Orders whose request is still under way (`in_flight`)
   or not sent yet (in the outbox) are left alone. An amend under way (its answer lost,
   or the engine stopped mid-way) is settled from what the exchange has: the
   replacement (`...-g12.a<n+1>`) found means amended; otherwise the old order still
   open means the amend never reached it, and the old order cancelled means the amend
   stopped half-way (the order ends cancelled; when the amend was sent by a process that
   stopped, its new order is looked for once more after recvWindow, past which the
   exchange would drop it). An amended order's earlier incarnations are asked for too
   when their fills are not all in.
2. Orders on the account that Genesis did not place are adopted as external: one
   `external_order` event each (the demotion rule reads it), whether found open
   (`openOrders`) or already filled (`myTrades`: every trade since the last look, from
   the trade id kept in `LiveExchange.trades_from`; a trade of an order whose client id
   does not carry this run's prefix is external), and one `external_fill` per trade of
   theirs (once per trade id, the user-data stream may have delivered it already). They
   are never cancelled by Genesis.
3. Balances: for each asset Genesis trades, the exchange's total (free + locked) must
   equal the total at the run's start plus the net of Genesis's own fills plus that of
   the external fills adopted. A difference it cannot explain is a `position_mismatch`
   event (a critical alert that halts trading). It is compared once the answers of
   every order that was under way when the balances were read have been taken in, and
   raised only when a second look (orders and trades asked for again, balances read
   again) finds it still there.

Findings enter the engine as inputs, one at a time: `emit(make)` hands over a function
that works out the events from the state at the moment they are processed (a fill the
stream delivered meanwhile is then not counted again), and returns them, or an
awaitable of them. The live session processes them on its loop between its other
inputs, so a reconciliation with slow exchange answers never holds up market data,
order answers or operator commands; it waits for each finding to be processed before it
works out the next.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

from genesis.engine.events import Event
from genesis.live.exchange import NEW, UNKNOWN, LiveExchange, LiveOrder

TERMINAL = ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED")
TRADES_PAGE = 1000          # myTrades rows per request (Binance's maximum)
IN_FLIGHT_WAIT_S = 30.0     # longest wait for the answers of orders under way before balances are compared

Emit = Callable[[Callable[[], list[Event]]], object]


async def _emit(emit: Emit, make: Callable[[], list[Event]]) -> list[Event]:
    """Hand one finding to the engine and wait until it is processed: its events."""
    done = emit(make)
    if inspect.isawaitable(done):
        done = await done
    return list(done or ())


async def reconcile(exchange: LiveExchange, client, emit: Emit, now: Callable[[], int],
                    start_balances: dict[str, float], symbols: list[str], in_flight: set | None = None) -> dict:
    """Run the three checks; returns a summary {'fills', 'closed', 'not_sent', 'external',
    'external_fills', 'mismatch_usd', '_trades_from'} ('_trades_from': {symbol: the first
    trade id not read yet}, for the `reconciled` event). Orders in `in_flight` (their
    request is still under way) are left alone."""
    in_flight = in_flight if in_flight is not None else set()
    summary = {"fills": 0, "closed": 0, "not_sent": 0, "external": 0, "external_fills": 0, "mismatch_usd": 0.0}
    await _own_orders(exchange, client, emit, now, in_flight, summary)

    for info in await client.open_orders():
        cid = info.get("clientOrderId", "")
        if exchange.engine_id(cid) in exchange.orders or cid in exchange.external:
            continue
        notional = float(info.get("origQty") or 0.0) * float(info.get("price") or 0.0)
        side = str(info.get("side", "")).lower()
        made = await _emit(emit, lambda info=info, cid=cid, notional=notional, side=side: exchange.external_found(
            info.get("symbol", ""), cid, side, notional, info.get("orderId"), now()))
        summary["external"] += len(made)
    trades_from = await _external_trades(exchange, client, emit, now, symbols, summary)

    mismatch, diffs = await _balance_difference(exchange, client, emit, start_balances, symbols, in_flight)
    if mismatch > 0.01:
        # an order may have filled between the order checks and the balances: look once more
        await _own_orders(exchange, client, emit, now, in_flight, summary)
        trades_from = await _external_trades(exchange, client, emit, now, symbols, summary)
        mismatch, diffs = await _balance_difference(exchange, client, emit, start_balances, symbols, in_flight)
    if mismatch > 0.01:
        summary["mismatch_usd"] = mismatch
        # the same difference is raised once: compared in coins, since its USD value moves with
        # the price (and counts only the quote side before the first order book arrives)
        await _emit(emit, lambda: [] if _same_amounts(diffs, exchange.mismatch_amounts) else [
            Event("position_mismatch", now(), "", {"diff_usd": round(mismatch, 8), "_amounts": diffs})])
    summary["_trades_from"] = trades_from
    return summary


async def trade_cursors(client, symbols: list[str]) -> dict[str, int]:
    """{symbol: the id after the account's latest trade} (0 when it has none): where reading
    `myTrades` for external fills starts (taken with the run's start balances)."""
    cursors = {}
    for symbol in symbols:
        latest = await client.my_trades(symbol, limit=1)
        cursors[symbol] = max((int(t["id"]) for t in latest), default=-1) + 1
    return cursors


async def _external_trades(exchange: LiveExchange, client, emit: Emit, now, symbols: list[str],
                           summary: dict) -> dict[str, int]:
    """Trades of orders Genesis did not place since the last look: their order adopted as
    external (once), each trade an `external_fill` (once). Returns {symbol: the first trade
    id not read yet}."""
    cursors: dict[str, int] = {}
    for symbol in symbols:
        first = exchange.trades_from.get(symbol)
        if first is None:   # a run begun before trades were followed: from now on
            cursors.update(await trade_cursors(client, [symbol]))
            continue
        while True:
            rows = sorted(await client.my_trades(symbol, from_id=first, limit=TRADES_PAGE), key=lambda t: int(t["id"]))
            for trade in rows:
                first = max(first, int(trade["id"]) + 1)
                order_id = int(trade["orderId"])
                cid = exchange.order_owner.get(order_id)
                info = None
                if cid is None:
                    info = await client.order_by_id(order_id, symbol)
                    cid = str((info or {}).get("clientOrderId") or "")
                    exchange.order_owner[order_id] = cid   # a cache: the exchange's answer never changes
                if exchange.engine_id(cid) is not None or not cid:
                    continue    # this run's own: its order's reconciliation takes the fill
                side = "buy" if trade.get("isBuyer") else "sell"
                qty, price = float(trade["qty"]), float(trade["price"])
                notional = qty * price
                if info is not None:
                    notional = float(info.get("origQty") or 0.0) * (float(info.get("price") or 0.0) or price)

                def found(trade=trade, cid=cid, side=side, qty=qty, price=price, notional=notional,
                          order_id=order_id) -> list[Event]:
                    return exchange.external_found(symbol, cid, side, notional, order_id, now()) + \
                        exchange.external_trade(symbol, cid, side, int(trade["id"]), qty, price,
                                                float(trade.get("commission") or 0.0),
                                                trade.get("commissionAsset") or "", now())

                made = await _emit(emit, found)
                summary["external"] += sum(e.kind == "external_order" for e in made)
                summary["external_fills"] += sum(e.kind == "external_fill" for e in made)
            if len(rows) < TRADES_PAGE:
                break
        cursors[symbol] = first
    return cursors


def _same_amounts(a: dict, b: dict) -> bool:
    """True when two {asset: unexplained amount} maps name the same assets and amounts."""
    if a.keys() != b.keys():
        return False
    return all(abs(a[k] - b[k]) <= 1e-8 * max(1.0, abs(b[k])) for k in a)


async def _own_orders(exchange: LiveExchange, client, emit, now, in_flight, summary: dict) -> None:
    """Ask the exchange about every order Genesis still counts as open."""
    queued = {o.client_id for what, o in exchange.outbox if what == "new"}   # not sent yet: nothing to ask
    unseen: list[LiveOrder] = []   # never acknowledged, not found, and an attempt to send it may still execute
    for order in sorted(exchange.open_orders.values(), key=lambda o: o.created_ts):
        if order.client_id not in exchange.open_orders:
            continue                           # closed while this reconciliation ran
        if (in_flight and order.client_id in in_flight) or order.client_id in queued:
            continue
        if order.amend_price is not None:      # an amend under way: is its replacement there?
            new_id = exchange.exchange_id(order.client_id, order.amendments + 1)
            replacement = await client.order(new_id, order.symbol)
            if replacement is None and order.client_id not in exchange.amends_tried:
                # sent by a process that stopped: its new order may still be on the way, and the
                # exchange drops it once older than recvWindow; look again after that
                old = await client.order(exchange.exchange_id(order.client_id), order.symbol)
                if old is not None and old.get("status") == "CANCELED":
                    await asyncio.sleep(getattr(client, "recv_window_ms", 5000) / 1000 + 0.5)
                    replacement = await client.order(new_id, order.symbol)
            if replacement is not None:
                await _emit(emit, lambda order=order, replacement=replacement: exchange.amend_found(
                    order, replacement, now()))
        asked = time.monotonic()
        info = await client.order(exchange.exchange_id(order.client_id), order.symbol)
        if info is None:
            if order.amendments == 0:
                if order.status in (NEW, UNKNOWN) and _unseen_until(exchange, client, order) > asked:
                    unseen.append(order)       # its request may still be on the way: asked again below
                else:
                    await _not_sent(exchange, client, order, emit, now, summary, in_flight)
            continue                           # a replacement Genesis saw placed: never "not sent"
        await _take_in(exchange, client, order, info, emit, now, summary)
    if not unseen:
        return
    # one wait for all of them: until no attempt to send any of them can still execute
    wait = max(_unseen_until(exchange, client, order) for order in unseen) - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)
    for order in unseen:
        if order.client_id not in exchange.open_orders:
            continue
        info = await client.order(exchange.exchange_id(order.client_id), order.symbol)
        if info is None:
            await _not_sent(exchange, client, order, emit, now, summary, in_flight)
        else:
            await _take_in(exchange, client, order, info, emit, now, summary)


def _unseen_until(exchange: LiveExchange, client, order: LiveOrder) -> float:
    """time.monotonic() after which no attempt to send `order` can still reach the exchange
    (0 for a client that does not tell)."""
    until = getattr(client, "unseen_until", None)
    return until(exchange.exchange_id(order.client_id)) if until is not None else 0.0


async def _not_sent(exchange: LiveExchange, client, order: LiveOrder, emit, now, summary: dict,
                    in_flight: set) -> None:
    getattr(client, "last_sent", {}).pop(exchange.exchange_id(order.client_id), None)
    made = await _emit(emit, lambda: [] if order.client_id in in_flight else exchange.never_sent(order, now()))
    summary["not_sent"] += len(made)


async def _take_in(exchange: LiveExchange, client, order: LiveOrder, info: dict, emit, now, summary: dict) -> None:
    """An order the exchange has (`info`, its query answer): fills not taken in yet (from
    myTrades), its end, or its acknowledgement."""
    getattr(client, "last_sent", {}).pop(exchange.exchange_id(order.client_id), None)
    # what every incarnation executed: earlier ones as the exchange counts them (the
    # order's quantity minus this one's), this one from its answer
    executed = float(info.get("executedQty") or 0.0) + exchange.executed_before(order, info.get("origQty"))
    if executed > order.filled + 1e-12:
        infos = [info]
        for k in range(order.amendments):  # an amended order: its earlier incarnations too
            earlier = await client.order(exchange.exchange_id(order.client_id, k), order.symbol)
            if earlier is not None and float(earlier.get("executedQty") or 0.0) > 0:
                infos.append(earlier)
        for one in infos:
            if float(one.get("executedQty") or 0.0) <= 0:
                continue
            mine = await client.my_trades(order.symbol, order_id=one.get("orderId"))
            for trade in sorted(mine, key=lambda t: int(t["id"])):
                if trade.get("orderId") != one.get("orderId"):
                    continue
                made = await _emit(emit, lambda trade=trade: exchange.on_trade_record(order, trade, now()))
                summary["fills"] += len(made)

    def settle() -> list[Event]:
        """The order's end, its amend's outcome or its acknowledgement, from the state now."""
        if order.client_id in exchange.open_orders:
            if info.get("status") in TERMINAL:
                return exchange.finish_from_status(order, info["status"], now())
            if order.amend_price is not None:   # no replacement, the old order still open
                return exchange.amend_not_done(order, now())
            if order.status in (NEW, UNKNOWN):
                return [Event("order_ack", now(), order.symbol, {"latency_ms": 0.0, "_client_id": order.client_id,
                                                                 "_exchange_id": info.get("orderId")})]
            return []
        if order.amend_price is not None:       # it filled (or ended) before the amend could move it
            return exchange.amend_not_done(order, now(), "the order had already filled or ended; nothing was moved")
        return []

    made = await _emit(emit, settle)
    summary["closed"] += sum(e.kind in ("order_canceled", "order_rejected") for e in made)


async def _balance_difference(exchange: LiveExchange, client, emit: Emit, start_balances: dict, symbols: list,
                              in_flight: set) -> tuple[float, dict[str, float]]:
    """The balance differences that neither Genesis's own fills nor the external fills
    adopted explain: (USD value, {asset: amount}). Compared on the engine's loop, once
    every order that was under way when the balances were read has its answer taken in
    (its fills are in the balances already)."""
    totals = {asset: free + locked for asset, (free, locked) in (await client.balances()).items()}
    under_way = set(in_flight)
    deadline = time.monotonic() + IN_FLIGHT_WAIT_S
    while under_way & in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    box: list = []
    await _emit(emit, lambda: box.append(_difference(exchange, totals, start_balances, symbols)) or [])
    return box[0]


def _difference(exchange: LiveExchange, totals: dict, start_balances: dict, symbols: list) -> tuple[float, dict]:
    assets = set()
    for symbol in symbols:
        m = exchange.markets.get(symbol)
        if m is not None:
            assets |= {m.base, m.quote}
    mismatch, diffs = 0.0, {}
    for asset in sorted(assets):
        expected = start_balances.get(asset, 0.0) + exchange.net.get(asset, 0.0) + exchange.external_net.get(asset, 0.0)
        diff = totals.get(asset, 0.0) - expected
        if abs(diff) > 1e-8 * max(1.0, abs(expected)):
            mismatch += abs(diff) * _price_usd(exchange, asset)
            diffs[asset] = round(diff, 12)
    return mismatch, diffs


def _price_usd(exchange: LiveExchange, asset: str) -> float:
    """Value of one unit of `asset` in quote currency (1 for the quote assets)."""
    if asset in ("USDT", "USDC", "BUSD", "FDUSD", "USD"):
        return 1.0
    for symbol, book in exchange.books.items():
        m = exchange.markets.get(symbol)
        if m is not None and m.base == asset:
            bid, ask = book.best_bid(), book.best_ask()
            if bid and ask:
                return (bid + ask) / 2
    return 0.0
