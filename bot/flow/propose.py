"""Report and propose: open (and merge when approved) the pull request for a searched horizon; record it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bot.adapters.forges.base import Forge, Proposal, ProposalResult
from bot.adapters.history import HistoryRecord, record_optimization
from bot.adapters.store import atomic_write_text, write_table
from bot.core.backtest import OriginPlan
from bot.core.config import HorizonConfig, config_hash, config_to_dict, is_initial, render_config
from bot.core.metrics import STEP_COLUMNS
from bot.core.triggers import (
    triggered_by,
)
from bot.faults import crash_point
from bot.flow.alerts import notify_outcome
from bot.flow.engine import Evaluation
from bot.flow.outcome import HorizonOutcome, RunOptions
from bot.flow.records import record_run_metrics
from bot.flow.recovery import mark_step
from bot.render.review import pr_title
from bot.workspace import Workspace


def config_diff(old: HorizonConfig | None, new: HorizonConfig) -> list[dict[str, str]]:
    """Key, old and new value (JSON text) of every config key, as the reports' config_diff has them."""
    before = config_to_dict(old) if old is not None else {}
    after = config_to_dict(new)
    return [
        {"key": k, "old": json.dumps(before.get(k)), "new": json.dumps(after.get(k))}
        for k in after
        if k not in ("horizon", "provenance")
    ]


def finish_horizon(
    ws: Workspace,
    outcome: HorizonOutcome,
    body: str,
    *,
    forge: Forge | None,
    options: RunOptions,
    run_id: str,
    now: datetime,
) -> HorizonOutcome:
    """Propose (and merge when approved) unless nothing changed or it is a plan-level dry run; record."""
    if outcome.status == "no_change":
        pass
    elif options.dry_run == "plan" or forge is None:
        outcome.message = "dry run (plan): nothing written to git"
    else:
        mark_step("propose")
        outcome.proposal = _propose(ws, forge, outcome, body, options)
        crash_point("pipeline:proposed")
    mark_step("record")
    if options.preview:
        # kept for the audit trail, never counted as an optimization: a preview must not reset the
        # time trigger or move the KPIs
        outcome.status = "dry_run"
        if outcome.proposal is not None:
            outcome.message = f"dry run (local): scratch PR #{outcome.proposal.pull.number} in a discarded clone, pushed nowhere"
    _record(ws, outcome, run_id, now)
    crash_point("pipeline:recorded")
    record_run_metrics(ws, outcome, run_id, now)
    if options.dry_run is None:
        automerge = ws.settings.forge.automerge if options.automerge is None else options.automerge
        notify_outcome(ws, outcome, run_id, automerge=automerge)
    return outcome


def save_outcome(run_dir: Path, outcome: HorizonOutcome) -> None:
    """What the propose stage needs to finish a run searched elsewhere (an Actions matrix job)."""
    assert outcome.verdict is not None and outcome.winner is not None and outcome.current is not None
    d = outcome.decision
    doc = {
        "run_id": run_dir.parent.name,
        "horizon": outcome.horizon,
        "status": outcome.status,
        "message": outcome.message,
        "verdict": outcome.verdict.to_dict(),
        "proposed_config": config_to_dict(outcome.winner),
        "current_config": config_to_dict(outcome.current),
        "search_seconds": outcome.search_seconds,
        "trigger": d.to_json() if d else None,
        "triggered_by": triggered_by(d) if d else "unknown",
    }
    atomic_write_text(run_dir / "outcome.json", json.dumps(doc, indent=2, default=str) + "\n")


def _propose(
    ws: Workspace, forge: Forge, outcome: HorizonOutcome, body: str, options: RunOptions
) -> ProposalResult:
    assert outcome.verdict is not None and outcome.winner is not None
    v = outcome.verdict
    h = outcome.horizon
    # the title states the change ("chronops 7d: context 180→90, samples 100→10"); the verdict is in the body
    title = pr_title(h, config_diff(outcome.current, outcome.winner))
    labels = ("chronops", f"horizon:{h}", "approved" if v.approved else "needs-review")
    rel = ws.config_path(h).relative_to(ws.root).as_posix()
    proposal = Proposal(
        horizon=h, title=title, body=body, labels=labels, files={rel: render_config(outcome.winner)},
        commit_message=f"{title}\n\n{v.headline}", approved=v.approved,
    )  # fmt: skip
    result = forge.propose(proposal, triggers_changed=_triggers_changed(outcome))
    if result.action == "snoozed":
        outcome.message = f"snoozed: a reviewer closed the last proposal for {h} (not reopened)"
        return result
    automerge = ws.settings.forge.automerge if options.automerge is None else options.automerge
    if v.approved and automerge and options.dry_run is None:
        merged = forge.merge(result.pull.number)  # open with auto_merge on a protected base
        result = ProposalResult(merged, result.action, merged=merged.state == "merged")
    return result


def _triggers_changed(outcome: HorizonOutcome) -> bool:
    """A material change re-opens a snoozed horizon: drift or performance fired, or an operator forced it."""
    trigger = outcome.triggers
    return trigger is not None and trigger.material


def _save_results(
    run_dir: Path,
    tuning: dict[str, Evaluation],
    validation: dict[str, Evaluation],
    live: HorizonConfig,
    winner: HorizonConfig,
    origins: OriginPlan,
    scale: pd.Series,
    noise_loss: str,
) -> None:
    """Per-origin results: everything the gate and reports need, so re-evaluation never re-forecasts.

    `seconds` is set where the config was timed alone (validation: the newest origins), `scale`
    (the volatility known at the origin, for the vol_mse loss) on validation rows."""
    frames = []
    for set_name, evals in (("tuning", tuning), ("validation", validation)):
        for key, ev in evals.items():
            f = ev.steps[STEP_COLUMNS].copy()
            f.insert(0, "set", set_name)
            f.insert(0, "config_key", key)
            f["seconds"] = f["origin"].map(ev.seconds).astype("float64")
            f["scale"] = f["origin"].map(scale).astype("float64") if set_name == "validation" else np.nan
            frames.append(f)
    write_table(run_dir / "results.parquet", pd.concat(frames, ignore_index=True))
    configs = {k: config_to_dict(e.config) for k, e in {**tuning, **validation}.items()}
    meta = {
        "configs": configs,
        "current_key": config_hash(live),
        "winner_key": config_hash(winner),
        "initial": is_initial(live),
        "prediction_length": live.prediction_length,
        "origin_step": origins.step,
        "noise_loss": noise_loss,
        "n_tuning": len(origins.tuning),
        "n_validation": len(origins.validation),
    }
    atomic_write_text(run_dir / "results_meta.json", json.dumps(meta, indent=2, default=str) + "\n")


def _record(ws: Workspace, outcome: HorizonOutcome, run_id: str, now: datetime) -> None:
    trigger = outcome.triggers
    v = outcome.verdict
    pr = outcome.proposal
    status = outcome.status
    dry_run = status == "dry_run"
    if pr is not None and not dry_run:
        status = "snoozed" if pr.action == "snoozed" else "merged" if pr.merged else "proposed"
    record_optimization(
        ws.history_path,
        HistoryRecord(
            run_id=run_id,
            horizon=outcome.horizon,
            optimization_date=now,
            triggered_by=trigger.triggered_by if trigger else "unknown",
            performance_degradation_pct=trigger.performance_degradation_pct if trigger else None,
            drift_severity=trigger.drift_severity if trigger else "NONE",
            days_since_last=trigger.days_since_last if trigger else None,
            success=v is not None and not dry_run,
            status=status,
            old_config_hash=config_hash(outcome.current) if outcome.current else None,
            new_config_hash=config_hash(outcome.winner) if outcome.winner else None,
            verdict=v.decision if v else None,
            pull_request=str(pr.pull.number) if pr and not dry_run else None,
            forced=bool(trigger and trigger.forced),
            override_reason=v.override_reason if v else None,
            notes=outcome.message or None,
        ),
    )
