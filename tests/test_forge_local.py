"""The local git forge against real repositories: idempotent proposals, merge commits, revert rollbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.adapters.forges.base import Proposal
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.errors import ForgeError
from tests.conftest import git


def proposal(body: str = "report v1", content: str = '{"context_length": 180}\n') -> Proposal:
    return Proposal(
        horizon="7d", title="chronops: tune 7d (RMSE -10.0%)", body=body, labels=("chronops", "horizon:7d"),
        files={"configs/7d.json": content}, commit_message="chronops: tune 7d", approved=True,
    )  # fmt: skip


@pytest.fixture
def forge(git_remote: tuple[Path, Path]) -> LocalForge:
    _, clone = git_remote
    (clone / "configs").mkdir()
    (clone / "configs" / "7d.json").write_text('{"context_length": 90}\n')
    git(clone, "add", "-A")
    git(clone, "commit", "-m", "add config")
    git(clone, "push", "origin", "main")
    return LocalForge(GitRepo.open(clone), clone / "data" / "forge" / "pulls.json")


def test_propose_is_idempotent_and_never_duplicates(forge: LocalForge, git_remote: tuple[Path, Path]) -> None:
    bare, clone = git_remote
    first = forge.propose(proposal())
    assert first.action == "created" and first.pull.number == 1
    assert git(bare, "show", "chronops/7d:configs/7d.json") == '{"context_length": 180}'
    assert forge.propose(proposal()).action == "unchanged"
    second = forge.propose(proposal(body="report v2"))
    assert second.action == "updated" and second.pull.number == 1
    third = forge.propose(proposal(body="report v3", content='{"context_length": 270}\n'))
    assert third.pull.number == 1
    assert git(bare, "show", "chronops/7d:configs/7d.json") == '{"context_length": 270}'
    assert len([p for p in forge.pulls() if p.state == "open"]) == 1
    # the branch holds exactly one commit on top of main, touching only the config
    assert git(bare, "rev-list", "--count", "main..chronops/7d") == "1"
    assert git(bare, "diff", "--name-only", "main", "chronops/7d") == "configs/7d.json"
    # the user's working tree was never touched
    assert (clone / "configs" / "7d.json").read_text() == '{"context_length": 90}\n'
    assert git(clone, "status", "--porcelain", "--untracked-files=no") == ""


def test_merge_then_rollback_by_revert(forge: LocalForge, git_remote: tuple[Path, Path]) -> None:
    bare, clone = git_remote
    pr = forge.propose(proposal()).pull
    merged = forge.merge(pr.number)
    assert merged.state == "merged" and merged.merge_sha
    parents = git(bare, "rev-list", "--parents", "-n", "1", "main").split()
    assert len(parents) == 3, "a real merge commit"
    assert git(bare, "show", "main:configs/7d.json") == '{"context_length": 180}'
    assert (clone / "configs" / "7d.json").read_text() == '{"context_length": 180}\n'  # fast-forwarded
    before = git(bare, "rev-list", "--count", "main")

    revert = forge.rollback("7d", to=None, reason="RMSE spiked", merge=True)
    assert revert.kind == "revert" and revert.reverts == pr.number and revert.state == "merged"
    assert git(bare, "show", "main:configs/7d.json") == '{"context_length": 90}'
    log = git(bare, "log", "--format=%s", "main")
    assert "Revert chronops 7d (#1" in log and "Merge pull request #1 from chronops/7d" in log
    assert int(git(bare, "rev-list", "--count", "main")) > int(before), "history only grows"
    with pytest.raises(ForgeError, match="nothing to roll back"):
        forge.rollback("7d", to=None, reason="again", merge=True)


def test_rollback_without_merge_opens_revert_pr(forge: LocalForge) -> None:
    pr = forge.propose(proposal()).pull
    forge.merge(pr.number)
    revert = forge.rollback("7d", to=str(pr.number), reason="why not", merge=False)
    assert revert.state == "open" and "Reason: why not" in revert.body
    with pytest.raises(ForgeError, match="no merged chronops pull request for 7d matches '99'"):
        forge.rollback("7d", to="99", reason="x", merge=False)


def test_not_a_repository_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ForgeError, match="not a git repository"):
        GitRepo.open(tmp_path)
