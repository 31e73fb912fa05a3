"""Where a run's origins lie and how its winner is validated: whole-history origins, the current
config and the top candidates on the validation origins (cached), the gate's timings, and the
volatility known at each validation origin (the noise test's `vol_mse` loss)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from bot.core.backtest import OriginPlan, history_origins, origin_step
from bot.core.config import HorizonConfig, config_hash
from bot.core.loss import origin_volatility
from bot.core.metrics import Scores
from bot.core.search import SearchPlan
from bot.flow.engine import Engine, Evaluation, draw_group_key
from bot.settings import SearchSettings

TIMING_ORIGINS = 8  # newest validation origins at which the gate's configs are timed alone


def plan_origins(
    s: SearchSettings, horizon: str, dates: pd.Series, plan: SearchPlan, live: HorizonConfig
) -> OriginPlan:
    """Every origin with context for the largest candidate, split in alternating blocks (see
    `bot.core.backtest.history_origins`), capped by `[search]` max_history_years and the counts."""
    max_ctx = max(
        [c.config.effective_context_length for c in plan.candidates] + [live.effective_context_length]
    )
    first = 0
    if s.max_history_years > 0:
        since = dates.iloc[-1] - pd.Timedelta(days=round(365.25 * s.max_history_years))
        first = int(np.searchsorted(dates.to_numpy(), since.to_datetime64()))
    return history_origins(
        len(dates),
        prediction_length=live.prediction_length,
        max_context=max_ctx,
        step=origin_step(live.prediction_length, s.min_origin_step),
        block_obs=s.split_block_obs,
        first_origin=first,
        max_tuning=s.tuning_origins,
        max_validation=s.validation_origins,
        horizon=horizon,
    )


def validate(
    engine: Engine,
    live: HorizonConfig,
    ranking: list[tuple[HorizonConfig, Scores]],
    complete: set[str],
    origins: OriginPlan,
    top: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Evaluation]:
    """The current config and the top candidates on every validation origin.

    Top candidates: every complete candidate that shares the winner's predict call (T5: its
    num_samples siblings, at no extra cost) plus the best `top - 1` other complete candidates.
    Errors come from shared draws (the draws are the same as alone); inference seconds from calls
    timed alone at the newest TIMING_ORIGINS validation origins. Both land in the backtest cache,
    so next week only the new origin is computed, also when the winner changes to one of these.
    """
    done = [cfg for cfg, _ in ranking if config_hash(cfg) in complete] or [ranking[0][0]]
    group = draw_group_key(done[0])
    same = [c for c in done if draw_group_key(c) == group]
    best = same + [c for c in done if draw_group_key(c) != group][: top - 1]
    evals = engine.evaluate([live, *best], origins.validation, progress=progress)
    timed = engine.evaluate([live, best[0]], origins.validation[-TIMING_ORIGINS:], share_draws=False)
    for key, ev in timed.items():
        evals[key] = Evaluation(ev.config, key, evals[key].steps, ev.seconds)
    return evals


def validation_scale(values: np.ndarray, dates: pd.Series, origins: OriginPlan, window: int) -> pd.Series:
    """The volatility known at each validation origin, indexed by the origin's date."""
    return pd.Series(
        origin_volatility(values, origins.validation, window),
        index=pd.DatetimeIndex(dates.iloc[list(origins.validation)]),
    )


def origins_text(dates: pd.Series, origins: OriginPlan) -> str:
    """The split in plain words, for the reports."""
    every = f"one every {origins.step} observations"
    if origins.block:
        return (
            f"{len(origins.tuning)} tuning and {len(origins.validation)} validation origins, {every}, "
            f"from {dates.iloc[origins.all[0]].date()} to {dates.iloc[origins.all[-1]].date()}, in alternating "
            f"blocks of {origins.block} origins (tuning, validation, tuning, ...), so both sets cover that "
            "range and no target window of one overlaps a target window of the other"
        )
    return f"{len(origins.tuning)} tuning origins, then {len(origins.validation)} later validation origins, {every}"
