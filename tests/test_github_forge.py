"""The GitHub forge against a GitHub stand-in (tests/github_stub.py) backed by a real bare repository:
idempotent proposals, merges, revert rollbacks, snooze, faults, permissions and token hygiene."""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.forges.base import Proposal, PullRecord
from bot.adapters.forges.github import GitHubForge
from bot.adapters.forges.github_http import RetryPolicy, TokenSource, git_auth_env
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.core.snooze import is_snoozed, snooze_until
from bot.errors import ForgeError
from bot.secrets import redact
from bot.settings import settings_from_dict
from bot.workspace import Workspace
from tests.conftest import git, run_cli
from tests.github_stub import GitHubStub, running_stub

BRANCH = "chronops/7d"
BEFORE = '{"context_length": 90}'
SENTINEL = "ghs_SENTINEL0123456789abcdefSECRET"


def proposal(
    body: str = "report v1", content: str = '{"context_length": 180}\n', approved: bool = True
) -> Proposal:
    return Proposal(
        horizon="7d", title="chronops: tune 7d (RMSE -10.0%)",
        body=f"{body}\n\n<!-- chronops-metadata {{\"tool\":\"chronops\",\"horizon\":\"7d\"}} -->\n",
        labels=("chronops", "horizon:7d", "approved" if approved else "needs-review"),
        files={"configs/7d.json": content}, commit_message="chronops: tune 7d", approved=approved,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def origin(git_remote: tuple[Path, Path]) -> tuple[Path, Path]:
    bare, clone = git_remote
    (clone / "configs").mkdir()
    (clone / "configs" / "7d.json").write_text(BEFORE + "\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-m", "add config")
    git(clone, "push", "origin", "main")
    return bare, clone


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stub(origin: tuple[Path, Path], clock: Clock) -> Iterator[GitHubStub]:
    with running_stub(origin[0], clock=clock) as s:
        yield s


Make = Callable[..., GitHubForge]


@pytest.fixture
def make(stub: GitHubStub, origin: tuple[Path, Path], clock: Clock) -> Make:
    def build(
        *,
        token: str | None = None,
        source: TokenSource = "CHRONOPS_GITHUB_TOKEN",
        repository: str | None = None,
        **settings: object,
    ) -> GitHubForge:
        return GitHubForge(
            GitRepo.open(origin[1]), repository=repository or stub.repository, token=token or stub.token,
            token_source=source, api_url=stub.api_url, settings=settings_from_dict(settings),
            policy=RetryPolicy.no_backoff(), clock=clock,
        )  # fmt: skip

    return build


def assert_one_open(stub: GitHubStub, branch: str = BRANCH) -> int:
    open_pulls = stub.open_pulls(branch)
    assert len(open_pulls) == 1, [p["number"] for p in open_pulls]
    return int(open_pulls[0]["number"])


def first_parent_log(bare: Path) -> list[str]:
    return git(bare, "log", "--first-parent", "--format=%s", "main").splitlines()


# (a) the whole flow -------------------------------------------------------------------------------
def run_flow(forge: GitHubForge, stub: GitHubStub, bare: Path) -> tuple[int, PullRecord]:
    created = forge.propose(proposal())
    assert created.action == "created"
    number = created.pull.number
    assert assert_one_open(stub) == number
    assert set(stub.pulls[number]["labels"]) == {"chronops", "horizon:7d", "approved"}

    writes, head, requests = len(stub.writes()), stub.ref(BRANCH), len(stub.requests)
    again = forge.propose(proposal())
    assert again.action == "unchanged" and again.pull.number == number
    assert len(stub.writes()) == writes, "a re-run with the same body writes nothing"
    if not stub.faults.rate:
        assert len(stub.requests) == requests + 1, "one listing, no lazy per-PR reads"
    assert stub.ref(BRANCH) == head, "and pushes nothing"

    updated = forge.propose(proposal(body="report v2"))
    assert updated.action == "updated" and updated.pull.number == number
    assert assert_one_open(stub) == number and "report v2" in stub.pulls[number]["body"]
    assert stub.ref(BRANCH) == head, "same config: the branch (and its CI, its reviews) is kept"

    merged = forge.merge(number)
    assert merged.state == "merged" and merged.merge_sha == git(bare, "rev-parse", "main")
    assert len(git(bare, "rev-list", "--parents", "-n", "1", "main").split()) == 3, "a real merge commit"
    assert git(bare, "show", "main:configs/7d.json") == '{"context_length": 180}'
    assert stub.open_pulls() == []

    revert = forge.rollback("7d", to=None, reason="RMSE spiked", merge=True)
    assert revert.kind == "revert" and revert.reverts == number and revert.state == "merged"
    body = stub.pulls[revert.number]["body"]
    assert body.startswith(f"Reverts #{number}\n") and "Reason: RMSE spiked" in body
    assert git(bare, "show", "main:configs/7d.json") == BEFORE, "main holds the pre-merge config again"
    log = first_parent_log(bare)
    assert log[:2] == [
        f"Merge pull request #{revert.number} from acme/chronops/revert-7d-{number}",
        f"Merge pull request #{number} from acme/chronops/7d",
    ]
    assert f"Revert chronops 7d (#{number}" in git(bare, "log", "--format=%s", "main")
    assert stub.ref(f"chronops/revert-7d-{number}") is None, "the merged revert branch is deleted"
    with pytest.raises(ForgeError, match="nothing to roll back"):
        forge.rollback("7d", to=None, reason="again", merge=True)
    return number, revert


def test_propose_update_merge_rollback_end_to_end(
    make: Make, stub: GitHubStub, origin: tuple[Path, Path]
) -> None:
    forge = make()
    number, revert = run_flow(forge, stub, origin[0])
    assert stub.dispatches == [], "an App/PAT merge fires on: push by itself"
    records = {p.number: p for p in forge.pulls("7d")}
    assert records[number].state == "merged" and records[revert.number].reverts == number
    assert all(r.fault is None for r in stub.requests)


def test_a_new_proposal_after_a_merge_opens_a_new_pull_request(make: Make, stub: GitHubStub) -> None:
    forge = make()
    first = forge.propose(proposal()).pull.number
    forge.merge(first)
    second = forge.propose(proposal(content='{"context_length": 270}\n'))
    assert second.action == "created" and second.pull.number != first
    assert stub.git("rev-list", "--count", f"main..{BRANCH}") == "1", "rebuilt on the new main"


# (b) the same flow under faults -------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flow_survives_30_percent_faults(
    make: Make, stub: GitHubStub, origin: tuple[Path, Path], seed: int
) -> None:
    stub.set_faults(0.3, seed=seed, retry_after=0)
    # and answers lost after GitHub did the work: the retried POST meets 422 "already exists",
    # the retried merge meets 405 "not mergeable" on a pull request that is merged
    stub.fail_once("POST", r"/pulls", 502, "Server Error", apply=True)
    stub.fail_once("PUT", r"/pulls/\d+/merge", 502, "Server Error", apply=True)
    started = time.monotonic()
    run_flow(make(), stub, origin[0])
    elapsed = time.monotonic() - started
    faults = [r for r in stub.requests if r.fault]
    print(
        f"\nseed {seed}: {len(stub.requests)} requests, {len(faults)} failed and retried "
        f"({sum(r.fault == '502' for r in faults)} x 502, {sum(r.fault == 'secondary' for r in faults)} x "
        f"secondary rate limit, {sum(r.fault == 'once' for r in faults)} lost answers), {elapsed:.2f} s"
    )
    assert len(faults) >= 5
    assert len(stub.pulls) == 2, "no duplicate pull request was ever opened"
    assert stub.reopened == []


def test_retry_after_is_honoured(make: Make, stub: GitHubStub) -> None:
    stub.fail_once("GET", r"", 403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", headers={"Retry-After": "1"})  # fmt: skip
    started = time.monotonic()
    assert make().pulls() == []
    assert time.monotonic() - started >= 1.0


def test_retries_are_bounded_and_end_in_one_line(make: Make, stub: GitHubStub) -> None:
    stub.set_faults(1.0, kinds=("502",))
    with pytest.raises(ForgeError) as err:
        make().pulls()
    assert str(err.value) == (
        "GitHub failed to read repository acme/fx (502: Server Error) after 8 retries; run again later"
    )
    assert len(stub.requests) == 9


# (c) snooze ---------------------------------------------------------------------------------------
def test_closed_unmerged_pull_request_snoozes_the_horizon(make: Make, stub: GitHubStub, clock: Clock) -> None:
    forge = make(triggers={"snooze_weeks": 4})
    first = forge.propose(proposal()).pull.number
    stub.close_pull(first)
    closed = forge.closed_unmerged("7d")
    assert closed is not None and closed.number == first and closed.state == "closed"
    assert forge.snoozed_until("7d") == clock.now + timedelta(weeks=4)

    writes, head = len(stub.writes()), stub.ref(BRANCH)
    clock.now += timedelta(weeks=3)
    snoozed = forge.propose(proposal(body="report v2", content='{"context_length": 270}\n'))
    assert snoozed.action == "snoozed" and snoozed.pull.number == first
    assert len(stub.writes()) == writes and stub.ref(BRANCH) == head and stub.open_pulls() == []

    changed = forge.propose(proposal(body="report v3"), triggers_changed=True)
    assert changed.action == "created" and changed.pull.number != first, "a NEW pull request"
    assert stub.reopened == []
    assert forge.snoozed_until("7d") is None

    stub.close_pull(changed.pull.number)
    clock.now += timedelta(weeks=3)
    assert forge.snoozed_until("7d") is not None
    assert forge.propose(proposal(body="report v4")).action == "snoozed"
    clock.now += timedelta(weeks=1)
    assert forge.snoozed_until("7d") is None, "the snooze has expired"
    expired = forge.propose(proposal(body="report v4"))
    assert expired.action == "created" and expired.pull.number not in (first, changed.pull.number)
    assert stub.reopened == [] and len(stub.open_pulls()) == 1


def test_snooze_decision_is_pure() -> None:
    closed = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_snoozed(closed, closed + timedelta(weeks=3), 4, triggers_changed=False)
    assert not is_snoozed(closed, closed + timedelta(weeks=3), 4, triggers_changed=True)
    assert not is_snoozed(closed, snooze_until(closed, 4), 4, triggers_changed=False)
    assert not is_snoozed(closed, closed, 0, triggers_changed=False), "0 weeks turns snoozing off"
    assert not is_snoozed(None, closed, 4, triggers_changed=False)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_snoozed(closed, datetime(2026, 1, 2), 4, triggers_changed=False)


def test_local_forge_snoozes_too(origin: tuple[Path, Path], clock: Clock) -> None:
    clone = origin[1]
    forge = LocalForge(
        GitRepo.open(clone), clone / "data" / "forge" / "pulls.json", snooze_weeks=2, clock=clock
    )
    first = forge.propose(proposal()).pull
    forge.close(first.number)
    assert forge.snoozed_until("7d") is not None
    assert forge.propose(proposal(body="v2")).action == "snoozed"
    assert forge.propose(proposal(body="v2"), triggers_changed=True).action == "created"


# (d) the token never leaks ------------------------------------------------------------------------
def test_token_never_appears_anywhere(
    origin: tuple[Path, Path], clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bare, clone = origin
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    with running_stub(bare, token=SENTINEL, clock=clock) as stub:
        env = {"CHRONOPS_GITHUB_TOKEN": SENTINEL, "GITHUB_REPOSITORY": stub.repository, "GITHUB_API_URL": stub.api_url, "CHRONOPS_RETRY_BACKOFF": "0"}  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        forge = GitHubForge.from_environment(Workspace.open(clone))
        assert forge.token_source == "CHRONOPS_GITHUB_TOKEN" and SENTINEL not in repr(forge)
        stub.set_faults(0.2, seed=7)
        leaky = proposal(body=f"rendered with the environment: {os.environ['CHRONOPS_GITHUB_TOKEN']}")
        number = forge.propose(leaky).pull.number
        for permission, step in (
            ("pull-requests: write", lambda: forge.propose(proposal(body="v2"))),
            ("contents: write", lambda: forge.merge(number)),
        ):
            stub.deny(permission)
            with pytest.raises(ForgeError) as err:
                step()
            messages.append(str(err.value))
            stub.allow(permission)
        forge.merge(number)
        forge.rollback("7d", to=None, reason=f"token {SENTINEL} must not show", merge=True)
        with pytest.raises(ForgeError) as err:
            GitHubForge.from_environment(Workspace.open(clone), env={**env, "CHRONOPS_GITHUB_TOKEN": "wrong-token"}).pulls()  # fmt: skip
        messages.append(str(err.value))
        cli = run_cli("rollback", "--horizon", "7d", "--forge", "github", cwd=clone, env={**env, "CHRONOPS_LOG": "DEBUG"}, timeout=120)  # fmt: skip
        messages += [cli.stdout, cli.stderr]
    assert cli.code != 0 and "nothing to roll back" in cli.stderr
    captured = capsys.readouterr()
    texts = [*messages, caplog.text, captured.out, captured.err]
    texts += [f"{r.method} {r.path} {r.query} {r.body}" for r in stub.requests]
    texts += [str(p["body"]) + str(p["title"]) for p in stub.pulls.values()]
    texts.append(git(bare, "log", "--all", "-p"))
    for root in (clone, bare):
        texts += [p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()]
    assert "***" in stub.pulls[number]["body"], "the leaky body was redacted before publishing"
    leaks = [t[:200] for t in texts if SENTINEL in t]
    assert leaks == []


def test_redact_masks_secret_looking_variables() -> None:
    env = {"GITHUB_TOKEN": "ghp_abcdef", "SMTP_PASSWORD": "hunter22", "MY_API_SECRET": "s3cr3t!", "PATH": "/usr/bin", "X_TOKEN": "ab"}  # fmt: skip
    text = "ghp_abcdef hunter22 s3cr3t! /usr/bin ab"
    assert redact(text, env=env) == "*** *** *** /usr/bin ab"
    assert redact("x ghp_abcdefXYZ y", env={}, extra=["ghp_abcdefXYZ"]) == "x *** y"


# (e) errors: one line, naming the fix ----------------------------------------------------------------
def test_missing_token_and_repository(origin: tuple[Path, Path]) -> None:
    ws = Workspace.open(origin[1])
    with pytest.raises(ForgeError, match="set CHRONOPS_GITHUB_TOKEN or GITHUB_TOKEN"):
        GitHubForge.from_environment(ws, env={"GITHUB_REPOSITORY": "acme/fx"})
    with pytest.raises(ForgeError, match="set GITHUB_REPOSITORY=owner/name"):
        GitHubForge.from_environment(ws, env={"GITHUB_TOKEN": "x" * 20})
    forge = GitHubForge.from_environment(ws, env={"GITHUB_TOKEN": "x" * 20, "GITHUB_REPOSITORY": "acme/fx"})
    assert forge.token_source == "GITHUB_TOKEN" and not forge.triggers_workflows
    assert forge.api_url == "https://api.github.com"


@pytest.mark.parametrize(
    ("setup", "action", "needles"),
    [
        ("bad-token", "propose", ["401 bad credentials", "CHRONOPS_GITHUB_TOKEN"]),
        ("no-repo", "propose", ["repository acme/nope not found", "GITHUB_REPOSITORY", "GITHUB_API_URL"]),
        ("pull-requests: write", "propose", ["403", "`pull-requests: write`"]),
        ("contents: write", "propose", ["git push --force failed", "`contents: write`"]),
        ("contents: write", "merge", ["403", "`contents: write`"]),
        (
            "actions: write",
            "merge-github-token",
            ["merged #1", "`actions: write`", "gh workflow run deploy.yml"],
        ),
        (
            "protected",
            "merge",
            ["cannot merge pull request #1: the base branch requires checks or reviews",
             "Auto merge is not allowed for this repository", "Allow auto-merge", "App or PAT"],
        ),
    ],
)
def test_errors_are_one_line_and_name_the_fix(
    make: Make, stub: GitHubStub, setup: str, action: str, needles: list[str]
) -> None:
    kwargs: dict[str, object] = {}
    if action == "merge-github-token":
        kwargs["source"] = "GITHUB_TOKEN"
    if setup == "bad-token":
        kwargs["token"] = "not-the-token"
    if setup == "no-repo":
        kwargs["repository"] = "acme/nope"
    forge = make(**kwargs)
    if action.startswith("merge"):
        make().propose(proposal())
    if setup == "protected":  # and native auto-merge is off in the repository settings
        stub.protected, stub.allow_auto_merge = True, False
    elif " " in setup:
        stub.deny(setup)
    with pytest.raises(ForgeError) as err:
        forge.propose(proposal()) if action == "propose" else forge.merge(1)
    message = str(err.value)
    assert "\n" not in message and stub.token not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_pushed_branch_is_reused_after_a_failed_pull_request(make: Make, stub: GitHubStub) -> None:
    forge = make()
    stub.deny("pull-requests: write")
    with pytest.raises(ForgeError, match="pull-requests: write"):
        forge.propose(proposal())
    assert stub.ref(BRANCH) is None, "labels are checked before anything is pushed"
    stub.allow("pull-requests: write")
    stub.fail_once("POST", r"/pulls", 403, "Resource not accessible by integration")
    with pytest.raises(ForgeError, match=r"open a pull request from chronops/7d .*`pull-requests: write`"):
        forge.propose(proposal())
    pushed = stub.ref(BRANCH)
    assert pushed is not None and stub.pulls == {}
    result = forge.propose(proposal())
    assert result.action == "created" and stub.ref(BRANCH) == pushed, "no orphan, no second push"


def test_existing_pull_request_and_conflict_answers_are_reused(make: Make, stub: GitHubStub) -> None:
    forge = make()
    # a concurrent run opened it between our lookup and our create
    stub.fail_once("POST", r"/pulls", 422, "Validation Failed", apply=True, errors=[{"message": "A pull request already exists for acme:chronops/7d."}])  # fmt: skip
    result = forge.propose(proposal())
    assert result.action == "created" and assert_one_open(stub) == result.pull.number
    assert set(stub.pulls[result.pull.number]["labels"]) >= {"chronops", "approved"}
    stub.fail_once("POST", r"/labels", 422, "Validation Failed", errors=[{"code": "already_exists"}])
    make().propose(proposal(approved=False))
    assert "needs-review" in stub.pulls[result.pull.number]["labels"]
    assert "approved" not in stub.pulls[result.pull.number]["labels"]
    stub.fail_once(
        "PUT", r"/pulls/\d+/merge", 409, "Head branch was modified. Review and try the merge again."
    )
    assert forge.merge(result.pull.number).state == "merged"


def test_reviewers_and_human_labels(make: Make, stub: GitHubStub) -> None:
    forge = make(forge={"reviewers": ["alice", "acme/ml-team"]})
    number = forge.propose(proposal()).pull.number
    assert stub.pulls[number]["reviewers"] == ["alice"]
    stub.pulls[number]["labels"].append("do-not-merge")
    forge.propose(proposal(approved=False))
    assert set(stub.pulls[number]["labels"]) == {"chronops", "horizon:7d", "needs-review", "do-not-merge"}
    stub.collaborators = {"bob"}
    with pytest.raises(ForgeError, match="request reviews on #1 from alice, acme/ml-team"):
        forge.propose(proposal(body="v3"))


def test_human_revert_button_counts_as_a_rollback(make: Make, stub: GitHubStub) -> None:
    forge = make()
    number = forge.propose(proposal()).pull.number
    forge.merge(number)
    merge_sha = stub.pulls[number]["merge_commit_sha"]
    stub.git("branch", f"revert-{number}-chronops/7d", merge_sha)  # as GitHub's "Revert" button does
    human = stub.pulls[number] | {"number": 99, "head_ref": f"revert-{number}-chronops/7d", "body": f"Reverts acme/fx#{number}", "title": "Revert"}  # fmt: skip
    stub.pulls[99] = human
    records = {p.number: p for p in forge.pulls("7d")}
    assert records[99].kind == "revert" and records[99].reverts == number
    with pytest.raises(ForgeError, match="nothing to roll back"):
        forge.rollback("7d", to=None, reason="x", merge=False)


# (f) deploy dispatch ------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "dispatched"), [("GITHUB_TOKEN", 1), ("CHRONOPS_GITHUB_TOKEN", 0)])
def test_github_token_merge_dispatches_deploy(make: Make, stub: GitHubStub, source: TokenSource, dispatched: int) -> None:  # fmt: skip
    forge = make(source=source)
    forge.merge(forge.propose(proposal()).pull.number)
    deploy = {"workflow": "deploy.yml", "ref": "main", "inputs": {"reason": "chronops merged #1"}}
    assert stub.dispatches == [deploy] * dispatched
    forge.merge(1)
    assert len(stub.dispatches) == dispatched, "re-merging a merged pull request is a no-op"


def test_deploy_workflow_without_inputs_is_dispatched_plain(make: Make, stub: GitHubStub) -> None:
    stub.workflow_inputs = {}
    forge = make(source="GITHUB_TOKEN")
    forge.merge(forge.propose(proposal()).pull.number)
    assert stub.dispatches == [{"workflow": "deploy.yml", "ref": "main", "inputs": {}}]


def test_git_authenticates_with_the_api_token_through_its_environment(origin: tuple[Path, Path]) -> None:
    clone = origin[1]
    git(clone, "config", "http.https://github.com/.extraheader", "AUTHORIZATION: basic persisted-by-checkout")
    git(clone, "remote", "set-url", "origin", "https://github.com/acme/fx.git")
    repo = GitRepo.open(clone)
    GitHubForge(repo, repository="acme/fx", token=SENTINEL, token_source="CHRONOPS_GITHUB_TOKEN")
    headers = repo.git("config", "--get-all", "http.https://github.com/.extraheader").split("\n")
    expected = base64.b64encode(f"x-access-token:{SENTINEL}".encode()).decode()
    # git's http layer clears the list at the empty value: only our header is sent
    assert headers == ["AUTHORIZATION: basic persisted-by-checkout", "", f"AUTHORIZATION: basic {expected}"]
    assert SENTINEL not in repr(repo) and expected not in (clone / ".git" / "config").read_text()
    assert git_auth_env("git@github.com:acme/fx.git", SENTINEL) == {}
    assert git_auth_env("/srv/origin.git", SENTINEL) == {}


# the CLI -------------------------------------------------------------------------------------------
def test_cli_rollback_against_the_stand_in(make: Make, stub: GitHubStub, origin: tuple[Path, Path]) -> None:
    bare, clone = origin
    forge = make()
    number = forge.propose(proposal()).pull.number
    forge.merge(number)
    env = {
        "GITHUB_TOKEN": stub.token, "GITHUB_REPOSITORY": stub.repository, "GITHUB_API_URL": stub.api_url,
        "CHRONOPS_RETRY_BACKOFF": "0",
    }  # fmt: skip
    result = run_cli(
        "rollback", "--horizon", "7d", "--forge", "github", "--merge", cwd=clone, env=env, timeout=120
    )
    assert result.code == 0, result
    assert f"revert pull request #{number + 1} merged" in result.stdout
    assert git(bare, "show", "main:configs/7d.json") == BEFORE
    reason = {"reason": f"chronops merged #{number + 1}"}
    assert stub.dispatches == [{"workflow": "deploy.yml", "ref": "main", "inputs": reason}], "GITHUB_TOKEN"


# protected main: native auto-merge --------------------------------------------------------------
def test_protected_main_turns_on_native_auto_merge(
    make: Make, stub: GitHubStub, origin: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    bare = origin[0]
    stub.required_checks = ["test"]
    forge = make()
    number = forge.propose(proposal()).pull.number
    record = forge.merge(number)
    assert (record.state, record.auto_merge) == ("open", True)
    assert stub.pulls[number]["auto_merge"]["merge_method"] == "merge"
    mutation = [r for r in stub.requests if r.path == "/graphql"]
    assert len(mutation) == 1 and "enablePullRequestAutoMerge" in mutation[0].body
    assert stub.ref(BRANCH) in mutation[0].body, "pinned to the head the gate saw (expectedHeadOid)"
    assert git(bare, "show", "main:configs/7d.json") == BEFORE, "nothing merged before the checks pass"

    assert stub.checks_pass(number)  # CI green: GitHub merges it
    assert git(bare, "show", "main:configs/7d.json") == '{"context_length": 180}'

    # The rollback (and the deploy auto-revert, which calls it) goes the same way.
    forge = make()
    revert = forge.rollback("7d", to=None, reason="RMSE spiked", merge=True)
    assert (revert.kind, revert.state, revert.auto_merge) == ("revert", "open", True)
    assert stub.checks_pass(revert.number)
    assert git(bare, "show", "main:configs/7d.json") == BEFORE

    # With only GITHUB_TOKEN no checks run on the bot's pull requests: say so.
    with caplog.at_level(logging.WARNING):
        token_forge = make(source="GITHUB_TOKEN")
        again = token_forge.propose(proposal(content='{"context_length": 240}\n')).pull.number
        assert token_forge.merge(again).auto_merge
    assert "App or PAT token" in caplog.text and stub.dispatches == []


def test_cli_run_reports_auto_merge(make: Make, stub: GitHubStub) -> None:
    """An unprotected base merges directly: auto-merge is only the fallback (the stand-in, like
    GitHub, refuses it on a pull request that could merge now)."""
    forge = make()
    number = forge.propose(proposal()).pull.number
    assert forge.merge(number).state == "merged"
    assert not [r for r in stub.requests if r.path == "/graphql"]
