"""The per-origin loss the gate's paired noise test compares. Pure numpy/pandas.

Raw squared error lets the common market move dominate: in a turbulent month every config misses
by a lot, and those few origins decide the test. The default loss divides each origin's mean
squared error by the variance of daily changes known at the origin (the sample variance of the
`window` daily changes just before it), so a calm origin and a turbulent one weigh alike. It is
still a squared error of the point forecast, so a gain in it is a (volatility-weighted) RMSE
gain; the seed's five criteria keep using pooled, unweighted scores.

The choice is backed by benchmarks/gate_simulation.py, which runs the same gate on raw squared
error, this loss and CRPS (see docs/statistics.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

VOL_MSE = "vol_mse"
MSE = "mse"
NOISE_LOSSES: dict[str, str] = {
    VOL_MSE: "squared error divided by the variance of daily changes known at the origin",
    MSE: "squared error",
}
DEFAULT_VOL_WINDOW = 60


def origin_volatility(
    values: np.ndarray, origins: Sequence[int], window: int = DEFAULT_VOL_WINDOW
) -> np.ndarray:
    """Standard deviation of the last `window` daily changes strictly before each origin.

    Uses only values[origin - window - 1 : origin] (known when the forecast is made). Fewer than 2
    changes, or a flat stretch (sd 0), give NaN: the noise test then leaves that origin out.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(origins), np.nan)
    for i, origin in enumerate(origins):
        changes = np.diff(x[max(0, origin - window - 1) : origin])
        if len(changes) >= 2:
            sd = float(np.std(changes, ddof=1))
            out[i] = sd if sd > 0 else np.nan
    return out


def per_origin_mse(steps: pd.DataFrame, *, column: str = "point") -> pd.Series:
    """Mean squared error per origin, indexed by origin (sorted)."""
    sq = (steps[column] - steps["actual"]) ** 2
    return sq.groupby(steps["origin"]).mean().sort_index()


def noise_test_losses(steps: pd.DataFrame, loss: str, scale: pd.Series | None = None) -> pd.Series:
    """Per-origin losses for the paired test: `mse`, or `vol_mse` = mse / scale**2.

    `scale` is indexed by origin (the volatility known there); origins without one get NaN and
    are left out of the test.
    """
    mse = per_origin_mse(steps)
    if loss == MSE:
        return mse
    if loss != VOL_MSE:
        raise ValueError(f"unknown noise-test loss {loss!r} (use {', '.join(NOISE_LOSSES)})")
    if scale is None:
        raise ValueError("the vol_mse loss needs the volatility at each origin")
    sd = scale.reindex(mse.index).to_numpy(dtype=np.float64)
    return pd.Series(mse.to_numpy() / sd**2, index=mse.index)
