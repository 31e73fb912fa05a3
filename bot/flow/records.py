"""Monitoring metrics: one row per event in `data/metrics.parquet` (atomic, locked appends).

Events:
- `run`       one per horizon per run, skipped ones included (what the missed-run watchdog and
              the drift-latency KPI need): triggered or not and why, search time, configs evaluated,
              the gate's verdict and criteria (JSON), what happened to the proposal, backtest RMSE of
              the live config (before) and the candidate (after).
- `merge`     a chronops pull request merged after its run (by the bot or a person).
- `rollback`  a revert of a merged config.
- `deploy`    the deploy job applied (or failed to apply) a config: status and a downtime flag.

`realized_rmse_before/after` stay empty until actuals arrive; `fill_realized_rmse` fills them from
realized forecast errors (the forecast log) around each merge.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

import pandas as pd

from bot.adapters.store import append_rows, file_lock, read_table, write_table

if TYPE_CHECKING:
    from bot.adapters.forges.base import PullRecord
    from bot.flow.outcome import HorizonOutcome
    from bot.workspace import Workspace

EVENTS = ("run", "merge", "rollback", "deploy")


@dataclass(frozen=True)
class MetricsRecord:
    run_id: str
    horizon: str
    recorded_at: datetime
    event: str = "run"  # run | merge | rollback | deploy
    status: str = ""  # the run's outcome status, or the deploy/merge/rollback state
    triggered: bool = False
    triggered_by: str = ""
    trigger_reasons: str = "[]"  # JSON list of the trigger's reasons
    forced: bool = False
    drift_detected: bool = False
    drift_severity: str = "NONE"
    drift_onset: datetime | None = None  # when the detector dates the change, if it does
    search_seconds: float | None = None
    configs_evaluated: int = 0
    validation_result: str | None = None  # the gate's decision
    validation_criteria: str | None = None  # JSON list of criteria (name, value, threshold, passed)
    override_reason: str | None = None
    deployment_result: str | None = None  # merged | proposed | unchanged | not_proposed | deployed | failed
    pull_request: str | None = None
    merged_by: str | None = None  # bot | person
    merged_at: datetime | None = None
    old_config_hash: str | None = None
    new_config_hash: str | None = None
    rmse_before: float | None = None  # backtest RMSE of the live config on the validation origins
    rmse_after: float | None = None  # backtest RMSE of the candidate on the same origins
    rmse_improvement_pct: float | None = None
    realized_rmse_before: float | None = None
    realized_rmse_after: float | None = None
    realized_at: datetime | None = None
    rollback_of: str | None = None  # the pull request a rollback reverts
    downtime: bool | None = None  # deploy events: did the forecaster stop serving?
    error: str | None = None
    peak_rss_mib: float | None = None  # run events: the process's peak resident memory so far (MiB)


METRICS_COLUMNS = [f.name for f in fields(MetricsRecord)]
REQUIRED_COLUMNS = ["run_id", "horizon", "recorded_at", "event"]


def peak_rss_mib() -> float | None:
    """This process's peak resident set size in MiB (Linux reports KiB, macOS bytes); None if unknown."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _kind(hint: Any) -> tuple[type, bool]:
    """The base type of a field annotation and whether it is optional."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def records_frame(records: Sequence[Any], cls: type[Any]) -> pd.DataFrame:
    """A frame of dataclass records with stable dtypes (so appends concat cleanly and round-trip)."""
    names = [f.name for f in fields(cls)]
    frame = pd.DataFrame([asdict(r) for r in records], columns=names)
    for name, hint in get_type_hints(cls).items():
        base, optional = _kind(hint)
        if base is datetime:
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif base is bool:
            frame[name] = frame[name].astype("boolean" if optional else "bool")
        elif base is int:
            frame[name] = frame[name].astype("Int64" if optional else "int64")
        elif base is float:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        else:
            frame[name] = frame[name].astype("object")
    return frame


def append_metrics(path: Path, records: Iterable[MetricsRecord]) -> None:
    rows = list(records)
    if rows:
        # only the key columns are required of the file: one written before a column existed still takes rows
        append_rows(path, records_frame(rows, MetricsRecord), columns=REQUIRED_COLUMNS)


def read_metrics(path: Path) -> pd.DataFrame:
    """All metrics rows; an absent file is an empty frame with the schema's columns."""
    # older files may lack newer columns (added below), never these
    frame = read_table(path, columns=REQUIRED_COLUMNS)
    if frame.empty:
        return records_frame([], MetricsRecord)
    for col in METRICS_COLUMNS:  # files written by an older schema get the new columns empty
        if col not in frame.columns:
            frame[col] = None
    empty = records_frame([], MetricsRecord)
    for col in METRICS_COLUMNS:
        if str(empty[col].dtype).startswith("datetime"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame[METRICS_COLUMNS]


# --- from a pipeline outcome -------------------------------------------------------------------




def _deployment_result(outcome: HorizonOutcome) -> str:
    if outcome.proposal is not None:
        return "merged" if outcome.proposal.merged else "proposed"
    if outcome.status == "failed":
        return "failed"
    if outcome.status == "no_change":
        return "unchanged"
    return "not_proposed"


def metrics_from_outcome(outcome: HorizonOutcome, run_id: str, now: datetime) -> MetricsRecord:
    """The `run` row for one horizon's outcome (skipped outcomes included)."""
    from bot.core.config import config_hash

    d, v, pr = outcome.triggers, outcome.verdict, outcome.proposal
    reasons = list(d.reasons) if d is not None else []
    severity = d.drift_severity if d is not None else "NONE"
    by = "unknown" if d is None else d.triggered_by if d.fire else "none"
    before, after = outcome.validation_rmse()
    improvement = v.rmse_improvement_pct if v is not None else None
    if improvement is None and before and after is not None:
        improvement = (before - after) / before * 100.0
    status = outcome.status
    if pr is not None:
        status = "merged" if pr.merged else "proposed"
    return MetricsRecord(
        run_id=run_id, horizon=outcome.horizon, recorded_at=now, event="run", status=status,
        triggered=bool(d is not None and d.fire), triggered_by=by, trigger_reasons=json.dumps(reasons),
        forced=bool(d is not None and d.forced), drift_detected=bool(d is not None and d.drift_fired),
        drift_severity=severity, search_seconds=outcome.search_seconds if v is not None else None,
        configs_evaluated=len(outcome.ranking), validation_result=v.decision if v is not None else None,
        validation_criteria=json.dumps([c.to_dict() for c in v.criteria]) if v is not None else None,
        override_reason=v.override_reason if v is not None else None,
        deployment_result=_deployment_result(outcome),
        pull_request=str(pr.pull.number) if pr is not None else None,
        merged_by=(pr.pull.merged_by or "bot") if pr is not None and pr.merged else None,
        merged_at=_parse_time(pr.pull.merged_at) if pr is not None and pr.merged else None,
        old_config_hash=config_hash(outcome.current) if outcome.current is not None else None,
        new_config_hash=config_hash(outcome.winner) if outcome.winner is not None else None,
        rmse_before=before, rmse_after=after, rmse_improvement_pct=improvement,
        error=outcome.message[:500] if outcome.status == "failed" else None,
        peak_rss_mib=peak_rss_mib() if v is not None else None,
    )  # fmt: skip


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    stamp = pd.Timestamp(text)
    moment: datetime = (
        stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    ).to_pydatetime()
    return moment


def record_run_metrics(ws: Workspace, outcome: HorizonOutcome, run_id: str, now: datetime) -> None:
    """Append the `run` row for `outcome`. Call it for every outcome, skipped ones included."""
    append_metrics(ws.metrics_path, [metrics_from_outcome(outcome, run_id, now)])


def record_failed_run(ws: Workspace, horizon: str, run_id: str, now: datetime, message: str) -> None:
    append_metrics(
        ws.metrics_path,
        [MetricsRecord(run_id, horizon, now, event="run", status="failed", deployment_result="failed",
                       error=message[:500])],
    )  # fmt: skip


# --- merges, rollbacks, deploys ----------------------------------------------------------------


def merge_record(pull: PullRecord, now: datetime, *, run_id: str = "") -> MetricsRecord:
    """A `merge` row (tune PR) or a `rollback` row (revert PR) for a merged pull request."""
    merged_at = _parse_time(pull.merged_at) or now
    if pull.kind == "revert":
        return MetricsRecord(
            run_id=run_id or f"pull-{pull.number}", horizon=pull.horizon, recorded_at=now, event="rollback",
            status="rolled_back", deployment_result="merged", pull_request=str(pull.number),
            merged_by=pull.merged_by or "person", merged_at=merged_at,
            rollback_of=str(pull.reverts) if pull.reverts is not None else None,
        )  # fmt: skip
    return MetricsRecord(
        run_id=run_id or f"pull-{pull.number}", horizon=pull.horizon, recorded_at=now, event="merge",
        status="merged", deployment_result="merged", pull_request=str(pull.number),
        merged_by=pull.merged_by or "person", merged_at=merged_at,
    )  # fmt: skip


def record_merge(ws: Workspace, pull: PullRecord, now: datetime) -> None:
    """Record a merged pull request (a person merging a proposal, or a rollback being merged)."""
    append_metrics(ws.metrics_path, [merge_record(pull, now)])


def record_deployment(
    ws: Workspace,
    *,
    horizon: str,
    status: str,
    downtime: bool,
    now: datetime,
    config_hash: str | None = None,
    pull_request: str | None = None,
    error: str | None = None,
    run_id: str = "",
) -> None:
    """A `deploy` row: `status` is deployed | failed | rolled_back; `downtime` whether serving stopped."""
    append_metrics(
        ws.metrics_path,
        [MetricsRecord(
            run_id=run_id or f"deploy-{now:%Y%m%dT%H%M%SZ}", horizon=horizon, recorded_at=now, event="deploy",
            status=status, deployment_result=status, downtime=downtime, new_config_hash=config_hash,
            pull_request=pull_request, error=error,
        )],
    )  # fmt: skip


def unrecorded_pulls(metrics: pd.DataFrame, pulls: Iterable[PullRecord], now: datetime) -> pd.DataFrame:
    """Rows for merged pull requests the metrics do not mention yet (pure: nothing is written).

    A proposal a person merges after its run only shows up in the forge's records; the dashboard
    and status add these rows in memory so the KPIs see every merge.
    """
    known = set()
    if not metrics.empty:
        done = metrics[metrics["merged_at"].notna() & metrics["pull_request"].notna()]
        known = {(str(h), str(p)) for h, p in zip(done["horizon"], done["pull_request"], strict=True)}
    rows = [
        merge_record(p, now) for p in pulls if p.state == "merged" and (p.horizon, str(p.number)) not in known
    ]
    return records_frame(rows, MetricsRecord)


def with_pulls(metrics: pd.DataFrame, pulls: Iterable[PullRecord], now: datetime) -> pd.DataFrame:
    extra = unrecorded_pulls(metrics, pulls, now)
    if extra.empty:
        return metrics
    if metrics.empty:
        return extra
    return pd.concat([metrics, extra], ignore_index=True)


# --- realized RMSE -----------------------------------------------------------------------------


def realized_rmse(
    metrics: pd.DataFrame,
    errors: pd.DataFrame,
    *,
    window_days: int = 30,
    min_points: int = 5,
    now: datetime,
) -> pd.DataFrame:
    """Fill `realized_rmse_before/after` of merged runs from realized forecast errors. Pure.

    `errors`: horizon, target_date, error (forecast − actual) and, when known, config_hash (the
    config that made the forecast). Before = errors of the old config in the `window_days` before
    the merge; after = errors of the new config in the `window_days` after it. A row is filled only
    when both sides have `min_points` errors, and only once.
    """
    out = metrics.copy()
    if out.empty or errors.empty:
        return out
    errs = errors.copy()
    errs["target_date"] = pd.to_datetime(errs["target_date"], utc=True)
    window = pd.Timedelta(days=window_days)
    todo = (out["event"] == "run") & out["merged_at"].notna() & out["realized_rmse_after"].isna()
    for idx in out.index[todo]:
        row = out.loc[idx]
        merged = pd.Timestamp(row["merged_at"])
        mine = errs[errs["horizon"] == row["horizon"]]
        before = _slice(mine, row["old_config_hash"], merged - window, merged)
        after = _slice(mine, row["new_config_hash"], merged, merged + window)
        if len(before) < min_points or len(after) < min_points:
            continue
        out.loc[idx, "realized_rmse_before"] = _rmse(before)
        out.loc[idx, "realized_rmse_after"] = _rmse(after)
        out.loc[idx, "realized_at"] = pd.Timestamp(now)
    return out


def _slice(errs: pd.DataFrame, config: Any, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    part = errs[(errs["target_date"] > start) & (errs["target_date"] <= end)]
    if "config_hash" in part.columns and isinstance(config, str):
        part = part[part["config_hash"] == config]
    return part["error"].astype("float64")


def _rmse(errors: pd.Series) -> float:
    return float(math.sqrt(float((errors**2).mean())))


def fill_realized_rmse(
    ws: Workspace, errors: pd.DataFrame, now: datetime, *, window_days: int = 30, min_points: int = 5
) -> int:
    """Rewrite the metrics with realized RMSE filled in (locked, atomic); returns rows filled."""
    path = ws.metrics_path
    with file_lock(path):
        current = read_metrics(path)
        filled = realized_rmse(current, errors, window_days=window_days, min_points=min_points, now=now)
        changed = int(
            filled["realized_rmse_after"].notna().sum() - current["realized_rmse_after"].notna().sum()
        )
        if changed:
            write_table(path, filled)
    return changed


def fill_realized_from_forecast_log(ws: Workspace, series: pd.DataFrame, now: datetime) -> int:
    """`fill_realized_rmse` from the production forecast log (data/forecasts.parquet) and `series`
    (the date,value actuals known now). Returns rows filled; 0 when there is no log yet."""
    from bot.adapters.forecast_log import read_forecast_log, realized_errors
    from bot.core.config import HORIZONS

    if not ws.forecasts_path.exists():
        return 0
    log = read_forecast_log(ws.forecasts_path)
    frames = []
    for h in HORIZONS:
        errors = realized_errors(log, series, h, None)
        if not errors.empty:
            frames.append(errors.assign(horizon=h))
    if not frames:
        return 0
    return fill_realized_rmse(ws, pd.concat(frames, ignore_index=True), now)
