"""The gate's paired noise test: one-sided Diebold-Mariano on per-origin losses, HAC variance for overlapping targets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NoiseTest:
    """One-sided Diebold-Mariano test of "the candidate's expected loss is lower"."""

    p_value: float  # the chance the gain is noise; 1.0 when the test cannot be computed
    statistic: float | None  # HLN-corrected DM statistic, Student-t with n_origins - 1 df
    n_origins: int  # paired origins used
    lag: int  # Newey-West lag
    mean_gain: float | None  # mean of current loss - candidate loss (> 0: candidate better)
    detail: str
    # RMSE gain (%) this comparison would confirm with 80% probability, at the observed noise
    detectable_rmse_gain_pct: float | None = None


def overlap_lag(prediction_length: int, origin_step: int) -> int:
    """Autocorrelation lags that overlapping forecast windows induce in per-origin losses.

    A window of `prediction_length` steps shares targets with the next ceil(h / step) - 1 windows
    when origins are `origin_step` observations apart; at step >= h the windows are disjoint and
    the lag is 0 (Diebold-Mariano's h-1 for the classic one-origin-per-step layout).
    """
    if prediction_length < 1 or origin_step < 1:
        raise ValueError(
            f"prediction_length ({prediction_length}) and origin_step ({origin_step}) must be >= 1"
        )
    return max(0, math.ceil(prediction_length / origin_step) - 1)


MIN_TEST_ORIGINS = 3  # fewer paired origins than this: no test, the gate says so
DETECTION_POWER = 0.80


def paired_noise_test(
    current_losses: pd.Series, candidate_losses: pd.Series, *, lag: int, alpha: float = 0.05
) -> NoiseTest:
    """Diebold-Mariano on d_t = current_t - candidate_t, H0: E[d] <= 0, H1: E[d] > 0.

    The series are aligned on their index (origin timestamps); origins present in only one, or
    with a non-finite loss in either, are left out. The long-run variance of d is Newey-West
    (Bartlett weights 1 - k/(lag+1), which keep it non-negative), the statistic gets the
    Harvey-Leybourne-Newbold small-sample factor sqrt((T + 1 - 2h + h(h-1)/T) / T) with
    h = lag + 1, and is referred to Student-t with T-1 df. At lag 0 this equals the one-sided
    paired t-test.

    Detectable gain: with the same standard error, a true mean loss gain of
    (t_{1-alpha} + t_{0.80}) x se would be confirmed at level `alpha` 4 times in 5; expressed as
    the RMSE gain it means against the current config's mean loss (per-origin losses are mean
    squared errors), it tells a reviewer how large a gain these origins can tell from noise. HLN derived the factor for DM's rectangular weights; with Bartlett weights it
    is the usual approximation. Fewer than 3 origins, lag >= T - 1 or zero variance give p = 1.0
    with a detail.
    """
    from scipy import stats  # ~1.5 s to import: only when a test is computed
    if lag < 0:
        raise ValueError(f"lag must be >= 0, got {lag}")
    for name, series in (("current_losses", current_losses), ("candidate_losses", candidate_losses)):
        if series.index.has_duplicates:
            raise ValueError(f"{name} has duplicate origins; pass one loss per origin")
    joined = pd.concat(
        [current_losses.rename("current"), candidate_losses.rename("candidate")], axis=1, sort=False
    )
    joined = joined.sort_index()
    both = joined.to_numpy(dtype=np.float64)
    keep = np.isfinite(both).all(axis=1)
    d = both[keep, 0] - both[keep, 1]
    n = len(d)
    left_out = len(joined) - n
    note = f" ({left_out} unpaired or non-finite origins left out)" if left_out else ""
    if n < MIN_TEST_ORIGINS:
        return NoiseTest(1.0, None, n, lag, None, f"only {n} paired origins (need >= 3){note}")
    mean_gain = float(np.mean(d))
    lrv = newey_west_variance(d, lag)
    h = lag + 1
    hln = (n + 1 - 2 * h + h * (h - 1) / n) / n
    scale = mean_gain**2 + float(np.mean((d - mean_gain) ** 2))
    if not lrv > 1e-12 * scale:
        why = "identical losses" if scale == 0 else "zero variance of the loss difference"
        return NoiseTest(1.0, None, n, lag, mean_gain, f"{why} over {n} origins; test undefined{note}")
    if h >= n:  # the HLN factor is <= 0 at h in [n, n+1] and meaningless beyond
        return NoiseTest(1.0, None, n, lag, mean_gain, f"{n} origins are too few for lag {lag}{note}")
    statistic = mean_gain / math.sqrt(lrv / n) * math.sqrt(hln)
    p_value = float(stats.t.sf(statistic, df=n - 1))
    detail = f"Diebold-Mariano (HLN, t{n - 1}) statistic {statistic:.2f} over {n} origins, lag {lag}{note}"
    se = math.sqrt(lrv / n / hln)
    detectable = (stats.t.ppf(1.0 - alpha, n - 1) + stats.t.ppf(DETECTION_POWER, n - 1)) * se
    current_loss = float(np.mean(both[keep, 0]))
    gain_pct = None
    if current_loss > 0:
        gain_pct = 100.0 * (1.0 - math.sqrt(max(0.0, 1.0 - detectable / current_loss)))
    return NoiseTest(p_value, statistic, n, lag, mean_gain, detail, gain_pct)


def newey_west_variance(d: np.ndarray, lag: int) -> float:
    """Long-run variance gamma_0 + 2 sum_k (1 - k/(lag+1)) gamma_k, autocovariances over 1/T."""
    x = np.asarray(d, dtype=np.float64) - float(np.mean(d))
    n = len(x)
    total = float(x @ x) / n
    for k in range(1, min(lag, n - 1) + 1):
        total += 2.0 * (1.0 - k / (lag + 1)) * float(x[k:] @ x[:-k]) / n
    return total


