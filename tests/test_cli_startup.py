"""A command imports only what it uses: `genesis --help`, `validate` and `replay` load
neither the simulator nor its network stack; `simulate` is listed but imported when it runs;
configuration documents checked once are read back from the cache (genesis/config/checkcache.py)."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import click
from scenario_helpers import edited_copy

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("aiohttp", "ccxt", "genesis.simulator", "matplotlib", "textual", "numpy", "smtplib", "jsonschema",
         "sqlalchemy")   # a replay's journal in memory is written with sqlite3

# runs one command in a fresh interpreter, then prints which heavy modules it had imported
PROBE = """
import json, sys
from genesis.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="genesis", standalone_mode=False)
except SystemExit as exc:
    assert not exc.code, exc.code
print("\\nLOADED " + json.dumps(sorted({h for m in sys.modules for h in %r if m == h or m.startswith(h + ".")})))
""" % (HEAVY,)


def loaded_after(*args: str, cache: Path) -> list[str]:
    """The heavy modules imported by `genesis ARGS`, which must succeed."""
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env={"PATH": "/usr/bin:/bin", "GENESIS_CONFIG": str(ROOT),
                                           "GENESIS_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr[-2000:]
    if args[0] == "replay":
        assert '"events": 1,' in result.stdout   # the one event was replayed
    return json.loads(result.stdout.rsplit("LOADED ", 1)[1])


def test_help_validate_and_replay_import_no_heavy_module(tmp_path):
    one = tmp_path / "one.gz"
    with gzip.open(ROOT / "genesis" / "data" / "sample" / "btcusdt_20240808_sample.gz", "rt") as source:
        one.write_bytes(gzip.compress(source.readline().encode()))
    cache = tmp_path / "cache"
    assert loaded_after("--help", cache=cache) == []
    assert loaded_after("validate", cache=cache) == ["jsonschema"]   # checked afresh, then kept
    assert loaded_after("validate", cache=cache) == []               # the kept documents: no schema walk
    assert loaded_after("replay", "--json", str(one), cache=cache) == []
    assert "genesis.simulator" in loaded_after("simulate", "--help", cache=cache)


def test_help_lists_simulate_with_its_own_summary():
    from genesis.cli import cli
    from genesis.lazy_commands import load_command

    target, summary = cli.lazy["simulate"]
    assert summary == load_command(target).get_short_help_str(limit=200)
    listing = subprocess.run([sys.executable, "-m", "genesis", "--help"], capture_output=True, text=True,
                             timeout=60, cwd=ROOT).stdout
    assert any(line.split()[:1] == ["simulate"] and line.endswith(summary) for line in listing.splitlines())
    ctx = click.Context(cli)
    assert cli.get_command(ctx, "simulate").name == "simulate"
    assert cli.get_command(ctx, "no-such-command") is None


# ------------------------------------------------------------ kept schema-checked documents

def _read(root: Path, cache: Path | str, monkeypatch):
    from genesis.config.loader import load_config_files

    monkeypatch.setenv("GENESIS_CACHE_DIR", str(cache))
    files = load_config_files(root)
    return files.problems, [(d.file, repr(d.data), repr(d.given), d.bad_paths) for d in files.documents()]


def test_kept_documents_read_back_as_checked_afresh(tmp_path, monkeypatch):
    root, cache = edited_copy(tmp_path), tmp_path / "cache"
    fresh = _read(root, "", monkeypatch)                  # no cache: the reference
    assert fresh[0] == [] and not cache.exists()
    assert _read(root, cache, monkeypatch) == fresh       # checked, and kept
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == len(fresh[1])
    assert _read(root, cache, monkeypatch) == fresh       # read back from the cache
    for entry in entries:                                 # damaged entries are misses, and written again
        entry.write_text(entry.read_text()[:-20])
    assert _read(root, cache, monkeypatch) == fresh
    assert all(json.loads(e.read_text())["key"] == e.stem for e in entries)


def test_an_edited_or_wrong_document_is_checked_afresh(tmp_path, monkeypatch):
    root, cache = edited_copy(tmp_path), tmp_path / "cache"
    _read(root, cache, monkeypatch)
    kept = set(cache.glob("*.json"))
    settings = root / "genesis.yaml"
    settings.write_text(settings.read_text() + "\nno_such_key: 1\n")
    problems, _ = _read(root, cache, monkeypatch)
    assert any(p.file == "genesis.yaml" and "no_such_key" in p.message for p in problems)
    assert set(cache.glob("*.json")) == kept              # a document with a problem is never kept
    for entry in kept:                                    # an entry naming another key is not used
        entry.write_text(json.dumps({"key": "0" * 64, "data": {}}))
    problems, _ = _read(root, cache, monkeypatch)
    assert any(p.file == "genesis.yaml" and "no_such_key" in p.message for p in problems)
    settings.write_text(settings.read_text().replace("\nno_such_key: 1\n", ""))
    assert _read(root, cache, monkeypatch) == _read(root, "", monkeypatch)


def test_the_cache_keeps_at_most_its_bound(tmp_path, monkeypatch):
    from genesis.config import checkcache

    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(checkcache, "MAX_ENTRIES", 10)
    keys = [checkcache.document_key("tier", f"rank: {n}\n") for n in range(11)]
    for n, key in enumerate(keys):
        checkcache.keep(key, {"rank": n})
        if n < 10:   # written a second apart (file times are too coarse to order writes this close)
            os.utime(tmp_path / "cache" / f"{key}.json", (1_700_000_000 + n, 1_700_000_000 + n))
    assert len(list((tmp_path / "cache").glob("*.json"))) == 6        # the eleventh write removed the older five
    assert [checkcache.kept(key) is None for key in keys] == [True] * 5 + [False] * 6
