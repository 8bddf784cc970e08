"""`genesis status`: the engine's status document read back from real journals, as text
for an 80-column terminal, as JSON, and redrawn with --watch."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]
ANSI = re.compile(r"\x1b\[")


def cli(*args: str, timeout: float = 120, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": str(columns)}
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A finished replay of the bundled sample in a journal file, and its JSON report."""
    db = tmp_path_factory.mktemp("status") / "replay.db"
    result = cli("replay", "--db", f"sqlite:///{db}", "--json")
    assert result.returncode == 0, result.stderr
    return f"sqlite:///{db}", json.loads(result.stdout)


def test_the_json_view_agrees_with_the_run_and_the_tier_file(replayed):
    url, report = replayed
    view = json.loads(cli("status", "--db", url, "--json").stdout)
    assert view["run"]["finished"] is True and view["run"]["alive"] is False
    assert view["run"]["mode"] == "replay" and view["tier"] == report["tier"] == "sniper"
    assert view["events"] == report["events"]
    assert round(view["equity_usd"], 2) == report["final_equity_usd"]
    assert round(view["drawdown_usd"], 2) <= report["max_drawdown_usd"]
    # the ladder: one step per amount of the tier's drawdown section, lowest first
    drawdown = yaml.safe_load((ROOT / "tiers" / "sniper.yaml").read_text())["drawdown"]
    assert [(s["step"], s["limit_usd"]) for s in view["ladder"]] == \
        [(k.removesuffix("_usd"), float(v)) for k, v in sorted(drawdown.items(), key=lambda kv: kv[1])]
    measured = [s for s in view["ladder"] if s["value"] is not None]
    assert measured and all(s["reached"] is False for s in measured)
    # tilt: the indicators tilt_score adds up, each in words
    tilt = view["tilt"]
    assert len(tilt["indicators"]) == 9 and tilt["score"] == sum(i["showing"] for i in tilt["indicators"])
    assert all(i["words"] and not i["words"].startswith("ind_") for i in tilt["indicators"])
    # positions are valued at the mark: unrealised = qty x (mark - entry)
    for p in view["positions"]:
        assert p["unrealised_usd"] == pytest.approx(p["qty"] * (p["mark_price"] - p["entry_price"]), abs=1e-4)
    assert view["state"]["mode"] == report["final_state"]
    assert [g["to"] for g in view["gates"]] == ["hunter"]


def test_the_text_fits_80_columns_and_says_the_run_finished(replayed):
    url, report = replayed
    text = cli("status", "--db", url).stdout
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert text.startswith("run 1 (replay, finished), tier sniper\n")
    assert "the run finished: the next `genesis run` starts a new run" in " ".join(text.split())
    assert f"equity ${report['final_equity_usd']:,.2f}, trading state {report['final_state']}" in text
    assert re.search(r"^ladder     info \$10 \(a single trade\); warning \$25 ", text, re.M), text
    assert re.search(r"^tilt       level 0 of 3, 0 signs of pressure showing", text, re.M)
    assert re.search(r"^decided    \d\d:\d\d:\d\d btc_eth_spread buy BTCUSDT \$50\.00 \(market\)$", text, re.M), text
    assert "1723" not in text                               # no epoch milliseconds


def test_a_running_engine_publishes_its_status_while_it_runs(tmp_path):
    db = f"sqlite:///{tmp_path / 'live.db'}"
    engine = subprocess.Popen([*CLI, "run", "--speed", "4", "--db", db], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(1.0)
            result = cli("status", "--db", db, "--json")
            if result.returncode == 0:
                view = json.loads(result.stdout)
                if view.get("run") and view["run"]["alive"] and view["events"] and \
                        (not seen or view["events"] > seen[-1]["events"]):
                    seen.append(view)
        assert len(seen) == 2, "two status documents of a running engine"
        assert seen[1]["at_ms"] > seen[0]["at_ms"] and not seen[1]["run"]["finished"]
        text = cli("status", "--db", db).stdout
        assert "an engine is running on this journal (last heartbeat" in " ".join(text.split())
    finally:
        engine.terminate()
        engine.wait(timeout=30)


def test_watch_redraws_without_control_characters_when_piped(replayed):
    url, _ = replayed
    watcher = subprocess.Popen([*CLI, "status", "--db", url, "--watch", "0.3"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    watcher.terminate()
    out, err = watcher.communicate(timeout=30)
    assert out.count("run 1 (replay, finished), tier sniper") >= 2, out + err
    assert not ANSI.search(out) and "\r" not in out


@pytest.mark.parametrize("url, says", [
    ("nonsense", "'nonsense' is not a database URL"),
    ("sqlite:///{tmp}/none.db", "nothing has run yet"),
])
def test_a_bad_journal_url_is_a_clear_error(tmp_path, url, says):
    result = cli("status", "--db", url.format(tmp=tmp_path))
    assert result.returncode == 1 and result.stderr.startswith("genesis: ") and says in result.stderr


def test_a_bad_url_with_a_password_never_shows_it():
    result = cli("status", "--db", "postgres//trader:s3cret@db.example/genesis")
    assert result.returncode == 1 and "is not a database URL" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
