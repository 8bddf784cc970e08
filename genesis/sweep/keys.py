"""Configuration numbers named `FILE: dotted.path`: find them, change them in a file's
text (layout and comments kept), and read and apply a sweep's YAML diff."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from genesis.config.problems import suggestion
from genesis.config.yamlsrc import YamlError, load_yaml

_NUMBER = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9]*)?([eE][-+]?[0-9]+)?")


class ConfigKeyError(ValueError):
    """A key names no number in the configuration."""


def split_key(key: str) -> tuple[str, tuple]:
    """("tiers/hunter.yaml", ("limits", "max_position_pct")) of "tiers/hunter.yaml: limits.max_position_pct"."""
    file, sep, dotted = key.partition(":")
    if not sep or not file.strip().endswith(".yaml") or not dotted.strip():
        raise ConfigKeyError(f"{key!r}: write FILE: dotted.path, e.g. 'tiers/hunter.yaml: limits.max_position_pct'")
    return file.strip(), tuple(dotted.strip().split("."))


def _step(node, part: str, where: str):
    """(index or key, child) of one path part: a mapping key, an item's id in a list, or a list index."""
    if isinstance(node, dict):
        if part in node:
            return part, node[part]
        # strategies.yaml and rule files: `btc_mean_reversion.params...` names an item of the top-level list
        lists = [k for k, v in node.items() if isinstance(v, list)]
        if len(lists) == 1:
            index, child = _step(node[lists[0]], part, where)
            return (lists[0], index), child
        raise ConfigKeyError(f"{where}: no '{part}'{suggestion(part, [str(k) for k in node])}")
    if isinstance(node, list):
        ids = [item.get("id") for item in node if isinstance(item, dict)]
        if part in ids:
            index = ids.index(part)
            return index, node[index]
        if part.isdigit() and int(part) < len(node):
            return int(part), node[int(part)]
        raise ConfigKeyError(f"{where}: no item with id '{part}'{suggestion(part, [str(i) for i in ids if i])}")
    raise ConfigKeyError(f"{where}: '{part}' is inside a value that is not a mapping or a list")


def resolve(data, file: str, path: tuple) -> tuple[tuple, object]:
    """(the YAML path with list indices, the value there) of `path` in a parsed file."""
    node, out = data, []
    for i, part in enumerate(path):
        where = f"{file}: {'.'.join(path[: i + 1])}"
        index, node = _step(node, part, where)
        out += list(index) if isinstance(index, tuple) else [index]
    return tuple(out), node


def set_number(text: str, file: str, path: tuple, value) -> str:
    """`text` of `file` with the number at `path` replaced by `value`."""
    try:
        data, smap = load_yaml(text, file)
    except YamlError as exc:
        raise ConfigKeyError(f"{file}:{exc.mark.line}: {exc.message}") from None
    where = f"{file}: {'.'.join(path)}"
    at, old = resolve(data, file, path)
    if isinstance(old, bool) or not isinstance(old, (int, float)):
        raise ConfigKeyError(f"{where} is {old!r}, not a plain number; a sweep changes numbers only")
    mark = smap.value(at)
    lines = text.split("\n")
    line = lines[mark.line - 1]
    match = _NUMBER.match(line, mark.col - 1)
    if not match:
        raise ConfigKeyError(f"{where}: cannot find its number in the text")
    lines[mark.line - 1] = line[: match.start()] + shown(value) + line[match.end():]
    return "\n".join(lines)


def shown(value) -> str:
    """A number as written into YAML: whole numbers without a point, others to 10 digits."""
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value) if isinstance(value, int) else f"{value:.10g}"


def apply_values(files: dict, values: dict) -> dict:
    """{file: text} with each "FILE: path" of `values` changed; raise ConfigKeyError for a key
    that names no number (or a file that is not in the configuration)."""
    out = dict(files)
    for key, value in values.items():
        file, path = split_key(key)
        if file not in out:
            raise ConfigKeyError(f"{key!r}: the configuration has no file {file}{suggestion(file, list(out))}")
        out[file] = set_number(out[file], file, path, value)
    return out


def diff_document(values: dict) -> dict:
    """The YAML diff of one trial's values: {file: {dotted.path: value}}."""
    out: dict = {}
    for key, value in values.items():
        file, path = split_key(key)
        out.setdefault(file, {})[".".join(path)] = value
    return out


def read_diff(path: Path) -> dict:
    """{"FILE: path": value} of a diff file written by `genesis sweep`; ValueError when it is not one."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigKeyError(f"{path}: cannot read the diff ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigKeyError(f"{path}: a diff maps each file to its changed keys, e.g. "
                        "`tiers/hunter.yaml: {limits.max_position_pct: 4}`")
    values = {}
    for file, keys in data.items():
        for dotted, value in keys.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigKeyError(f"{path}: {file}: {dotted} is {value!r}, not a number")
            values[f"{file}: {dotted}"] = value
    return values
