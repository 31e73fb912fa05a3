"""`chronops deploy`: install merged configs into the live folder, wait for the forecasters to report them healthy, and restore and auto-revert when they do not."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import chronops_version
from bot.adapters.history import HistoryRecord, record_optimization
from bot.adapters.store import file_lock
from bot.errors import ChronopsError, ConfigError, DeployFailedError
from bot.faults import crash_point
from bot.flow.deploy import (
    KNOB_LABELS,
    Change,
    HealthReport,
    Say,
    backup_dir,
    backup_live_set,
    clear_journal,
    fetch_health,
    install_files,
    plan_changes,
    read_journal,
    restore,
    revision_mismatches,
    validate_configs,
    wait_for_health,
    write_journal,
)
from bot.workspace import Workspace


def deploy_command(
    root: Path,
    *,
    auto_revert: bool,
    forge_kind: str | None,
    health_check: bool,
    say: Say,
    now: datetime | None = None,
) -> int:
    """`chronops deploy`. Returns 0; raises ConfigError (exit 1) or DeployFailedError (exit 5)."""
    ws = Workspace.open(root)
    live = ws.live_dir
    now = now or datetime.now(UTC)
    run_id = f"deploy-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    with file_lock(live.with_name(live.name + ".deploy")):  # one deploy at a time on this host
        candidates, problems = validate_configs(ws)
        if problems:
            for h, problem in problems.items():
                _record(ws, run_id, now, h, "deploy_refused", None, None, None, problem, downtime=False)
            first = next(iter(problems.values()))
            more = f" (and {len(problems) - 1} more config(s) with problems)" if len(problems) > 1 else ""
            raise ConfigError(f"deploy refused, nothing installed: {first}{more}")
        if not candidates:
            raise ChronopsError(f"{ws.configs_dir}: no horizon configs to deploy (run `chronops init`)")
        if health_check:
            _refuse_other_revisions(ws)
        pending = read_journal(live)
        changes = plan_changes(candidates, live, pending)
        if pending is not None:
            say(f"a previous deploy was interrupted after installing; checking {', '.join(pending)} again")
        if not changes:
            clear_journal(live)
            say(f"nothing to deploy: {live} already matches {ws.configs_dir}")
            return 0
        for c in changes:
            say(
                f"{c.horizon}: {c.old_hash or 'no live config'} → {c.new.config_hash} (v{c.new.config.version})"
            )
        # After an interrupted deploy the backup already holds the set from before it: keep it.
        saved = backup_live_set(live) if pending is None else backup_dir(live)
        write_journal(live, run_id, changes)
        install_files(live, {f"{c.horizon}.json": c.new.text for c in changes})
        crash_point("deploy:installed")
        say(f"installed {len(changes)} config(s) into {live} (previous set saved in {saved})")
        if not health_check:
            clear_journal(live)
            _record_all(ws, run_id, now, changes, "deployed", "health check skipped (--no-health-check)")
            say("health check skipped (--no-health-check)")
            return 0
        settings = ws.settings.deploy
        say(f"waiting up to {settings.health_timeout_seconds:g}s for {', '.join(settings.health_urls)}")
        report = wait_for_health(
            settings.health_urls,
            {c.horizon: c.new.config_hash for c in changes},
            timeout=settings.health_timeout_seconds,
            poll=settings.health_poll_seconds,
        )
        if report.ok:
            clear_journal(live)
            _record_all(ws, run_id, now, changes, "deployed", report.detail, downtime=report.unreachable)
            _alert_success(ws, changes, report, now)
            say(f"deployed: {report.detail}")
            return 0
        restore(live, changes)
        clear_journal(live)
        say(f"health check failed: {report.detail}")
        say(f"restored the previous configs in {live}")
        reverts = _auto_revert(ws, changes, report, forge_kind, say) if auto_revert else {}
    _record_failure(ws, run_id, now, changes, report, reverts)
    _alert_failure(ws, changes, report, reverts, now)
    summary = "; ".join(f"{h}: {v}" for h, v in reverts.items())
    raise DeployFailedError(
        f"deploy failed, previous configs restored in {live}: {_short(report.detail, 300)}"
        + (f" [auto-revert: {summary}]" if reverts else " (revert the merge, or run `chronops rollback`)")
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _refuse_other_revisions(ws: Workspace) -> None:
    """Validator and forecaster must run the same code: refuse before installing anything when a
    reachable forecaster reports another chronops revision (an unreachable one is the health check's
    business)."""
    urls = ws.settings.deploy.health_urls
    mismatches = revision_mismatches({url: fetch_health(url, 5.0) for url in urls}, chronops_version())
    if mismatches:
        raise ConfigError(
            f"deploy refused, nothing installed: {mismatches[0]}; rebuild and restart the forecaster "
            "first (docker compose -f docker-compose.prod.yml build forecaster && ... up -d forecaster)"
        )


def _auto_revert(
    ws: Workspace, changes: Sequence[Change], report: HealthReport, forge_kind: str | None, say: Say
) -> dict[str, str]:
    """Open and merge a revert pull request per changed horizon. {horizon: outcome}; never raises."""
    from bot.adapters.forges.factory import make_forge

    try:
        forge = make_forge(ws, forge_kind)
    except ChronopsError as exc:
        say(f"auto-revert impossible: {exc}")
        return {c.horizon: f"not reverted ({exc})" for c in changes}
    outcomes = {}
    reason = f"deploy failed: {_short(report.detail, 400)}"
    for c in changes:
        try:
            pull = forge.rollback(c.horizon, to=None, reason=reason, merge=True)
        except ChronopsError as exc:
            text = str(exc)
            # GitHubForge merged, but could not dispatch deploy.yml: the live dir is already restored
            outcomes[c.horizon] = (
                f"revert {text}" if text.startswith("merged #") else f"not reverted ({text})"
            )
        else:
            state = (
                "merged" if pull.state == "merged" else "opened, auto-merge on" if pull.auto_merge else "opened"
            )
            outcomes[c.horizon] = f"revert #{pull.number} {state}"
        say(f"{c.horizon}: {outcomes[c.horizon]}")
    return outcomes


def _record(
    ws: Workspace,
    run_id: str,
    now: datetime,
    horizon: str,
    status: str,
    old_hash: str | None,
    new_hash: str | None,
    pull_request: str | None,
    notes: str,
    *,
    downtime: bool,
    metrics_status: str | None = None,
) -> None:
    record_optimization(
        ws.history_path,
        HistoryRecord(
            run_id=run_id, horizon=horizon, optimization_date=now, triggered_by="deploy",
            performance_degradation_pct=None, drift_severity="NONE", days_since_last=None,
            # `success` marks a completed optimization (the time trigger counts from it); a deploy
            # is not one, whatever its outcome: the status says how it went.
            success=False, status=status, old_config_hash=old_hash, new_config_hash=new_hash,
            pull_request=pull_request, notes=_short(notes, 500),
        ),
    )  # fmt: skip
    try:
        from bot.flow.records import record_deployment
    except ImportError:  # pragma: no cover - the metrics store is optional
        return
    record_deployment(
        ws, horizon=horizon, status=metrics_status or status.removeprefix("deploy_"), downtime=downtime,
        now=now, config_hash=new_hash, pull_request=pull_request,
        error=None if status == "deployed" else _short(notes, 500), run_id=run_id,
    )  # fmt: skip


def _record_all(
    ws: Workspace, run_id: str, now: datetime, changes: Sequence[Change], status: str, notes: str,
    *, downtime: bool = False,
) -> None:  # fmt: skip
    for c in changes:
        _record(
            ws, run_id, now, c.horizon, status, c.old_hash, c.new.config_hash,
            c.new.config.provenance.pull_request, notes, downtime=downtime,
        )  # fmt: skip


def _record_failure(
    ws: Workspace,
    run_id: str,
    now: datetime,
    changes: Sequence[Change],
    report: HealthReport,
    reverts: Mapping[str, str],
) -> None:
    for c in changes:
        outcome = reverts.get(c.horizon, "")
        notes = report.detail + (f"; {outcome}" if outcome else "")
        _record(
            ws, run_id, now, c.horizon, "deploy_failed", c.old_hash, c.new.config_hash,
            c.new.config.provenance.pull_request, notes, downtime=report.unreachable,
            metrics_status="rolled_back" if "merged" in outcome else "failed",
        )  # fmt: skip


def _commit(ws: Workspace) -> str:
    try:
        from bot.adapters.git import GitRepo

        return GitRepo.open(ws.root).git("rev-parse", "--short=12", "HEAD")
    except Exception:  # the commit is informational; a workspace need not be a clone
        return "unknown"


def _changes_for_email(change: Change) -> list[dict[str, Any]]:
    old = change.old_config
    new = change.new.config
    rows = []
    for key, label in KNOB_LABELS:
        before = getattr(old, key) if old is not None else None
        after = getattr(new, key)
        if before != after:
            rows.append({"label": label, "old": "—" if before is None else before, "new": after})
    return rows


def _notify(ws: Workspace, event: str, context: Mapping[str, Any]) -> None:
    try:
        from bot.flow.alerts import ALERT_EVENTS, notify
    except ImportError:  # pragma: no cover - alerts are optional
        return
    if event in ALERT_EVENTS:
        notify(ws, event, context)


def _alert_success(ws: Workspace, changes: Sequence[Change], report: HealthReport, now: datetime) -> None:
    commit = _commit(ws)
    for c in changes:
        _notify(ws, "deployment_successful", {
            "horizon": c.horizon, "version": c.new.config.version, "config_hash": c.new.config_hash,
            "commit": commit, "deployed_at": now, "changes": _changes_for_email(c), "health": report.detail,
        })  # fmt: skip


def _alert_failure(
    ws: Workspace, changes: Sequence[Change], report: HealthReport, reverts: Mapping[str, str], now: datetime
) -> None:
    commit = _commit(ws)
    for c in changes:
        outcome = reverts.get(c.horizon)
        _notify(ws, "rollback_executed", {
            "horizon": c.horizon, "automatic": True,
            "reason": f"deploy failed: {_short(report.detail, 400)}" + (f" ({outcome})" if outcome else ""),
            "from_version": c.new.config.version,
            "to_version": c.old_config.version if c.old_config else "none",
            "commit": commit, "executed_at": now,
        })  # fmt: skip


def deploy_main(
    root: Path, *, auto_revert: bool, forge_kind: str | None, health_check: bool, as_json: bool, say: Say
) -> None:
    """`chronops deploy [--json]`: the lines it says, or one JSON document with them (also on failure)."""
    from bot.commands.output import emit
    from bot.secrets import redact

    lines: list[str] = []

    def tell(line: str) -> None:
        lines.append(line)
        if not as_json:
            say(line)

    try:
        deploy_command(root, auto_revert=auto_revert, forge_kind=forge_kind, health_check=health_check, say=tell)
    except ChronopsError as exc:
        if as_json:
            emit("deploy", {"ok": False, "exit_code": exc.exit_code, "error": redact(str(exc)),
                            "finished_at": datetime.now(UTC), "messages": lines})  # fmt: skip
        raise
    if as_json:
        emit("deploy", {"ok": True, "exit_code": 0, "error": None, "finished_at": datetime.now(UTC),
                        "messages": lines})  # fmt: skip
