"""Every configuration key is documented: the schemas carry a description, a default
(or are required) and a unit for numbers, and docs/reference.md is current."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genesis.config.checks import PRIMITIVES
from genesis.config.schemas import all_schemas
from genesis.reference import _resolve, execution_parameters, render_reference, strategy_parameters

ROOT = Path(__file__).resolve().parents[1]


def _properties():
    """(schema file, dotted path, property schema, required?) for every declared key."""
    out = []

    def walk(file, node, path):
        if not isinstance(node, dict):
            return
        required = set(node.get("required", []))
        for key, sub in node.get("properties", {}).items():
            if isinstance(sub, dict):
                out.append((file, f"{path}{key}", sub, key in required))
                walk(file, sub, f"{path}{key}.")
        for key in ("$defs",):
            for name, sub in node.get(key, {}).items():
                walk(file, sub, f"{path}$defs.{name}.")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(file, node[key], f"{path}[]." if key == "items" else f"{path}<name>.")
        for sub in node.get("anyOf", []):
            # the one-key action mappings are alternatives, not optional keys
            if not path.endswith("$defs.action."):
                walk(file, sub, path)

    for file, schema in all_schemas().items():
        walk(file, schema, "")
    return out


PROPS = _properties()


def test_schemas_declare_many_keys():
    assert len(PROPS) > 150


@pytest.mark.parametrize("file,path,node,required", PROPS, ids=[f"{f}:{p}" for f, p, _, _ in PROPS])
def test_every_key_is_documented(file, path, node, required):
    if "$ref" in node:
        file, node = _resolve(file, node)  # a shared shape documents the key
    assert node.get("description"), f"{file}:{path} has no description"
    alternative = path.startswith("$defs.metric.") and path.rsplit(".", 1)[-1] in PRIMITIVES
    if not required and not alternative:  # a metric names exactly one primitive: no default
        assert "default" in node, f"{file}:{path} is optional but has no default"
    if node.get("type") in ("number", "integer"):
        assert node.get("x-unit"), f"{file}:{path} is a number without a unit (x-unit)"


def test_reference_is_current():
    committed = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert committed == render_reference(), "docs/reference.md is stale: run `genesis docs -o docs/reference.md`"


def test_readme_has_every_strategy_parameter_and_execution_key():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for part in (strategy_parameters(), execution_parameters()):
        assert part in readme, "README.md's strategy tables are stale: paste `genesis docs --strategies` in"


def test_reference_lists_every_tier_key():
    text = render_reference()
    for key in ("limits.daily_loss_usd", "drawdown.halt_usd", "execution.iceberg.abort_slippage_pct",
                "promotion.min_sharpe_30d", "demotion.override_attempts_24h"):
        assert f"`{key}`" in text


def test_docs_command_writes_the_reference(tmp_path):
    out = tmp_path / "ref.md"
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "docs", "-o", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == render_reference()
