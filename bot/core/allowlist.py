"""The deploy model allow-list: which `model_id`s may reach production. Pure: no file IO.

Patterns are shell-style globs (`amazon/chronos-t5-*`, `models/*`), matched case-sensitively against
the model id. A path-like id (absolute, `./x`, `../x`) is normalised first; it must stay inside the
workspace, so `models/../../etc` never matches `models/*`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from fnmatch import fnmatchcase


def normalize_model_ref(model_id: str, workspace: str | None = None) -> str | None:
    """The id to match: hub ids as given, paths relative to the workspace; None if it escapes it."""
    ref = model_id.strip().replace("\\", "/")
    if posixpath.isabs(ref):
        if workspace is None:
            return None
        root = posixpath.normpath(workspace.replace("\\", "/"))
        ref = posixpath.normpath(ref)
        if ref != root and not ref.startswith(root.rstrip("/") + "/"):
            return None
        ref = posixpath.relpath(ref, root)
    if ref.startswith(("./", "../")) or "/../" in ref or ref.endswith("/..") or ref == "..":
        ref = posixpath.normpath(ref)
    if ref == ".." or ref.startswith("../"):
        return None
    return ref


def allowlist_problem(model_id: str, patterns: Sequence[str], *, workspace: str | None = None) -> str | None:
    """None when `model_id` may be deployed, else why not (one clause, with the fix)."""
    ref = normalize_model_ref(model_id, workspace)
    shown = ", ".join(patterns) if patterns else "nothing"
    if ref is None:
        return (
            f"{model_id!r} is a directory outside the workspace (put the model under the workspace, "
            "e.g. models/<name>, and allow it in deploy.model_allowlist)"
        )
    if any(fnmatchcase(ref, p) for p in patterns):
        return None
    return f"{model_id!r} is not in deploy.model_allowlist (allowed: {shown}; add it to chronops.toml to allow it)"
