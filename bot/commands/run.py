"""Command functions behind the CLI: each takes plain arguments and returns an exit code or data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.adapters.configs import read_config
from bot.adapters.forges.base import Forge
from bot.adapters.forges.factory import make_forge
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.adapters.history import HistoryRecord, read_history, record_optimization
from bot.adapters.lock import workspace_lock
from bot.adapters.sources import load_series
from bot.errors import ChronopsError, ForgeError, UsageError
from bot.flow import recovery
from bot.flow.outcome import HorizonOutcome, ProgressFactory, RunOptions, new_run_id, utcnow
from bot.flow.pipeline import run_horizon
from bot.secrets import redact
from bot.settings import DRY_RUN_LEVELS
from bot.workspace import Workspace, resolve_horizons

Say = Callable[[str], None]


def run_command(
    root: Path,
    *,
    horizon: str | None,
    all_: bool,
    force: bool,
    dry_run: str | None,
    automerge: bool | None,
    force_approve: bool,
    reason: str | None,
    forge_kind: str | None,
    progress: ProgressFactory | None,
    say: Say,
    stage: str | None = None,
    out_dir: Path | None = None,
    from_dir: Path | None = None,
    collect: Callable[[dict[str, Any]], None] | None = None,
    watch_reason: str | None = None,
) -> int:
    """Run the loop for the horizons; `collect` receives each horizon's summary (`outcome_summary`)."""
    ws = Workspace.open(root, require=True)
    horizons = resolve_horizons(horizon, all_)
    if stage not in (None, "search", "propose"):
        raise UsageError(f"unknown --stage '{stage}' (use search or propose)")
    if stage == "search" and out_dir is None:
        raise ChronopsError("--stage search needs --out DIR (where the results go)")
    if stage == "propose" and (from_dir is None or not from_dir.is_dir()):
        raise ChronopsError(f"--stage propose needs --from DIR with search results (got {from_dir})")
    if dry_run is not None and dry_run not in DRY_RUN_LEVELS:
        raise UsageError(f"unknown --dry-run level '{dry_run}' (use plan, local or full)")
    if force_approve and not (reason and reason.strip()):
        raise ChronopsError("--force-approve needs --reason TEXT (it is recorded in the history and PR body)")
    if reason and not force_approve:
        raise ChronopsError("--reason is only used with --force-approve")
    options = RunOptions(
        force=force or force_approve,
        dry_run=dry_run,
        automerge=automerge,
        # typed by a person, then recorded, published and emailed: never with a secret in it
        force_approve_reason=redact(reason) if force_approve and reason else None,
    )
    options.stage = stage
    options.watch_reason = redact(watch_reason.strip())[:1000] if watch_reason and watch_reason.strip() else None
    forge = None if dry_run == "plan" or stage == "search" else make_forge(ws, forge_kind)
    if dry_run == "local" and forge is not None:
        forge = _scratch_forge(ws)
    with workspace_lock(ws.path("data"), timeout=ws.settings.data.lock_timeout_seconds):
        return _run_locked(
            ws, horizons, options, forge, stage, out_dir, from_dir, dry_run, progress, say, collect or (lambda _: None)
        )


def run_main(root: Path, *, as_json: bool, say: Say, **kwargs: Any) -> int:
    """`chronops run [--json]`: the human lines, or one JSON document with every horizon's summary
    (also written when some horizons failed, before the error line)."""
    from bot.commands.output import emit

    collected: list[dict[str, Any]] = []
    try:
        code = run_command(root, say=(lambda _: None) if as_json else say, collect=collected.append, **kwargs)
    except ChronopsError:
        if as_json and collected:
            emit("run", {"ok": False, "dry_run": kwargs.get("dry_run"), "horizons": collected})
        raise
    if as_json:
        emit("run", {"ok": code == 0, "dry_run": kwargs.get("dry_run"), "horizons": collected})
    return code


def _run_locked(
    ws: Workspace,
    horizons: list[str],
    options: RunOptions,
    forge: Forge | None,
    stage: str | None,
    out_dir: Path | None,
    from_dir: Path | None,
    dry_run: str | None,
    progress: ProgressFactory | None,
    say: Say,
    collect: Callable[[dict[str, Any]], None],
) -> int:
    now = utcnow()
    run_id = new_run_id(now)
    _preflight(ws, horizons, options, forge)
    say(f"run {run_id}: {', '.join(horizons)}" + (f" (dry run: {dry_run})" if dry_run else ""))
    recovery.recover(ws, now, run_id, say)
    if isinstance(forge, LocalForge) and dry_run is None:
        _reconcile(forge)
    if stage == "propose":
        assert from_dir is not None
        from bot.flow.stages import propose_from

        for outcome in propose_from(
            ws, from_dir, horizons, forge=forge, options=options, run_id=run_id, now=now
        ):
            say(describe(outcome))
            collect(outcome_summary(outcome, run_id))
        return 0
    failures = 0
    for h in horizons:
        marker = recovery.begin(ws, run_id, h, _command_line(), now)
        try:
            outcome = run_horizon(
                ws, h, run_id=run_id, now=now, options=options, forge=forge, progress=progress
            )
        except ChronopsError as exc:
            failures += 1
            message = redact(str(exc))  # it is printed and recorded: an outside message may carry a secret
            say(f"{h}: failed: {message}")
            _record_failure(ws, h, run_id, now, message)
            from bot.flow.records import record_failed_run

            record_failed_run(ws, h, run_id, now, message)
            recovery.end(marker)
            collect({"horizon": h, "run_id": run_id, "status": "failed", "error": message})
            continue
        recovery.end(marker)
        say(describe(outcome))
        collect(outcome_summary(outcome, run_id))
        if stage == "search":
            from bot.flow.stages import export_search

            assert out_dir is not None
            say(f"  search results: {export_search(outcome, out_dir)}")
    if failures:
        raise ChronopsError(f"{failures} of {len(horizons)} horizon(s) failed (see above; recorded in the history)")
    return 0


def _preflight(ws: Workspace, horizons: list[str], options: RunOptions, forge: Forge | None) -> None:
    """Read every input a run depends on before writing anything: a damaged file fails the whole run
    with one line naming it, and leaves the workspace as it was."""
    from bot.adapters.forecast_log import read_forecast_log
    from bot.adapters.store import check_table
    from bot.flow.engine import CACHE_COLUMNS
    from bot.flow.records import read_metrics

    for h in horizons:
        read_config(ws.config_path(h))
    if options.stage != "propose":
        load_series(ws, options.as_of)
    read_history(ws.history_path)
    read_metrics(ws.metrics_path)
    read_forecast_log(ws.forecasts_path)
    check_table(ws.cache_path, CACHE_COLUMNS)
    if isinstance(forge, LocalForge):
        forge.pulls()


def _reconcile(forge: LocalForge) -> None:
    """Housekeeping after a killed merge; an unreachable remote fails later, where it is recorded."""
    try:
        forge.reconcile()
    except ForgeError as exc:
        logging.getLogger(__name__).warning("could not reconcile pull-request records: %s", redact(str(exc)))


def _command_line() -> str:
    import shlex
    import sys

    return redact("chronops " + shlex.join(sys.argv[1:]))


def _scratch_forge(ws: Workspace) -> Forge:
    """dry-run local: a throwaway clone whose 'origin' is a throwaway bare copy; nothing leaves it."""
    import tempfile

    from git import Repo

    tmp = Path(tempfile.mkdtemp(prefix="chronops-dryrun-"))
    Repo.clone_from(str(ws.root), tmp / "origin.git", bare=True)
    Repo.clone_from(str(tmp / "origin.git"), tmp / "clone")
    return LocalForge(GitRepo.open(tmp / "clone"), tmp / "pulls.json", base=ws.settings.forge.base_branch)


def outcome_summary(o: HorizonOutcome, run_id: str) -> dict[str, Any]:
    """One horizon's result for `run --json`."""
    p = o.proposal if o.status != "dry_run" else None
    v = o.verdict
    return {
        "horizon": o.horizon, "run_id": run_id, "status": o.status, "message": o.message or None,
        "decision": v.decision if v else None, "headline": v.headline if v else None,
        "rmse_improvement_pct": v.rmse_improvement_pct if v else None,
        "trigger_reasons": list(o.decision.reasons) if o.decision else [],
        "pull_request": {"number": p.pull.number, "action": p.action, "merged": p.merged, "title": p.pull.title,
                         "url": p.pull.url or None} if p else None,
        "report": str(o.run_dir / "report.json") if o.run_dir else None,
        "search_seconds": o.search_seconds,
    }  # fmt: skip


def describe(o: HorizonOutcome) -> str:
    if o.status == "skipped":
        reasons = "; ".join(o.decision.reasons) if o.decision and o.decision.reasons else o.message
        return f"{o.horizon}: skipped ({reasons})"
    lines = [f"{o.horizon}: {o.verdict.headline if o.verdict else o.status}"]
    report = o.report or {}
    if report.get("origins_text"):
        lines.append(f"  origins: {report['origins_text']}")
    if o.verdict and o.verdict.detectable_rmse_gain_pct is not None:
        lines.append(
            f"  resolution: these validation origins confirm a true RMSE gain of about "
            f"{o.verdict.detectable_rmse_gain_pct:.1f}% or more 4 times in 5 (noise test on "
            f"{report.get('noise_loss_text') or o.verdict.noise_loss or 'squared error'})"
        )
    if o.ranking:
        lines.append(
            f"  {'rank':>4}  {'config':<26} {'tuning RMSE':>12} {'MAPE %':>8} {'CRPS':>10} {'cov95 %':>8}"
        )
        for i, (cfg, s) in enumerate(o.ranking[:10]):
            label = f"ctx={cfg.effective_context_length}" + (
                f" ns={cfg.num_samples} T={cfg.temperature}" if cfg.num_samples else ""
            )
            lines.append(
                f"  {i + 1:>4}  {label:<26} {s.rmse:>12.3f} {s.mape:>8.3f} {s.crps:>10.3f} {s.coverage95:>8.1f}"
            )
        if len(o.ranking) > 10:
            lines.append(f"  ... {len(o.ranking) - 10} more in the JSON report")
    if o.proposal and o.status != "dry_run":  # a local dry run's PR lives in a discarded clone
        p = o.proposal
        lines.append(
            f"  pull request #{p.pull.number} {p.action}{' and merged' if p.merged else ''}"
            f"{' (auto-merge on: GitHub merges it when the required checks pass)' if p.pull.auto_merge else ''}"
            f": {p.pull.title}"
        )
    elif o.message:
        lines.append(f"  {o.message}")
    if o.run_dir:
        lines.append(f"  report: {o.run_dir / 'pr_body.md'}")
    return "\n".join(lines)


def _record_failure(ws: Workspace, horizon: str, run_id: str, now: Any, message: str) -> None:
    record_optimization(
        ws.history_path,
        HistoryRecord(
            run_id=run_id, horizon=horizon, optimization_date=now, triggered_by="unknown",
            performance_degradation_pct=None, drift_severity="NONE", days_since_last=None, success=False,
            status="failed", notes=message[:500],
        ),
    )  # fmt: skip


