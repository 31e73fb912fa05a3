"""Talking to GitHub's REST API: one retry policy, token handling, and errors as one redacted line.

PyGithub 2.x retries 5xx and rate limits itself (`GithubRetry`), so this is the one layer that owns HTTP
retries: `RetryPolicy` configures PyGithub's and nothing is stacked on top. `GitHubSession` is what the
forge and the watchdog share: the repository handle, the error wording, workflow dispatches, issues.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.Repository import Repository
from urllib3.response import BaseHTTPResponse

from bot.errors import ForgeError
from bot.secrets import redact

DEFAULT_API_URL = "https://api.github.com"


MISSING_TOKEN = (
    "no GitHub token: set CHRONOPS_GITHUB_TOKEN or GITHUB_TOKEN (CHRONOPS_GITHUB_TOKEN, a GitHub App "
    "installation token or fine-grained PAT, is preferred: its events trigger workflows)"
)


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


def adopt_pygithub_logger() -> None:
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


def github_message(data: Any) -> str:
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


def is_rate_limit(message: str) -> bool:
    lower = message.lower()
    return "rate limit" in lower or lower.endswith("please wait a few minutes before you try again.")


TokenSource = Literal["CHRONOPS_GITHUB_TOKEN", "GITHUB_TOKEN"]


PERM_CONTENTS = "contents: write"


PERM_PULLS = "pull-requests: write"


PERM_ACTIONS = "actions: write"


class GitHubSession:
    """One authenticated repository on a GitHub API: every call goes through `api()` for its errors."""

    def __init__(
        self, *, repository: str, token: str, token_source: TokenSource, api_url: str = DEFAULT_API_URL,
        policy: RetryPolicy | None = None,
    ) -> None:  # fmt: skip
        if not token:
            raise ForgeError(MISSING_TOKEN)
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
            raise ForgeError(f"GITHUB_REPOSITORY must be owner/name (got '{repository}')")
        self.repository = repository
        self.owner = repository.split("/")[0]
        self.api_url = api_url.rstrip("/")
        self.token_source: TokenSource = token_source
        self.policy = policy or RetryPolicy()
        self._token = token  # kept only to redact it from messages
        adopt_pygithub_logger()
        self.gh = Github(
            auth=Auth.Token(token), base_url=self.api_url, retry=self.policy.github_retry(), per_page=100,
            user_agent="chronops", seconds_between_requests=0.25 if self.policy.throttle else None,
            seconds_between_writes=1.0 if self.policy.throttle else None,
        )  # fmt: skip
        self._repo: Repository | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubSession:
        token, source = token_from_env(env)
        repository = env.get("GITHUB_REPOSITORY", "").strip()
        if not repository:
            raise ForgeError("set GITHUB_REPOSITORY=owner/name (the repository to open pull requests in)")
        return cls(
            repository=repository, token=token, token_source=source,
            api_url=env.get("GITHUB_API_URL", "").strip() or DEFAULT_API_URL, policy=RetryPolicy.from_env(env),
        )  # fmt: skip

    def git_env(self, remote_url: str) -> dict[str, str]:
        return git_auth_env(remote_url, self._token)

    def redact(self, text: str) -> str:
        """Secrets out, on one line (for messages)."""
        return redact(" ".join(text.split()), extra=(self._token,))

    def redact_lines(self, text: str) -> str:
        """Secrets out, lines kept (for bodies)."""
        return redact(text, extra=(self._token,))

    @contextlib.contextmanager
    def api(self, action: str, permission: str | None = None) -> Iterator[None]:
        """Turn whatever PyGithub or requests raise while doing `action` into one redacted line."""
        try:
            yield
        except GithubException as exc:
            raise self.error(exc, action, permission) from None
        except requests.RequestException as exc:
            raise ForgeError(
                self.redact(
                    f"cannot reach GitHub at {self.api_url} to {action} ({type(exc).__name__}): "
                    "check GITHUB_API_URL and the network"
                )
            ) from None

    def error(self, exc: GithubException, action: str, permission: str | None) -> ForgeError:
        status, said = exc.status, github_message(exc.data)
        if status == 401:
            text = (
                f"GitHub rejected the token from {self.token_source} (401 bad credentials) while trying to "
                f"{action}: set a valid, unexpired token for {self.api_url}"
            )
        elif status in (403, 429) and is_rate_limit(said):
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
        return ForgeError(self.redact(text))

    def repo(self) -> Repository:
        """The PyGithub repository (resolving it validates the token and GITHUB_REPOSITORY)."""
        if self._repo is None:
            with self.api(f"read repository {self.repository}"):
                try:
                    self._repo = self.gh.get_repo(self.repository)
                except GithubException as exc:
                    if exc.status != 404:
                        raise
                    raise ForgeError(
                        self.redact(
                            f"repository {self.repository} not found at {self.api_url}: check "
                            f"GITHUB_REPOSITORY and GITHUB_API_URL, and that the token from "
                            f"{self.token_source} can access it"
                        )
                    ) from None
        return self._repo

    def dispatch_workflow(
        self, workflow_file: str, ref: str, reason: str, *, inputs: dict[str, str] | None = None
    ) -> None:
        """workflow_dispatch `workflow_file` on `ref` with `inputs` (default: a `reason` input; plain when
        the workflow declares none of them)."""
        repo = self.repo()
        with self.api(f"dispatch {workflow_file} on {ref}", PERM_ACTIONS):
            workflow = repo.get_workflow(workflow_file)
            try:
                workflow.create_dispatch(ref, inputs=inputs or {"reason": reason}, throw=True)
            except GithubException as exc:
                # a workflow without a `reason` input: dispatch it plain
                if exc.status != 422 or "unexpected inputs" not in github_message(exc.data).lower():
                    raise
                workflow.create_dispatch(ref, throw=True)


OPTIMIZE_WORKFLOW = "optimize.yml"


def dispatch_optimize(session: GitHubSession, base: str, horizons: list[str], reason: str) -> str:
    """workflow_dispatch optimize.yml on `base` with `watch_reason` (the daily watch's alarm): one dispatch
    for all four horizons, else one per horizon (the workflow's `horizon` input takes one or all)."""
    from bot.core.config import HORIZONS

    targets = ["all"] if set(horizons) >= set(HORIZONS) else list(horizons)
    for target in targets:
        inputs = {"horizon": target, "watch_reason": reason[:1000]}
        try:
            session.dispatch_workflow(OPTIMIZE_WORKFLOW, base, reason, inputs=inputs)
        except ForgeError as exc:
            raise ForgeError(
                f"the watch alarmed, but the optimization did not start: {exc}; start it by hand: "
                f"gh workflow run {OPTIMIZE_WORKFLOW} --ref {base} -f horizon={target}"
            ) from None
    return f"dispatched {OPTIMIZE_WORKFLOW} on {base} ({', '.join(f'horizon={t}' for t in targets)})"
