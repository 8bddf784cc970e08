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
    assert any(line.startswith("  [ok] fast_orders_pct_30d >= 90") for line in gate_lines)
    assert "remaining: days_at_tier >= 30; profitable_days_pct_20 >= 60" in out


def test_tier_without_a_journal_says_nothing_has_run(tmp_path):
    result = _cli("tier", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.returncode == 1
    assert "nothing has run yet" in result.stderr
    assert not (tmp_path / "none.db").exists()
