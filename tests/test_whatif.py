"""`genesis replay --compare DIR`: the bundled sample under the shipped configuration
and under a copy with a tighter drawdown ladder, checked against two plain
`genesis replay --json` runs of the same folders."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from genesis.cli import cli

ROOT = Path(__file__).resolve().parents[1]
# the sniper ladder at cents: the sample's one trade loses a few cents in fees, enough to
# pass every step (warning, critical, halt) where the shipped dollars pass none
SHIPPED_LADDER = ("  info_usd: 10 ", "  warning_usd: 25 ", "  critical_usd: 50 ", "  halt_usd: 75\n")
TIGHT_LADDER = ("  info_usd: 0.01 ", "  warning_usd: 0.02 ", "  critical_usd: 0.03 ", "  halt_usd: 0.04\n")
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _copy(target: Path, edits: dict | None = None) -> Path:
    """The shipped configuration copied to `target`, with exact text edits {file: [(old, new)]}."""
    target.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, target / name)
    for name in ("rules", "tiers"):
        shutil.copytree(ROOT / name, target / name)
    for name, changes in (edits or {}).items():
        text = (target / name).read_text(encoding="utf-8")
        for old, new in changes:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        (target / name).write_text(text, encoding="utf-8")
    return target


def genesis(*args: str):
    """Run `genesis ARGS` in this process; the click result (stdout and stderr apart)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _report_json(folder: Path) -> dict:
    result = genesis("replay", "--config", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _same_report(a: dict, b: dict) -> None:
    """Two reports of the same run agree on everything but the speed they were made at."""
    assert {k: v for k, v in a.items() if k != "events_per_second"} == \
        {k: v for k, v in b.items() if k != "events_per_second"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("whatif")
    return {"shipped": _copy(tmp / "shipped"),
            "tight": _copy(tmp / "tight", {"tiers/sniper.yaml": list(zip(SHIPPED_LADDER, TIGHT_LADDER))}),
            "hunter": _copy(tmp / "hunter", {"genesis.yaml": [("tier: sniper", "tier: hunter")],
                                             "tiers/hunter.yaml": [("max_position_pct: 5\n", "max_position_pct: 2\n")]}),
            "broken": _copy(tmp / "broken",
                            {"tiers/sniper.yaml": [("max_position_pct: 5 ", "max_position_pct: lots ")]})}


@pytest.fixture(scope="module")
def plain(folders) -> dict:
    """`genesis replay --json` of the sample under each folder on its own."""
    return {name: _report_json(folders[name]) for name in ("shipped", "tight")}


@pytest.fixture(scope="module")
def compared(folders) -> dict:
    result = genesis("replay", "--config", str(folders["shipped"]), "--compare", str(folders["tight"]), "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def compared_text(folders) -> str:
    result = genesis("replay", "--config", str(folders["shipped"]), "--compare", str(folders["tight"]))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_the_tighter_ladder_really_changes_the_replay(plain):
    shipped, tight = plain["shipped"], plain["tight"]
    assert shipped["pnl_usd"] != tight["pnl_usd"]
    assert shipped["trades"] != tight["trades"]
    assert shipped["time_in_state_pct"] != tight["time_in_state_pct"]
    assert shipped["rule_firings"] != tight["rule_firings"]


def test_each_side_of_the_compare_is_the_plain_replay_of_its_folder(compared, plain, folders):
    _same_report(compared["current"]["report"], plain["shipped"])
    _same_report(compared["compare"]["report"], plain["tight"])
    assert compared["current"]["config"] == str(folders["shipped"])
    assert compared["compare"]["config"] == str(folders["tight"])
    assert compared["files_that_differ"] == ["tiers/sniper.yaml"]
    assert compared["same_tier"] and compared["current"]["tier"] == compared["compare"]["tier"] == "sniper"
    assert compared["input"]["events"] == plain["shipped"]["events"]


def test_the_differences_are_those_of_the_two_plain_replays(compared, plain):
    shipped, tight = plain["shipped"], plain["tight"]
    figures = compared["differences"]["figures"]
    assert compared["differs"] is True
    for key in ("pnl_usd", "final_equity_usd", "max_drawdown_usd", "fees_usd", "trades", "intents", "orders",
                "refused", "final_state"):
        if shipped[key] == tight[key]:
            assert key not in figures
        else:
            assert figures[key] == {"current": shipped[key], "compare": tight[key]}
    for state in set(shipped["time_in_state_pct"]) | set(tight["time_in_state_pct"]):
        a, b = shipped["time_in_state_pct"].get(state, 0.0), tight["time_in_state_pct"].get(state, 0.0)
        assert figures.get(f"time_{state}") == (None if a == b else {"current": a, "compare": b})
    a, b = shipped["rule_firings"], tight["rule_firings"]
    assert compared["differences"]["rule_firings"] == {
        rule: {"current": a.get(rule, 0), "compare": b.get(rule, 0)}
        for rule in set(a) | set(b) if a.get(rule, 0) != b.get(rule, 0)}


def test_the_halts_and_locks_are_listed_with_the_rule_and_utc_time(compared, plain):
    assert [s for s in compared["current"]["stops"] if s["kind"] != "resumed"] == []
    stops = [s for s in compared["compare"]["stops"] if s["kind"] != "resumed"]
    assert stops, compared["compare"]
    fired = plain["tight"]["rule_firings"]
    for stop in stops:
        assert fired.get(stop["rule"], 0) >= 1, stop      # held by a rule that really fired
        assert UTC_TIME.fullmatch(stop["time_utc"]), stop
        assert compared["input"]["from_utc"] <= stop["time_utc"] <= compared["input"]["to_utc"]
    locks = [s for s in stops if s["kind"] == "lock"]
    assert compared["differences"]["figures"]["lock"] == {"current": 0, "compare": len(locks)}
    halt_rules = {s["rule"] for s in stops}
    assert not halt_rules & set(plain["shipped"]["rule_firings"])   # none of them fired under the shipped limits


def test_the_first_different_decision_is_a_rule_only_the_tighter_ladder_fired(compared, plain):
    first = compared["differences"]["first_decision"]
    assert first is not None
    decision = first["compare"]
    only_tight = set(plain["tight"]["rule_firings"]) - set(plain["shipped"]["rule_firings"])
    assert decision["kind"] == "fire" and decision["rule"] in only_tight, first
    assert UTC_TIME.fullmatch(decision["time_utc"])
    assert 0 < decision["event"] <= plain["tight"]["events"]
    # up to that point both runs decided the same things
    assert first["index"] < compared["compare"]["decisions"] and first["index"] <= compared["current"]["decisions"]


def test_the_text_shows_the_difference_side_by_side_in_80_columns(compared_text, plain, folders):
    text = compared_text
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert text.startswith("What if: the same input under two configurations")
    assert f"current {folders['shipped']} (tier sniper)" in " ".join(text.split())   # a long path wraps
    assert "files     tiers/sniper.yaml differs" in text
    rows = {line[2:30].strip(): line[30:].split() for line in text.splitlines() if line.startswith("  ")}

    def money(v: float) -> str:
        return f"-${-v:,.2f}" if v < 0 else f"${v:,.2f}"

    shipped, tight = plain["shipped"], plain["tight"]
    assert rows["P&L"][:2] == [money(shipped["pnl_usd"]), money(tight["pnl_usd"])]
    assert rows["trades closed"] == [f"{shipped['trades']:,}", f"{tight['trades']:,}",
                                     f"{tight['trades'] - shipped['trades']:+,}"]
    for rule in set(tight["rule_firings"]) - set(shipped["rule_firings"]):
        assert rows[rule] == ["0", f"{tight['rule_firings'][rule]:,}", f"+{tight['rule_firings'][rule]:,}"]
    assert "lock on all symbols by drawdown_halt_automatic" in text
    assert "First different decision" in text


def test_a_folder_compared_with_itself_shows_no_difference(folders, plain):
    result = genesis("replay", "--config", str(folders["shipped"]), "--compare", str(folders["shipped"]), "--json")
    assert result.exit_code == 0, result.stderr
    same = json.loads(result.stdout)
    assert same["differs"] is False
    assert same["differences"] == {"figures": {}, "rule_firings": {}, "refusals": [], "first_decision": None}
    _same_report(same["current"]["report"], plain["shipped"])
    _same_report(same["compare"]["report"], plain["shipped"])
    assert same["current"]["decisions"] == same["compare"]["decisions"] > 0
    text = genesis("replay", "--config", str(folders["shipped"]), "--compare", str(folders["shipped"])).stdout
    assert "files     the same in both folders" in text
    assert f"No difference: both configurations made the same {same['current']['decisions']:,} decisions" in text
    assert "current" not in text.split("No difference")[1]   # no side-by-side table when nothing differed


def test_another_tier_is_named_and_refusals_are_listed_by_rule_and_reason(folders, tmp_path):
    # a $40 order by hand: within sniper's 5% of $1,000, beyond the copy's hunter limit of 2%
    script = tmp_path / "order.yaml"
    script.write_text("commands:\n  - {after: 30s, kind: order, side: buy, symbol: BTCUSDT, notional_usd: 40,\n"
                      "     reason: trying the what-if of a smaller limit}\n", encoding="utf-8")
    result = genesis("replay", "--config", str(folders["shipped"]), "--compare", str(folders["hunter"]),
                     "--commands", str(script))
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "tiers     differ: current runs sniper, compare runs hunter" in text
    assert f"compare {folders['hunter']} (tier hunter)" in " ".join(text.split())
    assert "files     genesis.yaml, tiers/hunter.yaml differ" in text
    refusals = text.split("Refusals that differ")[1].split("\n\n")[0].splitlines()
    row = next(i for i, line in enumerate(refusals) if line.split()[:1] == ["max_position_manual"])
    assert refusals[row].split()[1:] == ["0", "1", "+1"]
    assert "larger than 2% of equity" in refusals[row + 1]


def test_a_broken_compare_folder_is_a_clear_error_naming_file_and_line(folders):
    broken = folders["broken"]
    line = next(i for i, text in enumerate((broken / "tiers/sniper.yaml").read_text().splitlines(), 1)
                if "max_position_pct: lots" in text)
    result = genesis("replay", "--config", str(folders["shipped"]), "--compare", str(broken))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.search(rf"^tiers/sniper\.yaml:{line}:\d+: 'max_position_pct' must be a number", result.stderr, re.M)
    assert f"genesis: the --compare configuration in {broken} has problems" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_runs_in_memory_and_refuses_a_journal_or_notifications(folders):
    for extra in (["--db", "sqlite:///x.db"], ["--notify"]):
        result = genesis("replay", "--compare", str(folders["shipped"]), *extra)
        assert result.exit_code == 2
        assert "--compare replays both configurations in memory" in result.stderr
