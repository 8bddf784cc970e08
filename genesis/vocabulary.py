"""The engine's fixed vocabulary: event kinds and their fields, the account metrics the
engine computes itself, and the closed set of actions a rule may take.

Rule books name these; the validator checks every reference against this module, and
`docs/reference.md` is generated from it. Domain words (tiers, tilt) are not here: they
are data in the YAML files.
"""
from __future__ import annotations

NUMBER, BOOL, TEXT = "number", "bool", "text"

# Fields every event carries.
COMMON_FIELDS = {
    "symbol": (TEXT, "Exchange symbol such as BTCUSDT; empty for account-wide events"),
    "hour_utc": (NUMBER, "Hour of the event time, 0-23 UTC"),
}

# kind -> (description, {field: (type, description)})
EVENTS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    # market data
    "book_ticker": ("Best bid/ask update", {
        "bid": (NUMBER, "Best bid price"), "bid_qty": (NUMBER, "Best bid quantity"),
        "ask": (NUMBER, "Best ask price"), "ask_qty": (NUMBER, "Best ask quantity"),
        "mid": (NUMBER, "Mid price"), "spread_bps": (NUMBER, "Ask-bid spread in basis points of mid"),
    }),
    "trade": ("A public trade on the exchange", {
        "price": (NUMBER, "Trade price"), "qty": (NUMBER, "Base quantity"),
        "notional_usd": (NUMBER, "price x qty in quote currency"),
        "aggressor": (TEXT, "'buy' or 'sell': the side that crossed the spread"),
    }),
    "depth": ("Order-book diff update (best_bid/best_ask are filled in when some metric or rule reads depth "
              "events; otherwise the book applies diffs only when it is read)", {
        "best_bid": (NUMBER, "Best bid after the update"), "best_ask": (NUMBER, "Best ask after the update"),
        "levels": (NUMBER, "Number of price levels changed"),
    }),
    "candle": ("A closed candle (from a candle feed or built from trades)", {
        "open": (NUMBER, "Open price"), "high": (NUMBER, "High price"), "low": (NUMBER, "Low price"),
        "close": (NUMBER, "Close price"), "volume": (NUMBER, "Base volume"),
        "true_range": (NUMBER, "max(high, prev close) - min(low, prev close)"),
        "true_range_pct": (NUMBER, "true_range as % of close"),
        "log_return": (NUMBER, "ln(close / previous close)"),
        "interval_s": (NUMBER, "Candle length in seconds"),
    }),
    # own orders and positions
    "order_intent": ("A strategy or the operator wants to place an order (pre_trade stage)", {
        "side": (TEXT, "'buy' or 'sell'"), "qty": (NUMBER, "Base quantity"), "price": (NUMBER, "Reference price"),
        "notional_usd": (NUMBER, "Order value in quote currency"),
        "opens_position": (BOOL, "True when the order opens or adds to a position"),
        "manual": (BOOL, "True when the operator placed it"),
        "has_reason": (BOOL, "True when the operator gave a written reason"),
        "strategy": (TEXT, "Strategy instance id, empty for manual orders"),
        "exposure_usd": (NUMBER, "The symbol's position after this order if everything in flight fills: the "
                                 "position at mid, plus buy orders sent whose fills are not in yet (unfilled "
                                 "quantity at the order's limit or sizing price), plus buy slices scheduled, plus this order when it buys "
                                 "(sells in flight are not subtracted)"),
        "pending_positions": (NUMBER, "Symbols with no position held but a buy order in flight or scheduled: "
                                      "positions about to open (add to open_positions for the count)"),
        "same_direction_pct": (NUMBER, "same_direction_pct counted over the positions held and pending; equal "
                                       "to the account's figure when nothing is pending"),
    }),
    "order_new": ("An order was decided and handed to the exchange (paper) or to the live session to send", {
        "side": (TEXT, "'buy' or 'sell'"), "qty": (NUMBER, "Base quantity"), "price": (NUMBER, "Limit or reference price"),
        "notional_usd": (NUMBER, "Order value in quote currency"), "manual": (BOOL, "Placed by the operator"),
        "chosen_notional_usd": (NUMBER, "Size the trader or strategy chose for the whole order, before the 5% "
                                        "resize, the size multipliers (tilt, market state, drawdown) and slicing"),
    }),
    "order_sent": ("An order left for the exchange, with its measured decision-to-send time. Paper: when the "
                   "paper exchange took it (event time). Live: an input from the live session once the order "
                   "request was written (logged, so a replay reads the same value)", {
        "latency_ms": (NUMBER, "Milliseconds from the decision to the order leaving. The decision is the "
                               "intent's event time, or for a scheduled slice (slices 2+ of sliced, iceberg, TWAP, "
                               "VWAP orders) the time it was due. Paper: event time from then to the send (0 for "
                               "an order sent when decided; a slice sent at the first event after its due time "
                               "counts the gap). Live: that event-time wait plus the wall-clock time from the "
                               "input the send was decided on (a market message: when it reached the socket) to "
                               "the request written to its connection (or handed to ccxt)"),
        "manual": (BOOL, "Placed by the operator"),
    }),
    "clock": ("Live: time passed with no market data while a planned slice or an execution algorithm's wake was "
              "due; it moves the engine's clock (logged like any input)", {}),
    "volume_profile": ("Live start: the exchange's recent 1-minute volumes of a symbol (GET /api/v3/klines), for "
                       "VWAP's volume profile", {}),
    "order_ack": ("The exchange acknowledged an order", {"latency_ms": (NUMBER, "Round trip in milliseconds")}),
    "order_canceled": ("An order was cancelled", {
        "age_s": (NUMBER, "Seconds the order lived"), "manual": (BOOL, "Cancelled by the operator"),
        "notional_usd": (NUMBER, "Order value in quote currency"),
        "by_exchange": (BOOL, "The exchange cancelled it (e.g. the unfilled rest of a market order), not a decision"),
        "by_rule": (BOOL, "A rule's cancel_all cancelled it (a safety action, not the trader's or a strategy's)"),
        "by_algorithm": (BOOL, "A planned cancel of a strategy or an execution algorithm (a quote refresh, a "
                               "re-pegged iceberg slice), not a decision of the moment"),
    }),
    "order_amended": ("An open order was moved to a new limit price", {
        "amendments": (NUMBER, "Amendments so far to this order"), "price": (NUMBER, "New limit price"),
        "old_price": (NUMBER, "Limit price before"), "manual": (BOOL, "Amended by the operator"),
        "notional_usd": (NUMBER, "Open quantity times the new price"),
    }),
    "order_amend_rejected": ("Live: an amend could not move the order (it had filled or ended first, or never "
                             "reached the exchange); the order is as the exchange left it", {
        "manual": (BOOL, "Placed by the operator"), "price": (NUMBER, "Limit price the amend asked for"),
    }),
    "order_rejected": ("The exchange or a pre-trade rule rejected an order", {
        "rule": (TEXT, "Id of the rejecting rule; 'trading_state' (a halt, lock or size at 0), 'execution' (no "
                       "algorithm takes the size, no price yet, nothing left to sell) or 'exchange'"),
        "manual": (BOOL, "Placed by the operator"),
    }),
    "fill": ("An order (partly) filled", {
        "side": (TEXT, "'buy' or 'sell'"), "price": (NUMBER, "Fill price"), "qty": (NUMBER, "Filled base quantity"),
        "notional_usd": (NUMBER, "Fill value in quote currency"), "fee_usd": (NUMBER, "Fee in quote currency"),
        "slippage_pct": (NUMBER, "Adverse move from the decision price, in %"), "maker": (BOOL, "Filled as maker"),
    }),
    "execution_done": ("A parent order (one admitted intent) finished executing: every slice the execution "
                       "policy planned was sent and ended (filled, cancelled, rejected) or never left (nothing "
                       "left to sell, no price, a cancel_all before it was due), or the algorithm working it "
                       "stopped and its last slice ended. Paper and live alike (docs/strategies.md)", {
        "side": (TEXT, "'buy' or 'sell'"),
        "algo": (TEXT, "Execution algorithm: 'market', 'sliced', 'iceberg', 'twap', 'vwap' or 'limit'"),
        "manual": (BOOL, "Placed by the operator"),
        "notional_usd": (NUMBER, "Parent order value as planned (after pre-trade resizing and size multipliers)"),
        "strategy": (TEXT, "The strategy instance (or 'operator', or a rule) whose intent it was"),
        "planned_slices": (NUMBER, "Slices the execution policy planned (an iceberg's visible slices, a VWAP's "
                                   "intervals)"),
        "slices": (NUMBER, "Slices actually sent (re-posted iceberg slices included)"),
        "sent_usd": (NUMBER, "Value sent: each sent slice's quantity at the price it was sized with"),
        "filled_usd": (NUMBER, "Value filled (quantity x fill price, fees not included)"),
        "arrival_mid": (NUMBER, "Mid price when the execution was decided (0 when no price was known)"),
        "impact_pct": (NUMBER, "Market impact: the average fill price against arrival_mid, in %, positive when "
                               "adverse (a buy above the mid, a sell below it); 0 when nothing filled or "
                               "arrival_mid is 0"),
        "filled_qty": (NUMBER, "Base quantity filled"),
        "unfilled_usd": (NUMBER, "The parent's value that did not fill (0 when it filled in full or more)"),
        "avg_price": (NUMBER, "Average fill price (0 when nothing filled)"),
        "slippage_bps": (NUMBER, "The fills against the touch when each slice was sent, value-weighted, in basis "
                                 "points, positive when adverse (a maker fill at its own price is negative)"),
        "mid_move_bps": (NUMBER, "The mid when the execution ended against arrival_mid, in basis points, positive "
                                 "when adverse: how far the market moved while the order worked"),
        "duration_ms": (NUMBER, "Event time from the decision to the end, in ms"),
        "end": (TEXT, "'done', 'aborted' (iceberg: abort_slippage_pct), 'expired' (VWAP held back by its "
                      "participation cap) or 'cancelled' (a rule's cancel_all, or superseded by a decision the "
                      "other way)"),
        "abort_reason": (TEXT, "Why it aborted, expired or was cancelled ('' when done)"),
    }),
    "position_closed": ("A position was closed", {
        "pnl_usd": (NUMBER, "Realised P&L in quote currency, fees included"), "pnl_pct": (NUMBER, "P&L as % of entry value"),
        "hold_s": (NUMBER, "Seconds held"),
        "exit_reason": (TEXT, "'take_profit', 'stop_loss', 'signal', 'timeout', 'manual' or 'risk'"),
    }),
    "external_order": ("Live: an order Genesis did not place was found on the account (resting, or filled at once), "
                       "by its user-data report or by reconciliation (open orders, myTrades); adopted, never "
                       "cancelled, reported once", {"notional_usd": (NUMBER, "Order value")}),
    "external_fill": ("Live: a trade of an order Genesis did not place (from the user-data stream or myTrades, once "
                      "per trade); its balance change is not Genesis's, so the balance check explains it", {
        "side": (TEXT, "'buy' or 'sell'"), "price": (NUMBER, "Trade price"), "qty": (NUMBER, "Traded base quantity"),
        "notional_usd": (NUMBER, "Trade value in quote currency"),
    }),
    "position_mismatch": ("Reconciliation could not explain a balance difference", {"diff_usd": (NUMBER, "Difference in quote currency")}),
    "reconciled": ("Live: reconciliation with the exchange finished", {
        "fills": (NUMBER, "Fills found that the stream had not delivered"), "closed": (NUMBER, "Orders found ended"),
        "not_sent": (NUMBER, "Orders the exchange never received"), "external": (NUMBER, "External orders adopted"),
        "external_fills": (NUMBER, "Trades of external orders taken in from myTrades"),
        "mismatch_usd": (NUMBER, "Balance difference it could not explain, USD"),
    }),
    "day_closed": ("00:00 UTC: the trading day ended", {
        "pnl_usd": (NUMBER, "Day P&L in quote currency"), "pnl_pct": (NUMBER, "Day P&L as % of the day's opening equity"),
        "traded": (BOOL, "At least one fill that day"), "max_drawdown_pct": (NUMBER, "Deepest drawdown that day, %"),
    }),
    "drawdown_recovered": ("Equity returned to its previous peak after a drawdown deeper than account_metrics.recovery_min_pct", {"depth_pct": (NUMBER, "Depth of the recovered drawdown, %")}),
    "lock_released": ("A lock ended", {"rule": (TEXT, "Id of the rule that set the lock")}),
    "halt_reset": ("The operator typed the phrase a rule's `require: {kind: confirmation}` declares (`genesis reset`); "
                   "that rule's halt and locks are lifted", {"rule": (TEXT, "Id of the rule whose halt was reset")}),
    # operator
    "operator_connect": ("An operator session started", {}),
    "operator_disconnect": ("An operator session ended", {}),
    "override_attempt": ("The operator asked for an emergency override", {"accepted": (BOOL, "Phrase right and not in cooldown")}),
    "config_edit": ("A configuration edit was accepted", {"risk": (BOOL, "An edited file is one genesis.yaml safety.risk_files names")}),
    "journal_entry": ("The operator wrote a journal entry", {"words": (NUMBER, "Words in the entry")}),
    "reflection": ("The operator wrote a reflection (`genesis reflect`); a tier change waiting for one long enough "
                   "applies", {"words": (NUMBER, "Words in the reflection")}),
    "life_event": ("The operator recorded a life event (lowers tilt sensitivity)", {"days": (NUMBER, "Days it applies")}),
    # system probes
    "engine_started": ("The engine started", {}),
    "expression_error": ("A rule's or metric's expression could not be evaluated (raised once when it starts "
                         "failing; the journal's rule_error entry has the values it saw)", {
        "source": (TEXT, "Id of the rule or metric"), "what": (TEXT, "'rule' or 'metric'"),
        "stage": (TEXT, "The rule's stage ('' for a metric)"), "error": (TEXT, "The error, e.g. ZeroDivisionError: ..."),
        "expression": (TEXT, "The expression that failed"),
    }),
    "api_response": ("A REST call returned", {
        "ok": (BOOL, "2xx response"), "latency_ms": (NUMBER, "Round trip in milliseconds"),
    }),
    "api_status": ("Exchange API reachability changed", {"reachable": (BOOL, "The API answers")}),
    "ws_status": ("A websocket connection changed state", {
        "connected": (BOOL, "The stream is connected"),
        "stream": (TEXT, "'market' (market data) or 'user' (the account's order and balance updates)"),
    }),
    "rate_limit": ("Request-weight and new-order use were measured (live: with every exchange answer)", {
        "used_pct": (NUMBER, "Share of the exchange's request-weight limit in use, %"),
        "orders_used_pct": (NUMBER, "Share of the exchange's tightest new-order limit (ORDERS per 10 s or per day) "
                                    "in use, %"),
    }),
    "exchange_status": ("Exchange system status", {"maintenance": (BOOL, "Exchange in maintenance")}),
    "system_probe": ("Host resources were measured (psutil; `genesis run`, paper and live, every "
                     "genesis.yaml health_probe.interval of wall time)", {
        "memory_pct": (NUMBER, "The host's memory in use, %"),
        "disk_free_mb": (NUMBER, "Free disk on the journal's volume (the working folder's for a server "
                                 "database), MB (2^20 bytes)"),
        "cpu_pct": (NUMBER, "The host's CPU in use, %, averaged over the time since the previous probe"),
        "loop_lag_ms": (NUMBER, "The run loop's worst lag since the previous probe: how late it got to input "
                                "or a duty that was due (paper: a paced event; live: its periodic timer), ms"),
    }),
    "db_write": ("Journal writes: one that failed (live: at once, `ok` false), and with each system_probe the "
                 "slowest good write since the previous probe (`ok` true)",
                 {"ok": (BOOL, "Written"), "duration_ms": (NUMBER, "Milliseconds")}),
    "db_query": ("The health probe timed a query on the journal (`genesis run`, with each system_probe)",
                 {"duration_ms": (NUMBER, "Milliseconds")}),
    "log_failure": ("A record could not be written to a `log` notification channel's file (`genesis run`)", {}),
    "notify_failure": ("A notification did not reach a channel after its retries (`genesis run`)", {
        "channel": (TEXT, "The channel's name in genesis.yaml"), "kind": (TEXT, "The channel's kind"),
        "rule": (TEXT, "The rule whose notification it was"), "severity": (TEXT, "Its severity"),
        "error": (TEXT, "What went wrong (never a secret)"), "attempts": (NUMBER, "Sends tried"),
        "fallback": (TEXT, "Channel a critical message went to instead ('' for none)"),
    }),
    "engine_restart": ("`genesis supervise` restarted the engine after its process ended unexpectedly (queued in the "
                       "journal before the restart, applied by the restarted engine)", {
        "exit_code": (NUMBER, "How the previous process ended: its exit code, or minus the signal that killed it"),
    }),
    "backup_failure": ("A backup of the journal and input logs failed (`genesis run`'s schedule, or `genesis backup`; "
                       "docs/backup.md); trading goes on", {
        "kind": (TEXT, "The backup's kind: hourly, daily, weekly or manual"),
        "reason": (TEXT, "What went wrong, in one line (never a secret)"),
    }),
}

# Events measured on the wall clock outside the pipeline. They enter a running engine
# through its command queue (the `observe` command), so each is journaled at the point it
# was applied and a recovery or a replay of the journal sees it at the same point.
OBSERVED_EVENTS = ("system_probe", "db_query", "db_write", "log_failure", "notify_failure", "backup_failure",
                   "engine_restart")

# Kinds declared for rules to read that nothing in Genesis emits yet: kind -> why. A rule
# reading one cannot fire, and `genesis validate` says so (a warning). A test checks this
# list against the code, both ways.
NOT_EMITTED: dict[str, str] = {}

# name -> (unit, description); computed by the engine, readable in every expression.
ACCOUNT_METRICS: dict[str, tuple[str, str]] = {
    "equity_usd": ("USD", "Account equity in quote currency (balances at mid prices)"),
    "peak_equity_usd": ("USD", "Highest equity seen"),
    "drawdown_usd": ("USD", "peak_equity_usd - equity_usd (>= 0)"),
    "drawdown_pct": ("%", "drawdown_usd as % of peak_equity_usd"),
    "peak_since_rebase_usd": ("USD", "Highest equity since the last `rebase_peak` action (since the start before "
                                     "the first): the reference a rule book can restart, e.g. when an exit protocol "
                                     "ends"),
    "drawdown_since_rebase_usd": ("USD", "peak_since_rebase_usd - equity_usd (>= 0)"),
    "daily_pnl_usd": ("USD", "P&L since 00:00 UTC (realised + unrealised)"),
    "daily_pnl_pct": ("%", "daily_pnl_usd as % of equity at 00:00 UTC"),
    "open_positions": ("count", "Open positions"),
    "exposure_usd": ("USD", "Value of open positions"),
    "exposure_pct": ("%", "exposure_usd as % of equity"),
    "same_direction_pct": ("%", "Largest share of open positions whose price change over account_metrics.direction_window (15m) has the same sign (0 with fewer than 2 positions)"),
    "uncorrelated_pairs_30d": ("count", "Pairs traded in 30 days whose daily returns correlate (in absolute value) below account_metrics.correlation_cutoff (0.5) with every other, once they have account_metrics.correlation_min_days (5) of them"),
    "size_factor": ("ratio", "Product of every active account-wide size multiplier (a per-symbol rule's multiplier "
                             "applies to its symbol's orders only and is not in this figure)"),
    "days_at_tier": ("days", "Days since the current tier began"),
    "trader_days": ("days", "Days since the journal's first event"),
    "uptime_s": ("s", "Seconds since the engine started"),
}

STAGES = ("market_state", "signals", "pre_trade", "tilt", "risk", "tier", "alerts")
SEVERITIES = ("info", "warning", "critical")
FUNCTIONS = ("abs", "min", "max", "clamp", "round")

# Actions. Each is either a bare word or a one-key mapping; `params` names the JSON
# Schema fragment in schema/common.schema.json that its argument must match.
ACTIONS: dict[str, str] = {
    "halt": "No new orders; cancels still pass",
    "reduce_only": "Only orders that reduce exposure pass",
    "resume": "Back to ACTIVE",
    "cancel_all": "Cancel every open order",
    "close_positions": "Close every open position at market",
    "lock": "Block new orders for a symbol or for all, for a time (escalating on repeats)",
    "scale_size": "Set a named size multiplier; the trade size is the product of all multipliers",
    "reject": "Pre-trade: refuse the order intent with a reason",
    "resize": "Pre-trade: cut the order intent to a maximum notional",
    "notify": "Send a message to the channels routed for the rule's severity",
    "require": "Ask the operator for a journal entry, a reason, a reflection or a typed confirmation",
    "promote": "Move up one tier",
    "demote": "Move down one tier (halts at the lowest tier)",
    "rebase_peak": "Restart peak_since_rebase_usd at the current equity (drawdown_since_rebase_usd becomes 0); "
                   "peak_equity_usd, the all-time peak, is unchanged",
    "set": "Set declared flags",
}
BARE_ACTIONS = ("halt", "reduce_only", "resume", "cancel_all", "close_positions", "promote", "demote", "rebase_peak")

# Names that rules may read inside per-event expressions (where/value/while).
def event_fields(kind: str) -> dict[str, tuple[str, str]]:
    """Every field of an event kind, common fields included."""
    return {**COMMON_FIELDS, **EVENTS[kind][1]}


ORDER_FIELDS = event_fields("order_intent")
