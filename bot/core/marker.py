"""The hidden machine-state comment in a pull-request body: `<!-- chronops-metadata {...} -->`.

One owner for writing and reading it (the PR body template, revert bodies, the GitHub forge): the JSON
is compact, sorted, and `--` is escaped so the text can never close the HTML comment early.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

METADATA_MARKER = "<!-- chronops-metadata"
_METADATA = re.compile(r"<!-- chronops-metadata (\{.*?\}) -->", re.DOTALL)


def metadata_json(meta: Mapping[str, Any]) -> str:
    """Compact JSON safe inside an HTML comment."""
    return json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), allow_nan=False).replace("--", "\\u002d\\u002d")


def metadata_comment(meta: Mapping[str, Any]) -> str:
    return f"{METADATA_MARKER} {metadata_json(meta)} -->"


def parse_metadata(body: str) -> dict[str, Any]:
    """The metadata of a body, or {} when it has none or it does not parse."""
    match = _METADATA.search(body)
    if not match:
        return {}
    try:
        data = json.loads(match.group(1))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
