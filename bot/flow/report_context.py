"""The run report's context (what every rendering of a run shows) and writing the rendered files."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from bot.adapters.chronos import Model
from bot.adapters.store import atomic_write_text
from bot.adapters.tiny import is_random_weight_model
from bot.core.backtest import OriginPlan
from bot.core.config import HorizonConfig, config_hash, config_to_dict
from bot.core.loss import NOISE_LOSSES
from bot.core.metrics import Scores
from bot.core.search import SearchPlan
from bot.core.series import fingerprint
from bot.flow.outcome import HorizonOutcome, RunOptions
from bot.flow.validation import origins_text
from bot.render.charts import Panel
from bot.render.emails import run_emails
from bot.render.report import DEFAULT_SNOOZE_WEEKS, render_html, render_json, render_pr_body, with_review
from bot.secrets import redact
from bot.workspace import Workspace


def write_run_reports(
    run_dir: Path,
    context: Mapping[str, Any],
    chart_data: Sequence[Panel],
    *,
    started_at: datetime | None = None,
    automerge: bool = False,
    search_seconds: float | None = None,
    snooze_weeks: int = DEFAULT_SNOOZE_WEEKS,
    links_env: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Render and atomically write every report of one horizon's run; returns {relative name: path}:
    pr_body.md, report.json, report.html and emails/<event>.json ({subject, text, html}).
    `links_env` (os.environ in a run) says where the report can be read: see bot.render.review.report_links."""
    context = with_review(context, snooze_weeks=snooze_weeks, env=links_env)
    files = {
        "pr_body.md": render_pr_body(context),
        "report.json": render_json(context),
        "report.html": render_html(context, chart_data),
    }
    emails = run_emails(
        context,
        started_at=started_at,
        automerge=automerge,
        search_seconds=search_seconds,
        links_env=links_env,
    )
    for event, email in emails.items():
        files[f"emails/{event}.json"] = json.dumps({"event": event, **email.to_dict()}, indent=2) + "\n"
    paths = {}
    for name, text in files.items():
        atomic_write_text(run_dir / name, text)
        paths[name] = run_dir / name
    return paths


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
    model: Model,
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
        "origins_text": origins_text(dates, origins),
        "noise_loss_text": NOISE_LOSSES.get(outcome.verdict.noise_loss or "", ""),
        "trigger_reasons": list(outcome.decision.reasons) if outcome.decision else [],
        "trigger": outcome.decision.to_json() if outcome.decision else None,
        "truncated_note": False,
        "stamp": {
            "series_label": "synthetic USD/CLP-like series" if ws.is_synthetic else "USD/CLP dólar observado",
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


def json_safe(context: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = json.loads(json.dumps(context, default=str))
    return safe
