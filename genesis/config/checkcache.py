"""Configuration documents already schema-checked and filled with defaults, kept by digest.

Reading a configuration spends most of its time in JSON Schema: checking each document,
then filling the defaults it leaves out. Both depend only on the document's text and on
the code and schemas that read it, so a document that passed is kept, filled (with the
data as written and the positions of its values, so that it is not even parsed again), in the
user's cache folder under a SHA-256 key of: Genesis's version; the source of the YAML
reader, the schema checker and the default filler; where jsonschema and referencing are
installed and when; every schema file; the file's kind and its text. The next read of
the same text under the same installation skips the YAML parse and both walks (and importing
PyYAML and jsonschema).

Only a document without a problem is kept: problems are always found afresh. An entry
is used only when it reads back whole and names its own key; anything else is a miss,
and is written again. The folder is $GENESIS_CACHE_DIR (empty: no cache), else
$XDG_CACHE_HOME/genesis/checked, else ~/.cache/genesis/checked (docs/startup.md).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from genesis import __version__
from genesis.paths import schema_dir

CACHE_ENV = "GENESIS_CACHE_DIR"
MAX_ENTRIES = 1000   # a sweep writes one entry per trial's edited file: past this, the oldest half goes
_CODE = ("yamlsrc.py", "schemas.py", "defaults.py", "checkcache.py")   # what decides a document's filled data
_LIBRARIES = ("jsonschema", "referencing", "yaml")


def cache_dir() -> Path | None:
    """The folder of kept documents, or None when caching is off or there is no home."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return Path(chosen) if chosen else None
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        return Path(base or Path.home() / ".cache") / "genesis" / "checked"
    except RuntimeError:   # no home directory to be found
        return None


@lru_cache(maxsize=1)
def _installation() -> bytes:
    """The digest of everything besides the text that decides a checked document."""
    digest = hashlib.sha256(f"genesis {__version__}\n".encode())
    here = Path(__file__).resolve().parent
    for name in _CODE:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    for library in _LIBRARIES:
        spec = importlib.util.find_spec(library)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        stamp = f"{origin} {origin.stat().st_mtime_ns}" if origin is not None else "absent"
        digest.update(f"{library} {stamp}\n".encode())
    for path in sorted(schema_dir().glob("*.schema.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


def document_key(kind: str, text: str) -> str | None:
    """The key of a document of `kind` with this text, or None when caching is off."""
    if cache_dir() is None:
        return None
    try:
        installation = _installation()
    except OSError:   # a source or schema file unreadable: no key, no cache
        return None
    digest = hashlib.sha256(installation)
    digest.update(kind.encode() + b"\0" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def kept(key: str | None) -> Any | None:
    """The filled data kept under `key`, or None (no entry, or one that does not read back whole)."""
    entry = kept_entry(key)
    return None if entry is None else entry["data"]


def kept_entry(key: str | None) -> dict | None:
    """The whole entry kept under `key`: its "key", its "data" and the parts kept with them
    (`keep`'s `parts`); None when there is none or it does not read back whole."""
    folder = cache_dir()
    if key is None or folder is None:
        return None
    try:
        entry = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or "data" not in entry:
        return None
    return entry


def keep(key: str | None, data: Any, **parts: Any) -> None:
    """Keep a checked, filled document under `key`, with any other JSON `parts` of it (the loader
    keeps the data as written and its source map); written whole or not at all; failures are ignored."""
    folder = cache_dir()
    if key is None or folder is None:
        return
    try:
        entry = {**parts, "key": key, "data": data}
        text = json.dumps(entry, allow_nan=True)
        if json.loads(text) != entry:   # a value JSON does not carry back unchanged: not kept
            return
        import tempfile  # noqa: PLC0415 - only a miss writes; a warm start reads

        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temp, folder / f"{key}.json")
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        trim_folder(folder, "*.json", MAX_ENTRIES)
    except (OSError, TypeError, ValueError):
        return


def trim_folder(folder: Path, pattern: str, keep: int) -> None:
    """Keep at most `keep` files matching `pattern` in a cache folder: past it, remove the
    older half (by when written)."""
    files = list(folder.glob(pattern))
    if len(files) <= keep:
        return
    dated = []
    for file in files:
        try:
            dated.append((file.stat().st_mtime_ns, file))
        except OSError:   # removed meanwhile by another process
            continue
    for _, file in sorted(dated)[:len(dated) // 2]:
        file.unlink(missing_ok=True)
