"""`genesis validate` reports what it can prove about an expression before it runs: a
division (`/`, `//`, `%`) by a divisor that is 0, and a condition that reads no metric,
flag or field and so is always true or always false (tier values count as constants).

Each test makes one edit to a private copy of the shipped configuration and runs the
real checker; the problem must point at the divisor or at the condition.
"""
from __future__ import annotations

import pytest

from test_validate_config import config, listing, locate, mistake, problems, single  # noqa: F401 - fixture

TILT = "rules/tilt.yaml"
WHEN = 'when: "tilt_level == 1"'
METRIC = 'expr: "trader_days >= 30"'


DIVISIONS = [
    pytest.param(WHEN, 'when: "tilt_level / 0 == 1"', "0 == 1", "0", id="literal-zero"),
    pytest.param(WHEN, 'when: "tilt_level // 0.0 == 1"', "0.0", "0.0", id="floor-by-float-zero"),
    pytest.param(WHEN, 'when: "tilt_level % 0 == 1"', "0 == 1", "0", id="modulo"),
    pytest.param(METRIC, 'expr: "trader_days / (2 - 2) >= 30"', "2 - 2", "2 - 2", id="folded-constant"),
    pytest.param(METRIC, 'expr: "trader_days / (0 if 1 > 0 else 1) >= 30"', "0 if 1 > 0 else 1",
                 "0 if 1 > 0 else 1", id="constant-branch"),
]


@pytest.mark.parametrize("old, new, context, divisor", DIVISIONS)
def test_division_by_zero_points_at_the_divisor(config, old, new, context, divisor):
    p = single(mistake(config, TILT, old, new))
    assert (p.file, p.line, p.col) == (TILT, *locate(config, TILT, new, context))
    assert p.message == f"division by zero: '{divisor}' is always 0"


def test_division_by_a_tier_value_that_is_zero_names_the_tier(config):
    new = 'expr: "trader_days / (tier.limits.max_open_positions - 1) >= 30"'
    p = single(mistake(config, TILT, METRIC, new))
    assert (p.line, p.col) == locate(config, TILT, new, "tier.limits")
    assert p.message == "division by zero: 'tier.limits.max_open_positions - 1' is always 0 in tier 'sniper'"


def test_division_by_zero_inside_a_message_is_reported_in_the_message(config):
    old = "Today's result is ${daily_pnl_usd} USD."
    new = "Today's result is ${daily_pnl_usd / 0} USD."
    p = single(mistake(config, "rules/risk.yaml", old, new))
    assert (p.line, p.col) == locate(config, "rules/risk.yaml", new, "0}")
    assert p.message.startswith("division by zero:")


@pytest.mark.parametrize("divisor", ["(2 - 1)", "max(tilt_level, 1)", "tier.limits.max_open_positions",
                                     "(0 if tilt_level > 0 else 1)"])
def test_division_by_what_is_not_zero_is_accepted(config, divisor):
    found = mistake(config, TILT, WHEN, f'when: "tilt_level / {divisor} == 1"')
    assert found == [], listing(found)


CONSTANT = [
    pytest.param('when: "1 > 0"', "always true", id="true"),
    pytest.param('when: "2 < 1 and 3 > 0"', "always false", id="false"),
    pytest.param('when: "tier.limits.max_open_positions > 0"', "always true", id="tier-value-in-every-tier"),
    pytest.param('when: "min(1, 2) == 2"', "always false", id="function-of-constants"),
]


@pytest.mark.parametrize("new, verdict", CONSTANT)
def test_constant_condition_says_whether_it_is_always_true_or_false(config, new, verdict):
    p = single(mistake(config, TILT, WHEN, new))
    assert (p.file, p.line, p.col) == (TILT, *locate(config, TILT, new, new[7:]))
    assert p.message == f"condition is {verdict}: it reads no metric, flag or field"


def test_condition_on_tier_values_only_names_the_tiers_where_it_holds(config):
    new = 'when: "tier.limits.max_open_positions > 1"'
    p = single(mistake(config, TILT, WHEN, new))
    assert p.line == locate(config, TILT, new)[0]
    assert p.message == ("condition reads only tier values: true in tier 'hunter', 'strategist', false in tier "
                         "'sniper'; limit the rule with `tiers:` instead")


def test_condition_reading_a_metric_is_not_constant(config):
    found = mistake(config, TILT, WHEN, 'when: "tilt_level == 1 and tier.limits.max_open_positions > 0"')
    assert found == [], listing(found)


def test_shipped_configuration_has_no_findings(config):
    assert problems(config) == [], listing(problems(config))


def test_bad_name_inside_a_message_points_at_the_name(config):
    old = "Today's result is ${daily_pnl_usd} USD."
    new = "Today's result is ${daily_pnl_ud} USD."
    p = single(mistake(config, "rules/risk.yaml", old, new))
    assert (p.line, p.col) == locate(config, "rules/risk.yaml", new, "daily_pnl_ud")
    assert p.message.startswith("bad expression: unknown name 'daily_pnl_ud'")
