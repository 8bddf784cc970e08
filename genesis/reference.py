"""Render docs/reference.md from the JSON Schemas and the engine vocabulary, so that
every configuration key is documented with its type, unit and default, and the
document cannot drift from what the validator enforces."""
from __future__ import annotations

from genesis import vocabulary as voc
from genesis.config.checks import _OPTIONS
from genesis.config.schemas import KINDS, all_schemas

_FILES = {
    "settings": "genesis.yaml",
    "tier": "tiers/*.yaml",
    "rulebook": "rules/*.yaml",
    "alerts": "alerts.yaml",
    "strategies": "strategies.yaml",
    "ruletest": "rule_tests/*.yaml",
    "commands": "genesis replay --commands SCRIPT",
}


def _resolve(file: str, node: dict) -> tuple[str, dict]:
    """Follow $ref until a node without one; merge the referring node's own description."""
    schemas = all_schemas()
    while "$ref" in node:
        ref = node["$ref"]
        target_file, _, pointer = ref.partition("#")
        target_file = target_file or file
        target = schemas[target_file]
        for part in filter(None, pointer.split("/")):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
        file = target_file
    return file, node


def _type_text(file: str, node: dict) -> str:
    file, node = _resolve(file, node)
    if "enum" in node:
        return " / ".join(f"`{v}`" for v in node["enum"])
    if "anyOf" in node:
        return " or ".join(_type_text(file, n) for n in node["anyOf"])
    t = node.get("type")
    if t == "array":
        return f"list of {_type_text(file, node.get('items', {}))}"
    if node.get("x-unit") == "duration":
        return "duration"
    if t == "string" and "pattern" in node:
        return "name" if "identifier" in str(node.get("pattern")) or "a-z" in node["pattern"] else "text (pattern)"
    if isinstance(t, list):
        return " or ".join(t)
    if t == "object" and "additionalProperties" in node and isinstance(node["additionalProperties"], dict) \
            and "properties" not in node:
        return "mapping of name → entry"
    return t or "any"


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _default(node: dict, required: bool) -> str:
    if required:
        return "**required**"
    if "default" in node:
        d = node["default"]
        if d is None:   # nothing is filled in; x-when-absent says what then applies
            return node.get("x-when-absent", "none")
        if d == "":
            return '`""`'
        if isinstance(d, bool):
            return str(d).lower()
        return f"`{d}`" if not isinstance(d, str) or d.replace(".", "").replace("-", "").isalnum() or " " not in d \
            else d
    return "none"


def _rows(file: str, node: dict, prefix: str, out: list, seen: dict) -> None:
    file, node = _resolve(file, node)
    props = dict(node.get("properties", {}))
    required = set(node.get("required", []))
    for key, sub in props.items():
        if sub is True:  # listed for additionalProperties: defined through a $ref alongside
            continue
        sub_file, full = _resolve(file, sub)
        path = f"{prefix}{key}"
        unit = full.get("x-unit", "")
        desc = full.get("description", "")
        out.append(f"| `{path}` | {_cell(_type_text(file, sub))} | {unit} | {_cell(_default(full, key in required))}"
                   f" | {_cell(desc)} |")
        ident = (file, id(full))
        if ident in seen:
            continue
        seen[ident] = full   # kept alive: a merged $ref node's id must not be reused by the next
        if full.get("type") == "object" and "properties" in full:
            _rows(sub_file, full, path + ".", out, seen)
        elif full.get("type") == "array" and isinstance(full.get("items"), dict):
            item_file, items = _resolve(sub_file, full["items"])
            if items.get("type") == "object" and "properties" in items:
                _rows(item_file, items, path + "[].", out, seen)
        elif isinstance(full.get("additionalProperties"), dict):
            entry_file, entry = _resolve(sub_file, full["additionalProperties"])
            if entry.get("type") == "object" and "properties" in entry:
                _rows(entry_file, entry, path + ".<name>.", out, seen)


def _table(file: str, node: dict, prefix: str = "") -> list[str]:
    out = ["| key | type | unit | default | meaning |", "|---|---|---|---|---|"]
    rows: list[str] = []
    _rows(file, node, prefix, rows, {})
    # rule books include the shared body through $ref next to their own properties
    if "$ref" in node:
        _rows(file, {"$ref": node["$ref"]}, prefix, rows, {})
    return out + rows


def strategy_parameters() -> str:
    """The parameters of every strategy kind as Markdown tables (in docs/reference.md and,
    verbatim, in the README: `genesis docs --strategies`)."""
    schema_file = KINDS["strategies"]
    schema = all_schemas()[schema_file]
    parts: list[str] = []
    for sk in schema["properties"]["strategies"]["items"]["properties"]["kind"]["enum"]:
        parts += [f"### `params` of `{sk}`", "", schema["$defs"][sk]["description"], ""]
        parts += _table(schema_file, schema["$defs"][sk], "params.")
        parts.append("")
    return "\n".join(parts)


def execution_parameters() -> str:
    """The keys of a tier's `execution:` section (the execution algorithms) as a Markdown
    table (in the README, verbatim: `genesis docs --strategies`)."""
    schema_file = KINDS["tier"]
    node = all_schemas()[schema_file]["properties"]["execution"]
    return "\n".join(_table(schema_file, node, "execution.")) + "\n"


def render_reference() -> str:
    """The whole configuration reference as Markdown."""
    schemas = all_schemas()
    common = "common.schema.json"
    parts = [
        "# Configuration reference",
        "",
        "Generated by `genesis docs -o docs/reference.md` from `schema/*.json` and",
        "`genesis/vocabulary.py`; a test fails when this file is out of date. Units: USD is the",
        "quote currency (USDT), % is percent (5 means 5%), durations are written `500ms`, `30s`,",
        "`5m`, `1h`, `7d` or compound, largest unit first (`1h30m`, `4h1s`, `1d2h`). \"required\" keys",
        "have no default.",
        "",
    ]
    for kind, schema_file in KINDS.items():
        schema = schemas[schema_file]
        parts += [f"## `{_FILES[kind]}`", "", schema.get("description", ""), "",
                  f"Schema: `schema/{schema_file}`.", ""]
        parts += _table(schema_file, schema)
        parts.append("")
        if kind == "strategies":
            parts += strategy_parameters().split("\n")
        if kind == "commands":
            for ck in schema["$defs"]["command"]["properties"]["kind"]["enum"]:
                parts += [f"### `kind: {ck}`", "", schema["$defs"][ck]["description"], ""]
                fields = _table(schema_file, schema["$defs"][ck])
                parts += fields if len(fields) > 2 else ["No other fields."]
                parts.append("")
    for title, name in (("Metrics", "metric"), ("Flags", "flag"), ("Rules", "rule")):
        node = schemas[common]["$defs"][name]
        parts += [f"## {title} (in `rules/*.yaml` and `alerts.yaml`)", "", node["description"], ""]
        parts += _table(common, node)
        parts.append("")
    parts += ["### Metric primitives and their options", "", "| primitive | needs | may take |", "|---|---|---|"]
    for prim, (required, optional) in _OPTIONS.items():
        needs = ", ".join(f"`{r.replace('|', '` or `')}`" for r in sorted(required)) or "—"
        parts.append(f"| `{prim}` | {_cell(needs)} | {', '.join(f'`{o}`' for o in sorted(optional)) or '—'} |")
    parts += ["", "## Actions", "",
              "Bare words: " + ", ".join(f"`{a}`" for a in voc.BARE_ACTIONS) + ". The others are one-key mappings.",
              "", "| action | what it does |", "|---|---|"]
    parts += [f"| `{a}` | {_cell(d)} |" for a, d in voc.ACTIONS.items()]
    for name in ("lock_action", "scale_size_action", "resize_action", "require_action"):
        node = schemas[common]["$defs"][name]
        parts += ["", f"### `{name.removesuffix('_action')}`", "", node["description"], ""]
        parts += _table(common, node)
    parts += ["", "## Expressions", "", schemas[common]["$defs"]["expression"]["description"], "",
              "Functions: " + ", ".join(f"`{f}`" for f in voc.FUNCTIONS) + ". Stages run in this order: "
              + " → ".join(f"`{s}`" for s in voc.STAGES) + ".", "",
              "## Account metrics (computed by the engine)", "", "| name | unit | meaning |", "|---|---|---|"]
    parts += [f"| `{n}` | {u} | {_cell(d)} |" for n, (u, d) in voc.ACCOUNT_METRICS.items()]
    parts += ["", "## Event kinds and fields", "",
              "Every event also has " + ", ".join(f"`{f}` ({t})" for f, (t, _) in voc.COMMON_FIELDS.items()) + ".",
              "", "| event | meaning | fields |", "|---|---|---|"]
    for kind, (desc, fields) in voc.EVENTS.items():
        shown = ", ".join(f"`{f}` ({t}): {d}" for f, (t, d) in fields.items()) or "—"
        parts.append(f"| `{kind}` | {_cell(desc)} | {_cell(shown)} |")
    return "\n".join(parts) + "\n"
