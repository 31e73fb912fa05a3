"""Pull requests on GitHub: reading our branches and bodies, labels, revert bodies, and merging safely."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import requests
from github import GithubException
from github.PullRequest import PullRequest

from bot.adapters.forges.base import (
    BRANCH_PREFIX,
    Proposal,
    PullRecord,
    body_hash,
)
from bot.adapters.forges.github_http import PERM_CONTENTS, PERM_PULLS, GitHubSession, github_message
from bot.adapters.git import GitRepo
from bot.core.marker import metadata_comment
from bot.errors import ForgeError

LABEL_COLORS = {"chronops": "5319e7", "approved": "2ea44f", "needs-review": "fbca04", "rollback": "d93f0b"}


# Labels the bot owns on its pull requests; others (a human's "do-not-merge") are never removed.
BOT_LABELS = re.compile(r"^(approved|needs-review|horizon:.+)$")


REVERTS = re.compile(r"^Reverts (?:[\w.-]+/[\w.-]+)?#(\d+)\b", re.MULTILINE)


REVERT_BRANCH = re.compile(r"revert-(.+)-(\d+)")


# helpers -----------------------------------------------------------------------------------------
def parse_branch(ref: str) -> tuple[str, str, int | None] | None:
    """chronops/<h> -> (h, "tune", None); chronops/revert-<h>-<n> -> (h, "revert", n); else None."""
    if not ref.startswith(BRANCH_PREFIX):
        return None
    rest = ref[len(BRANCH_PREFIX) :]
    match = REVERT_BRANCH.fullmatch(rest)
    if match:
        return match.group(1), "revert", int(match.group(2))
    return (rest, "tune", None) if rest and "/" not in rest else None


def normalise(body: str) -> str:
    return body.replace("\r\n", "\n")


def pr_matches(pr: PullRequest, title: str, body: str, labels: tuple[str, ...]) -> bool:
    current = {lb.name for lb in pr.labels}
    stale = {n for n in current if BOT_LABELS.match(n) and n not in labels}
    return (
        pr.title == title
        and body_hash(normalise(pr.body or "")) == body_hash(normalise(body))
        and set(labels) <= current
        and not stale
    )


def branch_has(git: GitRepo, head: str, base_sha: str, files: dict[str, str]) -> bool:
    """The branch is one commit on the current base with exactly these file contents."""
    try:
        parent = git.git("rev-parse", f"{head}^")
    except ForgeError:
        return False
    return parent == base_sha and all(git.show_file(head, p) == t.rstrip("\n") for p, t in files.items())


def labels_for(proposal: Proposal) -> tuple[str, ...]:
    verdict = "approved" if proposal.approved else "needs-review"
    wanted = ["chronops", f"horizon:{proposal.horizon}", verdict]
    extra = [lb for lb in proposal.labels if lb not in {"approved", "needs-review"} and lb not in wanted]
    return (*wanted, *extra)


def label_color(name: str) -> str:
    return LABEL_COLORS.get(name, "0e8a16" if name.startswith("horizon:") else "ededed")


def revert_body(horizon: str, target: PullRecord, reason: str) -> str:
    short = (target.merge_sha or "")[:10]
    meta = {
        "tool": "chronops",
        "kind": "revert",
        "horizon": horizon,
        "reverts": target.number,
        "reason": reason,
    }
    return (
        f"Reverts #{target.number}\n\n"
        f"Rolls back {horizon}: #{target.number} ({target.title}) by reverting its merge commit `{short}`. "
        "Merging this pull request deploys the previous config.\n\n"
        f"Reason: {reason}\n\n"
        f"{metadata_comment(meta)}\n"
    )


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def get_pull(session: GitHubSession, number: int) -> PullRequest:
    repo = session.repo()
    with session.api(f"read pull request #{number}"):
        return repo.get_pull(number)


def wait_mergeable(session: GitHubSession, number: int) -> PullRequest:
    """GitHub computes `mergeable` in the background: ask a bounded number of times."""
    for attempt in range(session.policy.mergeable_polls):
        pr = get_pull(session, number)
        with session.api(f"read pull request #{number}"):
            if pr.merged or pr.state != "open" or pr.mergeable is not None:
                return pr
        if attempt + 1 < session.policy.mergeable_polls:
            time.sleep(session.policy.poll_interval)
    raise ForgeError(
        f"GitHub has not worked out whether pull request #{number} can be merged after "
        f"{session.policy.mergeable_polls} checks; run again in a minute"
    )


def merge_once(session: GitHubSession, pr: PullRequest, merge_method: str) -> None:
    """One merge, pinned to the head we checked. A lost answer (merged after all) is success; a head
    that moved meanwhile is refused: we never merge content the gate did not see."""
    number, head_sha = pr.number, pr.head.sha
    for attempt in (1, 2):
        failure: GithubException | None = None
        try:
            pr.merge(merge_method=merge_method, sha=head_sha)
            return
        except GithubException as exc:
            failure = exc
        except requests.RequestException:
            pass  # the connection failed after retries: it may have merged anyway
        current = get_pull(session, number)
        with session.api(f"read pull request #{number}"):
            if current.merged:
                return
            moved = current.head.sha != head_sha
        if failure is None:
            raise ForgeError(f"cannot reach GitHub at {session.api_url} to merge #{number}; run again")
        if failure.status == 409 and not moved and attempt == 1:
            continue  # a transient conflict on GitHub's side: once more, same head
        raise merge_error(session, failure, number, moved)


class MergeBlockedError(ForgeError):
    """Branch protection refused a direct merge (required checks or reviews): native auto-merge may
    still merge it once they pass."""


def merge_error(session: GitHubSession, exc: GithubException, number: int, moved: bool) -> ForgeError:
    said = github_message(exc.data)
    if moved:
        return ForgeError(
            f"pull request #{number} changed while merging (its head moved); not merging unchecked content"
        )
    if exc.status in (405, 409):
        return MergeBlockedError(
            session.redact(
                f"base branch is protected: merge needs required checks/reviews (GitHub: {said}); "
                f"pull request #{number} stays open for review, or use native auto-merge (docs/github.md)"
            )
        )
    return session.error(exc, f"merge pull request #{number}", PERM_CONTENTS)


def enable_auto_merge(session: GitHubSession, pr: PullRequest, merge_method: str) -> None:
    """Turn on GitHub's native auto-merge (GraphQL enablePullRequestAutoMerge), pinned to the head the
    gate saw. Refused: one line saying why neither way can merge, and what to change."""
    number = pr.number
    try:
        pr.enable_automerge(merge_method=merge_method.upper(), expected_head_oid=pr.head.sha)
    except GithubException as exc:
        errors = exc.data.get("errors") if isinstance(exc.data, dict) else None
        said = github_message(errors[0] if errors else exc.data)
        raise ForgeError(
            session.redact(
                f"cannot merge pull request #{number}: the base branch requires checks or reviews, and "
                f"GitHub refused native auto-merge ({said}); turn on Settings → General → \"Allow "
                "auto-merge\" and give the bot an App or PAT token (docs/github.md), or merge it by hand"
            )
        ) from None
    except requests.RequestException:
        raise ForgeError(
            f"cannot reach GitHub at {session.api_url} to enable auto-merge on #{number}; run again"
        ) from None


def sync_labels(session: GitHubSession, pr: PullRequest, labels: tuple[str, ...]) -> tuple[str, ...]:
    """Add the missing bot labels and remove stale ones; others' labels stay. Returns the result."""
    with session.api(f"label pull request #{pr.number}", PERM_PULLS):
        current = [lb.name for lb in pr.labels]
        missing = [name for name in labels if name not in current]
        if missing:
            pr.add_to_labels(*missing)
        stale = sorted(n for n in current if BOT_LABELS.match(n) and n not in labels)
        for name in stale:
            pr.remove_from_labels(name)
    return (*(n for n in current if n not in stale), *missing)


def request_reviews(session: GitHubSession, pr: PullRequest, wanted: list[str]) -> None:
    """Ask `wanted` ("login" or "org/team") to review; repeated on every change."""
    if not wanted:
        return
    users = [r for r in wanted if "/" not in r]
    teams = [r.split("/", 1)[1] for r in wanted if "/" in r]
    with session.api(f"request reviews on #{pr.number} from {', '.join(wanted)}", PERM_PULLS):
        pr.create_review_request(reviewers=users, team_reviewers=teams)
