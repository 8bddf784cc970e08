"""Snapshots of a running engine's whole state, so that recovery replays only the input
after the latest one instead of the whole run.

A snapshot is the pickled state of the engine and of its exchange (metrics and their
windows, rule states and timers, trading state, locks, requirements, account, orders,
strategy state, day totals). What the state refers to but does not own is not copied:

- the static part, the compiled configuration (the checked config, the ruleset with its
  compiled expressions, the market rules), is named by its path inside those objects
  and found again in the same configuration compiled afresh at restore;
- the run's externals (the journal, the observers, the notify callback, callbacks set on
  the engine or its exchange) are those of the process that restores.

So a snapshot is bound to the configuration it was taken under (kept with it) and to the
layout of the compiled objects: `StaticIndex.digest` names that layout, and a snapshot
whose digest or STATE_VERSION differs from what this Genesis compiles is not used
(recovery then starts from an older snapshot, or from the start of the input).
Restoring is in place: the engine and exchange objects keep their identity, so whatever
holds them (the session, the live runner) goes on with the restored state.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import types
import zlib

from genesis.engine.slotstate import attributes

STATE_VERSION = 10   # bump when the pickled state's classes change shape incompatibly
_ATOMS = (str, bytes, int, float, bool, type(None), complex)
_LEAVES = (set, frozenset, type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
           types.MethodType, types.CodeType)


class SnapshotError(Exception):
    """A snapshot cannot be taken or used; the message says why."""


class StaticIndex:
    """Every object reachable from the compiled configuration, by a path that is the same
    each time the same configuration files are compiled for the same tier."""

    def __init__(self, roots: dict):
        self.roots = roots
        self.path_of: dict[int, tuple] = {}
        self.at: dict[tuple, object] = {}
        stack = [(obj, (name,)) for name, obj in reversed(list(roots.items()))]
        while stack:
            obj, path = stack.pop()
            if isinstance(obj, _ATOMS) or id(obj) in self.path_of:
                continue
            self.path_of[id(obj)] = path
            self.at[path] = obj
            # sets are not walked: their order differs between processes, so paths through
            # them would not be stable (and nothing compiled is reachable only through one)
            if isinstance(obj, _LEAVES):
                continue
            if isinstance(obj, dict):
                # by key, in key order: a dict built from a set has its own order in
                # each process, its keys do not
                children = sorted(((v, path + (_key(k, i),)) for i, (k, v) in enumerate(obj.items())),
                                  key=lambda child: repr(child[1][-1]))
            elif isinstance(obj, (list, tuple)):
                children = [(v, path + (i,)) for i, v in enumerate(obj)]
            else:
                children = [(v, path + (k,)) for k, v in attributes(obj).items()]
            stack.extend(reversed(children))
        shape = sorted(repr((path, type(obj).__qualname__)) for path, obj in self.at.items())
        self.digest = hashlib.sha256("\n".join(shape).encode()).hexdigest()

    @classmethod
    def of(cls, engine) -> "StaticIndex":
        """The index of an engine's compiled configuration."""
        return cls({"config": engine.config, "ruleset": engine.ruleset, "markets": engine.markets})

    def covers(self, engine) -> bool:
        """Whether this index was built from the engine's current configuration."""
        roots = self.roots
        return roots["config"] is engine.config and roots["ruleset"] is engine.ruleset \
            and roots["markets"] is engine.markets


def _key(key, position: int):
    """A dict entry's step in a path: its key when that is plain data, else its position."""
    if isinstance(key, (str, int, float, bool)) or (isinstance(key, tuple) and all(
            isinstance(k, (str, int, float, bool)) for k in key)):
        return key
    return ("#", position)


def _externals(engine) -> dict:
    """What the state refers to that belongs to the process, by name."""
    return {"journal": engine.journal, "observers": engine.observers}


def _owned(obj) -> dict:
    """An object's attributes that belong to the run: not the callables set on it from
    outside, nor those its class names in `PROCESS_ATTRS` (what the process that runs it
    did, not what its input says: requests queued to send, whether it is past recovery).
    Those stay the restoring process's own."""
    process = getattr(type(obj), "PROCESS_ATTRS", ())
    return {k: v for k, v in attributes(obj).items() if k not in process
            and not isinstance(v, (types.FunctionType, types.MethodType, types.BuiltinFunctionType))}


class _Pickler(pickle.Pickler):
    def __init__(self, file, engine, index: StaticIndex):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.kept = {id(engine): ("kept", "engine"), id(engine.exchange): ("kept", "exchange")}
        self.kept.update({id(v): ("external", k) for k, v in _externals(engine).items() if v is not None})
        self.index = index

    def persistent_id(self, obj):
        if isinstance(obj, _ATOMS):
            return None
        found = self.kept.get(id(obj))
        if found is not None:
            return found
        path = self.index.path_of.get(id(obj))
        return None if path is None else ("static", path)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, engine, index: StaticIndex):
        super().__init__(file)
        self.engine, self.index = engine, index

    def persistent_load(self, pid):
        kind, name = pid
        if kind == "kept":
            return self.engine if name == "engine" else self.engine.exchange
        if kind == "external":
            return _externals(self.engine)[name]
        try:
            return self.index.at[name]
        except KeyError:
            raise SnapshotError(f"the snapshot refers to {'.'.join(map(str, name))}, which this configuration "
                                "does not have") from None


def freeze(engine, index: StaticIndex) -> bytes:
    """The engine's state (and its exchange's), pickled: what `compress` makes a stored
    snapshot of (the run loop pickles; compressing can wait for a worker thread)."""
    if not index.covers(engine):
        raise SnapshotError("the static index is not that of the engine's configuration")
    buf = io.BytesIO()
    try:
        _Pickler(buf, engine, index).dump({"engine": _owned(engine), "exchange": _owned(engine.exchange),
                                           "exchange_type": type(engine.exchange).__qualname__})
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"the engine's state cannot be saved: {exc}") from None
    return buf.getvalue()


def compress(frozen: bytes) -> bytes:
    """A stored snapshot: `freeze`'s bytes compressed (what `thaw` reads)."""
    return zlib.compress(frozen, 1)


def thaw(engine, blob: bytes, index: StaticIndex) -> None:
    """Put a frozen state into `engine` (built on the same configuration as `index`), in place."""
    try:
        state = _Unpickler(io.BytesIO(zlib.decompress(blob)), engine, index).load()
    except SnapshotError:
        raise
    except Exception as exc:   # noqa: BLE001 - a damaged or foreign snapshot: any error means unusable
        raise SnapshotError(f"the snapshot cannot be read: {type(exc).__name__}: {exc}") from None
    if state["exchange_type"] != type(engine.exchange).__qualname__:
        raise SnapshotError(f"the snapshot is of a {state['exchange_type']} run, not a "
                            f"{type(engine.exchange).__qualname__} one")
    for target, values in ((engine, state["engine"]), (engine.exchange, state["exchange"])):
        for name, value in values.items():
            setattr(target, name, value)
