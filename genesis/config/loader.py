"""Find and read every file of a configuration folder.

Layout: genesis.yaml, tiers/*.yaml, rules/*.yaml, alerts.yaml, strategies.yaml.
Each file is parsed with positions and checked against its schema, then every key the
file leaves out that its schema gives a default is filled in (`Document.data`); what the
user wrote stays in `Document.given` for checks that tell "given" from "left out". The
documents and every problem found so far are returned together. Nothing filled in is
ever written back to a file (`genesis set` edits the text, genesis/config/edit.py).
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genesis.config.checkcache import document_key, keep, kept_entry
from genesis.config.problems import Problem
from genesis.config.yamlsrc import Mark, SourceMap, YamlError, load_yaml
from genesis.paths import SETTINGS_FILE


@dataclass
class Document:
    """One parsed configuration file."""

    file: str            # path relative to the config folder, as shown in messages
    kind: str
    data: Any            # the file's data with schema defaults filled in
    smap: SourceMap      # positions of what the file holds (filled-in keys have none)
    bad_paths: list = field(default_factory=list)  # paths with schema errors
    given: Any = None    # the data as written, before defaults were filled in
    text_digest: str = ""  # SHA-256 of the file's bytes (the configuration's digest is made of these)

    def ok(self, *prefix) -> bool:
        """True when no schema error lies at or below `prefix` (or above it)."""
        n = len(prefix)
        return not any(p[:n] == prefix or prefix[: len(p)] == p for p in self.bad_paths)

    def part(self, *path):
        """The value at `path`, or None when missing or broken by a schema error."""
        if not isinstance(self.data, dict) or not self.ok(*path):
            return None
        cur = self.data
        for key in path:
            if not isinstance(cur, dict) or key not in cur:
                return None
            cur = cur[key]
        return cur

    def written(self, *path):
        """The value at `path` as the file writes it: None when the file leaves it out."""
        cur = self.given
        for key in path:
            if isinstance(cur, dict) and key in cur:
                cur = cur[key]
            elif isinstance(cur, list) and isinstance(key, int) and 0 <= key < len(cur):
                cur = cur[key]
            else:
                return None
        return cur

    def mark(self, path, key: bool = False) -> Mark:
        """Position of a value (or of its key)."""
        return self.smap.key(tuple(path)) if key else self.smap.value(tuple(path))

    def problem(self, path, message: str, key: bool = False, offset: int | None = None) -> Problem:
        """A Problem at `path`; `offset` points at a character inside a text value."""
        if offset is not None and not key:
            mark = self.smap.inside(tuple(path), offset)
        else:
            mark = self.mark(path, key)
        return Problem(self.file, mark.line, mark.col, message)


@dataclass
class ConfigFiles:
    """Every document of a configuration folder, and the problems found reading them."""

    root: Path
    settings: Document | None = None
    tiers: dict[str, Document] = field(default_factory=dict)
    tier_files: set = field(default_factory=set)  # every tiers/*.yaml stem, readable or not
    rulebooks: list[Document] = field(default_factory=list)
    strategies: Document | None = None
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0

    def documents(self) -> list[Document]:
        """All documents that parsed."""
        docs = [self.settings, *self.tiers.values(), *self.rulebooks, self.strategies]
        return [d for d in docs if d is not None]

    def digest(self) -> str:
        """SHA-256 of every document read (its path, kind and bytes): the configuration's digest."""
        digest = hashlib.sha256()
        for doc in self.documents():
            digest.update(f"{doc.file}\0{doc.kind}\0{doc.text_digest}\n".encode())
        return digest.hexdigest()

    def routing(self) -> dict:
        """alerts.yaml `routing`: severity (or route) -> channel names."""
        return next((rb.data["routing"] for rb in self.rulebooks if rb.kind == "alerts"), {})


def _read(root: Path, path: Path, kind: str, out: ConfigFiles) -> Document | None:
    rel = path.relative_to(root).as_posix()
    out.files_checked += 1
    try:
        raw = path.read_bytes()
    except OSError as exc:
        out.problems.append(Problem(rel, 1, 1, f"cannot read file: {exc.strerror or exc}"))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - raw.rfind(b"\n", 0, exc.start)
        out.problems.append(Problem(rel, line, col, f"file is not UTF-8 text: byte 0x{raw[exc.start]:02x} "
                                                    "cannot be read; save the file as UTF-8"))
        return None
    key = document_key(kind, text)
    entry = kept_entry(key)
    if entry is not None and "given" in entry and "smap" in entry:
        # this very text was read and passed before: no YAML parse, no schema walk (genesis/config/checkcache.py)
        return Document(rel, kind, entry["data"], SourceMap.from_json(entry["smap"], text), [], entry["given"],
                        hashlib.sha256(raw).hexdigest())
    try:
        data, smap = load_yaml(text, rel)
    except YamlError as exc:
        out.problems.append(Problem(rel, exc.mark.line, exc.mark.col, exc.message))
        return None
    if data is None:
        out.problems.append(Problem(rel, 1, 1, "file is empty"))
        return None
    # jsonschema is imported only when a document is checked afresh
    from genesis.config.defaults import fill_defaults  # noqa: PLC0415
    from genesis.config.schemas import validate_document  # noqa: PLC0415

    schema_problems, bad_paths = validate_document(kind, data, smap, rel)
    out.problems.extend(schema_problems)
    given = copy.deepcopy(data)
    fill_defaults(kind, data)
    if not schema_problems and not bad_paths:
        keep(key, data, given=given, smap=smap.to_json())
    return Document(rel, kind, data, smap, bad_paths, given, hashlib.sha256(raw).hexdigest())


def load_config_files(root: Path) -> ConfigFiles:
    """Read and schema-check every file under `root`."""
    root = Path(root)
    out = ConfigFiles(root)
    required = [(SETTINGS_FILE, "settings"), ("alerts.yaml", "alerts"), ("strategies.yaml", "strategies")]
    for name, kind in required:
        path = root / name
        if not path.is_file():
            out.problems.append(Problem(name, 1, 1, f"missing file: {name} must exist in {root}"))
            continue
        doc = _read(root, path, kind, out)
        if kind == "settings":
            out.settings = doc
        elif kind == "alerts" and doc:
            out.rulebooks.append(doc)
        elif kind == "strategies":
            out.strategies = doc
    for folder, kind in (("tiers", "tier"), ("rules", "rulebook")):
        files = sorted((root / folder).glob("*.yaml")) if (root / folder).is_dir() else []
        if not files:
            out.problems.append(Problem(folder + "/", 1, 1, f"no {folder}/*.yaml files found in {root}"))
        for path in files:
            if kind == "tier":
                out.tier_files.add(path.stem)
            doc = _read(root, path, kind, out)
            if doc is None:
                continue
            if kind == "tier":
                out.tiers[path.stem] = doc
            else:
                out.rulebooks.append(doc)
    return out
