"""The performance trigger: recent forecast errors against a baseline (>= 15% worse AND a one-sided batch-means test)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from bot.core.params import TriggerSettings

SOURCES = ("forecast_log", "backtest", "none")


@dataclass(frozen=True)
class PerformanceCheck:
    fired: bool
    degradation_pct: float | None
    p_value: float | None
    source: str  # "forecast_log" | "backtest" | "none"
    recent_rmse: float | None
    baseline_rmse: float | None
    n_recent: int
    n_baseline: int
    reason: str | None


def performance_check(
    errors: pd.DataFrame,
    as_of: date,
    settings: TriggerSettings,
    source: str,
    *,
    max_step: int | None = None,
) -> PerformanceCheck:
    """Compare realized errors (forecast - actual) of recent target dates with a baseline before them.

    Windows by target date: recent = (as_of - performance_recent_days, as_of], baseline = the
    `performance_baseline_days` before that. Target dates after `as_of` and non-finite errors are
    ignored. degradation_pct = (RMSE recent / RMSE baseline - 1) x 100.

    Fires when degradation_pct >= `performance_degradation_pct` AND a one-sided test at
    `performance_alpha` says the rise is unlikely to be noise. The test: per target date, the mean
    of log squared errors (squared errors floored at 1e-4 x the pooled MSE, so an exact hit is not
    -inf); the recent mean minus the baseline mean, over a standard error from batch means, against
    a Student t. Why this test:
    - log squared errors make it a scale test whose level holds for fat-tailed errors (squared
      Student-t(4) errors have infinite variance; a test on the MSE ratio fired 6.5% at 5% there);
    - forecasts k steps ahead share return shocks with every forecast whose target is within k
      observations, so errors of nearby target dates are dependent, and a test that treats them as
      independent fires several times too often. Baseline dates are cut into batches of
      b = max(ceil(1.5 x max_step), recent dates) consecutive dates (b = 1 for one-step errors);
      the spread of batch means gives the variance of a mean of n dates (x b / n), with
      (number of batches - 1) degrees of freedom. `max_step` is the longest lead in the errors:
      the argument if given, else the `step` column's maximum if present, else 1 (independent).
    The test needs >= 3 baseline batches and >= ceil(1.5 x max_step) recent target dates, otherwise
    it does not fire and says why. With the defaults, 14 recent days hold ~10 banking days: enough
    for 5-step forecasts (7d), not for 10 steps or more -- long horizons rely on drift and the time
    fallback unless `performance_recent_days` grows.
    Calibration (benchmarks/trigger_calibration.py) measures the false-alarm rate on stationary
    errors: independent normal and Student-t, and overlapping random-walk forecast paths.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    recent_days, base_days = settings.performance_recent_days, settings.performance_baseline_days
    frame = _clean_errors(errors, as_of)
    if frame.empty:
        return _unassessed(source, f"Performance not assessed: no realized errors ({source})")
    end = pd.Timestamp(as_of)
    split = end - pd.Timedelta(days=recent_days)
    start = split - pd.Timedelta(days=base_days)
    dates = frame["target_date"]
    recent = frame.loc[(dates > split) & (dates <= end)]
    base = frame.loc[(dates > start) & (dates <= split)]
    n_r, n_b = len(recent), len(base)
    rmse_r = _rmse(recent["error"]) if n_r else None
    rmse_b = _rmse(base["error"]) if n_b else None
    if rmse_r is None or rmse_b is None:
        missing = "recent" if rmse_r is None else "baseline"
        why = f"Performance not assessed: no realized errors in the {missing} window ({source})"
        return _unassessed(source, why, rmse_r, rmse_b, n_r, n_b)
    if rmse_b == 0.0:
        return _unassessed(source, "Performance not assessed: baseline RMSE is 0", rmse_r, rmse_b, n_r, n_b)
    degradation = (rmse_r / rmse_b - 1.0) * 100.0
    steps = _max_step(frame, max_step)
    floor = 1e-4 * float(np.mean(np.square(np.concatenate([recent["error"], base["error"]]))))
    p_value, why = _batch_means_test(_daily_log_sq(base, floor), _daily_log_sq(recent, floor), steps)
    threshold, alpha = settings.performance_degradation_pct, settings.performance_alpha
    rmse_text = f"RMSE {degradation:+.1f}% ({rmse_r:.3g} vs {rmse_b:.3g}, {source})"
    if p_value is None:
        fired, reason = False, f"Performance not tested: {rmse_text}; {why}"
    elif degradation >= threshold and p_value < alpha:
        fired, reason = True, f"Performance degradation: RMSE {degradation:+.1f}% ({p_text(p_value)})"
    elif degradation >= threshold:
        fired, reason = (
            False,
            f"No performance trigger: {rmse_text}, but {p_text(p_value)} >= {alpha:g} (could be noise)",
        )
    else:
        fired, reason = False, f"No performance trigger: {rmse_text} < +{threshold:g}%"
    return PerformanceCheck(fired, degradation, p_value, source, rmse_r, rmse_b, n_r, n_b, reason)


def _unassessed(
    source: str,
    reason: str,
    recent_rmse: float | None = None,
    baseline_rmse: float | None = None,
    n_recent: int = 0,
    n_baseline: int = 0,
) -> PerformanceCheck:
    return PerformanceCheck(
        False, None, None, source, recent_rmse, baseline_rmse, n_recent, n_baseline, reason
    )


def _clean_errors(errors: pd.DataFrame, as_of: date) -> pd.DataFrame:
    if errors.empty or not {"target_date", "error"} <= set(errors.columns):
        return pd.DataFrame(
            {"target_date": pd.Series(dtype="datetime64[ns]"), "error": pd.Series(dtype=float)}
        )
    cols = ["target_date", "error"] + (["step"] if "step" in errors.columns else [])
    frame = errors[cols].copy()
    frame["target_date"] = pd.to_datetime(frame["target_date"]).dt.tz_localize(None).dt.normalize()
    frame["error"] = pd.to_numeric(frame["error"], errors="coerce").astype(np.float64)
    ok = np.isfinite(frame["error"].to_numpy()) & frame["target_date"].notna().to_numpy()
    frame = frame.loc[ok & (frame["target_date"] <= pd.Timestamp(as_of)).to_numpy()]
    return frame.sort_values("target_date", ignore_index=True)


def _max_step(frame: pd.DataFrame, max_step: int | None) -> int:
    if max_step is not None:
        return max(1, int(max_step))
    if "step" in frame.columns and frame["step"].notna().any():
        return max(1, int(pd.to_numeric(frame["step"], errors="coerce").max()))
    return 1


def _rmse(err: pd.Series) -> float:
    return float(np.sqrt(np.mean(np.square(err.to_numpy(dtype=np.float64)))))


def _daily_log_sq(frame: pd.DataFrame, floor: float) -> np.ndarray:
    sq = np.maximum(np.square(frame["error"].to_numpy(dtype=np.float64)), floor)
    per_date = pd.Series(np.log(sq)).groupby(frame["target_date"].to_numpy()).mean().sort_index()
    return np.asarray(per_date.to_numpy(dtype=np.float64), dtype=np.float64)


def _batch_means_test(base: np.ndarray, recent: np.ndarray, max_step: int) -> tuple[float | None, str]:
    from scipy import stats  # ~1.5 s to import: only when a test is computed
    n_b, n_r = len(base), len(recent)
    # Batches at least as long as the recent window: scaling a batch variance down to n_r dates is
    # conservative, scaling it up is not (the dependence inflates the variance of longer means more).
    min_batch = 1 if max_step <= 1 else math.ceil(1.5 * max_step)
    batch = max(min_batch, n_r) if max_step > 1 else 1
    if n_r < max(min_batch, 2):
        return None, (
            f"the recent window holds {n_r} target dates, fewer than one batch of {max(min_batch, 2)} "
            f"(errors up to {max_step} steps ahead are dependent; lengthen performance_recent_days)"
        )
    n_batches = n_b // batch
    if n_batches < 3:
        return None, (
            f"too few baseline target dates ({n_b}) for 3 batches of {batch} "
            f"(errors up to {max_step} steps ahead are dependent)"
        )
    means = base[n_b - n_batches * batch :].reshape(n_batches, batch).mean(axis=1)
    var_batch = float(np.var(means, ddof=1))
    se = math.sqrt(var_batch * batch * (1.0 / n_r + 1.0 / n_b))
    diff = float(recent.mean() - base.mean())
    if se == 0.0:
        return (0.0 if diff > 0 else 1.0), ""
    return float(stats.t.sf(diff / se, n_batches - 1)), ""


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"
