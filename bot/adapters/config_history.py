"""Which config was live when: read from the git history of configs/ (merge, squash and revert commits)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from bot.core.config import HORIZONS, config_hash, parse_config
from bot.workspace import Workspace


@dataclass(frozen=True)
class LiveConfig:
    """The config of one horizon live at a moment, and the base-branch commit that put it there."""

    horizon: str
    at: datetime
    ref: str | None = None
    commit: str | None = None  # the first-parent commit that last changed configs/<h>.json
    committed_at: datetime | None = None
    subject: str = ""
    pull_request: int | None = None
    kind: str = "unknown"  # tune | revert | manual | unknown
    reverts: int | None = None
    version: int | None = None
    config_hash: str | None = None
    error: str | None = None

    @property
    def via(self) -> str:
        if self.pull_request is not None:
            return f"#{self.pull_request} ({self.kind})"
        if self.kind == "revert" and self.reverts is not None:
            return f"revert of #{self.reverts}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["via"] = self.via
        return out


_MERGE = re.compile(r"^Merge pull request #(\d+) from (\S+)")


_SQUASH = re.compile(r"\(#(\d+)\)\s*$")


_REVERTS = re.compile(r"#(\d+)")


def parse_change_subject(subject: str) -> tuple[int | None, str, int | None]:
    """(pull request, kind, reverted pull request) from a base-branch commit subject."""
    merge = _MERGE.match(subject)
    if merge:
        kind = "revert" if "revert" in merge.group(2).lower() else "tune"
        return int(merge.group(1)), kind, None
    reverted = _REVERTS.search(subject)
    if subject.lower().startswith("revert"):
        squash = _SQUASH.search(subject)
        if squash and subject.count("#") > 1:  # "Revert ... (#1, sha) (#4)": squash-merged revert PR #4
            return int(squash.group(1)), "revert", int(reverted.group(1)) if reverted else None
        return None, "revert", int(reverted.group(1)) if reverted else None
    squash = _SQUASH.search(subject)
    if squash:
        return int(squash.group(1)), "tune" if subject.lower().startswith("chronops") else "manual", None
    return None, "manual", None


def _git(root: Path, *args: str) -> str:
    from bot.adapters.git import GitRepo

    return GitRepo(root).git(*args)


def base_ref(root: Path, base: str) -> str | None:
    """origin/<base> when the clone has it (what was merged), else the local <base>, else HEAD."""
    for ref in (f"refs/remotes/origin/{base}", f"refs/heads/{base}", "HEAD"):
        try:
            _git(root, "rev-parse", "--verify", "--quiet", ref)
        except Exception:
            continue
        return ref.removeprefix("refs/remotes/").removeprefix("refs/heads/")
    return None


def config_at(ws: Workspace, horizon: str, when: datetime) -> LiveConfig:
    """The config of `horizon` live on the base branch at `when` (first-parent history)."""
    rel = ws.config_path(horizon).relative_to(ws.root).as_posix()
    try:
        ref = base_ref(ws.root, ws.settings.forge.base_branch)
    except Exception as exc:
        return LiveConfig(horizon, when, error=f"not a git repository ({type(exc).__name__})")
    if ref is None:
        return LiveConfig(horizon, when, error="no base branch to read the history from")
    stamp = when.astimezone(UTC).isoformat(timespec="seconds")
    live = _git(ws.root, "rev-list", "--first-parent", "-n", "1", f"--before={stamp}", ref)
    if not live:
        return LiveConfig(horizon, when, ref=ref, error=f"{ref} has no commit before {stamp}")
    log = _git(ws.root, "log", "--first-parent", "-n", "1", "--format=%H%x1f%cI%x1f%s", live, "--", rel)
    if not log:
        return LiveConfig(horizon, when, ref=ref, error=f"{rel} did not exist on {ref} at {stamp}")
    sha, committed, subject = log.split("\x1f", 2)
    pr, kind, reverts = parse_change_subject(subject)
    version, chash, error = _config_version(ws.root, live, rel, horizon)
    return LiveConfig(
        horizon, when, ref=ref, commit=sha, committed_at=datetime.fromisoformat(committed).astimezone(UTC),
        subject=subject, pull_request=pr, kind=kind, reverts=reverts, version=version, config_hash=chash,
        error=error,
    )  # fmt: skip


def _config_version(
    root: Path, commit: str, rel: str, horizon: str
) -> tuple[int | None, str | None, str | None]:
    try:
        raw = json.loads(_git(root, "show", f"{commit}:{rel}"))
    except Exception as exc:
        return None, None, f"unreadable {rel} at {commit[:10]} ({type(exc).__name__})"
    try:
        cfg = parse_config(raw, expected_horizon=horizon)
    except Exception:
        version = raw.get("version") if isinstance(raw, dict) else None
        return (
            version if isinstance(version, int) else None,
            None,
            f"{rel} at {commit[:10]} is not a valid config",
        )
    return cfg.version, config_hash(cfg), None


def configs_at(ws: Workspace, when: datetime) -> list[LiveConfig]:
    return [config_at(ws, h, when) for h in HORIZONS]


def end_of_day(day: date) -> datetime:
    """The last second of `day` in UTC: "live on DATE" means live when DATE ended."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
