"""The engine's compiled modules (hatch_build.py compiles, genesis/compiled.py loads):
a compiled copy runs only while its source is unchanged, GENESIS_PURE_PYTHON turns them
off, and the compiled engine decides exactly as the pure-Python one."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from genesis import compiled
from genesis.engine.feeds import sample_paths, shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
BUILT = compiled.read_manifest()
needs_built = pytest.mark.skipif(not BUILT, reason="this install has no compiled modules (no C compiler when "
                                                   "it was installed, or GENESIS_PURE_PYTHON was set)")


def _env(pure: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GENESIS_PURE_PYTHON"} | {"PYTHONHASHSEED": "0"}
    if pure:
        env["GENESIS_PURE_PYTHON"] = "1"
    return env


def _python(code: str, pure: bool = False, cwd: Path = ROOT) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(pure), cwd=cwd,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _manifest(folder: Path, modules: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"python": sys.implementation.cache_tag, "modules": modules}))


def test_a_compiled_copy_is_used_only_while_its_source_is_unchanged(tmp_path):
    """The finder answers for a listed module whose file exists and whose source has the
    recorded digest; an edited source, a missing file, an unlisted module or a manifest
    of another Python leave the module to the usual finders (its source)."""
    root, folder = tmp_path / "src", tmp_path / "src" / "_compiled"
    (root / "pkg").mkdir(parents=True)
    source = root / "pkg" / "fast.py"
    source.write_text("X = 1\n")
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / f"fast{SUFFIX}").write_bytes(b"not loaded here")
    entry = {"file": f"pkg/fast{SUFFIX}", "source_sha256": hashlib.sha256(b"X = 1\n").hexdigest()}
    _manifest(folder, {"pkg.fast": entry})
    modules = compiled.read_manifest(folder)
    assert modules == {"pkg.fast": entry}
    finder = compiled.CompiledFinder(modules, folder, root)

    spec = finder.find_spec("pkg.fast")
    assert spec is not None and spec.origin == str(folder / "pkg" / f"fast{SUFFIX}")
    assert type(spec.loader).__name__ == "ExtensionFileLoader"
    assert finder.find_spec("pkg.other") is None

    source.write_text("X = 2\n")                       # edited since the build: its source runs
    assert finder.find_spec("pkg.fast") is None
    source.write_text("X = 1\n")
    assert finder.find_spec("pkg.fast") is not None
    (folder / "pkg" / f"fast{SUFFIX}").unlink()        # the copy is gone
    assert finder.find_spec("pkg.fast") is None

    (folder / "manifest.json").write_text(json.dumps({"python": "cpython-00", "modules": modules}))
    assert compiled.read_manifest(folder) == {}
    (folder / "manifest.json").write_text("{not json")
    assert compiled.read_manifest(folder) == {}


def test_the_build_hook_compiles_a_module_that_runs_until_its_source_changes(tmp_path):
    """hatch_build.compile_modules compiles a module with Cython; loaded through the finder
    it is the compiled copy, and after an edit of its source the source runs instead."""
    pytest.importorskip("Cython", reason="Cython is not installed (pip install -e '.[test]' installs it)")
    spec = importlib.util.spec_from_file_location("hatch_build_under_test", ROOT / "hatch_build.py")
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed here (pip install -e '.[test]' installs it)")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    root = tmp_path / "src"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "fast.py").write_text("def answer(x):\n    return x * 2 + 0.5\n")
    folder = root / "pkg" / "_compiled"
    hook.compile_modules(root, ["pkg.fast"], folder)
    assert compiled.read_manifest(folder)["pkg.fast"]["file"] == f"pkg/fast{SUFFIX}"

    probe = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(root)!r})
        from pathlib import Path
        from genesis import compiled
        folder = Path({str(folder)!r})
        sys.meta_path.insert(0, compiled.CompiledFinder(compiled.read_manifest(folder), folder, folder.parent.parent))
        import pkg.fast
        print(pkg.fast.__file__, pkg.fast.answer(20))
    """)
    path, answer = _python(probe).split()
    assert path == str(folder / "pkg" / f"fast{SUFFIX}") and answer == "40.5"
    (root / "pkg" / "fast.py").write_text("def answer(x):\n    return x * 3\n")
    path, answer = _python(probe).split()
    assert path == str(root / "pkg" / "fast.py") and answer == "60"

    with pytest.raises(Exception):     # what the hook turns into a warning and a pure-Python install
        hook.compile_modules(root, ["pkg.missing"], tmp_path / "out")


@needs_built
def test_the_engine_modules_run_compiled_unless_pure_python_is_asked():
    """An install with compiled modules imports them; GENESIS_PURE_PYTHON=1 imports the
    sources; `genesis --version` says which."""
    code = "import genesis.engine.metricset as m, genesis.engine.rules as r; print(m.__file__, r.__file__)"
    for path in _python(code).split():
        assert path.endswith(SUFFIX) and "/_compiled/" in path
    for path in _python(code, pure=True).split():
        assert path.endswith(".py") and "/_compiled/" not in path
    version = "import sys; sys.argv = ['genesis', '--version']; from genesis.cli import main; main()"
    assert _python(version).endswith(f"engine modules: compiled ({len(BUILT)} modules)")
    assert _python(version, pure=True).endswith("engine modules: pure Python (GENESIS_PURE_PYTHON is set)")


def _journal(files: list[Path], tier: str, db: Path, pure: bool) -> list[tuple]:
    done = subprocess.run([sys.executable, "-m", "genesis", "replay", *map(str, files), "--tier", tier,
                           "--db", f"sqlite:///{db}"], capture_output=True, text=True, env=_env(pure),
                          cwd=db.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with sqlite3.connect(db) as conn:
        return conn.execute("select ts, kind, rule, symbol, data from entries order by seq").fetchall()


@needs_built
@pytest.mark.parametrize("tier", ["sniper", "hunter", "strategist"])
def test_compiled_and_pure_python_replays_write_the_same_journal(tmp_path, tier):
    """The bundled sample replayed by the compiled engine and by its sources: the same
    entries, byte for byte (inputs, decisions, orders, fills)."""
    compiled_entries = _journal(sample_paths(), tier, tmp_path / "compiled.db", pure=False)
    pure_entries = _journal(sample_paths(), tier, tmp_path / "pure.db", pure=True)
    assert len(compiled_entries) > 3
    assert compiled_entries == pure_entries


@needs_built
def test_compiled_and_pure_python_candle_backtests_write_the_same_journal(tmp_path):
    """30 days x 2 pairs of real candles on Hunter (thousands of decisions): the same journal."""
    shared = shared_data_dir()
    candles = sorted((shared / "binance_spot_ohlcv").glob("*.json.gz")) if shared else []
    if not candles:
        pytest.skip("../shared/data/binance_spot_ohlcv is absent")
    compiled_entries = _journal(candles, "hunter", tmp_path / "compiled.db", pure=False)
    pure_entries = _journal(candles, "hunter", tmp_path / "pure.db", pure=True)
    assert len(compiled_entries) > 1000
    assert compiled_entries == pure_entries


def test_without_a_manifest_everything_runs_from_source(tmp_path):
    """A checkout that was never installed (no genesis/_compiled) runs its sources: the
    status says so and the finder is not installed."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "genesis", tree / "genesis", ignore=shutil.ignore_patterns("_compiled", "__pycache__"))
    out = _python("import sys, genesis, genesis.compiled as c, genesis.engine.metricset as m; "
                  "print(m.__file__); print(c.summary()); "
                  "print(any(isinstance(f, c.CompiledFinder) for f in sys.meta_path))", cwd=tree)
    path, summary, installed = out.splitlines()
    assert path == str(tree / "genesis" / "engine" / "metricset.py")
    assert summary == "pure Python (no compiled modules were built)"
    assert installed == "False"
