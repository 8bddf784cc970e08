"""Turn checked expressions into Python functions.

A checked expression is rewritten so that metric names read `m[...]`, event fields
read `e[...]`, order fields read `o[...]` and `tier.*` become constants of the tier
being compiled; the result is compiled once into a function `f(m, e, o)`. Several
expressions can be compiled into one stage function returning a tuple, which saves
one call per expression on the hot path.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from types import FunctionType

from genesis.expr.checker import Checked, Scope, check
from genesis.expr.runtime import FUNCTIONS

_NAMESPACE_ARG = {"event": "e", "order": "o"}


def _tier_value(tier: dict, keys: tuple):
    cur = tier
    for key in keys:
        cur = cur[key]
    return cur


class _Rewriter(ast.NodeTransformer):
    def __init__(self, tier: dict | None, event_names: frozenset):
        self.tier = tier or {}
        self.event_names = event_names

    @staticmethod
    def _lookup(arg: str, key: str, like: ast.AST) -> ast.AST:
        node = ast.Subscript(value=ast.Name(id=arg, ctx=ast.Load()), slice=ast.Constant(key), ctx=ast.Load())
        return ast.copy_location(node, like)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in FUNCTIONS:
            return node
        return self._lookup("e" if node.id in self.event_names else "m", node.id, node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        parts = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        parts.append(cur.id)
        root, *rest = parts[::-1]
        if root == "tier":
            value = _tier_value(self.tier, tuple(rest))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                # a unary minus node, not a negative constant: unparse then keeps
                # the parentheses that `-3 ** 2` would otherwise lose
                folded = ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-value))
            else:
                folded = ast.Constant(value)
            return ast.copy_location(folded, node)
        return self._lookup(_NAMESPACE_ARG[root], rest[0], node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node.args = [self.visit(a) for a in node.args]
        return node


def to_python(checked: Checked, tier: dict | None = None, event_names: frozenset = frozenset()) -> str:
    """Python source of a checked expression with names resolved for one tier."""
    tree = ast.parse(checked.source.strip(), mode="eval")  # fresh copy: rewriting mutates
    body = _Rewriter(tier, event_names).visit(tree.body)
    return ast.unparse(ast.fix_missing_locations(body))


def _code(name: str, body: str):
    return compile(f"def {name}(m, e, o):\n    return {body}\n", f"<genesis:{name}>", "exec")


def _function(name: str, code) -> FunctionType:
    # `bool` is for generated rule wrappers only: the checker never lets a user call it.
    namespace = {"__builtins__": {}, "bool": bool, **FUNCTIONS}
    exec(code, namespace)  # noqa: S102 - body is generated from a whitelisted syntax tree
    return namespace[name]


def make_function(name: str, body: str, cache=None) -> FunctionType:
    """The function `name(m, e, o)` returning the Python expression `body`; its code is
    taken from `cache` (a genesis.expr.codecache.CodeCache) when it holds it."""
    if cache is None:
        return _function(name, _code(name, body))
    return _function(name, cache.get(("function", name, body), lambda: _code(name, body)))


@dataclass(frozen=True)
class CompiledExpr:
    """One compiled expression: call it with (metrics, event, order) mappings."""

    checked: Checked
    python: str
    fn: FunctionType

    def __call__(self, m=None, e=None, o=None):
        return self.fn(m, e, o)

    @property
    def reads(self) -> frozenset:
        """Bare names this expression reads (the engine re-evaluates it when one changes)."""
        return self.checked.names


def compile_checked(checked: Checked, tier: dict | None = None, event_names: frozenset = frozenset(),
                    name: str = "expr", cache=None) -> CompiledExpr:
    """Compile an already checked expression for one tier. With `cache` (a CodeCache
    whose key covers `tier`), the Python source and code are taken from it when it holds them."""
    if cache is None:
        python = to_python(checked, tier, event_names)
        return CompiledExpr(checked, python, make_function(name, python))

    def make():
        python = to_python(checked, tier, event_names)
        return python, _code(name, python)

    python, code = cache.get(("expr", name, checked.source, tuple(sorted(event_names))), make)
    return CompiledExpr(checked, python, _function(name, code))


def compile_expr(source: str, scope: Scope, tier: dict | None = None) -> CompiledExpr:
    """Check and compile in one step (tier defaults to the only tier in scope, if one)."""
    checked = check(source, scope)
    if tier is None and scope.tiers and len(scope.tiers) == 1:
        tier = next(iter(scope.tiers.values()))
    return compile_checked(checked, tier, scope.event_names)


def compile_stage(bodies: list[str], name: str = "stage", cache=None) -> FunctionType:
    """One function f(m, e, o) returning a tuple with the value of every Python body
    (each the `.python` of a CompiledExpr, or several joined with `and`)."""
    if not bodies:
        return make_function(name, "()", cache)
    return make_function(name, "(" + ", ".join(f"({b})" for b in bodies) + ",)", cache)
