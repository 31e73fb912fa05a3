"""Whole-history origins, their split, the spread order for halving rungs, the noise-test loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bot.core.backtest import history_origins, spread_order
from bot.core.gate import Verdict, evaluate_gate
from bot.core.loss import MSE, VOL_MSE, noise_test_losses, origin_volatility
from bot.core.metrics import Scores
from bot.core.params import ApprovalSettings
from bot.core.search import halving_schedule, keep_best
from bot.errors import DataError


def test_history_origins_alternate_blocks_over_the_whole_history() -> None:
    # 100 obs, context 20, h = step = 5: origins 20, 25, ..., 95 (grid g = 4..19); blocks of 2
    plan = history_origins(100, prediction_length=5, max_context=20, step=5, block_obs=10)
    assert plan.block == 2
    assert plan.tuning == (20, 25, 40, 45, 60, 65, 80, 85)
    assert plan.validation == (30, 35, 50, 55, 70, 75, 90, 95)
    assert plan.all == tuple(range(20, 96, 5))
    for t in plan.tuning:  # no tuning target window overlaps a validation one
        assert all(abs(t - v) >= 5 for v in plan.validation)


def test_history_origins_are_stable_when_data_is_appended() -> None:
    a = history_origins(100, prediction_length=5, max_context=20, step=5, block_obs=10)
    b = history_origins(105, prediction_length=5, max_context=20, step=5, block_obs=10)
    assert b.tuning == (*a.tuning, 100)  # g = 20 starts block 10 (even: tuning)
    assert b.validation == a.validation
    c = history_origins(104, prediction_length=5, max_context=20, step=5, block_obs=10)
    assert c == a  # 99 + 5 > 104: not yet a full target window


def test_history_origins_step_larger_than_horizon_and_caps() -> None:
    plan = history_origins(100, prediction_length=3, max_context=20, step=5, block_obs=10)
    assert plan.validation[-1] == 95  # 95 + 3 <= 100
    capped = history_origins(
        100, prediction_length=5, max_context=20, step=5, block_obs=10, max_tuning=3, max_validation=2
    )
    assert capped.tuning == (65, 80, 85) and capped.validation == (90, 95)
    recent = history_origins(100, prediction_length=5, max_context=20, step=5, block_obs=10, first_origin=52)
    assert recent.all[0] == 55


def test_history_origins_short_history_shrinks_blocks_so_both_sets_span_it() -> None:
    plan = history_origins(60, prediction_length=5, max_context=20, step=5, block_obs=250)
    assert plan.block == 2  # 8 origins (g = 4..11) < 4 blocks of 50: quarter of them
    assert plan.tuning == (20, 25, 40, 45) and plan.validation == (30, 35, 50, 55)


def test_history_origins_errors() -> None:
    with pytest.raises(DataError, match="horizon 7d: needs 40 observations"):
        history_origins(39, prediction_length=5, max_context=20, step=5, horizon="7d")
    with pytest.raises(ValueError, match="overlap"):
        history_origins(100, prediction_length=5, max_context=20, step=4)


def test_spread_order_prefixes_cover_the_range_and_ignore_other_keys() -> None:
    assert spread_order([0, 1, 2, 3, 4, 5, 6, 7]) == [0, 4, 2, 6, 1, 5, 3, 7]
    assert spread_order([]) == []
    keys = list(range(100, 1100))
    order = spread_order(keys)
    assert sorted(order) == list(range(1000))
    first = sorted(keys[i] for i in order[:10])  # a tenth of a rung reaches both ends of the history
    assert first[0] < 200 and first[-1] > 900
    # one key more at the end, one less at the start: the others keep their relative order
    grown = spread_order([*keys[1:], 1100])
    assert [keys[1:][i] for i in grown if i < 999 and keys[1:][i] != 1100] == [
        keys[i] for i in order if keys[i] != 100
    ]


def test_halving_schedule_and_keep_best() -> None:
    assert halving_schedule(540, 9, min_first=30) == [60, 180, 540]
    assert halving_schedule(540, 27, min_first=30) == [60, 180, 540]  # 20 is under the first rung's 30
    assert halving_schedule(540, 27, min_first=8) == [20, 60, 180, 540]
    assert halving_schedule(540, 9) == [180, 540]  # default first rung: a third of the origins
    assert halving_schedule(60, 9) == [60]  # 7 and 20 are under the default's minimum of 30
    assert halving_schedule(540, 1) == [540]
    assert halving_schedule(40, 27, min_first=8) == [14, 40]  # ceil(40/27) = 2, ceil(40/9) = 5: dropped
    assert halving_schedule(43, 9) == [43]  # a small set is a plain grid
    assert halving_schedule(5, 9) == [5]
    scores = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 2.0, "e": 5.0, "f": 4.0}
    assert keep_best(scores) == {"b", "c", "d"}  # best 2, and d ties c at the cut
    assert keep_best({"x": 1.0}) == {"x"}


def test_origin_volatility_uses_only_changes_before_the_origin() -> None:
    values = np.array([0.0, 1.0, 3.0, 6.0, 10.0, 100.0])
    vol = origin_volatility(values, [5, 2, 1], window=3)
    assert vol[0] == pytest.approx(1.0)  # changes 2, 3, 4 (values[1:5]); the jump to 100 is the target
    assert np.isnan(vol[1]) and np.isnan(vol[2])  # one change / none: unknown
    assert np.isnan(origin_volatility(np.full(10, 5.0), [8], window=3)[0])  # flat: unknown


def _steps() -> pd.DataFrame:
    a, b = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")
    return pd.DataFrame(
        {"origin": [a, a, b, b], "actual": [10.0, 10.0, 20.0, 20.0], "point": [11.0, 13.0, 20.0, 22.0]}
    )


def test_noise_test_losses() -> None:
    steps = _steps()
    a, b = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")
    assert noise_test_losses(steps, MSE).tolist() == [5.0, 2.0]
    scaled = noise_test_losses(steps, VOL_MSE, pd.Series([2.0, 0.5], index=[a, b]))
    assert scaled.tolist() == [1.25, 8.0]
    missing = noise_test_losses(steps, VOL_MSE, pd.Series([2.0], index=[a]))
    assert np.isnan(missing.iloc[1])
    with pytest.raises(ValueError, match="needs the volatility"):
        noise_test_losses(steps, VOL_MSE)
    with pytest.raises(ValueError, match="unknown noise-test loss"):
        noise_test_losses(steps, "mae")


def _scores(rmse: float) -> Scores:
    return Scores(rmse, 1.0, rmse, 0.0, rmse, 95.0, 1.0, 20.0, 1 - rmse / 20.0, 1.0, 6, 6)


def test_verdict_records_the_noise_loss() -> None:
    idx = pd.date_range("2024-01-01", periods=6, freq="7D")
    cur = pd.Series([4.0, 5.0, 6.0, 4.0, 5.0, 6.0], index=idx)
    cand = pd.Series([1.0, 2.5, 2.0, 1.0, 1.5, 2.0], index=idx)
    kwargs = {"naive_rmse": 20.0, "current_losses": cur, "candidate_losses": cand, "prediction_length": 5,
                  "settings": ApprovalSettings()}  # fmt: skip
    v = evaluate_gate(current=_scores(10.0), candidate=_scores(8.0), noise_loss=VOL_MSE, **kwargs)  # type: ignore[arg-type]
    assert v.noise_loss == VOL_MSE
    assert "loss: squared error divided by the variance" in v.criterion("significance").detail
    assert Verdict.from_dict(v.to_dict()) == v
    old = v.to_dict()
    del old["noise_loss"]  # a verdict stored before the field existed
    assert Verdict.from_dict(old).noise_loss is None
    initial = evaluate_gate(current=None, candidate=_scores(8.0), noise_loss=VOL_MSE, **kwargs)  # type: ignore[arg-type]
    assert initial.noise_loss is None
