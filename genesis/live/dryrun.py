"""Dry run (`genesis run --mode dry-run`): paper trading on live market data.

The live session (genesis/live/session.py) runs unchanged — market data from the
exchange's websocket streams and REST depth snapshots, every input written to the
input log before it is processed, the journal, recovery after any stop from that log,
operator commands, hot reload, health probe, metrics — but the engine's exchange is
`DryRunExchange`: the paper exchange (genesis/engine/paper.py) filling orders against
the live book the streams keep. Its `paper` flag tells the live session that nothing
goes to the exchange: no account, so no API key, no balances, no user-data stream, no
reconciliation, and no order or signed request ever leaves.

Fills are a function of the logged inputs (market events, snapshots) and of the
journaled operator commands, like a replay's: reading the input log back after a
`kill -9` rebuilds the same orders, fills and positions.

The starting balance is genesis.yaml `paper.starting_equity_usd` in USDT, with the
paper fees (`paper.taker_fee_pct`, `maker_fee_pct`), as `genesis run` on recorded data.
The journal run's mode is "dry-run": it never continues a live or a paper run.
"""
from __future__ import annotations

from genesis.engine.events import Event
from genesis.engine.markets import Markets
from genesis.engine.paper import PaperExchange


class DryRunExchange(PaperExchange):
    """The paper exchange with the live session's book-keeping hooks: a REST depth
    snapshot is asked for while a depth book is out of sync, nothing is ever queued to
    send (`outbox` stays empty) and exchange reports never come (`apply` ignores them)."""

    # orders fill here: the live session sends nothing, asks for no balances, starts no
    # user-data stream and has nothing to reconcile
    paper = True
    PROCESS_ATTRS = ("live", "outbox")   # the process's, not the run's: left out of snapshots

    def __init__(self, markets: Markets, balances: dict[str, float], taker_fee_pct: float = 0.1,
                 maker_fee_pct: float = 0.1):
        super().__init__(markets, balances, taker_fee_pct, maker_fee_pct)
        self.outbox: list = []            # never filled: the live session's send loop finds nothing
        self.live = False                 # set by the live session; nothing depends on it here
        self.snapshot_wanted: set[str] = set()
        self.on_behind = None             # the live session's hook for lost exchange reports: none come

    @classmethod
    def for_config(cls, markets: Markets, config) -> DryRunExchange:
        """The paper exchange as `genesis run` builds it: genesis.yaml `paper` (starting
        equity in USDT, fees) of the configuration `config` (a CheckedConfig)."""
        paper = config.files.settings.data["paper"]
        return cls(markets, {"USDT": float(paper["starting_equity_usd"])}, paper["taker_fee_pct"],
                   paper["maker_fee_pct"])

    # the live book is read at once (a gap must be seen to ask for a snapshot): depth
    # diffs are never deferred, whatever the engine would allow
    @property
    def lazy_depth(self) -> bool:
        return False

    @lazy_depth.setter
    def lazy_depth(self, _value: bool) -> None:
        pass

    def on_market(self, event) -> list[Event]:
        """As the paper exchange; a depth diff that finds its book out of sync asks for a
        REST snapshot (the live session fetches it and logs it as an input)."""
        out = super().on_market(event)
        if event.kind == "depth" and not event.fields.get("_snapshot") and not self.book(event.symbol).synced:
            self.snapshot_wanted.add(event.symbol)
        return out

    def apply(self, event: Event) -> None:
        """The live session's order book-keeping step: a paper order's state changes when
        it fills or is cancelled, inside the engine, so there is nothing to do."""
