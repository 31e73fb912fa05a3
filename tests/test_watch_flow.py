"""`chronops watch` end to end: an alarm starts exactly one run per episode (local forge, a real tiny
model and real git) or one workflow_dispatch of optimize.yml (the GitHub stand-in)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from bot.adapters.forges.github import GitHubForge
from bot.adapters.forges.github_http import RetryPolicy
from bot.adapters.git import GitRepo
from bot.adapters.sources import load_series
from bot.commands.init import scaffold
from bot.commands.watch import watch_command
from bot.flow.watch import read_alarms, read_state, run_watch, state_path
from bot.workspace import Workspace
from tests.conftest import REPO_ROOT, TINY_SEARCH_SETTINGS, git, run_cli
from tests.github_stub import running_stub

CHANGE = 560  # the return index from which volatility triples
N_RETURNS = 620
WATCH = '\n[watch]\nhorizons = ["7d"]\n'


def shocked_series(seed: int) -> pd.DataFrame:
    """A geometric random walk whose volatility triples from return CHANGE on (business days, 2023-2025)."""
    rng = np.random.default_rng(seed)
    r = 0.005 * rng.standard_normal(N_RETURNS)
    r[CHANGE:] *= 3.0
    dates = pd.bdate_range("2023-06-01", periods=N_RETURNS + 1)
    return pd.DataFrame({"date": dates, "value": 900.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))})


def workspace(clone: Path, model: Path, series: pd.DataFrame) -> Path:
    scaffold(clone, model_id=str(model))
    (clone / "chronops.toml").write_text(TINY_SEARCH_SETTINGS + WATCH)
    csv = clone.parent / "series.csv"
    series.to_csv(csv, index=False)
    assert run_cli("ingest", "--source", "csv", str(csv), "-w", str(clone)).code == 0
    (clone / ".gitignore").write_text("data/*.parquet\ndata/*.json\ndata/runs/\ndata/forge/\ndata/*.lock\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-m", "chronops workspace")
    git(clone, "push", "origin", "main")
    return clone


def days_around_change(series: pd.DataFrame, before: int, after: int) -> list[date]:
    # the evening of D knows the value dated D + 1 (USD/CLP rule): watch on the day before each date
    dates = [d.date() for d in series["date"]]
    return [dates[i] - timedelta(days=1) for i in range(CHANGE + 1 - before, CHANGE + 1 + after)]


def declared_inputs(workflow: Path) -> set[str]:
    """The workflow_dispatch input names of a workflow file (keys indented 6 under `inputs:`)."""
    text = (
        workflow.read_text(encoding="utf-8").split("workflow_dispatch:", 1)[1].split("\npermissions:", 1)[0]
    )
    return set(re.findall(r"^      ([a-z_]+):\s*$", text, flags=re.M))


@pytest.fixture
def ws_local(git_remote: tuple[Path, Path], tiny_t5: Path) -> Iterator[tuple[Path, pd.DataFrame]]:
    series = shocked_series(5)
    yield workspace(git_remote[1], tiny_t5, series), series


def test_an_alarm_starts_exactly_one_local_run_per_episode(ws_local: tuple[Path, pd.DataFrame]) -> None:
    root, series = ws_local
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    days = days_around_change(series, before=5, after=30)
    for day in days:
        assert watch_command(root, as_of=day.isoformat(), forge_kind="local", dry_run=False, as_json=False, console=console) == 0  # fmt: skip
    watch_command(root, as_of=days[-1].isoformat(), forge_kind="local", dry_run=False, as_json=False, console=console)  # fmt: skip

    alarms = read_alarms(Workspace.open(root))
    started = alarms[alarms["action"] == "ran"]
    assert len(started) == 1, alarms[["day", "action"]]
    change_day = series["date"].iloc[CHANGE + 1]
    assert (
        started["day"].iloc[0] >= change_day and started["statistic"].iloc[0] >= started["threshold"].iloc[0]
    )
    metrics = pd.read_parquet(root / "data" / "metrics.parquet")
    runs = metrics[(metrics["event"] == "run") & metrics["triggered_by"].str.contains("watch")]
    assert len(runs) == 1 and list(runs["horizon"]) == ["7d"]
    assert "Volatility watch: CUSUM" in runs["trigger_reasons"].iloc[0]
    assert not bool(runs["forced"].iloc[0])  # a trigger, so it counts in the false-trigger KPI
    history = pd.read_parquet(root / "data" / "optimization_history.parquet")
    assert (history["triggered_by"].str.contains("watch")).sum() == 1
    state = read_state(state_path(Workspace.open(root)))
    assert state.episode and state.last_alarm == started["day"].iloc[0].date()
    assert "action: ran" in buffer.getvalue()
    from bot.core.kpis import compute_kpis, trigger_kinds
    from bot.flow.status import write_dashboard

    page = write_dashboard(Workspace.open(root), root / "site", datetime.now(UTC)).read_text()
    day = started["day"].iloc[0].date().isoformat()
    assert "Daily volatility watch alarms" in page and day in page and "chronops run for 7d" in page
    assert trigger_kinds(runs["triggered_by"].iloc[0], False)[0] == "watch"
    fp = {k.key: k for k in compute_kpis(history, metrics)}["false_positive_rate"]
    assert fp.n >= 1 and "daily watch:" in fp.detail


def test_an_alarm_dispatches_optimize_once_on_the_github_stand_in(
    git_remote: tuple[Path, Path], tiny_t5: Path
) -> None:
    bare, clone = git_remote
    series = shocked_series(5)
    root = workspace(clone, tiny_t5, series)
    ws = Workspace.open(root)

    def never(horizons: list[str], reason: str) -> int:
        raise AssertionError("the GitHub forge dispatches; nothing runs here")

    with running_stub(bare) as stub:
        forge = GitHubForge(
            GitRepo.open(root), repository=stub.repository, token=stub.token, token_source="CHRONOPS_GITHUB_TOKEN",
            api_url=stub.api_url, settings=ws.settings, policy=RetryPolicy.no_backoff(),
        )  # fmt: skip
        actions = []
        stub.deny("actions: write")  # the first dispatch is refused: recorded, retried the next day
        for day in days_around_change(series, before=5, after=30):
            result = run_watch(ws, load_series(ws, day), day, datetime(day.year, day.month, day.day, 20, tzinfo=UTC), forge=forge, run_locally=never)  # fmt: skip
            actions.append(result.action)
            if result.action == "dispatch_failed":
                assert "actions: write" in result.detail
                stub.allow("actions: write")
        assert actions.count("dispatch_failed") == 1 and actions.count("dispatched") == 1, actions
        assert actions.index("dispatched") == actions.index("dispatch_failed") + 1
        assert len(stub.dispatches) == 1, stub.dispatches
        dispatch = stub.dispatches[0]
        assert dispatch["workflow"] == "optimize.yml" and dispatch["ref"] == "main"
        assert dispatch["inputs"]["horizon"] == "7d"
        assert dispatch["inputs"]["watch_reason"].startswith("Volatility watch: CUSUM")
        # the stand-in accepts exactly the inputs the real workflow declares
        assert (
            declared_inputs(REPO_ROOT / ".github" / "workflows" / "optimize.yml")
            == stub.workflow_inputs["optimize.yml"]
        )
    alarms = read_alarms(ws)
    assert list(alarms.loc[alarms["action"] == "dispatched", "detail"]) == [
        "dispatched optimize.yml on main (horizon=7d)"
    ]


def test_watch_cli_dry_run_json_writes_nothing(ws_local: tuple[Path, pd.DataFrame]) -> None:
    root, series = ws_local
    day = days_around_change(series, before=0, after=10)[-1]
    result = run_cli("watch", "--as-of", day.isoformat(), "--dry-run", "--json", "-w", str(root))
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["action"] == "dry_run" and doc["rebuilt"] and doc["alarms"]
    assert not (root / "data" / "watch_state.json").exists()
    assert not (root / "data" / "watch_alarms.parquet").exists()
    bad = run_cli("watch", "--as-of", "yesterday", "-w", str(root))
    assert bad.code == 1 and bad.stderr.strip().startswith("error: --as-of 'yesterday' is not a date")
