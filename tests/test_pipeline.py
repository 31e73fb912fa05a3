"""The loop in this process: `run_horizon` with an injected model loader, the local forge on a real git
remote, and the Actions matrix split (search job → files → propose job). No subprocess, no CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.chronos import LoadedModel, load_model
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.adapters.history import HistoryRecord, read_history, record_optimization
from bot.core.config import HorizonConfig
from bot.flow.outcome import RunOptions
from bot.flow.pipeline import run_horizon
from bot.flow.records import read_metrics
from bot.flow.stages import export_search, propose_from
from bot.workspace import Workspace
from tests.conftest import git, tiny_workspace

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class CountingLoader:
    """The real loader (cached per process), counting how often the pipeline asks for a model."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, cfg: HorizonConfig) -> LoadedModel:
        self.calls.append(cfg.model_id)
        return load_model(cfg.model_id, expected_family=cfg.model_family)


@pytest.fixture
def repo_ws(git_remote: tuple[Path, Path], tiny_t5: Path) -> tuple[Path, Workspace]:
    """A workspace that is a clone of a bare origin, configs committed on main."""
    bare, clone = git_remote
    tiny_workspace(clone, tiny_t5)
    (clone / ".gitignore").write_text("data/\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-m", "chronops workspace")
    git(clone, "push", "origin", "main")
    return bare, Workspace.open(clone)


def local_forge(ws: Workspace) -> LocalForge:
    return LocalForge(GitRepo.open(ws.root), ws.pulls_path, base="main", clock=lambda: NOW)


def test_no_trigger_skips_without_loading_a_model(repo_ws: tuple[Path, Workspace]) -> None:
    _, ws = repo_ws
    record_optimization(ws.history_path, HistoryRecord(
        run_id="r-0", horizon="7d", optimization_date=NOW - timedelta(days=1), triggered_by="time",
        performance_degradation_pct=None, drift_severity="NONE", days_since_last=None, success=True,
        status="merged",
    ))  # fmt: skip
    loader = CountingLoader()
    outcome = run_horizon(ws, "7d", run_id="r-skip", now=NOW, options=RunOptions(), forge=None, model_loader=loader)
    assert outcome.status == "skipped", outcome.message
    assert loader.calls == [] and outcome.run_dir is None
    assert outcome.triggers is not None and not outcome.triggers.fire


def test_forced_run_proposes_on_the_local_forge(repo_ws: tuple[Path, Workspace]) -> None:
    bare, ws = repo_ws
    loader = CountingLoader()
    forge = local_forge(ws)
    options = RunOptions(force=True, automerge=False, force_approve_reason="test: exercise the PR path")
    outcome = run_horizon(ws, "7d", run_id="r-1", now=NOW, options=options, forge=forge, model_loader=loader)
    assert len(loader.calls) == 1  # one model for the whole search and gate
    assert outcome.verdict is not None and outcome.report is not None
    before, after = outcome.validation_rmse()
    assert before is not None and after is not None and before > 0 and after > 0
    assert outcome.proposal is not None and outcome.proposal.action == "created"
    # the branch really landed on the bare origin, with the config change in it
    assert "refs/heads/chronops/7d" in git(bare, "for-each-ref", "--format=%(refname)")
    assert "configs/7d.json" in git(bare, "diff", "--name-only", "main", "chronops/7d")
    history = read_history(ws.history_path)
    assert list(history["status"]) == ["proposed"] and history["triggered_by"].iloc[0].startswith("forced")
    metrics = read_metrics(ws.metrics_path)
    row = metrics[metrics["event"] == "run"].iloc[-1]
    assert row["rmse_before"] == pytest.approx(before) and row["rmse_after"] == pytest.approx(after)


def test_matrix_split_records_what_triggered_the_search(repo_ws: tuple[Path, Workspace], tmp_path: Path) -> None:
    """The propose job has only files from the search job; the history must still say 'forced'."""
    _, ws = repo_ws
    search = RunOptions(force=True, automerge=False, force_approve_reason="test: split run", stage="search")
    outcome = run_horizon(ws, "7d", run_id="r-2", now=NOW, options=search, forge=None, model_loader=CountingLoader())
    assert outcome.proposal is None and not ws.history_path.exists()
    export_search(outcome, tmp_path / "out")
    done = propose_from(
        ws, tmp_path / "out", ["7d"], forge=local_forge(ws), options=RunOptions(automerge=False),
        run_id="r-3", now=NOW,
    )  # fmt: skip
    assert [o.proposal.action for o in done if o.proposal] == ["created"]
    assert done[0].triggers is not None and done[0].triggers.forced
    history = read_history(ws.history_path)
    assert history["triggered_by"].iloc[0].startswith("forced") and list(history["run_id"]) == ["r-2"]
    metrics = read_metrics(ws.metrics_path)
    assert metrics["triggered_by"].iloc[-1].startswith("forced") and bool(metrics["forced"].iloc[-1])
