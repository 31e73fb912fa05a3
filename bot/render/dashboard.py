"""What is live and how the bot is doing: `chronops status` and the static HTML dashboard.

- Live configs come from git, not from the working tree: the first-parent history of
  `configs/<h>.json` on the base branch (origin/<base>, else the local <base>) says which commit put
  the live config there, when, and through which pull request (a tune merge or a revert).
  `configs_at(ws, when)` answers "which config was live at the end of DATE".
- The dashboard (`write_dashboard`) is one self-contained HTML file: inline CSS, inline SVG charts,
  no scripts, nothing fetched from any host, so it works from disk and from GitHub Pages. Its
  sections are the seed's: Optimization Frequency, Validation Success Rate (rolling 30 days),
  Performance Improvements (RMSE before/after), Last Optimization Details, Trigger History, plus
  the KPIs against their targets.
"""

from __future__ import annotations

import json
import math
from datetime import UTC
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from bot.core.config import HORIZONS
from bot.core.kpis import (
    TRIGGER_KINDS,
    Kpi,
    improvement_pct,
    merged_pulls,
    rolling_validation_rate,
    trigger_kinds,
    trigger_reasons,
)
from bot.render.charts import COLORS, Bars, bar_chart, line_chart
from bot.render.report import TEMPLATES_DIR

DASHBOARD_TEMPLATE = "dashboard.html.j2"
SECTIONS = (
    "Key Performance Indicators",
    "Optimization Frequency",
    "Validation Success Rate (rolling 30 days)",
    "Performance Improvements (RMSE before/after)",
    "Last Optimization Details",
    "Trigger History",
)
CHART_IDS = ("chart-frequency", "chart-validation", "chart-rmse", "chart-triggers")


# --- live configs from git ----------------------------------------------------------------------


# --- status -------------------------------------------------------------------------------------


def iso_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return (
        pd.Timestamp(value).tz_convert(UTC).isoformat(timespec="seconds")
        if pd.Timestamp(value).tzinfo
        else str(value)
    )


# --- inline SVG charts --------------------------------------------------------------------------



# --- the dashboard ------------------------------------------------------------------------------

OUTCOMES = ("merged", "proposed", "rejected", "no_change", "failed")


def run_outcome(row: pd.Series) -> str:
    status = str(row["status"])
    if status in ("merged", "proposed", "no_change", "failed", "skipped"):
        return status
    return "rejected" if str(row["verdict"]).endswith("rejected") else status


def frequency(runs: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    fired = runs[runs["status"] != "skipped"]
    rows: list[dict[str, Any]] = []
    series: dict[str, list[float]] = {o: [] for o in OUTCOMES}
    for h in HORIZONS:
        mine = fired[fired["horizon"] == h]
        counts = mine.apply(run_outcome, axis=1).value_counts() if not mine.empty else pd.Series(dtype=int)
        for o in OUTCOMES:
            series[o].append(float(counts.get(o, 0)))
        rows.append({
            "horizon": h, "runs": len(mine), **{o: int(counts.get(o, 0)) for o in OUTCOMES},
            "checks": int((runs["horizon"] == h).sum()),
            "last": day_label(mine["at"].iloc[-1]) if not mine.empty else "never",
        })  # fmt: skip
    chart = bar_chart(
        "chart-frequency", "Optimizations per horizon, by outcome", list(HORIZONS),
        [Bars(o.replace("_", " "), COLORS[o], tuple(series[o])) for o in OUTCOMES], stacked=True,
        empty="no optimization has run yet",
    )  # fmt: skip
    return rows, chart


def day_label(value: Any) -> str:
    return str(pd.Timestamp(value).strftime("%Y-%m-%d"))


def validation(runs: pd.DataFrame, kpi: Kpi) -> str:
    rate = rolling_validation_rate(runs, days=30)
    points = [(pd.Timestamp(d).date(), float(r)) for d, r in zip(rate["day"], rate["rate"], strict=True)]
    return line_chart(
        "chart-validation", "Validation success rate (rolling 30 days)", points, y_range=(0.0, 100.0),
        unit="%", target=(kpi.target.threshold, f"target {kpi.target.text}"),
        empty="no candidate has been through the gate yet",
    )  # fmt: skip


def performance(runs: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    merged = merged_pulls(runs)
    rows = []
    for _, r in merged.iterrows():
        value, source = improvement_pct(r)
        realized = source == "realized"
        before = r["realized_before"] if realized else r["rmse_before"]
        after = r["realized_after"] if realized else r["rmse_after"]
        rows.append({
            "label": f"{r['horizon']} #{r['pull_request']}" if r["pull_request"] else f"{r['horizon']} {day_label(r['at'])}",
            "horizon": r["horizon"], "date": day_label(r["merged_at"]), "pull_request": r["pull_request"],
            "merged_by": r["merged_by"], "before": number_or_none(before), "after": number_or_none(after),
            "improvement": value, "source": source or "n/a",
        })  # fmt: skip
    shown = [r for r in rows if r["before"] is not None and r["after"] is not None][-12:]
    chart = bar_chart(
        "chart-rmse", "RMSE before and after each merged optimization (CLP)", [r["label"] for r in shown],
        [Bars("before", COLORS["before"], tuple(r["before"] for r in shown)),
         Bars("after", COLORS["after"], tuple(r["after"] for r in shown))],
        empty="no merged optimization with RMSE yet",
    )  # fmt: skip
    return rows, chart


def text_or_none(value: Any) -> str | None:
    """Text or None: parquet gives NaN for a missing string."""
    return None if value is None or pd.isna(value) else str(value)


def number_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def triggers(runs: pd.DataFrame, limit: int = 40) -> tuple[list[dict[str, Any]], str]:
    fired = runs[runs["triggered"] | runs["forced"]]
    counts = {k: [0.0] * len(HORIZONS) for k in TRIGGER_KINDS}
    for _, r in fired.iterrows():
        for k in trigger_kinds(r["triggered_by"], bool(r["forced"])):
            counts[k][HORIZONS.index(r["horizon"])] += 1
    chart = bar_chart(
        "chart-triggers", "What triggered optimizations, per horizon", list(HORIZONS),
        [Bars(k, COLORS[k], tuple(v)) for k, v in counts.items()], stacked=True,
        empty="no trigger has fired yet",
    )  # fmt: skip
    rows = [
        {"date": pd.Timestamp(r["at"]).strftime("%Y-%m-%d %H:%M"), "horizon": r["horizon"],
         "triggered_by": r["triggered_by"] or ("forced" if r["forced"] else "n/a"),
         "reasons": trigger_reasons(r["trigger_reasons"]), "outcome": run_outcome(r).replace("_", " "),
         "pull_request": r["pull_request"]}
        for _, r in fired.iloc[::-1].head(limit).iterrows()
    ]  # fmt: skip
    return rows, chart


def parse_criteria(raw: str) -> list[dict[str, Any]]:
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    return [
        {"label": c.get("label", c.get("name", "?")), "passed": bool(c.get("passed")),
         "value": number_or_none(c.get("value")), "comparator": c.get("comparator", ""), "threshold": number_or_none(c.get("threshold"))}
        for c in items if isinstance(c, dict)
    ]  # fmt: skip


def when_label(value: Any) -> str:
    """An ISO timestamp as '2026-01-04 05:00 UTC' (anything else as is)."""
    if not value:
        return "n/a"
    try:
        return str(pd.Timestamp(value).tz_convert(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    except (ValueError, TypeError):
        return str(value)


def _environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, d=2: "n/a" if v is None else f"{v:,.{d}f}"
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v:+.1f}%"
    env.filters["when"] = when_label
    env.filters["change"] = _change
    return env


def _change(improvement: float | None) -> str:
    """An RMSE improvement (positive = lower = better) in words, as the reports say it."""
    if improvement is None:
        return "n/a"
    if round(improvement, 1) == 0:
        return "unchanged"
    return f"{abs(improvement):.1f}% {'lower' if improvement > 0 else 'higher'}"


def render_dashboard(context: dict[str, Any], *, templates: Path = TEMPLATES_DIR) -> str:
    return _environment(templates).get_template(DASHBOARD_TEMPLATE).render(**context)


# --- the status command -------------------------------------------------------------------------


