"""Issues on GitHub that the bot keeps open while a condition lasts (one per `IssueSpec`, never two)."""

from __future__ import annotations

from github.Issue import Issue

from bot.adapters.forges.base import IssueSpec
from bot.adapters.forges.github_http import GitHubSession

PERM_ISSUES = "issues: write"


def find_issue(session: GitHubSession, spec: IssueSpec) -> Issue | None:
    """The open issue: by label first, then by title prefix or marker among all open issues."""
    repo = session.repo()
    with session.api("list issues", PERM_ISSUES):
        for issues in (repo.get_issues(state="open", labels=[spec.label]), repo.get_issues(state="open")):
            for issue in issues:
                if issue.pull_request is not None:
                    continue
                if issue.title.startswith(spec.title_prefix) or spec.marker in (issue.body or ""):
                    return issue
    return None


def ensure_issue(session: GitHubSession, spec: IssueSpec) -> tuple[str, int]:
    issue = find_issue(session, spec)
    with session.api(f"open or update the issue '{spec.title}'", PERM_ISSUES):
        if issue is None:
            created = session.repo().create_issue(title=spec.title, body=spec.body, labels=[spec.label])
            return "created", created.number
        if issue.title == spec.title and (issue.body or "") == spec.body:
            return "unchanged", issue.number
        issue.edit(title=spec.title, body=spec.body)
        return "updated", issue.number


def close_issue(session: GitHubSession, spec: IssueSpec, comment: str) -> int | None:
    issue = find_issue(session, spec)
    if issue is None:
        return None
    with session.api(f"close issue #{issue.number}", PERM_ISSUES):
        issue.create_comment(comment)
        issue.edit(state="closed")
    return issue.number
