"""`genesis test`: the shipped rule tests pass, and a failing or malformed test is
reported with its file, line, what was expected and what happened."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _genesis_test(*paths: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "test", "--config", str(ROOT), *paths],
                          capture_output=True, text=True, timeout=600)


def test_every_shipped_rule_test_passes():
    result = _genesis_test()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(summary.split()[0])
    assert summary.endswith(" 0 failed") and passed >= 3, summary


def test_every_default_rule_is_exercised_by_some_rule_test():
    """Each rule id of the default books appears in a `fired` expectation."""
    import yaml  # noqa: PLC0415

    from genesis.config.checks import check_config  # noqa: PLC0415

    rules = {r.id for r in check_config(ROOT).rules}
    fired = set()
    for path in (ROOT / "rule_tests").glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["cases"]:
            for exp in case["expect"]:
                fired.update(exp.get("fired", []))
    missing = sorted(rules - fired)
    assert missing == [], f"rules without a case where they fire: {missing}"


def test_a_failing_expectation_names_file_line_expected_and_actual(tmp_path):
    case = tmp_path / "wrong_test.yaml"
    case.write_text(
        "cases:\n"
        "  - name: a deliberately wrong expectation\n"
        "    pins:\n"
        "      - {at: 10s, values: {drawdown_usd: 55}}\n"
        "    expect:\n"
        "      - at: 10s\n"
        "        fired: [drawdown_halt_automatic]\n"
        "        state: HALTED\n")
    result = _genesis_test(str(case))
    assert result.returncode == 1
    out = result.stdout
    assert f"FAIL {case}:2: a deliberately wrong expectation" in out
    assert f"{case}:6: at 10s: expected drawdown_halt_automatic to fire; fired: ['drawdown_critical']" in out
    assert f"{case}:6: at 10s: expected state HALTED, was REDUCING" in out
    assert out.strip().endswith("0 passed, 1 failed")


def test_unknown_names_in_expectations_are_reported(tmp_path):
    case = tmp_path / "names_test.yaml"
    case.write_text("cases:\n  - name: typos\n    expect:\n      - {at: 1s, fired: [drawdown_critcal], "
                    "metrics: {tilt_levle: 0}}\n")
    result = _genesis_test(str(case))
    assert result.returncode == 1
    assert "unknown rule 'drawdown_critcal'" in result.stdout
    assert "unknown metric 'tilt_levle'" in result.stdout


def test_a_malformed_test_file_is_reported_with_its_line(tmp_path):
    case = tmp_path / "bad_test.yaml"
    case.write_text("cases:\n  - name: bad\n    expect:\n      - {at: soon}\n")
    result = _genesis_test(str(case))
    assert result.returncode == 1
    assert f"{case}:4:" in result.stdout and "soon" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_no_test_files_is_a_usage_error(tmp_path):
    result = _genesis_test(str(tmp_path))
    assert result.returncode == 2
    assert "no rule test files" in result.stderr
