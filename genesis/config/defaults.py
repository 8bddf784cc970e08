"""Fill every property's schema `default` into loaded data, the way Freqtrade's
validator extension does, so that a default is written once: in the schema.

The filling is a jsonschema validator whose `properties` keyword first sets each
absent key that has a default, then validates as usual; the validator's own descent
carries it into nested objects, array items, `$ref`s into common.schema.json and the
`then` of an `if` that holds (a kind-specific shape). `"default": null` means
"absent": nothing is filled, and the key's `x-when-absent` says what then applies.
"""
from __future__ import annotations

import copy
from functools import lru_cache

from genesis.config.schemas import validator


def _default_of(v, sub: dict):
    """The default a property schema declares, here or at the end of its `$ref`."""
    from jsonschema.exceptions import _RefResolutionError  # noqa: PLC0415 - loaded with the filler already
    from referencing.exceptions import Unresolvable  # noqa: PLC0415

    seen = 0
    while isinstance(sub, dict) and "default" not in sub and "$ref" in sub and seen < 10:
        try:
            sub = v._resolver.lookup(sub["$ref"]).contents
        except (Unresolvable, _RefResolutionError):
            return None
        seen += 1
    return sub.get("default") if isinstance(sub, dict) else None


def _with_defaults(cls):
    from jsonschema import validators  # noqa: PLC0415 - imported when a document is filled, not with the loader

    check_properties = cls.VALIDATORS["properties"]

    def properties(v, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if key not in instance:
                    default = _default_of(v, sub)
                    if default is not None:
                        instance[key] = copy.deepcopy(default)
        yield from check_properties(v, props, instance, schema)

    return validators.extend(cls, {"properties": properties})


@lru_cache(maxsize=None)
def _filler(kind: str):
    plain = validator(kind)
    return _with_defaults(type(plain))(plain.schema, registry=plain._registry)


def fill_defaults(kind: str, data) -> None:
    """Set, in place, every absent key of `data` that its schema gives a default."""
    for _ in _filler(kind).iter_errors(data):
        pass   # errors were reported by the plain validator, on what the user wrote
