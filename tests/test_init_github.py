"""`chronops init --github` in a repository that is not a chronops clone: the scaffolded optimize
workflow's steps run in order, as a runner would, against the GitHub stand-in, and open a pull request.

What stands in for what: a wheel built from this checkout for the pinned release (`--install`); a
virtual environment whose dependencies come from the test's own environment (a `.pth` file), so
`pip install` resolves offline for `actions/setup-python`; a `git clone` for `actions/checkout`; a
local mindicador-shaped server serving the synthetic series; tests/github_stub.py for the GitHub API
and a bare repository for the git remote. The model is a random-weight tiny T5: forecasts are noise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TINY_SEARCH_SETTINGS, git, run_cli
from tests.github_stub import running_stub

ROOT = Path(__file__).resolve().parent.parent


class _Mindicador(BaseHTTPRequestHandler):
    """GET /api/dolar/<year>: that year of the synthetic series, newest first, as mindicador.cl does."""

    rows: list[dict[str, Any]] = []  # noqa: RUF012 (set once per test)

    def do_GET(self) -> None:
        year = self.path.rstrip("/").rsplit("/", 1)[-1]
        serie = [
            {"fecha": f"{r['date']}T03:00:00.000Z", "valor": r["value"]} for r in self.rows if r["date"][:4] == year
        ]
        body = json.dumps({"version": "1.7.0", "codigo": "dolar", "serie": serie[::-1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def mindicador() -> Iterator[str]:
    from bot.commands.demo import synthetic_series

    _Mindicador.rows = synthetic_series(end="2025-12-31").to_dict("records")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mindicador)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/dolar"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- a small runner for one job's steps -------------------------------------------------------------
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)


class JobRunner:
    """Runs a workflow job's `run:` steps in order like the Actions runner (bash -eo pipefail, env
    merged workflow → job → step, $GITHUB_OUTPUT per step, `if:` conditions). Expressions must be in
    `known` (or be a step output): anything else fails the test instead of being guessed."""

    def __init__(self, known: dict[str, str], env: dict[str, str], cwd: Path) -> None:
        self.known, self.env, self.cwd = known, env, cwd
        self.outputs: dict[str, dict[str, str]] = {}
        self.ran: list[str] = []

    def value(self, expr: str) -> str:
        expr = expr.strip()
        if expr in self.known:
            return self.known[expr]
        if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.(\w+)", expr):
            return self.outputs.get(m.group(1), {}).get(m.group(2), "")
        if m := re.fullmatch(r"env\.(\w+)", expr):
            return self.env.get(m.group(1), "")
        raise AssertionError(f"expression the test does not know: {expr!r}")

    def render(self, text: str) -> str:
        return EXPR.sub(lambda m: self.value(m.group(1)), str(text))

    def condition(self, cond: str | None) -> bool:
        if cond is None:
            return True
        cond = EXPR.sub(lambda m: m.group(1), str(cond)).strip()
        for term in (t.strip() for t in cond.split("&&")):
            if term == "!cancelled()":
                continue
            m = re.fullmatch(r"(.+?)\s*(==|!=)\s*'([^']*)'", term)
            assert m, f"condition the test does not know: {term!r}"
            equal = self.value(m.group(1)) == m.group(3)
            if equal != (m.group(2) == "=="):
                return False
        return True

    def run_job(self, job: dict[str, Any], tmp: Path) -> None:
        self.env.update({k: self.render(v) for k, v in (job.get("env") or {}).items()})
        for n, step in enumerate(job["steps"]):
            name = step.get("name") or step.get("uses")
            if not self.condition(step.get("if")):
                continue
            if "uses" in step:
                action = step["uses"].split("@")[0]
                assert action in ("actions/checkout", "actions/setup-python"), f"unexpected action {action}"
                assert n < 2, "checkout and setup-python come first (the test does them before)"
                continue
            output = tmp / f"output-{n}"
            output.write_text("")
            env = {**self.env, **{k: self.render(v) for k, v in (step.get("env") or {}).items()}}
            env["GITHUB_OUTPUT"] = str(output)
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=self.cwd, env=env, capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, f"step {name!r} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            if "id" in step:
                self.outputs[step["id"]] = dict(
                    line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
                )
            self.ran.append(str(name))


def runner_python(venv: Path) -> Path:
    """A fresh venv (setup-python's stand-in) that sees the test environment's packages, not its
    chronops: dependencies resolve offline, chronops itself must come from the pinned wheel."""
    # Without its own pip and setuptools: the test environment's (newer) ones are the ones seen.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_scaffolded_optimize_workflow_opens_a_pull_request_in_a_fresh_repository(
    tmp_path: Path, tiny_t5: Path, mindicador: str
) -> None:
    # A release of chronops: a wheel built from this checkout.
    dist = tmp_path / "dist"
    build = tmp_path / "wheel-src"
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "node_modules", "__pycache__"), symlinks=True)  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(build)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(dist.glob("chronops-*.whl"))

    # The user's repository: no chronops source, scaffolded by `chronops init --github`.
    server = tmp_path / "github"
    bare = server / "acme" / "fx.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    user = tmp_path / "user"
    git(tmp_path, "clone", "-q", str(bare), str(user))
    (user / "README.md").write_text("USD/CLP forecasting\n")
    result = run_cli("init", str(user), "--model-id", "models/tiny", "--github", "--install", str(wheel))
    assert result.code == 0, result
    assert "created  " + str(user / ".github/workflows/chronops-optimize.yml") in result.stdout
    (user / "chronops.toml").write_text(TINY_SEARCH_SETTINGS)  # the user's own (small) search
    shutil.copytree(tiny_t5, user / "models" / "tiny")
    git(user, "add", "-A")
    git(user, "commit", "-q", "-m", "chronops")
    git(user, "push", "-q", "origin", "main")
    assert not (user / "bot").exists() and not (user / "pyproject.toml").exists()
    workflow = yaml.safe_load((user / ".github/workflows/chronops-optimize.yml").read_text())

    # The runner: checkout, setup-python, then the job's run: steps.
    checkout = tmp_path / "runner" / "work"
    git(tmp_path, "clone", "-q", str(bare), str(checkout))
    runner_temp = tmp_path / "runner" / "temp"
    runner_temp.mkdir()
    python_bin = runner_python(tmp_path / "runner" / "python")
    with running_stub(bare, repository="acme/fx") as stub:
        known = {
            "github.token": stub.token, "github.event_name": "workflow_dispatch", "github.event.schedule": "",
            "inputs.horizon || 'all'": "7d", "inputs.force || false": "true",
            "inputs.start_state_branch || false": "true", "vars.CHRONOPS_SERIES_URL": mindicador,
            "vars.CHRONOPS_APP_ID": "", "steps.app-token.outputs.token || secrets.CHRONOPS_TOKEN": "",
        }  # fmt: skip
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
            "PATH": f"{python_bin}:{os.environ['PATH']}", "GITHUB_ACTIONS": "true",
            "GITHUB_REPOSITORY": "acme/fx", "GITHUB_SERVER_URL": f"file://{server}",
            "GITHUB_API_URL": stub.api_url, "GITHUB_RUN_ID": "4242", "RUNNER_TEMP": str(runner_temp),
            "GITHUB_STEP_SUMMARY": str(runner_temp / "summary.md"), "CHRONOPS_TORCH_THREADS": "1",
        }  # fmt: skip
        runner = JobRunner(known, env, checkout)
        runner.run_job(workflow["jobs"]["optimize"], runner_temp)

        assert runner.ran == [
            "Install chronops (pinned)", "Guard the schedule (02:xx in America/Santiago only)",
            "Start the state branch (first run only)", "Restore state from the chronops-state branch",
            "Ingest the latest USD/CLP observations", "Search, gate and open, update or merge pull requests",
            "Save state to the chronops-state branch",
        ]  # fmt: skip
        pulls = stub.open_pulls("chronops/7d")
        assert len(pulls) == 1, stub.pulls
        assert "horizon:7d" in pulls[0]["labels"]
        assert json.loads(git(bare, "show", "chronops/7d:configs/7d.json"))["horizon"] == "7d"
    # chronops ran from the wheel, not from a source tree.
    installed = subprocess.run(
        [str(python_bin / "python"), "-c", "import bot; print(bot.__file__)"],
        cwd=checkout, capture_output=True, text=True, check=True, env=runner.env,
    ).stdout  # fmt: skip
    assert str(tmp_path / "runner" / "python") in installed
    state = git(bare, "ls-tree", "-r", "--name-only", "chronops-state").split()
    assert "data/optimization_history.parquet" in state and "data/series.parquet" in state


def test_init_github_needs_a_pinned_install(tmp_path: Path) -> None:
    missing = run_cli("init", str(tmp_path / "a"), "--github")
    assert missing.code == 1 and "--github needs --install SPEC" in missing.stderr
    loose = run_cli("init", str(tmp_path / "b"), "--github", "--install", "chronops>=0.1")
    assert loose.code == 1 and "is not pinned" in loose.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before writing
