"""Forecasts in one internal form, and the metrics computed from them. Pure numpy/pandas.

Error convention: error = forecast - actual (positive bias = over-forecast), in CLP.

Intervals: for sample paths (T5) the 95% interval is the empirical 2.5%/97.5% quantile of the draws.
Quantile models do not reach those levels (Bolt stops at 0.1/0.9), so the interval is extrapolated
per side from the median with a normal shape: lower = q50 - (q50 - q10) * z(0.975)/z(0.9), and the
same for the upper side with q90. Chronos-2 (0.01..0.99) interpolates 2.5%/97.5% linearly instead.

CRPS: for samples, the exact empirical CRPS E|X - y| - E|X - X'|/2; for quantiles, twice the mean
pinball loss over the model's levels (the quantile-grid approximation of CRPS, a.k.a. weighted
quantile loss). Both are proper scores in CLP; lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

Z975 = 1.959963984540054
Z90 = 1.2815515655446004


@dataclass(frozen=True)
class Forecast:
    samples: np.ndarray | None = None  # (n_samples, h)
    levels: tuple[float, ...] | None = None
    quantiles: np.ndarray | None = None  # (n_levels, h)

    @classmethod
    def from_samples(cls, samples: np.ndarray) -> Forecast:
        arr = np.asarray(samples, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ValueError(f"samples must be (n_samples, h), got {arr.shape}")
        return cls(samples=arr)

    @classmethod
    def from_quantiles(cls, levels: tuple[float, ...], quantiles: np.ndarray) -> Forecast:
        arr = np.asarray(quantiles, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != len(levels):
            raise ValueError(f"quantiles must be (n_levels={len(levels)}, h), got {arr.shape}")
        if 0.5 not in levels:
            raise ValueError("quantile levels must include the median 0.5")
        if list(levels) != sorted(levels):
            raise ValueError(f"quantile levels must be increasing, got {levels}")
        # Quantile heads can cross (a 0.1 above a 0.9, seen with untrained weights); sorting each
        # step's values is the monotone rearrangement, which never moves a quantile further from
        # the truth in any quantile loss (Chernozhukov, Fernandez-Val & Galichon 2010).
        return cls(levels=tuple(levels), quantiles=np.sort(arr, axis=0))

    @property
    def horizon(self) -> int:
        arr = self.samples if self.samples is not None else self.quantiles
        assert arr is not None
        return int(arr.shape[1])

    def head(self, n: int) -> Forecast:
        """The first n sample paths (draws are independent, so this is a valid n-sample forecast)."""
        if self.samples is None:
            return self
        return Forecast.from_samples(self.samples[:n])

    def median(self) -> np.ndarray:
        if self.samples is not None:
            return np.asarray(np.median(self.samples, axis=0))
        assert self.levels is not None and self.quantiles is not None
        return np.asarray(self.quantiles[self.levels.index(0.5)])

    def interval95(self) -> tuple[np.ndarray, np.ndarray]:
        if self.samples is not None:
            lo, hi = np.quantile(self.samples, [0.025, 0.975], axis=0)
            return np.asarray(lo), np.asarray(hi)
        assert self.levels is not None and self.quantiles is not None
        levels = np.asarray(self.levels)
        if levels.min() <= 0.025 and levels.max() >= 0.975:
            lo = np.array([np.interp(0.025, levels, self.quantiles[:, k]) for k in range(self.horizon)])
            hi = np.array([np.interp(0.975, levels, self.quantiles[:, k]) for k in range(self.horizon)])
            return lo, hi
        med = self.median()
        q_lo = self.quantiles[int(np.argmin(levels))]
        q_hi = self.quantiles[int(np.argmax(levels))]
        z_lo = -_norm_ppf(float(levels.min()))
        z_hi = _norm_ppf(float(levels.max()))
        lo = med - (med - q_lo) * (Z975 / z_lo)
        hi = med + (q_hi - med) * (Z975 / z_hi)
        return lo, hi

    def crps(self, actual: np.ndarray) -> np.ndarray:
        y = np.asarray(actual, dtype=np.float64)
        if self.samples is not None:
            return sample_crps(self.samples, y)
        assert self.levels is not None and self.quantiles is not None
        losses = [pinball(self.quantiles[i], y, q) for i, q in enumerate(self.levels)]
        return np.asarray(2.0 * np.mean(losses, axis=0))


def _norm_ppf(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def pinball(pred: np.ndarray, actual: np.ndarray, q: float) -> np.ndarray:
    diff = actual - pred
    return np.asarray(np.maximum(q * diff, (q - 1.0) * diff))


def sample_crps(samples: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Exact empirical CRPS per step, O(n log n) via sorted samples."""
    x = np.sort(samples, axis=0)  # (n, h)
    n = x.shape[0]
    term1 = np.mean(np.abs(x - actual[None, :]), axis=0)
    # E|X - X'| = 2/n^2 * sum_i (2i - n - 1) x_(i)  (1-based i)
    weights = (2.0 * np.arange(1, n + 1) - n - 1)[:, None]
    term2 = np.sum(weights * x, axis=0) * 2.0 / (n * n)
    return np.asarray(term1 - 0.5 * term2)


STEP_COLUMNS = ["origin", "step", "target_date", "actual", "point", "lo95", "hi95", "crps", "naive"]


def step_rows(
    forecast: Forecast,
    actual: np.ndarray,
    last_value: float,
    origin: pd.Timestamp,
    target_dates: list[pd.Timestamp],
) -> pd.DataFrame:
    """One row per forecast step, the unit every pooled metric is computed from."""
    lo, hi = forecast.interval95()
    return pd.DataFrame(
        {
            "origin": [origin] * len(actual),
            "step": np.arange(1, len(actual) + 1),
            "target_date": target_dates,
            "actual": actual,
            "point": forecast.median(),
            "lo95": lo,
            "hi95": hi,
            "crps": forecast.crps(actual),
            "naive": np.full(len(actual), last_value),
        }
    )


@dataclass(frozen=True)
class Scores:
    """Pooled metrics over all origins and steps of one config."""

    rmse: float
    mape: float
    mae: float
    bias: float
    error_std: float
    coverage95: float
    crps: float
    naive_rmse: float
    skill: float  # 1 - rmse / naive_rmse: > 0 beats the random walk
    inference_seconds: float
    n_origins: int
    n_points: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in vars(self).items()}


def pooled_scores(steps: pd.DataFrame, inference_seconds: float) -> Scores:
    if steps.empty:
        raise ValueError("no forecast steps to score")
    err = steps["point"].to_numpy() - steps["actual"].to_numpy()
    actual = steps["actual"].to_numpy()
    naive_err = steps["naive"].to_numpy() - actual
    rmse = float(np.sqrt(np.mean(err**2)))
    naive_rmse = float(np.sqrt(np.mean(naive_err**2)))
    covered = (steps["lo95"].to_numpy() <= actual) & (actual <= steps["hi95"].to_numpy())
    return Scores(
        rmse=rmse,
        mape=float(np.mean(np.abs(err) / actual) * 100.0),
        mae=float(np.mean(np.abs(err))),
        bias=float(np.mean(err)),
        error_std=float(np.std(err, ddof=1)) if len(err) > 1 else 0.0,
        coverage95=float(np.mean(covered) * 100.0),
        crps=float(np.mean(steps["crps"].to_numpy())),
        naive_rmse=naive_rmse,
        skill=float(1.0 - rmse / naive_rmse) if naive_rmse > 0 else 0.0,
        inference_seconds=float(inference_seconds),
        n_origins=int(steps["origin"].nunique()),
        n_points=len(steps),
    )


def per_origin_loss(steps: pd.DataFrame, *, column: str = "point") -> pd.Series:
    """Mean squared error per origin (the loss series the paired test compares), indexed by origin."""
    sq = (steps[column] - steps["actual"]) ** 2
    return sq.groupby(steps["origin"]).mean().sort_index()
