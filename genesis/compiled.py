"""Compiled copies of the engine's hot modules, used in place of their source.

An install compiles the modules listed in pyproject.toml with Cython (hatch_build.py)
into `genesis/_compiled/`, with a manifest of each source's sha256. An import finder
loads a compiled copy only when it was built for this Python from the source as it is
now (and so were those of the modules whose types it was compiled against); an edited
module runs from its source until the next install. The copies are the sources compiled
as they are: they decide the same, byte for byte in the journal.

`GENESIS_PURE_PYTHON=1` runs every module from its source.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from importlib.machinery import ExtensionFileLoader, ModuleSpec
from pathlib import Path

COMPILED_DIR = Path(__file__).resolve().parent / "_compiled"
PACKAGE_ROOT = COMPILED_DIR.parent.parent


@dataclass(frozen=True)
class ModuleStatus:
    """Whether one listed module runs compiled, and if not, why."""

    name: str
    state: str      # "compiled", "stale" (source edited since), "missing" (not built), "off" (pure Python asked)


def pure_python_asked() -> bool:
    """True when GENESIS_PURE_PYTHON asks for every module from its source."""
    return os.environ.get("GENESIS_PURE_PYTHON", "") not in ("", "0")


def read_manifest(folder: Path = COMPILED_DIR) -> dict:
    """The manifest of the compiled modules ({} when none were built, or for another Python)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    if manifest.get("python") != sys.implementation.cache_tag:
        return {}
    return manifest.get("modules", {})


def source_path(name: str, root: Path = PACKAGE_ROOT) -> Path:
    """The source file of dotted module `name`."""
    return root / (name.replace(".", "/") + ".py")


def source_digest(name: str, root: Path = PACKAGE_ROOT) -> str | None:
    """The sha256 of module `name`'s source (None when it cannot be read): what the
    manifest records at the build and what is checked at import."""
    try:
        return hashlib.sha256(source_path(name, root).read_bytes()).hexdigest()
    except OSError:
        return None


def is_current(name: str, entry: dict, folder: Path = COMPILED_DIR, root: Path = PACKAGE_ROOT,
               modules: dict | None = None) -> bool:
    """True when the compiled copy exists and was built from the source as it is now, and
    so are the copies of the modules whose extension types it was compiled against (its
    `uses` in the manifest, looked up in `modules`): a copy built against a type that now
    runs from source would not load."""
    if not (folder / entry["file"]).is_file() or source_digest(name, root) != entry["source_sha256"]:
        return False
    modules = modules or {}
    return all(used in modules and is_current(used, modules[used], folder, root, modules)
               for used in entry.get("uses", ()))


class CompiledFinder:
    """A meta path finder that answers for the listed modules whose compiled copy is current."""

    def __init__(self, modules: dict, folder: Path = COMPILED_DIR, root: Path = PACKAGE_ROOT):
        self.modules, self.folder, self.root = modules, folder, root

    def find_spec(self, name, path=None, target=None):
        """A spec loading `name`'s compiled copy, or None for the usual finders."""
        entry = self.modules.get(name)
        if entry is None or not is_current(name, entry, self.folder, self.root, self.modules):
            return None
        location = str(self.folder / entry["file"])
        return ModuleSpec(name, ExtensionFileLoader(name, location), origin=location)

    def invalidate_caches(self) -> None:
        """Nothing cached (the finder protocol asks for it)."""


def install() -> None:
    """Put the finder first on sys.meta_path (once), unless pure Python is asked."""
    if pure_python_asked() or any(isinstance(f, CompiledFinder) for f in sys.meta_path):
        return
    modules = read_manifest()
    if modules:
        sys.meta_path.insert(0, CompiledFinder(modules))


def status() -> list[ModuleStatus]:
    """Each listed module's state, for the benchmarks and `genesis --version`."""
    modules = read_manifest()
    result = []
    for name, entry in sorted(modules.items()):
        if pure_python_asked():
            state = "off"
        elif not (COMPILED_DIR / entry["file"]).is_file():
            state = "missing"
        elif is_current(name, entry, modules=modules):
            state = "compiled"
        else:
            state = "stale"
        result.append(ModuleStatus(name, state))
    return result


def summary() -> str:
    """One line: whether the listed modules run compiled, and which do not and why."""
    if pure_python_asked():
        return "pure Python (GENESIS_PURE_PYTHON is set)"
    states = status()
    if not states:
        return "pure Python (no compiled modules were built)"
    compiled = sum(s.state == "compiled" for s in states)
    if compiled == len(states):
        return f"compiled ({compiled} modules)"
    others = "; ".join(f"{state}: " + ", ".join(s.name for s in states if s.state == state)
                       for state in ("stale", "missing") if any(s.state == state for s in states))
    return f"{compiled} of {len(states)} modules compiled ({others}; reinstall to compile them)"
