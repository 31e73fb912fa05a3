"""One run, per horizon: triggers → search (tuning origins) → gate (validation origins) → reports →
proposal on the forge → history. Decisions come from bot.core; this module only sequences IO."""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.adapters.chronos import LoadedModel, load_model
from bot.adapters.configs import read_config
from bot.adapters.forges.base import Forge, Proposal, ProposalResult
from bot.adapters.history import HistoryRecord, get_last_optimization_date, record_optimization
from bot.adapters.store import atomic_write_text, read_table, write_table
from bot.adapters.tiny import is_random_weight_model
from bot.core.backtest import OriginPlan, origin_step, walk_forward_origins
from bot.core.config import HorizonConfig, Provenance, config_hash, config_to_dict, render_config
from bot.core.gate import Verdict, evaluate_gate
from bot.core.metrics import STEP_COLUMNS, Scores, per_origin_loss
from bot.core.search import SearchPlan, build_plan
from bot.core.series import fingerprint
from bot.core.triggers import (
    TriggerDecision,
    decide,
    drift_check,
    performance_check,
    time_check,
    triggered_by,
)
from bot.errors import DataError
from bot.faults import crash_point
from bot.flow.alerts import notify, notify_outcome, triggered_context
from bot.flow.engine import BacktestCache, Engine, Evaluation
from bot.flow.records import record_run_metrics
from bot.flow.recovery import mark_step
from bot.flow.search import run_search
from bot.render.report import chart_panels, write_run_reports
from bot.secrets import redact
from bot.workspace import Workspace

ProgressFactory = Callable[[str, int], Callable[[int, int], None]]
# The observado dated D is published the evening before; a weekend and a holiday ahead is still real.
FUTURE_SLACK = timedelta(days=5)


@dataclass
class RunOptions:
    force: bool = False
    dry_run: str | None = None  # None = real run; plan = no git; local = commit in a temp clone only
    automerge: bool | None = None  # None = settings.forge.automerge
    force_approve_reason: str | None = None
    as_of: date | None = None
    command: str = ""
    stage: str | None = None  # None = the whole run; "search" = stop after reports (see bot.flow.stages)

    @property
    def preview(self) -> bool:
        """plan and local dry runs reach no forge (`full` opens a real pull request, unmerged)."""
        return self.dry_run in ("plan", "local")


@dataclass
class HorizonOutcome:
    horizon: str
    # skipped | no_change | approved | rejected | approved_override | merged | proposed | failed | dry_run
    status: str
    decision: TriggerDecision | None = None
    verdict: Verdict | None = None
    winner: HorizonConfig | None = None
    current: HorizonConfig | None = None
    ranking: list[tuple[HorizonConfig, Scores]] = field(default_factory=list)
    proposal: ProposalResult | None = None
    run_dir: Path | None = None
    message: str = ""
    search_seconds: float = 0.0
    trigger_json: dict[str, Any] | None = None  # the decision as JSON, when it was made elsewhere


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def load_series(ws: Workspace, as_of: date | None = None) -> pd.DataFrame:
    if not ws.series_path.exists():
        raise DataError(
            f"{ws.series_path}: no series yet (run `chronops ingest --source csv PATH` or `--source mindicador`)"
        )
    from bot.core.series import validate_series

    # the store is re-checked on every read: a file edited or damaged since ingest fails with one line
    series, _ = validate_series(
        read_table(ws.series_path, columns=["date", "value"]), source=str(ws.series_path),
        max_gap_days=ws.settings.data.max_gap_days,
    )  # fmt: skip
    last = series["date"].iloc[-1].date()
    if last > utcnow().date() + FUTURE_SLACK:
        raise DataError(
            f"{ws.series_path}: last observation is dated {last}, in the future (today is {utcnow().date()}); "
            "re-ingest the series"
        )
    if as_of is not None:
        from bot.core.series import known_as_of

        series = known_as_of(series, as_of)
    if len(series) < 10:
        raise DataError(f"{ws.series_path}: only {len(series)} observations; need more history to forecast")
    return series.sort_values("date", ignore_index=True)


def trigger_decision(
    ws: Workspace,
    horizon: str,
    series: pd.DataFrame,
    today: date,
    *,
    force: bool,
    backtest_errors: pd.DataFrame | None,
) -> TriggerDecision:
    """The same decision `chronops check` prints."""
    settings = ws.settings.triggers
    last = get_last_optimization_date(ws.history_path, horizon, as_of=today)
    t = time_check(last, today, settings)
    d = drift_check(series, today, settings)
    errors, source = _forecast_errors(ws, horizon, series)
    if errors is None and backtest_errors is not None:
        errors, source = backtest_errors, "backtest"
    if errors is None:
        errors, source = pd.DataFrame({"target_date": pd.Series(dtype="datetime64[ns]"), "error": []}), "none"
    p = performance_check(errors, today, settings, source)
    return decide(horizon, today, t, d, p, forced=force)


def backtest_errors(ws: Workspace, live: HorizonConfig) -> pd.DataFrame | None:
    """The live config's rolling-origin backtest errors from the cache (the fallback when no
    production forecast log exists yet): target_date, error, step."""
    if not ws.cache_path.exists():
        return None
    from bot.adapters.chronos import model_revision

    path = ws.path(live.model_id)
    revision = model_revision(str(path) if path.is_dir() else live.model_id)
    key = f"{live.model_id}@{revision}|{config_hash(live)}"  # as Engine.cache_key spells it
    cache = read_table(ws.cache_path, columns=["cache_key", "target_date", "point", "actual", "step"])
    rows = cache[cache["cache_key"] == key]
    if rows.empty:
        return None
    return pd.DataFrame(
        {
            "target_date": pd.to_datetime(rows["target_date"]),
            "error": rows["point"].to_numpy() - rows["actual"].to_numpy(),
            "step": rows["step"].to_numpy(),
        }
    ).sort_values("target_date", ignore_index=True)


def _forecast_errors(ws: Workspace, horizon: str, series: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    if not ws.forecasts_path.exists():
        return None, "none"
    from bot.adapters.forecast_log import read_forecast_log, realized_errors

    log = read_forecast_log(ws.forecasts_path)
    errors = realized_errors(log, series, horizon, None)
    if errors.empty:
        return None, "none"
    return errors, "forecast_log"


def _plan_for(ws: Workspace, live: HorizonConfig) -> SearchPlan:
    s = ws.settings.search
    return build_plan(
        live,
        context_lengths=s.context_length[live.horizon],
        num_samples=s.num_samples,
        temperatures=s.temperature,
    )


def _origins(ws: Workspace, horizon: str, n_obs: int, plan: SearchPlan, live: HorizonConfig) -> OriginPlan:
    s = ws.settings.search
    max_ctx = max(
        [c.config.effective_context_length for c in plan.candidates] + [live.effective_context_length]
    )
    return walk_forward_origins(
        n_obs,
        prediction_length=live.prediction_length,
        max_context=max_ctx,
        n_tuning=s.tuning_origins,
        n_validation=s.validation_origins,
        step=origin_step(live.prediction_length, s.min_origin_step),
        horizon=horizon,
    )


def rank(evals: dict[str, Evaluation]) -> list[tuple[HorizonConfig, Scores]]:
    """Best first: lowest tuning RMSE, then CRPS, then faster, then the config hash (deterministic)."""
    scored = [(e.config, e.scores()) for e in evals.values()]
    return sorted(
        scored,
        key=lambda cs: (
            round(cs[1].rmse, 9),
            round(cs[1].crps, 9),
            cs[1].inference_seconds,
            config_hash(cs[0]),
        ),
    )


def is_initial(cfg: HorizonConfig) -> bool:
    """A scaffolded config (provenance.source == 'init') was never validated: initial deployment."""
    return cfg.provenance.source == "init"


def run_horizon(
    ws: Workspace,
    horizon: str,
    *,
    run_id: str,
    now: datetime,
    options: RunOptions,
    forge: Forge | None,
    progress: ProgressFactory | None = None,
    model_loader: Callable[[HorizonConfig], LoadedModel] | None = None,
) -> HorizonOutcome:
    today = options.as_of or now.date()
    live = read_config(ws.config_path(horizon))
    series = load_series(ws, options.as_of)
    decision = trigger_decision(
        ws, horizon, series, today, force=options.force, backtest_errors=backtest_errors(ws, live)
    )
    if not decision.fire:
        skipped = HorizonOutcome(
            horizon, "skipped", decision=decision, current=live, message="no trigger fired"
        )
        if options.stage != "search" and not options.preview:
            record_run_metrics(ws, skipped, run_id, now)
        return skipped
    if options.dry_run is None and options.stage != "search":
        notify(ws, "optimization_triggered", triggered_context(decision, run_id, now, "a few minutes"))

    started = time.perf_counter()
    plan = _plan_for(ws, live)
    values = series["value"].to_numpy(dtype=np.float64)
    origins = _origins(ws, horizon, len(values), plan, live)
    model = (
        model_loader or (lambda c: load_model(c.model_id, expected_family=c.model_family, workspace=ws.root))
    )(live)
    engine = Engine(
        model, series["date"], values, seed=ws.settings.search.seed,
        sample_chunk=ws.settings.search.sample_chunk, cache=BacktestCache(ws.cache_path),
    )  # fmt: skip
    tick = progress(f"{horizon} search", 1) if progress else None
    candidates = [c.config for c in plan.candidates]
    s = ws.settings.search
    mark_step("search")
    searched = run_search(
        engine, candidates, origins.tuning, strategy=s.strategy, seed=s.seed,
        budget_seconds=s.time_budget_seconds, progress=tick,
    )  # fmt: skip
    tuning = searched.evaluations
    complete = {k: v for k, v in tuning.items() if k in searched.complete}
    ranking = rank(complete) + rank({k: v for k, v in tuning.items() if k not in searched.complete})
    winner = ranking[0][0]
    tick = progress(f"{horizon} validate", 1) if progress else None
    mark_step("gate")
    validation = engine.evaluate([live, winner], origins.validation, progress=tick, share_draws=False)
    search_seconds = time.perf_counter() - started

    live_key, win_key = config_hash(live), config_hash(winner)
    current_eval = None if is_initial(live) else validation[live_key]
    cand_eval = validation[win_key]
    cand_scores = cand_eval.scores()
    verdict = evaluate_gate(
        current=current_eval.scores() if current_eval else None,
        candidate=cand_scores,
        naive_rmse=cand_scores.naive_rmse,
        current_losses=per_origin_loss(current_eval.steps) if current_eval else None,
        candidate_losses=per_origin_loss(cand_eval.steps),
        prediction_length=live.prediction_length,
        settings=ws.settings.approval,
        force_reason=options.force_approve_reason,
        origin_step=origins.step,
    )
    run_dir = ws.runs_dir / run_id / horizon
    new_cfg = winner.with_knobs(
        context_length=winner.context_length,
        version=live.version + 1,
        provenance=Provenance(source="chronops", run_id=run_id, updated_at=now.isoformat(timespec="seconds")),
    )
    outcome = HorizonOutcome(
        horizon, verdict.decision, decision=decision, verdict=verdict, winner=new_cfg, current=live,
        ranking=ranking, run_dir=run_dir, search_seconds=search_seconds,
    )  # fmt: skip
    _save_results(run_dir, tuning, validation, live, winner, origins)
    context = report_context(
        ws, outcome, series=series, model=model, origins=origins, plan=plan,
        validation={"current": validation[live_key].scores(), "candidate": cand_scores}, options=options, run_id=run_id,
        search_notes=(f"strategy: {searched.strategy}", *searched.notes),
    )  # fmt: skip
    automerge = ws.settings.forge.automerge if options.automerge is None else options.automerge
    written = write_run_reports(
        run_dir, _json_safe(context),
        chart_panels({"Current config": validation[live_key].steps, "Candidate": cand_eval.steps}),
        started_at=now, automerge=automerge and verdict.approved and options.dry_run is None,
        search_seconds=search_seconds,
    )  # fmt: skip
    body = written["pr_body.md"].read_text(encoding="utf-8")
    if live_key == win_key and not verdict.override_reason:
        outcome.status = "no_change"
        outcome.message = "the live config is already the best candidate"
    save_outcome(run_dir, outcome)
    if options.stage == "search":
        return outcome
    return finish_horizon(ws, outcome, body, forge=forge, options=options, run_id=run_id, now=now)


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
            outcome.message = (
                f"dry run (local): scratch PR #{outcome.proposal.pull.number} in a discarded clone, pushed nowhere"
            )
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
    gain = f"RMSE {-v.rmse_improvement_pct:+.1f}%" if v.rmse_improvement_pct is not None else "initial config"
    title = f"chronops: tune {h} ({gain})"
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
        merged = forge.merge(result.pull.number)
        result = ProposalResult(merged, result.action, merged=True)
    return result


def _triggers_changed(outcome: HorizonOutcome) -> bool:
    """A material change re-opens a snoozed horizon: drift or performance fired, or an operator forced it."""
    trigger = outcome.decision.to_json() if outcome.decision else outcome.trigger_json
    if not trigger:
        return False
    return bool(trigger["drift"]["fired"] or trigger["performance"]["fired"] or trigger.get("forced"))


def _save_results(
    run_dir: Path,
    tuning: dict[str, Evaluation],
    validation: dict[str, Evaluation],
    live: HorizonConfig,
    winner: HorizonConfig,
    origins: OriginPlan,
) -> None:
    """Per-origin results: everything the gate and reports need, so re-evaluation never re-forecasts."""
    frames = []
    for set_name, evals in (("tuning", tuning), ("validation", validation)):
        for key, ev in evals.items():
            f = ev.steps[STEP_COLUMNS].copy()
            f.insert(0, "set", set_name)
            f.insert(0, "config_key", key)
            f["seconds"] = f["origin"].map(ev.seconds)
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
    }
    atomic_write_text(run_dir / "results_meta.json", json.dumps(meta, indent=2, default=str) + "\n")


def _knob_label(cfg: HorizonConfig) -> str:
    knobs = cfg.knobs()
    parts = [f"ctx={knobs['context_length']}"]
    if knobs.get("num_samples") is not None:
        parts += [f"ns={knobs['num_samples']}", f"T={knobs['temperature']}"]
    return " ".join(parts)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("chronops", "chronos-forecasting", "torch", "transformers", "pandas", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def report_context(
    ws: Workspace,
    outcome: HorizonOutcome,
    *,
    series: pd.DataFrame,
    model: LoadedModel,
    origins: OriginPlan,
    plan: SearchPlan,
    validation: dict[str, Scores],
    options: RunOptions,
    run_id: str,
    search_notes: tuple[str, ...] = (),
) -> dict[str, Any]:
    assert outcome.verdict is not None and outcome.winner is not None and outcome.current is not None
    cur, new = config_to_dict(outcome.current), config_to_dict(outcome.winner)
    diff = [
        {"key": k, "old": json.dumps(cur.get(k)), "new": json.dumps(new.get(k))}
        for k in ("model_id", "context_length", "num_samples", "temperature", "top_k", "top_p", "version")
        if k in cur or k in new
    ]
    c, n = validation["current"], validation["candidate"]
    metric_rows = [
        ("RMSE (CLP)", c.rmse, n.rmse, n.naive_rmse),
        ("MAPE (%)", c.mape, n.mape, None),
        ("MAE (CLP)", c.mae, n.mae, None),
        ("Bias (CLP)", c.bias, n.bias, None),
        ("Error std (CLP)", c.error_std, n.error_std, None),
        ("CI95 coverage (%)", c.coverage95, n.coverage95, None),
        ("CRPS (CLP)", c.crps, n.crps, None),
        ("Skill vs naive", c.skill, n.skill, 0.0),
        ("Inference s/origin", c.inference_seconds, n.inference_seconds, None),
    ]
    dates = series["date"]
    model_path = Path(model.model_id) if Path(model.model_id).is_absolute() else ws.root / model.model_id
    top = [
        {"rank": i + 1, "label": _knob_label(cfg), "key": config_hash(cfg), **s.as_dict()}
        for i, (cfg, s) in enumerate(outcome.ranking)
    ]
    return {
        "horizon": outcome.horizon,
        "run_id": run_id,
        "prediction_length": outcome.current.prediction_length,
        "random_weights": is_random_weight_model(model_path),
        "verdict": outcome.verdict.to_dict(),
        "config_diff": diff,
        "current_config": cur,
        "proposed_config": new,
        "metrics_table": [
            {"name": a, "current": b, "candidate": x, "naive": y} for a, b, x, y in metric_rows
        ],
        "validation_scores": {"current": c.as_dict(), "candidate": n.as_dict()},
        "top_candidates": top[:5],
        "all_candidates": top,
        "n_candidates": len(top),
        "duplicates": list(plan.duplicates),
        "search_notes": list(search_notes),
        "n_tuning": len(origins.tuning),
        "n_validation": len(origins.validation),
        "trigger_reasons": list(outcome.decision.reasons) if outcome.decision else [],
        "trigger": outcome.decision.to_json() if outcome.decision else None,
        "truncated_note": False,
        "stamp": {
            "series_label": "synthetic USD/CLP-like series"
            if _is_synthetic(ws)
            else "USD/CLP dólar observado",
            "n_obs": len(series),
            "first_date": dates.iloc[0].date().isoformat(),
            "last_date": dates.iloc[-1].date().isoformat(),
            "data_fingerprint": fingerprint(series["value"].to_numpy()),
            "model_id": model.model_id,
            "model_revision": model.revision,
            "family": model.family.value,
            "seed": ws.settings.search.seed,
            "origin_step": origins.step,
            "tuning_range": _range(dates, origins.tuning),
            "validation_range": _range(dates, origins.validation),
            "versions": _versions(),
            "command": redact(options.command or "chronops " + shlex.join(sys.argv[1:])),
        },
        "metadata": {
            "tool": "chronops",
            "run_id": run_id,
            "horizon": outcome.horizon,
            "config_hash": config_hash(outcome.winner),
            "previous_hash": config_hash(outcome.current),
            "decision": outcome.verdict.decision,
        },
    }


def _range(dates: pd.Series, idx: tuple[int, ...]) -> str:
    return f"{dates.iloc[idx[0]].date()} → {dates.iloc[idx[-1]].date()} ({len(idx)} origins)"


def _is_synthetic(ws: Workspace) -> bool:
    return (ws.series_path.parent / "SYNTHETIC").exists()


def _json_safe(context: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = json.loads(json.dumps(context, default=str))
    return safe


def _record(ws: Workspace, outcome: HorizonOutcome, run_id: str, now: datetime) -> None:
    trigger = outcome.decision.to_json() if outcome.decision else outcome.trigger_json
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
            triggered_by=str(trigger.get("triggered_by", "unknown")) if trigger else "unknown",
            performance_degradation_pct=trigger["performance"]["degradation_pct"] if trigger else None,
            drift_severity=str(trigger["drift"]["severity"]) if trigger else "NONE",
            days_since_last=trigger["time"]["days_since_last"] if trigger else None,
            success=v is not None and not dry_run,
            status=status,
            old_config_hash=config_hash(outcome.current) if outcome.current else None,
            new_config_hash=config_hash(outcome.winner) if outcome.winner else None,
            verdict=v.decision if v else None,
            pull_request=str(pr.pull.number) if pr and not dry_run else None,
            forced=bool(trigger and trigger.get("forced")),
            override_reason=v.override_reason if v else None,
            notes=outcome.message or None,
        ),
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
