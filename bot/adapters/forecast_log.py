"""The production forecast log (data/forecasts.parquet) and the realized errors it yields.

One row per forecast step: issue_date, horizon, config_hash, target_date, point, lo95, hi95, model_id,
created_at. The production forecaster appends a horizon's whole path per issue; appends are atomic
and locked (bot.adapters.store.append_rows), so concurrent writers never lose rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bot.adapters.store import append_rows, read_table
from bot.core.config import HORIZONS
from bot.errors import DataError

FORECAST_COLUMNS = [
    "issue_date",
    "horizon",
    "config_hash",
    "target_date",
    "point",
    "lo95",
    "hi95",
    "model_id",
    "created_at",
]
_DATE_COLUMNS = ("issue_date", "target_date")
_FLOAT_COLUMNS = ("point", "lo95", "hi95")
_TEXT_COLUMNS = ("horizon", "config_hash", "model_id")
ERROR_COLUMNS = ["target_date", "error", "step", "issue_date", "config_hash"]


def empty_forecast_log() -> pd.DataFrame:
    return _coerce(pd.DataFrame({c: [] for c in FORECAST_COLUMNS}), "forecast log")


def append_forecasts(path: Path, frame: pd.DataFrame) -> None:
    """Validate `frame` against the schema and append it to the log at `path`."""
    rows = _coerce(frame, "forecasts to append")
    unknown = sorted(set(rows["horizon"]) - set(HORIZONS))
    if unknown:
        raise DataError(
            f"forecasts to append: unknown horizon {unknown[0]!r} (use one of {', '.join(HORIZONS)})"
        )
    append_rows(path, rows, columns=FORECAST_COLUMNS)


def read_forecast_log(path: Path) -> pd.DataFrame:
    """The whole log with its dtypes; a missing file is an empty log, a wrong schema a DataError."""
    if not path.exists():
        return empty_forecast_log()
    return _coerce(read_table(path, columns=FORECAST_COLUMNS), str(path))


def _coerce(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in FORECAST_COLUMNS if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} (found: {found}; wrong schema?)")
    out = frame[FORECAST_COLUMNS].copy()
    for col in _DATE_COLUMNS:
        parsed = pd.to_datetime(out[col], errors="coerce")
        if parsed.dt.tz is not None:
            parsed = parsed.dt.tz_localize(None)
        _no_bad(parsed.isna() & out[col].notna(), out[col], source, col, "a date")
        out[col] = parsed.dt.normalize().astype("datetime64[ns]")
    created = pd.to_datetime(out["created_at"], errors="coerce", utc=True)
    _no_bad(
        created.isna() & out["created_at"].notna(), out["created_at"], source, "created_at", "a timestamp"
    )
    out["created_at"] = created
    for col in _FLOAT_COLUMNS:
        values = pd.to_numeric(out[col], errors="coerce")
        _no_bad(values.isna() & out[col].notna(), out[col], source, col, "a number")
        out[col] = values.astype(np.float64)
    for col in _TEXT_COLUMNS:
        out[col] = out[col].astype("string").astype(object)
    return out.reset_index(drop=True)


def _no_bad(bad: pd.Series, raw: pd.Series, source: str, col: str, expected: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: row {i}: {col} = {raw.iloc[i]!r} is not {expected}")


def realized_errors(
    log: pd.DataFrame,
    series: pd.DataFrame,
    horizon: str,
    known_hashes: set[str] | None,
    *,
    warnings: list[str] | None = None,
) -> pd.DataFrame:
    """Join `horizon`'s logged forecasts to the actuals: one row per (forecast, target) with an actual.

    Columns: target_date, error (point - actual, CLP), step (1 = the issue's first target),
    issue_date, config_hash. `series` is a validated `date,value` frame (pass the rows known as of
    the check date). A forecast logged twice for the same issue, config and target keeps its latest
    `created_at`. With `known_hashes`, rows of other config hashes are left out and reported: one
    line per cause is appended to `warnings` when given (nothing is raised).
    """
    notes: list[str] = []
    rows = log.loc[log["horizon"] == horizon] if not log.empty else log
    if rows.empty:
        return _empty_errors()
    rows = rows.sort_values("created_at", kind="stable").drop_duplicates(
        ["issue_date", "config_hash", "target_date"], keep="last"
    )
    if known_hashes is not None:
        unknown = ~rows["config_hash"].isin(known_hashes)
        if unknown.any():
            hashes = sorted(rows.loc[unknown, "config_hash"].astype(str).unique())
            shown = ", ".join(hashes[:5]) + (f" and {len(hashes) - 5} more" if len(hashes) > 5 else "")
            notes.append(
                f"forecast log: {int(unknown.sum())} {horizon} forecast rows from unknown config hash(es) "
                f"{shown} left out"
            )
            rows = rows.loc[~unknown]
    if warnings is not None:
        warnings.extend(notes)
        notes = []
    if rows.empty:
        return _empty_errors()
    rows = rows.sort_values(["issue_date", "config_hash", "target_date"], ignore_index=True)
    steps = rows.groupby(["issue_date", "config_hash"]).cumcount() + 1
    actuals = pd.Series(
        series["value"].to_numpy(dtype=np.float64), index=pd.to_datetime(series["date"]).dt.normalize()
    )
    actual = rows["target_date"].map(actuals)
    last_known = actuals.index.max() if len(actuals) else pd.Timestamp.min
    unmatched = actual.isna() & (rows["target_date"] <= last_known)
    if unmatched.any():
        notes.append(
            f"forecast log: {int(unmatched.sum())} {horizon} forecast rows whose target date has no observation "
            "(not a banking day?) left out"
        )
    have = actual.notna() & np.isfinite(rows["point"].to_numpy())
    out = pd.DataFrame(
        {
            "target_date": rows.loc[have, "target_date"],
            "error": (rows.loc[have, "point"] - actual[have]).astype(np.float64),
            "step": steps[have].astype(np.int64),
            "issue_date": rows.loc[have, "issue_date"],
            "config_hash": rows.loc[have, "config_hash"],
        }
    ).reset_index(drop=True)
    if warnings is not None:
        warnings.extend(notes)
    return out


def _empty_errors() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "target_date": pd.Series(dtype="datetime64[ns]"),
            "error": pd.Series(dtype=np.float64),
            "step": pd.Series(dtype=np.int64),
            "issue_date": pd.Series(dtype="datetime64[ns]"),
            "config_hash": pd.Series(dtype=object),
        }
    )
