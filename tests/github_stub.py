"""A GitHub stand-in for tests: GitHub-shaped JSON over HTTP, backed by a REAL bare git repository.

`running_stub(bare)` starts a `ThreadingHTTPServer` on 127.0.0.1 (port 0) in a daemon thread and
shuts it down afterwards. The bare repository is also the workspace's `origin`: the forge pushes with
git, the stand-in reads refs and merges with git (`git merge --no-ff` in a temporary worktree of the
bare repository, then `update-ref`), so every sha it returns is real.

What it answers (what PyGithub sends for the forge and the watchdog):
  GET  /repos/{o}/{r}
  GET|POST /repos/{o}/{r}/pulls                 (filters state, head "owner:ref", base; paginated)
  GET|PATCH /repos/{o}/{r}/pulls/{n}            (mergeable is null for the first `mergeable_delay` reads)
  GET|PUT  /repos/{o}/{r}/pulls/{n}/merge
  POST /repos/{o}/{r}/pulls/{n}/requested_reviewers
  GET|POST /repos/{o}/{r}/labels
  POST|PUT /repos/{o}/{r}/issues/{n}/labels, DELETE .../labels/{name}
  GET|POST /repos/{o}/{r}/issues, GET|PATCH /repos/{o}/{r}/issues/{n}, GET|POST .../issues/{n}/comments
  GET  /repos/{o}/{r}/actions/workflows/{id}, POST .../dispatches (recorded in `dispatches`)
  GET  /repos/{o}/{r}/git/refs/heads/{branch}, POST /repos/{o}/{r}/git/refs
  POST /graphql                                 (the `enablePullRequestAutoMerge` mutation only)
List responses omit the fields GitHub omits there (merged, mergeable, merged_by ...), so code that
touches them on a listed object pays an extra GET here as it would on GitHub.

Knobs for tests: `token` (anything else gets 401 "Bad credentials"), `deny(permission)` (403 "Resource
not accessible by integration" with GitHub's X-Accepted-GitHub-Permissions header; denying
"contents: write" also makes git pushes fail through a pre-receive hook), `protected` (merges answer
405), `required_checks` (a branch protection rule: direct merges answer 405 "Required status check ...
is expected", native auto-merge may be enabled over GraphQL when `allow_auto_merge`, and
`checks_pass(n)` then merges the pull request as GitHub would), `faults` (a seeded fraction of requests answers 502 or a 403 secondary rate limit with
Retry-After), `fail_once(...)` (one-shot answers; `apply=True` runs the request first, as when GitHub
did the work but the answer was lost). Every request is recorded in `requests` (never the
Authorization header).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

JSON = dict[str, Any]
Reply = tuple[int, Any, dict[str, str]]

GITHUB_GIT_ENV = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
PERMISSION_HEADER = {
    "contents: write": "contents=write",
    "pull-requests: write": "pull_requests=write",
    "issues: write": "issues=write",
    "actions: write": "actions=write",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: str
    status: int = 0
    fault: str | None = None  # "502" | "secondary" | "once" | None
    authorized: bool = True


@dataclass
class Faults:
    rate: float = 0.0  # fraction of requests that fail before being handled
    seed: int = 0
    kinds: tuple[str, ...] = ("502", "secondary")
    retry_after: int = 0  # seconds, on secondary rate limits


@dataclass
class OneShot:
    method: str
    path: re.Pattern[str]
    status: int
    message: str
    apply: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[Any] | None = None


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubStub:
    def __init__(
        self,
        bare: Path,
        *,
        repository: str = "acme/fx",
        token: str = "stub-token-0000",
        default_branch: str = "main",
        workflows: tuple[str, ...] = ("deploy.yml", "optimize.yml"),
        mergeable_delay: int = 1,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.bare = bare
        self.repository = repository
        self.owner = repository.split("/")[0]
        self.token = token
        self.default_branch = default_branch
        self.workflows = list(workflows)
        self.workflow_inputs: dict[str, set[str]] = {  # declared inputs (tests check optimize.yml's)
            "deploy.yml": {"reason"},
            "optimize.yml": {"horizon", "force", "dry_run", "automerge", "watch_reason"},
        }
        self.mergeable_delay = mergeable_delay
        self.clock = clock or (lambda: datetime.now(UTC))
        self.api_url = ""  # set once the server listens
        self.protected = False
        self.required_checks: list[str] = []  # protected base branch: merges wait for these checks
        self.allow_auto_merge = True  # the repository setting "Allow auto-merge"
        self.collaborators: set[str] | None = None  # None: anyone may be asked to review
        self.faults = Faults()
        self._rng = random.Random(0)
        self.denied: set[str] = set()
        self.one_shots: list[OneShot] = []
        self.requests: list[Recorded] = []
        self.dispatches: list[JSON] = []
        self.pulls: dict[int, JSON] = {}
        self.issues: dict[int, JSON] = {}
        self.comments: list[JSON] = []
        self.labels: dict[str, JSON] = {}
        self.reopened: list[int] = []
        self._next = 1
        self._reads: dict[int, int] = {}
        self.lock = threading.RLock()

    # knobs -------------------------------------------------------------------------------------
    def set_faults(self, rate: float, *, seed: int = 0, retry_after: int = 0, kinds: tuple[str, ...] = ("502", "secondary")) -> None:  # fmt: skip
        self.faults = Faults(rate=rate, seed=seed, kinds=kinds, retry_after=retry_after)
        self._rng = random.Random(seed)

    def deny(self, permission: str) -> None:
        self.denied.add(permission)
        if permission == "contents: write":
            hook = self.bare / "hooks" / "pre-receive"
            hook.write_text(
                f"#!/bin/sh\necho 'Permission to {self.repository}.git denied to github-actions[bot].' >&2\nexit 1\n"
            )
            hook.chmod(0o755)

    def allow(self, permission: str) -> None:
        self.denied.discard(permission)
        if permission == "contents: write":
            (self.bare / "hooks" / "pre-receive").unlink(missing_ok=True)

    def fail_once(self, method: str, path: str, status: int, message: str, *, apply: bool = False, headers: dict[str, str] | None = None, errors: list[Any] | None = None) -> None:  # fmt: skip
        """The next request `method` whose repo-relative path (e.g. "/pulls") fully matches the regex
        `path` answers `status` with `message` (after running, when `apply`)."""
        self.one_shots.append(
            OneShot(method, re.compile(path), status, message, apply, headers or {}, errors)
        )

    def checks_pass(self, number: int) -> bool:
        """The required checks of pull request `number` pass: GitHub merges it if auto-merge is on."""
        with self.lock:
            pr = self.pulls[number]
            auto = pr.get("auto_merge")
            if pr["state"] != "open" or not auto:
                return False
            head = self.ref(pr["head_ref"])
            sha = self._git_merge(pr, str(head), auto["merge_method"].lower(), {})
            now = self.clock()
            pr.update(
                state="closed", merged_at=now, closed_at=now, updated_at=now, merge_commit_sha=sha,
                head_sha=head, merged_by=auto["enabled_by"]["login"],
            )  # fmt: skip
            return True

    # inspection --------------------------------------------------------------------------------
    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.bare, capture_output=True, text=True, check=True,
            env={**os.environ, **GITHUB_GIT_ENV},
        ).stdout.strip()  # fmt: skip

    def ref(self, branch: str) -> str | None:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.bare, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return proc.stdout.strip() or None

    def open_pulls(self, head: str | None = None) -> list[JSON]:
        with self.lock:
            return [
                p for p in self.pulls.values()
                if p["state"] == "open" and (head is None or p["head_ref"] == head)
            ]  # fmt: skip

    def writes(self) -> list[Recorded]:
        """Requests that reached a handler and could change state (faults excluded)."""
        return [r for r in self.requests if r.method != "GET" and r.fault is None]

    def close_pull(self, number: int, *, at: datetime | None = None) -> None:
        """A person closes a pull request without merging it."""
        with self.lock:
            pr = self.pulls[number]
            pr.update(state="closed", closed_at=at or self.clock(), updated_at=at or self.clock())
            pr["head_sha"] = self.ref(pr["head_ref"]) or pr["head_sha"]

    # HTTP --------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        text = body.decode("utf-8", errors="replace")
        rec = Recorded(method, parts.path, query, text)
        with self.lock:
            self.requests.append(rec)
            reply = self._dispatch(rec, headers, text)
            rec.status = reply[0]
            return reply

    def _dispatch(self, rec: Recorded, headers: dict[str, str], text: str) -> Reply:
        auth = headers.get("authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            rec.authorized = False
            return self._error(401, "Bad credentials")
        if self.faults.rate and self._rng.random() < self.faults.rate:
            rec.fault = self._rng.choice(self.faults.kinds)
            if rec.fault == "502":
                return self._error(502, "Server Error")
            reply = self._error(403, SECONDARY_RATE_LIMIT)
            reply[2]["Retry-After"] = str(self.faults.retry_after)
            return reply
        if rec.path == "/graphql" and rec.method == "POST":
            return self._graphql(text)
        prefix = f"/repos/{self.repository}"
        if not (rec.path == prefix or rec.path.startswith(prefix + "/")):
            return self._error(404, "Not Found")
        sub = rec.path[len(prefix) :]
        shot = next((s for s in self.one_shots if s.method == rec.method and s.path.fullmatch(sub)), None)
        if shot is not None:
            self.one_shots.remove(shot)
            rec.fault = "once"
            if shot.apply:
                self._route(rec.method, sub, rec.query, text)
            return self._error(shot.status, shot.message, shot.headers, shot.errors)
        return self._route(rec.method, sub, rec.query, text)

    def _route(self, method: str, sub: str, query: dict[str, str], text: str) -> Reply:
        try:
            payload = json.loads(text) if text.strip() else {}
        except ValueError:
            return self._error(400, "Problems parsing JSON")
        for verb, pattern, permission, handler in self._routes():
            match = re.fullmatch(pattern, sub)
            if verb == method and match:
                perm = permission(match) if callable(permission) else permission
                if perm in self.denied:
                    return self._error(
                        403, "Resource not accessible by integration",
                        {"X-Accepted-GitHub-Permissions": PERMISSION_HEADER.get(perm, perm)},
                    )  # fmt: skip
                try:
                    return handler(match, query, payload)
                except ApiError as exc:
                    return self._error(exc.status, exc.message, errors=exc.errors)
        return self._error(404, "Not Found")

    def _routes(self) -> list[tuple[str, str, Any, Callable[..., Reply]]]:
        prs, iss, act = "pull-requests: write", "issues: write", "actions: write"

        def issue_perm(m: re.Match[str]) -> str:
            return prs if int(m.group(1)) in self.pulls else iss

        return [
            ("GET", r"", None, self._get_repo),
            ("GET", r"/pulls", None, self._list_pulls),
            ("POST", r"/pulls", prs, self._create_pull),
            ("GET", r"/pulls/(\d+)", None, self._get_pull),
            ("PATCH", r"/pulls/(\d+)", prs, self._edit_pull),
            ("GET", r"/pulls/(\d+)/merge", None, self._is_merged),
            ("PUT", r"/pulls/(\d+)/merge", "contents: write", self._merge),
            ("POST", r"/pulls/(\d+)/requested_reviewers", prs, self._request_reviewers),
            ("GET", r"/labels", None, self._list_labels),
            ("POST", r"/labels", prs, self._create_label),
            ("POST", r"/issues/(\d+)/labels", issue_perm, self._add_labels),
            ("PUT", r"/issues/(\d+)/labels", issue_perm, self._set_labels),
            ("DELETE", r"/issues/(\d+)/labels/([^/]+)", issue_perm, self._remove_label),
            ("GET", r"/issues/(\d+)/comments", None, self._list_comments),
            ("POST", r"/issues/(\d+)/comments", issue_perm, self._create_comment),
            ("GET", r"/issues", None, self._list_issues),
            ("POST", r"/issues", iss, self._create_issue),
            ("GET", r"/issues/(\d+)", None, self._get_issue),
            ("PATCH", r"/issues/(\d+)", issue_perm, self._edit_issue),
            ("GET", r"/actions/workflows/([^/]+)", None, self._get_workflow),
            ("POST", r"/actions/workflows/([^/]+)/dispatches", act, self._dispatch_workflow),
            ("GET", r"/git/refs/heads/(.+)", None, self._get_ref),
            ("POST", r"/git/refs", "contents: write", self._create_ref),
        ]

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None, errors: list[Any] | None = None) -> Reply:  # fmt: skip
        body: JSON = {"message": message, "documentation_url": "https://docs.github.com/rest"}
        if errors:
            body["errors"] = errors
        return status, body, dict(headers or {})

    # JSON shapes -------------------------------------------------------------------------------
    @property
    def repo_url(self) -> str:
        return f"{self.api_url}/repos/{self.repository}"

    def _user(self, login: str) -> JSON:
        return {
            "login": login, "id": abs(hash(login)) % 10**6, "node_id": f"U_{login}", "type": "Bot" if login.endswith("[bot]") else "User",
            "url": f"{self.api_url}/users/{quote(login)}", "html_url": f"{self.api_url}/{quote(login)}", "site_admin": False,
        }  # fmt: skip

    def _repo_json(self) -> JSON:
        name = self.repository.split("/")[1]
        return {
            "id": 4242, "node_id": "R_4242", "name": name, "full_name": self.repository, "private": True,
            "owner": self._user(self.owner), "html_url": f"{self.api_url}/{self.repository}",
            "url": self.repo_url, "default_branch": self.default_branch, "fork": False, "archived": False,
            "clone_url": str(self.bare), "pulls_url": f"{self.repo_url}/pulls{{/number}}",
            "issues_url": f"{self.repo_url}/issues{{/number}}", "labels_url": f"{self.repo_url}/labels{{/name}}",
            "permissions": {"admin": False, "push": True, "pull": True},
            "allow_merge_commit": True, "allow_squash_merge": True, "allow_rebase_merge": True,
            "allow_auto_merge": self.allow_auto_merge,
        }  # fmt: skip

    def _label_json(self, name: str) -> JSON:
        label = self.labels.get(name) or {"color": "ededed", "description": None}
        return {
            "id": abs(hash(name)) % 10**6, "node_id": f"L_{name}", "url": f"{self.repo_url}/labels/{quote(name)}",
            "name": name, "color": label["color"], "default": False, "description": label["description"],
        }  # fmt: skip

    def _pull_json(self, pr: JSON, *, full: bool, poll: bool = False) -> JSON:
        n = pr["number"]
        head_sha = self.ref(pr["head_ref"]) if pr["state"] == "open" else pr["head_sha"]
        out: JSON = {
            "url": f"{self.repo_url}/pulls/{n}", "id": 10_000 + n, "node_id": f"PR_{n}",
            "html_url": f"{self.api_url}/{self.repository}/pull/{n}", "issue_url": f"{self.repo_url}/issues/{n}",
            "number": n, "state": pr["state"], "locked": False, "title": pr["title"], "user": self._user(pr["user"]),
            "body": pr["body"], "labels": [self._label_json(lb) for lb in pr["labels"]],
            "created_at": _ts(pr["created_at"]), "updated_at": _ts(pr["updated_at"]),
            "closed_at": _ts(pr["closed_at"]), "merged_at": _ts(pr["merged_at"]),
            "merge_commit_sha": pr["merge_commit_sha"], "draft": False, "assignee": None, "assignees": [],
            "requested_reviewers": [self._user(u) for u in pr["reviewers"]], "requested_teams": [],
            "milestone": None, "author_association": "CONTRIBUTOR", "auto_merge": pr.get("auto_merge"),
            "head": {
                "label": f"{self.owner}:{pr['head_ref']}", "ref": pr["head_ref"], "sha": head_sha or pr["head_sha"],
                "user": self._user(self.owner), "repo": self._repo_json(),
            },
            "base": {
                "label": f"{self.owner}:{pr['base_ref']}", "ref": pr["base_ref"], "sha": self.ref(pr["base_ref"]),
                "user": self._user(self.owner), "repo": self._repo_json(),
            },
        }  # fmt: skip
        if full:
            out.update(
                merged=pr["merged_at"] is not None, mergeable=self._mergeable(pr) if poll else None, rebaseable=True,
                mergeable_state="clean" if pr["state"] == "open" else "unknown",
                merged_by=self._user(pr["merged_by"]) if pr["merged_by"] else None, comments=0,
                review_comments=0, commits=1, additions=1, deletions=1, changed_files=1,
                maintainer_can_modify=False,
            )  # fmt: skip
        return out

    def _mergeable(self, pr: JSON) -> bool | None:
        if pr["state"] != "open":
            return None
        n = pr["number"]
        self._reads[n] = self._reads.get(n, 0) + 1
        if self._reads[n] <= self.mergeable_delay:
            return None  # GitHub is still computing it
        head, base = self.ref(pr["head_ref"]), self.ref(pr["base_ref"])
        if head is None or base is None:
            return False
        proc = subprocess.run(
            ["git", "merge-tree", "--write-tree", base, head], cwd=self.bare, capture_output=True, check=False
        )
        return proc.returncode == 0

    def _issue_json(self, number: int) -> JSON:
        if number in self.pulls:
            pr = self.pulls[number]
            base = self._pull_json(pr, full=False)
            out = {k: base[k] for k in (
                "number", "title", "user", "labels", "state", "locked", "assignee", "assignees", "milestone",
                "created_at", "updated_at", "closed_at", "body", "author_association",
            )}  # fmt: skip
            out["pull_request"] = {
                "url": base["url"],
                "html_url": base["html_url"],
                "merged_at": base["merged_at"],
            }
        else:
            issue = self.issues[number]
            out = {
                "number": number, "title": issue["title"], "user": self._user(issue["user"]),
                "labels": [self._label_json(lb) for lb in issue["labels"]], "state": issue["state"],
                "locked": False, "assignee": None, "assignees": [], "milestone": None,
                "created_at": _ts(issue["created_at"]), "updated_at": _ts(issue["updated_at"]),
                "closed_at": _ts(issue["closed_at"]), "body": issue["body"], "author_association": "NONE",
                "state_reason": issue.get("state_reason"),
            }  # fmt: skip
        out.update(
            url=f"{self.repo_url}/issues/{number}", repository_url=self.repo_url, id=20_000 + number,
            node_id=f"I_{number}", html_url=f"{self.api_url}/{self.repository}/issues/{number}",
            comments=sum(1 for c in self.comments if c["issue"] == number),
            comments_url=f"{self.repo_url}/issues/{number}/comments",
        )  # fmt: skip
        return out

    def _comment_json(self, c: JSON) -> JSON:
        return {
            "id": c["id"], "node_id": f"IC_{c['id']}", "url": f"{self.repo_url}/issues/comments/{c['id']}",
            "html_url": f"{self.api_url}/{self.repository}/issues/{c['issue']}#issuecomment-{c['id']}",
            "issue_url": f"{self.repo_url}/issues/{c['issue']}", "body": c["body"], "user": self._user("chronops[bot]"),
            "created_at": _ts(c["created_at"]), "updated_at": _ts(c["created_at"]),
        }  # fmt: skip

    def _workflow_json(self, name: str) -> JSON:
        wid = 7000 + self.workflows.index(name)
        return {
            "id": wid, "node_id": f"W_{wid}", "name": name.removesuffix(".yml"), "path": f".github/workflows/{name}",
            "state": "active", "url": f"{self.repo_url}/actions/workflows/{wid}",
            "html_url": f"{self.api_url}/{self.repository}/actions/workflows/{name}",
            "badge_url": f"{self.api_url}/{self.repository}/workflows/{name}/badge.svg",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        }  # fmt: skip

    def _page(self, items: list[Any], path: str, query: dict[str, str]) -> Reply:
        per_page = min(int(query.get("per_page", "30")), 100)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            nxt = urlencode({**query, "page": str(page + 1)})
            headers["Link"] = f'<{self.repo_url}{path}?{nxt}>; rel="next"'
        return 200, chunk, headers

    # handlers ----------------------------------------------------------------------------------
    def _pull(self, m: re.Match[str]) -> JSON:
        n = int(m.group(1))
        if n not in self.pulls:
            raise ApiError(404, "Not Found")
        return self.pulls[n]

    def _get_repo(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        return 200, self._repo_json(), {}

    def _list_pulls(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        state = q.get("state", "open")
        head = q.get("head")
        head_ref = head.split(":", 1)[1] if head and ":" in head else head
        items = [
            pr for pr in self.pulls.values()
            if (state == "all" or pr["state"] == state)
            and (head_ref is None or pr["head_ref"] == head_ref)
            and (q.get("base") is None or pr["base_ref"] == q["base"])
        ]  # fmt: skip
        items.sort(key=lambda pr: pr["number"], reverse=q.get("direction", "desc") == "desc")
        return self._page([self._pull_json(pr, full=False) for pr in items], "/pulls", q)

    def _create_pull(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        head = str(p.get("head", ""))
        head_ref = head.split(":", 1)[1] if ":" in head else head
        base_ref = str(p.get("base", ""))
        head_sha, base_sha = self.ref(head_ref), self.ref(base_ref)
        if head_sha is None:
            raise ApiError(
                422, "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
            )
        if base_sha is None:
            raise ApiError(
                422, "Validation Failed", [{"resource": "PullRequest", "field": "base", "code": "invalid"}]
            )
        if any(pr["head_ref"] == head_ref and pr["base_ref"] == base_ref for pr in self.open_pulls()):
            raise ApiError(422, "Validation Failed", [{
                "resource": "PullRequest", "code": "custom",
                "message": f"A pull request already exists for {self.owner}:{head_ref}.",
            }])  # fmt: skip
        if self.git("rev-list", "--count", f"{base_sha}..{head_sha}") == "0":
            raise ApiError(422, "Validation Failed", [{
                "resource": "PullRequest", "code": "custom", "message": f"No commits between {base_ref} and {head_ref}",
            }])  # fmt: skip
        now = self.clock()
        n = self._take_number()
        self.pulls[n] = {
            "number": n, "title": p.get("title", ""), "body": p.get("body"), "state": "open",
            "head_ref": head_ref, "head_sha": head_sha, "base_ref": base_ref, "labels": [], "reviewers": [],
            "user": "chronops[bot]", "created_at": now, "updated_at": now, "closed_at": None,
            "merged_at": None, "merge_commit_sha": None, "merged_by": None,
        }  # fmt: skip
        return 201, self._pull_json(self.pulls[n], full=True), {}

    def _take_number(self) -> int:
        n = self._next
        self._next += 1
        return n

    def _get_pull(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        return 200, self._pull_json(self._pull(m), full=True, poll=True), {}

    def _edit_pull(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        pr = self._pull(m)
        now = self.clock()
        for key in ("title", "body"):
            if key in p:
                pr[key] = p[key]
        if p.get("state") == "closed" and pr["state"] == "open":
            pr.update(state="closed", closed_at=now, head_sha=self.ref(pr["head_ref"]) or pr["head_sha"])
        elif p.get("state") == "open" and pr["state"] == "closed":
            if pr["merged_at"] is not None:
                raise ApiError(422, "Validation Failed", [{"code": "custom", "message": "state cannot be changed. The pull request was merged."}])  # fmt: skip
            if any(o["head_ref"] == pr["head_ref"] for o in self.open_pulls()):
                raise ApiError(422, "Validation Failed", [{"code": "custom", "message": "A pull request already exists"}])  # fmt: skip
            pr.update(state="open", closed_at=None)
            self.reopened.append(pr["number"])
        pr["updated_at"] = now
        return 200, self._pull_json(pr, full=True), {}

    def _is_merged(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        return (204, None, {}) if self._pull(m)["merged_at"] else (404, {"message": "Not Found"}, {})

    def _merge(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        pr = self._pull(m)
        if pr["state"] != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        head = self.ref(pr["head_ref"])
        if p.get("sha") and p["sha"] != head:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        if self.protected:
            raise ApiError(405, "At least 1 approving review is required by reviewers with write access.")
        if self.required_checks:
            raise ApiError(405, f"Required status check \"{self.required_checks[0]}\" is expected.")
        method = p.get("merge_method", "merge")
        sha = self._git_merge(pr, str(head), method, p)
        now = self.clock()
        pr.update(
            state="closed", merged_at=now, closed_at=now, updated_at=now, merge_commit_sha=sha, head_sha=head,
            merged_by="chronops[bot]",
        )  # fmt: skip
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}

    def _git_merge(self, pr: JSON, head: str, method: str, p: JSON) -> str:
        base_ref = pr["base_ref"]
        base = self.ref(base_ref)
        assert base is not None
        n, title = pr["number"], pr["title"]
        with tempfile.TemporaryDirectory(prefix="stub-merge-") as tmp:
            wt = str(Path(tmp) / "wt")
            self.git("worktree", "add", "--detach", wt, base)

            def run(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    ["git", *args], cwd=wt, capture_output=True, text=True, check=False,
                    env={**os.environ, **GITHUB_GIT_ENV},
                )  # fmt: skip

            try:
                if method == "squash":
                    proc = run("merge", "--squash", head)
                    if proc.returncode == 0:
                        proc = run(
                            "commit", "--no-gpg-sign", "-m", p.get("commit_title") or f"{title} (#{n})"
                        )
                elif method == "rebase":
                    proc = run("cherry-pick", f"{base}..{head}")
                else:
                    message = (
                        p.get("commit_title") or f"Merge pull request #{n} from {self.owner}/{pr['head_ref']}"
                    )
                    proc = run("merge", "--no-ff", "--no-gpg-sign", "-m", f"{message}\n\n{title}", head)
                if proc.returncode != 0:
                    raise ApiError(405, "Pull Request is not mergeable")
                sha = run("rev-parse", "HEAD").stdout.strip()
            finally:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", wt],
                    cwd=self.bare,
                    capture_output=True,
                    check=False,
                )
                subprocess.run(["git", "worktree", "prune"], cwd=self.bare, capture_output=True, check=False)
        self.git("update-ref", f"refs/heads/{base_ref}", sha, base)
        return sha

    def _request_reviewers(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        pr = self._pull(m)
        wanted = list(p.get("reviewers") or [])
        if self.collaborators is not None and any(r not in self.collaborators for r in wanted):
            raise ApiError(422, f"Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the {self.repository} repository.")  # fmt: skip
        pr["reviewers"] = sorted(set(pr["reviewers"]) | set(wanted))
        return 201, self._pull_json(pr, full=True), {}

    def _list_labels(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        return self._page([self._label_json(n) for n in self.labels], "/labels", q)

    def _create_label(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        name = str(p.get("name", ""))
        if name in self.labels:
            raise ApiError(422, "Validation Failed", [{"resource": "Label", "code": "already_exists", "field": "name"}])  # fmt: skip
        self.labels[name] = {"color": p.get("color", "ededed"), "description": p.get("description")}
        return 201, self._label_json(name), {}

    def _target(self, m: re.Match[str]) -> JSON:
        n = int(m.group(1))
        if n in self.pulls:
            return self.pulls[n]
        if n in self.issues:
            return self.issues[n]
        raise ApiError(404, "Not Found")

    def _label_list(self, p: Any) -> list[str]:
        names = p.get("labels", []) if isinstance(p, dict) else p
        out = []
        for item in names or []:
            name = item["name"] if isinstance(item, dict) else str(item)
            self.labels.setdefault(name, {"color": "ededed", "description": None})  # as GitHub does
            out.append(name)
        return out

    def _add_labels(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        target = self._target(m)
        target["labels"] = [*target["labels"], *(n for n in self._label_list(p) if n not in target["labels"])]
        return 200, [self._label_json(n) for n in target["labels"]], {}

    def _set_labels(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        target = self._target(m)
        target["labels"] = list(dict.fromkeys(self._label_list(p)))
        return 200, [self._label_json(n) for n in target["labels"]], {}

    def _remove_label(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        target = self._target(m)
        name = unquote(m.group(2))
        if name not in target["labels"]:
            raise ApiError(404, "Label does not exist")
        target["labels"].remove(name)
        return 200, [self._label_json(n) for n in target["labels"]], {}

    def _list_comments(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        self._target(m)
        mine = [self._comment_json(c) for c in self.comments if c["issue"] == int(m.group(1))]
        return self._page(mine, f"/issues/{m.group(1)}/comments", q)

    def _create_comment(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        self._target(m)
        c = {"id": 900 + len(self.comments), "issue": int(m.group(1)), "body": p.get("body", ""), "created_at": self.clock()}  # fmt: skip
        self.comments.append(c)
        return 201, self._comment_json(c), {}

    def _list_issues(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        state = q.get("state", "open")
        wanted = [lb for lb in q.get("labels", "").split(",") if lb]
        numbers = sorted({*self.pulls, *self.issues}, reverse=q.get("direction", "desc") == "desc")
        items = []
        for n in numbers:
            obj = self.pulls.get(n) or self.issues[n]
            if (state == "all" or obj["state"] == state) and all(lb in obj["labels"] for lb in wanted):
                items.append(self._issue_json(n))
        return self._page(items, "/issues", q)

    def _create_issue(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        if not p.get("title"):
            raise ApiError(422, "Validation Failed", [{"resource": "Issue", "field": "title", "code": "missing_field"}])  # fmt: skip
        now = self.clock()
        n = self._take_number()
        self.issues[n] = {
            "title": p["title"], "body": p.get("body"), "state": "open", "labels": self._label_list(p),
            "user": "chronops[bot]", "created_at": now, "updated_at": now, "closed_at": None,
        }  # fmt: skip
        return 201, self._issue_json(n), {}

    def _get_issue(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        self._target(m)
        return 200, self._issue_json(int(m.group(1))), {}

    def _edit_issue(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        n = int(m.group(1))
        target = self._target(m)
        now = self.clock()
        for key in ("title", "body"):
            if key in p:
                target[key] = p[key]
        if "labels" in p:
            target["labels"] = self._label_list(p)
        if p.get("state") in ("open", "closed") and p["state"] != target["state"]:
            target["state"] = p["state"]
            target["closed_at"] = now if p["state"] == "closed" else None
            if n in self.issues:
                target["state_reason"] = p.get("state_reason") or ("completed" if p["state"] == "closed" else "reopened")  # fmt: skip
        target["updated_at"] = now
        return 200, self._issue_json(n), {}

    def _workflow(self, key: str) -> str:
        for name in self.workflows:
            if key in (name, str(7000 + self.workflows.index(name))):
                return name
        raise ApiError(404, "Not Found")

    def _get_workflow(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        return 200, self._workflow_json(self._workflow(unquote(m.group(1)))), {}

    def _dispatch_workflow(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        name = self._workflow(unquote(m.group(1)))
        ref = str(p.get("ref", ""))
        if self.ref(ref.removeprefix("refs/heads/")) is None:
            raise ApiError(422, f"No ref found for: {ref}")
        inputs = p.get("inputs") or {}
        unexpected = sorted(set(inputs) - self.workflow_inputs.get(name, set()))
        if unexpected:
            raise ApiError(422, f"Unexpected inputs provided: {json.dumps(unexpected)}")
        self.dispatches.append({"workflow": name, "ref": ref, "inputs": inputs})
        return 204, None, {}

    def _get_ref(self, m: re.Match[str], q: dict[str, str], p: Any) -> Reply:
        branch = unquote(m.group(1))
        sha = self.ref(branch)
        if sha is None:
            raise ApiError(404, "Not Found")
        return 200, {
            "ref": f"refs/heads/{branch}", "node_id": f"REF_{branch}", "url": f"{self.repo_url}/git/refs/heads/{branch}",
            "object": {"sha": sha, "type": "commit", "url": f"{self.repo_url}/git/commits/{sha}"},
        }, {}  # fmt: skip

    def _create_ref(self, m: re.Match[str], q: dict[str, str], p: JSON) -> Reply:
        ref, sha = str(p.get("ref", "")), str(p.get("sha", ""))
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name is invalid")
        if self.ref(ref.removeprefix("refs/heads/")) is not None:
            raise ApiError(422, "Reference already exists")
        try:
            self.git("update-ref", ref, sha)
        except subprocess.CalledProcessError:
            raise ApiError(422, "Object does not exist") from None
        return 201, {"ref": ref, "node_id": f"REF_{ref}", "url": f"{self.repo_url}/git/{ref}", "object": {"sha": sha, "type": "commit", "url": ""}}, {}  # fmt: skip


    # GraphQL -----------------------------------------------------------------------------------
    def _graphql(self, text: str) -> Reply:
        """GitHub's GraphQL endpoint, for the one mutation chronops sends. GraphQL answers 200 with an
        `errors` list for refused mutations, as GitHub does."""
        try:
            doc = json.loads(text)
        except ValueError:
            return self._error(400, "Problems parsing JSON")
        query = str(doc.get("query", ""))
        if "enablePullRequestAutoMerge" not in query:
            return 200, {"errors": [{"type": "NOT_IMPLEMENTED", "message": "the stand-in knows only enablePullRequestAutoMerge"}]}, {}  # fmt: skip
        args = (doc.get("variables") or {}).get("input") or {}
        if "contents: write" in self.denied or "pull-requests: write" in self.denied:
            return self._graphql_error("FORBIDDEN", "Resource not accessible by integration")
        match = re.fullmatch(r"PR_(\d+)", str(args.get("pullRequestId", "")))
        pr = self.pulls.get(int(match.group(1))) if match else None
        if pr is None:
            return self._graphql_error("NOT_FOUND", f"Could not resolve to a node with the global id of '{args.get('pullRequestId')}'")  # fmt: skip
        if not self.allow_auto_merge:
            return self._graphql_error("UNPROCESSABLE", "Pull request Auto merge is not allowed for this repository")
        if pr["state"] != "open":
            return self._graphql_error("UNPROCESSABLE", "Pull request is not in the correct state to enable auto-merge")
        if not (self.required_checks or self.protected):
            return self._graphql_error("UNPROCESSABLE", "Pull request is in clean status")
        method = str(args.get("mergeMethod", "MERGE"))
        pr["auto_merge"] = {
            "enabled_by": self._user("chronops[bot]"), "merge_method": method.lower(),
            "commit_title": args.get("commitHeadline"), "commit_message": args.get("commitBody"),
        }  # fmt: skip
        pr["updated_at"] = self.clock()
        actor = {"login": "chronops[bot]", "avatarUrl": "", "resourcePath": "/apps/chronops", "url": ""}
        return 200, {"data": {"enablePullRequestAutoMerge": {"actor": actor, "clientMutationId": args.get("clientMutationId")}}}, {}  # fmt: skip

    def _graphql_error(self, kind: str, message: str) -> Reply:
        return 200, {"data": {"enablePullRequestAutoMerge": None}, "errors": [{"type": kind, "message": message}]}, {}  # fmt: skip


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: GitHubStub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = self.server.stub.handle(self.command, self.path, headers, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def running_stub(bare: Path, **options: Any) -> Iterator[GitHubStub]:
    """A GitHubStub serving on 127.0.0.1 (port 0) for the duration of the block."""
    stub = GitHubStub(bare, **options)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stub = stub
    stub.api_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
