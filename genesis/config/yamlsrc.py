"""Load YAML into plain data while remembering where every key and value came from.

PyYAML's composer gives nodes with marks; we build the Python values ourselves so that
we can (a) record a line/column for every path, and for a text value the position of
any character inside it, (b) refuse duplicate keys, complex keys and unknown tags, and
(c) stop hostile files (alias bombs, deep nesting, huge files) with a clear message
instead of hanging or crashing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_FILE_BYTES = 256_000   # the default configuration's largest file is about 10 KB
MAX_NODES = 200_000
MAX_DEPTH = 64

Path = tuple  # a JSON path: tuple of str keys and int indexes

# PyYAML is imported by the functions that parse (import yaml  # noqa: PLC0415), not here: a warm
# start reads every configuration document, source map included, from the cache
# (genesis/config/loader.py), and importing PyYAML costs more than reading them all back.
_SPACE = " \t\r\n"


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
    spans: dict = field(default_factory=dict)     # path -> (start, end) index of a text scalar
    scalars: dict = field(default_factory=dict)   # path -> the text value
    text: str = ""

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

    def inside(self, path: Path, offset: int) -> Mark:
        """Mark of character `offset` of the text value at `path`.

        YAML may quote a value or fold it over several lines; the value's characters
        are walked in step with the source, a folded line break (newline plus
        indentation) standing for one space, so the mark lands on the right line and
        column even in a wrapped expression.
        """
        path = tuple(path)
        if path not in self.spans:
            return self.value(path)
        start, end = self.spans[path]
        raw, value = self.text[start:end], self.scalars[path]
        style = self.scalar_styles.get(path)
        pos = 1 if style in ("'", '"') else (raw.find("\n") + 1 if style in ("|", ">") else 0)
        for ch in value[:offset]:
            if ch in _SPACE:
                if pos < len(raw) and raw[pos] == "\n":
                    pos += 1
                    while pos < len(raw) and raw[pos] in " \t":
                        pos += 1
                elif pos < len(raw) and raw[pos] in _SPACE:
                    pos += 1
            else:
                found = raw.find(ch, pos)
                pos = found + 1 if found >= 0 else pos
        if offset < len(value) and value[offset] not in _SPACE:
            found = raw.find(value[offset], pos)
            pos = found if found >= 0 else pos
        index = start + min(pos, len(raw))
        line = self.text.count("\n", 0, index) + 1
        return Mark(line, index - self.text.rfind("\n", 0, index))

    def to_json(self) -> dict:
        """The map as JSON data, without `text`: every path once ("paths"), then flat lists that
        name a path by its index (few containers: a warm start decodes it quickly)."""
        paths = list(dict.fromkeys([*self.values, *self.keys, *self.scalar_styles, *self.spans, *self.scalars]))
        index = {p: i for i, p in enumerate(paths)}
        return {"paths": [list(p) for p in paths],
                "values": [n for p, m in self.values.items() for n in (index[p], m.line, m.col)],
                "keys": [n for p, m in self.keys.items() for n in (index[p], m.line, m.col)],
                "scalar_styles": [x for p, style in self.scalar_styles.items() for x in (index[p], style)],
                "spans": [n for p, (start, end) in self.spans.items() for n in (index[p], start, end)],
                "scalars": [x for p, value in self.scalars.items() for x in (index[p], value)]}

    @classmethod
    def from_json(cls, data: dict, text: str) -> SourceMap:
        """The map `to_json` gave as `data`, of the document `text`."""
        paths = [tuple(p) for p in data["paths"]]
        values, keys, styles, spans, scalars = (data[k] for k in ("values", "keys", "scalar_styles", "spans",
                                                                  "scalars"))
        return cls(values={paths[values[n]]: Mark(values[n + 1], values[n + 2]) for n in range(0, len(values), 3)},
                   keys={paths[keys[n]]: Mark(keys[n + 1], keys[n + 2]) for n in range(0, len(keys), 3)},
                   scalar_styles={paths[styles[n]]: styles[n + 1] for n in range(0, len(styles), 2)},
                   spans={paths[spans[n]]: (spans[n + 1], spans[n + 2]) for n in range(0, len(spans), 3)},
                   scalars={paths[scalars[n]]: scalars[n + 1] for n in range(0, len(scalars), 2)},
                   text=text)


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

# PyYAML's parser words -> what a person editing the file needs to hear
_PLAIN_WORDS = [
    ("expected <block end>", "this line is indented differently from the lines around it; "
                             "line it up with the keys of its block"),
    ("found character '\\t' that cannot start any token", "tab character: indent with spaces"),
    ("mapping values are not allowed here", "unexpected ':'; quote a value that contains ': ', "
                                            "or check the indentation"),
    ("could not find expected ':'", "a key is missing its ':' (or a quote is not closed)"),
    ("expected ',' or ']'", "unclosed '[': a list is not closed with ']'"),
    ("expected ',' or '}'", "unclosed '{': a mapping is not closed with '}'"),
    ("found unexpected end of stream", "unclosed quote: the file ends inside a quoted value"),
]


def _mark(node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _syntax_error(exc) -> YamlError:
    """The YamlError for PyYAML's MarkedYAMLError `exc`, in plain words."""
    mark = exc.problem_mark or exc.context_mark
    where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
    detail = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    message = next((plain for jargon, plain in _PLAIN_WORDS if jargon in detail), detail)
    opened = exc.context_mark
    if opened and "unclosed" in message:
        # point at the bracket that was never closed, not where the parser gave up
        message += f" (opened at line {opened.line + 1}, column {opened.column + 1})"
        where = Mark(opened.line + 1, opened.column + 1)
    return YamlError(f"YAML syntax error: {message}", where)


def _parse(text: str, loader_class) -> tuple[Any, SourceMap]:
    """Data and source map of one YAML document, read with `loader_class`."""
    _check_depth(text, loader_class)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, SourceMap(text=text)
        builder = _Builder(loader, text)
        return builder.build(node, (), 0), builder.smap
    finally:
        loader.dispose()


def _check_depth(text: str, loader_class=None) -> None:
    """Refuse nesting deeper than MAX_DEPTH before the (recursive) composer sees it."""
    import yaml  # noqa: PLC0415 - only a document parsed afresh needs PyYAML

    opening = (yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken,
               yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)
    closing = (yaml.BlockEndToken, yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)
    depth = 0
    try:
        for token in yaml.scan(text, Loader=loader_class or yaml.SafeLoader):
            if isinstance(token, opening):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlError(f"YAML nesting is too deep (more than {MAX_DEPTH} levels)",
                                    Mark(token.start_mark.line + 1, token.start_mark.column + 1))
            elif isinstance(token, closing):
                depth -= 1
    except yaml.YAMLError:
        return  # a syntax error: the parser reports the first problem with its own position


class _Builder:
    def __init__(self, loader, text: str):
        import yaml  # noqa: PLC0415 - only a document parsed afresh needs PyYAML

        self.yaml = yaml
        self.loader = loader
        self.smap = SourceMap(text=text)
        self.count = 0

    def build(self, node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(
                f"document expands to more than {MAX_NODES} values (alias bomb or file too large)",
                _mark(node),
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"YAML nesting is too deep (more than {MAX_DEPTH} levels)", _mark(node))
        self.smap.values[path] = _mark(node)
        if isinstance(node, self.yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, self.yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise YamlError(f"unsupported YAML tag {node.tag!r}", _mark(node))
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, self.yaml.MappingNode):
            return self._mapping(node, path, depth)
        raise YamlError("unsupported YAML node", _mark(node))  # pragma: no cover

    def _scalar(self, node, path: Path) -> Any:
        if node.tag not in _PLAIN_TAGS:
            raise YamlError(f"unsupported YAML tag {node.tag!r}", _mark(node))
        self.smap.scalar_styles[path] = node.style or None   # libyaml marks a plain scalar '', PyYAML None
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # dates stay text; no key of ours is a date
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, float) and value != value:
            raise YamlError("NaN is not a valid number here", _mark(node))
        if isinstance(value, str):
            self.smap.spans[path] = (node.start_mark.index, node.end_mark.index)
            self.smap.scalars[path] = value
        return value

    def _mapping(self, node, path: Path, depth: int) -> dict:
        if node.tag != "tag:yaml.org,2002:map":
            raise YamlError(f"unsupported YAML tag {node.tag!r}", _mark(node))
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError("merge keys (<<) are not supported; write the keys out", _mark(key_node))
            if not isinstance(key_node, self.yaml.ScalarNode):
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
        raise YamlError(f"file is larger than {MAX_FILE_BYTES} bytes; configuration files are small, "
                        "is this the right file?", Mark(1, 1))
    import yaml  # noqa: PLC0415 - imported on the first parse, not by a warm start (see above)

    # libyaml, when PyYAML was built with it, gives the same nodes and marks about 20 times faster; the
    # pure-Python parser stays the reference: it words every problem (a file refused is parsed again by it)
    fast_loader = getattr(yaml, "CSafeLoader", None)
    if fast_loader is not None:
        try:
            return _parse(text, fast_loader)
        except (YamlError, yaml.YAMLError, RecursionError, ValueError):
            pass   # parsed again below, for the reference parser's message and position
    try:
        return _parse(text, yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML error: {exc}", Mark(1, 1)) from None
    except RecursionError:  # pragma: no cover - _check_depth keeps nesting shallow
        raise YamlError("YAML nesting is too deep", Mark(1, 1)) from None
