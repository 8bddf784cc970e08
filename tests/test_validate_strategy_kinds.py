"""`genesis validate` refuses a strategy kind that no plugin provides: in a tier's
`strategies` list (the entry is named by file, line and column) and as the kind of a
strategies.yaml instance. The plugins' registry (genesis.strategies.registry) decides.

Each test works on a private copy of the shipped configuration. Which kinds the shipped
files list that are not available depends on which plugins exist, so the copy is first
cut down to the available kinds; a test then takes one plugin out of the registry (as an
installation without it) and runs the real checker.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genesis.config.checks import check_config
from genesis.strategies import registry
from test_validate_config import REPO, config, listing, locate, problems  # noqa: F401 - fixture

GONE = "liquidity_provision"   # a shipped plugin with one instance, out of the registry in tests needing one missing


def _available(kinds: list[str]) -> list[str]:
    return [k for k in kinds if k in registry]


def available_only(root: Path) -> Path:
    """Cut a configuration copy down to the kinds the registry has: each tier's flow-style
    `strategies: [...]` line and the strategies.yaml instances (rewritten only when one goes)."""
    for path in sorted((root / "tiers").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        listed = yaml.safe_load(text)["strategies"]
        new, n = re.subn(r"(?m)^strategies: \[.*\]$", f"strategies: [{', '.join(_available(listed))}]", text)
        assert n == 1, f"{path.name}: expected one `strategies: [...]` line"
        path.write_text(new, encoding="utf-8")
    path = root / "strategies.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    kept = [inst for inst in data["strategies"] if inst["kind"] in registry]
    if len(kept) < len(data["strategies"]):
        path.write_text(yaml.safe_dump({**data, "strategies": kept}, sort_keys=False), encoding="utf-8")
    assert problems(root) == [], listing(problems(root))
    return root


@pytest.fixture
def available(config) -> Path:
    """The copy cut down to the available kinds: it passes."""
    return available_only(config)


@pytest.fixture
def without_plugin(available, monkeypatch) -> Path:
    """That copy, and the registry without GONE, as in an installation lacking that plugin
    (restored after the test)."""
    monkeypatch.delitem(registry, GONE)
    return available


def expected_message(kind: str, advice: str) -> str:
    available = ", ".join(sorted(registry))
    return (f"strategy kind '{kind}' is not available: no strategy plugin provides it "
            f"(available kinds: {available}); {advice}")


def tier_entries(root: Path) -> list[tuple[str, int, int, str]]:
    """(file, line, col, kind) of each entry of each tier's flow-style strategies list, found in the text."""
    out = []
    for path in sorted((root / "tiers").glob("*.yaml")):
        rel = f"tiers/{path.name}"
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, start=1):
            if line.startswith("strategies: ["):
                start = line.index("[")
                for match in re.finditer(r"[a-z_]+", line[start:line.index("]")]):
                    out.append((rel, n, start + match.start() + 1, match.group()))
    return out


# ----------------------------------------------------------------------------- the shipped tiers
def test_every_unavailable_kind_of_the_shipped_files_is_named_where_it_is_listed(config):
    """On the shipped files as they are: exactly the listed kinds the registry lacks are
    reported, each at its entry (none at all once every plugin exists)."""
    want = {(f, line, col, expected_message(kind, "remove it from the tier's strategies"))
            for f, line, col, kind in tier_entries(config) if kind not in registry}
    instances = yaml.safe_load((config / "strategies.yaml").read_text(encoding="utf-8"))["strategies"]
    for inst in instances:
        if inst["kind"] not in registry:
            line, col = locate(config, "strategies.yaml", f"kind: {inst['kind']}", inst["kind"])
            want.add(("strategies.yaml", line, col,
                      expected_message(inst["kind"], f"remove the instance '{inst['id']}'")))
    found = {(p.file, p.line, p.col, p.message) for p in problems(config)}
    assert found == want, listing(problems(config))


# ----------------------------------------------------------------------------- a tier unlocking a missing kind
def test_tier_unlocking_a_kind_no_plugin_provides_is_refused_at_the_entry(without_plugin):
    root = without_plugin
    found = [p for p in problems(root) if p.file.startswith("tiers/")]
    want = [(f, line, col) for f, line, col, kind in tier_entries(root) if kind == GONE]
    assert want, "the shipped tiers unlock the kind the test takes away"
    assert [(p.file, p.line, p.col) for p in found] == want, listing(found)
    for p in found:
        assert p.message == expected_message(GONE, "remove it from the tier's strategies")
        assert GONE not in p.message.split("available kinds: ")[1]
        assert "spread_arbitrage" in p.message.split("available kinds: ")[1]


def test_block_style_list_entry_is_located(without_plugin):
    root = without_plugin
    tier = root / "tiers" / "hunter.yaml"
    text = tier.read_text(encoding="utf-8")
    tier.write_text(re.sub(r"(?m)^strategies: \[.*\]$", f"strategies:\n  - spread_arbitrage\n  - {GONE}", text),
                    encoding="utf-8")
    found = [p for p in problems(root) if p.file == "tiers/hunter.yaml"]
    line, col = locate(root, "tiers/hunter.yaml", f"  - {GONE}\n", GONE)
    assert [(p.line, p.col) for p in found] == [(line, col)], listing(found)


def test_made_up_kind_is_refused_once_by_the_schema(available):
    """A kind the schema does not know is one problem (the schema's), not two."""
    root = available
    tier = root / "tiers" / "hunter.yaml"
    text = tier.read_text(encoding="utf-8")
    tier.write_text(re.sub(r"(?m)^strategies: \[(.*)\]$", r"strategies: [\1, moon_shot]", text), encoding="utf-8")
    found = problems(root)
    assert len(found) == 1, listing(found)
    line, col = locate(root, "tiers/hunter.yaml", "moon_shot]", "moon_shot")
    assert (found[0].file, found[0].line, found[0].col) == ("tiers/hunter.yaml", line, col)
    assert found[0].message.startswith("'moon_shot' is not one of:")


# ----------------------------------------------------------------------------- strategies.yaml
def test_instance_of_a_missing_kind_is_refused_at_its_kind_alone(without_plugin):
    """With the kind also gone from every tier, the instance gets one problem: not also
    "no tier unlocks" or "tier does not unlock", which would only echo it."""
    root = without_plugin
    for path in (root / "tiers").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(f", {GONE}", "").replace(f"{GONE}, ", ""), encoding="utf-8")
    instances = yaml.safe_load((root / "strategies.yaml").read_text(encoding="utf-8"))["strategies"]
    gone = [i["id"] for i in instances if i["kind"] == GONE]
    assert len(gone) == 1
    found = check_config(root).problems
    line, col = locate(root, "strategies.yaml", f"kind: {GONE}", GONE)
    assert [(p.file, p.line, p.col, p.message) for p in found] == [
        ("strategies.yaml", line, col, expected_message(GONE, f"remove the instance '{gone[0]}'"))], listing(found)


def test_available_kinds_pass(available):
    """The cut-down copy lists only available kinds and passes (available_only asserts it),
    and every kind it still lists is one the registry has."""
    root = available
    assert {kind for *_, kind in tier_entries(root)} <= set(registry)
    assert check_config(root).ok


# ----------------------------------------------------------------------------- the command line
def test_cli_names_file_line_and_available_kinds(available):
    """`genesis validate` in a process whose registry lacks one plugin: exit 1, one line per entry."""
    root = available
    script = ("import sys; from genesis.strategies import registry; del registry[sys.argv[1]]; "
              "from genesis.cli import main; sys.argv = ['genesis', 'validate', '--config', sys.argv[2]]; main()")
    proc = subprocess.run([sys.executable, "-c", script, GONE, str(root)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "is not available" in line]
    kind_at = locate(root, "strategies.yaml", f"kind: {GONE}", GONE)
    want = [f"{f}:{n}:{c}" for f, n, c, kind in tier_entries(root) if kind == GONE]
    want.append(f"strategies.yaml:{kind_at[0]}:{kind_at[1]}")
    assert sorted(line.split(": ", 1)[0] for line in lines) == sorted(want), proc.stdout
    rest = ", ".join(sorted(k for k in registry if k != GONE))
    assert all(f"(available kinds: {rest})" in line for line in lines), proc.stdout
    assert proc.stdout.rstrip().endswith(f"{len(want)} problems found")
