"""Differential test: the compiled evaluator must agree with simpleeval (the reference
interpreter) on random expressions of the language and random metric values.

Expressions come from a small recursive grammar that stays inside the language:
numeric literals, metric names, `tier.<section>.<key>` paths, + - * / // %, comparisons
(chained), and/or/not, unary minus, `a if c else b`, abs/min/max/clamp/round and small
constant powers. Both evaluators see the same source text; they must either raise the
same exception class or return equal values.
"""
from __future__ import annotations

import ast
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from simpleeval import InvalidExpression, SimpleEval

from genesis.expr import Scope, check, compile_expr
from genesis.expr.checker import MAX_LENGTH, MAX_NODES
from genesis.expr.runtime import FUNCTIONS

NUM = "number"

METRICS = ("equity_usd", "pnl_usd", "drawdown_usd", "spread_bps", "streak", "ratio")

# Keys must not be names of dict attributes (items, keys, values, get, copy, pop, ...):
# simpleeval tries getattr() before falling back to dict[key], so `tier.limits.items`
# would be the bound method in the reference. Keys must not start with '_' or 'func_'
# either (simpleeval refuses those attributes; our checker refuses '_' too), nor be in
# simpleeval's DISALLOW_METHODS ('exec', 'format', 'mro', ...): `tier.exec.x` is refused by
# simpleeval with FeatureNotAvailable although it is a plain key here.
TIER = {
    "limits": {"max_pos": 5, "loss_usd": 25.5, "neg": -3, "neg_f": -0.75, "zero": 0},
    "drawdown": {"critical_usd": 50, "halt_usd": 75, "floor_pct": -12.5},
    "execution": {"slices": 3, "jitter": 0.2},
}
TIER_PATHS = tuple(f"tier.{s}.{k}" for s, keys in TIER.items() for k in keys)

# Power bases are only names, small literals and tier paths: simpleeval's safe_power
# refuses any base with abs() > 4_000_000 (NumberTooHigh), so a base must stay small (and
# the checker forbids powers of powers anyway). Negative tier values are included on
# purpose: folding one in as `-3 ** 2` was a compiler bug this test found.

SCOPE = Scope(names={n: NUM for n in METRICS}, tiers={"sniper": TIER})


def reference(source: str, m: dict):
    return SimpleEval(names={**m, "tier": TIER}, functions=FUNCTIONS).eval(source)


# --------------------------------------------------------------------------- grammar

ints = st.integers(-1000, 1000).map(str)
floats = st.integers(-100_000, 100_000).map(lambda i: f"{i / 100:.2f}")
names = st.sampled_from(METRICS)
tier_paths = st.sampled_from(TIER_PATHS)

power_base = st.one_of(
    names,
    st.integers(-20, 20).map(str),            # '-5 ** 2' is -(5 ** 2) in both evaluators
    st.integers(-20, 20).map(lambda i: f"({i})"),
    tier_paths,
    names.map(lambda n: f"(-{n})"),
    names.map(lambda n: f"abs({n})"),
)
powers = st.tuples(power_base, st.integers(0, 3)).map(lambda t: f"{t[0]} ** {t[1]}")

leaves = st.one_of(ints, floats, names, tier_paths, powers)

MAX_LEAVES = 12     # operands per expression
MAX_LEVELS = 7      # grammar levels; each adds one syntax-tree level (the checker allows 32)

# A node is (source, low): a low-precedence node (not / and / or / if-else) is put in
# parentheses before it becomes an operand of an operator (`x + not y` is a syntax error);
# other operands are parenthesized at random, to vary how the text parses.
BINOPS = ["+", "-", "*", "/", "//", "%"]
CMPOPS = ["<", "<=", ">", ">=", "==", "!="]
UNARY = ["not", "neg", "abs", "round", "round2"]
NARY = ["binop", "compare2", "compare3", "and2", "or2", "and3", "or3", "ifexp", "min", "max", "clamp"]
ARITY = {"binop": 2, "compare2": 2, "compare3": 3, "and2": 2, "or2": 2, "and3": 3, "or3": 3,
         "ifexp": 3, "min": 2, "max": 3, "clamp": 3}


def _operand(draw, node) -> str:
    src, low = node
    return f"({src})" if low or draw(st.booleans()) else src


def _build(draw, n: int, levels: int):
    """An expression with at most `n` operands (leaves) and `levels` grammar levels.

    A hand-rolled budget instead of st.recursive: with st.recursive the one-operand
    wrappers (abs, round, not, -) never exceed the leaf budget while the others often do,
    so nearly every example came out as abs(...) or round(...)."""
    if levels == 0:
        return draw(leaves), False
    if n == 1:
        kind = draw(st.sampled_from(["leaf", "leaf", "leaf", *UNARY]))
    else:
        kind = draw(st.sampled_from([k for k in NARY if ARITY[k] <= n] + UNARY))
    if kind == "leaf":
        return draw(leaves), False
    if kind in UNARY:
        inner = _build(draw, n, levels - 1)
        if kind == "not":
            return f"not {_operand(draw, inner)}", True
        if kind == "neg":
            return f"-{_operand(draw, inner)}", False
        if kind == "round2":
            return f"round({inner[0]}, 2)", False
        return f"{kind}({inner[0]})", False
    k = ARITY[kind]
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1, unique=True)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
    kids = [_build(draw, size, levels - 1) for size in sizes]
    if kind == "binop":
        op = draw(st.sampled_from(BINOPS))
        return f"{_operand(draw, kids[0])} {op} {_operand(draw, kids[1])}", False
    if kind.startswith("compare"):
        src = _operand(draw, kids[0])
        for kid in kids[1:]:
            src += f" {draw(st.sampled_from(CMPOPS))} {_operand(draw, kid)}"
        return src, False
    if kind[:-1] in ("and", "or"):
        return f" {kind[:-1]} ".join(_operand(draw, kid) for kid in kids), True
    if kind == "ifexp":
        a, c, b = (_operand(draw, kid) for kid in kids)
        return f"{a} if {c} else {b}", True
    return f"{kind}({', '.join(kid[0] for kid in kids)})", False


@st.composite
def _expressions(draw):
    n = draw(st.integers(1, MAX_LEAVES))
    return _build(draw, n, MAX_LEVELS)[0]


expressions = _expressions()

metric_value = st.one_of(
    st.just(0),
    st.integers(-10_000, 10_000),
    st.integers(-1_000_000, 1_000_000).map(lambda i: i / 100),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
    st.booleans(),
)
metrics = st.fixed_dictionaries({n: metric_value for n in METRICS})


# --------------------------------------------------------------------------- comparison
def outcome(fn):
    try:
        return ("value", fn())
    except InvalidExpression as exc:   # simpleeval refusing something: the grammar is wrong
        pytest.fail(f"simpleeval refused the expression: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return ("error", type(exc))


def same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if math.isnan(a) and math.isnan(b):
                return True
            if math.isinf(a) or math.isinf(b):
                return a == b
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
        return False
    return a == b   # ints and bools compare with ==


def assert_agree(source: str, m: dict):
    compiled = compile_expr(source, SCOPE)
    ours = outcome(lambda: compiled(m, {}, {}))
    theirs = outcome(lambda: reference(source, m))
    assert ours[0] == theirs[0], f"{source!r} with {m}: compiled {ours}, simpleeval {theirs}\n{compiled.python}"
    if ours[0] == "error":
        assert ours[1] is theirs[1], f"{source!r} with {m}: {ours[1]} vs {theirs[1]}\n{compiled.python}"
    else:
        assert same_value(ours[1], theirs[1]), (
            f"{source!r} with {m}: compiled {ours[1]!r}, simpleeval {theirs[1]!r}\n{compiled.python}")


# --------------------------------------------------------------------------- tests
def test_simpleeval_reads_tier_paths_through_dict_fallback():
    """The reference resolves `tier.a.b` on nested dicts (attribute, then item fallback)."""
    for path in TIER_PATHS:
        _, section, key = path.split(".")
        assert reference(path, {}) == TIER[section][key]
    assert reference("tier.limits.max_pos + equity_usd", {"equity_usd": 1}) == 6
    assert reference("clamp(equity_usd, 0, 3)", {"equity_usd": 7}) == 3


@settings(max_examples=200, deadline=None)
@given(source=expressions)
def test_grammar_stays_inside_the_language_and_its_limits(source):
    assert len(source) <= MAX_LENGTH
    tree = ast.parse(source, mode="eval")
    assert sum(1 for _ in ast.walk(tree)) <= MAX_NODES
    checked = check(source, SCOPE)
    assert checked.kind == NUM
    assert {".".join(("tier", *ref)) for ref in checked.tier_refs} <= set(TIER_PATHS)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=expressions, m=metrics)
@example(source="equity_usd / drawdown_usd", m=dict.fromkeys(METRICS, 0))
@example(source="1 < equity_usd <= tier.limits.max_pos != streak", m={**dict.fromkeys(METRICS, 0), "equity_usd": 3})
@example(source="not equity_usd or pnl_usd and -ratio", m={**dict.fromkeys(METRICS, 1), "ratio": 2.5})
@example(source="-tier.limits.max_pos ** 2 - tier.limits.neg", m=dict.fromkeys(METRICS, 0))
@example(source="tier.limits.neg ** 2 + tier.drawdown.floor_pct ** 0 - -tier.limits.neg_f", m=dict.fromkeys(METRICS, 0))
@example(source="(-pnl_usd) ** 2 - tier.drawdown.floor_pct % -7", m=dict.fromkeys(METRICS, 3))
@example(source="round(ratio, 2) // tier.limits.zero", m=dict.fromkeys(METRICS, 1.5))
def test_compiled_agrees_with_simpleeval(source, m):
    checked = check(source, SCOPE)        # the grammar never leaves the language
    assert checked.names <= set(METRICS)
    assert_agree(source, m)


# Regression: a negative tier constant folded in as the base of ** was unparsed without
# parentheses ('-3 ** 2'), so the power applied before the sign.
@pytest.mark.parametrize("source", [
    "tier.limits.neg ** 2",
    "tier.limits.neg ** 0",
    "tier.limits.neg_f ** 2 + equity_usd",
    "max(tier.drawdown.floor_pct ** 2, equity_usd)",
])
def test_negative_tier_constant_as_power_base(source):
    check(source, SCOPE)
    assert_agree(source, dict.fromkeys(METRICS, 1))
