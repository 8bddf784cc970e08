"""Load YAML into plain data while remembering where every key and value came from.

PyYAML's composer gives nodes with marks; we build the Python values ourselves so that
we can (a) record a line/column for every path, (b) refuse duplicate keys, non-string
keys and unknown tags, and (c) stop hostile files (alias bombs, deep nesting, huge
files) with a clear message instead of hanging or crashing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 200_000
MAX_DEPTH = 64

Path = tuple  # a JSON path: tuple of str keys and int indexes


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in a source file."""

    line: int
    col: int


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a document sits in its file."""

    values: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)
    scalar_styles: dict = field(default_factory=dict)

    def value(self, path: Path) -> Mark:
        """Mark of the value at `path`, or of its nearest located ancestor."""
        path = tuple(path)
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, Mark(1, 1))

    def key(self, path: Path) -> Mark:
        """Mark of the key that names the value at `path` (falls back to the value)."""
        path = tuple(path)
        return self.keys.get(path) or self.value(path)


class YamlError(Exception):
    """A YAML file that cannot be read; carries the position of the problem."""

    def __init__(self, message: str, mark: Mark):
        super().__init__(message)
        self.message = message
        self.mark = mark


_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}


def _mark(node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.smap = SourceMap()
        self.count = 0

    def build(self, node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                f"document expands to more than {MAX_NODES} values (alias bomb or file too large)",
                _mark(node),
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"nesting deeper than {MAX_DEPTH} levels", _mark(node))
        self.smap.values[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise YamlError(f"unsupported YAML tag {node.tag!r}", _mark(node))
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        raise YamlError("unsupported YAML node", _mark(node))  # pragma: no cover

    def _scalar(self, node, path: Path) -> Any:
        if node.tag not in _PLAIN_TAGS:
            raise YamlError(f"unsupported YAML tag {node.tag!r}", _mark(node))
        self.smap.scalar_styles[path] = node.style
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # dates stay text; no key of ours is a date
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, float) and value != value:
            raise YamlError("NaN is not a valid number here", _mark(node))
        return value

    def _mapping(self, node, path: Path, depth: int) -> dict:
        if node.tag != "tag:yaml.org,2002:map":
            raise YamlError(f"unsupported YAML tag {node.tag!r}", _mark(node))
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError("merge keys (<<) are not supported; write the keys out", _mark(key_node))
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("a key must be a plain name, not a list or mapping", _mark(key_node))
            # Keys are names in every Genesis file: keep their literal text, so that
            # `on:` or `yes:` stay words instead of YAML 1.1 booleans.
            key = key_node.value
            if key in out:
                first = self.smap.keys[path + (key,)]
                raise YamlError(f"duplicate key {key!r} (first defined at line {first.line})", _mark(key_node))
            self.smap.keys[path + (key,)] = _mark(key_node)
            out[key] = self.build(value_node, path + (key,), depth + 1)
        return out


def load_yaml(text: str, name: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse one YAML document; return (data, source map) or raise YamlError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YamlError(f"file is larger than {MAX_FILE_BYTES} bytes", Mark(1, 1))
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
            message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
            raise YamlError(f"YAML syntax error: {message}", where) from None
        except yaml.YAMLError as exc:
            raise YamlError(f"YAML error: {exc}", Mark(1, 1)) from None
        except RecursionError:
            raise YamlError("YAML nesting is too deep", Mark(1, 1)) from None
        if node is None:
            return None, SourceMap()
        builder = _Builder(loader)
        try:
            data = builder.build(node, (), 0)
        except RecursionError:
            raise YamlError("YAML nesting is too deep", Mark(1, 1)) from None
        return data, builder.smap
    finally:
        loader.dispose()
