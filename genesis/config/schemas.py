"""Validate a document against its JSON Schema and turn each error into a Problem
with the file position of the offending key or value and a plain-words message."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING

from genesis.config.problems import Problem, suggestion
from genesis.config.yamlsrc import SourceMap
from genesis.paths import schema_dir

if TYPE_CHECKING:   # jsonschema is imported when a document is checked, not with this module
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

KINDS = {
    "settings": "settings.schema.json",
    "tier": "tier.schema.json",
    "rulebook": "rulebook.schema.json",
    "alerts": "alerts.schema.json",
    "strategies": "strategies.schema.json",
    "ruletest": "ruletest.schema.json",
    "commands": "commands.schema.json",
}

_SECRET_WORDS = ("key", "secret", "token", "password", "passphrase", "signature", "webhook")
_TYPE_WORDS = {"string": "text", "number": "a number", "integer": "a whole number", "boolean": "true or false",
               "object": "a mapping (key: value)", "array": "a list", "null": "null"}


@lru_cache(maxsize=1)
def _schemas() -> dict:
    return {path.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(schema_dir().glob("*.schema.json"))}


@lru_cache(maxsize=1)
def _registry():
    from referencing import Registry, Resource  # noqa: PLC0415

    return Registry().with_resources((name, Resource.from_contents(schema)) for name, schema in _schemas().items())


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft202012Validator:
    """A compiled validator for one file kind."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415

    return Draft202012Validator(_schemas()[KINDS[kind]], registry=_registry())


def schema_for(kind: str) -> dict:
    """The raw schema of a file kind."""
    return _schemas()[KINDS[kind]]


def all_schemas() -> dict:
    """Every schema file by name."""
    return _schemas()


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null"


def _shown(value, path, redact: bool = False) -> str:
    """A value fit to print: never one that might be a secret."""
    last = path[-1] if path else ""
    if redact and isinstance(value, str):
        return "this value"
    if isinstance(last, str) and (last.endswith("_env") or "url" in last or any(w in last for w in _SECRET_WORDS)):
        return "this value"
    text = repr(value) if not isinstance(value, (dict, list)) else _type_name(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _matches_type(schema: dict, instance) -> bool:
    want = schema.get("type")
    if want is None:
        if "enum" in schema:
            return isinstance(instance, type(schema["enum"][0])) if schema["enum"] else False
        if "$ref" in schema:
            return True
        return True
    wants = want if isinstance(want, list) else [want]
    checks = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}
    for w in wants:
        if w in ("number", "integer"):
            if isinstance(instance, (int, float)) and not isinstance(instance, bool):
                return True
        elif isinstance(instance, checks[w]):
            return True
    return False


def _best(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the error from the branch the author most likely meant."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[int, list] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        candidates = [
            errs for idx, errs in branches.items()
            if _matches_type(error.schema[error.validator][idx], error.instance)
            and not any(e.validator == "type" and not e.path for e in errs)
        ]
        if not candidates:
            return error
        chosen = min(candidates, key=len)
        error = max(chosen, key=lambda e: len(e.absolute_path))
    return error


def _message(error: ValidationError, path: tuple, redact: bool = False) -> tuple[str, tuple, bool]:
    """(message, path to point at, point at key?); `redact` hides every text value."""
    v, inst, schema = error.validator, error.instance, error.schema
    if path and isinstance(path[-1], int):
        parent = next((p for p in reversed(path[:-1]) if isinstance(p, str)), "the list")
        where = f"item {path[-1] + 1} of {parent}"
    else:
        where = path[-1] if path else "the file"
    if v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extras = [k for k in inst if k not in allowed]
        key = extras[0] if extras else "?"
        secret_like = any(w in str(key).lower() for w in _SECRET_WORDS) or (key == "url" and "url_env" in allowed)
        if secret_like and "properties" in schema:
            env_keys = [k for k in allowed if k.endswith("_env")]
            hint = f"; name an environment variable in {', '.join(env_keys)}" if env_keys else ""
            return (f"unknown key '{key}': secrets are never written in configuration files{hint}",
                    path + (key,), True)
        hint = suggestion(key, allowed)
        if not hint and allowed:
            hint = f" (allowed here: {', '.join(sorted(allowed))})" if len(allowed) <= 12 else ""
        if "properties" in schema and set(schema["properties"]) & {"lock", "notify", "scale_size"}:
            return f"unknown action '{key}'{suggestion(key, allowed)}", path + (key,), True
        return f"unknown key '{key}'{hint}", path + (key,), True
    if v == "required":
        missing = [k for k in schema.get("required", []) if isinstance(inst, dict) and k not in inst]
        return f"missing required key '{missing[0] if missing else '?'}' in {where if path else 'the file'}", path, False
    if v == "enum":
        options = schema["enum"]
        shown = ", ".join(str(o) for o in options)
        if isinstance(inst, str):
            if {"halt", "resume", "promote"} <= set(options):
                return f"unknown action '{inst}'{suggestion(inst, options)}", path, False
            return f"{_shown(inst, path, redact)} is not one of: {shown}{suggestion(inst, options)}", path, False
        return f"expected one of: {shown}; got {_type_name(inst)}", path, False
    if v == "type":
        want = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if want == ["integer"] and isinstance(inst, float):
            return f"'{where}' must be a whole number, got {inst}", path, False
        if schema.get("x-unit") == "duration" and isinstance(inst, (int, float)):
            return f"'{where}' must be a duration with its unit, e.g. {inst:g}s or {inst:g}m", path, False
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in want)
        return f"'{where}' must be {words}, not {_type_name(inst)}", path, False
    if v == "pattern":
        desc = schema.get("description", f"the form {schema['pattern']}")
        return f"{_shown(inst, path, redact)} is not valid here: {desc}", path, False
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
                 "exclusiveMaximum": "less than"}[v]
        return f"'{where}' must be {words} {error.validator_value}, got {inst}", path, False
    if v in ("minItems", "maxItems"):
        words = "at least" if v == "minItems" else "at most"
        return f"'{where}' must have {words} {error.validator_value} item(s), has {len(inst)}", path, False
    if v in ("minLength", "maxLength"):
        words = "at least" if v == "minLength" else "at most"
        return f"'{where}' must be {words} {error.validator_value} characters long", path, False
    if v == "uniqueItems":
        return f"'{where}' lists the same item twice", path, False
    if v == "minProperties":
        return f"'{where}' must not be empty", path, False
    if v == "maxProperties":
        keys = ", ".join(map(str, inst)) if isinstance(inst, dict) else ""
        return f"one action per list item: split {keys} into separate items", path, False
    if v == "propertyNames":
        bad = next((k for k in inst if not isinstance(k, str) or not k[:1].islower()), None)
        return f"'{bad}' is not a valid name (lower-case letters, digits and _, starting with a letter)", path, False
    if v in ("anyOf", "oneOf"):
        desc = schema.get("description", "")
        return f"'{where}' has an unexpected form. {desc}".strip(), path, False
    if v == "const":
        return f"expected {error.validator_value!r}", path, False
    return f"'{where}': {error.message}", path, False


def validate_document(kind: str, data, smap: SourceMap, file: str) -> tuple[list[Problem], list[tuple]]:
    """Every schema problem of one document, located, and the paths they concern."""
    problems = []
    seen = set()
    errors = [_best(e) for e in validator(kind).iter_errors(data)]
    # Settings hold credentials' neighbours (URLs, env names): never echo their text.
    redact = kind == "settings"
    located = [(e, *_message(e, tuple(e.absolute_path), redact)) for e in errors]
    # A misspelt required key shows as "unknown key 'x' (did you mean 'y'?)"; the
    # matching "missing required key 'y'" adds nothing, so it is dropped.
    suggested = {(tuple(at[:-1]), m.split("did you mean '")[1].split("'")[0])
                 for _, m, at, _k in located if m.startswith("unknown key") and "did you mean" in m}
    for error, message, at, at_key in located:
        if error.validator == "required" and any(
                (tuple(at), k) in suggested for k in error.schema.get("required", [])
                if isinstance(error.instance, dict) and k not in error.instance):
            continue
        mark = smap.key(at) if at_key else smap.value(at)
        problem = Problem(file, mark.line, mark.col, message)
        if problem not in seen:
            seen.add(problem)
            problems.append(problem)
    return problems, [tuple(e.absolute_path) for e in errors]
