"""Proposals as pull requests, behind one protocol: the local git forge (embedded default) and GitHub.

Renovate's habits: one fixed branch per horizon (`chronops/<horizon>`), find-then-update-or-create,
and no update at all when the rendered body's hash is unchanged. Never a second open PR.

The local forge pushes real branches and merge commits to the workspace's `origin` remote and keeps
its pull-request records in `data/forge/pulls.json` (atomic writes, locked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from bot.adapters.git import GitRepo
from bot.adapters.store import atomic_write_text, file_lock
from bot.core.snooze import is_snoozed, snooze_until
from bot.errors import ForgeError
from bot.faults import crash_point

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
    body: str = field(default="", repr=False)


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


def _now() -> str:
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


class LocalForge:
    """Pull requests as records beside a real git remote. No server needed."""

    name = "local"

    def __init__(
        self,
        repo: GitRepo,
        records: Path,
        *,
        base: str = "main",
        snooze_weeks: int = 4,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.git = repo
        self.records = records
        self.base = base
        self.snooze_weeks = snooze_weeks
        self.clock = clock or (lambda: datetime.now(UTC))

    # records -----------------------------------------------------------------------------------
    def _load(self) -> list[PullRecord]:
        if not self.records.exists():
            return []
        try:
            raw = json.loads(self.records.read_text(encoding="utf-8"))
            return [PullRecord(**{**r, "labels": tuple(r.get("labels", ()))}) for r in raw["pulls"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ForgeError(f"{self.records}: unreadable pull-request records ({exc})") from None

    def _save(self, pulls: list[PullRecord]) -> None:
        data = {"pulls": [asdict(p) for p in sorted(pulls, key=lambda p: p.number)]}
        atomic_write_text(self.records, json.dumps(data, indent=2) + "\n")

    def _upsert(self, pull: PullRecord) -> None:
        pulls = [p for p in self._load() if p.number != pull.number]
        self._save([*pulls, pull])

    def pulls(self, horizon: str | None = None) -> list[PullRecord]:
        return [p for p in self._load() if horizon is None or p.horizon == horizon]

    def _next_number(self) -> int:
        return max((p.number for p in self._load()), default=0) + 1

    def closed_unmerged(self, horizon: str) -> PullRecord | None:
        return latest_closed_unmerged(self._load(), horizon)

    def snoozed_until(self, horizon: str) -> datetime | None:
        return snooze_end(self._load(), horizon, now=self.clock(), weeks=self.snooze_weeks)

    # operations --------------------------------------------------------------------------------
    def propose(self, proposal: Proposal, *, triggers_changed: bool = False) -> ProposalResult:
        branch = branch_for(proposal.horizon)
        with file_lock(self.records):
            closed = self.closed_unmerged(proposal.horizon)
            if closed is not None and not triggers_changed and self.snoozed_until(proposal.horizon):
                return ProposalResult(closed, "snoozed")
            self.git.fetch()
            open_pr = next(
                (p for p in self._load() if p.branch == branch and p.state == "open" and p.kind == "tune"),
                None,
            )
            new_hash = body_hash(proposal.body)
            head = self.git.remote_sha(branch)
            base_sha = self.git.git("rev-parse", f"{self.git.remote}/{self.base}")
            up_to_date = (
                open_pr is not None
                and head is not None
                and open_pr.body_hash == new_hash
                and self._branch_has(head, base_sha, proposal.files)
            )
            if up_to_date and open_pr is not None:
                return ProposalResult(open_pr, "unchanged")
            sha = self.git.commit_files(base_sha, proposal.files, proposal.commit_message)
            if sha is None:
                raise ForgeError(
                    f"{proposal.horizon}: the proposed config equals the one on {self.base}; nothing to propose"
                )
            self.git.push(sha, branch, force=True)  # the bot owns chronops/* branches
            crash_point("forge:pushed")
            now = _now()
            if open_pr is None:
                number = self._next_number()
                pull = PullRecord(
                    number=number, horizon=proposal.horizon, branch=branch, title=proposal.title,
                    body_hash=new_hash, labels=proposal.labels, state="open", head_sha=sha,
                    url=f"local://pulls/{number}", created_at=now, updated_at=now, body=proposal.body,
                )  # fmt: skip
                action = "created"
            else:
                pull = replace(
                    open_pr, title=proposal.title, body_hash=new_hash, labels=proposal.labels,
                    head_sha=sha, updated_at=now, body=proposal.body,
                )  # fmt: skip
                action = "updated"
            self._upsert(pull)
        return ProposalResult(pull, action)

    def reconcile(self) -> list[PullRecord]:
        """Mark open records whose head is already merged into the base as merged: a run killed
        between pushing a merge and writing its record leaves one (bot.flow.recovery). Returns them."""
        fixed = []
        with file_lock(self.records):
            open_pulls = [p for p in self._load() if p.state == "open" and p.head_sha]
            if not open_pulls:
                return []
            self.git.fetch()
            base = f"{self.git.remote}/{self.base}"
            for pull in open_pulls:
                assert pull.head_sha is not None
                try:
                    self.git.git("merge-base", "--is-ancestor", pull.head_sha, base)
                except ForgeError:
                    continue  # not merged (or the head is gone): still open
                merges = self.git.git("rev-list", "--merges", "--parents", f"{pull.head_sha}..{base}")
                sha = next((ln.split()[0] for ln in merges.splitlines() if pull.head_sha in ln.split()[2:]), None)
                ours = sha is not None and self.git.git("log", "-1", "--format=%s", sha).startswith(
                    f"Merge pull request #{pull.number} "
                )
                merged = replace(
                    pull, state="merged", merge_sha=sha or pull.head_sha, merged_at=_now(),
                    merged_by="bot" if ours else "person",
                )  # fmt: skip
                self._upsert(merged)
                fixed.append(merged)
        if fixed:
            self.git.sync_local_branch(self.base)
        return fixed

    def _branch_has(self, head: str, base_sha: str, files: dict[str, str]) -> bool:
        """The branch is one commit on the current base with exactly these file contents."""
        parent = self.git.git("rev-parse", f"{head}^")
        return parent == base_sha and all(
            self.git.show_file(head, p) == t.rstrip("\n") for p, t in files.items()
        )

    def merge(self, number: int, *, merged_by: str = "bot") -> PullRecord:
        with file_lock(self.records):
            pull = next((p for p in self._load() if p.number == number), None)
            if pull is None:
                raise ForgeError(f"pull request #{number} not found")
            if pull.state == "merged":
                return pull
            if pull.state != "open":
                raise ForgeError(f"pull request #{number} is {pull.state}, cannot merge")
            self.git.fetch()
            sha = self.git.merge_into(
                self.base, pull.branch, f"Merge pull request #{number} from {pull.branch}\n\n{pull.title}"
            )
            crash_point("forge:merged")
            merged = replace(pull, state="merged", merge_sha=sha, merged_at=_now(), merged_by=merged_by)
            self._upsert(merged)
        self.git.delete_remote_branch(pull.branch) if pull.kind == "revert" else None
        self.git.sync_local_branch(self.base)
        return merged

    def close(self, number: int) -> PullRecord:
        with file_lock(self.records):
            pull = next((p for p in self._load() if p.number == number), None)
            if pull is None or pull.state != "open":
                raise ForgeError(f"pull request #{number} is not open")
            closed = replace(pull, state="closed", closed_at=_now())
            self._upsert(closed)
        return closed

    def rollback(self, horizon: str, *, to: str | None, reason: str, merge: bool) -> PullRecord:
        self.git.fetch()
        target = pick_rollback_target(self.pulls(), horizon, to)
        assert target.merge_sha is not None
        short = target.merge_sha[:10]
        message = f"Revert chronops {horizon} (#{target.number}, {short})\n\nReason: {reason}"
        sha = self.git.revert_commit(self.base, target.merge_sha, message)
        branch = f"{BRANCH_PREFIX}revert-{horizon}-{target.number}"
        self.git.push(sha, branch, force=True)
        crash_point("forge:rollback-pushed")
        body = (
            f"Rolls back #{target.number} ({target.title}) by reverting its merge commit {short}.\n\n"
            f"Reason: {reason}\n"
        )
        with file_lock(self.records):
            existing = next((p for p in self._load() if p.branch == branch and p.state == "open"), None)
            now = _now()
            number = existing.number if existing else self._next_number()
            pull = PullRecord(
                number=number, horizon=horizon, branch=branch, title=f"chronops: roll back {horizon} (revert #{target.number})",
                body_hash=body_hash(body), labels=("chronops", f"horizon:{horizon}", "rollback"), state="open",
                kind="revert", head_sha=sha, url=f"local://pulls/{number}", created_at=now, updated_at=now,
                reverts=target.number, reason=reason, body=body,
            )  # fmt: skip
            self._upsert(pull)
        return self.merge(pull.number) if merge else pull
