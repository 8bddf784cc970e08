"""Durations: single (30s) and compound (4h1s, 1d2h), read the same by the engine and
the schemas, written back by format_duration."""
from __future__ import annotations

import re

import pytest

from genesis.config.schemas import all_schemas
from genesis.durations import format_duration, parse_duration

GOOD = {"500ms": 0.5, "30s": 30, "90s": 90, "5m": 300, "1h": 3600, "7d": 604800, "4h1s": 14401,
        "1d2h": 93600, "1h30m": 5400, "1m30s500ms": 90.5, "1.5h": 5400, "0s": 0}
BAD = ["", "5", "s", "1s4h", "1h1h", "30m1h", "1 h", "4h 1s", "h1", "-1s", "1w"]


@pytest.mark.parametrize("text,seconds", GOOD.items())
def test_a_duration_is_read_in_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", BAD)
def test_a_malformed_duration_is_refused_with_examples(text):
    with pytest.raises(ValueError, match="largest unit first: 1h30m, 4h1s, 1d2h"):
        parse_duration(text)


def test_the_schemas_accept_exactly_what_the_engine_reads():
    pattern = re.compile(all_schemas()["common.schema.json"]["$defs"]["duration"]["pattern"])
    for text in GOOD:
        assert pattern.search(text), text
    for text in BAD:
        assert not pattern.search(text), text


@pytest.mark.parametrize("ms", [0, 1, 1000, 14_401_000, 93_600_000, 90_500, 172_800_001])
def test_format_duration_writes_what_parse_duration_reads(ms):
    assert parse_duration(format_duration(ms)) * 1000 == pytest.approx(ms)
    assert format_duration(14_401_000) == "4h1s"


def test_a_rule_book_may_write_compound_durations(tmp_path):
    """`for:`, `cooldown:` and a metric `window:` in compound form validate and mean what they say."""
    import shutil  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from genesis.config.checks import check_config  # noqa: PLC0415

    root = Path(__file__).resolve().parents[1]
    for name in ("genesis.yaml", "alerts.yaml", "strategies.yaml"):
        shutil.copy(root / name, tmp_path / name)
    for folder in ("rules", "tiers"):
        shutil.copytree(root / folder, tmp_path / folder)
    tilt = tmp_path / "rules" / "tilt.yaml"
    text = tilt.read_text()
    assert "cooldown: 30m" in text and "window: 60m" in text
    tilt.write_text(text.replace("cooldown: 30m", "cooldown: 29m60s", 1).replace("window: 60m", "window: 1h", 1))
    result = check_config(tmp_path)
    assert result.ok, result.problems
    assert any(rule.cooldown_s == 1800 for rule in result.rules)
