"""`genesis test`: the shipped rule tests pass, and a failing or malformed test is
reported with its file, line, what was expected and what happened."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
        "      - {at: 10s, values: {drawdown_since_rebase_usd: 55}}\n"
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


# ---------------------------------------------------------------------- the extended format
# Each new kind of expectation can fail, and says where, when, what was expected and what was.

@pytest.fixture(scope="module")
def config():
    from genesis.config.checks import check_config  # noqa: PLC0415

    return check_config(ROOT)


def _run(tmp_path: Path, config, text: str) -> tuple[list, list]:
    """(file problems, failure lines) of a rule-test file, run in process through the real engine."""
    from genesis.ruletest import run_file  # noqa: PLC0415

    path = tmp_path / "case_test.yaml"
    path.write_text(text)
    problems, results = run_file(path, config)
    return [f"{p.file}:{p.line}: {p.message}" for p in problems], [f for r in results for f in r.failures]


def _at(text: str, marker: str) -> str:
    """'file:line' prefix of the first line containing marker."""
    line = next(i for i, row in enumerate(text.splitlines(), 1) if marker in row)
    return f"{{path}}:{line}"


def _expect_failures(tmp_path, config, text: str, wanted: list) -> None:
    """Every (marker, message) in wanted is a failure reported on the marker's line, and nothing else fails."""
    problems, failures = _run(tmp_path, config, text)
    assert problems == []
    path = str(tmp_path / "case_test.yaml")
    expected = sorted(f"{_at(text, marker).format(path=path)}: {message}" for marker, message in wanted)
    assert sorted(failures) == expected


BOOK = ("      - {at: 0s, kind: book_ticker, symbol: BTCUSDT, fields: {bid: 60000, ask: 60001, bid_qty: 5, "
        "ask_qty: 5, mid: 60000.5}}\n")


def test_a_command_answer_that_differs_is_reported_on_the_command_line(tmp_path, config):
    text = ("cases:\n  - name: answers\n    events:\n" + BOOK +
            "    commands:\n"
            "      - {at: 1s, order: {side: buy, symbol: BTCUSDT, notional_usd: 60}, expect_answer: applied}  # A\n"
            "      - {at: 2s, override: {phrase: nope}, answer_contains: accepted}  # B\n"
            "      - {at: 3s, command: {kind: connect}, expect_answer: applied, answer_contains: session}\n"
            "    expect:\n      - {at: 3s}\n")
    _expect_failures(tmp_path, config, text, [
        ("# A", "at 1s: expected answer applied, was refused: buy BTCUSDT $60.00: This order is larger than 5% of "
                "equity, counted with the position and the orders in flight. Try a smaller size."),
        ("# B", "at 2s: expected an answer containing 'accepted', was refused: the confirmation phrase does not "
                "match (genesis.yaml safety.override_phrase); nothing was changed"),
    ])


def test_orders_sent_that_differ_are_reported(tmp_path, config):
    text = ("cases:\n  - name: sent\n    equity_usd: 20000\n    events:\n" + BOOK +
            "    commands:\n"
            "      - {at: 1s, order: {side: buy, symbol: BTCUSDT, notional_usd: 600, reason: a good reason}}\n"
            "    expect:\n"
            "      - {at: 1s, sent: {orders: 3, algo: market, notional_usd: 600}}  # A\n"
            "      - {at: 4s, sent: {orders: 2, side: sell, symbol: BTCUSDT, type: market}}  # B\n")
    orders = "g2 buy BTCUSDT $200.00 market, g3 buy BTCUSDT $200.00 market"
    problems, failures = _run(tmp_path, config, text)
    path = str(tmp_path / "case_test.yaml")
    a, b = _at(text, "# A").format(path=path), _at(text, "# B").format(path=path)
    assert problems == []
    assert failures == [
        f"{a}: at 1s: expected 3 order(s) sent, was 1: g1 buy BTCUSDT $200.00 market",
        f"{a}: at 1s: expected orders worth $600.00 sent, was $200.00: g1 buy BTCUSDT $200.00 market",
        f"{a}: at 1s: expected every order decided to have algo market, was: buy BTCUSDT $600.00 by sliced in 3 "
        "slice(s)",
        f"{b}: at 4s: expected every order sent to have side sell, was: {orders}",
    ]


def test_what_refused_an_order_is_reported_when_it_differs(tmp_path, config):
    text = ("cases:\n  - name: refusals\n    start: 2024-08-08T20:00\n"
            "    pins:\n      - {at: 10s, values: {daily_pnl_usd: -26}}\n"
            "    intents:\n      - {at: 1m, symbol: BTCUSDT, side: buy, notional_usd: 40}\n"
            "    expect:\n"
            "      - {at: 1m, refused_by: [lock:drawdown_halt_automatic, execution, max_position_manual]}  # A\n"
            "      - {at: 2m, refused_by: [lock:no_such_rule]}  # B\n")
    why = "buy BTCUSDT by trading_state: locked: daily loss limit"
    _, failures = _run(tmp_path, config, text)
    path = str(tmp_path / "case_test.yaml")
    a, b = _at(text, "# A").format(path=path), _at(text, "# B").format(path=path)
    assert failures == [
        f"{a}: at 1m: expected an order refused by lock:drawdown_halt_automatic, was: {why}",
        f"{a}: at 1m: expected an order refused by execution, was: {why}",
        f"{a}: at 1m: expected an order refused by max_position_manual, was: {why}",
        f"{b}: at 2m: unknown rule 'lock:no_such_rule' in refused_by (a rule id, trading_state, execution, lock or "
        "lock:<rule>)",
        f"{b}: at 2m: expected an order refused by lock:no_such_rule, was: nothing",
    ]


def test_lock_details_and_requirements_that_differ_are_reported(tmp_path, config):
    text = ("cases:\n  - name: lockout\n    tier: strategist\n    equity_usd: 20000\n"
            "    pins:\n      - {at: 10s, values: {drawdown_since_rebase_usd: 2000}}\n"
            "    expect:\n"
            "      - at: 10s  # A\n"
            "        locks: [{until: utc_midnight}]\n"
            "        requirements: [{kind: journal_entry, min_words: 400}]\n"
            "      - {at: 4h1s, locks: [{rule: drawdown_halt_lockout, reason: lockout}, {symbol: BTCUSDT}]}  # C\n"
            "      - {at: 4h2s, locks: 0, requirements: []}  # D\n")
    lock = "drawdown_halt_lockout until 1d10s, reason 'drawdown halt (lockout protocol)', waits for a journal " \
           "entry of 500 words"
    required = "{kind: 'journal_entry', min_words: 500, rule: 'drawdown_halt_lockout'}"
    _expect_failures(tmp_path, config, text, [
        ("# A", f"at 10s: expected a lock {{until: 'utc_midnight'}}, was: {lock}"),
        ("# A", f"at 10s: expected a pending requirement {{kind: 'journal_entry', min_words: 400}}, was: {required}"),
        ("# C", f"at 4h1s: expected a lock {{symbol: 'BTCUSDT'}}, was: {lock}"),
        ("# D", f"at 4h2s: expected 0 lock(s), was 1: {lock}"),
        ("# D", f"at 4h2s: expected 0 pending requirement(s), was 1: {required}"),
    ])


def test_exactly_the_listed_requirements_are_pending(tmp_path, config):
    text = ("cases:\n  - name: halt\n    tier: hunter\n    equity_usd: 5000\n"
            "    pins:\n      - {at: 10s, values: {drawdown_since_rebase_usd: 400}}\n"
            "    expect:\n      - {at: 10s, state: HALTED, requirements: []}  # A\n")
    _, failures = _run(tmp_path, config, text)
    assert len(failures) == 1
    assert "at 10s: expected 0 pending requirement(s), was 1: {kind: 'confirmation', phrase: 'I have reviewed the " \
           "drawdown and reset the halt', min_words: 1, rule: 'drawdown_halt_manual_reset'}" in failures[0]


def test_a_released_pin_gives_the_engine_its_own_figure_back_and_can_fail(tmp_path, config):
    text = ("cases:\n  - name: release\n"
            "    pins:\n      - {at: 10s, until: 1m30s, values: {drawdown_since_rebase_usd: 55}}\n"
            "    expect:\n"
            "      - {at: 1m29s, state: REDUCING}\n"
            "      - {at: 1m30s, state: REDUCING, metrics: {drawdown_since_rebase_usd: 55}}  # A\n")
    _expect_failures(tmp_path, config, text, [("# A", "at 1m30s: expected state REDUCING, was ACTIVE"),
                                              ("# A", "at 1m30s: expected drawdown_since_rebase_usd = 55, was 0.0")])


def test_a_pin_release_that_cannot_work_is_reported_on_the_pin(tmp_path, config):
    text = ("cases:\n  - name: release\n"
            "    pins:\n"
            "      - {at: 10s, until: 5s, values: {drawdown_since_rebase_usd: 55}}  # A\n"
            "      - {at: 10s, until: 1m, values: {tilt_score: 4}}  # B\n"
            "    expect:\n      - {at: 1m}\n")
    problems, failures = _run(tmp_path, config, text)
    path = str(tmp_path / "case_test.yaml")
    assert failures == [
        f"{_at(text, '# A').format(path=path)}: a pin's until (5s) must come after its at (10s)",
        f"{_at(text, '# B').format(path=path)}: only account figures can be released with until (the engine "
        "computes them again); not tilt_score",
    ]


def test_an_unknown_command_kind_is_reported_and_every_engine_command_kind_is_accepted(tmp_path, config):
    from genesis.engine.operator import KINDS  # noqa: PLC0415
    from genesis.ruletest import TYPED_COMMANDS  # noqa: PLC0415

    text = "cases:\n  - name: kinds\n    commands:\n      - {at: 1s, command: {kind: resett}}  # A\n" \
           "    expect:\n      - {at: 1s}\n"
    _, failures = _run(tmp_path, config, text)
    assert len(failures) == 1 and failures[0].startswith(_at(text, "# A").format(path=tmp_path / "case_test.yaml"))
    assert "unknown command 'resett' (known: " in failures[0]
    for kind in KINDS:   # dispatched through apply_command: a kind the engine adds needs no runner change
        _, failures = _run(tmp_path, config, text.replace("resett", kind))
        assert not any("unknown command" in f for f in failures), (kind, failures)
        if kind in TYPED_COMMANDS:   # these have their own key, whose payload the schema checks
            assert failures and f"write it as `{kind}: {{...}}`" in failures[0], failures


def test_compound_durations_are_read_and_a_malformed_one_is_reported_with_its_line(tmp_path, config):
    text = ("cases:\n  - name: durations\n    start: 2024-08-08T20:00\n"
            "    pins:\n      - {at: 10s, until: 4h, values: {daily_pnl_usd: -26}}\n"
            "    expect:\n"
            "      - {at: 3h59m59s, locks: [{until: 4h}]}\n"
            "      - {at: 4h1s, locks: 1}  # A\n")
    _expect_failures(tmp_path, config, text, [("# A", "at 4h1s: expected 1 lock(s), was 0: none")])
    problems, _ = _run(tmp_path, config, text.replace("4h1s", "1s4h"))
    assert len(problems) == 1 and "'1s4h' is not valid here" in problems[0] and "largest unit first" in problems[0]
    assert problems[0].startswith(f"{tmp_path / 'case_test.yaml'}:{_at(text, '# A').split(':')[1]}:")


def test_the_readme_examples_of_rule_tests_pass(tmp_path, config):
    """Every YAML example in README's "Testing rules" section is a passing rule test."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Testing rules"):readme.index("## Tiers")]
    blocks = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]
    assert len(blocks) >= 3
    for block in blocks:
        text = block if block.startswith("cases:") else "cases:\n" + block
        problems, failures = _run(tmp_path, config, text)
        assert problems == [] and failures == [], (problems, failures)
        assert "expect:" in text
