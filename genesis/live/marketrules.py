"""The symbol rules a live or dry run trades by: the ones the exchange announced (its
exchangeInfo, loaded when the REST client started) for the symbols the run trades, not
the bundled file (genesis/data/exchange_info.json, which replay, paper and offline
tools go on using; the engine keeps the bundled rules of the symbols it does not trade).

They are recorded beside the run's input log, `<log>.markets.json` (as the start
balances are in `<log>.start.json`), before the run's first input, and read back from
there whenever the run is continued: the replay of the logged inputs, and the rest of
the run, see the rules the run started with, whatever the exchange announces by then.
A file beside the log rather than an input in it: the log's first segments are
compressed and later removed (recovery.input_log_retention), and a recovery from a
snapshot does not read them. The file holds the exchange's own symbol entries (public
exchangeInfo: filters, assets, status), so it is read back exactly as it was parsed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from genesis.engine.markets import Markets
from genesis.live.segment import InputLogError, segments


class UnlistedSymbols(Exception):
    """A symbol the configuration trades is not one the exchange lists; nothing was started."""


def rules_path(log_path: str | Path) -> Path:
    """Where a run's recorded symbol rules are kept: beside its input log."""
    return Path(log_path).with_suffix(".markets.json")


def announced(client_markets: dict, symbols, where: str = "the exchange") -> dict:
    """The exchangeInfo entries of `symbols` among a ccxt client's loaded markets (ccxt
    keeps each market's raw entry in `info`), as `{"symbols": [...]}` in `symbols`'
    order; UnlistedSymbols naming every symbol `where` does not list."""
    by_id = {}
    for market in client_markets.values():
        raw = market.get("info") if isinstance(market, dict) else None
        if isinstance(raw, dict) and raw.get("symbol"):
            by_id.setdefault(raw["symbol"], raw)
    missing = [s for s in symbols if s not in by_id]
    if missing:
        names = ", ".join(missing)
        raise UnlistedSymbols(f"{names} {'is' if len(missing) == 1 else 'are'} not listed by {where} "
                              f"(genesis.yaml symbols); remove {'it' if len(missing) == 1 else 'them'} or check the "
                              "spelling; nothing was started")
    return {"symbols": [by_id[s] for s in dict.fromkeys(symbols)]}


def recorded(log_path: str | Path) -> dict | None:
    """The symbol rules recorded for the run of `log_path`, or None when none were;
    InputLogError when the file is there but cannot be read back."""
    path = rules_path(log_path)
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputLogError(f"{path}: the symbol rules this run started with cannot be read "
                            f"({type(exc).__name__}); restore the file from a backup, or start a new run "
                            "with a new journal") from None
    if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
        raise InputLogError(f"{path}: not the symbol rules of a run (no 'symbols' list); restore the file "
                            "from a backup, or start a new run with a new journal")
    return info


def record(log_path: str | Path, info: dict) -> None:
    """Keep `info` (exchangeInfo-shaped) as the rules of the run of `log_path`; written
    whole or not at all."""
    path = rules_path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(info, out, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def run_rules(log_path: str | Path, client_markets: dict | None, symbols, where: str = "the exchange") -> dict | None:
    """The exchangeInfo-shaped rules the run of `log_path` trades `symbols` by: the ones
    recorded for it, else those `client_markets` (the exchange's, just loaded) hold for
    `symbols`, recorded now. UnlistedSymbols when the exchange does not list one of
    `symbols`. None (the caller keeps the rules it has) when no markets were loaded, or
    when the run has logged inputs but no recorded rules: it began before rules were
    recorded, with the bundled ones, and keeps them so that its replay is unchanged."""
    kept = recorded(log_path)
    # checked on every start: a symbol the exchange no longer lists cannot be traded, recorded or not
    fresh = announced(client_markets, symbols, where) if client_markets else None
    if kept is not None:
        return kept
    if fresh is None or segments(log_path):
        return None
    record(log_path, fresh)
    return fresh


def traded_by(info: dict) -> dict:
    """Every symbol's rules for a run whose traded symbols' rules are `info`: those, and
    the bundled ones for every other symbol (the layout of the engine's static state,
    which a snapshot is checked against, stays the bundled one's when every traded
    symbol is in the bundled file)."""
    return {**Markets.load().symbols, **Markets.from_exchange_info(info).symbols}


def adopt(markets: Markets, info: dict) -> None:
    """Make `markets` (the object the engine and its exchange share) trade by `info`'s
    rules (`traded_by`), in place: everything that holds it sees them. An entry that
    is unchanged keeps its object (a restored snapshot's state may refer to it)."""
    old = markets.symbols
    markets.symbols = {s: old[s] if old.get(s) == rules else rules for s, rules in traded_by(info).items()}


def run_markets(log_path: str | Path) -> Markets:
    """The symbol rules a live or dry run of `log_path` trades by, for a tool that
    rebuilds its state offline: the recorded ones, else (a run that began before rules
    were recorded) the bundled ones."""
    kept = recorded(log_path)
    return Markets(traded_by(kept)) if kept is not None else Markets.load()
