"""The defaults walker (genesis/config/defaults.py) fills exactly what the former filler
filled: a jsonschema validator whose `properties` keyword sets absent defaults, run over
the whole schema. That filler is kept here, only as the reference, and both are run on
every bundled configuration file, on those files with keys taken out, and on small and
partial documents reaching each `if`/`then`, `anyOf` and `oneOf` of the schemas."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import pytest

from genesis.config.defaults import _UNSUPPORTED, _Walker, fill_defaults
from genesis.config.schemas import KINDS, _registry, all_schemas, validator
from genesis.config.yamlsrc import load_yaml

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = {"settings": ["genesis.yaml"], "alerts": ["alerts.yaml"], "strategies": ["strategies.yaml"],
           "tier": sorted(p.name for p in (ROOT / "tiers").glob("*.yaml")),
           "rulebook": sorted(p.name for p in (ROOT / "rules").glob("*.yaml")),
           "ruletest": sorted(p.name for p in (ROOT / "rule_tests").glob("*.yaml"))}
FOLDERS = {"tier": "tiers", "rulebook": "rules", "ruletest": "rule_tests"}


# ----------------------------------------------------------------------------- the reference
def _old_default_of(v, sub):
    from jsonschema.exceptions import _RefResolutionError
    from referencing.exceptions import Unresolvable

    seen = 0
    while isinstance(sub, dict) and "default" not in sub and "$ref" in sub and seen < 10:
        try:
            sub = v._resolver.lookup(sub["$ref"]).contents
        except (Unresolvable, _RefResolutionError):
            return None
        seen += 1
    return sub.get("default") if isinstance(sub, dict) else None


@lru_cache(maxsize=None)
def _old_filler(kind: str):
    return old_filler_for(validator(kind))


def old_filler_for(plain):
    """The former filler: `plain`'s validator class with a `properties` that fills first."""
    from jsonschema import validators

    cls = type(plain)
    check_properties = cls.VALIDATORS["properties"]

    def properties(v, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if key not in instance:
                    default = _old_default_of(v, sub)
                    if default is not None:
                        instance[key] = copy.deepcopy(default)
        yield from check_properties(v, props, instance, schema)

    return validators.extend(cls, {"properties": properties})(plain.schema, registry=plain._registry)


def old_fill(kind: str, data):
    """The former fill_defaults: a full validation pass that fills on the way."""
    for _ in _old_filler(kind).iter_errors(data):
        pass


def both(kind: str, data):
    """(new fill, old fill) of copies of `data`."""
    new, old = copy.deepcopy(data), copy.deepcopy(data)
    fill_defaults(kind, new)
    old_fill(kind, old)
    return new, old


def bundled(kind: str, name: str):
    path = ROOT / FOLDERS.get(kind, "") / name
    return load_yaml(path.read_text(encoding="utf-8"), name)[0]


def without_each_key(data, depth: int = 4):
    """Copies of `data` with one mapping key taken out, for every key down to `depth`."""
    def paths(node, at, level):
        if level >= depth:
            return
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(node, dict):
                yield (*at, key)
            yield from paths(value, (*at, key), level + 1)

    for path in paths(data, (), 0):
        doc = copy.deepcopy(data)
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        yield path, doc


def some_metrics_of_each_shape(metrics: dict, each: int = 2) -> dict:
    """A few metrics with `since`, a few with `percentile`, a few with neither."""
    kept, count = {}, {}
    for name, metric in metrics.items():
        shape = next((k for k in ("since", "percentile") if k in metric), "")
        if count.get(shape, 0) < each:
            count[shape] = count.get(shape, 0) + 1
            kept[name] = metric
    return kept


# ----------------------------------------------------------------------------- bundled files
CASES = [(kind, name) for kind, names in BUNDLED.items() for name in names]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}:{n}" for k, n in CASES])
def test_bundled_file_fills_as_before(kind, name):
    data = bundled(kind, name)
    new, old = both(kind, data)
    assert new == old
    assert json.dumps(new, sort_keys=True, default=str) == json.dumps(old, sort_keys=True, default=str)


@pytest.mark.parametrize("kind", ["settings", "alerts", "strategies", "tier", "rulebook"])
def test_bundled_file_with_a_key_left_out_fills_as_before(kind):
    for name in BUNDLED[kind]:
        data = bundled(kind, name)
        if isinstance(data.get("rules"), list):
            data["rules"] = data["rules"][:4]   # rules and metrics repeat a few shapes: some of
        if isinstance(data.get("metrics"), dict):   # each keep the test quick
            data["metrics"] = some_metrics_of_each_shape(data["metrics"])
        for path, doc in without_each_key(data):
            new, old = both(kind, doc)
            assert new == old, f"{name} without {path}"


def test_filling_changes_something_and_is_idempotent():
    data = bundled("settings", "genesis.yaml")
    filled = copy.deepcopy(data)
    fill_defaults("settings", filled)
    assert filled != data   # the shipped genesis.yaml leaves defaults out
    again = copy.deepcopy(filled)
    fill_defaults("settings", again)
    assert again == filled


def test_defaults_are_copies():
    first, second = {}, {}
    fill_defaults("rulebook", first)
    fill_defaults("rulebook", second)
    assert first == second
    assert first["flags"] is not second["flags"]


# ----------------------------------------------------------------------------- small documents
RULE_FULL = {"name": "r", "when": "equity_usd < 10", "then": ["halt", {"lock": {"duration": "1h"}}],
             "severity": "warning", "tiers": ["sniper"]}
METRICS = {"a": {"since": "1d"}, "b": {"percentile": 90}, "c": {}, "d": {"default": 7},
           "e": {"since": "1d", "percentile": 10}}
MINIMAL = [
    ("settings", {}), ("alerts", {}), ("strategies", {}), ("tier", {}), ("rulebook", {}),
    ("ruletest", {}), ("commands", {}),
    ("rulebook", {"rules": []}),
    ("rulebook", {"rules": [{"name": "r", "when": "x > 1", "then": ["halt"]}]}),
    ("rulebook", {"rules": [RULE_FULL]}),
    ("rulebook", {"rules": [{"name": "r", "when": ["a", "b"], "then": [{"lock": {}}, {"notify": {}}]}]}),
    ("rulebook", {"rules": [{"name": "r", "when": "a", "then": [{"lock": {"duration": ["1h", "2h"]}}]}]}),
    ("rulebook", {"rules": [{"name": "r"}, {}, {"then": [{"lock": None}, "nope", 3]}]}),
    ("rulebook", {"metrics": METRICS, "flags": {"f": {}}}),
    ("rulebook", {"metrics": {"a": {"since": "1d", "default": 3}}, "flags": {"f": {"default": True}}}),
    ("alerts", {"rules": [{"name": "r", "when": "a", "then": [{"notify": {}}]}], "routing": {}}),
    ("tier", {"name": "sniper", "capital_usd": {"min": 0, "max": None}}),
    ("tier", {"name": "x", "capital_usd": {}}),
    ("strategies", {"strategies": []}),
    ("strategies", {"strategies": [{}, {"kind": "nonesuch"}, {"kind": 3}]}),
    ("settings", {"exchange": {}, "notifications": {"channels": {"c": {}}}, "recovery": {}, "backup": {},
                  "health_probe": {}}),
    ("settings", {"exchange": {"start_timeout": None}, "notifications": {"channels": {"c": {"fallback": None}}},
                  "backup": {"interval": "1h"}}),
    ("settings", {"exchange": "wrong", "notifications": [], "recovery": None}),
    ("ruletest", {"cases": [{"name": "c"}]}),
    ("ruletest", {"cases": [{"name": "c", "commands": [{"at": "1s", "journal": {"text": "t"}},
                                                        {"at": "2s", "journal": {"words": ["a"]}},
                                                        {"at": "3s", "journal": {}},
                                                        {"at": "4s", "order": {}, "cancel": {}},
                                                        {"at": "5s"}],
                            "pins": [{"at": "1s", "values": {}}],
                            "expect": [{"at": "1s", "locks": 2, "size_factor": 0.5},
                                       {"at": "2s", "locks": [{}, {"until": "utc_midnight"}, {"until": "1h"}],
                                        "size_factor": {"a": 1}},
                                       {"at": "3s", "locks": "bad", "size_factor": {}}]}]}),
]


def _strategy_kinds() -> list[str]:
    items = all_schemas()[KINDS["strategies"]]["properties"]["strategies"]["items"]
    return [branch["if"]["properties"]["kind"]["const"] for branch in items["allOf"]]


def _command_kinds() -> list[str]:
    command = all_schemas()[KINDS["commands"]]["$defs"]["command"]
    return [branch["if"]["properties"]["kind"]["const"] for branch in command["allOf"]]


@pytest.mark.parametrize(("kind", "data"), MINIMAL, ids=[f"{i}:{k}" for i, (k, _d) in enumerate(MINIMAL)])
def test_small_document_fills_as_before(kind, data):
    new, old = both(kind, data)
    assert new == old


def test_each_strategy_kind_fills_its_own_params():
    kinds = _strategy_kinds()
    assert len(kinds) >= 4
    for kind in kinds:
        for entry in ({"id": "s", "kind": kind, "symbols": ["BTCUSDT"]},
                      {"id": "s", "kind": kind, "symbols": ["BTCUSDT"], "params": {}}):
            new, old = both("strategies", {"strategies": [entry]})
            assert new == old, kind
            assert new["strategies"][0].get("params"), kind   # the `then` branch filled the kind's params


def test_each_command_kind_fills_as_before():
    for kind in _command_kinds():
        for entry in ({"kind": kind}, {"kind": kind, "after": "1s"}):
            new, old = both("commands", {"commands": [entry]})
            assert new == old, kind


def test_metric_default_follows_since_or_percentile():
    new, old = both("rulebook", {"metrics": METRICS})
    assert new == old
    got = {name: m.get("default") for name, m in new["metrics"].items()}
    assert got["d"] == 7 and len({got["a"], got["b"], got["c"]}) == 3


def test_every_keyword_the_schemas_use_is_followed():
    """A schema keyword that descends into data but is not followed by the walker fails here first."""
    used = set()

    def walk(node):
        if isinstance(node, dict):
            used.update(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for schema in all_schemas().values():
        walk(schema)
    assert not used & _UNSUPPORTED


# ----------------------------------------------------------------------------- made-up schemas
# Shapes the bundled schemas do not (yet) have, where filling and checking interleave:
# the walker must fill what the former filler filled there too.
def _p(**defaults) -> dict:
    return {"properties": {k: {"default": v} for k, v in defaults.items()}}


SHAPES = {
    "anyOf branch fails before it fills": ({"anyOf": [{"required": ["a"], **_p(a=1, b=2)}, _p(c=3)]}, {}),
    "anyOf branch fills before it holds": ({"anyOf": [{**_p(a=1), "required": ["a"]}, _p(c=3)]}, {}),
    "anyOf branch holds, later ones not tried": ({"anyOf": [_p(a=1), _p(c=3)]}, {}),
    "anyOf nothing holds": ({"anyOf": [{**_p(a=1), "type": "array"}, {"required": ["z"], **_p(c=3)}]}, {}),
    "oneOf branches after the one that holds stop at their first error": (
        {"oneOf": [_p(a=1), {"required": ["z"], **_p(b=2)}, {**_p(c=3), "required": ["z"]}]}, {}),
    "oneOf nothing holds": ({"oneOf": [{"required": ["z"], **_p(b=2)}, {**_p(c=3), "required": ["z"]}]}, {}),
    "if fills and holds": ({"if": _p(x=1), "then": _p(y=2), "else": _p(n=0)}, {}),
    "if stops at its first error": ({"if": {"required": ["q"], **_p(x=1)}, "then": _p(y=2), "else": _p(e=0)}, {}),
    "if sees what properties before it filled": (
        {**_p(a=0), "allOf": [{"if": {"required": ["a"]}, "then": _p(t=1), "else": _p(f=1)}]}, {}),
    "if does not see what properties after it fill": (
        {"allOf": [{"if": {"required": ["a"]}, "then": _p(t=1), "else": _p(f=1)}], **_p(a=0)}, {}),
    "not fills": ({"not": {**_p(n=5), "required": ["q"]}}, {}),
    "nested anyOf inside an if": ({"if": {"anyOf": [{"required": ["z"]}, _p(w=1)]}, "then": _p(y=2)}, {}),
    "$ref chain and null default": (
        {"$defs": {"d": {"$ref": "#/$defs/e"}, "e": {"default": 4}, "n": {"$ref": "#/$defs/e", "default": None}},
         "properties": {"p": {"$ref": "#/$defs/d"}, "q": {"$ref": "#/$defs/n"}, "r": {"$ref": "#/$defs/nope"}}},
        {}),
    "object default filled, then descended": (
        {"properties": {"o": {"default": {}, "properties": {"k": {"default": [1]}}}}}, {}),
    "pattern, additional, prefix and items": (
        {"properties": {"m": {"patternProperties": {"^x": _p(px=1)}, "additionalProperties": _p(ax=2)},
                        "l": {"prefixItems": [_p(p0=0)], "items": _p(it=9)}}},
        {"m": {"x1": {}, "y": {}}, "l": [{}, {}, {}]}),
    "a $ref to a whole schema (its own $schema) fills nothing below": (
        {"properties": {"child": {"$ref": "#"}, "d": {"default": 1}}}, {"child": {}}),
    "wrong types are left alone": (
        {"properties": {"m": {"type": "object", **_p(k=1)}, "l": {"items": _p(i=1)}}}, {"m": [], "l": {}}),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_made_up_shape_fills_as_before(shape):
    from jsonschema import Draft202012Validator

    schema, data = SHAPES[shape]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **copy.deepcopy(schema)}
    plain = Draft202012Validator(schema, registry=_registry())
    new, old = copy.deepcopy(data), copy.deepcopy(data)
    _Walker(plain).fill(new)
    for _ in old_filler_for(plain).iter_errors(old):
        pass
    assert new == old
    assert new != data or shape == "wrong types are left alone"
