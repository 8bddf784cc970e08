"""What can be proved about a checked expression before it runs.

`fold` computes the value of a part of an expression that reads nothing but constants
and `tier.*` values (with one tier's values filled in); `zero_divisors` finds each
division (`/`, `//`, `%`) whose divisor folds to 0, and `constant_condition` tells
whether a condition reads no name at all, so that it is always true or always false.
Folding follows Python's semantics, which the compiled expressions share.
"""
from __future__ import annotations

import ast
import operator

from genesis.expr.checker import Checked
from genesis.expr.runtime import FUNCTIONS

_MAX_FOLDED = 1e300  # a larger whole number is left unfolded (cost stays small)
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_DIVISIONS = (ast.Div, ast.FloorDiv, ast.Mod)


class NotConstant(Exception):
    """The part reads a name, an event or order field, or cannot be computed."""


def _tier_value(tier: dict | None, node: ast.Attribute):
    keys = []
    cur: ast.AST = node
    while isinstance(cur, ast.Attribute):
        keys.append(cur.attr)
        cur = cur.value
    if tier is None or not isinstance(cur, ast.Name) or cur.id != "tier":
        raise NotConstant
    value = tier
    for key in reversed(keys):
        if not isinstance(value, dict) or key not in value:
            raise NotConstant
        value = value[key]
    if isinstance(value, dict):
        raise NotConstant
    return value


def fold(node: ast.AST, tier: dict | None = None):
    """The value of `node` when it reads only constants (and `tier.*` values of `tier`);
    raise NotConstant otherwise (a division by zero inside is also NotConstant)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute):
        return _tier_value(tier, node)
    if isinstance(node, ast.UnaryOp):
        value = fold(node.operand, tier)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = fold(node.left, tier), fold(node.right, tier)
        try:
            value = _BINARY[type(node.op)](left, right)
        except (ArithmeticError, TypeError, ValueError, KeyError):
            raise NotConstant from None
        if isinstance(value, complex) or (isinstance(value, int) and abs(value) > _MAX_FOLDED):
            raise NotConstant  # (-8) ** 0.5 is complex in Python; huge integers are not worth it
        return value
    if isinstance(node, ast.BoolOp):
        value = None
        for part in node.values:  # short-circuit as Python does
            value = fold(part, tier)
            if bool(value) == isinstance(node.op, ast.Or):
                return value
        return value
    if isinstance(node, ast.Compare):
        left = fold(node.left, tier)
        for op, comparator in zip(node.ops, node.comparators):
            right = fold(comparator, tier)
            try:
                holds = _COMPARE[type(op)](left, right)
            except TypeError:
                raise NotConstant from None
            if not holds:
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return fold(node.body if fold(node.test, tier) else node.orelse, tier)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        args = [fold(a, tier) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (ArithmeticError, TypeError, ValueError):
            raise NotConstant from None
    raise NotConstant


def _is_zero(node: ast.AST, tier: dict | None) -> bool:
    try:
        value = fold(node, tier)
    except NotConstant:
        return False
    return not isinstance(value, str) and value == 0


def zero_divisors(checked: Checked, tiers: dict | None) -> list[tuple[ast.AST, list]]:
    """Each divisor that is 0, with the tiers in which it is (an empty list: in every
    tier, or the divisor reads no tier value)."""
    found = []
    for node in ast.walk(checked.tree):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, _DIVISIONS)):
            continue
        if _is_zero(node.right, None):
            found.append((node.right, []))
            continue
        zero_in = [name for name, data in (tiers or {}).items() if _is_zero(node.right, data)]
        if zero_in:
            found.append((node.right, [] if len(zero_in) == len(tiers) else zero_in))
    return found


def constant_condition(checked: Checked, tiers: dict | None) -> dict | None:
    """For a condition that reads no metric, flag, event or order field: its truth in
    each tier of `tiers` ({"": truth} when it reads no tier value either). None when it
    reads a name or cannot be computed."""
    if checked.names or checked.fields:
        return None
    try:
        return {"": bool(fold(checked.tree.body))}
    except NotConstant:
        pass
    truths = {}
    for name, data in (tiers or {}).items():
        try:
            truths[name] = bool(fold(checked.tree.body, data))
        except NotConstant:
            return None
    return truths or None


def offset_of(checked: Checked, node: ast.AST) -> int:
    """0-based offset of `node` in the expression text as written (leading spaces included)."""
    text = checked.source
    leading = len(text) - len(text.lstrip())
    lines = text.strip().split("\n")
    return leading + sum(len(line) + 1 for line in lines[: node.lineno - 1]) + node.col_offset


def source_of(checked: Checked, node: ast.AST) -> str:
    """The text of `node` as written in the expression."""
    return ast.get_source_segment(checked.source.strip(), node) or ast.unparse(node)
