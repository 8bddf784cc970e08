"""API credentials for live trading: read from the environment, never printed.

The key and secret come from `GENESIS_API_KEY` and `GENESIS_API_SECRET`. A `Secret`
shows as `***` in every repr and str, so a stray log line or error message cannot
leak it; `redact()` strips known secrets and signature query strings from any text
that is about to be shown or journaled.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

KEY_VAR = "GENESIS_API_KEY"
SECRET_VAR = "GENESIS_API_SECRET"
_SIGNATURE = re.compile(r"(signature|apiKey|X-MBX-APIKEY|listenKey|secret)([=:\"' ]+)[^&\s\"',}]+", re.IGNORECASE)


class Secret:
    """A string that never shows itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The value, for the one place that signs requests."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    """An exchange API key pair."""

    key: Secret
    secret: Secret

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible name for the account (journal run identity)."""
        return hashlib.sha256(self.key.reveal().encode()).hexdigest()[:12]


class MissingCredentials(Exception):
    """Live mode asked for without keys."""


def from_environment(env: dict | None = None) -> Credentials:
    """The key pair from GENESIS_API_KEY / GENESIS_API_SECRET; raises MissingCredentials
    naming what is missing (never a value)."""
    env = os.environ if env is None else env
    key, secret = env.get(KEY_VAR, "").strip(), env.get(SECRET_VAR, "").strip()
    missing = [name for name, value in ((KEY_VAR, key), (SECRET_VAR, secret)) if not value]
    if missing:
        raise MissingCredentials(f"live mode needs {' and '.join(missing)} in the environment")
    return Credentials(Secret(key), Secret(secret))


def redact(text: str, *secrets: Secret | str) -> str:
    """`text` with every given secret and every signature/key parameter replaced by ***."""
    out = str(text)
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value and len(value) >= 4:
            out = out.replace(value, "***")
    return _SIGNATURE.sub(lambda m: m.group(1) + m.group(2) + "***", out)
