"""Change one number in a YAML file in place, keeping its layout and comments."""
from __future__ import annotations

import re
from pathlib import Path

from genesis.config.problems import suggestion
from genesis.config.yamlsrc import load_yaml

_NUMBER = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9]*)?([eE][-+]?[0-9]+)?|true|false")


class EditError(Exception):
    """The edit names no number in the file, or the value is not one."""


def parse_value(text: str):
    """A number (or true/false) from the command line."""
    if text in ("true", "false"):
        return text == "true"
    try:
        value = float(text)
    except ValueError:
        raise EditError(f"{text!r} is not a number") from None
    return int(value) if value.is_integer() and "." not in text else value


def edited_text(path: Path, keys: list, value, text: str | None = None) -> tuple[str, object]:
    """(the file's text, or `text` given for it, with the number at `keys` replaced, the old value)."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    data, smap = load_yaml(text, str(path))
    cur = data
    for i, key in enumerate(keys):
        if not isinstance(cur, dict) or key not in cur:
            options = list(cur) if isinstance(cur, dict) else []
            raise EditError(f"{path.name} has no '{'.'.join(keys[: i + 1])}'{suggestion(key, options)}")
        cur = cur[key]
    if not isinstance(cur, (int, float)):
        raise EditError(f"'{'.'.join(keys)}' in {path.name} is not a number")
    mark = smap.value(tuple(keys))
    lines = text.split("\n")
    line = lines[mark.line - 1]
    match = _NUMBER.match(line, mark.col - 1)
    if not match:
        raise EditError(f"cannot find the value of '{'.'.join(keys)}' in {path.name}")
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    lines[mark.line - 1] = line[: match.start()] + shown + line[match.end():]
    return "\n".join(lines), cur
