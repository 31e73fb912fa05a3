"""Walk-forward origins with no look-ahead, split into a tuning set and a later validation set.

An origin is the index of the first forecast target. The context is everything strictly before it
(the model reads the last `context_length` of it); the targets are the next `prediction_length`
observations. Origins are spaced `step` observations apart, newest last; the newest
`n_validation` are the validation set (used only by the gate), the `n_tuning` before them the
tuning set (used to pick the winner). Step >= prediction_length keeps target windows disjoint,
so per-origin losses are not mechanically correlated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bot.errors import DataError


@dataclass(frozen=True)
class OriginPlan:
    tuning: tuple[int, ...]
    validation: tuple[int, ...]
    step: int
    prediction_length: int

    @property
    def all(self) -> tuple[int, ...]:
        return self.tuning + self.validation


def origin_step(prediction_length: int, min_step: int) -> int:
    return max(prediction_length, min_step)


def required_observations(max_context: int, prediction_length: int, n_origins: int, step: int) -> int:
    return max_context + (n_origins - 1) * step + prediction_length


def walk_forward_origins(
    n_obs: int,
    *,
    prediction_length: int,
    max_context: int,
    n_tuning: int,
    n_validation: int,
    step: int,
    horizon: str = "",
) -> OriginPlan:
    n = n_tuning + n_validation
    need = required_observations(max_context, prediction_length, n, step)
    if n_obs < need:
        raise DataError(
            f"horizon {horizon or '?'}: needs {need} observations ({max_context} context + {n - 1}×{step} "
            f"between {n} origins + {prediction_length} ahead), the series has {n_obs}; reduce "
            "search.tuning_origins / search.validation_origins or the largest context_length"
        )
    # Origins sit on a fixed grid (multiples of `step` from the first observation), so new data adds
    # new origins instead of shifting the old ones: next week's run reuses the backtest cache.
    # With barely enough data the grid may not fit; then the newest possible origin anchors instead.
    latest = n_obs - prediction_length
    snapped = latest - latest % step
    last = snapped if snapped - (n - 1) * step >= max_context else latest
    origins = [last - i * step for i in range(n)][::-1]
    return OriginPlan(tuple(origins[:n_tuning]), tuple(origins[n_tuning:]), step, prediction_length)


def context_window(values: np.ndarray, origin: int, context_length: int) -> np.ndarray:
    """The last `context_length` observations strictly before `origin`."""
    if origin <= 0:
        raise ValueError("origin must leave at least one observation of context")
    return values[max(0, origin - context_length) : origin]


def target_window(values: np.ndarray, origin: int, prediction_length: int) -> np.ndarray:
    return values[origin : origin + prediction_length]


def origin_dates(dates: pd.Series, origins: tuple[int, ...]) -> list[pd.Timestamp]:
    return [pd.Timestamp(dates.iloc[i]) for i in origins]
