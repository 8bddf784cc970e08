"""Read a `genesis replay --commands` script: operator commands at event-time offsets,
checked against schema/commands.schema.json before anything is replayed, so that a
misspelt kind or field is reported with its line instead of being ignored.

The format is documented in docs/scenarios.md; every kind and field is listed in
docs/reference.md (generated from the schema).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from genesis.config.problems import Problem, format_text
from genesis.config.schemas import validate_document
from genesis.config.yamlsrc import YamlError, load_yaml
from genesis.durations import parse_duration
from genesis.engine.markets import Markets


class ScriptError(ValueError):
    """A script that cannot be used; `problems` locates each mistake (file:line:col)."""

    def __init__(self, problems: list[Problem]):
        super().__init__(format_text(problems))
        self.problems = problems


def read_script(path: Path, markets: Markets | None = None) -> tuple[list, str]:
    """([(offset ms, kind, payload)] in the order they apply, digest of the file's text).

    Raises ScriptError for a file that is not YAML, breaks the schema, or orders a
    symbol `markets` (default: the bundled market rules) does not know."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScriptError([Problem(name, 1, 1, "the file is not UTF-8 text; is this the right file?")]) from None
    try:
        data, smap = load_yaml(text, name)
    except YamlError as exc:
        raise ScriptError([Problem(name, exc.mark.line, exc.mark.col, exc.message)]) from None
    if data is None:
        raise ScriptError([Problem(name, 1, 1, "the script is empty: write `commands:` and a list of commands, "
                                               "e.g. `- {after: 90s, kind: order, side: buy, symbol: BTCUSDT, "
                                               "notional_usd: 40}`")])
    problems, _ = validate_document("commands", data, smap, name)
    commands = data.get("commands") if isinstance(data, dict) else None
    if isinstance(commands, list):
        problems += _unknown_symbols(commands, smap, name, markets or Markets.load())
    if problems:
        raise ScriptError(sorted(problems, key=lambda p: (p.line, p.col)))
    script = [(int(parse_duration(item["after"]) * 1000), item["kind"],
               {k: v for k, v in item.items() if k not in ("after", "kind")}) for item in data["commands"]]
    script.sort(key=lambda c: c[0])   # stable: the same `after` keeps the written order
    return script, hashlib.sha256(text.encode()).hexdigest()


def _unknown_symbols(commands: list, smap, name: str, markets: Markets) -> list[Problem]:
    """An order for a symbol without market rules could never be sent: said now, with its line."""
    problems = []
    known = sorted(markets.symbols)
    for i, item in enumerate(commands):
        if not isinstance(item, dict) or item.get("kind") != "order" or not isinstance(item.get("symbol"), str):
            continue   # the schema says what is wrong with it
        symbol = item["symbol"].upper()
        if symbol and symbol not in markets:
            mark = smap.value(("commands", i, "symbol"))
            problems.append(Problem(name, mark.line, mark.col, f"unknown symbol '{item['symbol']}': Genesis has "
                                    f"market rules for {', '.join(known)}"))
    return problems
