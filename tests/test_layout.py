"""The code map holds (layers, no import circles, file sizes), and a decision keeps its meaning when
it crosses processes as JSON (the Actions matrix's search and propose jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bot.core.params import TriggerSettings
from bot.core.performance import performance_check
from bot.core.trigger_summary import TriggerSummary
from bot.core.triggers import decide, drift_check, time_check
from tests.conftest import REPO_ROOT


def run_python(code: str, *, pythonpath: Path | None = None, cwd: Path | None = None) -> str:
    """stdout of `python -c CODE` in a fresh interpreter (`pythonpath`: where `bot` is imported from)."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()

def test_code_map_has_no_violations() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "code_map.py")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout
    assert "0 violation(s)" in proc.stdout


def test_code_map_catches_a_forbidden_import(tmp_path: object) -> None:
    """The checker itself can fail: an upward import from core is reported."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import code_map
    finally:
        sys.path.pop(0)
    probe = REPO_ROOT / "bot" / "core" / "_layout_probe.py"
    probe.write_text("from bot.flow.outcome import HorizonOutcome\n")
    try:
        problems = code_map.check()
    finally:
        probe.unlink()
    assert any("bot.core._layout_probe:1: core may not import flow" in p for p in problems), problems


def test_trigger_summary_survives_json() -> None:
    days = pd.bdate_range("2024-01-01", periods=300)
    rng = np.random.default_rng(5)
    returns = rng.normal(0.0, 0.004, len(days))
    returns[-15:] *= 4  # a volatility jump: drift fires
    series = pd.DataFrame({"date": days, "value": 900.0 * np.exp(np.cumsum(returns))})
    as_of, settings = days[-1].date() + pd.Timedelta(days=1), TriggerSettings()
    decision = decide(
        "7d", as_of, time_check(date(2024, 1, 1), as_of, settings), drift_check(series, as_of, settings),
        performance_check(pd.DataFrame(columns=["target_date", "error", "step"]), as_of, settings, "none"),
    )  # fmt: skip
    summary = TriggerSummary.of(decision)
    assert summary == TriggerSummary.from_json(decision.to_json())
    assert summary.drift_fired and summary.material


def test_wheel_ships_the_templates(tmp_path: Path) -> None:
    """Installed from a wheel (no source tree beside it), every template still loads."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(REPO_ROOT), "-w", str(wheels)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)  # fmt: skip
    wheel = next(wheels.glob("chronops-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    probe = (
        "import bot.render.report as r, pathlib; env = r.environment();"
        "names = sorted(env.list_templates()); [env.get_template(n) for n in names];"
        "print(pathlib.Path(r.__file__).parent.parent.parent, len(names))"
    )
    where, count = run_python(probe, pythonpath=target, cwd=tmp_path).split()
    assert Path(where) == target and int(count) >= 20


def test_templates_found_where_a_copy_dropped_the_link(tmp_path: Path) -> None:
    """A Docker build context drops bot/render/templates (a link): the top-level templates/ serves."""
    import shutil

    shutil.copytree(REPO_ROOT / "bot", tmp_path / "bot", symlinks=True)
    (tmp_path / "bot" / "render" / "templates").unlink()
    shutil.copytree(REPO_ROOT / "templates", tmp_path / "templates")
    probe = (
        "import bot.render.report as r; env = r.environment();"
        "[env.get_template(n) for n in ('pr_body.md.j2', 'report.html.j2', 'dashboard.html.j2')];"
        "print(r.TEMPLATES_DIR)"
    )
    assert Path(run_python(probe, pythonpath=tmp_path, cwd=tmp_path)) == tmp_path / "templates"


def test_read_only_commands_start_without_the_heavy_imports() -> None:
    """status/check/history start in about a second: torch, chronos, git and scipy.stats (~1 s alone)
    are imported only by the code that needs them (benchmarks/cli_latency.py measures the seconds)."""
    probe = (
        "import sys, bot.cli, bot.commands.status, bot.commands.check, bot.commands.history, bot.flow.status;"
        "print(sorted(m for m in ('torch', 'chronos', 'git', 'github', 'scipy.stats') if m in sys.modules))"
    )
    assert run_python(probe) == "[]"
