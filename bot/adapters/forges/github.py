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

import base64
import contextlib
import functools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.PullRequest import PullRequest
from github.Repository import Repository
from urllib3.response import BaseHTTPResponse

from bot.adapters.forges.base import (
    BRANCH_PREFIX,
    Proposal,
    ProposalResult,
    PullRecord,
    body_hash,
    branch_for,
    latest_closed_unmerged,
    pick_rollback_target,
    snooze_end,
)
from bot.adapters.git import GitRepo
from bot.core.snooze import is_snoozed
from bot.errors import ForgeError
from bot.faults import crash_point
from bot.secrets import redact
from bot.settings import Settings
from bot.workspace import Workspace

log = logging.getLogger("chronops.github")

DEFAULT_API_URL = "https://api.github.com"
DEPLOY_WORKFLOW = "deploy.yml"
BODY_LIMIT = 65_536  # GitHub rejects longer pull-request bodies
MISSING_TOKEN = (
    "no GitHub token: set CHRONOPS_GITHUB_TOKEN or GITHUB_TOKEN (CHRONOPS_GITHUB_TOKEN, a GitHub App "
    "installation token or fine-grained PAT, is preferred: its events trigger workflows)"
)
TokenSource = Literal["CHRONOPS_GITHUB_TOKEN", "GITHUB_TOKEN"]

PERM_CONTENTS = "contents: write"
PERM_PULLS = "pull-requests: write"
PERM_ACTIONS = "actions: write"

LABEL_COLORS = {"chronops": "5319e7", "approved": "2ea44f", "needs-review": "fbca04", "rollback": "d93f0b"}
# Labels the bot owns on its pull requests; others (a human's "do-not-merge") are never removed.
BOT_LABELS = re.compile(r"^(approved|needs-review|horizon:.+)$")
_METADATA = re.compile(r"<!-- chronops-metadata (\{.*?\}) -->", re.DOTALL)
_REVERTS = re.compile(r"^Reverts (?:[\w.-]+/[\w.-]+)?#(\d+)\b", re.MULTILINE)
_REVERT_BRANCH = re.compile(r"revert-(.+)-(\d+)")


class BoundedRetry(GithubRetry):
    """GithubRetry whose Retry-After waits are capped too (urllib3 sleeps whatever the server asks)."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is None or self.max_rate_limit_wait is None:
            return seconds
        return min(seconds, self.max_rate_limit_wait)


@dataclass(frozen=True)
class RetryPolicy:
    """The one HTTP retry policy, handed to PyGithub as a `GithubRetry`. Bounded: at most `total`
    retries, each wait at most `backoff_max` (or what Retry-After / the rate-limit reset asks, capped
    at `max_rate_limit_wait`)."""

    total: int = 8
    backoff_factor: float = 1.0  # 1, 2, 4, 8 ... seconds, with jitter
    backoff_max: float = 30.0
    secondary_rate_wait: float = 60.0
    max_rate_limit_wait: float = 300.0
    throttle: bool = True  # PyGithub's pacing between requests/writes (GitHub's advice)
    mergeable_polls: int = 10  # times to ask whether a pull request can be merged
    poll_interval: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        return cls.no_backoff() if env.get("CHRONOPS_RETRY_BACKOFF", "").strip() == "0" else cls()

    @classmethod
    def no_backoff(cls) -> RetryPolicy:
        """Same attempts, no waiting: for tests (a Retry-After header is still honoured)."""
        return cls(backoff_factor=0, backoff_max=0, secondary_rate_wait=0, throttle=False, poll_interval=0)

    def github_retry(self) -> GithubRetry:
        return BoundedRetry(
            total=self.total, backoff_factor=self.backoff_factor, backoff_max=self.backoff_max,
            backoff_jitter=0.5 if self.backoff_factor else 0.0, secondary_rate_wait=self.secondary_rate_wait,
            max_rate_limit_wait=self.max_rate_limit_wait, respect_retry_after_header=True,
            # Every call we make is safe to repeat: PATCH/PUT set state, and each POST has a reuse path
            # (an existing PR or label answers 422 and is reused; a repeated dispatch redeploys the same).
            allowed_methods=frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"}),
            # Give PyGithub the last response once attempts run out, so it raises its own exception.
            raise_on_status=False,
        )  # fmt: skip


def _adopt_pygithub_logger() -> None:
    """PyGithub prints every retry (INFO) to stderr through its own handler; hand its records to the
    application's logging setup instead (the CLI's CHRONOPS_LOG level), so a retried request is quiet
    by default and one line when it finally fails."""
    lib = logging.getLogger("github")
    for handler in list(lib.handlers):
        if type(handler) is logging.StreamHandler:
            lib.removeHandler(handler)
    lib.setLevel(logging.NOTSET)


def git_auth_env(remote_url: str, token: str) -> dict[str, str]:
    """Git environment that sends `token` to `remote_url`'s https host (empty for other remotes).
    The empty first value resets any header actions/checkout persisted for the same host."""
    parts = urlsplit(remote_url)
    if parts.scheme != "https" or not parts.hostname:
        return {}
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    key = f"http.https://{host}/.extraheader"
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": key,
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": key,
        "GIT_CONFIG_VALUE_1": f"AUTHORIZATION: basic {basic}",
    }


def token_from_env(env: Mapping[str, str]) -> tuple[str, TokenSource]:
    """The token to use and where it came from: CHRONOPS_GITHUB_TOKEN wins over GITHUB_TOKEN."""
    names: tuple[TokenSource, ...] = ("CHRONOPS_GITHUB_TOKEN", "GITHUB_TOKEN")
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    raise ForgeError(MISSING_TOKEN)


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
        if not token:
            raise ForgeError(MISSING_TOKEN)
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
            raise ForgeError(f"GITHUB_REPOSITORY must be owner/name (got '{repository}')")
        self.git = git
        self.repository = repository
        self.owner = repository.split("/")[0]
        self.api_url = api_url.rstrip("/")
        self.token_source: TokenSource = token_source
        self.settings = settings or Settings()
        self.base = self.settings.forge.base_branch
        self.policy = policy or RetryPolicy()
        self.deploy_workflow = deploy_workflow
        self.clock = clock or (lambda: datetime.now(UTC))
        self._token = token  # kept only to redact it from messages
        _adopt_pygithub_logger()
        with contextlib.suppress(ForgeError):
            origin = self.git.git("remote", "get-url", self.git.remote)
            self.git.env = {**self.git.env, **git_auth_env(origin, token)}
        self._gh = Github(
            auth=Auth.Token(token), base_url=self.api_url, retry=self.policy.github_retry(), per_page=100,
            user_agent="chronops", seconds_between_requests=0.25 if self.policy.throttle else None,
            seconds_between_writes=1.0 if self.policy.throttle else None,
        )  # fmt: skip
        self._repo: Repository | None = None
        self._labels: set[str] | None = None

    @classmethod
    def from_environment(cls, ws: Workspace, env: Mapping[str, str] | None = None) -> GitHubForge:
        env = os.environ if env is None else env
        token, source = token_from_env(env)
        repository = env.get("GITHUB_REPOSITORY", "").strip()
        if not repository:
            raise ForgeError("set GITHUB_REPOSITORY=owner/name (the repository to open pull requests in)")
        return cls(
            GitRepo.open(ws.root), repository=repository, token=token, token_source=source,
            api_url=env.get("GITHUB_API_URL", "").strip() or DEFAULT_API_URL, settings=ws.settings,
            policy=RetryPolicy.from_env(env),
        )  # fmt: skip

    @property
    def triggers_workflows(self) -> bool:
        """Whether events made with our token start workflows (App/PAT: yes; GITHUB_TOKEN: no)."""
        return self.token_source != "GITHUB_TOKEN"

    def __repr__(self) -> str:
        return f"GitHubForge({self.repository!r} at {self.api_url}, token from {self.token_source})"

    # errors ------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return redact(" ".join(text.split()), extra=(self._token,))

    @contextlib.contextmanager
    def _api(self, action: str, permission: str | None = None) -> Iterator[None]:
        """Turn whatever PyGithub or requests raise while doing `action` into one redacted line."""
        try:
            yield
        except GithubException as exc:
            raise self._error(exc, action, permission) from None
        except requests.RequestException as exc:
            raise ForgeError(
                self._redact(
                    f"cannot reach GitHub at {self.api_url} to {action} ({type(exc).__name__}): "
                    "check GITHUB_API_URL and the network"
                )
            ) from None

    def _error(self, exc: GithubException, action: str, permission: str | None) -> ForgeError:
        status, said = exc.status, _github_message(exc.data)
        if status == 401:
            text = (
                f"GitHub rejected the token from {self.token_source} (401 bad credentials) while trying to "
                f"{action}: set a valid, unexpired token for {self.api_url}"
            )
        elif status in (403, 429) and _is_rate_limit(said):
            text = (
                f"GitHub rate limit still hit after {self.policy.total} retries while trying to {action} "
                f"({said}); run again later"
            )
        elif status == 403:
            need = f"the `{permission}` permission" if permission else "more permissions"
            text = (
                f"GitHub refused to {action} (403: {said}): the token from {self.token_source} needs "
                f"{need} on {self.repository}"
            )
        elif status >= 500:
            text = f"GitHub failed to {action} ({status}: {said}) after {self.policy.total} retries; run again later"
        else:
            text = f"GitHub refused to {action} ({status}: {said})"
        return ForgeError(self._redact(text))

    @_redacted
    def api_repository(self) -> Repository:
        """The PyGithub repository, on this forge's token, retry policy and error messages (for other
        GitHub users such as the watchdog; resolving it validates token and GITHUB_REPOSITORY)."""
        return self._repository()

    def _repository(self) -> Repository:
        if self._repo is None:
            with self._api(f"read repository {self.repository}"):
                try:
                    self._repo = self._gh.get_repo(self.repository)
                except GithubException as exc:
                    if exc.status != 404:
                        raise
                    raise ForgeError(
                        self._redact(
                            f"repository {self.repository} not found at {self.api_url}: check "
                            f"GITHUB_REPOSITORY and GITHUB_API_URL, and that the token from "
                            f"{self.token_source} can access it"
                        )
                    ) from None
        return self._repo

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
            parsed = _parse_branch(pr.head.ref)
            if parsed is None:
                return None
            horizon, kind, reverts = parsed
            body = pr.body or ""
            meta = _metadata(body)
            merged = pr.merged_at is not None
            return PullRecord(
                number=pr.number, horizon=horizon, branch=pr.head.ref, title=pr.title,
                body_hash=body_hash(_normalise(body)), labels=tuple(lb.name for lb in pr.labels),
                state="merged" if merged else pr.state, kind=kind, head_sha=pr.head.sha,
                merge_sha=pr.merge_commit_sha if merged else None, url=pr.html_url,
                created_at=_iso(pr.created_at) or "", updated_at=_iso(pr.updated_at) or "",
                merged_at=_iso(pr.merged_at), closed_at=_iso(pr.closed_at),
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
            match = _REVERTS.search(pr.body or "")
            target = records.get(int(match.group(1))) if match else None
            if target is not None and target.kind == "tune":
                records[pr.number] = PullRecord(
                    number=pr.number, horizon=target.horizon, branch=pr.head.ref, title=pr.title,
                    body_hash=body_hash(_normalise(pr.body or "")), labels=tuple(lb.name for lb in pr.labels),
                    state="merged", kind="revert", head_sha=pr.head.sha, merge_sha=pr.merge_commit_sha,
                    url=pr.html_url, created_at=_iso(pr.created_at) or "", merged_at=_iso(pr.merged_at),
                    closed_at=_iso(pr.closed_at), reverts=target.number, body=pr.body or "",
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
        labels = _labels_for(proposal)
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
        branch_ok = head is not None and _branch_has(self.git, head, base_sha, proposal.files)
        if open_pr is not None and branch_ok and _pr_matches(open_pr, title, body, labels):
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
            if pr.title != title or _normalise(pr.body or "") != _normalise(body):
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
                if exc.status != 422 or "already exists" not in _github_message(exc.data).lower():
                    raise
        # A pull request for this head exists after all (an earlier attempt whose answer was lost,
        # or a concurrent run): reuse it.
        existing = next((p for p in self._head_pulls(branch) if p.state == "open"), None)
        if existing is None:
            raise ForgeError(f"GitHub says a pull request from {branch} exists, but none is open; run again")
        log.info("reusing pull request #%s from %s", existing.number, branch)
        return existing, "created" if _normalise(existing.body or "") == _normalise(body) else "updated"

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
                    repo.create_label(name, _label_color(name), f"chronops: {name}")
                except GithubException as exc:
                    if exc.status != 422:  # already_exists: someone made it meanwhile
                        raise
            self._labels.add(name)

    def _sync_labels(self, pr: PullRequest, labels: tuple[str, ...]) -> tuple[str, ...]:
        """Add the missing bot labels and remove stale ones; others' labels stay. Returns the result."""
        with self._api(f"label pull request #{pr.number}", PERM_PULLS):
            current = [lb.name for lb in pr.labels]
            missing = [name for name in labels if name not in current]
            if missing:
                pr.add_to_labels(*missing)
            stale = sorted(n for n in current if BOT_LABELS.match(n) and n not in labels)
            for name in stale:
                pr.remove_from_labels(name)
        return (*(n for n in current if n not in stale), *missing)

    def _request_reviews(self, pr: PullRequest) -> None:
        """Ask settings.forge.reviewers ("login" or "org/team") to review; repeated on every change."""
        wanted = self.settings.forge.reviewers
        if not wanted:
            return
        users = [r for r in wanted if "/" not in r]
        teams = [r.split("/", 1)[1] for r in wanted if "/" in r]
        with self._api(f"request reviews on #{pr.number} from {', '.join(wanted)}", PERM_PULLS):
            pr.create_review_request(reviewers=users, team_reviewers=teams)

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
        return redact(text, extra=(self._token,))

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
        self._merge_once(pr)
        merged = self._checked_record(self._get_pull(number), merged_by="bot")
        if not self.triggers_workflows:
            self._dispatch_deploy(number)
        if merged.kind == "revert":
            self.git.delete_remote_branch(merged.branch)
        self.git.fetch()
        self.git.sync_local_branch(self.base)
        return merged

    def _get_pull(self, number: int) -> PullRequest:
        repo = self._repository()
        with self._api(f"read pull request #{number}"):
            return repo.get_pull(number)

    def _wait_mergeable(self, number: int) -> PullRequest:
        """GitHub computes `mergeable` in the background: ask a bounded number of times."""
        for attempt in range(self.policy.mergeable_polls):
            pr = self._get_pull(number)
            with self._api(f"read pull request #{number}"):
                if pr.merged or pr.state != "open" or pr.mergeable is not None:
                    return pr
            if attempt + 1 < self.policy.mergeable_polls:
                time.sleep(self.policy.poll_interval)
        raise ForgeError(
            f"GitHub has not worked out whether pull request #{number} can be merged after "
            f"{self.policy.mergeable_polls} checks; run again in a minute"
        )

    def _merge_once(self, pr: PullRequest) -> None:
        """One merge, pinned to the head we checked. A lost answer (merged after all) is success; a head
        that moved meanwhile is refused: we never merge content the gate did not see."""
        number, head_sha = pr.number, pr.head.sha
        for attempt in (1, 2):
            failure: GithubException | None = None
            try:
                pr.merge(merge_method=self.settings.forge.merge_method, sha=head_sha)
                return
            except GithubException as exc:
                failure = exc
            except requests.RequestException:
                pass  # the connection failed after retries: it may have merged anyway
            current = self._get_pull(number)
            with self._api(f"read pull request #{number}"):
                if current.merged:
                    return
                moved = current.head.sha != head_sha
            if failure is None:
                raise ForgeError(f"cannot reach GitHub at {self.api_url} to merge #{number}; run again")
            if failure.status == 409 and not moved and attempt == 1:
                continue  # a transient conflict on GitHub's side: once more, same head
            raise self._merge_error(failure, number, moved)

    def _merge_error(self, exc: GithubException, number: int, moved: bool) -> ForgeError:
        said = _github_message(exc.data)
        if moved:
            return ForgeError(
                f"pull request #{number} changed while merging (its head moved); not merging unchecked content"
            )
        if exc.status in (405, 409):
            return ForgeError(
                self._redact(
                    f"base branch is protected: merge needs required checks/reviews (GitHub: {said}); "
                    f"pull request #{number} stays open for review, or use native auto-merge (docs/github.md)"
                )
            )
        return self._error(exc, f"merge pull request #{number}", PERM_CONTENTS)

    def _dispatch_deploy(self, number: int) -> None:
        repo = self._repository()
        action = f"dispatch {self.deploy_workflow} on {self.base} after merging #{number}"
        try:
            with self._api(action, PERM_ACTIONS):
                workflow = repo.get_workflow(self.deploy_workflow)
                try:
                    reason = {"reason": f"chronops merged #{number}"}
                    workflow.create_dispatch(self.base, inputs=reason, throw=True)
                except GithubException as exc:
                    # a deploy workflow without a `reason` input: dispatch it plain
                    if exc.status != 422 or "unexpected inputs" not in _github_message(exc.data).lower():
                        raise
                    workflow.create_dispatch(self.base, throw=True)
        except ForgeError as exc:
            raise ForgeError(
                f"merged #{number}, but the deploy did not start: {exc}; "
                f"start it by hand: gh workflow run {self.deploy_workflow} --ref {self.base}"
            ) from None
        log.info("dispatched %s on %s (merge made with GITHUB_TOKEN)", self.deploy_workflow, self.base)

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
        body = self._redact_body(_revert_body(horizon, target, reason))
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
                if _normalise(pr.body or "") != _normalise(body):
                    pr.edit(title=title, body=body)
        final_labels = self._sync_labels(pr, labels)
        return self.merge(pr.number) if merge else replace(self._checked_record(pr), labels=final_labels)


# helpers -----------------------------------------------------------------------------------------
def _parse_branch(ref: str) -> tuple[str, str, int | None] | None:
    """chronops/<h> -> (h, "tune", None); chronops/revert-<h>-<n> -> (h, "revert", n); else None."""
    if not ref.startswith(BRANCH_PREFIX):
        return None
    rest = ref[len(BRANCH_PREFIX) :]
    match = _REVERT_BRANCH.fullmatch(rest)
    if match:
        return match.group(1), "revert", int(match.group(2))
    return (rest, "tune", None) if rest and "/" not in rest else None


def _metadata(body: str) -> dict[str, Any]:
    match = _METADATA.search(body)
    if not match:
        return {}
    try:
        data = json.loads(match.group(1))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _normalise(body: str) -> str:
    return body.replace("\r\n", "\n")


def _pr_matches(pr: PullRequest, title: str, body: str, labels: tuple[str, ...]) -> bool:
    current = {lb.name for lb in pr.labels}
    stale = {n for n in current if BOT_LABELS.match(n) and n not in labels}
    return (
        pr.title == title
        and body_hash(_normalise(pr.body or "")) == body_hash(_normalise(body))
        and set(labels) <= current
        and not stale
    )


def _branch_has(git: GitRepo, head: str, base_sha: str, files: dict[str, str]) -> bool:
    """The branch is one commit on the current base with exactly these file contents."""
    try:
        parent = git.git("rev-parse", f"{head}^")
    except ForgeError:
        return False
    return parent == base_sha and all(git.show_file(head, p) == t.rstrip("\n") for p, t in files.items())


def _labels_for(proposal: Proposal) -> tuple[str, ...]:
    verdict = "approved" if proposal.approved else "needs-review"
    wanted = ["chronops", f"horizon:{proposal.horizon}", verdict]
    extra = [lb for lb in proposal.labels if lb not in {"approved", "needs-review"} and lb not in wanted]
    return (*wanted, *extra)


def _label_color(name: str) -> str:
    return LABEL_COLORS.get(name, "0e8a16" if name.startswith("horizon:") else "ededed")


def _revert_body(horizon: str, target: PullRecord, reason: str) -> str:
    short = (target.merge_sha or "")[:10]
    meta = {
        "tool": "chronops",
        "kind": "revert",
        "horizon": horizon,
        "reverts": target.number,
        "reason": reason,
    }
    text = json.dumps(meta, sort_keys=True, separators=(",", ":")).replace("--", "\\u002d\\u002d")
    return (
        f"Reverts #{target.number}\n\n"
        f"Rolls back {horizon}: #{target.number} ({target.title}) by reverting its merge commit `{short}`. "
        "Merging this pull request deploys the previous config.\n\n"
        f"Reason: {reason}\n\n"
        f"<!-- chronops-metadata {text} -->\n"
    )


def _github_message(data: Any) -> str:
    """GitHub's own words from an error response, one line: message plus each error's message."""
    if not isinstance(data, dict):
        return " ".join(str(data or "no details").split())[:300]
    parts = [str(data.get("message") or "no message")]
    for err in data.get("errors") or []:
        if isinstance(err, dict) and (err.get("message") or err.get("code")):
            parts.append(str(err.get("message") or err.get("code")))
        elif isinstance(err, str):
            parts.append(err)
    return " ".join("; ".join(parts).split())[:300]


def _is_rate_limit(message: str) -> bool:
    lower = message.lower()
    return "rate limit" in lower or lower.endswith("please wait a few minutes before you try again.")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")
