"""Parse a rule expression and prove it belongs to the safe subset.

The subset: numbers, booleans, short text constants (only in == / != comparisons),
names that exist in the scope, `tier.<path>` constants, `event.<field>` and
`order.<field>` in the namespaces the scope opens, arithmetic (+ - * / // % and small
constant powers), comparisons, and/or/not, `a if c else b`, and the functions
abs min max clamp round. Everything else is refused with a message naming what was
found and where (a 0-based character offset into the expression).
"""
from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass, field
from difflib import get_close_matches

MAX_LENGTH = 1000        # characters
MAX_DEPTH = 32           # levels of the syntax tree
MAX_NODES = 400          # syntax-tree nodes
MAX_INT = 10**15         # largest integer literal
MAX_FLOAT = 1e15         # largest float literal
MAX_POWER = 8            # largest |exponent| of **
MAX_TEXT = 64            # longest text constant
MAX_ARGS = 8             # most arguments to min/max

NUM, TEXT = "number", "text"

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_FUNC_ARITY = {"abs": (1, 1), "min": (2, MAX_ARGS), "max": (2, MAX_ARGS), "clamp": (3, 3), "round": (1, 2)}

_FORBIDDEN = {
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Subscript: "subscripts ([...]) are not allowed",
    ast.Slice: "slices are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Starred: "star arguments are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


class ExprError(Exception):
    """An expression outside the safe subset; `offset` is 0-based into the text."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass
class Scope:
    """What an expression may read.

    names: bare name -> NUM or TEXT (metrics, flags, and event fields in event scope)
    enums: bare name -> allowed text values (for TEXT names with a fixed set)
    namespaces: e.g. {"event": {field: type}, "order": {field: type}}
    tiers: tier name -> nested dict of that tier's numbers; `tier.x.y` must exist in each
    """

    names: dict[str, str] = field(default_factory=dict)
    enums: dict[str, tuple] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    tiers: dict[str, dict] | None = field(default_factory=dict)  # None: accept any tier.* unchecked
    event_names: frozenset = frozenset()  # bare names that are fields of the current event


@dataclass
class Checked:
    """A parsed expression that passed every check, and what it reads."""

    source: str
    tree: ast.Expression
    names: frozenset          # bare names read
    fields: frozenset         # (namespace, field) pairs read
    tier_refs: frozenset      # tuples of keys under `tier.`
    kind: str                 # NUM or TEXT


def _suggest(word: str, options) -> str:
    match = get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


_IDENT = re.compile(r"[^\W\d]\w*")


def _original_offset(source: str, normal_offset: int) -> int:
    """Offset in `source` of the character at `normal_offset` of its NFKC form
    (normalisation can change lengths, e.g. a ligature becomes three letters)."""
    for i in range(len(source) + 1):
        if len(unicodedata.normalize("NFKC", source[:i])) > normal_offset:
            return max(i - 1, 0)
    return len(source)


def _precheck_text(source: str) -> None:
    if not isinstance(source, str):
        raise ExprError("an expression must be text")
    if len(source) > MAX_LENGTH:
        raise ExprError(f"expression is {len(source)} characters long; the limit is {MAX_LENGTH}")
    if not source.strip():
        raise ExprError("expression is empty")
    if not source.isascii():
        normal = unicodedata.normalize("NFKC", source)
        for m in _IDENT.finditer(normal):
            if m.group().startswith("_"):
                raise ExprError(f"private or dunder name '{m.group()}' is not allowed",
                                _original_offset(source, m.start()))
        bad = next(i for i, ch in enumerate(source) if not ch.isascii())
        raise ExprError(f"non-ASCII character {source[bad]!r} is not allowed in expressions", bad)
    if "\x00" in source:
        raise ExprError("NUL character in expression", source.index("\x00"))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _parse(source: str) -> ast.Expression:
    try:
        return ast.parse(source, mode="eval")
    except SyntaxError as exc:
        starts = _line_starts(source)
        line = min(max((exc.lineno or 1) - 1, 0), len(starts) - 1)
        offset = starts[line] + max((exc.offset or 1) - 1, 0)
        msg = exc.msg or "invalid syntax"
        if "assign" in msg or "statement" in msg or "invalid syntax" == msg:
            msg = f"{msg} (an expression is a single formula, not a statement)"
        raise ExprError(f"syntax error: {msg}", offset) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("expression is too deeply nested to parse") from None


def _measure(tree: ast.AST) -> None:
    """Reject trees that are too deep or too large, without recursion."""
    stack = [(tree, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExprError(f"expression has more than {MAX_NODES} parts", getattr(node, "col_offset", 0))
        if depth > MAX_DEPTH:
            raise ExprError(f"expression is nested more than {MAX_DEPTH} levels deep", getattr(node, "col_offset", 0))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Checker:
    def __init__(self, scope: Scope, source: str):
        self.scope = scope
        self.source = source
        self.line_starts = _line_starts(source)
        self.names: set = set()
        self.fields: set = set()
        self.tier_refs: set = set()

    def fail(self, message: str, node: ast.AST):
        line = min(max(getattr(node, "lineno", 1) - 1, 0), len(self.line_starts) - 1)
        raise ExprError(message, self.line_starts[line] + getattr(node, "col_offset", 0))

    def visit(self, node: ast.AST) -> str:
        for bad, message in _FORBIDDEN.items():
            if isinstance(node, bad):
                self.fail(message, node)
        method = getattr(self, "v_" + type(node).__name__, None)
        if method is None:
            self.fail(f"'{type(node).__name__}' is not allowed in expressions", node)
        return method(node)

    # leaves
    def v_Constant(self, node: ast.Constant) -> str:
        value = node.value
        if isinstance(value, bool):
            return NUM
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                self.fail(f"number {str(value)[:20]}... is too large (limit {MAX_INT:.0e})", node)
            return NUM
        if isinstance(value, float):
            if not abs(value) <= MAX_FLOAT:
                self.fail(f"number {value} is too large (limit {MAX_FLOAT:.0e})", node)
            return NUM
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                self.fail(f"text constant longer than {MAX_TEXT} characters", node)
            return TEXT
        if value is None:
            self.fail("None is not allowed; use a number", node)
        self.fail(f"constant {value!r} is not allowed", node)

    def v_Name(self, node: ast.Name) -> str:
        name = node.id
        if name.startswith("_"):
            self.fail(f"private or dunder name '{name}' is not allowed", node)
        if name in self.scope.names:
            self.names.add(name)
            return self.scope.names[name]
        if name in self.scope.namespaces or name == "tier":
            self.fail(f"'{name}' is a namespace; name one of its fields as {name}.<field>", node)
        if name in _FUNC_ARITY:
            self.fail(f"'{name}' is a function; call it as {name}(...)", node)
        self.fail(f"unknown name '{name}'{_suggest(name, self.scope.names)}", node)

    def _dotted(self, node: ast.Attribute) -> list[str]:
        parts = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            if cur.attr.startswith("_"):
                self.fail(f"private or dunder name '{cur.attr}' is not allowed", cur)
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            self.fail("attribute access is only allowed on the tier, event and order namespaces", node)
        if cur.id.startswith("_"):
            self.fail(f"private or dunder name '{cur.id}' is not allowed", cur)
        parts.append(cur.id)
        return parts[::-1]

    def v_Attribute(self, node: ast.Attribute) -> str:
        parts = self._dotted(node)
        root, rest = parts[0], parts[1:]
        if root == "tier":
            return self._tier(rest, node)
        if root in self.scope.namespaces:
            fields = self.scope.namespaces[root]
            if len(rest) != 1:
                self.fail(f"'{'.'.join(parts)}': {root} fields are one level deep", node)
            if rest[0] not in fields:
                self.fail(f"unknown field '{root}.{rest[0]}'{_suggest(rest[0], fields)}", node)
            self.fields.add((root, rest[0]))
            return fields[rest[0]]
        allowed = sorted(["tier", *self.scope.namespaces])
        self.fail(
            f"attribute access '{'.'.join(parts)}' is not allowed; only {', '.join(allowed)} have fields", node
        )

    def _tier(self, keys: list[str], node: ast.AST) -> str:
        if not keys:
            self.fail("'tier' is a namespace; name one of its values as tier.<section>.<key>", node)
        if self.scope.tiers is None:
            self.tier_refs.add(tuple(keys))
            return NUM
        if not self.scope.tiers:
            self.fail("tier values are not available here", node)
        for tier_name, data in self.scope.tiers.items():
            cur = data
            for i, key in enumerate(keys):
                if not isinstance(cur, dict) or key not in cur:
                    options = cur.keys() if isinstance(cur, dict) else ()
                    path = ".".join(["tier", *keys[: i + 1]])
                    self.fail(f"'{path}' is not defined in tier '{tier_name}'{_suggest(key, options)}", node)
                cur = cur[key]
            if isinstance(cur, dict):
                self.fail(f"'tier.{'.'.join(keys)}' is a section, not a number; name one of: "
                          f"{', '.join(sorted(cur))}", node)
            if isinstance(cur, bool) or not isinstance(cur, (int, float)):
                if not isinstance(cur, bool):
                    self.fail(f"'tier.{'.'.join(keys)}' in tier '{tier_name}' is not a number", node)
        self.tier_refs.add(tuple(keys))
        return NUM

    # compound
    def v_UnaryOp(self, node: ast.UnaryOp) -> str:
        if isinstance(node.op, ast.Invert):
            self.fail("bitwise operators are not allowed", node)
        kind = self.visit(node.operand)
        if kind == TEXT:
            self.fail("text values can only be compared with == or !=", node)
        return NUM

    def v_BinOp(self, node: ast.BinOp) -> str:
        if isinstance(node.op, (ast.LShift, ast.RShift)):
            self.fail("shift operators (<< >>) are not allowed", node)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr, ast.BitXor)):
            self.fail("bitwise operators (& | ^) are not allowed; use and/or", node)
        if not isinstance(node.op, _BINOPS):
            self.fail(f"operator '{type(node.op).__name__}' is not allowed", node)
        if isinstance(node.op, ast.Pow):
            self._check_power(node)
        for side in (node.left, node.right):
            if self.visit(side) == TEXT:
                self.fail("text values can only be compared with == or !=", node)
        return NUM

    def _check_power(self, node: ast.BinOp) -> None:
        exp = node.right
        sign = 1
        if isinstance(exp, ast.UnaryOp) and isinstance(exp.op, (ast.USub, ast.UAdd)):
            sign = -1 if isinstance(exp.op, ast.USub) else 1
            exp = exp.operand
        if not (isinstance(exp, ast.Constant) and isinstance(exp.value, (int, float))
                and not isinstance(exp.value, bool)):
            self.fail("the exponent of ** must be a number written in the expression", node)
        if abs(sign * exp.value) > MAX_POWER:
            self.fail(f"exponent {sign * exp.value} is too large (limit {MAX_POWER})", node)
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node.left)):
            self.fail("powers of powers are not allowed", node)

    def v_BoolOp(self, node: ast.BoolOp) -> str:
        for value in node.values:
            if self.visit(value) == TEXT:
                self.fail("text values can only be compared with == or !=", value)
        return NUM

    def v_Compare(self, node: ast.Compare) -> str:
        operands = [node.left, *node.comparators]
        kinds = [self.visit(o) for o in operands]
        for i, op in enumerate(node.ops):
            if isinstance(op, (ast.Is, ast.IsNot)):
                self.fail("'is' is not allowed; use == or !=", node)
            if isinstance(op, (ast.In, ast.NotIn)):
                self.fail("'in' is not allowed; compare with == and combine with or", node)
            left, right = kinds[i], kinds[i + 1]
            if TEXT in (left, right):
                if not isinstance(op, (ast.Eq, ast.NotEq)):
                    self.fail("text values can only be compared with == or !=", node)
                if left != right:
                    self.fail("cannot compare text with a number", node)
                self._check_enum(operands[i], operands[i + 1])
                self._check_enum(operands[i + 1], operands[i])
        return NUM

    def _check_enum(self, name_node: ast.AST, const_node: ast.AST) -> None:
        if isinstance(name_node, ast.Name) and isinstance(const_node, ast.Constant):
            values = self.scope.enums.get(name_node.id)
            if values and const_node.value not in values:
                self.fail(
                    f"'{name_node.id}' is never {const_node.value!r}; its values are "
                    f"{', '.join(values)}{_suggest(const_node.value, values)}", const_node)

    def v_IfExp(self, node: ast.IfExp) -> str:
        if self.visit(node.test) == TEXT:
            self.fail("a condition cannot be text", node.test)
        body, orelse = self.visit(node.body), self.visit(node.orelse)
        if body != orelse:
            self.fail("both branches of 'if ... else' must be numbers, or both text", node)
        return body

    def v_Call(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name):
            self.fail("only the functions abs, min, max, clamp and round can be called; methods cannot", node)
        name = node.func.id
        if name.startswith("_"):
            self.fail(f"private or dunder name '{name}' is not allowed", node)
        if name not in _FUNC_ARITY:
            self.fail(f"function '{name}' is not allowed; use one of abs, min, max, clamp, round"
                      f"{_suggest(name, _FUNC_ARITY)}", node)
        if node.keywords:
            self.fail(f"keyword arguments are not allowed in {name}()", node)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.fail(f"star arguments are not allowed in {name}()", arg)
        low, high = _FUNC_ARITY[name]
        if not low <= len(node.args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            self.fail(f"{name}() takes {want} arguments, got {len(node.args)}", node)
        if name == "round" and len(node.args) == 2:
            digits = node.args[1]
            if not (isinstance(digits, ast.Constant) and type(digits.value) is int and 0 <= digits.value <= 12):
                self.fail("round(x, n): n must be a whole number from 0 to 12 written in the expression", node)
        for arg in node.args:
            if self.visit(arg) == TEXT:
                self.fail(f"{name}() takes numbers, not text", arg)
        return NUM


def check(source: str, scope: Scope) -> Checked:
    """Parse `source` and check it against the safe subset and `scope`; raise ExprError."""
    _precheck_text(source)
    leading = len(source) - len(source.lstrip())
    stripped = source.strip()
    checker = _Checker(scope, stripped)
    try:
        tree = _parse(stripped)
        _measure(tree)
        kind = checker.visit(tree.body)
    except ExprError as exc:
        exc.offset += leading
        raise
    return Checked(source, tree, frozenset(checker.names), frozenset(checker.fields),
                   frozenset(checker.tier_refs), kind)
