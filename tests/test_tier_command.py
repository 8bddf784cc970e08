"""`genesis tier` rebuilds the latest run from the journal and shows every promotion
gate with its current value, passed or not, and what remains."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_tier_shows_gate_progress_of_the_journaled_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'j.db'}"
    assert _cli("replay", "--tier", "sniper", "--db", db, "--config", str(ROOT), "--json").returncode == 0
    result = _cli("tier", "--db", db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("tier sniper (rank 1 of 3), run 1 after 35,979 events")
    assert "promotion to hunter (promote_sniper_to_hunter): 3 of 7 gates hold" in out
    gate_lines = [line for line in out.splitlines() if re.match(r"  \[(ok|  )\] ", line)]
    assert len(gate_lines) == 7
    assert any(line.startswith("  [  ] equity_usd >= 2000") and "equity_usd = 999.9" in line for line in gate_lines)
    assert any(line.startswith("  [ok] sent_orders_30d > 0 and fast_orders_pct_30d >= 90") for line in gate_lines)
    assert "remaining: days_at_tier >= 30; profitable_days_pct_20 >= 60" in out


def test_tier_without_a_journal_says_nothing_has_run(tmp_path):
    result = _cli("tier", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.returncode == 1
    assert "nothing has run yet" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_tier_rebuild_includes_the_operators_commands(tmp_path):
    """A manual order applied during the run is part of the rebuilt state."""
    from genesis.config.checks import check_config  # noqa: PLC0415
    from genesis.engine.feeds import open_feed, sample_paths  # noqa: PLC0415
    from genesis.engine.runner import _apply_queued_commands, open_session  # noqa: PLC0415
    from genesis.engine.tierview import rebuild  # noqa: PLC0415

    db = f"sqlite:///{tmp_path / 'j.db'}"
    session = open_session(ROOT, check_config(ROOT), "sniper", open_feed(sample_paths()), db, "paper")
    for count, event in enumerate(session.feed, 1):
        session.engine.process(event)
        if count == 3000:
            session.journal.queue_command("order", {"side": "buy", "symbol": "ETHUSDT", "notional_usd": 30.0})
            _apply_queued_commands(session, lambda _t: None)
    session.engine.finish()
    session.journal.finish()
    rebuilt, _ = rebuild(db)
    assert "ETHUSDT" in rebuilt.account.positions
    assert rebuilt.metrics.m["equity_usd"] == session.engine.metrics.m["equity_usd"]
