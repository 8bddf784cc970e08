"""Defaults live in the schemas only: the loader fills in every key a file leaves out,
checks that tell "given" from "left out" still read what the user wrote, `genesis
validate` still points at the user's lines, and `genesis set` never writes a filled-in
default back. The domain numbers moved out of the engine (risk-edit files, direction
window, correlation cut-off and minimum days, dust, recovery depth) change behaviour
when changed in genesis.yaml."""
from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from genesis.config.checks import check_config
from genesis.config.schemas import validator
from genesis.engine.account import Account
from genesis.engine.engine import Engine
from genesis.engine.events import MS_PER_DAY, Event
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.journal import Journal
from genesis.engine.runner import _due_sets, open_session, operate, reload_config
from genesis.strategies import OrderIntent

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_723_118_400_000          # 2024-08-08 12:00:00 UTC
M = 60_000
BTC, ETH = "BTCUSDT", "ETHUSDT"


# ----------------------------------------------------------------------------- helpers
def config_copy(tmp_path: Path, strategies_off: bool = True) -> Path:
    """The shipped configuration in tmp_path; strategies disabled so that only the test trades."""
    root = tmp_path / "config"
    root.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(ROOT / folder, root / folder)
    if strategies_off:
        data = yaml.safe_load((root / "strategies.yaml").read_text())
        for inst in data["strategies"]:
            inst["enabled"] = False
        (root / "strategies.yaml").write_text(yaml.safe_dump(data))
    return root


def replace(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {rel}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def account_metrics(root: Path, **values) -> None:
    """Write genesis.yaml `account_metrics` with these values (others take their defaults)."""
    settings = (root / "genesis.yaml").read_text(encoding="utf-8")
    start = settings.index("account_metrics:")
    body = "".join(f"  {k}: {v}\n" for k, v in values.items())
    (root / "genesis.yaml").write_text(settings[:start] + "account_metrics:\n" + body, encoding="utf-8")


def engine_for(root: Path, tier: str = "sniper") -> Engine:
    result = check_config(root)
    assert result.ok, "\n".join(map(str, result.problems))
    journal = Journal("sqlite://")
    journal.open_run(tier, "test", "test", [], "test")
    return Engine(result, tier, journal=journal)


def ticker(ts: int, symbol: str, mid: float) -> Event:
    return Event("book_ticker", ts, symbol, {"bid": mid - 0.01, "bid_qty": 5.0, "ask": mid + 0.01, "ask_qty": 5.0,
                                             "mid": mid, "spread_bps": 0.02 / mid * 1e4})


def trade(engine: Engine, symbol: str, side: str, notional: float) -> None:
    mid = engine.account.mids[symbol]
    engine.submit(OrderIntent("test", symbol, side, notional, mid, "entry" if side == "buy" else "signal",
                              side == "buy"))


def write_rules(root: Path, text: str) -> str:
    (root / "rules" / "test_defaults.yaml").write_text(text, encoding="utf-8")
    return "rules/test_defaults.yaml"


def position_of(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, col) of the only occurrence of `needle`."""
    assert text.count(needle) == 1
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


# ----------------------------------------------------------------------------- the loader
def test_a_key_left_out_takes_its_schema_default(tmp_path):
    root = config_copy(tmp_path)
    settings = (root / "genesis.yaml").read_text()
    start, end = settings.index("paper:"), settings.index("notifications:")
    (root / "genesis.yaml").write_text(settings[:start] + settings[end:])   # no paper section at all
    write_rules(root, "metrics:\n  t_since: {since: fill}\n  t_pct: {percentile: equity_usd, window: 1d}\n"
                      "  t_last: {last: fill, field: price}\n"
                      "rules:\n  - id: t_lock\n    stage: risk\n    when: t_since < 1\n    then: [{lock: {}}]\n")
    result = check_config(root)
    assert result.ok, "\n".join(map(str, result.problems))
    settings_doc = result.files.settings
    assert settings_doc.data["paper"] == {"starting_equity_usd": 1000, "taker_fee_pct": 0.1, "maker_fee_pct": 0.1}
    assert "paper" not in settings_doc.given                        # what the user wrote is kept apart
    assert settings_doc.data["account_metrics"]["correlation_min_days"] == 5   # nested, from an absent section
    rule = next(r for r in result.rules if r.id == "t_lock")
    assert (rule.severity, rule.for_s, rule.cooldown_s) == ("info", 0.0, 0.0)
    assert rule.then[0].arg == {"scope": "all", "duration": "1h", "until": "duration", "repeat_window": "24h"}
    specs = {name: result.metrics[name].spec for name in ("t_since", "t_pct", "t_last")}
    assert [specs[n]["default"] for n in ("t_since", "t_pct", "t_last")] == [1_000_000_000, 50, 0]  # per primitive
    assert specs["t_pct"]["sample_every"] == "1h" and "where" not in specs["t_last"]   # null: left absent
    strategy = result.files.strategies.data["strategies"][0]
    assert strategy["params"]["entry_z"] == 2.0 and strategy["params"]["size_pct"] == 5   # through $ref and if/then
    assert Engine(result, "sniper").account.equity() == 1000


def test_every_filled_document_still_passes_its_schema(tmp_path):
    """A default that broke its own schema would slip past validation by being filled in after it."""
    result = check_config(config_copy(tmp_path, strategies_off=False))
    assert result.ok
    for doc in result.files.documents():
        errors = [e.message for e in validator(doc.kind).iter_errors(doc.data)]
        assert not errors, f"{doc.file}: {errors}"
        assert doc.data != doc.given   # something was filled in every shipped file


# ----------------------------------------------------------------------------- given vs left out
def test_lock_until_midnight_without_duration_is_fine_though_duration_has_a_default(tmp_path):
    root = config_copy(tmp_path)
    write_rules(root, "rules:\n  - id: t_mid\n    stage: risk\n    when: equity_usd < 1\n"
                      "    then: [{lock: {until: utc_midnight}}]\n")
    assert check_config(root).ok


def test_lock_until_midnight_with_a_written_duration_is_reported_at_its_key(tmp_path):
    root = config_copy(tmp_path)
    text = ("rules:\n  - id: t_mid\n    stage: risk\n    when: equity_usd < 1\n"
            "    then:\n      - lock:\n          until: utc_midnight\n          duration: 2h\n")
    rel = write_rules(root, text)
    found = check_config(root).problems
    assert [(p.file, p.line, p.col) for p in found] == [(rel, *position_of(text, "duration: 2h"))]
    assert "not both" in found[0].message


def test_options_the_user_did_not_write_never_count_as_misplaced(tmp_path):
    root = config_copy(tmp_path)
    text = "metrics:\n  t_count: {count: fill}\n  t_stat:\n    count: fill\n    stat: iqr\nrules: []\n"
    rel = write_rules(root, text)
    found = check_config(root).problems   # t_count has stat, k, sample_every... filled in: not reported
    assert [(p.file, p.line, p.col) for p in found] == [(rel, *position_of(text, "stat: iqr"))]
    assert "'stat' does not apply to a count metric" in found[0].message


def test_for_on_an_event_rule_is_reported_only_when_written(tmp_path):
    root = config_copy(tmp_path)
    rule = "rules:\n  - id: t_on\n    stage: alerts\n    on: fill\n{}    then: [{{notify: filled}}]\n"
    write_rules(root, rule.format(""))
    assert check_config(root).ok                 # `for` has the default 0s, filled in: no complaint
    text = rule.format("    for: 5s\n")
    rel = write_rules(root, text)
    found = check_config(root).problems
    assert [(p.file, p.line, p.col) for p in found] == [(rel, *position_of(text, "for: 5s"))]


def test_a_cross_check_against_a_filled_default_points_at_the_users_lines(tmp_path):
    """entry_z below the filled-in exit_z: the problem sits at the `params` the user wrote."""
    root = config_copy(tmp_path)
    text = ("strategies:\n  - id: t_spread\n    kind: spread_arbitrage\n    symbols: [BTCUSDT, ETHUSDT]\n"
            "    params:\n      entry_z: 0.3\n")
    (root / "strategies.yaml").write_text(text, encoding="utf-8")
    found = check_config(root).problems
    assert [(p.file, p.line, p.col) for p in found] == [("strategies.yaml", *position_of(text, "params:"))]
    assert "exit_z < entry_z < stop_z must hold (got 0.5, 0.3, 3.0)" in found[0].message


def test_genesis_validate_reports_file_line_and_column(tmp_path):
    root = config_copy(tmp_path)
    text = ("rules:\n  - id: t_mid\n    stage: risk\n    when: equity_usd < 1\n"
            "    then:\n      - lock: {until: utc_midnight, duration: 2h}\n")
    rel = write_rules(root, text)
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "validate", "--config", str(root)],
                          capture_output=True, text=True, timeout=120)
    line, col = position_of(text, "duration: 2h")
    assert done.returncode != 0
    assert f"{rel}:{line}:{col}:" in done.stdout + done.stderr


# ----------------------------------------------------------------------------- genesis set
def _set_session(tmp_path: Path):
    root = config_copy(tmp_path)
    replace(root, "genesis.yaml", "risk_edit_delay: 1h", "risk_edit_delay: 0s")
    return root, open_session(root, check_config(root), "sniper", open_feed(sample_paths()), "sqlite://", "paper")


def test_set_writes_one_number_and_no_filled_default(tmp_path):
    root, session = _set_session(tmp_path)
    tier_file = root / "tiers" / "sniper.yaml"
    before = tier_file.read_text().split("\n")
    status, _ = operate(session, "set", {"key": "tier.limits.daily_loss_usd", "value": "20"})
    assert status == "applied"
    _due_sets(session, lambda text: None)
    after = tier_file.read_text().split("\n")
    assert len(after) == len(before)
    assert [(a, b) for a, b in zip(before, after) if a != b] == [
        ("  daily_loss_usd: 25           # trading stops until 00:00 UTC",
         "  daily_loss_usd: 20           # trading stops until 00:00 UTC")]
    assert session.engine.config.tiers["sniper"]["execution"]["vwap"]["slices"] == 10   # filled in memory only


def test_set_of_a_key_only_the_schema_defaults_is_refused_and_writes_nothing(tmp_path):
    root, session = _set_session(tmp_path)
    tier_file = root / "tiers" / "sniper.yaml"
    before = tier_file.read_text()
    status, message = operate(session, "set", {"key": "tier.execution.vwap.slices", "value": "12"})
    _due_sets(session, lambda text: None)
    assert status == "refused" and "has no 'execution.vwap.slices'" in message
    assert tier_file.read_text() == before


# ----------------------------------------------------------------------------- domain numbers in YAML
def _edit_counts(tmp_path: Path, risk_files: str | None) -> float:
    """risk_edits_session after one edit of rules/tilt.yaml, with `safety.risk_files` as given."""
    root = config_copy(tmp_path)
    if risk_files is not None:
        replace(root, "genesis.yaml", "risk_files: [tiers/, rules/risk.yaml]", f"risk_files: {risk_files}")
    session = open_session(root, check_config(root), "sniper", open_feed(sample_paths()), "sqlite://", "paper")
    feed = iter(session.feed)
    for _ in range(200):
        session.engine.process(next(feed))
    tilt = root / "rules" / "tilt.yaml"
    tilt.write_text(tilt.read_text() + "# edited\n")
    assert reload_config(session, root, lambda text: None)
    return session.engine.metrics.m["risk_edits_session"]


def test_which_files_are_risk_edits_comes_from_genesis_yaml(tmp_path):
    assert _edit_counts(tmp_path / "shipped", None) == 0                          # tilt.yaml is not listed
    assert _edit_counts(tmp_path / "listed", "[tiers/, rules/risk.yaml, rules/tilt.yaml]") == 1
    assert _edit_counts(tmp_path / "folder", "[rules/]") == 1                    # a folder/ names every file in it


def _direction_after_split_moves(tmp_path: Path, window: str) -> float:
    """Hold BTC and ETH (Hunter); over 20 minutes BTC rises, ETH falls for 15 minutes and
    then rises: over the last 15 minutes they disagree, over the last 3 they agree."""
    root = config_copy(tmp_path)
    account_metrics(root, direction_window=window)
    engine = engine_for(root, "hunter")
    btc = lambda m: 60_000.0 + 10 * m                               # noqa: E731
    eth = lambda m: 3_000.0 - 10 * m if m <= 15 else 2_850.0 + 5 * (m - 15)   # noqa: E731
    engine.process(ticker(T0, BTC, btc(0)))
    engine.process(ticker(T0 + 1, ETH, eth(0)))
    trade(engine, BTC, "buy", 40)
    trade(engine, ETH, "buy", 40)
    for m in range(1, 21):
        engine.process(ticker(T0 + m * M, BTC, btc(m)))
        engine.process(ticker(T0 + m * M + 1, ETH, eth(m)))
    return engine.metrics.m["same_direction_pct"]


def test_the_direction_window_comes_from_genesis_yaml(tmp_path):
    assert _direction_after_split_moves(tmp_path / "w15", "15m") == 50.0
    assert _direction_after_split_moves(tmp_path / "w3", "3m") == 100.0


BTC_RETURNS = [0.010, -0.020, 0.030, 0.010, -0.010, 0.020, -0.015]
ETH_RETURNS = [0.020, 0.010, 0.010, -0.020, -0.010, 0.030, -0.010]


def _uncorrelated_after_a_week(tmp_path: Path, **values) -> float:
    """One price per symbol per day for eight days, moving by the returns above."""
    root = config_copy(tmp_path)
    account_metrics(root, **values)
    engine = engine_for(root)
    btc, eth = 60_000.0, 3_000.0
    for day in range(len(BTC_RETURNS) + 1):
        if day:
            btc *= math.exp(BTC_RETURNS[day - 1])
            eth *= math.exp(ETH_RETURNS[day - 1])
        engine.process(ticker(T0 + day * MS_PER_DAY, BTC, btc))
        engine.process(ticker(T0 + day * MS_PER_DAY + 1, ETH, eth))
    engine.process(ticker(T0 + (len(BTC_RETURNS) + 1) * MS_PER_DAY, BTC, btc))   # closes the last day
    return engine.metrics.m["uncorrelated_pairs_30d"]


def test_the_correlation_cut_off_and_minimum_days_come_from_genesis_yaml(tmp_path):
    correlation = statistics.correlation([0.0, *BTC_RETURNS], [0.0, *ETH_RETURNS])   # the first day is flat
    assert 0.3 < abs(correlation) < 0.5
    assert _uncorrelated_after_a_week(tmp_path / "a", correlation_cutoff=0.5) == 2   # both below 0.5
    assert _uncorrelated_after_a_week(tmp_path / "b", correlation_cutoff=0.3) == 0   # neither below 0.3
    assert _uncorrelated_after_a_week(tmp_path / "c", correlation_cutoff=0.5, correlation_min_days=9) == 0


def _after_selling_down_to_five_dollars(tmp_path: Path, dust: float) -> Account:
    """The account of a config whose genesis.yaml sets `dust_usd`: buy $40 of BTC, sell $35
    of it (a partial fill, as a live fill whose fee was taken in coins leaves)."""
    root = config_copy(tmp_path)
    account_metrics(root, dust_usd=dust)
    account = Account(1000.0, T0, check_config(root).files.settings.data["account_metrics"])
    account.on_price(BTC, 60_000.0, T0)
    fill = {"price": 60_000.0, "fee_usd": 0.0, "hour_utc": 12}
    account.on_fill(Event("fill", T0, BTC, {**fill, "side": "buy", "qty": 40 / 60_000, "notional_usd": 40.0}), "entry")
    closed = account.on_fill(Event("fill", T0 + M, BTC, {**fill, "side": "sell", "qty": 35 / 60_000,
                                                          "notional_usd": 35.0}), "signal")
    account.closed = closed
    return account


def test_dust_comes_from_genesis_yaml(tmp_path):
    kept = _after_selling_down_to_five_dollars(tmp_path / "d1", 1.0)
    assert round(kept.positions[BTC].qty * 60_000.0, 6) == 5.0 and kept.closed == []
    closed = _after_selling_down_to_five_dollars(tmp_path / "d10", 10.0)   # under $10 counts as closed
    assert BTC not in closed.positions and [e.kind for e in closed.closed] == ["position_closed"]


def _recoveries(tmp_path: Path, depth: float) -> float:
    """Hold $40 of BTC through a 10% dip (0.4% of equity) and a rise past the start."""
    root = config_copy(tmp_path)
    account_metrics(root, recovery_min_pct=depth)
    write_rules(root, "metrics:\n  t_recovered: {count: drawdown_recovered}\nrules: []\n")
    engine = engine_for(root)
    engine.process(ticker(T0, BTC, 60_000.0))
    trade(engine, BTC, "buy", 40)
    for i, mid in enumerate((57_000.0, 54_000.0, 58_000.0, 61_000.0)):
        engine.process(ticker(T0 + (i + 1) * M, BTC, mid))
    return engine.metrics.m["t_recovered"]


def test_the_recovery_depth_comes_from_genesis_yaml(tmp_path):
    assert _recoveries(tmp_path / "shallow", 0.1) == 1
    assert _recoveries(tmp_path / "deep", 0.5) == 0      # a 0.4% drawdown is not deep enough
