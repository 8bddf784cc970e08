"""Pickling of classes that keep their attributes in `__slots__`.

In the modules listed as `extension_types` in pyproject.toml (events, metrics,
metricset, engine), the install compiles those classes to extension types
(docs/compiled.md); Cython would pickle them through a function that only the compiled
module has. Their `__reduce__` uses `restore` instead, so a snapshot taken compiled
restores in pure Python and the other way round.
"""
from __future__ import annotations

import functools


@functools.cache
def slot_names(cls: type) -> tuple:
    """Every slot of `cls` and its bases, in method resolution order (the class first)."""
    names: list = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return tuple(n for n in names if n not in ("__dict__", "__weakref__"))


def state_of(obj) -> tuple:
    """The values of `obj`'s slots, in `slot_names` order (None for one never set)."""
    return tuple(getattr(obj, name, None) for name in slot_names(type(obj)))


def restore(cls: type, values: tuple):
    """An instance of `cls` with `values` in its slots, without calling `__init__`."""
    obj = cls.__new__(cls)
    for name, value in zip(slot_names(cls), values):
        setattr(obj, name, value)
    return obj


def attributes(obj) -> dict:
    """Every attribute set on `obj`, by name: its slots', then its `__dict__`'s."""
    found = {name: getattr(obj, name) for name in slot_names(type(obj)) if hasattr(obj, name)}
    found.update(getattr(obj, "__dict__", {}))
    return found


def reduce_slots(obj) -> tuple:
    """`__reduce__` of a slotted class: rebuilt by `restore` from its slot values."""
    return restore, (type(obj), state_of(obj))
