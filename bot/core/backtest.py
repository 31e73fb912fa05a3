"""Walk-forward origins with no look-ahead: over the whole history, split into alternating blocks.

`history_origins` (the default): every origin with enough context for the largest candidate, on a
fixed grid of multiples of `step` (= max(h, min_origin_step)), split into blocks of about
`block_obs` observations that alternate between the tuning set (picks the winner) and the
validation set (used only by the gate), so both sets span the whole history. Step >= h keeps every
target window disjoint from every other, so no tuning target window overlaps a validation one and
per-origin losses are not mechanically correlated. The grid and the block boundaries are fixed
multiples from the first observation: new data adds origins at the end and never moves an old
origin to the other set, so the backtest cache keeps serving them.

`walk_forward_origins` (the older layout, kept for callers that ask for fixed counts):

An origin is the index of the first forecast target. The context is everything strictly before it
(the model reads the last `context_length` of it); the targets are the next `prediction_length`
observations. Origins are spaced `step` observations apart, newest last; the newest
`n_validation` are the validation set (used only by the gate), the `n_tuning` before them the
tuning set (used to pick the winner). Step >= prediction_length keeps target windows disjoint,
so per-origin losses are not mechanically correlated.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    block: int = 0  # origins per alternating block (0: the older newest-last layout)

    @property
    def all(self) -> tuple[int, ...]:
        return tuple(sorted(self.tuning + self.validation))


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


MIN_SET_ORIGINS = 2


def history_origins(
    n_obs: int,
    *,
    prediction_length: int,
    max_context: int,
    step: int,
    block_obs: int = 250,
    first_origin: int = 0,
    max_tuning: int = 0,
    max_validation: int = 0,
    horizon: str = "",
) -> OriginPlan:
    """Every origin with `max_context` observations before it and `prediction_length` after it.

    Origin g*step (g = 0, 1, ...) belongs to block g // B with B = max(1, round(block_obs / step))
    origins; odd blocks are validation, even blocks tuning. When the history holds fewer than 4
    blocks, B shrinks to a quarter of the origins so that both sets still span it. `first_origin`
    drops older origins (the `[search] max_history_years` cap); `max_tuning` / `max_validation`
    > 0 keep only the newest that many of each set.
    """
    if step < prediction_length:
        raise ValueError(f"step {step} < prediction_length {prediction_length}: target windows would overlap")
    earliest = max(max_context, first_origin, 1)
    latest = n_obs - prediction_length
    first_g = -(-earliest // step)
    grid = list(range(first_g, latest // step + 1))
    if len(grid) < 2 * MIN_SET_ORIGINS:
        raise DataError(
            f"horizon {horizon or '?'}: needs {max_context + (2 * MIN_SET_ORIGINS - 1) * step + prediction_length}"
            f" observations ({max_context} context + {2 * MIN_SET_ORIGINS} origins {step} apart + "
            f"{prediction_length} ahead), the series has {n_obs}; ingest more history, raise "
            "search.max_history_years or lower the largest context_length"
        )
    block = max(1, round(block_obs / step))
    if len(grid) < 4 * block:
        block = max(1, len(grid) // 4)
    tuning = [g * step for g in grid if (g // block) % 2 == 0]
    validation = [g * step for g in grid if (g // block) % 2 == 1]
    if max_tuning > 0:
        tuning = tuning[-max_tuning:]
    if max_validation > 0:
        validation = validation[-max_validation:]
    return OriginPlan(tuple(tuning), tuple(validation), step, prediction_length, block)


def spread_order(keys: Sequence[int]) -> list[int]:
    """Positions of `keys` ordered by their bit-reversed value (van der Corput order).

    Every prefix is spread evenly over the range: successive halving scores its first rungs on a
    prefix, which then sees every part of the history instead of only the oldest years. Keys are
    origin grid indices (origin // step): the order of two origins never depends on which other
    origins are present, so when data is appended (or the oldest origin leaves a capped history)
    a rung keeps almost all of last week's origins and the backtest cache serves them.
    """
    width = max(1, max((int(k).bit_length() for k in keys), default=1))
    width = max(width, 32)
    return sorted(range(len(keys)), key=lambda i: (int(format(int(keys[i]), f"0{width}b")[::-1], 2), i))


def context_window(values: np.ndarray, origin: int, context_length: int) -> np.ndarray:
    """The last `context_length` observations strictly before `origin`."""
    if origin <= 0:
        raise ValueError("origin must leave at least one observation of context")
    return values[max(0, origin - context_length) : origin]


def target_window(values: np.ndarray, origin: int, prediction_length: int) -> np.ndarray:
    return values[origin : origin + prediction_length]


def origin_dates(dates: pd.Series, origins: tuple[int, ...]) -> list[pd.Timestamp]:
    return [pd.Timestamp(dates.iloc[i]) for i in origins]
