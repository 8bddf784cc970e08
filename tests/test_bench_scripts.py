"""The benchmark scripts run to the end on the bundled data (a smoke test: timing is
the benchmarks' business, not the tests')."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script, args, expect", [
    ("bench_expressions.py", ["--rounds", "50"], "compiled, one function per stage"),
    ("bench_pipeline.py", ["--limit", "4000"], "same decisions:"),
    ("bench_live_latency.py", ["--speed", "8", "--decisions", "40", "--capture"], "order request written to its socket"),
    ("bench_restart.py", ["--lengths", "10m,20m", "--rounds", "1"], "snapshot restart against the 10m run"),
    ("bench_sweep.py", ["--trials", "2"], "same results on 1 and 2 workers: yes"),
    ("bench_startup.py", ["--rounds", "1"], "floor: python -c pass (baseline)"),
    ("bench_replay.py", ["--rounds", "1", "--sample", "--pure"], "compiled/pure"),
    ("bench_memory.py", ["--quick", "--only", "candles,symbols", "--days", "1,2", "--symbols", "1,2",
                         "--symbol-lines", "2000"], "per symbol, engine"),
    ("bench_live_symbols.py", ["--symbols", "2", "--seconds", "2", "--warmup-s", "1", "--capture"], "p99<=1ms"),
    ("bench_snapshot.py", ["--symbols", "1,2", "--symbol-lines", "2000", "--rounds", "1"], "ratio loop/baseline"),
    ("opcodes_replay.py", ["--case", "ticks", "--events", "500", "--top", "3"], "bytecodes an event"),
])
def test_benchmark_script_runs(script, args, expect):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expect in result.stdout


def test_compare_pipeline_runs_both_trees_on_one_input():
    """The before/after comparison checks the base revision out beside the same data."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_pipeline.py"), "--base", "HEAD",
                             "--rounds", "1", "--limit", "2000"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "input (both trees):" in result.stdout and "ratio current/base:" in result.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "compare_pipeline.py"), "--base", "no-such-revision",
                          "--rounds", "1"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode != 0 and "cannot check out 'no-such-revision'" in bad.stderr
    assert "Traceback" not in bad.stderr


def _bytecodes(*args: str) -> str:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "opcodes_replay.py"), "--case", "ticks",
                             "--events", "800", "--top", "2", *args], capture_output=True, text=True, timeout=600,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _total(out: str, label: str) -> int:
    line = next(line for line in out.splitlines() if line.strip().startswith(label))
    return int(line.split("(")[1].split(" in all")[0].replace(",", ""))


def test_bytecode_counts_of_a_tree_are_the_same_every_run():
    """opcodes_replay.py counts the interpreter's work, which does not move with the
    machine's load: two runs of the same tree give the same count (to a few bytecodes:
    the journal keeps its slowest write's time); with --base the revision is checked out
    and counted too, and the functions are named by their place in the package."""
    first, second = _total(_bytecodes(), "this tree"), _total(_bytecodes(), "this tree")
    assert first > 100_000 and abs(first - second) <= 50, (first, second)
    against = _bytecodes("--base", "HEAD")
    assert _total(against, "base HEAD") > 100_000 and "ratio current/base: " in against
    assert "genesis/engine/" in against.splitlines()[-1]
