"""Proposals as pull requests, behind one protocol: the local git forge (embedded default) and GitHub.

Renovate's habits: one fixed branch per horizon (`chronops/<horizon>`), find-then-update-or-create,
and no update at all when the rendered body's hash is unchanged. Never a second open PR.

The local forge pushes real branches and merge commits to the workspace's `origin` remote and keeps
its pull-request records in `data/forge/pulls.json` (atomic writes, locked).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from bot.core.snooze import is_snoozed, snooze_until
from bot.errors import ForgeError

BRANCH_PREFIX = "chronops/"


def branch_for(horizon: str) -> str:
    return f"{BRANCH_PREFIX}{horizon}"


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Proposal:
    horizon: str
    title: str
    body: str
    labels: tuple[str, ...]
    files: dict[str, str]  # repo-relative path -> full new content
    commit_message: str
    approved: bool


@dataclass(frozen=True)
class PullRecord:
    number: int
    horizon: str
    branch: str
    title: str
    body_hash: str
    labels: tuple[str, ...]
    state: str  # open | merged | closed
    kind: str = "tune"  # tune | revert
    head_sha: str | None = None
    merge_sha: str | None = None
    url: str = ""
    created_at: str = ""
    updated_at: str = ""
    merged_at: str | None = None
    closed_at: str | None = None
    merged_by: str | None = None  # bot | person
    reverts: int | None = None
    reason: str | None = None
    auto_merge: bool = False  # GitHub's native auto-merge is on: it merges once required checks pass
    body: str = field(default="", repr=False)


@dataclass(frozen=True)
class IssueSpec:
    """One issue the bot keeps open while a condition lasts (the watchdog's "runs missed"), found again by
    its label, title prefix or hidden marker, so there is never a second one."""

    title: str
    body: str  # contains `marker`
    label: str
    marker: str
    title_prefix: str


@dataclass(frozen=True)
class ProposalResult:
    pull: PullRecord
    action: str  # created | updated | unchanged | snoozed (pull is the closed one; nothing was written)
    merged: bool = False


class Forge(Protocol):
    name: str

    def propose(self, proposal: Proposal, *, triggers_changed: bool = False) -> ProposalResult: ...

    def merge(self, number: int) -> PullRecord: ...

    def pulls(self, horizon: str | None = None) -> list[PullRecord]: ...

    def rollback(self, horizon: str, *, to: str | None, reason: str, merge: bool) -> PullRecord: ...

    def snoozed_until(self, horizon: str) -> datetime | None: ...

    def ensure_issue(self, spec: IssueSpec) -> tuple[str, int]:
        """Exactly one open issue for `spec`: (created | updated | unchanged, its number)."""
        ...

    def close_issue(self, spec: IssueSpec, comment: str) -> int | None:
        """Close the open issue for `spec` with `comment`; its number, None when none was open."""
        ...

    def request_run(self, horizons: list[str], reason: str) -> str | None:
        """Start an out-of-cycle optimization where scheduled runs happen, for the daily watch.

        GitHub: a workflow_dispatch of optimize.yml with the reason; returns what was dispatched.
        Local: None (no remote runner; the caller runs the optimization in its own process)."""
        ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def latest_closed_unmerged(pulls: list[PullRecord], horizon: str) -> PullRecord | None:
    """The horizon's latest tune PR when it was closed without merging (a "not now"), else None."""
    tunes = [p for p in pulls if p.horizon == horizon and p.kind == "tune"]
    latest = max(tunes, key=lambda p: p.number, default=None)
    return latest if latest is not None and latest.state == "closed" and latest.closed_at else None


def snooze_end(pulls: list[PullRecord], horizon: str, *, now: datetime, weeks: int) -> datetime | None:
    """When the horizon's snooze ends, if one is in force at `now` (see bot.core.snooze)."""
    closed = latest_closed_unmerged(pulls, horizon)
    closed_at = datetime.fromisoformat(closed.closed_at) if closed and closed.closed_at else None
    if closed_at is None or not is_snoozed(closed_at, now, weeks, triggers_changed=False):
        return None
    return snooze_until(closed_at, weeks)


def pick_rollback_target(pulls: list[PullRecord], horizon: str, to: str | None) -> PullRecord:
    """The merged bot PR to revert: `to` (a PR number or merge sha) or the horizon's last one."""
    merged = [p for p in pulls if p.horizon == horizon and p.state == "merged" and p.merge_sha]
    reverted = {p.reverts for p in merged if p.kind == "revert"}
    if to:
        key = to.lstrip("#")
        for p in merged:
            if str(p.number) == key or (p.merge_sha or "").startswith(key):
                if p.number in reverted:
                    raise ForgeError(f"pull request #{p.number} is already reverted")
                return p
        raise ForgeError(f"no merged chronops pull request for {horizon} matches '{to}'")
    candidates = [p for p in merged if p.kind == "tune" and p.number not in reverted]
    if not candidates:
        raise ForgeError(f"nothing to roll back: no merged, unreverted chronops pull request for {horizon}")
    return max(candidates, key=lambda p: (p.merged_at or "", p.number))


