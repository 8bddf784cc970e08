#!/usr/bin/env python3
"""Run the `genesis` command from a checkout: `python cli.py validate`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from genesis.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
