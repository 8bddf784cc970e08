"""An earlier revision of this repository, checked out beside the real data, for the
benchmarks that compare this tree with it in one run."""
from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def base_worktree(rev: str) -> Iterator[Path]:
    """`rev` checked out into a temporary git worktree (removed on exit). The worktree
    sees the same `../shared` real data as this tree, so both benchmark one input."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        shared = ROOT.parent / "shared"
        if shared.is_dir():
            (Path(tmp) / "shared").symlink_to(shared.resolve())
        done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), rev],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"cannot check out {rev!r}: {done.stderr.strip()}")
        try:
            yield base
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
