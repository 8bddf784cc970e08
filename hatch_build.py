"""Build hook: compiles the engine's hot modules with Cython when the package is built
or installed (`pip install -e .` included), into `genesis/_compiled/`.

The sources are compiled as they are, without type declarations, so the compiled copy
decides exactly as the source does; `genesis/compiled.py` uses a copy only while its
source is unchanged. Where compiling fails (no C compiler), the install goes on and
Genesis runs as pure Python. `GENESIS_PURE_PYTHON=1` at install time skips compiling.
The modules are listed in pyproject.toml, `[tool.hatch.build.hooks.custom] modules`.
"""
from __future__ import annotations

import hashlib
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
        if os.environ.get("GENESIS_PURE_PYTHON", "") not in ("", "0"):
            self.app.display_info("genesis: GENESIS_PURE_PYTHON is set: no compiled modules")
            return
        root = Path(self.root)
        modules = list(self.config.get("modules", []))
        try:
            compile_modules(root, modules, root / COMPILED_DIR)
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


def source_digest(path: Path) -> str:
    """The sha256 of a module's source, as `genesis/compiled.py` checks it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_modules(root: Path, modules: list[str], out: Path) -> None:
    """Cythonize and compile `modules` (dotted names under `root`) into `out`, with a
    manifest of each one's file and source digest."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="genesis-build-") as tmp:
        sources = {name: root / (name.replace(".", "/") + ".py") for name in modules}
        extensions = [Extension(name, [str(path)]) for name, path in sources.items()]
        extensions = cythonize(
            extensions, build_dir=str(Path(tmp) / "c"), quiet=True, force=True,
            # annotations stay documentation: a compiled module accepts what the source does
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
        "modules": {name: {"file": name.replace(".", "/") + suffix, "source_sha256": source_digest(path)}
                    for name, path in sources.items()},
    }
    for name, entry in manifest["modules"].items():
        if not (out / entry["file"]).is_file():
            raise FileNotFoundError(f"{name} was not built ({entry['file']})")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
