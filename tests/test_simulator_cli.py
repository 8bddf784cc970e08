"""``genesis simulate`` (the click command in genesis/simulator/cli.py)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from genesis.simulator.cli import simulate

ROOT = Path(__file__).resolve().parents[1]


def test_refuses_a_non_loopback_host():
    result = CliRunner().invoke(simulate, ["--host", "0.0.0.0"])
    assert result.exit_code == 2 and "loopback" in result.output


def test_refuses_unknown_faults_and_bad_balances(tmp_path):
    result = CliRunner().invoke(simulate, ["--fault", "http_eror_next=1"])
    assert result.exit_code == 2 and "unknown fault 'http_eror_next'" in result.output
    spec = tmp_path / "faults.yaml"
    spec.write_text("ws_drop_after: ten\n")
    result = CliRunner().invoke(simulate, ["--faults", str(spec)])
    assert result.exit_code == 2 and "ws_drop_after" in result.output
    result = CliRunner().invoke(simulate, ["--balance", "USDT"])
    assert result.exit_code == 2 and "ASSET=AMOUNT" in result.output


def test_runs_prints_urls_and_stops_on_ctrl_c(tmp_path):
    spec = tmp_path / "faults.json"
    spec.write_text(json.dumps({"reject_next": 1}))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "from genesis.simulator.cli import simulate; simulate()"
    proc = subprocess.Popen([sys.executable, "-u", "-c", code, "--port", "0", "--speed", "step",
                             "--faults", str(spec), "--balance", "USDT=500", "--fault", "seed=3"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        banner = "".join(lines)
        base = re.search(r"on (http://127\.0\.0\.1:\d+)", banner).group(1)
        assert f"{base}/api/v3/" in banner and base.replace("http", "ws") + "/ws-api/v3" in banner
        assert "genesis-sim-key" in banner and "genesis-sim-secret" not in banner
        assert json.loads(urllib.request.urlopen(base + "/api/v3/ping").read()) == {}
        state = json.loads(urllib.request.urlopen(base + "/sim/state").read())
        assert state["accounts"]["genesis-sim-key"]["balances"]["USDT"]["free"] == "500.00000000"
        assert state["faults"]["spec"]["reject_next"] == 1 and state["faults"]["spec"]["seed"] == 3
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "simulator stopped" in out
