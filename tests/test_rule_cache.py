"""Compiled rule sets are kept by digest (genesis/expr/codecache.py, genesis/config/ruleset.py):
a second start compiles nothing, any change of the inputs changes the key, a damaged
store is ignored and written again, and what is compiled is the same with or without it."""
from __future__ import annotations

import gzip
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

from genesis.config.checks import check_config
from genesis.config.ruleset import code_sources, compile_ruleset, ruleset_key
from genesis.expr.codecache import CodeCache, code_digest
from scenario_helpers import edited_copy

ROOT = Path(__file__).resolve().parents[1]


def _compiled(ruleset) -> dict:
    """Everything compiled in a rule set: each expression's Python and each function's code."""
    def code(fn):
        c = fn.__code__
        return c.co_code, c.co_consts, c.co_names, c.co_name

    out = {("derived", name): (e.python, code(e.fn)) for name, e in ruleset.derived}
    out.update({("metric", key): (e.python, code(e.fn)) for key, e in ruleset.metric_exprs.items()})
    for stage, rules in ruleset.rules.items():
        out[("stage", stage)] = code(ruleset.stage_functions[stage])
        for r in rules:
            out[("rule", r.rule.id)] = ([c.python for c in r.conditions], code(r.check))
            for part in ("then", "resolve"):
                out[(part, r.rule.id)] = [({k: (e.python, code(e.fn)) for k, e in a.params.items()},
                                           [t and (t.python, code(t.fn)) for t in a.templates])
                                          for a in getattr(r, part)]
    return out


def test_a_second_compile_takes_everything_from_the_cache_and_compiles_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_CACHE_DIR", "")
    config = check_config(ROOT)
    reference = {tier: _compiled(compile_ruleset(config, tier)) for tier in config.tiers}   # no cache
    assert ruleset_key(config, "sniper") is None
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / "cache"))
    for tier in config.tiers:
        first = CodeCache(ruleset_key(config, tier))
        assert first.entries == {}
        assert _compiled(compile_ruleset(config, tier, first)) == reference[tier]
        second = CodeCache(ruleset_key(config, tier))            # as the next start reads it
        assert len(second.entries) > 100
        assert _compiled(compile_ruleset(config, tier, second)) == reference[tier]
        assert second.made == 0 and second.hits >= len(second.entries)
    assert len(list((tmp_path / "cache").glob("*.code"))) == len(config.tiers)


def test_validate_started_again_uses_the_kept_rule_sets(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "GENESIS_CACHE_DIR": str(tmp_path / "cache")}

    def validate() -> str:
        done = subprocess.run([sys.executable, "-m", "genesis", "validate", "--config", str(ROOT)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    validate()
    stores = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.code")}
    assert len(stores) == 3                                      # one per tier
    assert validate().startswith("OK:")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.code")} == stores   # nothing compiled


def test_a_changed_threshold_or_code_changes_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / "cache"))
    root = edited_copy(tmp_path)
    before = check_config(root)
    keys = {tier: ruleset_key(before, tier) for tier in before.tiers}
    assert ruleset_key(check_config(root), "sniper") == keys["sniper"]   # the same files: the same key
    compile_ruleset(before, "sniper")
    tier_file = root / "tiers" / "sniper.yaml"
    tier_file.write_text(tier_file.read_text().replace("max_position_pct: 5 ", "max_position_pct: 4 "))
    after = check_config(root)
    assert after.ok and after.tiers["sniper"]["limits"]["max_position_pct"] == 4
    assert all(ruleset_key(after, tier) != keys[tier] for tier in after.tiers)   # the configuration's digest
    rules = {r.rule.id: r for r in compile_ruleset(after, "sniper").rules["pre_trade"]}
    assert any("* 4 / 100" in c.python for r in rules.values() for c in r.conditions)
    assert not any("* 5 / 100" in c.python for r in rules.values() for c in r.conditions)

    sources = code_sources()
    assert {p.name for p in sources} >= {"compiler.py", "checker.py", "codecache.py", "ruleset.py"}
    copies = []
    for source in sources:
        copies.append(tmp_path / "code" / source.parent.name / source.name)
        copies[-1].parent.mkdir(parents=True, exist_ok=True)
        copies[-1].write_bytes(source.read_bytes())
    unchanged = code_digest(copies)
    assert unchanged == code_digest(sources)
    compiler = next(p for p in copies if p.name == "compiler.py")
    compiler.write_text(compiler.read_text() + "\n# edited\n")
    assert code_digest(copies) != unchanged


def test_a_damaged_or_foreign_store_is_ignored_and_written_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(cache))
    config = check_config(ROOT)
    reference = _compiled(compile_ruleset(config, "hunter"))
    key = ruleset_key(config, "hunter")
    store = cache / f"{key}.code"
    whole = store.read_bytes()
    assert whole.startswith(b"genesis-code-1\n")
    kept = len(CodeCache(key).entries)
    other = cache / "other.code"
    damages = [whole[: len(whole) // 2],                                        # truncated
               whole[:-40] + bytes(b ^ 0xFF for b in whole[-40:]),                # bytes changed
               b"",                                                               # empty
               b"genesis-code-1\n" + b"\0" * 32 + b"not marshal at all"]           # a bad checksum
    CodeCache("other").save()   # nothing made: nothing written
    assert not other.exists()
    for damaged in damages:
        store.write_bytes(damaged)
        again = CodeCache(key)
        assert again.entries == {}
        assert _compiled(compile_ruleset(config, "hunter", again)) == reference
        assert again.made == 0 and len(CodeCache(key).entries) == kept           # written again, whole
    foreign = CodeCache("a-key-of-its-own")   # a whole store under another key is no hit
    foreign.get(("x",), lambda: 1)
    foreign.save()
    shutil.copy(cache / "a-key-of-its-own.code", store)
    assert CodeCache(key).entries == {}


def test_a_cache_folder_that_cannot_be_written_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(blocker / "cache"))
    config = check_config(ROOT)
    monkeypatch.setenv("GENESIS_CACHE_DIR", "")
    reference = _compiled(compile_ruleset(config, "sniper"))
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(blocker / "cache"))
    assert _compiled(compile_ruleset(config, "sniper")) == reference


def test_a_replay_reports_the_same_with_and_without_the_cache(tmp_path):
    feed = tmp_path / "part.gz"   # the sample's first 3,000 messages
    with gzip.open(ROOT / "genesis" / "data" / "sample" / "btcusdt_20240808_sample.gz", "rt") as source:
        feed.write_bytes(gzip.compress("".join(itertools.islice(source, 3000)).encode()))

    def replay(cache: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "genesis", "replay", "--json", "--tier", "hunter", str(feed)],
                              cwd=ROOT,
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "GENESIS_CONFIG": str(ROOT), "GENESIS_CACHE_DIR": cache})
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        report.pop("events_per_second", None)
        return report

    off = replay("")
    replay(str(tmp_path / "cache"))
    assert len(list((tmp_path / "cache").glob("*.code"))) == 1
    assert replay(str(tmp_path / "cache")) == off
