"""Fill every property's schema `default` into loaded data, so that a default is
written once: in the schema.

A dedicated walker follows the schema's structure over the data, keyword by keyword
in the schema's own order: `properties` first sets each absent key whose schema (or
the end of its `$ref` chain) has a non-null default, deep-copied, then descends into
the present values; `items`, `prefixItems`, `additionalProperties`,
`patternProperties`, `$ref` (resolved through the registry of
genesis/config/schemas.py), `allOf` and the `then`/`else` of an `if` carry it into
nested objects. `"default": null` means "absent": nothing is filled, and the key's
`x-when-absent` says what then applies.

Nothing is validated on the way except where the outcome decides what is filled: the
schema of an `if`, the branches of `anyOf`/`oneOf` and a `not`. There the walker
also checks the non-structural keywords (with jsonschema's own keyword functions, on
the plain validator) in the same order and with the same laziness as a jsonschema
validator whose `properties` fills defaults (the former implementation): `anyOf`
stops at the first branch that holds, `oneOf` tries every branch (those after the
first that holds only until their first error), an `if` or `not` stops at its first
error. The filled data is therefore the same as that validator's, for valid and
invalid documents alike (tests/test_defaults_walker.py keeps it as the reference);
plain validation and its messages stay in schemas.py. Resolved `$ref`s and each
property's default are kept per walker, one walker per file kind.
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache

from genesis.config.schemas import validator

# Keywords that would descend into the data but that no bundled schema uses: met, they
# stop the walk rather than silently fill differently from a validator.
_UNSUPPORTED = frozenset({"contains", "dependentSchemas", "unevaluatedItems", "unevaluatedProperties",
                          "$dynamicRef"})


class _Walker:
    """Fills the defaults of one validator's schema; see the module docstring."""

    def __init__(self, plain):
        from jsonschema.exceptions import _RefResolutionError  # noqa: PLC0415
        from referencing.exceptions import Unresolvable  # noqa: PLC0415

        self.plain = plain   # a Draft202012Validator: its schema, resolver and keyword checks
        self.checks = type(self.plain).VALIDATORS
        self.unresolvable = (Unresolvable, _RefResolutionError)
        self.steps = {"properties": self._properties, "additionalProperties": self._additional,
                      "patternProperties": self._patterns, "items": self._items, "prefixItems": self._prefix,
                      "propertyNames": self._names, "$ref": self._ref, "allOf": self._all_of,
                      "anyOf": self._any_of, "oneOf": self._one_of, "if": self._if, "not": self._not}
        # Kept: (base URI, $ref) -> referencing's Resolved, and (id of a property schema,
        # base URI) -> its default. The validator holds every schema it reaches, so the
        # ids stay theirs while this walker lives.
        self._resolved: dict = {}
        self._defaults: dict = {}

    def lookup(self, resolver, ref: str):
        """`resolver.lookup(ref)`, kept: the same reference from the same base resolves the same."""
        key = (resolver._base_uri, ref)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = resolver.lookup(ref)
        return found

    def fill(self, data) -> None:
        """Fill `data` in place against the kind's whole schema."""
        for _ in self.walk(self.plain.schema, data, self.plain._resolver, judged=False):
            pass

    def walk(self, schema, instance, resolver, judged: bool):
        """Fill `instance` against `schema`, yielding an error marker for each failed check;
        unless `judged`, only the structure is followed and nothing is checked."""
        if schema is True:
            return
        if schema is False:
            yield "false schema"
            return
        for key, value in schema.items():
            step = self.steps.get(key)
            if step is not None:
                yield from step(value, instance, schema, resolver, judged)
            elif key in _UNSUPPORTED:
                raise NotImplementedError(f"schema keyword {key} is not followed when filling defaults")
            elif judged and key in self.checks:
                yield from self.checks[key](self.plain, value, instance, schema)

    def _descend(self, schema, instance, resolver, judged: bool):
        # a sub-schema with its own $id is a resource of its own (jsonschema's descend)
        if isinstance(schema, dict) and "$id" in schema:
            from referencing.jsonschema import DRAFT202012  # noqa: PLC0415

            resolver = resolver.in_subresource(DRAFT202012.create_resource(schema))
        return self._enter(schema, instance, resolver, judged)

    def _holds(self, schema, instance, resolver) -> bool:
        """Whether `instance` passes `schema`, stopping at the first error (filling on the way)."""
        return next(self._enter(schema, instance, resolver, judged=True), None) is None

    def _enter(self, schema, instance, resolver, judged: bool):
        if isinstance(schema, dict) and "$schema" in schema:
            # jsonschema checks a sub-schema naming its own draft with that draft's plain
            # validator: the former filler filled nothing below one (no bundled $ref does this)
            return self.plain.evolve(schema=schema, _resolver=resolver).iter_errors(instance)
        return self.walk(schema, instance, resolver, judged)

    def default_of(self, sub, resolver):
        """The default a property schema declares, here or at the end of its `$ref` chain."""
        key = (id(sub), resolver._base_uri)
        if key not in self._defaults:
            self._defaults[key] = self._chain_default(sub, resolver)
        return self._defaults[key]

    def _chain_default(self, sub, resolver):
        # each hop is resolved from the property's own place, as the former filler did
        hops = 0
        while isinstance(sub, dict) and "default" not in sub and "$ref" in sub and hops < 10:
            try:
                sub = self.lookup(resolver, sub["$ref"]).contents
            except self.unresolvable:
                return None
            hops += 1
        return sub.get("default") if isinstance(sub, dict) else None

    def _properties(self, props, instance, schema, resolver, judged):
        if not isinstance(instance, dict):
            return
        for key, sub in props.items():
            if key not in instance:
                default = self.default_of(sub, resolver)
                if default is not None:
                    instance[key] = copy.deepcopy(default)
        for key, sub in props.items():
            if key in instance:
                yield from self._descend(sub, instance[key], resolver, judged)

    def _additional(self, extra, instance, schema, resolver, judged):
        if not isinstance(instance, dict):
            return
        if not isinstance(extra, dict):
            if judged:
                yield from self.checks["additionalProperties"](self.plain, extra, instance, schema)
            return
        props = schema.get("properties", {})
        patterns = "|".join(schema.get("patternProperties", {}))
        for key in list(instance):
            if key not in props and not (patterns and re.search(patterns, key)):
                yield from self._descend(extra, instance[key], resolver, judged)

    def _patterns(self, patterns, instance, schema, resolver, judged):
        if not isinstance(instance, dict):
            return
        for pattern, sub in patterns.items():
            for key, value in list(instance.items()):
                if re.search(pattern, key):
                    yield from self._descend(sub, value, resolver, judged)

    def _items(self, items, instance, schema, resolver, judged):
        if not isinstance(instance, list):
            return
        if items is False:
            if judged:
                yield from self.checks["items"](self.plain, items, instance, schema)
            return
        for index in range(len(schema.get("prefixItems", [])), len(instance)):
            yield from self._descend(items, instance[index], resolver, judged)

    def _prefix(self, prefix, instance, schema, resolver, judged):
        if not isinstance(instance, list):
            return
        for item, sub in zip(instance, prefix):
            yield from self._descend(sub, item, resolver, judged)

    def _names(self, names, instance, schema, resolver, judged):
        # keys are text: nothing to fill, only (when judged) to check
        if judged and isinstance(instance, dict):
            for key in list(instance):
                yield from self._descend(names, key, resolver, judged)

    def _ref(self, ref, instance, schema, resolver, judged):
        resolved = self.lookup(resolver, ref)
        yield from self._descend(resolved.contents, instance, resolved.resolver, judged)

    def _all_of(self, subs, instance, schema, resolver, judged):
        for sub in subs:
            yield from self._descend(sub, instance, resolver, judged)

    def _any_of(self, subs, instance, schema, resolver, judged):
        for sub in subs:
            if not list(self._descend(sub, instance, resolver, judged=True)):
                return
        yield "anyOf"

    def _one_of(self, subs, instance, schema, resolver, judged):
        rest = iter(subs)
        for sub in rest:
            if not list(self._descend(sub, instance, resolver, judged=True)):
                break
        else:
            yield "oneOf"
        if [sub for sub in rest if self._holds(sub, instance, resolver)]:
            yield "oneOf: more than one"

    def _if(self, condition, instance, schema, resolver, judged):
        branch = "then" if self._holds(condition, instance, resolver) else "else"
        if branch in schema:
            yield from self._descend(schema[branch], instance, resolver, judged)

    def _not(self, sub, instance, schema, resolver, judged):
        if self._holds(sub, instance, resolver):
            yield "not"


@lru_cache(maxsize=None)
def _walker(kind: str) -> _Walker:
    return _Walker(validator(kind))


def fill_defaults(kind: str, data) -> None:
    """Set, in place, every absent key of `data` that its schema gives a default."""
    _walker(kind).fill(data)
