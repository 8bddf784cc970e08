"""genesis.config.yamlsrc.load_yaml: plain data plus a 1-based position for every key
and value, and a clear YamlError (with a position) for anything Genesis refuses."""
from __future__ import annotations

import pytest

from genesis.config.yamlsrc import MAX_DEPTH, MAX_FILE_BYTES, Mark, YamlError, load_yaml

DOC = """\
top:
  inner: 5
  list:
    - first
    - {k: v}
name: 'quoted'
"""


def refused(text: str) -> YamlError:
    """The YamlError load_yaml raises for `text`."""
    with pytest.raises(YamlError) as info:
        load_yaml(text)
    return info.value


# ----------------------------------------------------------------------------- data and positions
def test_data_is_plain_python():
    data, _ = load_yaml(DOC)
    assert data == {"top": {"inner": 5, "list": ["first", {"k": "v"}]}, "name": "quoted"}


@pytest.mark.parametrize("path, mark", [
    (("top", "inner"), Mark(2, 10)),
    (("top", "list", 0), Mark(4, 7)),
    (("top", "list", 1), Mark(5, 7)),
    (("top", "list", 1, "k"), Mark(5, 11)),
    (("name",), Mark(6, 7)),
])
def test_value_positions_are_one_based(path, mark):
    _, smap = load_yaml(DOC)
    assert smap.value(path) == mark


@pytest.mark.parametrize("path, mark", [
    (("top",), Mark(1, 1)),
    (("top", "inner"), Mark(2, 3)),
    (("top", "list"), Mark(3, 3)),
    (("top", "list", 1, "k"), Mark(5, 8)),
    (("name",), Mark(6, 1)),
])
def test_key_positions_point_at_the_key(path, mark):
    _, smap = load_yaml(DOC)
    assert smap.key(path) == mark


def test_document_root_is_at_line_1_col_1():
    _, smap = load_yaml(DOC)
    assert smap.value(()) == Mark(1, 1)


def test_unknown_path_falls_back_to_nearest_located_ancestor():
    _, smap = load_yaml(DOC)
    assert smap.value(("top", "inner", "missing", 3)) == smap.value(("top", "inner"))
    assert smap.value(("nowhere",)) == Mark(1, 1)


def test_key_of_a_list_item_falls_back_to_its_value():
    _, smap = load_yaml(DOC)
    assert smap.key(("top", "list", 0)) == smap.value(("top", "list", 0))


def test_quoted_scalar_style_is_recorded():
    _, smap = load_yaml(DOC)
    assert smap.scalar_styles[("name",)] == "'"
    assert smap.scalar_styles[("top", "inner")] is None


def test_positions_after_a_comment_and_blank_lines():
    _, smap = load_yaml("# comment\n\n\nkey:   value\n")
    assert smap.key(("key",)) == Mark(4, 1)
    assert smap.value(("key",)) == Mark(4, 8)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_document_is_none(text):
    data, smap = load_yaml(text)
    assert data is None
    assert smap.values == {}


# ----------------------------------------------------------------------------- keys stay names
@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "y", "n", "true", "false", "null", "~", "1", "1.5"])
def test_keys_keep_their_literal_text(word):
    data, _ = load_yaml(f"{word}: 1\n")
    assert data == {word: 1}


def test_on_key_of_a_rule_stays_a_string():
    data, _ = load_yaml("rules:\n  - id: x\n    on: fill\n")
    assert data["rules"][0]["on"] == "fill"
    assert True not in data["rules"][0]


# ----------------------------------------------------------------------------- duplicate keys
def test_duplicate_key_is_refused_at_the_second_one():
    error = refused("a: 1\nb: 2\na: 3\n")
    assert error.message == "duplicate key 'a' (first defined at line 1)"
    assert error.mark == Mark(3, 1)


def test_nested_duplicate_key_is_refused():
    error = refused("outer:\n  x: 1\n  y: 2\n  x: 3\n")
    assert error.message == "duplicate key 'x' (first defined at line 2)"
    assert error.mark == Mark(4, 3)


def test_quoted_and_plain_spellings_of_a_key_are_duplicates():
    error = refused('on: 1\n"on": 2\n')
    assert "duplicate key 'on'" in error.message
    assert error.mark == Mark(2, 1)


def test_same_key_in_different_mappings_is_fine():
    data, _ = load_yaml("a: {x: 1}\nb: {x: 2}\n")
    assert data == {"a": {"x": 1}, "b": {"x": 2}}


# ----------------------------------------------------------------------------- refused constructs
def test_merge_key_is_refused():
    error = refused("base: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n")
    assert "merge keys (<<) are not supported" in error.message
    assert error.mark == Mark(3, 3)


def test_plain_aliases_are_allowed():
    data, _ = load_yaml("a: &x 5\nb: *x\n")
    assert data == {"a": 5, "b": 5}


@pytest.mark.parametrize("text", ["a: [1, 2]\n? [x]\n: 1\n", "a: 1\n? {x: 1}\n: 2\n"], ids=["list", "mapping"])
def test_complex_key_is_refused(text):
    error = refused(text)
    assert error.message == "a key must be a plain name, not a list or mapping"
    assert error.mark.line == 2


@pytest.mark.parametrize("value", [
    "!!python/object/apply:os.system ['true']",
    "!!python/object:os.system {}",
    "!!python/name:os.system",
    "!!binary aGVsbG8=",
    "!!set {x}",
    "!!omap [{a: 1}]",
    "!custom text",
    "!custom [1, 2]",
])
def test_unsupported_tags_are_refused(value):
    error = refused(f"ok: 1\nbad: {value}\n")
    assert error.message.startswith("unsupported YAML tag")
    assert error.mark == Mark(2, 6)


def test_several_documents_are_refused():
    error = refused("a: 1\n---\nb: 2\n")
    assert "single document" in error.message
    assert error.mark.line == 2


def test_syntax_error_carries_its_position():
    error = refused("a: 1\nb: [1, 2\n")
    assert error.message.startswith("YAML syntax error: unclosed '['")
    assert error.mark == Mark(2, 4)  # the bracket that was never closed


def test_tab_indentation_is_a_syntax_error():
    error = refused("a:\n\tb: 1\n")
    assert error.message.startswith("YAML syntax error:")
    assert error.mark == Mark(2, 1)


# ----------------------------------------------------------------------------- scalars
@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z"])
def test_dates_stay_text(text):
    data, _ = load_yaml(f"when: {text}\n")
    assert data == {"when": text}


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_nan_is_refused(text):
    error = refused(f"ok: 1\nx: {text}\n")
    assert error.message == "NaN is not a valid number here"
    assert error.mark == Mark(2, 4)


def test_quoted_nan_is_text():
    data, _ = load_yaml("x: '.nan'\n")
    assert data == {"x": ".nan"}


@pytest.mark.parametrize("text, value", [("5", 5), ("2.5", 2.5), ("-3", -3), ("true", True), ("null", None),
                                         ("'5'", "5"), ("plain words", "plain words")])
def test_scalar_values(text, value):
    data, _ = load_yaml(f"x: {text}\n")
    assert data == {"x": value}
    assert type(data["x"]) is type(value)


# ----------------------------------------------------------------------------- size limits
def test_file_at_the_size_limit_loads():
    text = "x: " + "y" * (MAX_FILE_BYTES - 4) + "\n"
    assert len(text.encode("utf-8")) == MAX_FILE_BYTES
    data, _ = load_yaml(text)
    assert len(data["x"]) == MAX_FILE_BYTES - 4


def test_file_over_the_size_limit_is_refused():
    error = refused("x: " + "y" * (MAX_FILE_BYTES - 3) + "\n")
    assert error.message.startswith(f"file is larger than {MAX_FILE_BYTES} bytes")
    assert error.mark == Mark(1, 1)


def test_size_limit_counts_bytes_not_characters():
    text = "x: " + "\u00e9" * (MAX_FILE_BYTES // 2) + "\n"
    assert len(text) < MAX_FILE_BYTES < len(text.encode("utf-8"))
    assert "larger than" in refused(text).message


def test_alias_bomb_is_refused():
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    error = refused("\n".join(lines) + "\n")
    assert "alias bomb" in error.message


def test_nesting_beyond_the_limit_is_refused_at_its_position():
    depth = MAX_DEPTH + 5
    error = refused("ok: 1\nx: " + "[" * depth + "]" * depth + "\n")
    assert error.message == f"YAML nesting is too deep (more than {MAX_DEPTH} levels)"
    assert error.mark.line == 2


def test_nesting_within_the_limit_loads():
    depth = MAX_DEPTH - 2
    data, _ = load_yaml("x: " + "[" * depth + "]" * depth + "\n")
    assert isinstance(data["x"], list)


def test_very_deep_nesting_is_refused_without_recursion_error():
    error = refused("x: " + "[" * 5000 + "\n")
    assert "too deep" in error.message
