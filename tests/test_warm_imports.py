"""A warm start (the configuration read before, genesis/config/checkcache.py) imports only
what the command uses: `genesis replay` and `genesis validate` read every document, its
source map included, from the cache, so PyYAML is not imported; what only a miss, a
journal file, a snapshot, --trades or --plot needs (tempfile, secrets, pickle, csv, the
chart module) is imported where it is used. The documents read back are the ones read afresh."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import test_cli_startup as startup
from scenario_helpers import edited_copy

# imported by the first (cold) run, which parses and schema-checks every document
COLD_ONLY = ("yaml", "jsonschema", "genesis.config.defaults")
# never needed by a warm replay of a one-event file into a journal in memory
NOT_IN_WARM_REPLAY = (*COLD_ONLY, "secrets", "csv", "pickle", "genesis.engine.snapshots", "genesis.engine.chart")
# never needed by a warm validate (every rule set compiled before: nothing is written)
NOT_IN_WARM_VALIDATE = (*COLD_ONLY, "tempfile", "shutil", "secrets", "pickle", "genesis.engine.engine")


@pytest.fixture
def probe(monkeypatch):
    """test_cli_startup.loaded_after, reporting the modules named instead of its heavy ones."""
    def loaded_after(watched: tuple, *args: str, cache: Path) -> list[str]:
        monkeypatch.setattr(startup, "PROBE", startup.PROBE.replace(repr(startup.HEAVY), repr(watched)))
        return startup.loaded_after(*args, cache=cache)
    return loaded_after


def one_event(tmp_path: Path) -> Path:
    """A capture holding the bundled sample's first message only."""
    path = tmp_path / "one.gz"
    with gzip.open(startup.ROOT / "genesis" / "data" / "sample" / "btcusdt_20240808_sample.gz", "rt") as source:
        path.write_bytes(gzip.compress(source.readline().encode()))
    return path


def test_a_warm_replay_parses_no_yaml_and_imports_only_what_it_uses(tmp_path, probe):
    one, cache = one_event(tmp_path), tmp_path / "cache"
    cold = probe(NOT_IN_WARM_REPLAY, "replay", "--json", str(one), cache=cache)
    assert set(COLD_ONLY) <= set(cold)   # the probe sees them when they are used
    assert probe(NOT_IN_WARM_REPLAY, "replay", "--json", str(one), cache=cache) == []


def test_a_warm_validate_parses_no_yaml_and_writes_nothing(tmp_path, probe):
    cache = tmp_path / "cache"
    assert set(COLD_ONLY) <= set(probe(NOT_IN_WARM_VALIDATE, "validate", cache=cache))
    assert probe(NOT_IN_WARM_VALIDATE, "validate", cache=cache) == []


def test_documents_read_back_have_the_source_map_of_a_fresh_parse(tmp_path, monkeypatch):
    from genesis.config.loader import load_config_files

    root = edited_copy(tmp_path)
    monkeypatch.setenv("GENESIS_CACHE_DIR", "")
    fresh = load_config_files(root).documents()
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / "cache"))
    load_config_files(root)                        # checked, and kept
    kept = load_config_files(root).documents()     # read back: no parse
    assert [d.file for d in kept] == [d.file for d in fresh]
    for old, new in zip(fresh, kept):
        assert new.smap == old.smap and new.given == old.given and new.data == old.data, old.file
        assert new.smap.values and new.smap.spans   # something was located
        for path in new.smap.spans:                   # a mark inside a text value lands where it did
            assert new.problem(path, "x", offset=len(new.smap.scalars[path]) // 2) == \
                old.problem(path, "x", offset=len(old.smap.scalars[path]) // 2)
