"""Problems found in configuration files, reported as `file:line:col: message`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from difflib import get_close_matches


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake, located in one file."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


def suggestion(word: str, options) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    if not isinstance(word, str):
        return ""
    match = get_close_matches(word, [o for o in options if isinstance(o, str)], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def format_text(problems: list[Problem]) -> str:
    """One problem per line, then a summary line."""
    lines = [str(p) for p in problems]
    lines.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
    return "\n".join(lines)


def format_json(problems: list[Problem], files_checked: int) -> str:
    """Machine-readable report for CI."""
    return json.dumps({"ok": not problems, "files_checked": files_checked,
                       "problems": [asdict(p) for p in problems]}, indent=2)
