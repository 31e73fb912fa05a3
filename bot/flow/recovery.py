"""Make a killed run visible, and clean up after it.

A run writes a marker `data/runs/<run_id>/<horizon>.running` (JSON: pid, host, command, start time,
the step it is in) before it touches anything for a horizon, and removes it once the outcome is
recorded (history and metrics), success or known failure. A marker that is still there when the next
run takes the workspace lock belongs to a run that died: SIGKILL, OOM, a cancelled CI job, an
unexpected exception. `recover()` (called under the workspace lock at the start of `run` and
`rollback`) turns each such marker into a `failed` history row (and a metrics row) whose notes start
with "incomplete:" and say which step it died in, deletes temp files left by dead writers and removes
temporary git worktrees left behind by a killed commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bot.adapters.history import HistoryRecord, read_history, record_optimization
from bot.adapters.lock import pid_alive
from bot.adapters.store import atomic_write_text
from bot.workspace import Workspace

log = logging.getLogger(__name__)
MARKER_SUFFIX = ".running"
# `.<target>.<pid>.<mkstemp random>.tmp` (bot.adapters.store.atomic_write_bytes)
_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
UNTAGGED_TEMP_AGE_SECONDS = 3600.0  # a temp file without a PID is someone's leftover after an hour

_current: Path | None = None  # the marker of the horizon this process is running now


def marker_path(ws: Workspace, run_id: str, horizon: str) -> Path:
    return ws.runs_dir / run_id / f"{horizon}{MARKER_SUFFIX}"


def begin(ws: Workspace, run_id: str, horizon: str, command: str, started_at: datetime) -> Path:
    """Write the marker of a horizon's run (before anything else is written for it)."""
    global _current
    path = marker_path(ws, run_id, horizon)
    doc = {
        "run_id": run_id, "horizon": horizon, "pid": os.getpid(), "host": socket.gethostname(),
        "started_at": started_at.isoformat(timespec="seconds"), "command": command[:200], "step": "started",
    }  # fmt: skip
    atomic_write_text(path, json.dumps(doc) + "\n")
    _current = path
    return path


def mark_step(step: str) -> None:
    """Record the step the current horizon's run is in (what a recovered record will say)."""
    if _current is None or not _current.exists():
        return
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(_current.read_text(encoding="utf-8"))
        doc["step"] = step
        atomic_write_text(_current, json.dumps(doc) + "\n")


def end(path: Path) -> None:
    """The outcome is recorded: the run is no longer incomplete."""
    global _current
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if _current == path:
        _current = None


def _writer_busy(target: Path) -> bool:
    """Someone holds `<target>.lock` right now: a locked writer (an append, the cache, the pull-request
    records) is between its temp file and the rename, maybe in another container sharing data/,
    whose PIDs we cannot see."""
    lock = target.with_name(target.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False  # never locked: written only by runs, under the workspace lock we hold
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def sweep_temp_files(roots: list[Path], *, now: float | None = None) -> list[Path]:
    """Delete `.*.tmp` files left by atomic writes whose writer is gone: its PID is not alive here and
    no writer holds the target's lock (or, without a PID in the name, older than an hour)."""
    now = time.time() if now is None else now
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob(".*.tmp"):
            match = _TEMP.match(path.name)
            try:
                if match:
                    pid = int(match.group("pid"))
                    if pid == os.getpid() or pid_alive(pid) or _writer_busy(path.with_name(match["target"])):
                        continue
                elif now - path.stat().st_mtime < UNTAGGED_TEMP_AGE_SECONDS:
                    continue
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def prune_worktrees(root: Path) -> list[str]:
    """Remove the temporary worktrees (chronops-wt-*) a killed commit or merge left registered."""
    from git import GitCommandError, InvalidGitRepositoryError, NoSuchPathError, Repo

    try:
        repo = Repo(root)
        listing: str = repo.git.worktree("list", "--porcelain")
    except (GitCommandError, InvalidGitRepositoryError, NoSuchPathError):
        return []
    tmp = Path(tempfile.gettempdir()).resolve()
    removed = []
    for line in listing.splitlines():
        if not line.startswith("worktree "):
            continue
        path = Path(line.removeprefix("worktree "))
        holder = path.parent
        if not holder.name.startswith("chronops-wt-") or holder.parent.resolve() != tmp:
            continue
        with contextlib.suppress(GitCommandError):
            repo.git.worktree("remove", "--force", str(path))
        shutil.rmtree(holder, ignore_errors=True)
        removed.append(str(path))
    if removed:
        with contextlib.suppress(GitCommandError):
            repo.git.worktree("prune")
    return removed


def _recorded(frame: pd.DataFrame, run_id: str, horizon: str) -> bool:
    if frame.empty:
        return False
    return bool(((frame["run_id"] == run_id) & (frame["horizon"] == horizon)).any())


def recover_runs(ws: Workspace, now: datetime, recovered_by: str) -> list[dict[str, object]]:
    """Record every leftover marker's run as failed (notes "incomplete: ..."), then remove it.

    Call it holding the workspace lock: then every marker's run is over, whatever its PID says now
    (containers reuse PIDs, so "is that PID alive" would keep a dead run's marker forever)."""
    from bot.flow.records import MetricsRecord, append_metrics, read_metrics

    markers = sorted(ws.runs_dir.glob(f"*/*{MARKER_SUFFIX}")) if ws.runs_dir.is_dir() else []
    done = []
    for path in markers:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            run_id, horizon = str(doc["run_id"]), str(doc["horizon"])
        except (OSError, ValueError, KeyError, TypeError):
            run_id, horizon, doc = path.parent.name, path.name.removesuffix(MARKER_SUFFIX), {}
        note = (
            f"incomplete: the run died during step '{doc.get('step', '?')}' (process {doc.get('pid', '?')} on "
            f"{doc.get('host', '?')}, started {doc.get('started_at', '?')}: killed or crashed); recorded by "
            f"run {recovered_by}. Check the forge for a pull request it may have opened or merged."
        )
        started = _parse_time(doc.get("started_at")) or now
        triggered_by = (
            "rollback" if str(doc.get("command", "")).startswith("chronops rollback") else "unknown"
        )
        if not _recorded(read_history(ws.history_path), run_id, horizon):
            record_optimization(
                ws.history_path,
                HistoryRecord(
                    run_id=run_id, horizon=horizon, optimization_date=started, triggered_by=triggered_by,
                    performance_degradation_pct=None, drift_severity="NONE", days_since_last=None,
                    success=False, status="failed", notes=note[:500],
                ),
            )  # fmt: skip
        metrics = read_metrics(ws.metrics_path)
        if triggered_by != "rollback" and not _recorded(metrics[metrics["event"] == "run"], run_id, horizon):
            append_metrics(
                ws.metrics_path,
                [MetricsRecord(run_id, horizon, now, event="run", status="failed", deployment_result="failed",
                               error=note[:500])],
            )  # fmt: skip
        end(path)
        done.append({"run_id": run_id, "horizon": horizon, "step": doc.get("step", "?")})
    return done


def _parse_time(value: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def recover(ws: Workspace, now: datetime, recovered_by: str, say: Callable[[str], None]) -> None:
    """Everything a killed run left behind (call it holding the workspace lock)."""
    roots = {ws.path("data"), ws.configs_dir, ws.runs_dir, ws.history_path.parent, ws.metrics_path.parent}
    for path in sweep_temp_files(sorted(roots)):
        log.info("removed %s, left by a writer that died", path)
    for wt in prune_worktrees(ws.root):
        log.info("removed temporary worktree %s, left by a run that died", wt)
    for run in recover_runs(ws, now, recovered_by):
        say(
            f"{run['horizon']}: run {run['run_id']} died during step '{run['step']}' (killed or crashed); "
            "recorded it as failed (incomplete) in the history"
        )
