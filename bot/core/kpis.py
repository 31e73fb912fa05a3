"""The seed's success metrics, computed from the history and metrics frames. Pure: no IO, no clock.

Inputs are the frames `bot.adapters.history.read_history` and `bot.flow.records.read_metrics` return. Both
are folded into one run table (`run_table`): one row per run and horizon, metrics rows first, then
history rows the metrics do not have (runs recorded before metrics existed). Merges recorded later
(`merge` events: a person merging a proposal) are attached to the pull request they merged.

Definitions (each KPI reports its value, the number of cases `n` it rests on, and the seed's target):

- automation_rate: of the merged tune pull requests, the % merged by the bot with no manual
  override of the gate (target >= 80%).
- validation_success_rate: of the runs the gate judged, the % it approved on its own
  (approved / initial_approved; an override is not a success) (target >= 60%).
- rmse_improvement: mean RMSE reduction of merged optimizations, % of the old config's RMSE;
  realized RMSE when actuals have arrived, else the validation backtest (target 5-10%, met at >= 5%).
- zero_downtime_rate: of the deploy records with a known downtime flag, the % without downtime
  (target 100%).
- false_positive_rate: of the runs a trigger started (forced runs excluded) that got to a result,
  the % that found nothing better: status no_change, or the gate rejected the candidate (target <= 10%).
  Runs the daily volatility watch called count too (triggered_by "watch"; the detail splits them out).
- drift_detection_latency: per drift episode (a run that saw drift after one that did not), days
  from the onset marker to the first run triggered by drift. The onset marker is the detector's
  `drift_onset` when it gives one, else the last run that saw no drift: an upper bound, since
  drift can only be seen at a run (target <= 7 days).
- time_to_remediation: per merged tune pull request, hours from the first run that proposed it
  (its trigger) to the merge (target <= 24 h).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

APPROVED = ("approved", "initial_approved")
JUDGED = ("approved", "rejected", "approved_override", "initial_approved", "initial_rejected")
REJECTED = ("rejected", "initial_rejected")
NOT_RUNS = ("rolled_back", "rollback_proposed", "deployed", "deploy_failed", "deploy_refused", "dry_run")
RUN_COLUMNS = [
    "run_id", "horizon", "at", "triggered", "triggered_by", "trigger_reasons", "forced",
    "drift_detected", "drift_onset", "status", "verdict", "override", "pull_request", "merged_by",
    "merged_at", "search_seconds", "configs_evaluated", "rmse_before", "rmse_after",
    "rmse_improvement_pct", "realized_before", "realized_after", "source",
]  # fmt: skip

TEXT_COLUMNS = (
    "run_id", "horizon", "triggered_by", "trigger_reasons", "status", "verdict", "override", "pull_request",
    "merged_by", "source",
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    comparator: str  # ">=" or "<="
    threshold: float
    text: str

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold if self.comparator == ">=" else value <= self.threshold


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: float | None
    n: int
    unit: str  # "%", "days" or "hours"
    target: Target
    detail: str

    @property
    def met(self) -> bool | None:
        return self.target.met(self.value)

    @property
    def display(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "%":
            return f"{self.value:.1f}%"
        return f"{self.value:.1f} {self.unit}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "value": self.value, "n": self.n, "unit": self.unit,
            "target": self.target.text, "met": self.met, "detail": self.detail,
        }  # fmt: skip


TARGETS: dict[str, Target] = {
    "automation_rate": Target(">=", 80.0, ">= 80%"),
    "validation_success_rate": Target(">=", 60.0, ">= 60%"),
    "rmse_improvement": Target(">=", 5.0, "5-10%"),
    "zero_downtime_rate": Target(">=", 100.0, "100%"),
    "false_positive_rate": Target("<=", 10.0, "<= 10%"),
    "drift_detection_latency": Target("<=", 7.0, "<= 7 days"),
    "time_to_remediation": Target("<=", 24.0, "<= 24 hours"),
}


# --- the run table ------------------------------------------------------------------------------


def _isnull(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _text(value: Any) -> str | None:
    return None if _isnull(value) else str(value)


def _drift_detected(severity: Any) -> bool:
    return not _isnull(severity) and str(severity).upper() not in ("NONE", "")


def is_drift_trigger(triggered_by: Any) -> bool:
    return not _isnull(triggered_by) and "drift" in str(triggered_by).lower()


def _from_metrics(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in metrics[metrics["event"] == "run"].to_dict("records"):
        if r["status"] in NOT_RUNS:  # a preview is recorded for the audit trail, never counted
            continue
        rows.append({
            "run_id": r["run_id"], "horizon": r["horizon"], "at": r["recorded_at"],
            "triggered": bool(r["triggered"]), "triggered_by": _text(r["triggered_by"]) or "",
            "trigger_reasons": _text(r["trigger_reasons"]) or "[]", "forced": bool(r["forced"]),
            "drift_detected": bool(r["drift_detected"]), "drift_onset": r["drift_onset"],
            "status": r["status"], "verdict": _text(r["validation_result"]),
            "override": _text(r["override_reason"]), "pull_request": _text(r["pull_request"]),
            "merged_by": _text(r["merged_by"]), "merged_at": r["merged_at"],
            "search_seconds": r["search_seconds"], "configs_evaluated": r["configs_evaluated"],
            "rmse_before": r["rmse_before"], "rmse_after": r["rmse_after"],
            "rmse_improvement_pct": r["rmse_improvement_pct"],
            "realized_before": r["realized_rmse_before"], "realized_after": r["realized_rmse_after"],
            "source": "metrics",
        })  # fmt: skip
    return rows


def _from_history(history: pd.DataFrame, seen: set[tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for r in history.to_dict("records"):
        if (str(r["run_id"]), str(r["horizon"])) in seen:
            continue
        if r["triggered_by"] in ("rollback", "deploy") or r["status"] in NOT_RUNS:
            continue
        merged = r["status"] == "merged"  # the pipeline's own automerge: merged by the bot, in the run
        rows.append({
            "run_id": r["run_id"], "horizon": r["horizon"], "at": r["optimization_date"],
            "triggered": r["status"] != "failed", "triggered_by": _text(r["triggered_by"]) or "",
            "trigger_reasons": "[]", "forced": bool(r["forced"]),
            "drift_detected": _drift_detected(r["drift_severity"]), "drift_onset": None,
            "status": r["status"], "verdict": _text(r["verdict"]), "override": _text(r["override_reason"]),
            "pull_request": _text(r["pull_request"]), "merged_by": "bot" if merged else None,
            "merged_at": r["optimization_date"] if merged else None, "search_seconds": None,
            "configs_evaluated": None, "rmse_before": None, "rmse_after": None,
            "rmse_improvement_pct": None, "realized_before": None, "realized_after": None,
            "source": "history",
        })  # fmt: skip
    return rows


def run_table(history: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, horizon), oldest first, with later merges attached to their pull request."""
    rows = _from_metrics(metrics) if not metrics.empty else []
    seen = {(str(r["run_id"]), str(r["horizon"])) for r in rows}
    if not history.empty:
        rows += _from_history(history, seen)
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for col in ("at", "merged_at", "drift_onset"):
        table[col] = pd.to_datetime(table[col], utc=True)
    for col in ("rmse_before", "rmse_after", "rmse_improvement_pct", "realized_before", "realized_after",
                "search_seconds", "configs_evaluated"):  # fmt: skip
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("float64")
    for col in ("triggered", "forced", "drift_detected"):
        table[col] = table[col].astype(bool)
    for col in TEXT_COLUMNS:  # missing text is None (not NaN), so `if row[col]` means "present"
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    table = table.sort_values("at", kind="stable", ignore_index=True)
    return _attach_merges(table, metrics)


def _attach_merges(table: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """A `merge` event marks the latest earlier run that proposed that pull request as merged."""
    if metrics.empty or table.empty:
        return table
    merges = metrics[(metrics["event"] == "merge") & metrics["pull_request"].notna()]
    for m in merges.to_dict("records"):
        when = pd.Timestamp(m["merged_at"] if not _isnull(m["merged_at"]) else m["recorded_at"])
        same = table[
            (table["horizon"] == m["horizon"])
            & (table["pull_request"] == str(m["pull_request"]))
            & (table["at"] <= when)
        ]
        if same.empty or same["merged_at"].notna().any():
            continue
        idx = same.index[-1]
        table.loc[idx, "merged_at"] = when
        table.loc[idx, "merged_by"] = _text(m["merged_by"]) or "person"
    return table


def merged_pulls(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per merged tune pull request: its last run (the merged content) and first run."""
    merged = runs[runs["merged_at"].notna()]
    out = []
    for _, last in merged.iterrows():
        same = runs[
            (runs["horizon"] == last["horizon"])
            & (runs["pull_request"] == last["pull_request"])
            & (runs["at"] <= last["at"])
        ] if last["pull_request"] is not None else merged.loc[[last.name]]  # fmt: skip
        first_at = same["at"].min() if not same.empty else last["at"]
        out.append({**last.to_dict(), "first_at": first_at})
    frame = pd.DataFrame(out, columns=[*RUN_COLUMNS, "first_at"])
    frame["first_at"] = pd.to_datetime(frame["first_at"], utc=True)
    return frame


# --- the KPIs -----------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole * 100.0


def _kpi(key: str, label: str, value: float | None, n: int, unit: str, detail: str) -> Kpi:
    # Rounded so that 5 % computed as 4.999999999999999 still meets a ">= 5 %" target.
    return Kpi(key, label, None if value is None else round(value, 9), n, unit, TARGETS[key], detail)


def automation_rate(runs: pd.DataFrame) -> Kpi:
    merged = merged_pulls(runs)
    auto = merged[(merged["merged_by"] == "bot") & merged["override"].isna()
                  & (merged["verdict"] != "approved_override")]  # fmt: skip
    people = int((merged["merged_by"] != "bot").sum())
    overrides = len(merged) - len(auto) - people
    return _kpi(
        "automation_rate", "Automation rate", _pct(len(auto), len(merged)), len(merged), "%",
        f"{len(auto)} of {len(merged)} merged optimizations needed no one; "
        f"{people} merged by a person, {overrides} approved by override",
    )  # fmt: skip


def validation_success_rate(runs: pd.DataFrame) -> Kpi:
    judged = runs[runs["verdict"].isin(JUDGED)]
    ok = int(judged["verdict"].isin(APPROVED).sum())
    return _kpi(
        "validation_success_rate", "Validation success", _pct(ok, len(judged)), len(judged), "%",
        f"{ok} of {len(judged)} gate verdicts approved the candidate",
    )  # fmt: skip


def improvement_pct(row: pd.Series | dict[str, Any]) -> tuple[float | None, str]:
    """RMSE reduction in % of the old RMSE: realized when both sides are known, else backtest."""
    rb, ra = row["realized_before"], row["realized_after"]
    if not _isnull(rb) and not _isnull(ra) and float(rb) > 0:
        return (float(rb) - float(ra)) / float(rb) * 100.0, "realized"
    b, a = row["rmse_before"], row["rmse_after"]
    if not _isnull(b) and not _isnull(a) and float(b) > 0:
        return (float(b) - float(a)) / float(b) * 100.0, "backtest"
    if not _isnull(row["rmse_improvement_pct"]):
        return float(row["rmse_improvement_pct"]), "backtest"
    return None, ""


def rmse_improvement(runs: pd.DataFrame) -> Kpi:
    merged = merged_pulls(runs)
    values: list[float] = []
    realized = 0
    for _, row in merged.iterrows():
        value, source = improvement_pct(row)
        if value is not None:
            values.append(value)
            realized += source == "realized"
    mean = sum(values) / len(values) if values else None
    return _kpi(
        "rmse_improvement", "RMSE improvement", mean, len(values), "%",
        f"mean over {len(values)} merged optimizations ({realized} realized, "
        f"{len(values) - realized} backtest)",
    )  # fmt: skip


def zero_downtime_rate(metrics: pd.DataFrame) -> Kpi:
    deploys = metrics[metrics["event"] == "deploy"] if not metrics.empty else metrics
    known = deploys[deploys["downtime"].notna()] if not deploys.empty else deploys
    clean = int((~known["downtime"].astype(bool)).sum()) if not known.empty else 0
    failed = int((known["status"] != "deployed").sum()) if not known.empty else 0
    return _kpi(
        "zero_downtime_rate", "Zero-downtime deployments", _pct(clean, len(known)), len(known), "%",
        f"{clean} of {len(known)} deployments kept serving ({failed} did not end deployed)",
    )  # fmt: skip


def false_positive_rate(runs: pd.DataFrame) -> Kpi:
    fired = runs[runs["triggered"] & ~runs["forced"] & ~runs["status"].isin(("failed", "skipped"))]
    nothing = fired[(fired["status"] == "no_change") | fired["verdict"].isin(REJECTED)]
    watch = fired["triggered_by"].astype(str).str.contains("watch")
    by_watch = f"; daily watch: {int(watch[nothing.index].sum())} of {int(watch.sum())}" if watch.any() else ""
    return _kpi(
        "false_positive_rate", "False-positive triggers", _pct(len(nothing), len(fired)), len(fired), "%",
        f"{len(nothing)} of {len(fired)} triggered optimizations found nothing better{by_watch}",
    )  # fmt: skip


def drift_episodes(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Drift episodes per horizon: onset marker, first drift-triggered run, latency in days."""
    episodes = []
    for horizon, checks in runs.groupby("horizon", sort=True):
        last_clean: pd.Timestamp | None = None
        episode: dict[str, Any] | None = None
        for _, row in checks.sort_values("at", kind="stable").iterrows():
            if not row["drift_detected"]:
                last_clean, episode = row["at"], None
                continue
            if episode is None:
                onset = row["drift_onset"] if not _isnull(row["drift_onset"]) else last_clean
                episode = {"horizon": horizon, "onset": onset, "detected": row["at"], "run": None}
                if onset is not None:
                    episodes.append(episode)
            if episode["onset"] is None or episode["run"] is not None:
                continue
            if row["triggered"] and is_drift_trigger(row["triggered_by"]):
                episode["run"] = row["at"]
                episode["latency_days"] = (row["at"] - episode["onset"]) / pd.Timedelta(days=1)
    return [e for e in episodes if e["run"] is not None]


def drift_detection_latency(runs: pd.DataFrame) -> Kpi:
    episodes = drift_episodes(runs)
    days = [float(e["latency_days"]) for e in episodes]
    mean = sum(days) / len(days) if days else None
    return _kpi(
        "drift_detection_latency", "Drift detection latency", mean, len(days), "days",
        f"mean over {len(days)} drift episodes (onset = detector's date or the last drift-free run)",
    )  # fmt: skip


def time_to_remediation(runs: pd.DataFrame) -> Kpi:
    merged = merged_pulls(runs)
    hours = [(row["merged_at"] - row["first_at"]) / pd.Timedelta(hours=1) for _, row in merged.iterrows()]
    mean = sum(hours) / len(hours) if hours else None
    return _kpi(
        "time_to_remediation", "Time to remediation", mean, len(hours), "hours",
        f"mean over {len(hours)} merged optimizations, from the triggering run to the merge",
    )  # fmt: skip


def compute_kpis(history: pd.DataFrame, metrics: pd.DataFrame) -> tuple[Kpi, ...]:
    runs = run_table(history, metrics)
    return (
        automation_rate(runs),
        validation_success_rate(runs),
        rmse_improvement(runs),
        zero_downtime_rate(metrics),
        false_positive_rate(runs),
        drift_detection_latency(runs),
        time_to_remediation(runs),
    )


# --- series for the dashboard -------------------------------------------------------------------


def rolling_validation_rate(runs: pd.DataFrame, *, days: int = 30) -> pd.DataFrame:
    """At each day with a gate verdict: % approved among verdicts in the `days` days up to it."""
    judged = runs[runs["verdict"].isin(JUDGED)][["at", "verdict"]].sort_values("at")
    if judged.empty:
        return pd.DataFrame({"day": pd.Series(dtype="datetime64[ns, UTC]"), "rate": [], "n": []})
    out = []
    for day in sorted({t.normalize() for t in judged["at"]}):
        end = day + pd.Timedelta(days=1)
        window = judged[(judged["at"] >= end - pd.Timedelta(days=days)) & (judged["at"] < end)]
        ok = int(window["verdict"].isin(APPROVED).sum())
        out.append({"day": day, "rate": ok / len(window) * 100.0, "n": len(window)})
    return pd.DataFrame(out)


TRIGGER_KINDS = ("performance", "drift", "watch", "time", "manual")


def trigger_kinds(triggered_by: Any, forced: bool) -> list[str]:
    """Which kinds of trigger a run's `triggered_by` text names (a run can have several)."""
    text = "" if _isnull(triggered_by) else str(triggered_by).lower()
    kinds = [k for k, words in (("performance", ("perf", "rmse", "degrad")), ("drift", ("drift",)),
                                ("watch", ("watch",)), ("time", ("time", "days", "stale", "schedule")))
             if any(w in text for w in words)]  # fmt: skip
    if forced or "forc" in text or "manual" in text:
        kinds.append("manual")
    return kinds


def trigger_reasons(raw: Any) -> list[str]:
    if _isnull(raw):
        return []
    try:
        value = json.loads(str(raw))
    except ValueError:
        return [str(raw)]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
