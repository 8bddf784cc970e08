"""Where the bundled schemas and the default configuration live.

From a checkout (or an editable install) they are the repository's top-level
folders; a wheel carries copies under genesis/_bundled.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent
BUNDLED_DIR = PACKAGE_DIR / "_bundled"
SETTINGS_FILE = "genesis.yaml"


def schema_dir() -> Path:
    """Folder holding the JSON Schemas."""
    for candidate in (CHECKOUT_DIR / "schema", BUNDLED_DIR / "schema"):
        if (candidate / "common.schema.json").is_file():
            return candidate
    raise FileNotFoundError("the JSON Schemas are missing from this installation")


def default_config_dir() -> Path:
    """The configuration used when none is named: $GENESIS_CONFIG, the current
    folder if it holds genesis.yaml, else the bundled defaults."""
    env = os.environ.get("GENESIS_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path.cwd(), CHECKOUT_DIR, BUNDLED_DIR):
        if (candidate / SETTINGS_FILE).is_file():
            return candidate
    return Path.cwd()
