"""The engine's compiled modules (hatch_build.py compiles, genesis/compiled.py loads):
a compiled copy runs only while its source is unchanged, GENESIS_PURE_PYTHON turns them
off, and the compiled engine decides exactly as the pure-Python one."""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from genesis import compiled, declarations
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


def _hook():
    """hatch_build.py, loaded as the build loads it (hatchling and Cython are test extras)."""
    pytest.importorskip("Cython", reason="Cython is not installed (pip install -e '.[test]' installs it)")
    pytest.importorskip("hatchling", reason="hatchling is not installed (pip install -e '.[test]' installs it)")
    spec = importlib.util.spec_from_file_location("hatch_build_under_test", ROOT / "hatch_build.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


TOY = """
from genesis.engine.slotstate import reduce_slots


def answer(x):
    return x * 2 + 0.5


class Point:
    __slots__ = ("x", "y", "seen")

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.seen: dict = {}

    def __reduce__(self):
        return reduce_slots(self)

    def norm(self):
        return abs(self.x) + abs(self.y)


class Tagged(Point):
    __slots__ = ("tag",)
"""

USER = """
from genesis.engine.slotstate import reduce_slots
from pkg.fast import Point, answer


class Path:
    __slots__ = ("points", "first")

    def __init__(self):
        self.points: list = []
        self.first: Point | None = None

    def __reduce__(self):
        return reduce_slots(self)

    def add(self, point: Point) -> None:
        if self.first is None:
            self.first = point
        self.points.append(point)

    def length(self) -> float:
        total = 0
        point: Point
        for point in self.points:
            total += point.norm()
        return total

    def names(self) -> str:
        return ",".join(str(p.x) for p in self.points)   # a generator: not cpdef

    def extend(self, more: list = (), first: Point | None = None) -> None:
        for point in more:
            self.add(point)


class Shortest(Path):
    __slots__ = ()

    def add(self, point, weight=1):    # another arity than Path.add: neither is cpdef
        Path.add(self, point)
"""


def test_slotted_classes_are_declared_as_extension_types_that_pickle_alike():
    """The declarations made for an extension_types module: one field per slot for each
    slotted class whose base is such a class of the module, typed where the source
    annotates it with a container or an extension type, and `cpdef` methods; a slotted
    class without `__reduce__` (Cython would pickle it in its own way) is refused by name."""
    hook = _hook()
    assert hook.declarations(TOY) == ("cimport cython\n\ncdef class Point\ncdef class Tagged\n\n"
                                      "cdef class Point:\n    cdef public object x, y\n    cdef public dict seen\n"
                                      "    cpdef norm(self)\n\n"
                                      "cdef class Tagged(Point):\n    cdef public object tag\n")
    skipped = TOY + "\n\nclass Loose:\n    pass\n\n\nclass Other(dict):\n    __slots__ = ('z',)\n"
    assert hook.declarations(skipped) == hook.declarations(TOY)
    with pytest.raises(ValueError, match=r"pkg.bad: class Bare would become an extension type"):
        hook.declarations("class Bare:\n    __slots__ = ('a',)\n", "pkg.bad")
    user = hook.declarations(USER, "pkg.user", {"Point": "pkg.fast", "Tagged": "pkg.fast"})
    assert user.splitlines()[:2] == ["cimport cython", "from pkg.fast cimport Point"]
    assert "    cdef public list points\n    cdef public Point first\n" in user
    assert "    @cython.locals(point=Point)\n    cpdef length(self)\n" in user
    assert "cpdef names" not in user and "cpdef add" not in user
    assert "    cpdef extend(self, more=*, Point first=*)\n" in user   # `()` is no list: `more` stays untyped
    # without the imported types, an annotation naming one stays documentation
    assert "cdef public object first" in hook.declarations(USER, "pkg.user")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["hooks"]["custom"]
    exported: dict = {}
    declared = {}
    for name in project["extension_types"]:
        declared[name] = hook.declarations(compiled.source_path(name, ROOT).read_text(), name, exported)
        exported.update(dict.fromkeys(declarations.extension_types(declared[name]), name))
    everything = "".join(declared.values())
    for cls in ("_Window", "Metric", "SampledMetric(Metric)", "Timers", "MetricSet"):
        assert f"cdef class {cls}:" in everything, cls
    # the calls of a candle's path are C calls, with the metric and its window typed
    metricset = declared["genesis.engine.metricset"]
    assert "from genesis.engine.metrics cimport Metric" in metricset
    assert "    @cython.locals(metric=Metric)\n    cpdef advance(self, now, set changed)" in metricset
    assert "    cdef public Timers timers" in metricset or "Timers timers" in metricset
    assert "    @cython.locals(st=_Window)\n    cpdef on_due(self, group, when, now, m)" \
        in declared["genesis.engine.metrics"]
    # the engine's core is an extension type; Engine, the class everyone uses, stays a plain subclass
    engine = declared["genesis.engine.engine"]
    assert "cdef class EngineCore:" in engine and "    cdef public MetricSet metrics" in engine
    assert "cdef class Engine:" not in engine and "cdef class Engine\n" not in engine


def test_annotation_types_are_containers_and_extension_types_only():
    """What an annotation declares: a container or a known extension type, with `| None`
    or type arguments; anything else (numbers, strings, unions, unknown names) stays a
    Python object, so compiled arithmetic is Python's."""
    known = {"Metric"}
    for text, typed in [("dict", "dict"), ("dict[str, set]", "dict"), ("list | None", "list"), ("'Metric'", "Metric"),
                        ("Metric | None", "Metric"), ("float", "object"), ("int", "object"), ("str", "object"),
                        ("Counter", "object"), ("dict | list", "object"), ("Other", "object")]:
        assert declarations.type_of(ast.parse(text, mode="eval").body, known) == typed, text


def test_the_build_hook_compiles_modules_that_run_until_their_sources_change(tmp_path):
    """hatch_build.compile_modules compiles modules with Cython; loaded through the finder
    they are the compiled copies (their slotted classes extension types, whose pickles read
    back in pure Python). A typed field refuses what its annotation does not allow. After
    an edit of a source, that module runs from source, and so does the module compiled
    against its types (`uses` in the manifest)."""
    hook = _hook()
    root = tmp_path / "src"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "fast.py").write_text(TOY)
    (root / "pkg" / "user.py").write_text(USER)
    folder = root / "pkg" / "_compiled"
    hook.compile_modules(root, ["pkg.user", "pkg.fast"], folder, ["pkg.fast", "pkg.user"])
    manifest = compiled.read_manifest(folder)
    assert manifest["pkg.fast"]["file"] == f"pkg/fast{SUFFIX}"
    assert manifest["pkg.user"]["uses"] == ["pkg.fast"] and "uses" not in manifest["pkg.fast"]

    probe = textwrap.dedent(f"""
        import pickle, sys
        sys.path.insert(0, {str(root)!r})
        from pathlib import Path
        from genesis import compiled, declarations
        folder = Path({str(folder)!r})
        if sys.argv[1] == "finder":
            sys.meta_path.insert(0, compiled.CompiledFinder(compiled.read_manifest(folder), folder, folder.parent.parent))
        import pkg.fast, pkg.user
        try:
            pkg.fast.Point.extra = 1
            mutable = "mutable"
        except TypeError:   # an extension type
            mutable = "immutable"
        if len(sys.argv) > 2:
            point = pickle.loads(bytes.fromhex(sys.argv[2]))
            print(type(point).__name__, point.x, point.y, point.tag, point.norm())
        else:
            point = pkg.fast.Tagged(3, -4)
            point.tag = "t"
            path = pkg.user.Path()
            path.add(point)
            path.add(pkg.fast.Point(1, 1))
            try:
                path.first = "not a point"
                typed = "untyped"
            except TypeError:
                typed = "typed"
            print(pkg.fast.__file__, pkg.user.__file__, pkg.fast.answer(20), mutable, path.length(), path.names(),
                  typed, pickle.dumps(point).hex())
    """)

    def run(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=_env(False),
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()

    fast, user, answer, mutable, length, names, typed, blob = run("finder")
    assert (fast, user) == (str(folder / "pkg" / f"fast{SUFFIX}"), str(folder / "pkg" / f"user{SUFFIX}"))
    assert (answer, mutable, length, names, typed) == ("40.5", "immutable", "9", "3,1", "typed")
    assert run("none", blob) == ["Tagged", "3", "-4", "t", "7"]          # compiled pickle, read by the source
    fast, user, answer, mutable, length, names, typed, pure_blob = run("none")
    assert (fast, user) == (str(root / "pkg" / "fast.py"), str(root / "pkg" / "user.py"))
    assert (answer, mutable, length, names, typed) == ("40.5", "mutable", "9", "3,1", "untyped")
    assert pure_blob == blob                                              # the same bytes either way
    assert run("finder", pure_blob) == ["Tagged", "3", "-4", "t", "7"]

    (root / "pkg" / "fast.py").write_text(TOY.replace("x * 2 + 0.5", "x * 3"))
    fast, user, answer, mutable, *_ = run("finder")
    assert (fast, user, answer, mutable) == (str(root / "pkg" / "fast.py"), str(root / "pkg" / "user.py"), "60",
                                             "mutable")

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


@needs_built
@pytest.mark.parametrize("first_pure", [False, True], ids=["compiled-then-pure", "pure-then-compiled"])
def test_a_snapshot_taken_in_one_mode_resumes_in_the_other(tmp_path, first_pure):
    """A replay with snapshots killed with SIGKILL in one mode and restarted in the other
    resumes from its snapshot (the metrics' state pickles the same compiled or not) and
    ends with the journal of an uninterrupted run."""
    from test_bounded_recovery import SCRIPT, _config, _entries, _progress, _replay_cmd

    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT)
    plain = tmp_path / "plain"
    plain.mkdir()
    whole = subprocess.run(_replay_cmd(_config(plain, "4s"), plain / "journal.db", script), capture_output=True,
                           text=True, timeout=300, cwd=ROOT, env=_env(False))
    assert whole.returncode == 0, whole.stderr[-2000:]
    total = _progress(plain / "journal.db")

    root = _config(tmp_path, "4s")
    db = tmp_path / "journal.db"
    proc = subprocess.Popen(_replay_cmd(root, db, script), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(first_pure))
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _progress(db) >= total // 2 and _snapshots(db):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the replay ended before a snapshot was taken"
    last = subprocess.run(_replay_cmd(root, db, script), capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=_env(not first_pure))
    assert last.returncode == 0, last.stderr[-2000:]
    assert "resumed from the snapshot after input" in last.stderr, last.stderr[-2000:]
    assert _entries(db) == _entries(plain / "journal.db")


def _snapshots(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    except sqlite3.Error:
        return 0
