"""genesis.yaml exchange.depth_snapshot_levels: the REST depth snapshots a live or dry run
takes hold that many levels a side (fewer levels, less request weight at many symbols)."""
from __future__ import annotations

import re

from test_live_fetched_markets import SYMBOL, dry_run, write_config

from genesis.config.checks import check_config
from genesis.live.segment import read_inputs
from genesis.simulator import SimulatorThread


def with_levels(root, levels) -> None:
    """Set exchange.depth_snapshot_levels in `root`'s genesis.yaml."""
    path = root / "genesis.yaml"
    text, n = re.subn(r"(?m)^exchange:\n", f"exchange:\n  depth_snapshot_levels: {levels}\n", path.read_text())
    assert n == 1
    path.write_text(text)


def snapshots(log) -> list:
    return [e for e in read_inputs(log) if e.kind == "depth" and e.fields.get("_snapshot")]


def test_depth_snapshots_hold_the_configured_levels(tmp_path):
    runs = {}
    with SimulatorThread(speed=20, derived_symbols=1) as sim:
        for levels in (5, 1000):
            root = write_config(tmp_path / f"config-{levels}", [SYMBOL])
            with_levels(root, levels)
            runs[levels] = dry_run(sim, root, f"sqlite:///{tmp_path / f'j{levels}.db'}",
                                   lambda engine: engine.stats.events >= 200)
    few, many = snapshots(runs[5]["log"]), snapshots(runs[1000]["log"])
    assert few and many, (runs[5]["stats"], runs[1000]["stats"])
    assert all(len(e.fields["_bids"]) <= 5 and len(e.fields["_asks"]) <= 5 for e in few)
    assert max(len(e.fields["_bids"]) for e in many) > 5   # the simulator's book is deeper than 5


def test_a_level_count_binance_does_not_offer_is_named_by_validate(tmp_path):
    root = write_config(tmp_path / "config", [SYMBOL])
    with_levels(root, 250)
    result = check_config(root)
    assert not result.ok
    [problem] = result.problems
    line = next(n for n, text in enumerate((root / "genesis.yaml").read_text().splitlines(), 1)
                if "depth_snapshot_levels" in text)
    assert (problem.file, problem.line) == ("genesis.yaml", line)
    assert "expected one of: 5, 10, 20, 50, 100, 500, 1000, 5000" in problem.message
