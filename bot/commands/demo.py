"""`chronops demo`: the whole loop offline on a self-contained workspace.

DIR/origin.git   a bare repository playing the forge's remote
DIR/repo         the workspace (a clone): configs/, chronops.toml, data/, models/
The series is SYNTHETIC (seeded, USD/CLP-like) and the model is a random-weight tiny T5: forecasts
are meaningless, so the gate rightly rejects them; the demo then approves one horizon through the
recorded manual override (never by loosening the gate), merges it, and rolls it back.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from git import Repo

from bot.adapters.store import atomic_write_text, write_table
from bot.adapters.tiny import build_tiny_model
from bot.commands.init import scaffold
from bot.core.config import HORIZONS, Family
from bot.core.series import validate_series
from bot.flow.outcome import ProgressFactory
from bot.settings import SETTINGS_FILE
from bot.workspace import Workspace

MODEL_DIR = "models/chronos-t5-tiny-random"
FINISHED = "data/demo-finished.json"  # written last: its presence means the whole loop ran
OVERRIDE_REASON = (
    "demo: random-weight model, nothing can rightly pass the gate; approving 7d by manual override "
    "to show the merge and rollback path"
)
# Small enough to run the whole loop in well under 3 minutes on 2 cores.
DEMO_SETTINGS = """\
# chronops demo settings: a small search so the offline demo finishes in minutes.
# The model has random weights: every score below is meaningless.
[search]
num_samples = [10, 20]
temperature = [0.8, 1.0]
tuning_origins = 4
validation_origins = 4
sample_chunk = 20

[forge]
kind = "local"
automerge = true
"""


def synthetic_series(seed: int = 7, start: str = "2016-01-04", end: str = "2026-09-30") -> pd.DataFrame:
    """A seeded USD/CLP-like series: business days, fat-tailed log returns, volatility regimes."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    n = len(dates)
    vol = np.where(np.arange(n) % 700 < 120, 0.009, 0.005)  # calm years with stressed episodes
    shocks = rng.standard_t(df=5, size=n) / np.sqrt(5 / 3)
    log_level = np.log(680.0) + np.cumsum(vol * shocks + 0.00008)
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "value": np.round(np.exp(log_level), 2)})


def _git(repo: Repo, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "demo operator", "GIT_AUTHOR_EMAIL": "operator@demo.local",
           "GIT_COMMITTER_NAME": "demo operator", "GIT_COMMITTER_EMAIL": "operator@demo.local"}  # fmt: skip
    out: str = repo.git.execute(["git", *args], env=env)
    return out


def build_workspace(root: Path) -> Path:
    """Create (or reuse) DIR/origin.git and DIR/repo with configs, settings, series and model."""
    root.mkdir(parents=True, exist_ok=True)
    bare_path, ws = root / "origin.git", root / "repo"
    if not bare_path.exists():
        Repo.init(bare_path, bare=True, initial_branch="main")
    if not ws.exists():
        Repo.clone_from(str(bare_path), ws)
    repo = Repo(ws)
    if not (ws / SETTINGS_FILE).exists():
        atomic_write_text(ws / SETTINGS_FILE, DEMO_SETTINGS)
    scaffold(ws, model_id=MODEL_DIR, family=Family.T5)
    gi = ws / ".gitignore"
    if "models/" not in gi.read_text():
        atomic_write_text(gi, gi.read_text() + "models/\n")
    with contextlib.redirect_stderr(io.StringIO()):
        build_tiny_model(Family.T5, ws / MODEL_DIR, seed=0)
    frame, _ = validate_series(synthetic_series(), source="synthetic", max_gap_days=7)
    write_table(ws / "data" / "series.parquet", frame)
    atomic_write_text(
        ws / "data" / "SYNTHETIC", "data/series.parquet is a seeded synthetic series, not market data\n"
    )
    if not repo.head.is_valid():
        _git(repo, "add", "-A")
        _git(repo, "commit", "--no-gpg-sign", "-m", "Add chronops configs and settings")
        _git(repo, "push", "-u", "origin", "main")
    return ws


def run_demo(root: Path, *, progress: ProgressFactory | None, say: Callable[[str], None]) -> str:
    root = root.resolve()
    say(f"demo workspace: {root} (synthetic series, random-weight tiny T5: forecasts are meaningless)")
    ws_root = build_workspace(root)
    ws = Workspace.open(ws_root)
    from bot.adapters.lock import workspace_lock

    with workspace_lock(ws.path("data"), timeout=ws.settings.data.lock_timeout_seconds):
        done = ws.path(FINISHED)
        if done.exists():  # idempotent: a finished demo is shown again, never re-run (no new PRs or merges)
            say(f"the demo already ran in {root}; nothing was run again (delete {root} to start over)")
            return _summary(root, ws_root, ws, json.loads(done.read_text(encoding="utf-8"))["run_id"])
        return _demo_loop(root, ws_root, ws, progress=progress, say=say)


def _demo_loop(
    root: Path, ws_root: Path, ws: Workspace, *, progress: ProgressFactory | None, say: Callable[[str], None]
) -> str:
    from bot.adapters.forges.factory import make_forge
    from bot.commands.rollback import rollback_command
    from bot.commands.run import describe
    from bot.flow.outcome import RunOptions, new_run_id, utcnow
    from bot.flow.pipeline import run_horizon

    forge = make_forge(ws, "local")
    now = utcnow()
    run_id = new_run_id(now)
    options = RunOptions(force=True, command="chronops run --all --force")
    outcomes = {}
    for h in HORIZONS:
        outcomes[h] = run_horizon(
            ws, h, run_id=run_id, now=now, options=options, forge=forge, progress=progress
        )
        say(describe(outcomes[h]))
    approved = [h for h, o in outcomes.items() if o.verdict and o.verdict.approved]
    if not approved:
        say(
            "no horizon passed the gate (expected with random weights); approving 7d by recorded manual override"
        )
        now2 = utcnow()
        override = RunOptions(
            force=True, force_approve_reason=OVERRIDE_REASON,
            command=f'chronops run --horizon 7d --force-approve --reason "{OVERRIDE_REASON}"',
        )  # fmt: skip
        o = run_horizon(
            ws, "7d", run_id=new_run_id(now2), now=now2, options=override, forge=forge, progress=progress
        )
        say(describe(o))
        approved = ["7d"]
    target = approved[0]
    rollback_command(
        ws_root,
        horizon=target,
        to=None,
        reason="demo: show rollback by revert",
        merge=True,
        forge_kind="local",
        say=say,
    )
    atomic_write_text(ws.path(FINISHED), json.dumps({"run_id": run_id, "finished_at": utcnow().isoformat()}) + "\n")
    return _summary(root, ws_root, ws, run_id)


def _summary(root: Path, ws_root: Path, ws: Workspace, run_id: str) -> str:
    log = _git(Repo(root / "origin.git"), "log", "--oneline", "--graph", "-n", "12", "main")
    return "\n".join(
        [
            "",
            "Demo finished (synthetic data, random-weight model: the numbers are meaningless).",
            f"  workspace:   {ws_root}",
            f"  reports:     {ws.runs_dir / run_id}/<horizon>/pr_body.md, report.json",
            f"  history:     {ws.history_path}  (chronops history -w {ws_root})",
            f"  pull reqs:   {ws.pulls_path}",
            f"  git log:     git -C {root / 'origin.git'} log --graph --oneline main",
            "",
            log,
        ]
    )
