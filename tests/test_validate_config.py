"""`genesis validate`: every kind of mistake is reported with its file, line and a
helpful message, and the shipped configuration passes.

Each test copies the shipped configuration into a temporary folder, makes one edit by
exact text replacement, runs the real checker (in-process or through the real CLI) and
looks at the problems. Expected lines and columns are computed from the edited text.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from genesis.config.checks import check_config
from genesis.config.problems import Problem

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "cli.py"
SHIPPED = ("genesis.yaml", "alerts.yaml", "strategies.yaml", "rules", "tiers")


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A private copy of the shipped configuration."""
    root = tmp_path / "config"
    root.mkdir()
    for name in SHIPPED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    return root


def edit(root: Path, rel: str, old: str, new: str) -> int:
    """Replace the only occurrence of `old` in `rel`; return the line where it started."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def locate(root: Path, rel: str, context: str, target: str | None = None) -> tuple[int, int]:
    """1-based (line, col) of `target` inside the only occurrence of `context` in `rel`."""
    text = (root / rel).read_text(encoding="utf-8")
    assert text.count(context) == 1, f"{context!r} must occur exactly once in {rel}"
    index = text.index(context) + (context.index(target) if target else 0)
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def problems(root: Path) -> list[Problem]:
    """Every problem the checker finds in `root`."""
    return check_config(root).problems


def mistake(root: Path, rel: str, old: str, new: str) -> list[Problem]:
    """Make one edit and return the problems found."""
    edit(root, rel, old, new)
    return problems(root)


def listing(found: list[Problem]) -> str:
    return "\n".join(map(str, found)) or "(no problems)"


def single(found: list[Problem]) -> Problem:
    """The one problem found; fails (listing them) when there are none or several."""
    assert len(found) == 1, listing(found)
    return found[0]


def having(found: list[Problem], phrase: str) -> list[Problem]:
    """The problems whose message contains `phrase`."""
    return [p for p in found if phrase in p.message]


def overwrite(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python cli.py validate ARGS` as a user runs it; never a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("GENESIS_DEBUG", "GENESIS_CONFIG")}
    proc = subprocess.run([sys.executable, str(CLI), "validate", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


# ----------------------------------------------------------------------------- shipped configuration
def test_shipped_configuration_has_no_problems(config):
    result = check_config(config)
    assert result.problems == []
    assert result.ok
    assert set(result.tiers) == {"sniper", "hunter", "strategist"}


def test_cli_accepts_shipped_configuration(config):
    proc = run_cli("--config", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK: 10 files, 3 tiers")


def test_cli_json_accepts_shipped_configuration(config):
    proc = run_cli("--config", str(config), "--format", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"ok": True, "files_checked": 10, "problems": []}


def test_editing_a_tier_number_still_validates(config):
    edit(config, "tiers/sniper.yaml", "daily_loss_usd: 25 ", "daily_loss_usd: 30 ")
    assert problems(config) == []


# ----------------------------------------------------------------------------- YAML mistakes
def test_unclosed_bracket_is_a_syntax_error(config):
    opened = edit(config, "rules/tilt.yaml", '    when: "tilt_level == 2"', '    when: ["tilt_level == 2"')
    p = single(problems(config))
    assert (p.file, p.line) == ("rules/tilt.yaml", opened)
    assert "YAML syntax error" in p.message and "unclosed '['" in p.message


def test_unclosed_bracket_names_the_line_where_it_opened(config):
    opened = edit(config, "rules/tilt.yaml", '    when: "tilt_level == 2"', '    when: ["tilt_level == 2"')
    p = single(problems(config))
    assert p.line == opened or f"line {opened}" in p.message


def test_duplicate_key_names_the_first_definition(config):
    first = edit(config, "rules/tilt.yaml", '    when: "tilt_level == 2"\n',
                 '    when: "tilt_level == 2"\n    when: "tilt_level == 3"\n')
    p = single(problems(config))
    assert (p.file, p.line, p.col) == ("rules/tilt.yaml", first + 1, 5)
    assert p.message == f"duplicate key 'when' (first defined at line {first})"


def test_tab_indentation_is_a_syntax_error(config):
    line = edit(config, "rules/tilt.yaml", '    when: "tilt_level == 2"\n', '\twhen: "tilt_level == 2"\n')
    p = single(problems(config))
    assert (p.file, p.line, p.col) == ("rules/tilt.yaml", line, 1)
    assert "YAML syntax error" in p.message and "tab character" in p.message


@pytest.mark.parametrize("indent", ["      ", "   "], ids=["too-deep", "too-shallow"])
def test_bad_indentation_is_a_syntax_error_on_its_line(config, indent):
    line = edit(config, "rules/tilt.yaml", '    when: "tilt_level == 2"\n    severity: warning\n',
                f'    when: "tilt_level == 2"\n{indent}severity: warning\n') + 1
    p = single(problems(config))
    assert (p.file, p.line, p.col) == ("rules/tilt.yaml", line, len(indent) + 1)
    assert "YAML syntax error" in p.message


def test_bad_indentation_is_explained_in_plain_words(config):
    edit(config, "rules/tilt.yaml", '    when: "tilt_level == 2"\n    severity: warning\n',
         '    when: "tilt_level == 2"\n      severity: warning\n')
    p = single(problems(config))
    assert "indent" in p.message and "<block" not in p.message


@pytest.mark.parametrize("content", ["", "\n\n", "# nothing but a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file_is_reported(config, content):
    overwrite(config, "rules/tilt.yaml", content)
    p = single(problems(config))
    assert (p.file, p.line, p.message) == ("rules/tilt.yaml", 1, "file is empty")


def _with_latin1_comment(config) -> tuple[bytes, int]:
    """rules/tilt.yaml with a Latin-1 'é' in a comment; returns (bytes, line of the bad byte)."""
    text = (config / "rules/tilt.yaml").read_text(encoding="utf-8")
    anchor = "  # quick cancels"
    line = text[: text.index(anchor)].count("\n") + 1
    return text.replace(anchor, "  # caf\u00e9: quick cancels").encode("latin-1"), line


def test_non_utf8_file_is_reported(config):
    data, _ = _with_latin1_comment(config)
    overwrite(config, "rules/tilt.yaml", data)
    p = single(problems(config))
    assert p.file == "rules/tilt.yaml"
    assert "not UTF-8" in p.message


def test_non_utf8_file_points_at_the_line_of_the_bad_byte(config):
    data, line = _with_latin1_comment(config)
    overwrite(config, "rules/tilt.yaml", data)
    p = single(problems(config))
    assert p.line == line


def _billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_stopped_and_reported(config):
    overwrite(config, "rules/tilt.yaml", _billion_laughs())
    p = single(problems(config))
    assert p.file == "rules/tilt.yaml"
    assert "alias bomb" in p.message


def test_deeply_nested_flow_sequence_is_reported(config):
    overwrite(config, "rules/tilt.yaml", "rules: " + "[" * 5000 + "\n")
    p = single(problems(config))
    assert p.file == "rules/tilt.yaml"
    assert "nesting is too deep" in p.message


def test_deeply_nested_flow_sequence_points_at_its_line(config):
    overwrite(config, "rules/tilt.yaml", "description: deep\nrules: " + "[" * 5000 + "\n")
    p = single(problems(config))
    assert p.line == 2


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object:os.system",
                                 "!!python/name:os.system"])
def test_python_tag_is_refused_not_constructed(config, tmp_path, tag):
    marker = tmp_path / "pwned"
    overwrite(config, "rules/tilt.yaml", f'description: safe\nrules: {tag} ["touch {marker}"]\n')
    p = single(problems(config))
    assert (p.file, p.line) == ("rules/tilt.yaml", 2)
    assert "unsupported YAML tag" in p.message and "python/" in p.message
    assert not marker.exists()


# ----------------------------------------------------------------------------- one mistake, one problem
# (id, file edited, old text, new text, file reported, context, target inside context, phrases)
# The problem must be the only one, in `file reported` at the (line, col) of `target`.
SCHEMA_MISTAKES = [
    ("unknown-key", "tiers/sniper.yaml", "max_open_positions: 1", "max_open_positon: 1",
     None, "max_open_positon", None,
     ["unknown key 'max_open_positon'", "(did you mean 'max_open_positions'?)"]),
    ("text-for-number", "tiers/sniper.yaml", "daily_loss_usd: 25", "daily_loss_usd: lots",
     None, "daily_loss_usd: lots", "lots", ["'daily_loss_usd' must be a number, not text"]),
    ("above-maximum", "tiers/sniper.yaml", "max_position_pct: 5 ", "max_position_pct: 150 ",
     None, "max_position_pct: 150", "150", ["'max_position_pct' must be at most 100, got 150"]),
    ("below-minimum", "tiers/sniper.yaml", "daily_loss_usd: 25", "daily_loss_usd: -5",
     None, "daily_loss_usd: -5", "-5", ["'daily_loss_usd' must be at least 0, got -5"]),
    ("bad-duration", "rules/tilt.yaml", "cooldown: 30m", "cooldown: 30 min",
     None, "cooldown: 30 min", "30 min", ["'30 min' is not valid here", "a number followed by ms, s, m, h or d"]),
    ("bad-duration-unit", "rules/tilt.yaml", "cooldown: 30m", "cooldown: 1w",
     None, "cooldown: 1w", "1w", ["'1w' is not valid here", "a number followed by ms, s, m, h or d"]),
    ("bad-compound-duration", "rules/tilt.yaml", "cooldown: 30m", "cooldown: 30m1h",
     None, "cooldown: 30m1h", "30m1h", ["'30m1h' is not valid here", "largest unit first and each unit once"]),
    ("unknown-strategy-kind", "strategies.yaml", "id: btc_mean_reversion\n    kind: mean_reversion",
     "id: btc_mean_reversion\n    kind: mean_revertion",
     None, "kind: mean_revertion", "mean_revertion",
     ["'mean_revertion' is not one of", "(did you mean 'mean_reversion'?)"]),
    ("unknown-action", "rules/risk.yaml", "      - reduce_only\n", "      - reduce_olny\n",
     None, "reduce_olny", None, ["unknown action 'reduce_olny' (did you mean 'reduce_only'?)"]),
]

REFERENCE_MISTAKES = [
    ("unknown-metric-in-rule", "rules/risk.yaml", "and open_positions + order.pending_positions >= tier",
     "and open_positons + order.pending_positions >= tier",
     None, "open_positons", None, ["unknown name 'open_positons'", "(did you mean 'open_positions'?)"]),
    ("unknown-tier-key", "rules/risk.yaml", 'tier.limits.daily_loss_usd and', 'tier.limits.daily_los_usd and',
     None, "tier.limits.daily_los_usd", None, ["'tier.limits.daily_los_usd'", "(did you mean 'daily_loss_usd'?)"]),
    ("unknown-event-kind", "rules/risk.yaml", "streak: day_closed", "streak: day_close",
     None, "streak: day_close", "day_close", ["unknown event kind 'day_close' (did you mean 'day_closed'?)"]),
    ("unknown-event-field", "alerts.yaml", "field: memory_pct,", "field: mem_pct,",
     None, "mem_pct", None, ["system_probe events have no field 'mem_pct'", "(did you mean 'memory_pct'?)"]),
    ("unknown-baseline-source", "rules/tilt.yaml", "baseline: orders_60m\n", "baseline: orders_6m\n",
     None, "orders_6m", None, ["unknown metric 'orders_6m' (did you mean 'orders_60m'?)"]),
    ("unknown-tier-in-rule", "rules/risk.yaml", "tiers: [sniper]", "tiers: [snipper]",
     None, "snipper", None, ["unknown tier 'snipper' (did you mean 'sniper'?)"]),
    ("unknown-tier-in-strategy", "strategies.yaml", "    symbols: [BTCUSDT]\n    params:\n",
     "    symbols: [BTCUSDT]\n    tiers: [huntr]\n    params:\n",
     None, "huntr", None, ["unknown tier 'huntr' (did you mean 'hunter'?)"]),
    ("unknown-default-tier", "genesis.yaml", "tier: sniper", "tier: snipe",
     None, "tier: snipe", "snipe", ["unknown tier 'snipe' (did you mean 'sniper'?)"]),
    ("unknown-flag-in-set", "rules/tilt.yaml", "set: {reentry_active: 1}", "set: {reentry_activ: 1}",
     None, "{reentry_activ: 1}", "reentry_activ", ["unknown flag 'reentry_activ' (did you mean 'reentry_active'?)"]),
    ("flag-set-outside-values", "rules/market_state.yaml", "set: {market_state: panic}", "set: {market_state: panik}",
     None, "market_state: panik", "panik", ["flag 'market_state' cannot be 'panik'", "(did you mean 'panic'?)"]),
    ("flag-compared-outside-values", "rules/market_state.yaml", "market_state == 'panic' and atr",
     "market_state == 'panik' and atr",
     None, "'panik'", None, ["'market_state' is never 'panik'", "(did you mean 'panic'?)"]),
    ("unknown-routing-channel", "alerts.yaml", "critical: [console, log, pager]", "critical: [console, log, pagr]",
     None, "pagr", None,
     ["unknown channel 'pagr' (did you mean 'pager'?)", "genesis.yaml defines: console, log, pager"]),
    ("reject-outside-pre-trade", "rules/tilt.yaml", "      - cancel_all\n      - lock: {scope: all, duration: [5m",
     '      - reject: "Not now."\n      - lock: {scope: all, duration: [5m',
     None, "reject", None, ["'reject' only works in the pre_trade stage (this rule is in 'tilt')"]),
    ("rule-without-when-or-on", "rules/tilt.yaml", '    when: "tilt_debt_usd > 0"\n', "",
     None, "- id: tilt_debt_notice", "id", ["a rule needs 'when' (or 'on' an event kind)"]),
]

LADDER_MISTAKES = [
    ("drawdown-not-rising", "tiers/hunter.yaml", "critical_usd: 300", "critical_usd: 90",
     None, "critical_usd: 90", "90",
     ["drawdown ladder must rise", "critical_usd (90)", "warning_usd (100)"]),
    ("drawdown-shrinks-up-the-tiers", "tiers/hunter.yaml", "info_usd: 50", "info_usd: 5",
     None, "info_usd: 5", "5", ["drawdown ladder must not shrink up the tiers", "info_usd 5", "'sniper' (10)"]),
    ("capital-bands-do-not-touch", "tiers/hunter.yaml", "capital_usd: {min: 2000,", "capital_usd: {min: 2500,",
     "tiers/sniper.yaml", "max: 2000}", "2000", ["capital bands must touch", "tier 'hunter' starts at 2500"]),
    ("top-tier-only-has-no-ceiling", "tiers/hunter.yaml", "max: 10000}", "max: null}",
     None, "max: null}", "null", ["only the top tier may have no capital ceiling"]),
    ("tier-name-differs-from-file", "tiers/hunter.yaml", "name: hunter", "name: hunters",
     None, "name: hunters", "hunters", ["tier name 'hunters' must match the file name 'hunter'"]),
]


def _check_single_mistake(config, rel, old, new, reported, context, target, phrases):
    found = mistake(config, rel, old, new)
    reported = reported or rel
    p = single(found)
    assert (p.file, p.line, p.col) == (reported, *locate(config, reported, context, target)), str(p)
    for phrase in phrases:
        assert phrase in p.message, str(p)


def _params(table):
    return [pytest.param(*case[1:], id=case[0]) for case in table]


ARGS = "rel, old, new, reported, context, target, phrases"


@pytest.mark.parametrize(ARGS, _params(SCHEMA_MISTAKES))
def test_schema_mistake_is_one_located_problem(config, rel, old, new, reported, context, target, phrases):
    _check_single_mistake(config, rel, old, new, reported, context, target, phrases)


@pytest.mark.parametrize(ARGS, _params(REFERENCE_MISTAKES))
def test_reference_mistake_is_one_located_problem(config, rel, old, new, reported, context, target, phrases):
    _check_single_mistake(config, rel, old, new, reported, context, target, phrases)


@pytest.mark.parametrize(ARGS, _params(LADDER_MISTAKES))
def test_ladder_mistake_is_one_located_problem(config, rel, old, new, reported, context, target, phrases):
    _check_single_mistake(config, rel, old, new, reported, context, target, phrases)


def test_misspelt_required_key_is_not_also_reported_missing(config):
    found = mistake(config, "tiers/sniper.yaml", "max_open_positions: 1", "max_open_positon: 1")
    assert not having(found, "missing required key"), listing(found)
    assert "did you mean 'max_open_positions'?" in single(found).message


def test_fraction_for_whole_number_is_explained(config):
    p = single(mistake(config, "tiers/sniper.yaml", "max_open_positions: 1", "max_open_positions: 1.5"))
    assert "whole number" in p.message and "not a number" not in p.message


def test_expression_error_at_start_of_quoted_text_points_at_the_name(config):
    found = mistake(config, "rules/risk.yaml", 'when: "losing_days_streak >= 2"', 'when: "losing_day_streak >= 2"')
    p = single(found)
    assert (p.line, p.col) == locate(config, "rules/risk.yaml", '"losing_day_streak', "losing_day_streak")


def test_wrapped_expression_error_points_at_the_continuation_line(config):
    old = ("    when: \"market_state != 'maintenance' and market_state != 'panic' and atr_rank_24h >= 95"
           " and volume_z_60m >= 3\"")
    new = ("    when: \"market_state != 'maintenance' and market_state != 'panic'\n"
           "      and atr_rank_24h >= 95 and volumez_60m >= 3\"")
    found = mistake(config, "rules/market_state.yaml", old, new)
    p = single(found)
    assert "unknown name 'volumez_60m'" in p.message
    assert (p.line, p.col) == locate(config, "rules/market_state.yaml", "volumez_60m")


# ----------------------------------------------------------------------------- cross-file checks
def test_duplicate_rule_id_names_the_first_location(config):
    first_line, _ = locate(config, "rules/risk.yaml", "- id: daily_loss_limit")
    found = mistake(config, "rules/tilt.yaml", "- id: tilt_debt_notice", "- id: daily_loss_limit")
    p = single(found)
    assert (p.file, p.line, p.col) == ("rules/tilt.yaml",
                                       *locate(config, "rules/tilt.yaml", "- id: daily_loss_limit", "daily_loss_limit"))
    assert p.message == f"duplicate rule id 'daily_loss_limit' (first in rules/risk.yaml:{first_line})"


CYCLES = [
    pytest.param('expr: "trader_days >= 30"', 'expr: "trader_days >= 30 and tilt_level >= 0"',
                 "tilt_calibrated", "tilt_level", id="existing-metrics"),
    pytest.param("  tilt_calibrated:\n", '  loop_a: {expr: "loop_b + 1"}\n  loop_b: {expr: "loop_a * 2"}\n'
                 "  tilt_calibrated:\n", "loop_a", "loop_b", id="new-pair"),
]


@pytest.mark.parametrize("old, new, first, second", CYCLES)
def test_cycle_between_derived_metrics(config, old, new, first, second):
    found = mistake(config, "rules/tilt.yaml", old, new)
    p = single(found)
    assert (p.file, p.line) == ("rules/tilt.yaml", locate(config, "rules/tilt.yaml", f"  {first}:")[0])
    assert "cycle" in p.message and first in p.message and second in p.message


def test_duplicated_rank_is_reported(config):
    found = mistake(config, "tiers/hunter.yaml", "rank: 2", "rank: 1")
    used_twice = having(found, "also used by tier 'sniper'")
    assert len(used_twice) == 1, listing(found)
    p = used_twice[0]
    assert p.file in ("tiers/hunter.yaml", "tiers/sniper.yaml")
    assert p.line == locate(config, p.file, "rank: 1")[0]
    assert "rank 1" in p.message


def test_duplicated_rank_names_the_other_tier(config):
    found = mistake(config, "tiers/hunter.yaml", "rank: 2", "rank: 1")
    p = having(found, "also used by tier")[0]
    other = "hunter" if p.file == "tiers/sniper.yaml" else "sniper"
    assert other in p.message


def test_duplicated_rank_is_not_followed_by_echo_problems(config):
    found = mistake(config, "tiers/hunter.yaml", "rank: 2", "rank: 1")
    assert all("rank" in p.message for p in found), listing(found)


MEAN_REVERSION_IN_SNIPER = ("    symbols: [BTCUSDT]\n    params:\n",   # btc_mean_reversion (the tick one has tiers)
                            "    symbols: [BTCUSDT]\n    tiers: [sniper]\n    params:\n")


def test_strategy_in_tier_that_does_not_unlock_its_kind(config):
    found = mistake(config, "strategies.yaml", *MEAN_REVERSION_IN_SNIPER)
    hits = having(found, "does not unlock")
    assert len(hits) == 1, listing(found)
    p = hits[0]
    assert (p.file, p.line, p.col) == ("strategies.yaml",
                                       *locate(config, "strategies.yaml", "tiers: [sniper]", "sniper"))
    assert p.message == "tier 'sniper' does not unlock 'mean_reversion' (it unlocks: spread_arbitrage)"


def test_strategy_not_unlocked_is_a_single_problem(config):
    single(mistake(config, "strategies.yaml", *MEAN_REVERSION_IN_SNIPER))


def test_broken_tier_file_is_reported_only_in_that_file(config):
    found = mistake(config, "tiers/sniper.yaml", "strategies: [spread_arbitrage]", "strategies: [spread_arbitrage")
    assert [p.file for p in found] == ["tiers/sniper.yaml"], listing(found)


# ----------------------------------------------------------------------------- settings and secrets
SECRET = "Zq7SeCrEt0xDEADbeef42"
SECRETS = [
    pytest.param("  api_key_env: GENESIS_API_KEY\n", f"  api_key: {SECRET}\n", "api_key",
                 "secrets are never written in configuration files", id="api-key-by-value"),
    pytest.param("  api_secret_env: GENESIS_API_SECRET\n",
                 f"  api_secret_env: GENESIS_API_SECRET\n  api_secret: {SECRET}\n",
                 f"api_secret: {SECRET}", "secrets are never written in configuration files", id="api-secret-by-value"),
    pytest.param("api_key_env: GENESIS_API_KEY", f"api_key_env: {SECRET.lower()}", SECRET.lower(),
                 "Name of an environment variable (upper case)", id="env-name-not-upper-case"),
    pytest.param("url_env: GENESIS_PAGER_URL", f"url_env: https://hooks.example.com/{SECRET}", "https://hooks",
                 "Name of an environment variable (upper case)", id="webhook-url-by-value"),
    pytest.param("url: sqlite:///genesis.db", f"url: postgresql://trader:{SECRET}@db.example.com/genesis",
                 "postgresql://", "the storage URL contains a password", id="password-in-storage-url"),
]


def _secret_hidden(text: str) -> None:
    assert SECRET not in text and SECRET.lower() not in text, text


@pytest.mark.parametrize("old, new, target, phrase", SECRETS)
def test_secret_is_reported_without_echoing_it(config, old, new, target, phrase):
    found = mistake(config, "genesis.yaml", old, new)
    p = single(found)
    assert (p.file, p.line, p.col) == ("genesis.yaml", *locate(config, "genesis.yaml", target))
    assert phrase in p.message
    _secret_hidden(str(p))


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("old, new, target, phrase", SECRETS)
def test_cli_never_prints_a_secret(config, old, new, target, phrase, fmt):
    edit(config, "genesis.yaml", old, new)
    proc = run_cli("--config", str(config), "--format", fmt)
    assert proc.returncode == 1
    assert phrase in proc.stdout
    _secret_hidden(proc.stdout + proc.stderr)


# ----------------------------------------------------------------------------- hostile expressions
HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "open('{marker}', 'w')",
    "().__class__.__bases__[0].__subclasses__()",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "[1 for x in range(10)]",
    "tilt_debt_usd.__class__",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_expression_is_reported_not_executed(config, tmp_path, source):
    marker = tmp_path / "pwned"
    line = edit(config, "rules/tilt.yaml", 'when: "tilt_debt_usd > 0"', f'when: "{source.format(marker=marker)}"')
    p = single(problems(config))
    assert (p.file, p.line) == ("rules/tilt.yaml", line)
    assert p.message.startswith("bad expression:")
    assert not marker.exists()


# ----------------------------------------------------------------------------- many mistakes at once
MANY = [  # (file, old, new, context, target): each mistake is reported at `target`
    ("tiers/sniper.yaml", "max_open_positions: 1", "max_open_positon: 1", "max_open_positon", None),
    ("alerts.yaml", "critical: [console, log, pager]", "critical: [console, log, pagr]", "pagr", None),
    ("rules/tilt.yaml", "cooldown: 30m", "cooldown: 30 min", "cooldown: 30 min", "30 min"),
    ("strategies.yaml", "id: btc_mean_reversion\n    kind: mean_reversion",
     "id: btc_mean_reversion\n    kind: mean_revertion", "mean_revertion", None),
    ("genesis.yaml", "tier: sniper", "tier: snipe", "tier: snipe", "snipe"),
    ("rules/risk.yaml", "      - reduce_only\n", "      - reduce_olny\n", "reduce_olny", None),
]


def make_many_mistakes(config) -> None:
    for rel, old, new, _, _ in MANY:
        edit(config, rel, old, new)


def test_mistakes_in_several_files_are_all_reported_in_one_run(config):
    make_many_mistakes(config)
    found = problems(config)
    expected = sorted((rel, *locate(config, rel, context, target)) for rel, _, _, context, target in MANY)
    assert sorted((p.file, p.line, p.col) for p in found) == expected, listing(found)
    assert len(found) == len(MANY)


def test_settings_schema_problem_does_not_hide_routing_problems(config):
    edit(config, "genesis.yaml", "  api_key_env: GENESIS_API_KEY\n", f"  api_key: {SECRET}\n")
    edit(config, "alerts.yaml", "critical: [console, log, pager]", "critical: [console, log, pagr]")
    found = problems(config)
    assert sorted(p.file for p in found) == ["alerts.yaml", "genesis.yaml"], listing(found)


def test_cli_reports_every_problem_and_a_count(config):
    make_many_mistakes(config)
    proc = run_cli("--config", str(config))
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"{len(MANY)} problems found"
    assert lines[:-1] == [str(p) for p in problems(config)]


def test_cli_json_lists_the_same_problems_as_the_checker(config):
    make_many_mistakes(config)
    proc = run_cli("--config", str(config), "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert report["files_checked"] == 10
    assert report["problems"] == [asdict(p) for p in problems(config)]


# ----------------------------------------------------------------------------- usage errors and missing files
@pytest.mark.parametrize("args", [
    pytest.param(["--config", "{missing}"], id="missing-folder"),
    pytest.param(["--config", "{file}"], id="config-is-a-file"),
    pytest.param(["--bogus"], id="unknown-option"),
    pytest.param(["--format", "xml"], id="unknown-format"),
])
def test_cli_usage_errors_exit_2(config, tmp_path, args):
    paths = {"missing": tmp_path / "no-such-folder", "file": config / "genesis.yaml"}
    proc = run_cli(*[a.format(**paths) for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Usage:" in proc.stderr and "Error:" in proc.stderr


def test_cli_empty_folder_reports_every_missing_file(tmp_path):
    proc = run_cli("--config", str(tmp_path))
    assert proc.returncode == 1
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml", "rules/", "tiers/"):
        assert f"\n{name}:1:1: " in "\n" + proc.stdout
    assert proc.stdout.strip().endswith("5 problems found")


# ----------------------------------------------------------------------------- crashes
def test_flag_with_numeric_values_is_a_problem_not_a_crash(config):
    flag = "  reentry_active:\n    description: 1 during graduated re-entry after a level-3 lockout.\n    default: 0\n"
    line = edit(config, "rules/tilt.yaml", flag, flag + "    values: [1, 2]\n") + 3
    found = problems(config)
    assert found and all(p.file == "rules/tilt.yaml" for p in found), listing(found)
    assert line in [p.line for p in found]


def test_strategies_not_a_list_is_a_problem_not_a_crash(config):
    text = (config / "strategies.yaml").read_text(encoding="utf-8")
    line = edit(config, "strategies.yaml", text[text.index("strategies:\n"):], "strategies: 5\n")
    p = single(problems(config))
    assert (p.file, p.line) == ("strategies.yaml", line)
    assert "'strategies' must be a list" in p.message


def test_long_chain_of_derived_metrics_is_not_a_crash(config):
    chain = "".join(f'  chain_{i}: {{expr: "chain_{i + 1} + 1"}}\n' for i in range(1500))
    edit(config, "rules/tilt.yaml", "metrics:\n", f'metrics:\n{chain}  chain_1500: {{expr: "equity_usd"}}\n')
    assert problems(config) == []


def test_wrong_list_item_is_not_named_by_its_index(config):
    line = edit(config, "rules/tilt.yaml", "rules:\n", "rules:\n  - just_text\n") + 1
    p = single(problems(config))
    assert (p.file, p.line) == ("rules/tilt.yaml", line)
    assert "'0'" not in p.message
