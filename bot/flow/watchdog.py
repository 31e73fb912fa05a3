"""Missed-run watchdog: alert when no optimization run has succeeded for too long.

GitHub disables scheduled workflows in public repositories after 60 days without activity, and a
self-hosted cron can die quietly; either way the configs silently stop being tuned. `chronops
watchdog` (run daily, from a different scheduler than the optimization itself) reads the history
and metrics: when the last successful run of any horizon (any status but `failed`, skipped runs
included, rollbacks excluded) is older than `[watchdog].max_days_without_run` days, or there has
never been one, it emails `run_missed`, and on GitHub opens or updates ONE issue titled
"chronops: scheduled optimization has not run for N days" (the local forge only records the
alert). When runs are back, the issue is closed. Exit codes: 0 healthy, 6 missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from bot.adapters.forges.base import Forge, IssueSpec
from bot.adapters.forges.factory import make_forge
from bot.adapters.history import read_history
from bot.core.kpis import run_table
from bot.core.schedule import last_scheduled_run
from bot.flow.alerts import notify, record_local_alert
from bot.flow.records import read_metrics

if TYPE_CHECKING:

    from bot.workspace import Workspace

log = logging.getLogger(__name__)

EXIT_RUN_MISSED = 6
TITLE_PREFIX = "chronops: scheduled optimization has not run"
ISSUE_LABEL = "chronops-watchdog"
ISSUE_MARKER = "<!-- chronops:watchdog -->"
WORKFLOW = "optimize.yml"


@dataclass(frozen=True)
class RunHealth:
    healthy: bool
    now: datetime
    last_success: datetime | None
    last_horizon: str | None
    days_since: float | None
    max_days: int
    expected_at: datetime  # the latest scheduled slot (Sunday 02:00 America/Santiago)

    @property
    def title(self) -> str:
        if self.days_since is None:
            return f"{TITLE_PREFIX} yet"
        return f"{TITLE_PREFIX} for {int(self.days_since)} days"

    @property
    def message(self) -> str:
        if self.last_success is None:
            return "no successful optimization run has been recorded yet"
        age = f"{self.days_since:.1f} days ago" if self.days_since is not None else ""
        state = "ok" if self.healthy else f"MISSED (limit {self.max_days} days)"
        return f"{state}: last successful run {self.last_success:%Y-%m-%d %H:%M} UTC ({self.last_horizon}), {age}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy, "last_success": self.last_success, "last_horizon": self.last_horizon,
            "days_since": self.days_since, "max_days": self.max_days, "expected_at": self.expected_at,
            "message": self.message,
        }  # fmt: skip


def check_runs(history: pd.DataFrame, metrics: pd.DataFrame, now: datetime, max_days: int) -> RunHealth:
    """Pure: is the last successful run within `max_days` of `now`?"""
    runs = run_table(history, metrics)
    ok = runs[(runs["status"] != "failed") & (runs["at"] <= pd.Timestamp(now))]
    expected = last_scheduled_run(now)
    if ok.empty:
        return RunHealth(False, now, None, None, None, max_days, expected)
    last = ok.loc[ok["at"].idxmax()]
    when: datetime = pd.Timestamp(last["at"]).to_pydatetime()
    days = (now - when).total_seconds() / 86400.0
    return RunHealth(days <= max_days, now, when, str(last["horizon"]), days, max_days, expected)


def workspace_health(ws: Workspace, now: datetime, max_days: int | None = None) -> RunHealth:
    limit = ws.settings.watchdog.max_days_without_run if max_days is None else max_days
    return check_runs(read_history(ws.history_path), read_metrics(ws.metrics_path), now, limit)


def alert_context(health: RunHealth) -> dict[str, Any]:
    return {
        "horizon": "all",
        "expected_at": health.expected_at,
        "last_run_at": health.last_success,
        "workflow": WORKFLOW,
    }


# --- the GitHub issue ---------------------------------------------------------------------------


def issue_body(health: RunHealth) -> str:
    last = f"{health.last_success:%Y-%m-%d %H:%M} UTC" if health.last_success else "never"
    return (
        f"{ISSUE_MARKER}\n"
        f"No chronops optimization run has succeeded for longer than {health.max_days} days.\n\n"
        f"- Last successful run: {last}" + (f" ({health.last_horizon})" if health.last_horizon else "") + "\n"
        f"- Last scheduled slot: {health.expected_at:%Y-%m-%d %H:%M} UTC (Sunday 02:00 America/Santiago)\n"
        f"- Checked at: {health.now:%Y-%m-%d %H:%M} UTC\n\n"
        "GitHub disables scheduled workflows after 60 days without repository activity: enable "
        f"`{WORKFLOW}` again on the Actions page, or start a run with a workflow dispatch or "
        "`chronops run --all`. This issue is closed automatically once a run succeeds.\n"
    )


def issue_spec(health: RunHealth) -> IssueSpec:
    return IssueSpec(
        title=health.title, body=issue_body(health), label=ISSUE_LABEL, marker=ISSUE_MARKER, title_prefix=TITLE_PREFIX
    )


# --- the command --------------------------------------------------------------------------------


def watchdog_command(
    ws: Workspace,
    *,
    now: datetime,
    max_days: int | None = None,
    forge_kind: str | None = None,
    email: bool = True,
    forge: Callable[[], Forge] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[int, RunHealth]:
    """Check, then alert (email + issue on GitHub / a record locally). Returns (exit code, health).

    `forge` builds the GitHub forge (default: from the environment, as `chronops run` does). Failures to alert are warnings, never errors: the exit
    code says whether runs were missed.
    """
    health = workspace_health(ws, now, max_days)
    say(health.message)
    kind = forge_kind or ws.settings.forge.kind
    if health.healthy:
        if kind == "github":
            comment = f"Runs are back: {health.message}. Closing."
            _on_github(ws, forge, lambda f: _report_closed(f.close_issue(issue_spec(health), comment), say))
        return 0, health
    if email:
        sent = notify(ws, "run_missed", alert_context(health), now=now)
        say("run_missed email sent" if sent else "run_missed email not sent (see the alerts log)")
    if kind == "github":
        _on_github(ws, forge, lambda f: _report_issue(f.ensure_issue(issue_spec(health)), say))
    else:
        record_local_alert(ws, "run_missed", "all", health.title, now)
        say(f"recorded: {health.title}")
    return EXIT_RUN_MISSED, health


def _report_issue(result: tuple[str, int], say: Callable[[str], None]) -> None:
    action, number = result
    say(f"watchdog issue #{number} {action}")


def _report_closed(number: int | None, say: Callable[[str], None]) -> None:
    if number is not None:
        say(f"watchdog issue #{number} closed")


def _on_github(ws: Workspace, forge: Callable[[], Forge] | None, action: Callable[[Forge], None]) -> None:
    try:
        action(forge() if forge is not None else make_forge(ws, "github"))
    except Exception as exc:  # the exit code already tells; a GitHub hiccup must not hide it
        log.warning("watchdog could not update its GitHub issue: %s", " ".join(str(exc).split())[:300])
