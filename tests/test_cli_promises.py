"""What the README promises about the CLI, checked through the real command line (issue 17).

Each test here failed on the code before issue 17: previews that moved the KPIs, wrong horizons and
non-workspace folders that passed silently, usage errors with the wrong exit code, a crash on an
unwritable dashboard folder, a config accepted under a name that is no horizon, dashboard files
only their owner could read, and missing `--version` / `--verbose`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, assert_one_line_error, run_cli, tiny_workspace

PLAN = ("run", "--horizon", "7d", "--force", "--dry-run", "plan")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2})$")
TIMELIKE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


def json_doc(result: CliResult, command: str) -> dict[str, Any]:
    """stdout as one JSON document of `command`, every time in it ISO 8601 with an offset."""
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1 and doc["command"] == command, doc

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and TIMELIKE.match(value):
            assert ISO.match(value), f"{command}: {value!r} is not ISO 8601 with an offset"
        elif isinstance(value, float):
            assert math.isfinite(value)

    walk(doc)
    return dict(doc)


@pytest.fixture(scope="module")
def previewed(tmp_path_factory: pytest.TempPathFactory, tiny_t5: Path) -> tuple[Path, str]:
    """A workspace whose only runs are two plan-level previews, and the last preview's run id."""
    ws = tiny_workspace(tmp_path_factory.mktemp("promises") / "ws", tiny_t5)
    # the first as a person at a terminal sees it (CHRONOPS_PROGRESS=1 = as if stderr were one)
    first = run_cli(*PLAN, "-w", str(ws), timeout=300, env={"CHRONOPS_PROGRESS": "1"}, isolated=True)
    assert first.code == 0, first.stderr
    assert "loading model " in first.stderr  # seconds of torch and model loading are announced
    # the second as a script calls it
    second = run_cli(*PLAN, "--json", "-w", str(ws), timeout=300)
    assert second.code == 0, second.stderr
    assert "loading model " not in second.stderr  # to a person only
    doc = json_doc(second, "run")
    (horizon,) = doc["horizons"]
    assert (
        horizon["status"] == "dry_run" and horizon["decision"] and horizon["report"].endswith("report.json")
    )
    run_id = horizon["run_id"]
    assert (ws / "data" / "runs" / run_id / "7d").is_dir(), run_id
    return ws, run_id


def test_previews_do_not_move_status_dashboard_or_watchdog(
    previewed: tuple[Path, str], tmp_path: Path
) -> None:
    ws, _ = previewed
    status = run_cli("status", "--json", "-w", str(ws))
    assert status.code == 0, status.stderr
    doc = json.loads(status.stdout)
    by_key = {k["key"]: k for k in doc["kpis"]}
    assert by_key["validation_success_rate"]["n"] == 0, "a preview is not a gate decision"
    row = next(r for r in doc["horizons"] if r["horizon"] == "7d")
    assert row.get("last_status") in (None, ""), row  # no run but previews: "never"

    assert by_key["memory_per_run"]["n"] == 0, "a preview's memory is recorded, not counted"
    import pandas as pd

    metrics = pd.read_parquet(ws / "data" / "metrics.parquet")
    assert (metrics["peak_rss_mib"] > 50).all(), "every run records its peak memory (MiB)"

    watchdog = run_cli("watchdog", "--json", "--no-email", "-w", str(ws))
    health = json.loads(watchdog.stdout)
    assert health["last_success"] is None, "a preview is not a successful run"
    assert watchdog.code == 6

    from datetime import UTC, datetime

    from bot.flow.status import dashboard_context
    from bot.workspace import Workspace

    ctx = dashboard_context(Workspace.open(ws), datetime.now(UTC))
    assert ctx["trigger_rows"] == [], "Recent triggers listed a preview"
    card = next(d for d in ctx["details"] if d["horizon"] == "7d")
    assert card["optimized"] is None, "Last optimization showed a preview"


def test_validate_rejects_an_unknown_horizon(previewed: tuple[Path, str]) -> None:
    ws, run_id = previewed
    ok = run_cli("validate", "--run", run_id, "--horizon", "7d", "--json", "-w", str(ws))
    assert ok.code == 0 and json.loads(ok.stdout)["horizons"], ok.stderr
    bad = run_cli("validate", "--run", run_id, "--horizon", "8d", "-w", str(ws))
    assert_one_line_error(bad, "8d")
    assert bad.code == 2
    other = run_cli("validate", "--run", run_id, "--horizon", "30d", "-w", str(ws))
    assert_one_line_error(other, "30d", run_id)  # a real horizon this run did not tune


def test_history_rejects_an_unknown_horizon(previewed: tuple[Path, str]) -> None:
    ws, _ = previewed
    bad = run_cli("history", "--horizon", "1w", "-w", str(ws))
    assert_one_line_error(bad, "1w")
    assert bad.code == 2


@pytest.mark.parametrize(
    "command", [("status",), ("history",), ("check", "--all"), ("dashboard", "--out", "x")]
)
def test_a_folder_that_is_no_workspace_is_an_error(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = run_cli(*command, "-w", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(result, "not a chronops workspace")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run",), "--horizon"),
        (("run", "--horizon", "7d", "--all"), "--all"),
        (("ingest", "--source", "xls"), "xls"),
        (("run", "--horizon", "7d", "--dry-run", "bogus"), "plan, local or full"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_valid(
    tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    run_cli("init", str(tmp_path))
    result = run_cli(*args, "-w", str(tmp_path))
    assert result.code == 2, result
    assert needle in result.stderr, result.stderr
    assert "unexpected extra argument" not in result.stderr
    assert "Traceback" not in result.stderr


def test_dashboard_into_an_impossible_folder_is_one_line(tmp_path: Path) -> None:
    run_cli("init", str(tmp_path))
    result = run_cli("dashboard", "--out", "/etc/passwd/x", "-w", str(tmp_path))
    assert_one_line_error(result, "/etc/passwd/x")
    assert result.code == 1


def test_dashboard_files_are_world_readable(tmp_path: Path) -> None:
    run_cli("init", str(tmp_path / "ws"))
    result = run_cli("dashboard", "--out", str(tmp_path / "site"), "-w", str(tmp_path / "ws"))
    assert result.code == 0, result.stderr
    for name in ("index.html", ".nojekyll"):
        mode = stat.S_IMODE((tmp_path / "site" / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))


def test_config_validate_rejects_a_config_under_a_name_that_is_no_horizon(tmp_path: Path) -> None:
    run_cli("init", str(tmp_path))
    foo = tmp_path / "foo.json"
    shutil.copy(tmp_path / "configs" / "30d.json", foo)
    result = run_cli("config", "validate", str(foo), "-w", str(tmp_path))
    assert_one_line_error(result, "foo.json", "30d.json")
    wrong = tmp_path / "configs" / "7d.json"
    shutil.copy(tmp_path / "configs" / "30d.json", wrong)
    assert_one_line_error(run_cli("config", "validate", str(wrong), "-w", str(tmp_path)), "7d.json")


def test_version() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"chronops {version('chronops')}"


def test_run_all_verbose_is_accepted(tmp_path: Path) -> None:
    # the seed's own command line; in a folder that is no workspace it must fail on that, not on --verbose
    result = run_cli("run", "--all", "--verbose", "-w", str(tmp_path))
    assert_one_line_error(result, "not a chronops workspace")


def test_every_command_a_script_calls_speaks_json(previewed: tuple[Path, str], tmp_path: Path) -> None:
    ws, run_id = previewed
    docs = {
        "status": run_cli("status", "--json", "-w", str(ws)),
        "history": run_cli("history", "--json", "-w", str(ws)),
        "check": run_cli("check", "--horizon", "7d", "--json", "-w", str(ws)),
        "validate": run_cli("validate", "--run", run_id, "--json", "-w", str(ws)),
        "config validate": run_cli("config", "validate", "--json", "-w", str(ws)),
        "forecast": run_cli("forecast", "--horizon", "7d", "--as-of", "2025-12-31", "--json", "-w", str(ws)),
    }
    for command, result in docs.items():
        assert result.code == 0, (command, result.stderr)
        json_doc(result, command)
    history = json_doc(docs["history"], "history")
    assert history["rows"] and all(r["status"] == "dry_run" for r in history["rows"])
    assert ISO.match(history["rows"][0]["optimization_date"])
    assert json_doc(docs["forecast"], "forecast")["horizons"][0]["ok"] is True
    watchdog = run_cli("watchdog", "--json", "--no-email", "-w", str(ws))
    assert watchdog.code == 6 and ISO.match(json_doc(watchdog, "watchdog")["expected_at"])
    csv = tmp_path / "s.csv"
    csv.write_text("date,value\n2025-01-02,900\n2025-01-03,901\n2025-01-06,902\n")
    other = tmp_path / "other"
    run_cli("init", str(other))
    ingest = run_cli("ingest", "--source", "csv", str(csv), "--json", "-w", str(other))
    assert ingest.code == 0 and json_doc(ingest, "ingest")["rows"] == 3, ingest.stderr
    deploy = run_cli("deploy", "--no-health-check", "--json", "-w", str(other))
    doc = json_doc(deploy, "deploy")
    assert doc["ok"] is (deploy.code == 0) and doc["messages"], (deploy.stdout, deploy.stderr)


def test_status_and_history_are_readable_at_80_columns(previewed: tuple[Path, str]) -> None:
    ws, _ = previewed
    for command in ("status", "history"):
        result = run_cli(command, "-w", str(ws), env={"COLUMNS": "80"})
        assert result.code == 0, result.stderr
        assert "…" not in result.stdout, result.stdout  # nothing cut off ('hori…', '2026…')
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        assert "nan" not in result.stdout and "NaT" not in result.stdout
    history = run_cli("history", "-w", str(ws), env={"COLUMNS": "80"}).stdout
    assert "when (UTC)" in history and "optimization_date" not in history
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", history), "no microseconds"
