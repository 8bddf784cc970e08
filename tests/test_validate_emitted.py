"""Every event kind an alert can read is emitted by something, or `genesis validate` says
the rule cannot fire: vocabulary.NOT_EMITTED lists the kinds nothing emits yet, and a
scan of the engine's code keeps that list honest both ways."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from test_validate_config import REPO, config, edit, locate  # noqa: F401 - fixture

from genesis import vocabulary as voc
from genesis.config.checks import check_config

# modules that name event kinds without emitting them: the vocabulary itself, the
# validator, the reference generator and the rule-test runner
NAMING_ONLY = ("vocabulary.py", "config/", "reference.py", "ruletest.py")


def _named_in_code() -> set[str]:
    """Every string constant in genesis/ outside the modules that only name kinds."""
    names: set[str] = set()
    for path in (REPO / "genesis").rglob("*.py"):
        rel = path.relative_to(REPO / "genesis").as_posix()
        if rel.startswith(NAMING_ONLY):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


def test_the_list_of_kinds_nothing_emits_matches_the_code():
    named = _named_in_code()
    assert set(voc.NOT_EMITTED) <= set(voc.EVENTS)
    silent = {kind for kind in voc.EVENTS if kind not in named}
    assert silent == set(voc.NOT_EMITTED), "update vocabulary.NOT_EMITTED: " \
        f"emitted now: {sorted(set(voc.NOT_EMITTED) - silent)}, emitted by nothing: {sorted(silent - set(voc.NOT_EMITTED))}"


# Every declared kind is emitted now; these pretend backup_failure were not (as it was
# before backups were built) to check the warning itself.
PRETEND = "backups are not built (a pretence of this test)"


def test_the_shipped_configuration_reads_no_kind_nothing_emits(config):
    result = check_config(config)
    assert result.ok
    assert [w for w in result.warnings if "nothing emits" in w.message] == []


def test_a_rule_reading_a_kind_nothing_emits_is_a_warning_at_its_id(config, monkeypatch):
    monkeypatch.setitem(voc.NOT_EMITTED, "backup_failure", PRETEND)
    result = check_config(config)
    assert result.ok
    [warning] = [w for w in result.warnings if "nothing emits" in w.message]
    assert (warning.file, warning.line) == ("alerts.yaml", locate(config, "alerts.yaml", "- id: backup_failure")[0])
    assert warning.message.startswith("rule backup_failure reads backup_failure events, which nothing emits yet")
    assert warning.message.endswith("so it cannot fire")


def test_a_rule_reading_it_through_a_chain_of_metrics_is_found_too(config, monkeypatch):
    monkeypatch.setitem(voc.NOT_EMITTED, "backup_failure", PRETEND)
    edit(config, "alerts.yaml", "  restarts_5m: {count: engine_restart, window: 5m}\n",
         "  restarts_5m: {count: engine_restart, window: 5m}\n"
         "  backups_failed_1d: {count: backup_failure, window: 1d}\n"
         "  backup_trouble: {expr: \"backups_failed_1d * 2\"}\n")
    edit(config, "alerts.yaml", 'when: "db_query_max_1m > 100"', 'when: "db_query_max_1m > 100 or backup_trouble > 1"')
    warned = sorted(w.message.split()[1] for w in check_config(config).warnings if "nothing emits" in w.message)
    assert warned == ["backup_failure", "slow_database_query"]


def test_genesis_validate_prints_the_warning_and_passes(config):
    pretend = ("import sys; from genesis import vocabulary as v; "
               f"v.NOT_EMITTED['backup_failure'] = {PRETEND!r}; "
               "from genesis.cli import main; sys.argv = ['genesis'] + sys.argv[1:]; main()")
    result = subprocess.run([sys.executable, "-c", pretend, "validate", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: alerts.yaml:" in result.stderr and "rule backup_failure reads backup_failure events" in result.stderr
