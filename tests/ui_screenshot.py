"""Write the README's screenshot of `genesis ui` (docs/ui-screenshot.svg) from a real
run: the bundled sample replayed with the scripted session of tests/ui_helpers.py, shown
at 80x24.

    python tests/ui_screenshot.py [OUT.svg]
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from ui_helpers import ROOT, loaded, replay_tilted_session

from genesis.ui.app import GenesisApp


async def screenshot(url: str, out: Path) -> None:
    """Open the dashboard on `url` at 80x24 and save what it shows to `out`."""
    app = GenesisApp(url, refresh_s=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        app.save_screenshot(out.name, path=str(out.parent))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "ui-screenshot.svg"
    with tempfile.TemporaryDirectory() as tmp:
        db = replay_tilted_session(Path(tmp))
        asyncio.run(screenshot(f"sqlite:///{db}", out.resolve()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
