"""`chronops status` (live config from git history, `--at DATE` across a merge and a rollback) and the
static dashboard: rendered from demo-like data, checked as HTML and in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest

from bot.adapters.config_history import configs_at, end_of_day, parse_change_subject
from bot.adapters.forges.base import Proposal
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.adapters.history import HistoryRecord, record_optimization
from bot.commands.init import default_config
from bot.core.config import HORIZONS, render_config
from bot.flow.records import MetricsRecord, append_metrics
from bot.flow.status import dashboard_context, status_document, write_dashboard
from bot.render.charts import Bars, bar_chart, line_chart
from bot.render.dashboard import CHART_IDS, SECTIONS, render_dashboard
from bot.settings import Settings
from bot.workspace import Workspace
from tests.browser import chromium
from tests.conftest import GIT_ENV, REPO_ROOT, git, run_cli

MODEL = "amazon/chronos-t5-small"
ARTIFACTS = REPO_ROOT / "artifacts"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def dated(moment: datetime) -> None:
    """Commits made from here on (by git or the forge) carry this date."""
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
    os.environ["GIT_AUTHOR_DATE"] = os.environ["GIT_COMMITTER_DATE"] = stamp


def tuned(horizon: str, version: int, context: int) -> str:
    cfg = default_config(horizon, MODEL)
    return render_config(cfg.with_knobs(context_length=context, version=version))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`chronops ARGS` in-process through the real entry point: (exit code, stdout, stderr)."""
    from bot.cli import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def repo_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """configs on 2026-01-01; 7d tuned by PR #1 merged 2026-01-05; rolled back by PR #2 on 2026-01-10;
    30d tuned by PR #3 merged 2026-01-12 (a person); plus demo-like history and metrics.
    Built once per module (git is slow): tests only read it."""
    root = tmp_path_factory.mktemp("dashboard")
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    with mock.patch.dict(os.environ, {"HOME": str(home), **GIT_ENV}):
        bare, clone = root / "origin.git", root / "repo"
        git(root, "init", "--bare", "-b", "main", str(bare))
        git(root, "clone", str(bare), str(clone))
        dated(at("2026-01-01T10:00:00"))
        (clone / "configs").mkdir()
        for h in HORIZONS:
            (clone / "configs" / f"{h}.json").write_text(render_config(default_config(h, MODEL)))
        git(clone, "add", "-A")
        git(clone, "commit", "-m", "chronops init: default configs")
        git(clone, "push", "origin", "main")
        forge = LocalForge(GitRepo.open(clone), clone / "data" / "forge" / "pulls.json")

        def propose(h: str, text: str) -> int:
            p = Proposal(
                horizon=h, title=f"chronops: tune {h} (RMSE -9.0%)", body=f"report {h}", labels=("chronops",),
                files={f"configs/{h}.json": text}, commit_message=f"chronops: tune {h}", approved=True,
            )  # fmt: skip
            return forge.propose(p).pull.number

        dated(at("2026-01-05T06:00:00"))
        forge.merge(propose("7d", tuned("7d", 2, 270)))
        dated(at("2026-01-10T06:00:00"))
        forge.rollback("7d", to=None, reason="RMSE spiked", merge=True)
        dated(at("2026-01-11T06:00:00"))
        number = propose("30d", tuned("30d", 2, 540))
        dated(at("2026-01-12T15:00:00"))
        forge.merge(number, merged_by="person")
    ws = Workspace(clone, Settings())
    monitoring_data(ws)
    yield ws


def test_parse_change_subject() -> None:
    assert parse_change_subject("Merge pull request #4 from chronops/7d") == (4, "tune", None)
    assert parse_change_subject("Merge pull request #5 from acme/chronops/revert-7d-4") == (5, "revert", None)
    assert parse_change_subject("chronops: tune 7d (RMSE -9.0%) (#6)") == (6, "tune", None)
    assert parse_change_subject("Revert chronops 7d (#6, abcdef1234)") == (None, "revert", 6)
    assert parse_change_subject("Revert chronops 7d (#6, abcdef1234) (#7)") == (7, "revert", 6)
    assert parse_change_subject("hand edit") == (None, "manual", None)


def test_status_at_across_merge_and_rollback(repo_ws: Workspace) -> None:
    def live(day: str, h: str = "7d") -> tuple[int | None, int | None, str]:
        c = {c.horizon: c for c in configs_at(repo_ws, end_of_day(date.fromisoformat(day)))}[h]
        assert c.error is None, c.error
        return c.version, c.pull_request, c.kind

    assert live("2026-01-03") == (1, None, "manual")
    assert live("2026-01-05") == (2, 1, "tune")
    assert live("2026-01-09") == (2, 1, "tune")
    assert live("2026-01-10") == (1, 2, "revert")  # the revert PR put v1 back
    assert live("2026-02-01") == (1, 2, "revert")
    assert live("2026-01-11", "30d") == (1, None, "manual")  # proposed, not merged yet
    assert live("2026-01-12", "30d") == (2, 3, "tune")
    assert live("2026-01-12", "15d") == (1, None, "manual")
    before = configs_at(repo_ws, end_of_day(date(2025, 12, 31)))
    assert all(c.commit is None and c.error for c in before)
    first = configs_at(repo_ws, end_of_day(date(2026, 1, 5)))[0]
    assert first.committed_at == at("2026-01-05T06:00:00") and first.subject.startswith(
        "Merge pull request #1"
    )


def test_status_cli_json_and_at(repo_ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = cli(
        capsys, "status", "--workspace", str(repo_ws.root), "--at", "2026-01-10", "--json"
    )
    assert code == 0, stderr
    row = {r["horizon"]: r for r in json.loads(stdout)["horizons"]}["7d"]
    assert (
        row["version"] == 1
        and row["pull_request"] == 2
        and row["kind"] == "revert"
        and row["reverts"] is None
    )
    code, stdout, _ = cli(capsys, "status", "--workspace", str(repo_ws.root), "--at", "2026-01-06")
    assert code == 0 and "#1 (tune)" in stdout, stdout
    code, stdout, stderr = cli(capsys, "status", "--workspace", str(repo_ws.root), "--json")
    doc = json.loads(stdout)
    assert code == 0 and len(doc["horizons"]) == 4 and len(doc["kpis"]) == 11 and doc["schema_version"] == 1, stderr
    code, stdout, _ = cli(capsys, "status", "--workspace", str(repo_ws.root))
    assert code == 0 and "next scheduled run" in stdout and "Automation rate" in stdout
    code, _, stderr = cli(capsys, "status", "--workspace", str(repo_ws.root), "--at", "yesterday")
    assert code == 1 and "not a date" in stderr


def test_dashboard_cli(repo_ws: Workspace, tmp_path: Path) -> None:
    result = run_cli(
        "dashboard", "--workspace", str(repo_ws.root), "--out", str(tmp_path / "site"), timeout=120
    )
    assert result.code == 0, result.stderr
    assert "dashboard written to" in result.stdout and (tmp_path / "site" / "index.html").exists()


# --- demo-like monitoring data ------------------------------------------------------------------

# per horizon, per weekly run: "" skipped, else trigger:outcome (outcome merged | proposed | rejected |
# no_change | failed | override)
PLAN = {
    "7d": ["", "drift:merged", "", "performance:rejected", "", "performance:merged", "time:no_change", "", "drift:merged", ""],
    "15d": ["", "", "time:rejected", "", "drift:merged", "", "", "time:no_change", "", "performance:proposed"],
    "30d": ["performance:merged", "", "", "time:rejected", "", "", "drift:failed", "", "time:merged", ""],
    "90d": ["", "time:no_change", "", "", "drift:rejected", "", "", "forced:override", "", "time:rejected"],
}  # fmt: skip
START = at("2025-11-02T05:00:00")


def monitoring_data(ws: Workspace) -> None:
    metrics: list[MetricsRecord] = []
    history: list[HistoryRecord] = []
    pr = 10
    for week in range(10):
        when = START + timedelta(weeks=week)
        for i, h in enumerate(HORIZONS):
            spec = PLAN[h][week]
            run_id = f"{when:%Y%m%dT%H%M%SZ}-w{week}"
            if not spec:
                metrics.append(MetricsRecord(run_id, h, when, status="skipped", triggered_by="none"))
                continue
            trigger, outcome = spec.split(":")
            forced = trigger == "forced"
            if outcome == "failed":
                metrics.append(MetricsRecord(run_id, h, when, status="failed", triggered=True, triggered_by=trigger,
                                             deployment_result="failed", error="model load failed"))  # fmt: skip
                continue
            before = 9.0 + i * 2 + week * 0.1
            gain = {"merged": 0.09, "proposed": 0.06, "override": 0.01}.get(outcome, 0.02)
            verdict = {"merged": "approved", "override": "approved_override"}.get(outcome, "rejected")
            status = {"override": "merged"}.get(outcome, outcome)
            pr += status in ("merged", "proposed")
            merged = status == "merged"
            criteria = [
                {"name": "rmse_or_mape", "label": "RMSE or MAPE improvement", "value": gain * 100,
                 "threshold": 5.0, "comparator": ">=", "passed": gain >= 0.05},
                {"name": "ci95_coverage", "label": "CI95 coverage", "value": 93.0, "threshold": 90.0,
                 "comparator": ">=", "passed": True},
            ]  # fmt: skip
            metrics.append(MetricsRecord(
                run_id, h, when, status=status, triggered=True, triggered_by=trigger,
                trigger_reasons=json.dumps([f"{trigger} fired for {h} <b>bold?</b>"]), forced=forced,
                drift_detected=trigger == "drift", drift_severity="MEDIUM" if trigger == "drift" else "NONE",
                search_seconds=40.0 + i * 30, configs_evaluated=27, validation_result=verdict,
                validation_criteria=json.dumps(criteria), override_reason="demo override" if forced else None,
                deployment_result=status if status in ("merged", "proposed") else "not_proposed",
                pull_request=str(pr) if status in ("merged", "proposed") else None,
                merged_by="bot" if merged else None, merged_at=when + timedelta(minutes=20) if merged else None,
                rmse_before=before, rmse_after=before * (1 - gain), rmse_improvement_pct=gain * 100,
            ))  # fmt: skip
            if merged:
                metrics.append(MetricsRecord(f"deploy-{run_id}", h, when + timedelta(minutes=30), event="deploy",
                                             status="deployed", downtime=False))  # fmt: skip
    rb = at("2026-01-07T12:00:00")
    metrics.append(MetricsRecord("rb-1", "7d", rb, event="rollback", status="rolled_back", pull_request="99",
                                 merged_by="person", merged_at=rb, rollback_of="17"))  # fmt: skip
    history.append(HistoryRecord("rb-1", "7d", rb, "rollback", None, "NONE", None, True, "rolled_back",
                                 pull_request="99", notes="reverts #17: RMSE spiked"))  # fmt: skip
    append_metrics(ws.metrics_path, metrics)
    for record in history:
        record_optimization(ws.history_path, record)


NOW = at("2026-01-12T18:00:00")


def test_status_document(repo_ws: Workspace) -> None:
    doc = status_document(repo_ws, NOW)
    rows = {r["horizon"]: r for r in doc["horizons"]}
    assert rows["7d"]["live_version"] == 1 and rows["7d"]["live_via"] == "#2 (revert)"
    assert rows["30d"]["live_via"] == "#3 (tune)" and rows["30d"]["live_since"] == "2026-01-12T15:00:00+00:00"
    assert rows["15d"]["last_status"] == "proposed" and rows["90d"]["last_status"] == "rejected"
    assert doc["next_scheduled_run"] is not None and len(doc["kpis"]) == 11  # the seed's 7 technical + 4 operational KPIs
    assert {k["key"] for k in doc["kpis"]} >= {"automation_rate", "time_to_remediation"}


def test_dashboard_html_has_every_section_and_chart(repo_ws: Workspace) -> None:
    html = render_dashboard(dashboard_context(repo_ws, NOW))
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html, title
    for chart in CHART_IDS:
        assert re.search(rf'<svg id="{chart}" class="chart"', html), chart
    assert "<polyline" in html and html.count("<rect") > 20
    # self-contained: no scripts, nothing fetched from anywhere
    assert "<script" not in html.replace("&lt;script", "")
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html and "url(" not in html
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html and "<b>bold?</b>" not in html  # reasons are escaped
    assert "No runs yet" not in html and "#99" in html


def test_empty_workspace_renders_no_runs_yet(tmp_path: Path) -> None:
    path = write_dashboard(Workspace(tmp_path, Settings()), tmp_path / "site", NOW)
    html = path.read_text()
    assert "No runs yet" in html and "chronops run --all" in html
    assert (tmp_path / "site" / ".nojekyll").exists()


def test_charts_escape_labels_and_handle_no_data() -> None:
    svg = bar_chart("c1", "t <x>", ["<script>"], [Bars("a&b", "#000", (1.0,))])
    assert "&lt;script&gt;" in svg and "<script>" not in svg and "a&amp;b" in svg
    assert "no data yet" in bar_chart("c2", "t", [], [])
    assert "nothing" in line_chart("c3", "t", [], empty="nothing")
    one = line_chart("c4", "t", [(date(2026, 1, 1), 50.0)], y_range=(0, 100), target=(60, "target"))
    assert "<circle" in one and "stroke-dasharray" in one


# --- in a real browser --------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def browse(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_dashboard_in_headless_chromium(repo_ws: Workspace, tmp_path: Path) -> None:
    binary = chromium()
    page = write_dashboard(repo_ws, tmp_path / "site", NOW)
    url = page.resolve().as_uri()
    dom = browse(binary, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in dom.stdout, title
    for chart in CHART_IDS:
        assert re.search(rf'<svg id="{chart}"', dom.stdout), chart
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    result = browse(
        binary,
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=1280,3600",
        f"--screenshot={shot}",
        url,
    )
    assert result.returncode == 0 and shot.exists() and shot.stat().st_size > 20_000, result.stderr[-2000:]
    empty = write_dashboard(Workspace(tmp_path / "empty", Settings()), tmp_path / "empty-site", NOW)
    dom = browse(binary, tmp_path / "profile", "--dump-dom", empty.resolve().as_uri())
    assert dom.returncode == 0 and "No runs yet" in dom.stdout
