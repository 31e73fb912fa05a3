"""Crash safety: SIGKILL the bot at each named fault point (bot/faults.py), run it again, and check
that nothing is half-written, nothing is duplicated and the killed run is visible in the history.

One small workspace (demo-style: bare origin + clone, tiny random-weight T5, a 2-candidate search)
is built and run once per session; each case works on a copy of it. The kill + rerun pairs of all
cases run two at a time (they are independent workspaces) in a module fixture; each case's test
then checks its own result, so a failure still names its kill point.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bot.adapters.configs import read_config
from bot.adapters.forges.base import Proposal
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.adapters.history import read_history
from bot.commands.demo import build_workspace
from bot.core.config import HORIZONS
from bot.faults import crash_point, parse_target
from bot.flow import recovery
from bot.flow.records import read_metrics
from bot.flow.recovery import sweep_temp_files
from bot.workspace import Workspace
from tests.conftest import GIT_ENV, CliResult, git, run_cli
from tests.github_stub import GitHubStub, running_stub

CRASH_SETTINGS = """\
# crash-safety tests: the smallest search that still has a winner and a gate
[search]
num_samples = [10]
temperature = [1.0]
tuning_origins = 2
validation_origins = 2
sample_chunk = 10

[search.context_length]
"7d" = [90, 180]

[forge]
kind = "local"
automerge = true
"""
RUN = ("run", "--horizon", "7d", "--force")
APPROVE = (*RUN, "--force-approve", "--reason", "crash test: exercise the merge")
ROLLBACK = ("rollback", "--horizon", "7d", "--merge", "--reason", "crash test")
KILLED = -signal.SIGKILL


@dataclass(frozen=True)
class Base:
    root: Path  # root/origin.git + root/repo
    env: dict[str, str]  # what every CLI call here runs with


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """root/origin.git + root/repo after one completed run (history, metrics, cache, open PR #1)."""
    root = tmp_path_factory.mktemp("crash-base")
    home = tmp_path_factory.mktemp("crash-home")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    env = {
        **GIT_ENV, "HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "CHRONOPS_TORCH_THREADS": "1",  # two runs share two cores below
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        ws = build_workspace(root)
        (ws / "chronops.toml").write_text(CRASH_SETTINGS)
        git(ws, "commit", "-qam", "small search for crash tests")
        git(ws, "push", "-q", "origin", "main")
    first = run_cli(*RUN, cwd=ws, env=env, timeout=300)
    assert first.code == 0, first.stderr
    return Base(root, env)


def copy_workspace(base: Base, dest: Path) -> Path:
    shutil.copytree(base.root, dest, symlinks=True)
    repo = dest / "repo"
    git(repo, "remote", "set-url", "origin", str(dest / "origin.git"))
    return repo


def markers(repo: Path) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in sorted((repo / "data" / "runs").glob("*/*.running"))]


def open_tune_pulls(repo: Path, horizon: str = "7d") -> list[dict[str, object]]:
    pulls = json.loads((repo / "data" / "forge" / "pulls.json").read_text())["pulls"]
    return [p for p in pulls if p["horizon"] == horizon and p["kind"] == "tune" and p["state"] == "open"]


def is_ancestor(bare: Path, sha: str, ref: str = "main") -> bool:
    cmd = ["git", "-C", str(bare), "merge-base", "--is-ancestor", sha, ref]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def assert_consistent(repo: Path, bare: Path) -> None:
    """What must hold after any crash and one clean run."""
    data = repo / "data"
    for path in data.rglob("*.parquet"):
        pq.read_table(path)  # raises on a torn or truncated file
    for h in HORIZONS:
        json.loads((repo / "configs" / f"{h}.json").read_text())
        read_config(repo / "configs" / f"{h}.json", strict=True)  # what `config validate --strict` runs
    on_main = repo.parent / "on-main" / "7d.json"  # what a deploy would install
    on_main.parent.mkdir(exist_ok=True)
    on_main.write_text(git(bare, "show", "main:configs/7d.json") + "\n")
    read_config(on_main, strict=True)
    strays = [p for p in repo.rglob(".*.tmp") if ".git" not in p.parts]
    assert strays == [], strays
    worktrees = [
        ln for ln in git(repo, "worktree", "list", "--porcelain").splitlines() if ln.startswith("worktree ")
    ]
    assert len(worktrees) == 1, worktrees
    assert markers(repo) == [], "every run is recorded or recovered"
    assert not (data / ".chronops.lock").exists()
    for pull in open_tune_pulls(repo):  # no record says open while its head is merged already
        assert not is_ancestor(bare, str(pull["head_sha"])), pull


@dataclass(frozen=True)
class Case:
    point: str
    args: tuple[str, ...] = RUN
    prepare: Callable[[Path], None] | None = None
    recorded: bool = False  # the killed run's own history row was written before the kill
    one_open_pr: bool = True
    env: dict[str, str] = field(default_factory=dict)
    code: int = KILLED

    @property
    def id(self) -> str:
        mode = "-raise" if self.env.get("CHRONOPS_CRASH_MODE") == "raise" else ""
        return f"{self.args[0]}-{self.point}{mode}"


def drop_cache(repo: Path) -> None:
    (repo / "data" / "backtest_cache.parquet").unlink()


def merge_pr_1(repo: Path) -> None:
    forge = LocalForge(GitRepo.open(repo), repo / "data" / "forge" / "pulls.json")
    assert forge.merge(1).state == "merged"


CASES = [
    Case("engine:origin:2"),  # during the search, after some origins
    Case("write:backtest_cache.parquet", prepare=drop_cache),  # temp written, not yet renamed
    Case("write:7d.json"),  # the config in the forge's worktree, before the commit
    Case("forge:pushed"),  # branch pushed, pull-request record not written
    Case("write:pulls.json"),  # the pull-request record itself
    Case("pipeline:proposed"),  # pull request open, history not written
    Case("write:optimization_history.parquet"),  # appending the history
    Case("write:metrics.parquet", recorded=True),  # appending the metrics (history written)
    Case("forge:merged", args=APPROVE, one_open_pr=False),  # merge pushed, record still "open"
    Case("forge:rollback-pushed", args=ROLLBACK, prepare=merge_pr_1, one_open_pr=False),
    Case("rollback:done", args=ROLLBACK, prepare=merge_pr_1, one_open_pr=False),
    Case("pipeline:proposed", env={"CHRONOPS_CRASH_MODE": "raise"}, code=3),  # an unexpected exception
]


@dataclass
class Outcome:
    repo: Path
    history_rows_before: int
    killed: CliResult
    dead: list[dict[str, str]]
    lock_left: bool
    again: CliResult


def kill_and_rerun(base: Base, dest: Path, case: Case) -> Outcome:
    repo = copy_workspace(base, dest)
    if case.prepare:
        case.prepare(repo)
    rows = len(pd.read_parquet(repo / "data" / "optimization_history.parquet"))
    env = {**base.env, **case.env}
    killed = run_cli(*case.args, cwd=repo, env={**env, "CHRONOPS_CRASH_AT": case.point}, timeout=300)
    dead, lock_left = markers(repo), (repo / "data" / ".chronops.lock").exists()
    again = run_cli(*case.args, cwd=repo, env=base.env, timeout=300)
    return Outcome(repo, rows, killed, dead, lock_left, again)


@pytest.fixture(scope="module")
def outcomes(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome | BaseException]:
    root = tmp_path_factory.mktemp("crash-cases")

    def one(case: Case) -> Outcome | BaseException:
        try:
            return kill_and_rerun(base, root / case.id.replace(":", "_"), case)
        except Exception as exc:  # reported by that case's test
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([c.id for c in CASES], pool.map(one, CASES), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kill_and_rerun(outcomes: dict[str, Outcome | BaseException], case: Case) -> None:
    result = outcomes[case.id]
    if isinstance(result, BaseException):
        raise result
    repo, bare = result.repo, result.repo.parent / "origin.git"
    assert result.killed.code == case.code, (case.point, result.killed)
    assert len(result.dead) == 1, "the killed run left its marker"
    assert result.lock_left is (case.code == KILLED), "SIGKILL leaves the lock; an exception releases it"

    again = result.again
    already_done = case.args[0] == "rollback" and "nothing to roll back" in again.stderr
    assert again.code == 0 or already_done, (case.point, again)
    if again.code == 0:
        assert "died during step" in again.stdout, again.stdout

    assert_consistent(repo, bare)
    history = pd.read_parquet(repo / "data" / "optimization_history.parquet")
    assert len(history) > result.history_rows_before
    mine = history[history["run_id"] == result.dead[0]["run_id"]]
    assert len(mine) == 1, mine  # recorded exactly once: never lost, never twice
    row = mine.iloc[0]
    if case.recorded:
        assert row["status"] in ("proposed", "merged"), row.to_dict()
    else:
        assert row["status"] == "failed" and str(row["notes"]).startswith("incomplete:"), row.to_dict()
        assert not row["success"]
    if case.args[0] == "run":
        metrics = pd.read_parquet(repo / "data" / "metrics.parquet")
        assert ((metrics["run_id"] == result.dead[0]["run_id"]) & (metrics["event"] == "run")).sum() == 1
    assert len(open_tune_pulls(repo)) == 1 if case.one_open_pr else len(open_tune_pulls(repo)) <= 1
    if case.point == "forge:merged":
        merged = [
            p for p in json.loads((repo / "data/forge/pulls.json").read_text())["pulls"] if p["number"] == 1
        ]
        assert merged[0]["state"] == "merged" and merged[0]["merged_by"] == "bot", merged
    if case.args[0] == "rollback":
        log = git(bare, "log", "--format=%s", "main")
        assert log.count("Revert chronops 7d") == 1, "the rollback happened exactly once"
        assert json.loads(git(bare, "show", "main:configs/7d.json"))["provenance"]["source"] == "init"


@pytest.fixture
def github_env(base: Base, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], GitHubStub]]:
    repo = copy_workspace(base, tmp_path / "ws")
    with running_stub(repo.parent / "origin.git") as stub:
        env = {
            **base.env, "CHRONOPS_GITHUB_TOKEN": stub.token, "GITHUB_REPOSITORY": stub.repository,
            "GITHUB_API_URL": stub.api_url, "CHRONOPS_RETRY_BACKOFF": "0",
        }  # fmt: skip
        yield repo, env, stub


@pytest.mark.slow
def test_github_kill_between_push_and_pull_request(
    github_env: tuple[Path, dict[str, str], GitHubStub],
) -> None:
    repo, env, stub = github_env
    args = (*RUN, "--forge", "github")
    killed = run_cli(*args, cwd=repo, env={**env, "CHRONOPS_CRASH_AT": "github:pushed"}, timeout=300)
    assert killed.code == KILLED, killed
    assert stub.ref("chronops/7d") is not None and stub.open_pulls("chronops/7d") == []
    again = run_cli(*args, cwd=repo, env=env, timeout=300)
    assert again.code == 0, again
    assert len(stub.open_pulls("chronops/7d")) == 1
    history = pd.read_parquet(repo / "data" / "optimization_history.parquet")
    assert history["notes"].fillna("").str.startswith("incomplete:").sum() == 1
    assert markers(repo) == [] and not [p for p in repo.rglob(".*.tmp") if ".git" not in p.parts]


@pytest.mark.slow
def test_deploy_kill_between_install_and_health_check(base: Base, tmp_path: Path) -> None:
    """The killed deploy's configs are whole on disk; the next deploy checks them again (here the
    forecaster is unreachable) and puts the previous set back, instead of calling them deployed."""
    repo = copy_workspace(base, tmp_path / "ws")
    with (repo / "chronops.toml").open("a") as fh:
        fh.write('\n[deploy]\nhealth_urls = ["http://127.0.0.1:9/healthz"]\nhealth_timeout_seconds = 1.0\n')
    live = repo / "live" / "configs"
    live.mkdir(parents=True)
    before = {
        h: (repo / "configs" / f"{h}.json").read_text().replace('"version": 1', '"version": 0')
        for h in HORIZONS
    }
    for h, text in before.items():
        (live / f"{h}.json").write_text(text)
    env = {**base.env, "CHRONOPS_CRASH_AT": "deploy:installed"}
    killed = run_cli("deploy", cwd=repo, env=env)
    assert killed.code == KILLED, killed
    for h in HORIZONS:  # every file whole: the new set is installed, health not yet checked
        assert (live / f"{h}.json").read_text() == (repo / "configs" / f"{h}.json").read_text()
    assert not list(live.parent.rglob(".*.tmp"))
    again = run_cli("deploy", cwd=repo, env=base.env)
    assert again.code == 5, again
    assert "interrupted" in again.stdout and again.stderr.startswith("error: deploy failed"), again
    assert {h: (live / f"{h}.json").read_text() for h in HORIZONS} == before
    assert not list(live.parent.rglob(".*.tmp"))


# the parts, fast ---------------------------------------------------------------------------------
def test_fault_points_parse_and_fire_only_when_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_target("write:pulls.json") == ("write:pulls.json", 1)
    assert parse_target("engine:origin:3") == ("engine:origin", 3)
    crash_point("engine:origin")  # no CHRONOPS_CRASH_AT: nothing happens
    monkeypatch.setenv("CHRONOPS_CRASH_AT", "test:point:2")
    monkeypatch.setenv("CHRONOPS_CRASH_MODE", "raise")
    crash_point("test:other")
    crash_point("test:point")  # first hit: not yet
    with pytest.raises(RuntimeError, match="injected fault at test:point"):
        crash_point("test:point")


def test_sweep_removes_only_dead_writers_temp_files(tmp_path: Path) -> None:
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    files = {
        "dead": tmp_path / f".history.parquet.{dead}.abcd1234.tmp",
        "alive": tmp_path / f".metrics.parquet.{os.getpid()}.abcd1234.tmp",
        "locked": tmp_path / f".alerts.parquet.{dead}.abcd1234.tmp",  # a writer in another PID namespace
        "untagged": tmp_path / ".live.json.abcd1234.tmp",
    }
    for path in files.values():
        path.write_text("partial")
    fd = os.open(tmp_path / "alerts.parquet.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert sweep_temp_files([tmp_path]) == [files["dead"]]
        assert sweep_temp_files([tmp_path], now=time.time() + 7200) == [files["untagged"]]
        assert files["alive"].exists() and files["locked"].exists()
    finally:
        os.close(fd)
    assert sweep_temp_files([tmp_path]) == [files["locked"]]  # its writer let go of the lock: gone


def test_recovery_records_a_leftover_marker_once(tmp_path: Path) -> None:
    ws = Workspace.open(scaffold_only(tmp_path))
    started = datetime(2026, 3, 1, tzinfo=UTC)
    marker = recovery.begin(ws, "r1", "7d", "chronops run --all", started)
    recovery.mark_step("propose")
    recovery._current = None  # the process "died": nothing ends the marker
    assert recovery.recover_runs(ws, started, "r2") == [{"run_id": "r1", "horizon": "7d", "step": "propose"}]
    assert not marker.exists()
    history = read_history(ws.history_path)
    assert list(history["status"]) == ["failed"] and not history["success"].iloc[0]
    assert history["notes"].iloc[0].startswith("incomplete: the run died during step 'propose'")
    metrics = read_metrics(ws.metrics_path)
    assert list(metrics["status"]) == ["failed"] and list(metrics["run_id"]) == ["r1"]
    # killed after recording but before removing the marker: nothing is recorded twice
    recovery.begin(ws, "r1", "7d", "chronops run --all", started)
    recovery._current = None
    recovery.recover_runs(ws, started, "r3")
    assert len(read_history(ws.history_path)) == 1 and len(read_metrics(ws.metrics_path)) == 1


def scaffold_only(tmp_path: Path) -> Path:
    from bot.commands.init import scaffold

    scaffold(tmp_path / "ws", model_id="amazon/chronos-t5-small")
    return tmp_path / "ws"


def test_reconcile_marks_a_pull_request_merged_behind_its_record(git_remote: tuple[Path, Path]) -> None:
    _, clone = git_remote
    forge = LocalForge(GitRepo.open(clone), clone / "data" / "forge" / "pulls.json")
    files = {"configs/7d.json": '{"context_length": 180}\n'}
    pull = forge.propose(
        Proposal("7d", "chronops: tune 7d", "body", ("chronops",), files, "tune 7d", True)
    ).pull
    # what a run killed at forge:merged leaves: the merge pushed, the record still open
    forge.git.fetch()
    sha = forge.git.merge_into("main", pull.branch, f"Merge pull request #{pull.number} from {pull.branch}")
    assert forge.pulls()[0].state == "open"
    fixed = forge.reconcile()
    assert [(p.number, p.state, p.merge_sha, p.merged_by) for p in fixed] == [
        (pull.number, "merged", sha, "bot")
    ]
    assert forge.reconcile() == []
    assert (clone / "configs" / "7d.json").read_text() == files["configs/7d.json"]  # checkout fast-forwarded
