"""Series checks for `date,value` data. Pure: frames in, a validated frame and warnings out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from bot.errors import DataError


@dataclass(frozen=True)
class SeriesReport:
    rows: int
    first: date
    last: date
    warnings: tuple[str, ...] = field(default_factory=tuple)


MAX_VALUE = 1e12


def validate_series(
    raw: pd.DataFrame, *, source: str, max_gap_days: int
) -> tuple[pd.DataFrame, SeriesReport]:
    """Check a raw `date,value` frame and return it as (datetime64 'date', float 'value'), sorted.

    Raises DataError with one line naming `source` and the first problem.
    """
    cols = {str(c).strip().lower(): c for c in raw.columns}
    missing = [c for c in ("date", "value") if c not in cols]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "none"
        raise DataError(f"{source}: missing column {missing[0]!r} (found: {found}; expected 'date,value')")
    frame = pd.DataFrame({"date": raw[cols["date"]], "value": raw[cols["value"]]})
    if frame.empty:
        raise DataError(f"{source}: no rows (expected a 'date,value' header and at least one row)")

    dates = pd.to_datetime(frame["date"].astype(str).str.strip(), errors="coerce", format="mixed")
    bad = dates.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: row {i + 2}: unparsable date {frame['date'].iloc[i]!r} (use YYYY-MM-DD)")
    values = pd.to_numeric(frame["value"], errors="coerce")
    for i, (raw_v, v) in enumerate(zip(frame["value"], values, strict=True)):
        if v is None or not math.isfinite(float(v)):
            raise DataError(f"{source}: row {i + 2}: value {raw_v!r} is not a finite number")
        if v <= 0:
            raise DataError(f"{source}: row {i + 2}: value {v} is not positive (an exchange rate is > 0)")
        if v > MAX_VALUE:  # beyond this, squared errors and float32 model inputs overflow
            raise DataError(f"{source}: row {i + 2}: value {raw_v!r} is implausibly large (over {MAX_VALUE:g})")
    out = pd.DataFrame({"date": dates.dt.normalize().astype("datetime64[ns]"), "value": values.astype(float)})

    dup = out["date"].duplicated(keep=False)
    if dup.any():
        first = out.loc[dup, "date"].iloc[0].date()
        raise DataError(f"{source}: duplicate date {first} ({int(dup.sum())} rows share a date; keep one)")

    warnings: list[str] = []
    if not out["date"].is_monotonic_increasing:
        warnings.append(f"{source}: dates were not sorted; sorted them")
        out = out.sort_values("date", ignore_index=True)
    gaps = out["date"].diff().dt.days
    long_gaps = out.loc[gaps > max_gap_days]
    for idx in long_gaps.index[:5]:
        prev = out["date"].iloc[idx - 1].date()
        warnings.append(f"{source}: gap of {int(gaps[idx])} days after {prev} (longer than {max_gap_days})")
    if len(long_gaps) > 5:
        warnings.append(f"{source}: ... and {len(long_gaps) - 5} more gaps longer than {max_gap_days} days")
    report = SeriesReport(
        rows=len(out),
        first=out["date"].iloc[0].date(),
        last=out["date"].iloc[-1].date(),
        warnings=tuple(warnings),
    )
    return out, report


# A value dated D is known at the end of day D - KNOWN_DAYS_BEFORE. USD/CLP's observado dated D is
# fixed from trades of D-1 and published on the evening of D-1, hence 1; a series published on its
# own date is 0, one published the day after is -1.
USDCLP_KNOWN_DAYS_BEFORE = 1


def known_as_of(
    series: pd.DataFrame, as_of: date, known_days_before: int = USDCLP_KNOWN_DAYS_BEFORE
) -> pd.DataFrame:
    """Rows known at the end of day `as_of`: those dated on or before as_of + `known_days_before` days.

    The default is the USD/CLP rule (the value dated as_of + 1 day is already known); pass the
    series' own rule (`data.known_days_before`, `check --known-days-before`) for other series.
    """
    cutoff = pd.Timestamp(as_of + timedelta(days=known_days_before))
    return series.loc[series["date"] <= cutoff].reset_index(drop=True)


def fingerprint(values: np.ndarray) -> str:
    """A short content hash of a float array (bit-exact)."""
    import hashlib

    arr = np.ascontiguousarray(values, dtype=np.float64)
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]
