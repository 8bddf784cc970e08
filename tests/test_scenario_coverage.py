"""Every rule of the default rule books (rules/*.yaml) fires in at least one end-to-end
scenario: each scenario module names, in `COVERS`, the rules its tests assert firings
of; this test checks that the names are real and that together they cover the books."""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_MODULES = ("test_scenarios_tilt", "test_scenarios_tilt_long", "test_scenarios_risk", "test_scenarios_tiers",
                    "test_scenarios_market", "test_kill_during_lockout", "test_live_session")
# rules whose scenario needs a part still being built; each says where it will come from
PENDING: dict[str, str] = {}


def rule_book_rules() -> set[str]:
    rules = set()
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        rules |= {r["id"] for r in yaml.safe_load(path.read_text(encoding="utf-8")).get("rules", [])}
    return rules


def covered() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for name in SCENARIO_MODULES:
        module = importlib.import_module(name)
        source = inspect.getsource(module)
        for rule, test in module.COVERS.items():
            fn = getattr(module, test, None)
            assert callable(fn) and test.startswith("test_"), f"{name}.COVERS names no test {test!r}"
            assert f'"{rule}"' in source or f"'{rule}'" in source, f"{name} never mentions {rule}"
            where.setdefault(rule, []).append(f"{name}::{test}")
    return where


def test_every_rule_book_rule_fires_in_a_scenario():
    rules = rule_book_rules()
    where = covered()
    assert set(where) <= rules, f"COVERS names rules that do not exist: {sorted(set(where) - rules)}"
    missing = rules - set(where) - set(PENDING)
    assert not missing, f"rules no scenario makes fire: {sorted(missing)}"
    assert not set(PENDING) & set(where), "a pending rule is covered now: remove it from PENDING"
    assert len(rules) >= 36
