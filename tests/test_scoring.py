"""Metrics on hand-computable cases, search-plan rules and the origin grid (pure, no model)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bot.core.backtest import walk_forward_origins
from bot.core.metrics import Z90, Z975, Forecast, per_origin_loss, pooled_scores, sample_crps, step_rows


def test_sample_crps_matches_the_brute_force_definition() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(7, 3))
    y = np.array([0.3, -1.0, 2.0])
    brute = np.array(
        [
            np.mean(np.abs(samples[:, k] - y[k]))
            - 0.5 * np.mean([abs(a - b) for a, b in itertools.product(samples[:, k], samples[:, k])])
            for k in range(3)
        ]
    )
    np.testing.assert_allclose(sample_crps(samples, y), brute, rtol=1e-12)


def test_crps_of_a_point_mass_is_the_absolute_error() -> None:
    f = Forecast.from_samples(np.full((5, 2), 10.0))
    np.testing.assert_allclose(f.crps(np.array([12.0, 7.0])), [2.0, 3.0])


def test_quantile_crps_is_twice_the_mean_pinball_loss() -> None:
    f = Forecast.from_quantiles((0.1, 0.5, 0.9), np.array([[90.0], [100.0], [110.0]]))
    # y=104: pinball 0.1 -> 0.1*14=1.4; 0.5 -> 0.5*4=2; 0.9 -> (0.9-1)*(104-110)=0.6 ; mean 4/3, x2
    np.testing.assert_allclose(f.crps(np.array([104.0])), [2 * (1.4 + 2.0 + 0.6) / 3])


def test_bolt_interval_is_extrapolated_with_a_normal_shape() -> None:
    f = Forecast.from_quantiles((0.1, 0.5, 0.9), np.array([[90.0], [100.0], [120.0]]))
    lo, hi = f.interval95()
    np.testing.assert_allclose(lo, [100 - 10 * Z975 / Z90])
    np.testing.assert_allclose(hi, [100 + 20 * Z975 / Z90])


def test_crossing_quantiles_are_rearranged_so_the_interval_is_ordered() -> None:
    # an untrained quantile head: 0.1 above 0.9 at step 1, median outside at step 2
    f = Forecast.from_quantiles((0.1, 0.5, 0.9), np.array([[120.0, 95.0], [100.0, 130.0], [90.0, 105.0]]))
    assert f.quantiles is not None
    np.testing.assert_allclose(f.quantiles, [[90.0, 95.0], [100.0, 105.0], [120.0, 130.0]])
    lo, hi = f.interval95()
    assert (lo <= f.median()).all() and (f.median() <= hi).all()
    with pytest.raises(ValueError, match="increasing"):
        Forecast.from_quantiles((0.9, 0.5, 0.1), np.zeros((3, 1)))


def test_chronos2_interval_is_interpolated() -> None:
    levels = (0.01, 0.05, 0.5, 0.95, 0.99)
    f = Forecast.from_quantiles(levels, np.array([[80.0], [90.0], [100.0], [110.0], [130.0]]))
    lo, hi = f.interval95()
    np.testing.assert_allclose(lo, [80 + (90 - 80) * (0.025 - 0.01) / 0.04])
    np.testing.assert_allclose(hi, [110 + (130 - 110) * (0.975 - 0.95) / 0.04])


def test_pooled_scores_on_a_hand_case() -> None:
    origin = pd.Timestamp("2024-01-02")
    f = Forecast.from_samples(np.array([[101.0, 98.0], [103.0, 100.0], [105.0, 102.0]]))  # medians 103, 100
    steps = step_rows(f, np.array([100.0, 100.0]), 99.0, origin, [origin, origin + pd.Timedelta(days=1)])
    s = pooled_scores(steps, inference_seconds=0.5)
    # errors: +3, 0 -> RMSE sqrt(4.5), MAE 1.5, bias 1.5, MAPE 1.5%, std of [3, 0] (ddof 1)
    assert s.rmse == pytest.approx(np.sqrt(4.5))
    assert s.mae == pytest.approx(1.5) and s.bias == pytest.approx(1.5) and s.mape == pytest.approx(1.5)
    assert s.error_std == pytest.approx(np.std([3.0, 0.0], ddof=1))
    assert s.naive_rmse == pytest.approx(1.0) and s.skill == pytest.approx(1 - np.sqrt(4.5))
    # the interval 2.5%..97.5% of [101,103,105] and [98,100,102] covers 100 only at step 2
    assert s.coverage95 == pytest.approx(50.0)
    assert per_origin_loss(steps).iloc[0] == pytest.approx(4.5)


def test_head_uses_the_first_draws() -> None:
    f = Forecast.from_samples(np.arange(12.0).reshape(6, 2))
    np.testing.assert_array_equal(f.head(2).samples, [[0.0, 1.0], [2.0, 3.0]])


def test_origins_are_disjoint_later_validation_and_stable_as_data_grows() -> None:
    a = walk_forward_origins(1000, prediction_length=21, max_context=365, n_tuning=4, n_validation=3, step=21)
    assert max(a.tuning) < min(a.validation)
    assert all(b - x == 21 for x, b in itertools.pairwise(a.all))
    assert a.all[-1] + 21 <= 1000
    b = walk_forward_origins(1005, prediction_length=21, max_context=365, n_tuning=4, n_validation=3, step=21)
    assert a.all == b.all  # 5 more observations do not move the grid: next week's run hits the cache
    c = walk_forward_origins(1021, prediction_length=21, max_context=365, n_tuning=4, n_validation=3, step=21)
    assert c.all[:-1] == a.all[1:]  # a full step later: one new origin, the rest shared
