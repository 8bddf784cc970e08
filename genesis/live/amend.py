"""Sending a live amend: cancel the order, then place a new one for what the cancel
left, at the new price, under the order's next client order id (`G<token>-g12.a1`).

Why not Binance's `POST /api/v3/order/cancelReplace`: its new order's quantity is fixed
when the request is written, so a fill that lands between Genesis's last report and
the cancel would be ordered again (more exposure than decided), and Binance offers no
"only if nothing more executed" condition. Cancelling first gives the exchange's own
`executedQty`, and the new order is for exactly `origQty - executedQty`. Both steps are
idempotent on their own (`ExchangeClient.cancel` / `submit`: retries ask the exchange
before resending), the new order goes through the order-count gate like any other, and
what the requests found comes back to the engine's loop as one `("amend", order,
outcome, answer, error)` item:

* `refused`: nothing to cancel (-2011: the order had filled, expired or been cancelled
  first). Its fills come as usual; a reconciliation shortly after makes sure.
* `placed`: the replacement's answer.
* `rejected`: cancelled, but the new order was refused (`answer` is the cancel's).
* `unknown`: a step gave up (timeouts, 5xx): reconciliation looks for the replacement
  and the old order and settles the amend from what the exchange has.

After a kill the amend command is replayed from the journal at its place in the input
log, with nothing sent, and reconciliation settles it the same way."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from genesis.live.credentials import redact
from genesis.live.exchange import LiveOrder


async def send_amend(runner, order: LiveOrder) -> None:
    """Run one amend of `order` (to `order.amend_price`) for the live session `runner`."""
    from genesis.live.rest import OrderRejected  # noqa: PLC0415

    exchange, client = runner.exchange, runner.client
    price = order.amend_price
    if price is None:
        return
    cid = order.client_id
    old_id = exchange.exchange_id(cid)
    new_id = exchange.exchange_id(cid, order.amendments + 1)
    # reconciliation leaves the order alone until the loop has taken this amend's outcome in
    runner.sending.add(cid)
    exchange.amends_tried.add(cid)
    try:
        canceled = await client.cancel(old_id, order.symbol)
    except Exception as exc:  # noqa: BLE001 - gave up: the exchange is asked later
        runner.say(f"amend of {cid}: the cancel's outcome is unknown ({redact(str(exc))}); asking the exchange")
        runner.put(("amend", order, "unknown", None, None))
        runner.reconcile_later(2.0)
        return
    left = _left(canceled)
    if canceled is None or canceled.get("status") != "CANCELED" or left <= 0:
        why = "the order had already filled or ended on the exchange; nothing was moved"
        runner.say(f"amend of {cid} refused: {why}")
        runner.put(("amend", order, "refused", canceled, why))
        runner.reconcile_later(2.0)   # its fills arrive on the stream; this makes sure
        return
    try:
        answer = await client.submit(new_id, order.symbol, order.side, order.type, float(left), price)
    except OrderRejected as exc:
        why = redact(str(exc))
        runner.say(f"amend of {cid}: the order was cancelled but the new one was refused: {why}")
        runner.put(("amend", order, "rejected", canceled, why))
        return
    except Exception as exc:  # noqa: BLE001 - gave up: the exchange is asked later
        runner.say(f"amend of {cid}: the new order's outcome is unknown ({redact(str(exc))}); asking the exchange")
        runner.put(("amend", order, "unknown", None, None))
        runner.reconcile_later(2.0)
        return
    runner.put(("amend", order, "placed", answer, None))


def _left(canceled: dict | None) -> Decimal:
    """What a cancelled order had not executed, in the exchange's own decimals."""
    if not canceled:
        return Decimal(0)
    try:
        return Decimal(str(canceled["origQty"])) - Decimal(str(canceled["executedQty"]))
    except (KeyError, InvalidOperation):
        return Decimal(0)
