"""Concurrency: one run per workspace (the workspace lock), stale-lock recovery, `chronops unlock`,
and concurrent appends to the history and metrics that never lose a record."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.history import read_history
from bot.commands.init import scaffold
from bot.flow.records import read_metrics
from tests.conftest import REPO_ROOT, TINY_SEARCH_SETTINGS, assert_one_line_error, run_cli, tiny_workspace

PLAN = ("run", "--horizon", "7d", "--force", "--dry-run", "plan")
LOCKED = re.compile(r"locked by PID (\d+) on (\S+) since (\S+)")


@pytest.fixture
def workspace(tmp_path: Path, tiny_t5: Path) -> Path:
    return tiny_workspace(tmp_path / "ws", tiny_t5)


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def holder(lock: Path) -> object:
    try:
        return json.loads(lock.read_text()).get("pid")
    except (OSError, ValueError):
        return None  # not there, or created and not written yet


@pytest.fixture
def frozen_run(workspace: Path) -> Iterator[subprocess.Popen[str]]:
    """A real `chronops run` that took the workspace lock and is then frozen (SIGSTOP) holding it."""
    lock = workspace / "data" / ".chronops.lock"
    first = start_cli(*PLAN, "-w", str(workspace))
    try:
        wait_for(lambda: holder(lock) == first.pid or first.poll() is not None, 120, "the first run's lock")
        first.send_signal(signal.SIGSTOP)
        assert lock.exists(), first.communicate()
        yield first
    finally:
        first.send_signal(signal.SIGCONT)
        if first.poll() is None:
            first.wait(timeout=300)


@pytest.mark.slow
def test_second_run_exits_4_naming_the_holder(workspace: Path, frozen_run: subprocess.Popen[str]) -> None:
    second = run_cli(*PLAN, "-w", str(workspace), timeout=120)
    assert second.code == 4, second
    assert_one_line_error(second, "locked by PID", "chronops unlock")
    pid, host, since = LOCKED.search(second.stderr).groups()  # type: ignore[union-attr]
    assert int(pid) == frozen_run.pid and host == socket.gethostname() and since[:4].isdigit()
    frozen_run.send_signal(signal.SIGCONT)
    _, err = frozen_run.communicate(timeout=300)
    assert frozen_run.returncode == 0, err  # the holder was never disturbed
    assert not (workspace / "data" / ".chronops.lock").exists()


@pytest.mark.slow
def test_second_run_waits_for_the_lock_when_told_to(
    workspace: Path, frozen_run: subprocess.Popen[str]
) -> None:
    settings = workspace / "chronops.toml"
    settings.write_text(TINY_SEARCH_SETTINGS + "\n[data]\nlock_timeout_seconds = 240\n")
    second = start_cli(*PLAN, "-w", str(workspace))
    time.sleep(6)  # long enough to import and find the lock taken
    assert second.poll() is None, second.communicate()  # waiting, not failed
    frozen_run.send_signal(signal.SIGCONT)
    assert frozen_run.wait(timeout=300) == 0
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    history = read_history(workspace / "data" / "optimization_history.parquet")
    assert len(history) == 2 and history["run_id"].nunique() == 2  # both ran, one after the other


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def write_lock(workspace: Path, pid: int, host: str) -> Path:
    lock = workspace / "data" / ".chronops.lock"
    doc = {"pid": pid, "host": host, "since": "2026-01-01T00:00:00+00:00", "command": "chronops run --all"}
    lock.write_text(json.dumps(doc))
    return lock


def test_stale_lock_from_a_dead_process_is_recovered(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    scaffold(ws, model_id="amazon/chronos-t5-small")  # no series: the run fails right after the lock
    lock = write_lock(ws, dead_pid(), socket.gethostname())
    result = run_cli("run", "--horizon", "7d", "--dry-run", "plan", "-w", str(ws))
    assert_one_line_error(result, "series.parquet", "no series yet")  # got past the lock
    assert not lock.exists()


def test_lock_from_another_host_needs_unlock(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    scaffold(ws, model_id="amazon/chronos-t5-small")
    lock = write_lock(ws, 12345, "some-other-runner")
    result = run_cli("run", "--horizon", "7d", "--dry-run", "plan", "-w", str(ws))
    assert result.code == 4
    assert_one_line_error(
        result, "locked by PID 12345 on some-other-runner since 2026-01-01", "chronops unlock"
    )
    unlocked = run_cli("unlock", "-w", str(ws))
    assert unlocked.code == 0 and "removed lock: locked by PID 12345 on some-other-runner" in unlocked.stdout
    assert not lock.exists()
    assert "no lock was held" in run_cli("unlock", "-w", str(ws)).stdout
    again = run_cli("run", "--horizon", "7d", "--dry-run", "plan", "-w", str(ws))
    assert_one_line_error(again, "no series yet")


APPENDER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from bot.adapters.history import HistoryRecord, record_optimization
from bot.flow.records import MetricsRecord, append_metrics

data, worker, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    now = datetime.now(UTC)
    run_id = f"w{worker}-{i}"
    record_optimization(data / "optimization_history.parquet", HistoryRecord(
        run_id=run_id, horizon="7d", optimization_date=now, triggered_by="test", performance_degradation_pct=None,
        drift_severity="NONE", days_since_last=None, success=True, status="skipped"))
    append_metrics(data / "metrics.parquet", [MetricsRecord(run_id, "7d", now)])
"""


def test_concurrent_appends_never_lose_a_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    workers, count = 4, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(data), str(w), str(count)],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    reads = 0
    while any(p.poll() is None for p in procs):  # a reader meanwhile always sees a whole file
        read_history(data / "optimization_history.parquet")
        read_metrics(data / "metrics.parquet")
        reads += 1
    for p in procs:
        assert p.wait() == 0, p.stderr.read() if p.stderr else ""
    expected = {f"w{w}-{i}" for w in range(workers) for i in range(count)}
    history = read_history(data / "optimization_history.parquet")
    metrics = read_metrics(data / "metrics.parquet")
    assert len(history) == workers * count and set(history["run_id"]) == expected
    assert len(metrics) == workers * count and set(metrics["run_id"]) == expected
    assert reads > 0
    assert not list(data.glob(".*.tmp"))
