"""`chronops rollback`: revert the last merged bot PR for a horizon (a new commit, no history rewrite)."""

from __future__ import annotations

from pathlib import Path

from bot.adapters.forges.base import Forge
from bot.adapters.forges.factory import make_forge
from bot.adapters.forges.local import LocalForge
from bot.adapters.history import HistoryRecord, record_optimization
from bot.adapters.lock import workspace_lock
from bot.commands.run import Say, _command_line, _reconcile
from bot.errors import ChronopsError
from bot.faults import crash_point
from bot.flow import recovery
from bot.flow.outcome import new_run_id, utcnow
from bot.secrets import redact
from bot.workspace import Workspace, resolve_horizons


def rollback_command(
    root: Path, *, horizon: str, to: str | None, reason: str, merge: bool, forge_kind: str | None, say: Say
) -> None:
    ws = Workspace.open(root)
    resolve_horizons(horizon, False)
    reason = redact(reason)  # recorded and published, like run's --reason
    forge = make_forge(ws, forge_kind)
    with workspace_lock(ws.path("data"), timeout=ws.settings.data.lock_timeout_seconds):
        started = utcnow()
        run_id = new_run_id(started)
        recovery.recover(ws, started, run_id, say)
        if isinstance(forge, LocalForge):
            _reconcile(forge)
        marker = recovery.begin(ws, run_id, horizon, _command_line(), started)
        try:
            _rollback_locked(ws, forge, run_id, horizon=horizon, to=to, reason=reason, merge=merge, say=say)
        except ChronopsError:
            recovery.end(marker)  # a known failure changed nothing: not an incomplete run
            raise
        recovery.end(marker)


def _rollback_locked(
    ws: Workspace, forge: Forge, run_id: str, *, horizon: str, to: str | None, reason: str, merge: bool, say: Say
) -> None:
    pull = forge.rollback(horizon, to=to, reason=reason, merge=merge)
    crash_point("rollback:done")
    now = utcnow()
    record_optimization(
        ws.history_path,
        HistoryRecord(
            run_id=run_id, horizon=horizon, optimization_date=now, triggered_by="rollback",
            performance_degradation_pct=None, drift_severity="NONE", days_since_last=None, success=True,
            status="rolled_back" if pull.state == "merged" else "rollback_proposed",
            pull_request=str(pull.number), override_reason=None, notes=f"reverts #{pull.reverts}: {reason}",
        ),
    )  # fmt: skip
    if pull.state == "merged":
        from bot.flow.alerts import notify
        from bot.flow.records import record_merge

        record_merge(ws, pull, now)
        notify(
            ws,
            "rollback_executed",
            {
                "horizon": horizon, "reason": reason, "automatic": False, "from_version": f"#{pull.reverts}",
                "to_version": "previous config", "commit": pull.merge_sha or "", "executed_at": now,
            },
        )  # fmt: skip
    state = (
        "merged" if pull.state == "merged"
        else "opened, auto-merge on (GitHub merges it when the required checks pass)" if pull.auto_merge
        else "opened (merge it to roll back)"
    )  # fmt: skip
    say(f"{horizon}: revert pull request #{pull.number} {state}: {pull.title}")
