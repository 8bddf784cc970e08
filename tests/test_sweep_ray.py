"""`genesis sweep --ray ADDRESS`: the same grid on a real local Ray head (2 CPUs, 127.0.0.1
only) gives the same trials as on local cores; a missing ray or an unreachable head is one
clear line, not a traceback."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_metrics_endpoint import free_port
from test_sweep import HARD_STOP, POSITION, config_copy, genesis, write_sweep

from genesis.cli import cli

HEAD_START_S = 60
# find_spec, not import: ray reads LOCAL_ONLY when imported, which the sweep does itself
NEEDS_RAY = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'genesis-trader[ray]')")
# Ray binds to the machine's address unless told it is a local-only cluster
LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _wait_for_port(head: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + HEAD_START_S
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start exited {head.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the Ray head did not open 127.0.0.1:{port} within {HEAD_START_S} s")


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with 2 CPUs, in the foreground (--block) so that ending this one
    process by its id ends its node; `ray stop` would end every Ray on the machine."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="gr-")   # short: Ray's socket paths must fit 107 characters
    log = Path(temp) / "head.log"
    with log.open("w") as out:
        head = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(port), "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard=false",
             "--disable-usage-stats", "--object-store-memory", str(80 * 2**20), "--temp-dir", temp],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **LOCAL_ONLY}, start_new_session=True)
    try:
        _wait_for_port(head, port, log)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)   # the group this fixture started
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _trials(folder: Path, *options: str) -> dict:
    sweep = write_sweep(folder, {"config": "config", "parameters": [
        {"key": POSITION, "values": [2, -1]}, {"key": HARD_STOP, "values": [0.001, 15]}],
        "objective": {"metric": "halts"}})
    result = genesis("sweep", str(sweep), "--json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@NEEDS_RAY
def test_a_grid_on_ray_gives_the_local_results(ray_head, tmp_path):
    config_copy(tmp_path / "config")
    local = _trials(tmp_path, "--workers", "1")
    on_ray = _trials(tmp_path, "--ray", ray_head)
    assert on_ray["workers"] == 2   # the cluster's CPUs
    assert len(on_ray["trials"]) == 4
    assert {t["status"] for t in on_ray["trials"]} == {"ok", "invalid"}
    for field in ("number", "values", "status", "reason", "metrics", "phase"):
        assert [t[field] for t in on_ray["trials"]] == [t[field] for t in local["trials"]], field
    assert on_ray["best"]["values"] == local["best"]["values"]


@NEEDS_RAY
def test_an_unreachable_head_is_one_clear_line(tmp_path):
    sweep = write_sweep(tmp_path, {"parameters": [{"key": POSITION, "values": [2]}]})
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--ray", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 1 and "cannot reach a Ray head at 127.0.0.1:" in result.output
    assert time.monotonic() - started < 10
    assert "Traceback" not in result.output and not (tmp_path / "tune.results.json").exists()


@pytest.mark.parametrize("options, expect", [
    (["--ray", "127.0.0.1"], "is not HOST:PORT"),
    (["--ray", "127.0.0.1:99999"], "is not HOST:PORT"),
    (["--ray", "127.0.0.1:6379", "--workers", "2"], "--workers counts local processes"),
])
def test_a_malformed_address_is_refused(tmp_path, options, expect):
    sweep = write_sweep(tmp_path, {"parameters": [{"key": POSITION, "values": [2]}]})
    result = CliRunner().invoke(cli, ["sweep", str(sweep), *options])
    assert result.exit_code == 2 and expect in result.output and "Traceback" not in result.output


def test_without_ray_installed_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` fails as on a machine without it
    sweep = write_sweep(tmp_path, {"parameters": [{"key": POSITION, "values": [2]}]})
    result = CliRunner().invoke(cli, ["sweep", str(sweep), "--ray", "127.0.0.1:6379"])
    assert result.exit_code == 1 and "pip install 'genesis-trader[ray]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "tune.results.json").exists()
