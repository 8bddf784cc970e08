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
])
def test_benchmark_script_runs(script, args, expect):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expect in result.stdout
