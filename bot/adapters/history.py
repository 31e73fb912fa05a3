"""Optimization history: one row per horizon per run (data/optimization_history.parquet).

Schema: the seed's fields (horizon, optimization_date, triggered_by, performance_degradation_pct,
drift_severity, days_since_last, success) plus run_id, status, old/new config hashes, verdict,
pull request and notes. Appends are atomic and locked (bot.adapters.store.append_rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from bot.adapters.store import append_rows, read_table


@dataclass(frozen=True)
class HistoryRecord:
    run_id: str
    horizon: str
    optimization_date: datetime
    triggered_by: str
    performance_degradation_pct: float | None
    drift_severity: str
    days_since_last: int | None
    success: bool
    status: str  # triggered | skipped | approved | rejected | merged | proposed | failed | rolled_back | ...
    old_config_hash: str | None = None
    new_config_hash: str | None = None
    verdict: str | None = None
    pull_request: str | None = None
    forced: bool = False
    override_reason: str | None = None
    notes: str | None = None


HISTORY_COLUMNS = [f.name for f in fields(HistoryRecord)]


def record_optimization(path: Path, record: HistoryRecord) -> None:
    row = asdict(record)
    frame = pd.DataFrame([row], columns=HISTORY_COLUMNS)
    frame["optimization_date"] = pd.to_datetime(frame["optimization_date"], utc=True)
    for col in ("performance_degradation_pct",):
        frame[col] = frame[col].astype("float64")
    frame["days_since_last"] = frame["days_since_last"].astype("Int64")
    append_rows(path, frame, columns=HISTORY_COLUMNS)


def read_history(path: Path) -> pd.DataFrame:
    frame = read_table(path, columns=HISTORY_COLUMNS)
    if not frame.empty:
        frame["optimization_date"] = pd.to_datetime(frame["optimization_date"], utc=True)
    return frame


def get_last_optimization_date(path: Path, horizon: str, *, as_of: date | None = None) -> date | None:
    """Date of the last completed optimization (search ran to a verdict) for `horizon`, on or before `as_of`."""
    frame = read_history(path)
    if frame.empty:
        return None
    done = frame[(frame["horizon"] == horizon) & frame["success"].astype(bool)]
    if as_of is not None:
        done = done[done["optimization_date"].dt.date <= as_of]
    if done.empty:
        return None
    last: date = pd.Timestamp(done["optimization_date"].max()).date()
    return last
