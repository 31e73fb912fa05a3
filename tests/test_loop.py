"""The whole loop through the CLI: the demo (twice), a real-data dry run, re-validation of a stored run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bot.commands.init import scaffold
from bot.core.config import HORIZONS
from tests.conftest import REAL_SERIES, git, run_cli

SMALL_SEARCH = """
[search]
num_samples = [10, 20]
temperature = [0.8, 1.0]
tuning_origins = 4
validation_origins = 4
sample_chunk = 10

[search.context_length]
"7d" = [90, 180, 270]
"""


@pytest.mark.slow
def test_demo_twice_is_idempotent(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    first = run_cli("demo", "--dir", str(demo), timeout=900)
    assert first.code == 0, first.stderr
    assert "Demo finished" in first.stdout and "meaningless" in first.stdout
    repo, bare = demo / "repo", demo / "origin.git"
    hist = pd.read_parquet(repo / "data" / "optimization_history.parquet")
    # one record per horizon per run: the gate run covers all four, then override + rollback for one
    tune_runs = hist[hist["triggered_by"] != "rollback"].groupby("run_id")["horizon"].apply(list)
    assert any(sorted(v) == sorted(HORIZONS) for v in tune_runs), tune_runs
    branches = git(bare, "branch", "--list", "chronops/*").split()
    tune_branches = [b for b in branches if not b.startswith("chronops/revert")]
    assert sorted(tune_branches) == sorted(f"chronops/{h}" for h in HORIZONS)
    log = git(bare, "log", "--format=%s", "main")
    assert log.count("Merge pull request") == 2 and log.count("Revert chronops 7d") == 1
    pulls_text = (repo / "data" / "forge" / "pulls.json").read_text()
    pulls = json.loads(pulls_text)["pulls"]
    for h in HORIZONS:
        assert sum(1 for p in pulls if p["horizon"] == h and p["state"] == "open" and p["kind"] == "tune") <= 1
    # the title states the change, not the verdict
    titles = [p["title"] for p in pulls if p["kind"] == "tune"]
    assert all(re.fullmatch(r"chronops \d+d: .+→.+", title) for title in titles), titles
    # after the rollback, main holds the original 7d config again
    assert json.loads(git(bare, "show", "main:configs/7d.json"))["provenance"]["source"] == "init"

    # idempotent (README): running it again shows the finished demo, and opens or merges nothing
    second = run_cli("demo", "--dir", str(demo), timeout=300)
    assert second.code == 0, second.stderr
    assert "already ran" in second.stdout and "Demo finished" in second.stdout
    assert (repo / "data" / "forge" / "pulls.json").read_text() == pulls_text, "no new pull requests"
    assert git(bare, "log", "--format=%s", "main") == log, "no new merges"
    assert pd.read_parquet(repo / "data" / "optimization_history.parquet").equals(hist), "no new runs"
    # reports for every horizon of the run
    run_dirs = sorted((repo / "data" / "runs").iterdir())
    for h in HORIZONS:
        assert any((d / h / "pr_body.md").exists() and (d / h / "report.json").exists() for d in run_dirs)
    body = next((d / "7d" / "pr_body.md").read_text() for d in run_dirs if (d / "7d" / "pr_body.md").exists())
    assert "random weights" in body and "| Criterion | Value | Threshold | Result |" in body


def small_workspace(tmp_path: Path, model: Path, series_csv: Path) -> Path:
    ws = tmp_path / "ws"
    scaffold(ws, model_id=str(model))
    (ws / "chronops.toml").write_text(SMALL_SEARCH)
    result = run_cli("ingest", "--source", "csv", str(series_csv), "-w", str(ws))
    assert result.code == 0, result.stderr
    return ws


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not REAL_SERIES.exists(), reason="real series ../shared/data/usdclp_daily.csv absent")
def test_real_series_dry_run_prints_scores_and_verdict_and_writes_no_git(tmp_path: Path, tiny_t5: Path) -> None:
    ws = small_workspace(tmp_path, tiny_t5, REAL_SERIES)
    git(ws, "init", "-b", "main")
    git(ws, "add", "-A")
    git(ws, "commit", "-m", "initial")
    before = git(ws, "for-each-ref")
    result = run_cli("run", "--horizon", "7d", "--dry-run", "-w", str(ws), timeout=900)
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "tuning RMSE" in out and "ctx=90 ns=10 T=0.8" in out
    assert any(word in out for word in ("REJECTED", "APPROVED", "rejected", "approved"))
    assert "dry run (plan)" in out
    assert git(ws, "for-each-ref") == before
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    run_id = next((ws / "data" / "runs").iterdir()).name

    # re-validation from stored per-origin results reproduces the verdict exactly ...
    again = run_cli("validate", "--run", run_id, "--json", "-w", str(ws))
    assert again.code == 0, again.stderr
    doc = json.loads(again.stdout)["horizons"][0]
    assert doc["same_as_stored"] is True
    coverage = next(c for c in doc["verdict"]["criteria"] if c["name"] == "ci95_coverage")
    # ... and flips the coverage criterion when its threshold is moved past the measured value
    flipped_threshold = coverage["value"] + 1 if coverage["passed"] else max(coverage["value"] - 1, 0)
    flipped = run_cli("validate", "--run", run_id, "--json", "--min-ci95-coverage-pct", str(flipped_threshold), "-w", str(ws))
    new = next(c for c in json.loads(flipped.stdout)["horizons"][0]["verdict"]["criteria"] if c["name"] == "ci95_coverage")
    assert new["passed"] is not coverage["passed"]
