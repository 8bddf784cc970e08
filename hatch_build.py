"""Build hook: compiles the engine's hot modules with Cython when the package is built
or installed (`pip install -e .` included), into `genesis/_compiled/`.

The sources are compiled as they are, so the compiled copy decides exactly as the
source does; `genesis/compiled.py` uses a copy only while its source is unchanged. In
the modules listed as `extension_types`, each class that keeps its attributes in
`__slots__` (and whose base, if any, is such a class of the same module) is compiled to
an extension type: a declaration file (.pxd) generated from the source
(genesis/declarations.py) gives it one C field per slot, typed where the source's
annotation names a container or an extension type, and `cpdef` methods, so that reading
an attribute is a field read and a call between them a C call, not a lookup. The
`extension_types` modules are declared in their listed order: a later one may use an
earlier one's types. Where compiling fails (no C compiler), the install goes on and
Genesis runs as pure Python. `GENESIS_PURE_PYTHON=1` at install time skips compiling.
The modules are listed in pyproject.toml, `[tool.hatch.build.hooks.custom]`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

COMPILED_DIR = Path("genesis") / "_compiled"


class CompiledModulesHook(BuildHookInterface):
    """Compiles the listed modules for a wheel or an editable install."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        if os.environ.get("GENESIS_PURE_PYTHON", "") not in ("", "0"):
            shutil.rmtree(root / COMPILED_DIR, ignore_errors=True)   # nor those of an earlier install
            self.app.display_info("genesis: GENESIS_PURE_PYTHON is set: no compiled modules")
            return
        modules = list(self.config.get("modules", []))
        extension_types = list(self.config.get("extension_types", []))
        try:
            compile_modules(root, modules, root / COMPILED_DIR, extension_types)
        except Exception as exc:  # noqa: BLE001 - any failure leaves a working pure-Python install
            shutil.rmtree(root / COMPILED_DIR, ignore_errors=True)
            self.app.display_warning(
                f"genesis: the compiled modules were not built ({type(exc).__name__}: {exc}); "
                "Genesis runs as pure Python, slower on long replays")
            return
        self.app.display_info(f"genesis: compiled {len(modules)} modules into {COMPILED_DIR}")
        if version != "editable":   # an editable install reads them from the source tree
            build_data["force_include"][str(root / COMPILED_DIR)] = str(COMPILED_DIR)
            build_data["pure_python"] = False
            build_data["infer_tag"] = True


def _genesis_module(name: str):
    """genesis/NAME.py, loaded on its own (the package's dependencies need not be installed
    yet): compiled.py's digest of a source is the one it checks; declarations.py writes the .pxd."""
    spec = importlib.util.spec_from_file_location(f"genesis_{name}_at_build",
                                                  Path(__file__).resolve().parent / "genesis" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def declarations(source: str, module: str = "", imported: dict | None = None) -> str:
    """The .pxd written beside an extension_types module (genesis/declarations.py)."""
    return _genesis_module("declarations").declarations(source, module, imported)


def compile_modules(root: Path, modules: list[str], out: Path, extension_types: list[str] = ()) -> None:
    """Cythonize and compile `modules` (dotted names under `root`) into `out`, with a
    manifest of each one's file and source digest; the slotted classes of the modules in
    `extension_types` become extension types."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    digest = _genesis_module("compiled").source_digest
    declare = _genesis_module("declarations")
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="genesis-build-") as tmp:
        # the sources are compiled from a copy, beside the declarations made for them
        src = Path(tmp) / "src"
        sources, uses = {}, {}
        exported: dict = {}   # extension type -> its module, for the extension_types modules after it
        for name in sorted(modules, key=lambda m: extension_types.index(m) if m in extension_types else -1):
            relative = Path(name.replace(".", "/") + ".py")
            copy = src / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / relative, copy)
            for package in relative.parents:
                if package != Path(".") and (root / package / "__init__.py").is_file():
                    shutil.copyfile(root / package / "__init__.py", src / package / "__init__.py")
            if name in extension_types:
                pxd = declare.declarations(copy.read_text(), name, exported)
                copy.with_suffix(".pxd").write_text(pxd)
                exported.update(dict.fromkeys(declare.extension_types(pxd), name))
                uses[name] = declare.cimported_modules(pxd)
            sources[name] = copy
        extensions = [Extension(name, [str(path)]) for name, path in sources.items()]
        extensions = cythonize(
            extensions, build_dir=str(Path(tmp) / "c"), quiet=True, force=True,
            # Cython's own reading of annotations stays off (an `int` or `float` annotation would
            # change arithmetic): genesis/declarations.py types only containers and extension types
            include_path=[str(src)],   # where one module's .pxd cimports another's
            compiler_directives={"language_level": 3, "annotation_typing": False})
        dist = Distribution({"name": "genesis-compiled", "ext_modules": extensions, "script_name": "hatch_build.py"})
        command = build_ext(dist)
        command.build_lib = str(out)
        command.build_temp = str(Path(tmp) / "o")
        command.parallel = os.cpu_count() or 1
        command.ensure_finalized()
        command.run()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    manifest = {
        "python": sys.implementation.cache_tag,
        "modules": {name: {"file": name.replace(".", "/") + suffix, "source_sha256": digest(name, root),
                           **({"uses": uses[name]} if uses.get(name) else {})}
                    for name in modules},
    }
    for name, entry in manifest["modules"].items():
        if not (out / entry["file"]).is_file():
            raise FileNotFoundError(f"{name} was not built ({entry['file']})")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
