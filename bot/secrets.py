"""Keep secrets out of everything we print, log, record or publish.

`redact(text)` replaces the value of every secret-looking environment variable (the named ones, and any
whose name ends in _TOKEN, _PASSWORD or _SECRET) with `***`. Use it on any text that leaves the process
and may carry an outside message: exceptions from git or HTTP libraries, crash logs, reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

MASK = "***"
SECRET_NAMES = ("CHRONOPS_GITHUB_TOKEN", "GITHUB_TOKEN", "SMTP_PASSWORD")
SECRET_SUFFIXES = ("_TOKEN", "_PASSWORD", "_SECRET")
# Shorter values are left alone: masking every "1" or "yes" would garble the text and protect nothing.
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in SECRET_NAMES or upper.endswith(SECRET_SUFFIXES)


def secret_values(env: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> list[str]:
    """The values to mask, longest first (so a secret that contains another is masked whole)."""
    source = os.environ if env is None else env
    values = {v for k, v in source.items() if is_secret_name(k)} | set(extra)
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, *, env: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> str:
    """`text` with every secret value (from `env`, default os.environ, plus `extra`) replaced by ***."""
    for value in secret_values(env, extra):
        text = text.replace(value, MASK)
    return text
