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
    ("bench_replay.py", ["--rounds", "1", "--sample"], "ratio to the floor"),
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


def test_bytecode_counts_of_a_tree_are_the_same_every_run():
    """opcodes_replay.py counts the interpreter's work, which does not move with the
    machine's load: the same revision against itself gives the same count, to the
    bytecode, and a ratio of 1.000."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "opcodes_replay.py"), "--case", "ticks",
                             "--events", "800", "--base", "HEAD", "--top", "2"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    ours = next(line for line in lines if line.strip().startswith("this tree"))
    theirs = next(line for line in lines if line.strip().startswith("base HEAD"))
    assert ours.split("bytecodes an event")[1] == theirs.split("bytecodes an event")[1]   # "(N in all)"
    assert "ratio current/base: 1.000" in result.stdout
    assert "genesis/engine/" in lines[-1]   # the functions are named by their place in the package
