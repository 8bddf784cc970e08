"""Compiling checked expressions into Python functions f(m, e, o), and compiling the
shipped default configuration for every tier."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from genesis.expr import CompiledExpr, ExprError, Scope, check, compile_checked, compile_expr
from genesis.expr.compiler import compile_stage
from genesis.expr.runtime import FUNCTIONS

NUM, TEXT = "number", "text"
REPO = Path(__file__).resolve().parents[1]

TIER = {"drawdown": {"critical_usd": 50, "halt_usd": 75.5}, "limits": {"max_pos": 5, "neg": -3}}
SCOPE = Scope(
    names={"x": NUM, "y": NUM, "z": NUM, "equity_usd": NUM, "drawdown_usd": NUM,
           "market_state": TEXT, "price": NUM, "side_flag": TEXT},
    enums={"market_state": ("calm", "volatile", "panic")},
    namespaces={"event": {"price": NUM, "symbol": TEXT}, "order": {"qty": NUM, "side": TEXT}},
    tiers={"sniper": TIER},
    event_names=frozenset({"price"}),
)


class Strict(Mapping):
    """A mapping that records every key read and raises KeyError for keys it lacks,
    so a test can see exactly what an evaluation touched."""

    def __init__(self, **data):
        self.data = data
        self.read: list = []

    def __getitem__(self, key):
        self.read.append(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def ev(source: str, m=None, e=None, o=None, scope: Scope = SCOPE):
    return compile_expr(source, scope)(m or {}, e or {}, o or {})


# --------------------------------------------------------------------------- arithmetic
@pytest.mark.parametrize("source, m, expected", [
    ("1 + 2 * 3", {}, 7),
    ("(1 + 2) * 3", {}, 9),
    ("7 // 2", {}, 3),
    ("-7 // 2", {}, -4),
    ("7 % 3", {}, 1),
    ("-7 % 3", {}, 2),
    ("1 / 4", {}, 0.25),
    ("2 ** 3", {}, 8),
    ("-2 ** 2", {}, -4),
    ("(-2) ** 2", {}, 4),
    ("x ** 2 + y ** 0", {"x": 3, "y": 9}, 10),
    ("x ** -1", {"x": 4}, 0.25),
    ("x ** 0.5", {"x": 16}, 4.0),
    ("-x", {"x": 3}, -3),
    ("+x", {"x": 3}, 3),
    ("x - y - z", {"x": 10, "y": 3, "z": 2}, 5),
    ("x / y / z", {"x": 12, "y": 3, "z": 2}, 2.0),
    ("True + True", {}, 2),
    ("1_000 * 2", {}, 2000),
    ("1.5e3 + 0.5", {}, 1500.5),
])
def test_arithmetic(source, m, expected):
    result = ev(source, m)
    assert result == expected
    assert type(result) is type(expected)


def test_division_by_zero_raises_at_runtime():
    c = compile_expr("x / y", SCOPE)
    with pytest.raises(ZeroDivisionError):
        c({"x": 1, "y": 0}, {}, {})


# --------------------------------------------------------------------------- comparisons
@pytest.mark.parametrize("source, m, expected", [
    ("x < y", {"x": 1, "y": 2}, True),
    ("x >= y", {"x": 1, "y": 2}, False),
    ("x == y", {"x": 2, "y": 2.0}, True),
    ("x != y", {"x": 2, "y": 2}, False),
    ("1 < x < 3", {"x": 2}, True),
    ("1 < x < 3", {"x": 3}, False),
    ("1 < x > 0", {"x": 2}, True),
    ("x <= y <= z", {"x": 1, "y": 1, "z": 1}, True),
    ("x < y < z < 10", {"x": 1, "y": 2, "z": 11}, False),
    ("x == y == z", {"x": 1, "y": 1, "z": 2}, False),
    ('market_state == "calm"', {"market_state": "calm"}, True),
    ('"panic" != market_state', {"market_state": "calm"}, True),
])
def test_comparisons(source, m, expected):
    assert ev(source, m) is expected


def test_chained_comparison_reads_middle_operand_once_and_stops_early():
    c = compile_expr("x < y < z", SCOPE)
    m = Strict(x=1, y=2, z=3)
    assert c(m, {}, {}) is True
    assert m.read == ["x", "y", "z"]
    m = Strict(x=5, y=2)          # z absent: the chain must stop after x < y is False
    assert c(m, {}, {}) is False
    assert m.read == ["x", "y"]


# --------------------------------------------------------------------------- and / or / not
@pytest.mark.parametrize("source, m, expected", [
    ("x > 0 and y > 0", {"x": 1, "y": 1}, True),
    ("x > 0 and y > 0", {"x": 1, "y": -1}, False),
    ("x > 0 or y > 0", {"x": -1, "y": 1}, True),
    ("not x > 0", {"x": 1}, False),
    ("not x", {"x": 0}, True),
    ("0 or 5", {}, 5),          # Python semantics: the deciding operand, not a bool
    ("3 and 0", {}, 0),
    ("x and y", {"x": 2, "y": 7}, 7),
    ("not (x > 0 and y > 0) or z == 1", {"x": 1, "y": 1, "z": 1}, True),
    ("x > 0 and y > 0 or z > 0", {"x": 0, "y": 0, "z": 1}, True),
])
def test_boolean_operators(source, m, expected):
    assert ev(source, m) == expected


@pytest.mark.parametrize("source, m, read", [
    ("x > 0 and y / x > 1", {"x": 0}, ["x"]),           # no ZeroDivisionError, y never read
    ("x == 0 or y / x > 1", {"x": 0}, ["x"]),
    ("x > 0 and y > 0 and z > 0", {"x": 1, "y": 0}, ["x", "y"]),
    ("x > 0 or y > 0 or z > 0", {"x": 0, "y": 1}, ["x", "y"]),
    ("y / x if x != 0 else 0", {"x": 0}, ["x"]),       # the untaken branch is not evaluated
    ("0 if x == 0 else y / x", {"x": 0}, ["x"]),
])
def test_short_circuit(source, m, read):
    strict = Strict(**m)
    compile_expr(source, SCOPE)(strict, {}, {})
    assert strict.read == read


@pytest.mark.parametrize("source, m, expected", [
    ("x if y > 0 else z", {"x": 1, "y": 1, "z": 2}, 1),
    ("x if y > 0 else z", {"x": 1, "y": 0, "z": 2}, 2),
    ("1 if x > 0 else 2 if x < 0 else 0", {"x": -5}, 2),
    ("(x if x > y else y) * 2", {"x": 1, "y": 4}, 8),
    ('x if market_state == "panic" else y', {"x": 1, "y": 2, "market_state": "panic"}, 1),
])
def test_conditional_expression(source, m, expected):
    assert ev(source, m) == expected


# --------------------------------------------------------------------------- functions
@pytest.mark.parametrize("source, m, expected", [
    ("abs(x)", {"x": -3.5}, 3.5),
    ("abs(x - y)", {"x": 1, "y": 4}, 3),
    ("min(x, y)", {"x": 1, "y": 4}, 1),
    ("min(x, y, z, 0, -1, 2, 3, 4)", {"x": 1, "y": 4, "z": 9}, -1),
    ("max(x, y)", {"x": 1, "y": 4}, 4),
    ("max(x, y, z)", {"x": 1, "y": 4, "z": 2}, 4),
    ("clamp(x, 0, 10)", {"x": 15}, 10),
    ("clamp(x, 0, 10)", {"x": -5}, 0),
    ("clamp(x, 0, 10)", {"x": 5}, 5),
    ("round(x)", {"x": 2.5}, 2),             # round half to even, as Python's round
    ("round(x)", {"x": 3.5}, 4),
    ("round(x, 2)", {"x": 1.23456}, 1.23),
    ("round(x, 0)", {"x": 1.6}, 2.0),
    ("round(x / 3, 12)", {"x": 1}, round(1 / 3, 12)),
    ("max(abs(x), min(y, z))", {"x": -7, "y": 3, "z": 8}, 7),
    ("clamp(x * 2, min(y, z), max(y, z))", {"x": 2, "y": 10, "z": 1}, 4),
])
def test_functions(source, m, expected):
    result = ev(source, m)
    assert result == expected
    assert type(result) is type(expected)


def test_runtime_functions_are_the_whitelist():
    assert set(FUNCTIONS) == {"abs", "min", "max", "clamp", "round"}
    assert FUNCTIONS["clamp"](5, 0, 3) == 3
    assert FUNCTIONS["clamp"](-5, 0, 3) == 0


# --------------------------------------------------------------------------- tier constants
def test_tier_constants_are_folded_into_generated_python():
    c = compile_expr("drawdown_usd >= tier.drawdown.critical_usd", SCOPE)
    assert "50" in c.python
    assert "tier" not in c.python
    assert c.python == "m['drawdown_usd'] >= 50"
    assert c({"drawdown_usd": 60}, {}, {}) is True
    assert c({"drawdown_usd": 40}, {}, {}) is False
    assert c.checked.tier_refs == frozenset({("drawdown", "critical_usd")})


def test_tier_constants_differ_per_tier():
    tiers = {"sniper": {"d": {"crit": 50}}, "hunter": {"d": {"crit": 300.25}}}
    scope = Scope(names={"drawdown_usd": NUM}, tiers=tiers)
    checked = check("drawdown_usd >= tier.d.crit", scope)
    sniper = compile_checked(checked, tiers["sniper"])
    hunter = compile_checked(checked, tiers["hunter"])
    assert "50" in sniper.python and "tier" not in sniper.python
    assert "300.25" in hunter.python and "tier" not in hunter.python
    assert sniper({"drawdown_usd": 60}, {}, {}) is True
    assert hunter({"drawdown_usd": 60}, {}, {}) is False


def test_tier_float_constant_folded_and_evaluated():
    c = compile_expr("x * tier.drawdown.halt_usd + tier.limits.max_pos", SCOPE)
    assert "75.5" in c.python and "5" in c.python and "tier" not in c.python
    assert c({"x": 2}, {}, {}) == 156.0


# Regression: a negative tier constant folded in as the base of ** was unparsed without
# parentheses, so 'tier.limits.neg ** 2' became '-3 ** 2' == -9.
@pytest.mark.parametrize("source, expected", [
    ("tier.limits.neg ** 2", 9),
    ("tier.limits.neg ** 0", 1),
    ("tier.limits.neg ** 3", -27),
    ("-tier.limits.neg ** 2", -9),
    ("x * tier.limits.neg ** 2", 18),
])
def test_negative_tier_constant_as_power_base(source, expected):
    c = compile_expr(source, SCOPE)
    assert c({"x": 2}, {}, {}) == expected
    assert "tier" not in c.python


def test_negative_tier_constant_outside_powers():
    assert ev("x - tier.limits.neg", {"x": 1}) == 4
    assert ev("-tier.limits.neg", {}) == 3
    assert ev("x * tier.limits.neg", {"x": 2}) == -6


# --------------------------------------------------------------------------- where values are read from
def test_metrics_event_fields_and_order_fields():
    c = compile_expr("x + price + event.price + order.qty", SCOPE)
    assert "m['x']" in c.python
    assert "e['price']" in c.python           # 'price' is an event field in this scope
    assert "o['qty']" in c.python
    m, e, o = Strict(x=1), Strict(price=10), Strict(qty=100)
    assert c(m, e, o) == 121
    assert m.read == ["x"] and e.read == ["price", "price"] and o.read == ["qty"]


def test_text_fields_from_event_and_order():
    c = compile_expr('order.side == "buy" and event.symbol != "BTCUSDT"', SCOPE)
    assert c({}, {"symbol": "ETHUSDT"}, {"side": "buy"}) is True
    assert c({}, {"symbol": "BTCUSDT"}, {"side": "buy"}) is False


def test_bare_event_name_reads_metric_when_not_an_event_field():
    scope = Scope(names={"price": NUM}, event_names=frozenset())
    c = compile_expr("price * 2", scope)
    assert c.python == "m['price'] * 2"
    assert c({"price": 3}, {}, {}) == 6


def test_reads_lists_bare_names():
    c = compile_expr("x + y * price > tier.limits.max_pos and order.qty > 0 and event.price > z", SCOPE)
    assert c.reads == frozenset({"x", "y", "price", "z"})
    assert c.checked.fields == frozenset({("order", "qty"), ("event", "price")})
    assert compile_expr("1 + 2", SCOPE).reads == frozenset()
    assert compile_expr("x + x + x", SCOPE).reads == frozenset({"x"})


def test_missing_metric_raises_key_error():
    with pytest.raises(KeyError):
        compile_expr("x + 1", SCOPE)({}, {}, {})


def test_default_arguments_are_none():
    c = compile_expr("1 + 1", SCOPE)
    assert c() == 2


# --------------------------------------------------------------------------- enums
def test_enum_value_unknown_is_rejected_with_suggestion():
    with pytest.raises(ExprError) as info:
        compile_expr('market_state == "volatil"', SCOPE)
    assert "'market_state' is never 'volatil'" in info.value.message
    assert "did you mean 'volatile'?" in info.value.message
    assert info.value.offset == len('market_state == ')


def test_enum_value_unknown_on_the_left_is_rejected():
    with pytest.raises(ExprError, match="never 'clam'"):
        compile_expr('"clam" == market_state', SCOPE)


def test_enum_known_value_compiles():
    c = compile_expr('market_state == "volatile" or market_state == "panic"', SCOPE)
    assert c({"market_state": "panic"}, {}, {}) is True
    assert c({"market_state": "calm"}, {}, {}) is False


def test_text_flag_without_enum_accepts_any_value():
    assert ev('side_flag == "anything"', {"side_flag": "anything"}) is True


# --------------------------------------------------------------------------- generated code
def test_generated_function_has_no_builtins():
    c = compile_expr("max(x, 1)", SCOPE)
    assert isinstance(c, CompiledExpr)
    g = c.fn.__globals__
    assert g["__builtins__"] == {}
    # `bool` is there for the generated rule wrappers `bool(...)`; users cannot call it
    assert set(g) <= {"__builtins__", "bool", *FUNCTIONS, c.fn.__name__}
    for name in ("open", "eval", "exec", "__import__", "getattr", "print", "len"):
        assert name not in g
    assert c.fn.__code__.co_varnames[:3] == ("m", "e", "o")


def test_compiled_checked_function_name():
    c = compile_checked(check("x + 1", SCOPE), TIER, name="metric_spread")
    assert c.fn.__name__ == "metric_spread"
    assert c({"x": 1}) == 2


def test_compiled_expr_keeps_checked():
    c = compile_expr("x + 1", SCOPE)
    assert c.checked.source == "x + 1"
    assert c.checked.kind == NUM
    assert compile_expr('market_state', SCOPE).checked.kind == TEXT


def test_compile_rejects_like_check():
    with pytest.raises(ExprError, match="function 'open' is not allowed"):
        compile_expr('open("x")', SCOPE)


def test_compile_stage_returns_tuple_of_results():
    exprs = [compile_expr(s, SCOPE) for s in ("x > 1", "x + y", 'order.side == "buy"', "price * 2")]
    stage = compile_stage([c.python for c in exprs], name="stage_test")
    assert stage.__name__ == "stage_test"
    assert stage.__globals__["__builtins__"] == {}
    result = stage({"x": 2, "y": 3}, {"price": 4}, {"side": "buy"})
    assert isinstance(result, tuple)
    assert result == (True, 5, True, 8)
    assert result == tuple(c({"x": 2, "y": 3}, {"price": 4}, {"side": "buy"}) for c in exprs)


def test_compile_stage_single_and_empty():
    one = compile_stage([compile_expr("x + 1", SCOPE).python])
    assert one({"x": 1}, {}, {}) == (2,)
    empty = compile_stage([])
    assert empty({}, {}, {}) == ()


def test_compile_stage_joined_bodies_short_circuit():
    a, b = compile_expr("x > 0", SCOPE), compile_expr("y / x > 1", SCOPE)
    stage = compile_stage([f"({a.python}) and ({b.python})", "True"])
    assert stage({"x": 0}, {}, {}) == (False, True)
    assert stage({"x": 1, "y": 5}, {}, {}) == (True, True)


# Regression: compile_expr did len(scope.tiers), a TypeError when scope.tiers is None
# (documented as 'accept any tier.* unchecked').
def test_compile_expr_with_unchecked_tiers():
    scope = Scope(names={"x": NUM}, tiers=None)
    assert compile_expr("x + 1", scope)({"x": 1}, {}, {}) == 2


def test_compile_checked_with_unchecked_tiers():
    scope = Scope(names={"x": NUM}, tiers=None)
    checked = check("x > tier.a.b", scope)
    assert checked.tier_refs == frozenset({("a", "b")})
    c = compile_checked(checked, {"a": {"b": 3}})
    assert c.python == "m['x'] > 3"


# --------------------------------------------------------------------------- shipped configuration
@pytest.fixture(scope="module")
def default_config():
    from genesis.config.checks import check_config
    return check_config(REPO)


@pytest.fixture(scope="module")
def rulesets(default_config):
    from genesis.config.ruleset import compile_ruleset
    return {tier: compile_ruleset(default_config, tier) for tier in default_config.tiers}


def _rule(ruleset, stage: str, rule_id: str):
    matches = [r for r in ruleset.rules[stage] if r.rule.id == rule_id]
    assert len(matches) == 1, f"{rule_id} in {stage}: {len(matches)} matches"
    return matches[0]


def _ids(ruleset) -> set:
    return {r.rule.id for rules in ruleset.rules.values() for r in rules}


def test_default_config_is_ok(default_config):
    assert default_config.ok, "\n".join(map(str, default_config.problems))
    assert {"sniper", "hunter", "strategist"} <= set(default_config.tiers)


def test_every_tier_compiles(default_config, rulesets):
    assert set(rulesets) == set(default_config.tiers)
    for tier, rs in rulesets.items():
        assert rs.tier == tier
        assert rs.rule_count() > 40, f"{tier}: {rs.rule_count()} rules"
        for stage, rules in rs.rules.items():
            assert callable(rs.stage_functions[stage])
            for r in rules:
                assert callable(r.check)
                assert r.check.__globals__["__builtins__"] == {}
                for c in r.conditions:
                    assert not re.search(r"\btier\s*\.", c.python), c.python


def test_tier_specific_halt_rules(rulesets):
    sniper = _ids(rulesets["sniper"])
    assert "drawdown_halt_automatic" in sniper
    assert "drawdown_halt_lockout" not in sniper
    assert "drawdown_halt_manual_reset" not in sniper
    assert "drawdown_halt_lockout" in _ids(rulesets["strategist"])
    assert "drawdown_halt_manual_reset" in _ids(rulesets["hunter"])


@pytest.mark.parametrize("tier, drawdown, expected", [
    ("sniper", 60, True),        # critical_usd 50
    ("sniper", 49.99, False),
    ("sniper", 50, True),
    ("hunter", 60, False),       # critical_usd 300
    ("hunter", 300, True),
    ("strategist", 60, False),   # critical_usd 1500
])
def test_drawdown_critical_per_tier(rulesets, tier, drawdown, expected):
    rule = _rule(rulesets[tier], "risk", "drawdown_critical")
    assert rule.reads == frozenset({"drawdown_since_rebase_usd"})
    m = {"drawdown_since_rebase_usd": drawdown, "daily_pnl_usd": 0, "drawdown_pct": 0, "losing_days_streak": 0}
    assert rule.check(m, {}, {}) is expected


def test_risk_stage_function_agrees_with_rule_checks(rulesets):
    for tier, rs in rulesets.items():
        rules = rs.rules["risk"]
        names = frozenset().union(*(r.reads for r in rules))
        m = {name: 0 for name in names}
        m["drawdown_since_rebase_usd"] = 60
        fields: dict = {}
        for r in rules:
            for c in r.conditions:
                for ns, f in c.checked.fields:
                    fields.setdefault(ns, {})[f] = 0
        e, o = fields.get("event", {}), fields.get("order", {})
        results = rs.stage_functions["risk"](m, e, o)
        assert isinstance(results, tuple) and len(results) == len(rules)
        for r, value in zip(rules, results):
            assert bool(value) == r.check(m, e, o), (tier, r.rule.id)
        critical = [v for r, v in zip(rules, results) if r.rule.id == "drawdown_critical"]
        assert critical == [tier == "sniper"]
