"""The missed-run watchdog: healthy and missed workspaces, email through a real SMTP server, the one
GitHub issue against the GitHub stand-in, and the CLI's exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.history import HistoryRecord
from bot.flow.alerts import read_alerts
from bot.flow.records import MetricsRecord, append_metrics, records_frame
from bot.flow.watchdog import (
    EXIT_RUN_MISSED,
    TITLE_PREFIX,
    check_runs,
    issue_spec,
    watchdog_command,
)
from bot.settings import AlertSettings, Settings
from bot.workspace import Workspace
from tests.conftest import run_cli
from tests.github_stub import running_stub
from tests.test_alerts import Inbox, free_port

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday


def run_row(
    days_ago: float, status: str = "skipped", horizon: str = "7d", event: str = "run"
) -> MetricsRecord:
    return MetricsRecord(f"r{days_ago}", horizon, NOW - timedelta(days=days_ago), event=event, status=status)


def ws_with(tmp_path: Path, rows: list[MetricsRecord], **alerts: Any) -> Workspace:
    ws = Workspace(tmp_path, Settings(alerts=AlertSettings(**alerts)))
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "chronops.toml").touch()  # a workspace, as the CLI requires (settings: the defaults)
    append_metrics(ws.metrics_path, rows)
    return ws


def test_check_runs_pure() -> None:
    empty_h = records_frame([], HistoryRecord)
    metrics = records_frame([run_row(3), run_row(1, "failed"), run_row(0.5, event="deploy")], MetricsRecord)
    health = check_runs(empty_h, metrics, NOW, 8)
    assert health.healthy and health.days_since == pytest.approx(3.0) and health.last_horizon == "7d"
    assert health.expected_at == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # Sunday 02:00 Santiago (UTC-3)
    late = check_runs(empty_h, records_frame([run_row(9.5), run_row(1, "failed")], MetricsRecord), NOW, 8)
    assert not late.healthy and late.title == f"{TITLE_PREFIX} for 9 days"
    never = check_runs(empty_h, records_frame([], MetricsRecord), NOW, 8)
    assert not never.healthy and never.last_success is None and never.title == f"{TITLE_PREFIX} yet"
    # history rows count too (runs recorded before metrics existed); rollbacks do not
    history = records_frame([
        HistoryRecord("h1", "30d", NOW - timedelta(days=2), "time", None, "NONE", None, True, "rejected"),
        HistoryRecord("h2", "7d", NOW - timedelta(days=1), "rollback", None, "NONE", None, True, "rolled_back"),
    ], HistoryRecord)  # fmt: skip
    from_history = check_runs(history, records_frame([run_row(20)], MetricsRecord), NOW, 8)
    assert from_history.healthy and from_history.last_horizon == "30d" and from_history.days_since == 2.0


def test_healthy_workspace_exits_zero_and_alerts_nobody(tmp_path: Path) -> None:
    ws = ws_with(tmp_path, [run_row(6.9)])
    code, health = watchdog_command(ws, now=NOW)
    assert code == 0 and health.healthy
    assert not (tmp_path / "data" / "alerts.parquet").exists()


def test_missed_run_emails_and_records_locally(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ws = ws_with(
            tmp_path, [run_row(12), run_row(2, "failed")], enabled=True, recipients=["ops@example.com"],
            smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
        )  # fmt: skip
        said: list[str] = []
        code, health = watchdog_command(ws, now=NOW, say=said.append)
    finally:
        controller.stop()
    assert code == EXIT_RUN_MISSED == 6 and not health.healthy
    assert [m["Subject"] for _, m in inbox.messages] == ["[Model Optimizer] Scheduled Run Missed for all horizons"]
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert list(log["channel"]) == ["email", "local"] and log["ok"].all()
    assert log["subject"].iloc[1] == f"{TITLE_PREFIX} for 12 days"
    assert any("MISSED" in s for s in said)


def test_missed_run_with_the_mail_server_down_still_exits_six(tmp_path: Path) -> None:
    ws = ws_with(tmp_path, [], enabled=True, recipients=["ops@example.com"], smtp_host="127.0.0.1",
                 smtp_port=free_port(), smtp_security="none")  # fmt: skip
    code, _ = watchdog_command(ws, now=NOW, max_days=8)
    assert code == EXIT_RUN_MISSED
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert list(log["ok"]) == [False, True] and "ConnectionRefusedError" in log["error"].iloc[0]


def test_one_github_issue_opened_updated_and_closed(git_remote: tuple[Path, Path], tmp_path: Path) -> None:
    from bot.adapters.forges.github import GitHubForge
    from bot.adapters.forges.github_http import RetryPolicy
    from bot.adapters.git import GitRepo

    bare, clone = git_remote
    with running_stub(bare) as stub:
        forge = GitHubForge(
            GitRepo.open(clone), repository=stub.repository, token=stub.token, token_source="CHRONOPS_GITHUB_TOKEN",
            api_url=stub.api_url, policy=RetryPolicy.no_backoff(),
        )  # fmt: skip
        ws = ws_with(tmp_path / "ws", [run_row(10)])
        code, _ = watchdog_command(ws, now=NOW, forge_kind="github", email=False, forge=lambda: forge)
        assert code == EXIT_RUN_MISSED
        assert [i["title"] for i in stub.issues.values()] == [f"{TITLE_PREFIX} for 10 days"]
        number = next(iter(stub.issues))
        assert stub.issues[number]["labels"] == ["chronops-watchdog"]
        # the same state again: nothing written; a day later: the same issue, retitled
        health = watchdog_command(ws, now=NOW, forge_kind="github", email=False, forge=lambda: forge)[1]
        assert forge.ensure_issue(issue_spec(health)) == ("unchanged", number)
        code, _ = watchdog_command(
            ws, now=NOW + timedelta(days=1), forge_kind="github", email=False, forge=lambda: forge
        )
        assert code == EXIT_RUN_MISSED and len(stub.issues) == 1
        assert stub.issues[number]["title"] == f"{TITLE_PREFIX} for 11 days"
        # runs are back: the issue is closed with a comment
        append_metrics(ws.metrics_path, [run_row(-0.5)])
        code, health = watchdog_command(
            ws, now=NOW + timedelta(days=1), forge_kind="github", email=False, forge=lambda: forge
        )
        assert code == 0 and stub.issues[number]["state"] == "closed"
        assert any("Runs are back" in c["body"] for c in stub.comments)
        assert forge.close_issue(issue_spec(health), "again") is None


def test_local_forge_keeps_one_issue_too(git_remote: tuple[Path, Path], tmp_path: Path) -> None:
    from bot.adapters.forges.local import LocalForge
    from bot.adapters.git import GitRepo

    _, clone = git_remote
    forge = LocalForge(GitRepo.open(clone), tmp_path / "forge" / "pulls.json")
    health = check_runs(records_frame([], HistoryRecord), records_frame([run_row(10)], MetricsRecord), NOW, 7)
    spec = issue_spec(health)
    assert forge.ensure_issue(spec)[0] == "created"
    assert forge.ensure_issue(spec)[0] == "unchanged"
    later = issue_spec(check_runs(records_frame([], HistoryRecord), records_frame([run_row(11)], MetricsRecord), NOW, 7))
    action, number = forge.ensure_issue(later)
    assert action == "updated" and number == 1
    assert forge.close_issue(later, "Runs are back") == 1
    assert forge.close_issue(later, "Runs are back") is None
    stored = json.loads((tmp_path / "forge" / "issues.json").read_text())["issues"]
    assert [(i["number"], i["state"], i["comments"]) for i in stored] == [(1, "closed", ["Runs are back"])]


def test_github_failure_is_a_warning_not_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Any:
        raise ConnectionError("no route to GitHub")

    ws = ws_with(tmp_path, [run_row(30)])
    code, _ = watchdog_command(ws, now=NOW, forge_kind="github", email=False, forge=broken)
    assert code == EXIT_RUN_MISSED and "could not update its GitHub issue" in caplog.text


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    recent = datetime.now(UTC) - timedelta(hours=2)
    ws = ws_with(tmp_path, [MetricsRecord("r", "7d", recent, status="skipped")])
    # the CLI reads only a folder that is a workspace (configs/ or chronops.toml)
    (ws.root / "configs").mkdir()
    with pytest.raises(SystemExit) as ok:
        main(["watchdog", "--workspace", str(ws.root), "--no-email"])
    assert ok.value.code == 0 and "ok: last successful run" in capsys.readouterr().out
    missed = run_cli("watchdog", "--workspace", str(ws.root), "--max-days", "0", "--json", timeout=120)
    assert missed.code == 6, missed.stderr
    assert json.loads(missed.stdout)["healthy"] is False
