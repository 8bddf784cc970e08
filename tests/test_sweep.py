"""`genesis sweep`: real replays of the bundled sample on 2 worker processes, checked
against single `genesis replay` runs; invalid trials reported, not run; walk-forward
splits by event time; the best trial's diff validates once applied."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from genesis.cli import cli
from genesis.config.edit import edited_text

ROOT = Path(__file__).resolve().parents[1]
POSITION = "tiers/sniper.yaml: limits.max_position_pct"
HARD_STOP = "tiers/sniper.yaml: limits.hard_stop_drawdown_pct"


def genesis(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def config_copy(target: Path) -> Path:
    """The repository's configuration, copied."""
    target.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "rules", target / "rules")
    shutil.copytree(ROOT / "tiers", target / "tiers")
    return target


def write_sweep(folder: Path, body: dict) -> Path:
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump({"tier": "sniper", **body}, sort_keys=False), encoding="utf-8")
    return path


def single_replay(folder: Path, values: dict) -> dict:
    """`genesis replay --json` under a copy edited by the `genesis set` editor (not the sweep's)."""
    root = config_copy(folder)
    for key, value in values.items():
        file, dotted = (part.strip() for part in key.split(":"))
        text, _ = edited_text(root / file, dotted.split("."), value)
        (root / file).write_text(text, encoding="utf-8")
    result = genesis("replay", "--json", "--tier", "sniper", "--config", str(root))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> dict:
    """A 3 x 2 grid on 2 workers: one value of max_position_pct the schema refuses."""
    folder = tmp_path_factory.mktemp("grid")
    config = config_copy(folder / "config")
    sweep = write_sweep(folder, {"config": "config", "parameters": [
        {"key": POSITION, "values": [2, 5, -1]},
        {"key": HARD_STOP, "values": [0.001, 15]}], "objective": {"metric": "halts"}})
    result = genesis("sweep", str(sweep), "--workers", "2")
    assert result.exit_code == 0, result.output
    return {"folder": folder, "config": config, "output": result.stdout,
            "results": json.loads((folder / "tune.results.json").read_text(encoding="utf-8"))}


def test_grid_trials_agree_with_single_replays(grid, tmp_path):
    trials = grid["results"]["trials"]
    assert [t["values"] for t in trials] == [{POSITION: p, HARD_STOP: h} for p in (2, 5, -1) for h in (0.001, 15)]
    ran = [t for t in trials if t["status"] == "ok"]
    assert len(ran) == 4
    for i, trial in enumerate(ran):
        report = single_replay(tmp_path / str(i), trial["values"])
        m = trial["metrics"]
        assert (m["pnl_usd"], m["max_drawdown_usd"], m["trades"], m["events"]) == (
            report["pnl_usd"], report["max_drawdown_usd"], report["trades"], report["events"])
        assert (m["halts"] > 0) == (report["time_in_state_pct"].get("HALTED", 0) > 0)
    # the parameters took effect: the tiny hard stop halts trading, a smaller position loses less in fees
    by = {(t["values"][POSITION], t["values"][HARD_STOP]): t["metrics"] for t in ran}
    assert by[(2, 0.001)]["halts"] >= 1 and by[(2, 15)]["halts"] == 0
    assert by[(2, 15)]["pnl_usd"] != by[(5, 15)]["pnl_usd"]


def test_invalid_trials_are_reported_not_run(grid):
    invalid = [t for t in grid["results"]["trials"] if t["values"][POSITION] == -1]
    assert [t["status"] for t in invalid] == ["invalid", "invalid"]
    for trial in invalid:
        assert "tiers/sniper.yaml" in trial["reason"] and "max_position_pct" in trial["reason"]
        assert trial["metrics"] == {}   # never replayed
    assert "invalid: tiers/sniper.yaml" in grid["output"]
    assert "6 trials: 4 ok, 2 invalid, 0 failed; ranked by halts (minimize)" in grid["output"]


def test_best_diff_validates_once_applied(grid, tmp_path):
    best = grid["results"]["best"]
    assert best["metrics"]["halts"] == 0 and best["values"][HARD_STOP] == 15
    diff = grid["folder"] / "tune.best.yaml"
    assert yaml.safe_load(diff.read_text(encoding="utf-8")) == {
        "tiers/sniper.yaml": {"limits.max_position_pct": best["values"][POSITION],
                              "limits.hard_stop_drawdown_pct": 15}}
    target = config_copy(tmp_path / "target")
    applied = genesis("sweep", "--apply", str(diff), "--config", str(target))
    assert applied.exit_code == 0, applied.output
    tier = yaml.safe_load((target / "tiers" / "sniper.yaml").read_text(encoding="utf-8"))
    assert tier["limits"]["max_position_pct"] == best["values"][POSITION]
    assert "# % of equity per position" in (target / "tiers" / "sniper.yaml").read_text(encoding="utf-8")
    assert genesis("validate", "--config", str(target)).exit_code == 0
    # a diff that would break the configuration is refused and nothing is written
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers/sniper.yaml:\n  limits.max_position_pct: -4\n", encoding="utf-8")
    before = (target / "tiers" / "sniper.yaml").read_text(encoding="utf-8")
    refused = CliRunner().invoke(cli, ["sweep", "--apply", str(bad), "--config", str(target)])
    assert refused.exit_code == 1 and "nothing was written" in refused.output
    assert (target / "tiers" / "sniper.yaml").read_text(encoding="utf-8") == before


def test_walk_forward_fits_then_tests_on_later_events(tmp_path):
    sweep = write_sweep(tmp_path, {"parameters": [{"key": POSITION, "values": [2, 5]}],
                                   "walk_forward": {"fit_pct": 50}})
    out = tmp_path / "results.csv"
    result = genesis("sweep", str(sweep), "--workers", "2", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    walk = done["walk_forward"]
    assert walk["first_event_ms"] < walk["split_ms"] < walk["last_event_ms"]
    for trial in done["trials"]:
        assert trial["metrics"]["last_event_ms"] < walk["split_ms"]
    tested = walk["test_trial"]
    assert tested["values"] == done["best"]["values"] and tested["phase"] == "test"
    assert tested["metrics"]["first_event_ms"] >= walk["split_ms"]
    assert walk["in_sample"] == done["best"]["metrics"]["pnl_usd"]
    assert walk["out_of_sample"] == tested["metrics"]["pnl_usd"]
    whole = single_replay(tmp_path / "whole", {})
    assert done["trials"][0]["metrics"]["events"] + tested["metrics"]["events"] == whole["events"]
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r[POSITION] for r in rows] == ["2", "5"] and {r["status"] for r in rows} == {"ok"}


def test_optuna_draws_the_same_trials_on_any_number_of_workers(tmp_path):
    body = {"parameters": [{"key": POSITION, "low": 1, "high": 9, "step": 1},
                           {"key": HARD_STOP, "low": 0.001, "high": 20.0}],
            "search": {"method": "optuna", "n_trials": 3, "seed": 7, "batch": 2}}
    runs = []
    for workers in ("2", "1"):
        folder = tmp_path / workers
        folder.mkdir()
        result = genesis("sweep", str(write_sweep(folder, body)), "--workers", workers, "--json")
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout))
    values = [[t["values"] for t in run["trials"]] for run in runs]
    assert values[0] == values[1] and len(values[0]) == 3
    for trial in values[0]:
        assert isinstance(trial[POSITION], int) and 1 <= trial[POSITION] <= 9
        assert 0.001 <= trial[HARD_STOP] <= 20.0
    assert [t["metrics"] for t in runs[0]["trials"]] == [t["metrics"] for t in runs[1]["trials"]]


@pytest.mark.parametrize("body, expect", [
    ({"parameters": [{"key": POSITION, "values": [1], "low": 1, "high": 2}]}, "give either `values`"),
    ({"parameters": [{"key": POSITION, "low": 1, "high": 2}]}, "a grid needs `step`"),
    ({"parameters": [{"key": POSITION, "values": [1]}], "objective": {"metric": "profit"}}, "objective.metric"),
    ({"parameters": [{"key": POSITION, "values": [1]}], "serach": {}}, "unknown key"),
])
def test_a_bad_sweep_file_is_refused_with_its_line(tmp_path, body, expect):
    result = CliRunner().invoke(cli, ["sweep", str(write_sweep(tmp_path, body))])
    assert result.exit_code == 1 and expect in result.output and "tune.yaml:" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "tune.results.json").exists()


def test_a_key_that_names_no_number_is_refused_before_any_trial(tmp_path):
    sweep = write_sweep(tmp_path, {"parameters": [{"key": "tiers/sniper.yaml: limits.max_positon_pct",
                                                   "values": [1]}]})
    result = CliRunner().invoke(cli, ["sweep", str(sweep)])
    assert result.exit_code == 1 and "did you mean 'max_position_pct'" in result.output
    assert "trial 0" not in result.output
