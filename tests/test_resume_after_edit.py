"""A run whose configuration was edited while it ran, then crashed, resumes with the
configuration it started with, re-applies the edit at the same point, and ends with
the journal an uninterrupted run would have written (real SQLite, real sample data)."""
from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import create_engine, text

from genesis.config.checks import check_config
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.runner import open_session, reload_config, replay

ROOT = Path(__file__).resolve().parents[1]
EDIT_AT = 4000
CRASH_AT = 20000
OLD, NEW = "  daily_loss_usd: 25", "  daily_loss_usd: 20"


def _config(tmp: Path) -> Path:
    root = tmp / "config"
    root.mkdir(parents=True)
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(ROOT / name, root / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(ROOT / folder, root / folder)
    return root


def _edit(root: Path) -> None:
    path = root / "tiers" / "sniper.yaml"
    text_ = path.read_text()
    assert OLD in text_
    path.write_text(text_.replace(OLD, NEW))


def _run(root: Path, db: str, stop_at: int | None) -> None:
    """Process the sample, editing the tier file at EDIT_AT; stop without flushing at stop_at."""
    session = open_session(root, check_config(root), "sniper", open_feed(sample_paths()), db, "paper")
    for count, event in enumerate(session.feed, 1):
        session.engine.process(event)
        if count == EDIT_AT:
            _edit(root)
            assert reload_config(session, root, say=lambda _t: None)
            assert session.engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 20
        if stop_at and count == stop_at:
            return  # a crash: whatever was not flushed yet is lost
    session.engine.finish()
    session.journal.finish()


def _entries(db_file: Path) -> list:
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT seq, ts, kind, rule, symbol, data FROM entries "
                                                     "ORDER BY run_id, seq"))]
        runs = [tuple(r) for r in conn.execute(text("SELECT id, finished FROM runs"))]
    engine.dispose()
    return rows, runs


def test_resume_after_a_hot_reload_reproduces_the_uninterrupted_journal(tmp_path):
    ref_root = _config(tmp_path / "a")
    _run(ref_root, f"sqlite:///{tmp_path / 'ref.db'}", stop_at=None)
    reference, _ = _entries(tmp_path / "ref.db")
    assert any(r[2] == "config" for r in reference)

    root = _config(tmp_path / "b")
    db = tmp_path / "crash.db"
    _run(root, f"sqlite:///{db}", stop_at=CRASH_AT)
    partial, _ = _entries(db)
    assert 0 < len(partial) < len(reference)

    # restart with the edited file on disk: the run resumes from the start with the
    # configuration it began with and re-applies the edit at event EDIT_AT
    session = open_session(root, check_config(root), "sniper", open_feed(sample_paths()), f"sqlite:///{db}", "paper")
    assert session.resumed and [(c.edit, c.at_event) for c in session.changes] == [(True, EDIT_AT)]
    assert session.engine.config.tiers["sniper"]["limits"]["daily_loss_usd"] == 25
    replay(session)
    rows, runs = _entries(db)
    assert runs == [(1, 1)]
    assert rows == reference
