"""One run, per horizon: triggers → search (tuning origins) → gate (validation origins) → reports →
proposal on the forge → history. Decisions come from bot.core; this module only sequences IO."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date, datetime

import numpy as np
import pandas as pd

from bot.adapters.chronos import LazyModel, Model
from bot.adapters.configs import read_config
from bot.adapters.forges.base import Forge
from bot.adapters.history import get_last_optimization_date
from bot.adapters.sources import load_series
from bot.adapters.store import read_table
from bot.core.config import HorizonConfig, Provenance, config_hash, is_initial
from bot.core.gate import evaluate_gate
from bot.core.loss import noise_test_losses
from bot.core.metrics import Scores
from bot.core.performance import performance_check
from bot.core.search import SearchPlan, build_plan
from bot.core.triggers import TriggerDecision, decide, drift_check, time_check
from bot.flow.alerts import notify, triggered_context
from bot.flow.engine import BacktestCache, Engine, Evaluation, backtest_cache_key
from bot.flow.outcome import HorizonOutcome, ProgressFactory, RunOptions
from bot.flow.propose import _save_results, finish_horizon, save_outcome
from bot.flow.records import record_run_metrics
from bot.flow.recovery import mark_step
from bot.flow.report_context import json_safe, report_context, write_run_reports
from bot.flow.search import run_search
from bot.flow.validation import plan_origins, validate, validation_scale
from bot.render.report import chart_panels, report_document
from bot.workspace import Workspace


def trigger_decision(
    ws: Workspace,
    horizon: str,
    series: pd.DataFrame,
    today: date,
    *,
    force: bool,
    backtest_errors: pd.DataFrame | None,
    watch_reason: str | None = None,
    known_days_before: int | None = None,
) -> TriggerDecision:
    """The same decision `chronops check` prints. `known_days_before`: the series' publication rule
    (default `data.known_days_before`)."""
    settings = ws.settings.triggers
    last = get_last_optimization_date(ws.history_path, horizon, as_of=today)
    t = time_check(last, today, settings)
    known = ws.settings.data.known_days_before if known_days_before is None else known_days_before
    d = drift_check(series, today, settings, known_days_before=known)
    errors, source = _forecast_errors(ws, horizon, series)
    if errors is None and backtest_errors is not None:
        errors, source = backtest_errors, "backtest"
    if errors is None:
        errors, source = pd.DataFrame({"target_date": pd.Series(dtype="datetime64[ns]"), "error": []}), "none"
    p = performance_check(errors, today, settings, source)
    return decide(horizon, today, t, d, p, forced=force, watch=watch_reason)


def backtest_errors(ws: Workspace, live: HorizonConfig) -> pd.DataFrame | None:
    """The live config's rolling-origin backtest errors from the cache (the fallback when no
    production forecast log exists yet): target_date, error, step."""
    if not ws.cache_path.exists():
        return None
    from bot.adapters.chronos import model_revision

    path = ws.path(live.model_id)
    revision = model_revision(str(path) if path.is_dir() else live.model_id)
    key = backtest_cache_key(live.model_id, revision, live)
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


def run_horizon(
    ws: Workspace,
    horizon: str,
    *,
    run_id: str,
    now: datetime,
    options: RunOptions,
    forge: Forge | None,
    progress: ProgressFactory | None = None,
    model_loader: Callable[[HorizonConfig], Model] | None = None,
) -> HorizonOutcome:
    today = options.as_of or now.date()
    live = read_config(ws.config_path(horizon))
    series = load_series(ws, options.as_of)
    decision = trigger_decision(
        ws, horizon, series, today, force=options.force, backtest_errors=backtest_errors(ws, live),
        watch_reason=options.watch_reason,
    )  # fmt: skip
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
    origins = plan_origins(ws.settings.search, horizon, series["date"], plan, live)
    # loaded on its first predict: a run served entirely from the backtest cache never imports torch
    model = (model_loader or (lambda c: LazyModel(c.model_id, c.model_family, workspace=ws.root)))(live)
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
    validation = validate(engine, live, ranking, searched.complete, origins, s.validate_top, tick)
    search_seconds = time.perf_counter() - started
    approval = ws.settings.approval
    scale = validation_scale(values, series["date"], origins, approval.volatility_window)

    live_key, win_key = config_hash(live), config_hash(winner)
    current_eval = None if is_initial(live) else validation[live_key]
    cand_eval = validation[win_key]
    cand_scores = cand_eval.scores()
    verdict = evaluate_gate(
        current=current_eval.scores() if current_eval else None,
        candidate=cand_scores,
        naive_rmse=cand_scores.naive_rmse,
        current_losses=noise_test_losses(current_eval.steps, approval.noise_loss, scale)
        if current_eval
        else None,
        candidate_losses=noise_test_losses(cand_eval.steps, approval.noise_loss, scale),
        prediction_length=live.prediction_length,
        settings=approval,
        force_reason=options.force_approve_reason,
        origin_step=origins.step,
        noise_loss=approval.noise_loss,
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
    _save_results(run_dir, tuning, validation, live, winner, origins, scale, approval.noise_loss)
    context = report_context(
        ws, outcome, series=series, model=model, origins=origins, plan=plan,
        validation={"current": validation[live_key].scores(), "candidate": cand_scores}, options=options, run_id=run_id,
        search_notes=(f"strategy: {searched.strategy}", *searched.notes),
    )  # fmt: skip
    automerge = ws.settings.forge.automerge if options.automerge is None else options.automerge
    safe_context = json_safe(context)
    outcome.report = report_document(safe_context)
    written = write_run_reports(
        run_dir, safe_context,
        chart_panels({"Current config": validation[live_key].steps, "Candidate": cand_eval.steps}),
        started_at=now, automerge=automerge and verdict.approved and options.dry_run is None,
        search_seconds=search_seconds, snooze_weeks=ws.settings.triggers.snooze_weeks,
        links_env=os.environ,  # in Actions: GITHUB_* name the run whose artifacts hold the report
    )  # fmt: skip
    body = written["pr_body.md"].read_text(encoding="utf-8")
    if live_key == win_key and not verdict.override_reason:
        outcome.status = "no_change"
        outcome.message = "the live config is already the best candidate"
    save_outcome(run_dir, outcome)
    if options.stage == "search":
        return outcome
    return finish_horizon(ws, outcome, body, forge=forge, options=options, run_id=run_id, now=now)
