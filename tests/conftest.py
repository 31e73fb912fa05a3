"""Shared fixtures: real git repositories (bare origin + clone), tiny random-weight models, a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REAL_SERIES = REPO_ROOT.parent / "shared" / "data" / "usdclp_daily.csv"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")


# The smallest search with a winner and a gate: one 7d config, 2 tuning + 2 validation origins.
TINY_SEARCH_SETTINGS = """\
[search]
num_samples = [10]
temperature = [1.0]
tuning_origins = 2
validation_origins = 2
sample_chunk = 10

[search.context_length]
"7d" = [90]
"""


def tiny_workspace(ws: Path, model: Path) -> Path:
    """`ws` scaffolded for `model` with TINY_SEARCH_SETTINGS and the synthetic series ingested."""
    from bot.commands.demo import synthetic_series
    from bot.commands.init import scaffold

    scaffold(ws, model_id=str(model))
    (ws / "chronops.toml").write_text(TINY_SEARCH_SETTINGS)
    csv = ws.parent / f"{ws.name}-series.csv"
    synthetic_series(end="2025-12-31").to_csv(csv, index=False)
    assert run_cli("ingest", "--source", "csv", str(csv), "-w", str(ws)).code == 0
    return ws


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """terminate, wait up to 15 s, then kill: a server a test started never outlives it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


# Read when bot.cli creates its consoles: tables are as wide in-process as in a subprocess.
os.environ.setdefault("COLUMNS", "200")
# Environment a CLI reads at import time or that kills the process: such runs get a real subprocess.
_SUBPROCESS_ENV = ("CHRONOPS_CRASH_AT", "COLUMNS")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600,
    isolated: bool = False,
) -> CliResult:  # fmt: skip
    """Run `chronops ARGS`: the real exit code, stdout and stderr.

    In this process by default (`bot.cli.main`, the console entry point, with stdout/stderr captured):
    no ~5 s of imports per call. `isolated=True` — or an env that a CLI reads at import or that kills
    the process (crash points) — runs `python -m bot ARGS` in a subprocess: locks held by another PID,
    signals, crash logs. Calls from a worker thread always get a subprocess.
    """
    # cwd, environment and stdout are per process: calls from worker threads get their own process
    in_thread = threading.current_thread() is not threading.main_thread()
    if isolated or in_thread or any(k in (env or {}) for k in _SUBPROCESS_ENV):
        proc = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
    return _run_in_process(list(args), cwd, env or {})


def _run_in_process(args: list[str], cwd: Path | None, env: dict[str, str]) -> CliResult:
    from bot.cli import main

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    assert result.code != 0, result
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bot.adapters.tiny import build_tiny_model
    from bot.core.config import Family

    return build_tiny_model(Family.T5, tmp_path_factory.mktemp("models") / "t5")


@pytest.fixture(scope="session")
def tiny_bolt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bot.adapters.tiny import build_tiny_model
    from bot.core.config import Family

    return build_tiny_model(Family.BOLT, tmp_path_factory.mktemp("models") / "bolt")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env={**os.environ, **GIT_ENV}
    ).stdout.strip()


@pytest.fixture
def git_remote(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(bare origin, clone with one commit on main)."""
    bare = tmp_path / "origin.git"
    clone = tmp_path / "repo"
    git(tmp_path, "init", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", str(bare), str(clone))
    (clone / "README.md").write_text("test repo\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-m", "initial")
    git(clone, "push", "-u", "origin", "main")
    yield bare, clone
