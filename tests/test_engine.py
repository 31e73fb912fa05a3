"""The backtest engine with real tiny Chronos models: no look-ahead, de-duplication, shared draws, cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot.adapters.chronos import LoadedModel, load_model
from bot.core.backtest import walk_forward_origins
from bot.core.config import Family, HorizonConfig, config_hash
from bot.core.search import build_plan
from bot.errors import DataError
from bot.flow.engine import BacktestCache, Engine

N = 400


def series() -> tuple[pd.Series, np.ndarray]:
    dates = pd.Series(pd.bdate_range("2020-01-01", periods=N))
    # value encodes the index: a context's last value tells exactly which observations it saw
    return dates, 1000.0 + np.arange(N, dtype=np.float64)


def t5_config(**kw: Any) -> HorizonConfig:
    base = {"horizon": "7d", "prediction_length": 5, "model_id": "m", "model_family": Family.T5,
            "context_length": 64, "num_samples": 20, "temperature": 1.0, "top_k": 50, "top_p": 1.0}  # fmt: skip
    return HorizonConfig(**{**base, **kw})


class Spy:
    """Records every context the model's tokenizer receives (the model still runs).

    Both the shared-context sampler and the stock pipeline tokenize the context first, so this
    sees every context whichever path predicts.
    """

    def __init__(self, model: LoadedModel) -> None:
        self.calls: list[np.ndarray] = []
        self.tokenizer = model.pipeline.tokenizer
        self._inner = self.tokenizer.context_input_transform
        self.tokenizer.context_input_transform = self

    def __call__(self, ctx: Any, *args: Any, **kw: Any) -> Any:
        self.calls.append(np.asarray(ctx).ravel().copy())
        return self._inner(ctx, *args, **kw)

    def restore(self) -> None:
        self.tokenizer.context_input_transform = self._inner


def test_no_context_contains_data_at_or_after_its_origin(tiny_t5: Path) -> None:
    model = load_model(str(tiny_t5))
    spy = Spy(model)
    try:
        dates, values = series()
        engine = Engine(model, dates, values, seed=1, sample_chunk=10)
        origins = walk_forward_origins(
            N, prediction_length=5, max_context=64, n_tuning=3, n_validation=2, step=5
        )
        evals = engine.evaluate([t5_config(), t5_config(context_length=32)], origins.all)
    finally:
        spy.restore()
    assert spy.calls
    origin_values = {1000.0 + o for o in origins.all}
    for ctx in spy.calls[1:]:  # the first call is the warm-up
        last_index = int(ctx[-1] - 1000)
        origin = last_index + 1
        assert 1000.0 + origin in origin_values, "context must end right before an origin"
        assert ctx.max() < 1000.0 + origin, "context contains data at or after its origin"
    for ev in evals.values():
        # the scored actuals are the observations at and after the origin
        for origin, group in ev.steps.groupby("origin"):
            idx = int(np.flatnonzero(dates == origin)[0])
            assert list(group["actual"]) == list(values[idx : idx + 5])
            assert (group["naive"] == values[idx - 1]).all()


def test_not_enough_data_is_one_clear_line() -> None:
    with pytest.raises(DataError, match=r"needs 1268 observations .* the series has 400; reduce"):
        walk_forward_origins(
            400, prediction_length=63, max_context=512, n_tuning=6, n_validation=6, step=63, horizon="90d"
        )


def test_t5_duplicates_collapse_and_bolt_ignores_sampling_knobs() -> None:
    base = t5_config(horizon="90d", prediction_length=63)
    plan = build_plan(
        base, context_lengths=[365, 540, 730], num_samples=[50, 100, 200], temperatures=[0.8, 1.0, 1.2]
    )
    assert len(plan.candidates) == 2 * 3 * 3  # 540 and 730 are both 512 for T5
    assert any("730 = 512" in d for d in plan.duplicates)
    bolt = HorizonConfig("90d", 63, "amazon/chronos-bolt-small", Family.BOLT, 365)
    bplan = build_plan(
        bolt, context_lengths=[365, 540, 730], num_samples=[50, 100, 200], temperatures=[0.8, 1.0]
    )
    assert [c.config.context_length for c in bplan.candidates] == [365, 540, 730]
    assert all(c.config.num_samples is None and c.config.temperature is None for c in bplan.candidates)
    assert bplan.ignored_knobs == ("num_samples", "temperature", "top_k", "top_p")


def test_smaller_num_samples_use_the_first_draws_of_one_call(tiny_t5: Path) -> None:
    model = load_model(str(tiny_t5))
    dates, values = series()
    engine = Engine(model, dates, values, seed=3, sample_chunk=10)
    origins = (300, 305)
    evals = engine.evaluate([t5_config(num_samples=10), t5_config(num_samples=30)], origins)
    assert engine.stats.predict_calls == 2  # one call per origin (3 random streams of 10)
    alone = Engine(model, dates, values, seed=3, sample_chunk=10).evaluate(
        [t5_config(num_samples=10)], origins
    )
    key = config_hash(t5_config(num_samples=10))
    pd.testing.assert_frame_equal(evals[key].steps, alone[key].steps)


def test_cache_recomputes_only_origins_touched_by_a_revision(tiny_bolt: Path, tmp_path: Path) -> None:
    model = load_model(str(tiny_bolt))
    dates, values = series()
    cfg = HorizonConfig("7d", 5, str(tiny_bolt), Family.BOLT, 32)
    origins = (200, 250, 300, 350)
    cache_path = tmp_path / "cache.parquet"
    first = Engine(model, dates, values, seed=0, sample_chunk=10, cache=BacktestCache(cache_path))
    cold = first.evaluate([cfg], origins)
    assert first.stats.cache_misses == 4 and cache_path.exists()

    warm = Engine(model, dates, values, seed=0, sample_chunk=10, cache=BacktestCache(cache_path))
    again = warm.evaluate([cfg], origins)
    assert warm.stats.cache_hits == 4 and warm.stats.predict_calls == 0
    key = config_hash(cfg)
    pd.testing.assert_frame_equal(cold[key].steps, again[key].steps)

    revised = values.copy()
    revised[290] += 1.5  # inside the context of origin 300 (ctx 32) only
    third = Engine(model, dates, revised, seed=0, sample_chunk=10, cache=BacktestCache(cache_path))
    third.evaluate([cfg], origins)
    assert third.stats.cache_misses == 1 and third.stats.cache_hits == 3
