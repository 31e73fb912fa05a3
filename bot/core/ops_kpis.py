"""The seed's operational KPIs and the series behind the dashboard's charts over time. Pure: frames
in (`run_table`, the metrics frame), values out; the clock comes in as `now`.

- manual_interventions: per month (30.44 days) since the first recorded run: merges by a person,
  approvals by manual override, operator rollbacks and forced runs (target <= 0.5 per month).
- forecast_accuracy: mean over horizons of the live config's RMSE in CLP: realized once actuals have
  arrived, else the validation backtest of the merged candidate (target band 7-11 CLP).
- deployment_success_rate: % of deploy records that ended `deployed` (target 100%).
- memory_per_run: the largest peak resident memory a run recorded, in MiB (target <= 1 GiB, the
  optimizer container's mem_limit).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bot.core.kpis import Kpi, Target, improvement_pct, merged_pulls

MONTH_DAYS = 30.44
OPS_TARGETS = {
    "manual_interventions": Target("<=", 0.5, "<= 0.5 per month"),
    "forecast_accuracy": Target("<=", 11.0, "7-11 CLP"),
    "deployment_success_rate": Target(">=", 100.0, "100%"),
    "memory_per_run": Target("<=", 1024.0, "<= 1,024 MiB"),
}


def _kpi(key: str, label: str, value: float | None, n: int, unit: str, detail: str) -> Kpi:
    return Kpi(key, label, None if value is None else round(value, 9), n, unit, OPS_TARGETS[key], detail)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def manual_interventions(runs: pd.DataFrame, history: pd.DataFrame, now: pd.Timestamp) -> Kpi:
    merged = merged_pulls(runs)
    people = int((merged["merged_by"].notna() & (merged["merged_by"] != "bot")).sum())
    overrides = int((runs["verdict"] == "approved_override").sum())
    forced = int(runs["forced"].sum())
    rollbacks = 0
    if not history.empty:
        mine = history[
            (history["triggered_by"] == "rollback")
            & history["status"].isin(("rolled_back", "rollback_proposed"))
        ]
        rollbacks = len(mine)
    total = people + overrides + forced + rollbacks
    if runs.empty:
        return _kpi(
            "manual_interventions", "Manual interventions per month", None, 0, "per month", "no runs yet"
        )
    days = max((now - runs["at"].min()) / pd.Timedelta(days=1), MONTH_DAYS)
    return _kpi(
        "manual_interventions", "Manual interventions per month", total / (days / MONTH_DAYS), total,
        "per month",
        f"{total} in {days:.0f} days: {people} merged by a person, {overrides} override(s), "
        f"{forced} forced run(s), {rollbacks} operator rollback(s)",
    )  # fmt: skip


def live_rmse(runs: pd.DataFrame) -> dict[str, tuple[float, str]]:
    """Per horizon: the RMSE (CLP) of the config the last merge put live, and where it comes from."""
    out: dict[str, tuple[float, str]] = {}
    for _, row in merged_pulls(runs).sort_values("merged_at", kind="stable").iterrows():
        realized, backtest = _num(row["realized_after"]), _num(row["rmse_after"])
        if realized is not None:
            out[str(row["horizon"])] = (realized, "realized")
        elif backtest is not None:
            out[str(row["horizon"])] = (backtest, "backtest")
    return out


def forecast_accuracy(runs: pd.DataFrame) -> Kpi:
    live = live_rmse(runs)
    mean = sum(v for v, _ in live.values()) / len(live) if live else None
    parts = ", ".join(f"{h} {v:,.2f} ({src})" for h, (v, src) in sorted(live.items()))
    return _kpi(
        "forecast_accuracy", "Forecast accuracy (RMSE)", mean, len(live), "CLP",
        f"live configs: {parts}" if parts else "no merged optimization with an RMSE yet",
    )  # fmt: skip


def deployment_success_rate(metrics: pd.DataFrame) -> Kpi:
    deploys = metrics[metrics["event"] == "deploy"] if not metrics.empty else metrics
    ok = int((deploys["status"] == "deployed").sum()) if not deploys.empty else 0
    n = len(deploys)
    return _kpi(
        "deployment_success_rate", "Deployment success rate", ok / n * 100.0 if n else None, n, "%",
        f"{ok} of {n} deployments ended deployed ({n - ok} refused or rolled back)",
    )  # fmt: skip


def memory_per_run(metrics: pd.DataFrame) -> Kpi:
    column = metrics["peak_rss_mib"] if "peak_rss_mib" in metrics.columns else pd.Series(dtype=float)
    # previews (--dry-run plan/local) are kept for the audit trail but never move a KPI
    runs = metrics[(metrics["event"] == "run") & (metrics["status"] != "dry_run")] if not metrics.empty else metrics
    values = [v for v in (_num(x) for x in column.loc[runs.index]) if v is not None] if not runs.empty else []
    if not values:
        return _kpi(
            "memory_per_run", "Memory per run (peak)", None, 0, "MiB", "no run recorded its memory yet"
        )
    latest = values[-1]
    return _kpi(
        "memory_per_run", "Memory per run (peak)", max(values), len(values), "MiB",
        f"largest of {len(values)} runs; latest {latest:,.0f} MiB (the optimizer container has 1 GiB)",
    )  # fmt: skip


def ops_kpis(
    runs: pd.DataFrame, history: pd.DataFrame, metrics: pd.DataFrame, now: pd.Timestamp
) -> tuple[Kpi, ...]:
    return (
        manual_interventions(runs, history, now),
        forecast_accuracy(runs),
        deployment_success_rate(metrics),
        memory_per_run(metrics),
    )


# --- series over time ---------------------------------------------------------------------------


def rmse_trend(runs: pd.DataFrame, rollbacks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per merged optimization, oldest first: the RMSE before and after (realized when
    known), its pull request, and whether a later rollback reverted it."""
    reverted = {str(r.get("reverts")) for r in rollbacks if r.get("reverts")}
    points = []
    for _, row in merged_pulls(runs).sort_values("merged_at", kind="stable").iterrows():
        value, source = improvement_pct(row)
        realized = source == "realized"
        before = _num(row["realized_before"] if realized else row["rmse_before"])
        after = _num(row["realized_after"] if realized else row["rmse_after"])
        pr = row["pull_request"]
        points.append({
            "at": pd.Timestamp(row["merged_at"]), "horizon": str(row["horizon"]), "before": before,
            "after": after, "improvement": value, "source": source or "n/a",
            "pull_request": None if pr is None else str(pr), "rolled_back": pr is not None and str(pr) in reverted,
        })  # fmt: skip
    return points


def weekly_triggers(runs: pd.DataFrame, kinds_of: Any, kinds: tuple[str, ...]) -> pd.DataFrame:
    """Trigger counts per ISO week (Monday) and kind; `kinds_of(triggered_by, forced)` names a run's kinds."""
    fired = runs[runs["triggered"] | runs["forced"]]
    rows = []
    for _, r in fired.iterrows():
        week = pd.Timestamp(r["at"]).tz_convert("UTC").normalize() - pd.Timedelta(
            days=pd.Timestamp(r["at"]).weekday()
        )
        for k in kinds_of(r["triggered_by"], bool(r["forced"])):
            rows.append({"week": week, "kind": k})
    if not rows:
        return pd.DataFrame(columns=["week", *kinds])
    table = pd.DataFrame(rows).value_counts().unstack(fill_value=0).reset_index()
    for k in kinds:
        if k not in table.columns:
            table[k] = 0
    return table[["week", *kinds]].sort_values("week", ignore_index=True)
