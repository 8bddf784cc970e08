"""Compiled code kept by digest, so that a second start does not compile again.

Compiling a configuration's rule set for a tier rewrites and compiles each of its
expressions (about 380 calls of compile() per tier for the bundled configuration). A
`CodeCache` is the store of one such compilation: values made once (Python source,
code objects) are looked up by exactly what made them and, when anything was made, the
whole store is written to one file of the cache folder (genesis/config/checkcache.py's
folder, $GENESIS_CACHE_DIR) named by a key the caller computes from every input. The
key includes `code_digest()`: Genesis's version, the Python version and bytecode magic
(code objects are marshalled), and the source of the modules that generate the code.

A file is used only when its checksum, its format mark and its key read back; anything
else (missing, truncated, corrupt, another Python's) is a miss, and the file is written
again whole (a temporary file renamed into place). A folder that cannot be written is
no error: nothing is kept. Past MAX_FILES files the older half is removed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import sys
from pathlib import Path
from typing import Callable

from genesis import __version__
from genesis.config.checkcache import cache_dir, trim_folder

FORMAT = b"genesis-code-1\n"
SUFFIX = ".code"
MAX_FILES = 200   # a sweep writes one per trial's configuration and tier
_CHECKSUM = 32    # bytes of SHA-256 after FORMAT


def code_digest(sources: list[Path]) -> bytes:
    """Digest of what decides compiled code besides its inputs: Genesis's version, the
    Python version and bytecode magic, and the bytes of each of `sources`."""
    digest = hashlib.sha256(f"genesis {__version__}\npython {sys.version}\n".encode())
    digest.update(importlib.util.MAGIC_NUMBER)
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


class CodeCache:
    """The kept values of one compilation, under `key` (None: nothing is read or kept)."""

    def __init__(self, key: str | None):
        self.key = key
        self.entries: dict = {}
        self.hits = 0
        self.made = 0
        self.folder = cache_dir() if key is not None else None
        if self.folder is not None:
            self.entries = self._read()

    def _read(self) -> dict:
        try:
            blob = (self.folder / f"{self.key}{SUFFIX}").read_bytes()
        except OSError:
            return {}
        body = blob[len(FORMAT) + _CHECKSUM:]
        if not blob.startswith(FORMAT) or blob[len(FORMAT):len(FORMAT) + _CHECKSUM] != hashlib.sha256(body).digest():
            return {}
        try:
            key, entries = marshal.loads(body)
        except (EOFError, ValueError, TypeError):
            return {}
        return entries if key == self.key and isinstance(entries, dict) else {}

    def get(self, what: tuple, make: Callable):
        """The value kept for `what` (a tuple naming everything that decides it), else make() kept."""
        try:
            value = self.entries[what]
        except KeyError:
            value = self.entries[what] = make()
            self.made += 1
            return value
        self.hits += 1
        return value

    def save(self) -> None:
        """Write the store when something was made (whole or not at all; failures are ignored)."""
        if self.folder is None or not self.made:
            return
        try:
            import tempfile  # noqa: PLC0415 - only a miss writes; a warm start reads

            body = marshal.dumps((self.key, self.entries))
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(FORMAT + hashlib.sha256(body).digest() + body)
                os.replace(temp, self.folder / f"{self.key}{SUFFIX}")
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            self.made = 0
            trim_folder(self.folder, f"*{SUFFIX}", MAX_FILES)
        except (OSError, ValueError):
            return
