"""Proposals as GitHub pull requests (PyGithub), behind the same `Forge` protocol as the local forge.

Configuration, as a GitHub Actions step sees it:
- `GITHUB_API_URL`: the REST endpoint (default https://api.github.com; GitHub Enterprise works).
- `GITHUB_REPOSITORY`: owner/name.
- `CHRONOPS_GITHUB_TOKEN` (a GitHub App installation token or a fine-grained PAT), else `GITHUB_TOKEN`.
  Events made with `GITHUB_TOKEN` start no workflows: its pull requests get no CI and its merges do not
  fire `on: push`, so after a merge made with it the forge dispatches the deploy workflow itself.
  `token_source` records which one was used.

How changes reach GitHub: branches and commits are built with git (`GitRepo`) in temporary worktrees
and pushed to the workspace's `origin` remote (the clone actions/checkout made); the REST API is used
only for pull requests, labels, reviewers, merges and workflow dispatches. One code path with the local
forge, real `git revert -m 1` rollbacks, no blob/tree juggling through the Git Data API. When `origin`
is an https URL, git authenticates with the same token the API uses, as an `http.<origin>/.extraheader`
passed through git's environment (GIT_CONFIG_COUNT/KEY/VALUE): never on a command line, never written
to .git/config, scoped to origin's host, and it replaces a header checkout may have persisted. So
pushes made with an App/PAT token start CI on the pull request, and `persist-credentials: false`
checkouts work. Other remotes (ssh, local paths) use their own credentials.

Idempotency (Renovate's habits): one branch per horizon (`chronops/<h>`); find, then update or create the
one open pull request for that head; a re-run whose title, labels, body hash and branch content are
unchanged makes no API write at all. A branch pushed by a run whose pull-request call then failed is
reused by the next run. Machine state lives in the body's hidden `<!-- chronops-metadata {...} -->`.

Snooze: a bot pull request closed without merging means "not now": `propose` returns action "snoozed"
(and writes nothing) until `settings.triggers.snooze_weeks` after it was closed, unless the caller says
the triggers changed materially; then a NEW pull request is opened, the closed one is never reopened.

Retries: one policy owns them, PyGithub's own `GithubRetry` (urllib3 `Retry`): a bounded number of
attempts with exponential backoff for 5xx, Retry-After and secondary rate limits (`RetryPolicy`).
`CHRONOPS_RETRY_BACKOFF=0` turns every wait off for tests. Nothing else retries HTTP.

Errors: every failure is one `ForgeError` line naming the fix (the missing permission, the variable to
set); messages are built from status codes and GitHub's message only, then redacted, so the token never
appears in them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Concatenate, ParamSpec, TypeVar

from github import GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository

from bot.adapters.forges import github_issues
from bot.adapters.forges.base import (
    BRANCH_PREFIX,
    IssueSpec,
    Proposal,
    ProposalResult,
    PullRecord,
    body_hash,
    branch_for,
    latest_closed_unmerged,
    pick_rollback_target,
    snooze_end,
)
from bot.adapters.forges.github_http import (
    DEFAULT_API_URL,
    PERM_CONTENTS,
    PERM_PULLS,
    GitHubSession,
    RetryPolicy,
    TokenSource,
    dispatch_optimize,
    github_message,
)
from bot.adapters.forges.github_pulls import (
    REVERTS,
    MergeBlockedError,
    branch_has,
    enable_auto_merge,
    get_pull,
    iso,
    label_color,
    labels_for,
    merge_once,
    normalise,
    parse_branch,
    pr_matches,
    request_reviews,
    revert_body,
    sync_labels,
    wait_mergeable,
)
from bot.adapters.git import GitRepo
from bot.core.marker import parse_metadata
from bot.core.snooze import is_snoozed
from bot.errors import ForgeError
from bot.faults import crash_point
from bot.settings import Settings
from bot.workspace import Workspace

log = logging.getLogger("chronops.github")

DEPLOY_WORKFLOW = "deploy.yml"
BODY_LIMIT = 65_536  # GitHub rejects longer pull-request bodies


P = ParamSpec("P")
R = TypeVar("R")


def _redacted(method: Callable[Concatenate[GitHubForge, P], R]) -> Callable[Concatenate[GitHubForge, P], R]:
    """Public operations: any ForgeError leaving them (git's messages included) is redacted."""

    @functools.wraps(method)
    def wrapper(self: GitHubForge, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except ForgeError as exc:
            raise ForgeError(self._redact(str(exc))) from None

    return wrapper


class GitHubForge:
    """Pull requests on GitHub; branches pushed with git to `origin`."""

    name = "github"

    def __init__(
        self,
        git: GitRepo,
        *,
        repository: str,
        token: str,
        token_source: TokenSource,
        api_url: str = DEFAULT_API_URL,
        settings: Settings | None = None,
        policy: RetryPolicy | None = None,
        deploy_workflow: str = DEPLOY_WORKFLOW,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        session = GitHubSession(
            repository=repository, token=token, token_source=token_source, api_url=api_url, policy=policy
        )
        self._attach(git, session, settings or Settings(), deploy_workflow, clock)

    def _attach(
        self, git: GitRepo, session: GitHubSession, settings: Settings, deploy_workflow: str,
        clock: Callable[[], datetime] | None,
    ) -> None:  # fmt: skip
        self.session, self.git, self.settings = session, git, settings
        self.repository, self.owner, self.api_url = session.repository, session.owner, session.api_url
        self.token_source: TokenSource = session.token_source
        self.policy = session.policy
        self.base = settings.forge.base_branch
        self.deploy_workflow = deploy_workflow
        self.clock = clock or (lambda: datetime.now(UTC))
        self._labels: set[str] | None = None
        with contextlib.suppress(ForgeError):
            origin = self.git.git("remote", "get-url", self.git.remote)
            self.git.env = {**self.git.env, **session.git_env(origin)}

    @classmethod
    def from_environment(cls, ws: Workspace, env: Mapping[str, str] | None = None) -> GitHubForge:
        session = GitHubSession.from_env(os.environ if env is None else env)
        return cls.on_session(GitRepo.open(ws.root), session, settings=ws.settings)

    @classmethod
    def on_session(cls, git: GitRepo, session: GitHubSession, *, settings: Settings) -> GitHubForge:
        forge = cls.__new__(cls)
        forge._attach(git, session, settings, DEPLOY_WORKFLOW, None)
        return forge

    @property
    def triggers_workflows(self) -> bool:
        """Whether events made with our token start workflows (App/PAT: yes; GITHUB_TOKEN: no)."""
        return self.token_source != "GITHUB_TOKEN"

    def __repr__(self) -> str:
        return f"GitHubForge({self.repository!r} at {self.api_url}, token from {self.token_source})"

    # errors (the session words them) -----------------------------------------------------------
    def _redact(self, text: str) -> str:
        return self.session.redact(text)

    def _api(self, action: str, permission: str | None = None) -> contextlib.AbstractContextManager[None]:
        return self.session.api(action, permission)

    def _error(self, exc: GithubException, action: str, permission: str | None) -> ForgeError:
        return self.session.error(exc, action, permission)

    @_redacted
    def api_repository(self) -> Repository:
        """The PyGithub repository, on this forge's token, retry policy and error messages (for other
        GitHub users such as the watchdog; resolving it validates token and GITHUB_REPOSITORY)."""
        return self._repository()

    def _repository(self) -> Repository:
        return self.session.repo()

    # reading -----------------------------------------------------------------------------------
    def _head_pulls(self, branch: str) -> list[PullRequest]:
        """Every pull request (any state) from `branch` into the base, oldest first."""
        repo = self._repository()
        with self._api(f"list pull requests from {branch}"):
            found = repo.get_pulls(state="all", head=f"{self.owner}:{branch}", base=self.base)
            return sorted(found, key=lambda p: p.number)

    def _all_pulls(self) -> list[PullRequest]:
        repo = self._repository()
        with self._api("list pull requests"):
            return sorted(repo.get_pulls(state="all", base=self.base), key=lambda p: p.number)

    def _record(self, pr: PullRequest, *, merged_by: str | None = None) -> PullRecord | None:
        """A bot pull request as a PullRecord (None for others). Reads only what list responses carry,
        so no attribute access costs an extra request."""
        with self._api(f"read pull request #{pr.number}"):
            parsed = parse_branch(pr.head.ref)
            if parsed is None:
                return None
            horizon, kind, reverts = parsed
            body = pr.body or ""
            meta = parse_metadata(body)
            merged = pr.merged_at is not None
            return PullRecord(
                number=pr.number, horizon=horizon, branch=pr.head.ref, title=pr.title,
                body_hash=body_hash(normalise(body)), labels=tuple(lb.name for lb in pr.labels),
                state="merged" if merged else pr.state, kind=kind, head_sha=pr.head.sha,
                merge_sha=pr.merge_commit_sha if merged else None, url=pr.html_url,
                created_at=iso(pr.created_at) or "", updated_at=iso(pr.updated_at) or "",
                merged_at=iso(pr.merged_at), closed_at=iso(pr.closed_at),
                merged_by=merged_by if merged else None, reverts=reverts,
                reason=meta.get("reason") if isinstance(meta.get("reason"), str) else None, body=body,
            )  # fmt: skip

    @_redacted
    def pulls(self, horizon: str | None = None) -> list[PullRecord]:
        """Bot pull requests (tune and revert), plus merged human reverts of bot pull requests
        (GitHub's "Revert" button: body "Reverts owner/repo#N"), as kind "revert"."""
        prs = self._all_pulls()
        records = {r.number: r for r in (self._record(p) for p in prs) if r is not None}
        for pr in prs:
            if pr.number in records or pr.merged_at is None:
                continue
            match = REVERTS.search(pr.body or "")
            target = records.get(int(match.group(1))) if match else None
            if target is not None and target.kind == "tune":
                records[pr.number] = PullRecord(
                    number=pr.number, horizon=target.horizon, branch=pr.head.ref, title=pr.title,
                    body_hash=body_hash(normalise(pr.body or "")), labels=tuple(lb.name for lb in pr.labels),
                    state="merged", kind="revert", head_sha=pr.head.sha, merge_sha=pr.merge_commit_sha,
                    url=pr.html_url, created_at=iso(pr.created_at) or "", merged_at=iso(pr.merged_at),
                    closed_at=iso(pr.closed_at), reverts=target.number, body=pr.body or "",
                )  # fmt: skip
        return [r for _, r in sorted(records.items()) if horizon is None or r.horizon == horizon]

    @_redacted
    def closed_unmerged(self, horizon: str) -> PullRecord | None:
        """The horizon's latest bot pull request when it was closed without merging, else None."""
        return latest_closed_unmerged(self._records(branch_for(horizon)), horizon)

    @_redacted
    def snoozed_until(self, horizon: str) -> datetime | None:
        """When the horizon's snooze ends, if one is in force now (None: proposals may be made)."""
        weeks = self.settings.triggers.snooze_weeks
        return snooze_end(self._records(branch_for(horizon)), horizon, now=self.clock(), weeks=weeks)

    def _records(self, branch: str) -> list[PullRecord]:
        return [r for r in (self._record(p) for p in self._head_pulls(branch)) if r is not None]

    # proposing ---------------------------------------------------------------------------------
    @_redacted
    def propose(self, proposal: Proposal, *, triggers_changed: bool = False) -> ProposalResult:
        body = self._redact_body(proposal.body)
        if len(body) > BODY_LIMIT:
            raise ForgeError(
                f"{proposal.horizon}: the pull-request body is {len(body)} characters; GitHub's limit is {BODY_LIMIT}"
            )
        title = self._redact(proposal.title)
        labels = labels_for(proposal)
        branch = branch_for(proposal.horizon)
        self._repository()
        self.git.fetch()
        history = self._head_pulls(branch)
        open_pr = next((p for p in history if p.state == "open"), None)
        snoozing = None if open_pr else self._snoozing(history, proposal.horizon, triggers_changed)
        if snoozing is not None:
            log.info("%s: #%s was closed unmerged; snoozed", proposal.horizon, snoozing.number)
            return ProposalResult(snoozing, "snoozed")

        base_sha = self.git.git("rev-parse", f"{self.git.remote}/{self.base}")
        head = self.git.remote_sha(branch)
        branch_ok = head is not None and branch_has(self.git, head, base_sha, proposal.files)
        if open_pr is not None and branch_ok and pr_matches(open_pr, title, body, labels):
            return ProposalResult(self._checked_record(open_pr), "unchanged")

        self._ensure_labels(labels)
        if not branch_ok:
            sha = self.git.commit_files(base_sha, proposal.files, self._redact_body(proposal.commit_message))
            if sha is None:
                raise ForgeError(
                    f"{proposal.horizon}: the proposed config equals the one on {self.base}; nothing to propose"
                )
            self._push(sha, branch)
            crash_point("github:pushed")
        if open_pr is None:
            pr, action = self._create_pull(branch, title, body)
        else:
            pr, action = open_pr, "updated"
        with self._api(f"update pull request #{pr.number}", PERM_PULLS):
            if pr.title != title or normalise(pr.body or "") != normalise(body):
                pr.edit(title=title, body=body)
        final_labels = self._sync_labels(pr, labels)
        self._request_reviews(pr)
        return ProposalResult(replace(self._checked_record(pr), labels=final_labels), action)

    def _snoozing(
        self, history: list[PullRequest], horizon: str, triggers_changed: bool
    ) -> PullRecord | None:
        """The closed-unmerged pull request that snoozes `horizon` now, if any."""
        records = [r for r in (self._record(p) for p in history) if r is not None]
        closed = latest_closed_unmerged(records, horizon)
        if closed is None or closed.closed_at is None:
            return None
        closed_at = datetime.fromisoformat(closed.closed_at)
        weeks = self.settings.triggers.snooze_weeks
        return closed if is_snoozed(closed_at, self.clock(), weeks, triggers_changed) else None

    def _create_pull(self, branch: str, title: str, body: str) -> tuple[PullRequest, str]:
        repo = self._repository()
        with self._api(f"open a pull request from {branch}", PERM_PULLS):
            try:
                return repo.create_pull(base=self.base, head=branch, title=title, body=body), "created"
            except GithubException as exc:
                if exc.status != 422 or "already exists" not in github_message(exc.data).lower():
                    raise
        # A pull request for this head exists after all (an earlier attempt whose answer was lost,
        # or a concurrent run): reuse it.
        existing = next((p for p in self._head_pulls(branch) if p.state == "open"), None)
        if existing is None:
            raise ForgeError(f"GitHub says a pull request from {branch} exists, but none is open; run again")
        log.info("reusing pull request #%s from %s", existing.number, branch)
        return existing, "created" if normalise(existing.body or "") == normalise(body) else "updated"

    def _ensure_labels(self, labels: tuple[str, ...]) -> None:
        repo = self._repository()
        if self._labels is None:
            with self._api("list labels"):
                self._labels = {lb.name for lb in repo.get_labels()}
        for name in labels:
            if name in self._labels:
                continue
            with self._api(f"create label '{name}'", PERM_PULLS):
                try:
                    repo.create_label(name, label_color(name), f"chronops: {name}")
                except GithubException as exc:
                    if exc.status != 422:  # already_exists: someone made it meanwhile
                        raise
            self._labels.add(name)

    def _sync_labels(self, pr: PullRequest, labels: tuple[str, ...]) -> tuple[str, ...]:
        return sync_labels(self.session, pr, labels)

    def _request_reviews(self, pr: PullRequest) -> None:
        request_reviews(self.session, pr, self.settings.forge.reviewers)

    def _checked_record(self, pr: PullRequest, *, merged_by: str | None = None) -> PullRecord:
        record = self._record(pr, merged_by=merged_by)
        if record is None:  # pragma: no cover - we only pass our own pull requests
            raise ForgeError(f"pull request #{pr.number} is not a chronops pull request")
        return record

    def _push(self, sha: str, branch: str) -> None:
        try:
            self.git.push(sha, branch, force=True)  # the bot owns chronops/* branches
        except ForgeError as exc:
            raise ForgeError(
                self._redact(
                    f"{exc} (pushing to '{self.git.remote}' needs a token with `{PERM_CONTENTS}`: the one "
                    "actions/checkout stored, see docs/github.md)"
                )
            ) from None

    def _redact_body(self, text: str) -> str:
        """Like _redact, but keeps the text's lines."""
        return self.session.redact_lines(text)

    # merging -----------------------------------------------------------------------------------
    @_redacted
    def merge(self, number: int) -> PullRecord:
        """Merge with settings.forge.merge_method once GitHub says it can; with only GITHUB_TOKEN,
        then dispatch the deploy workflow (that merge fires no `on: push`). Merged already: no-op."""
        pr = self._wait_mergeable(number)
        before = self._checked_record(pr)  # refuses pull requests that are not the bot's
        if pr.merged:
            return before
        if pr.state != "open":
            raise ForgeError(f"pull request #{number} is closed without merging; nothing to merge")
        if pr.mergeable is False:
            raise ForgeError(
                f"pull request #{number} conflicts with {self.base}: run again to rebuild it on {self.base}"
            )
        try:
            self._merge_once(pr)
        except MergeBlockedError as blocked:
            return self._auto_merge(pr, before, blocked)
        merged = self._checked_record(self._get_pull(number), merged_by="bot")
        if not self.triggers_workflows:
            self._dispatch_deploy(number)
        if merged.kind == "revert":
            self.git.delete_remote_branch(merged.branch)
        self.git.fetch()
        self.git.sync_local_branch(self.base)
        return merged

    def _auto_merge(self, pr: PullRequest, record: PullRecord, blocked: MergeBlockedError) -> PullRecord:
        """Protected base: leave the merge to GitHub once the required checks pass. The pull request
        stays open (state "open", auto_merge True); the push of that merge starts deploy.yml when the
        token is an App's or a PAT (a merge GitHub makes for GITHUB_TOKEN starts nothing)."""
        enable_auto_merge(self.session, pr, self.settings.forge.merge_method)
        log.info("#%s: %s", pr.number, blocked)
        if self.triggers_workflows:
            log.warning("#%s: auto-merge enabled; GitHub merges it when the required checks pass", pr.number)
        else:
            log.warning(
                "#%s: auto-merge enabled, but with GITHUB_TOKEN no checks run on the bot's pull requests and "
                "GitHub's merge will not start deploy.yml: give the bot an App or PAT token (docs/github.md)",
                pr.number,
            )
        return replace(record, auto_merge=True)

    def _get_pull(self, number: int) -> PullRequest:
        return get_pull(self.session, number)

    def _wait_mergeable(self, number: int) -> PullRequest:
        return wait_mergeable(self.session, number)

    def _merge_once(self, pr: PullRequest) -> None:
        merge_once(self.session, pr, self.settings.forge.merge_method)

    def _dispatch_deploy(self, number: int) -> None:
        try:
            self.session.dispatch_workflow(self.deploy_workflow, self.base, f"chronops merged #{number}")
        except ForgeError as exc:
            raise ForgeError(
                f"merged #{number}, but the deploy did not start: {exc}; "
                f"start it by hand: gh workflow run {self.deploy_workflow} --ref {self.base}"
            ) from None
        log.info("dispatched %s on %s (merge made with GITHUB_TOKEN)", self.deploy_workflow, self.base)

    def request_run(self, horizons: list[str], reason: str) -> str | None:
        """workflow_dispatch optimize.yml with the watch's reason (see github_http.dispatch_optimize)."""
        return dispatch_optimize(self.session, self.base, horizons, reason)

    # issues ------------------------------------------------------------------------------------
    @_redacted
    def ensure_issue(self, spec: IssueSpec) -> tuple[str, int]:
        return github_issues.ensure_issue(self.session, spec)

    @_redacted
    def close_issue(self, spec: IssueSpec, comment: str) -> int | None:
        return github_issues.close_issue(self.session, spec, comment)

    # rolling back ------------------------------------------------------------------------------
    @_redacted
    def rollback(self, horizon: str, *, to: str | None, reason: str, merge: bool) -> PullRecord:
        """Revert the horizon's last merged, unreverted bot pull request (or `to`) with a revert PR."""
        self._repository()
        self.git.fetch()
        records = self.pulls()
        target = pick_rollback_target(records, horizon, to)
        assert target.merge_sha is not None
        branch = f"{BRANCH_PREFIX}revert-{horizon}-{target.number}"
        labels = ("chronops", f"horizon:{horizon}", "rollback")
        title = f"chronops: roll back {horizon} (revert #{target.number})"
        body = self._redact_body(revert_body(horizon, target, reason))
        existing = next((p for p in records if p.branch == branch and p.state == "open"), None)
        self._ensure_labels(labels)
        base_sha = self.git.git("rev-parse", f"{self.git.remote}/{self.base}")
        head = self.git.remote_sha(branch)
        if existing is None or head is None or self.git.git("rev-parse", f"{head}^") != base_sha:
            short = target.merge_sha[:10]
            message = f"Revert chronops {horizon} (#{target.number}, {short})\n\nReason: {reason}"
            sha = self.git.revert_commit(self.base, target.merge_sha, self._redact_body(message))
            self._push(sha, branch)
            crash_point("github:rollback-pushed")
        if existing is None:
            pr, _ = self._create_pull(branch, title, body)
        else:
            pr = self._get_pull(existing.number)
            with self._api(f"update pull request #{pr.number}", PERM_PULLS):
                if normalise(pr.body or "") != normalise(body):
                    pr.edit(title=title, body=body)
        final_labels = self._sync_labels(pr, labels)
        return self.merge(pr.number) if merge else replace(self._checked_record(pr), labels=final_labels)
