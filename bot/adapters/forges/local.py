"""A forge with no server: pull requests as records (data/forge/pulls.json) beside a real git remote."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.adapters.forges.base import (
    BRANCH_PREFIX,
    IssueSpec,
    Proposal,
    ProposalResult,
    PullRecord,
    body_hash,
    branch_for,
    latest_closed_unmerged,
    now_iso,
    pick_rollback_target,
    snooze_end,
)
from bot.adapters.git import GitRepo
from bot.adapters.store import atomic_write_text, file_lock
from bot.errors import ForgeError
from bot.faults import crash_point


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

    def request_run(self, horizons: list[str], reason: str) -> str | None:
        """No remote runner: the caller runs the optimization itself (see Forge.request_run)."""
        return None

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
            now = now_iso()
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
                    pull, state="merged", merge_sha=sha or pull.head_sha, merged_at=now_iso(),
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
            merged = replace(pull, state="merged", merge_sha=sha, merged_at=now_iso(), merged_by=merged_by)
            self._upsert(merged)
        self.git.delete_remote_branch(pull.branch) if pull.kind == "revert" else None
        self.git.sync_local_branch(self.base)
        return merged

    def close(self, number: int) -> PullRecord:
        with file_lock(self.records):
            pull = next((p for p in self._load() if p.number == number), None)
            if pull is None or pull.state != "open":
                raise ForgeError(f"pull request #{number} is not open")
            closed = replace(pull, state="closed", closed_at=now_iso())
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
            now = now_iso()
            number = existing.number if existing else self._next_number()
            pull = PullRecord(
                number=number, horizon=horizon, branch=branch, title=f"chronops: roll back {horizon} (revert #{target.number})",
                body_hash=body_hash(body), labels=("chronops", f"horizon:{horizon}", "rollback"), state="open",
                kind="revert", head_sha=sha, url=f"local://pulls/{number}", created_at=now, updated_at=now,
                reverts=target.number, reason=reason, body=body,
            )  # fmt: skip
            self._upsert(pull)
        return self.merge(pull.number) if merge else pull

    # issues (records in issues.json beside pulls.json) --------------------------------------------
    @property
    def _issues_path(self) -> Path:
        return self.records.with_name("issues.json")

    def _load_issues(self) -> list[dict[str, Any]]:
        if not self._issues_path.exists():
            return []
        try:
            issues = json.loads(self._issues_path.read_text(encoding="utf-8"))["issues"]
            return [dict(i) for i in issues]
        except (ValueError, KeyError, TypeError) as exc:
            raise ForgeError(f"{self._issues_path}: unreadable issue records ({exc})") from None

    def _open_issue(self, issues: list[dict[str, Any]], spec: IssueSpec) -> dict[str, Any] | None:
        for issue in issues:
            if issue["state"] == "open" and (
                issue["title"].startswith(spec.title_prefix) or spec.marker in issue["body"]
            ):
                return issue
        return None

    def ensure_issue(self, spec: IssueSpec) -> tuple[str, int]:
        with file_lock(self._issues_path):
            issues = self._load_issues()
            issue = self._open_issue(issues, spec)
            if issue is not None and issue["title"] == spec.title and issue["body"] == spec.body:
                return "unchanged", int(issue["number"])
            if issue is None:
                number = max((int(i["number"]) for i in issues), default=0) + 1
                issues.append({"number": number, "title": spec.title, "body": spec.body, "state": "open",
                               "labels": [spec.label], "comments": [], "created_at": now_iso()})  # fmt: skip
                action = "created"
            else:
                issue.update(title=spec.title, body=spec.body)
                number, action = int(issue["number"]), "updated"
            atomic_write_text(self._issues_path, json.dumps({"issues": issues}, indent=2) + "\n")
            return action, number

    def close_issue(self, spec: IssueSpec, comment: str) -> int | None:
        with file_lock(self._issues_path):
            issues = self._load_issues()
            issue = self._open_issue(issues, spec)
            if issue is None:
                return None
            issue["comments"].append(comment)
            issue["state"] = "closed"
            atomic_write_text(self._issues_path, json.dumps({"issues": issues}, indent=2) + "\n")
            return int(issue["number"])
