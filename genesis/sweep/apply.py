"""Apply a sweep's YAML diff to a configuration folder, only when the result validates."""
from __future__ import annotations

from pathlib import Path

from genesis.config.snapshot import load_snapshot, snapshot
from genesis.sweep.keys import apply_values, read_diff


def apply_diff(config_root: Path, diff_path: Path) -> tuple[list, list]:
    """([files changed], []) after writing the diff's numbers into the folder, or
    ([], [problems]) when the changed configuration would not validate (nothing written).
    Raises ConfigKeyError when the diff names a number the folder does not have."""
    root = Path(config_root)
    before = snapshot(root)
    after = apply_values(before, read_diff(diff_path))
    checked = load_snapshot(after)
    if not checked.ok:
        return [], list(checked.problems)
    changed = sorted(f for f in after if after[f] != before[f])
    for rel in changed:
        (root / rel).write_text(after[rel], encoding="utf-8")
    return changed, []
