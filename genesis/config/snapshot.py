"""A configuration folder as data: the text of every file, so that a run can be
resumed with exactly the configuration (and the edits) it ran with."""
from __future__ import annotations

from pathlib import Path

from genesis.config.checks import CheckedConfig, check_config

CONFIG_GLOBS = ("genesis.yaml", "alerts.yaml", "strategies.yaml", "tiers/*.yaml", "rules/*.yaml")


def snapshot(root: Path) -> dict:
    """{relative path: text} of every configuration file under `root`."""
    root = Path(root)
    files = {}
    for pattern in CONFIG_GLOBS:
        for path in sorted(root.glob(pattern)):
            try:
                files[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # the validator reports unreadable files when the folder is checked
    return files


def load_snapshot(files: dict) -> CheckedConfig:
    """Check a configuration held as data (written to a temporary folder)."""
    import tempfile  # noqa: PLC0415 - only a resumed run that changed its configuration needs it

    with tempfile.TemporaryDirectory(prefix="genesis-config-") as tmp:
        for rel, text in files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return check_config(Path(tmp))


def changed_files(before: dict, after: dict) -> list:
    """Paths whose text differs between two snapshots."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
