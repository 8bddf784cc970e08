"""`genesis set`: a risk-parameter edit is validated at once, counted as a risk edit,
and written into the tier file only after safety.risk_edit_delay of market time,
where hot reload applies it."""
from __future__ import annotations

import shutil
from pathlib import Path

from genesis.config.checks import check_config
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.runner import _due_sets, open_session, operate

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp: Path, delay: str = "10s") -> Path:
    root = tmp / "config"
    root.mkdir()
    for name in ("alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(ROOT / folder, root / folder)
    settings = (ROOT / "genesis.yaml").read_text().replace("risk_edit_delay: 1h", f"risk_edit_delay: {delay}")
    (root / "genesis.yaml").write_text(settings)
    return root


def _session(root: Path):
    return open_session(root, check_config(root), "sniper", open_feed(sample_paths()), "sqlite://", "paper")


def test_a_set_waits_for_the_delay_then_edits_the_file_and_applies(tmp_path):
    root = _config(tmp_path)
    session = _session(root)
    feed = iter(session.feed)
    for _ in range(2000):
        session.engine.process(next(feed))
    status, message = operate(session, "set", {"key": "tier.limits.daily_loss_usd", "value": "20"})
    assert status == "applied" and "daily_loss_usd 25 -> 20 takes effect in" in message
    assert session.engine.metrics.m["risk_edits_session"] == 1       # the tilt rules see the edit at once
    tier_file = root / "tiers" / "sniper.yaml"
    edited_at = session.engine.now
    said = []
    while session.engine.now < edited_at + 9_000:
        session.engine.process(next(feed))
        _due_sets(session, said.append)
    assert "daily_loss_usd: 25 " in tier_file.read_text()            # not before the delay
    assert session.engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 25
    while session.engine.now < edited_at + 11_000:
        session.engine.process(next(feed))
        _due_sets(session, said.append)
    text = tier_file.read_text()
    assert "  daily_loss_usd: 20           # trading stops until 00:00 UTC" in text  # comment kept
    assert session.engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 20
    assert said == ["configuration reloaded (tiers/sniper.yaml)"]


def test_bad_sets_are_refused_with_a_reason_and_change_nothing(tmp_path):
    root = _config(tmp_path)
    session = _session(root)
    before = (root / "tiers" / "sniper.yaml").read_text()
    cases = [
        ({"key": "tier.limits.daily_los_usd", "value": "20"}, "did you mean 'daily_loss_usd'"),
        ({"key": "tier.limits.daily_loss_usd", "value": "lots"}, "'lots' is not a number"),
        ({"key": "tier.drawdown.warning_usd", "value": "5"}, "would not validate: drawdown ladder must rise"),
        ({"key": "limits.daily_loss_usd", "value": "5"}, "is not a tier value"),
    ]
    for payload, phrase in cases:
        status, message = operate(session, "set", payload)
        assert status == "refused" and phrase in message, message
    assert (root / "tiers" / "sniper.yaml").read_text() == before
    assert session.pending_sets == []
