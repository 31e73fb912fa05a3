"""Alert emails rendered with jinja2 from templates/emails/: a subject, plain text and HTML per event.

Every email links to somewhere to read more (`links`: the run's report, the Actions run; see
bot.render.review.report_links), which `render_email` derives from the `links_env` it is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.render.report import TEMPLATES_DIR, environment, fmt_when, one_line
from bot.render.review import report_links

EMAIL_EVENTS = (
    "optimization_triggered",
    "validation_passed",
    "validation_failed",
    "deployment_successful",
    "rollback_executed",
    "run_missed",
    "watch_alarm",
)
EMAIL_KEYS: dict[str, tuple[str, ...]] = {
    "optimization_triggered": ("horizon", "run_id", "triggered_by", "started_at", "expected_completion"),
    "validation_passed": (
        "horizon", "run_id", "headline", "decision", "rmse_improvement_pct", "mape_improvement_pct",
        "changes", "automerge", "pull_request", "override_reason", "random_weights",
    ),
    "validation_failed": (
        "horizon", "run_id", "headline", "failed", "rmse_improvement_pct", "mape_improvement_pct",
        "changes", "pull_request", "no_change", "random_weights",
    ),
    "deployment_successful": ("horizon", "version", "config_hash", "commit", "deployed_at", "changes", "health"),
    "rollback_executed": (
        "horizon", "reason", "automatic", "from_version", "to_version", "commit", "executed_at",
    ),
    "run_missed": ("horizon", "expected_at", "last_run_at", "workflow"),
    "watch_alarm": (
        "horizon", "day", "onset", "statistic", "threshold", "ratio", "reason", "false_alarm_weeks", "forge",
    ),
}  # fmt: skip
CHANGE_LABELS = {
    "model_id": "Model",
    "context_length": "Context length",
    "num_samples": "Num samples",
    "temperature": "Temperature",
    "top_k": "Top k",
    "top_p": "Top p",
}


# --- emails --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "text": self.text, "html": self.html}


def _email_links(env: Mapping[str, str], ctx: Mapping[str, Any]) -> dict[str, str | None]:
    """Every email links somewhere to read more: the run's report when there is a run, the Actions run."""
    if "run_id" in ctx:
        return report_links(env, str(ctx["run_id"]), str(ctx["horizon"]))
    return {**report_links(env, "", ""), "report": None, "local": None}


def render_email(
    event: str,
    context: Mapping[str, Any],
    *,
    templates: Path = TEMPLATES_DIR,
    links_env: Mapping[str, str] | None = None,
) -> RenderedEmail:
    """Subject, plain text and HTML of one alert email. Required context keys per event:

    - optimization_triggered: horizon, run_id, triggered_by (list of reasons), started_at (datetime or
      str), expected_completion (str, e.g. "~5 minutes").
    - validation_passed: horizon, run_id, headline, decision (approved | approved_override |
      initial_approved), rmse_improvement_pct, mape_improvement_pct (float | None; positive = better),
      changes (list of {label, old, new}), automerge (bool: "Deployment will proceed automatically"),
      pull_request (URL/number | None), override_reason (str | None), random_weights (bool).
    - validation_failed: horizon, run_id, headline, failed (list of {label, detail}),
      rmse_improvement_pct, mape_improvement_pct, changes, pull_request, no_change (bool: the live
      config was already the best candidate), random_weights.
    - deployment_successful: horizon, version, config_hash, commit, deployed_at, changes, health (str).
    - rollback_executed: horizon, reason, automatic (bool: health check vs operator), from_version,
      to_version, commit, executed_at.
    - run_missed: horizon (or "all"), expected_at, last_run_at (None if never), workflow.
    - watch_alarm: horizon ("all" or a list), day, onset, statistic, threshold, ratio, reason,
      false_alarm_weeks, forge (bot.flow.watch.alarm_context).

    `run_email_context` builds the first three from a run context.
    """
    if event not in EMAIL_KEYS:
        raise ValueError(f"unknown email event {event!r}; expected one of {', '.join(EMAIL_EVENTS)}")
    missing = [k for k in EMAIL_KEYS[event] if k not in context]
    if missing:
        raise KeyError(f"email {event!r} needs context keys: {', '.join(missing)}")
    ctx = {**context, "event": event}
    if "links" not in ctx:
        ctx["links"] = _email_links(links_env or {}, ctx)
    env = environment(templates)
    return RenderedEmail(
        subject=one_line(env.get_template(f"emails/{event}.subject.j2").render(**ctx)),
        text=env.get_template(f"emails/{event}.txt.j2").render(**ctx),
        html=env.get_template(f"emails/{event}.html.j2").render(**ctx),
    )


def validation_event(run: Mapping[str, Any]) -> str:
    return "validation_passed" if run["verdict"]["approved"] else "validation_failed"


def _changes(run: Mapping[str, Any]) -> list[dict[str, str]]:
    def show(raw: str) -> str:
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            return str(raw)
        return "none" if value is None else str(value)

    return [
        {"label": CHANGE_LABELS[row["key"]], "old": show(row["old"]), "new": show(row["new"])}
        for row in run["config_diff"]
        if row["key"] in CHANGE_LABELS and row["old"] != row["new"]
    ]


def _started_at(run_id: str) -> str:
    try:
        return f"{datetime.strptime(run_id[:16], '%Y%m%dT%H%M%SZ'):%Y-%m-%d %H:%M:%S} UTC"
    except ValueError:
        return "unknown"


def run_email_context(
    event: str,
    run: Mapping[str, Any],
    *,
    started_at: datetime | str | None = None,
    expected_completion: str | None = None,
    automerge: bool = False,
    pull_request: str | None = None,
) -> dict[str, Any]:
    """Email context for optimization_triggered / validation_passed / validation_failed from a run
    context (bot.flow.pipeline.report_context). `started_at` defaults to the time in the run id."""
    base = {"horizon": run["horizon"], "run_id": run["run_id"]}
    if event == "optimization_triggered":
        return {
            **base,
            "triggered_by": list(run["trigger_reasons"]) or ["manual run"],
            "started_at": fmt_when(started_at) if started_at is not None else _started_at(run["run_id"]),
            "expected_completion": expected_completion or "unknown",
        }
    if event not in ("validation_passed", "validation_failed"):
        raise ValueError(f"{event!r} is not built from a run context; pass render_email its keys directly")
    verdict = run["verdict"]
    changes = _changes(run)
    return {
        **base,
        "headline": verdict["headline"],
        "decision": verdict["decision"],
        "rmse_improvement_pct": verdict["rmse_improvement_pct"],
        "mape_improvement_pct": verdict["mape_improvement_pct"],
        "changes": changes,
        "automerge": automerge,
        "pull_request": pull_request,
        "override_reason": verdict["override_reason"],
        "random_weights": bool(run["random_weights"]),
        "failed": [
            {"label": c["label"], "detail": c["detail"]} for c in verdict["criteria"] if not c["passed"]
        ],
        "no_change": not changes,
    }


def run_emails(
    run: Mapping[str, Any],
    *,
    started_at: datetime | str | None = None,
    automerge: bool = False,
    search_seconds: float | None = None,
    pull_request: str | None = None,
    links_env: Mapping[str, str] | None = None,
) -> dict[str, RenderedEmail]:
    """The emails a tuning run produces: optimization_triggered, then validation passed or failed."""
    minutes = None
    if search_seconds is not None:
        n = max(1, round(search_seconds / 60))
        minutes = f"~{n} minute{'s' if n != 1 else ''}"
    events = ("optimization_triggered", validation_event(run))
    return {
        e: render_email(
            e,
            run_email_context(
                e,
                run,
                started_at=started_at,
                expected_completion=minutes,
                automerge=automerge,
                pull_request=pull_request,
            ),
            links_env=links_env,
        )
        for e in events
    }
