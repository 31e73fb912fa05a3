"""Trigger engine: time fallback, drift on log returns, performance degradation, the combined decision."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from bot.core.params import TriggerSettings
from bot.core.performance import PerformanceCheck, performance_check
from bot.core.triggers import (
    DriftCheck,
    TimeCheck,
    _scan_lengths,
    _volatility_scan,
    _weighted_holm,
    decide,
    drift_check,
    time_check,
    triggered_by,
)
from tests.conftest import REAL_SERIES

S = TriggerSettings()


def walk(returns: np.ndarray, start: str = "2023-01-02") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=len(returns) + 1)
    values = 900.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.DataFrame({"date": dates, "value": values})


def last_day(series: pd.DataFrame) -> date:
    return pd.Timestamp(series["date"].iloc[-1]).date()


# ---------------------------------------------------------------- time


def test_time_never_optimized_fires() -> None:
    t = time_check(None, date(2025, 1, 5), S)
    assert t.fired and t.days_since_last is None and t.reason == "Time fallback: never optimized"


@pytest.mark.parametrize(("days", "fired"), [(0, False), (7, False), (14, False), (15, True), (21, True)])
def test_time_fires_only_past_the_limit(days: int, fired: bool) -> None:
    as_of = date(2025, 3, 30)
    t = time_check(as_of - pd.Timedelta(days=days).to_pytimedelta(), as_of, S)
    assert t.fired is fired
    assert t.days_since_last == days
    assert t.threshold_days == 14
    if fired:
        assert t.reason == f"Time fallback: {days} days since last optimization (limit 14)"
    else:
        assert t.reason is None


def test_time_last_optimization_in_the_future_does_not_fire() -> None:
    t = time_check(date(2025, 4, 2), date(2025, 3, 30), S)
    assert not t.fired and t.days_since_last == -3


# ---------------------------------------------------------------- drift


def test_constant_volatility_random_walk_has_no_drift() -> None:
    rng = np.random.default_rng(7)
    fired = 0
    for _ in range(40):
        series = walk(0.007 * rng.standard_normal(150))
        d = drift_check(series, last_day(series), S)
        assert not d.stale and d.n_recent == 30 and d.n_reference == 90
        fired += d.fired
    assert fired <= 5  # ~5% expected; 5 of 40 is far in the tail


def test_a_trending_level_is_not_drift() -> None:
    """A steady depreciation moves the level a lot; the log returns stay the same distribution."""
    rng = np.random.default_rng(3)
    series = walk(0.002 + 0.004 * rng.standard_normal(150))
    assert series["value"].iloc[-1] > 1.25 * series["value"].iloc[0]
    assert not drift_check(series, last_day(series), S).fired


def test_volatility_tripled_is_high_drift() -> None:
    rng = np.random.default_rng(11)
    r = 0.007 * rng.standard_normal(150)
    r[-30:] *= 3.0
    series = walk(r)
    d = drift_check(series, last_day(series), S)
    assert d.fired and d.severity == "HIGH"
    assert d.vol_ratio is not None and 2.0 < d.vol_ratio < 4.5
    assert d.p_scale_up is not None and d.p_scale_up < 0.001
    assert d.reason is not None and d.reason.startswith("Data drift: HIGH severity")


def test_volatility_halved_is_drift_too() -> None:
    rng = np.random.default_rng(12)
    r = 0.007 * rng.standard_normal(150)
    r[-30:] *= 0.3
    series = walk(r)
    d = drift_check(series, last_day(series), S)
    assert d.fired and d.severity == "HIGH"
    assert d.scan_vol_ratio is not None and d.scan_vol_ratio < 0.5


def test_a_fresh_volatility_doubling_is_caught_from_the_tail() -> None:
    """Eight doubled returns: too few to move the 30-return window much, enough for the scan."""
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(20):
        r = 0.007 * rng.standard_normal(150)
        r[-8:] *= 2.0
        series = walk(r)
        hits += drift_check(series, last_day(series), S).fired
    assert hits >= 10


def test_fat_tailed_returns_do_not_fire_more_than_alpha() -> None:
    rng = np.random.default_rng(21)
    fired = 0
    for _ in range(40):
        series = walk(0.007 * rng.standard_t(3, 150) / math.sqrt(3.0))
        fired += drift_check(series, last_day(series), S).fired
    assert fired <= 5


def test_stale_data_is_stale_not_drift() -> None:
    rng = np.random.default_rng(1)
    r = 0.007 * rng.standard_normal(150)
    r[-30:] *= 3.0
    series = walk(r)
    as_of = last_day(series) + pd.Timedelta(days=10).to_pytimedelta()
    d = drift_check(series, as_of, S)
    assert d.stale and not d.fired and d.severity == "NONE"
    assert d.reason is not None and "stale" in d.reason and "limit 7" in d.reason
    assert d.last_observation == last_day(series)


def test_data_exactly_at_the_stale_limit_is_fresh() -> None:
    series = walk(0.007 * np.random.default_rng(2).standard_normal(150))
    d = drift_check(series, last_day(series) + pd.Timedelta(days=7).to_pytimedelta(), S)
    assert not d.stale and d.p_value is not None


def test_too_few_observations_says_so() -> None:
    series = walk(0.007 * np.random.default_rng(4).standard_normal(60))
    d = drift_check(series, last_day(series), S)
    assert not d.fired and not d.stale
    assert d.reason is not None and "too few observations" in d.reason
    assert "60 log returns" in d.reason and "need 120" in d.reason


def test_no_data_at_all() -> None:
    empty = pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "value": pd.Series(dtype=float)})
    d = drift_check(empty, date(2025, 1, 1), S)
    assert not d.fired and d.reason is not None and "no observations" in d.reason


def test_future_rows_are_ignored() -> None:
    """Rows after as_of + 1 day (the observado of tomorrow is known tonight) must not leak in."""
    rng = np.random.default_rng(8)
    r = 0.007 * rng.standard_normal(200)
    r[150:] *= 4.0  # a shock that starts after as_of
    series = walk(r)
    as_of = pd.Timestamp(series["date"].iloc[148]).date()
    d = drift_check(series, as_of, S)
    truncated = drift_check(series.iloc[:150], as_of, S)
    assert d == truncated
    assert not d.fired


def test_nan_and_bad_rows_are_dropped_not_fatal() -> None:
    series = walk(0.007 * np.random.default_rng(9).standard_normal(160))
    dirty = series.copy()
    dirty.loc[[10, 50, 100], "value"] = [np.nan, -1.0, np.inf]
    d = drift_check(dirty, last_day(series), S)
    assert d.p_value is not None and d.n_recent == 30


def test_constant_series_does_not_crash() -> None:
    series = walk(np.zeros(150))
    d = drift_check(series, last_day(series), S)
    assert not d.fired and d.reason is not None


def test_drift_respects_window_settings() -> None:
    settings = replace(S, drift_recent_obs=20, drift_reference_obs=60)
    series = walk(0.007 * np.random.default_rng(10).standard_normal(90))
    d = drift_check(series, last_day(series), settings)
    assert d.n_recent == 20 and d.n_reference == 60


def test_scan_lengths_are_dense_then_every_fifth() -> None:
    assert _scan_lengths(30).tolist() == [*range(3, 16), 20, 25, 30]
    assert _scan_lengths(22).tolist() == [*range(3, 16), 20, 22]
    assert _scan_lengths(10).tolist() == list(range(3, 11))
    assert _scan_lengths(2).tolist() == [2]


def test_volatility_scan_is_scale_free_and_calibrated_on_fat_tails() -> None:
    rng = np.random.default_rng(31)
    r = rng.standard_t(3, 120)
    assert _volatility_scan(r, 30) == _volatility_scan(250.0 * r + 0.01, 30)
    p_up = np.array([_volatility_scan(rng.standard_t(3, 120), 30).p_up for _ in range(300)])
    assert 0.05 <= np.mean(p_up <= 0.2) <= 0.35  # ~0.2 under the null (binomial sd 0.023)
    assert np.mean(p_up <= 0.05) <= 0.1


def test_volatility_scan_handles_mostly_unchanged_prices() -> None:
    """A MAD of 0 (most days without a move) falls back to the mean absolute deviation."""
    r = np.zeros(120)
    r[::7] = 0.01 * np.random.default_rng(32).standard_normal(18)
    r[-5:] = [0.05, -0.04, 0.06, -0.05, 0.04]
    scan = _volatility_scan(r, 30)
    assert scan.p_up < 0.01 and scan.m_up <= 5
    assert _volatility_scan(np.zeros(120), 30).p_up == 1.0


def test_weighted_holm_matches_hand_computation() -> None:
    adj = _weighted_holm({"a": 0.01, "b": 0.04, "c": 0.5}, {"a": 0.8, "b": 0.1, "c": 0.1})
    # order by p/w: a (0.0125), b (0.4), c (5); remaining weights 1.0, 0.2, 0.1
    assert adj["a"] == pytest.approx(0.0125)
    assert adj["b"] == pytest.approx(0.08)
    assert adj["c"] == pytest.approx(0.5)


# ---------------------------------------------------------------- performance


def iid_errors(rng: np.random.Generator, recent_factor: float = 1.0) -> tuple[pd.DataFrame, date]:
    days = pd.bdate_range("2024-01-01", periods=120)
    as_of = days[100].date()
    err = 6.0 * rng.standard_normal(len(days))
    recent = days > pd.Timestamp(as_of) - pd.Timedelta(days=14)
    err[recent] *= recent_factor
    return pd.DataFrame({"target_date": days, "error": err}), as_of


def test_stationary_errors_rarely_fire() -> None:
    rng = np.random.default_rng(0)
    fired = sum(performance_check(*iid_errors(rng), S, "forecast_log").fired for _ in range(60))
    assert fired <= 6


def test_tripled_errors_fire_with_numbers() -> None:
    p = performance_check(*iid_errors(np.random.default_rng(1), 3.0), S, "forecast_log")
    assert p.fired and p.source == "forecast_log"
    assert p.degradation_pct is not None and p.degradation_pct > 100
    assert p.p_value is not None and p.p_value < 0.05
    assert p.n_recent == 10 and p.n_baseline > 35  # banking days in 14 and 60 calendar days
    assert p.reason == f"Performance degradation: RMSE {p.degradation_pct:+.1f}% (p={p.p_value:.3f})" or (
        p.reason == f"Performance degradation: RMSE {p.degradation_pct:+.1f}% (p<0.001)"
    )


def test_degradation_below_threshold_does_not_fire_even_if_significant() -> None:
    settings = replace(S, performance_degradation_pct=500.0)
    p = performance_check(*iid_errors(np.random.default_rng(1), 3.0), settings, "backtest")
    assert not p.fired and p.p_value is not None and p.p_value < 0.05


def test_rmse_rise_that_could_be_noise_does_not_fire() -> None:
    days = pd.bdate_range("2024-01-01", periods=120)
    as_of = days[100].date()
    err = np.tile([1.0, -1.0, 5.0, -0.5], 30)[: len(days)]  # heavy spread in the baseline
    recent = days > pd.Timestamp(as_of) - pd.Timedelta(days=14)
    err[recent] *= 1.5
    p = performance_check(pd.DataFrame({"target_date": days, "error": err}), as_of, S, "backtest")
    assert p.degradation_pct == pytest.approx(32.9, abs=0.1)
    assert not p.fired and p.reason is not None and "noise" in p.reason


def test_exact_rmse_numbers() -> None:
    days = pd.bdate_range("2024-01-01", periods=120)
    as_of = days[100].date()
    recent = days > pd.Timestamp(as_of) - pd.Timedelta(days=14)
    in_window = (days <= pd.Timestamp(as_of)) & (days > pd.Timestamp(as_of) - pd.Timedelta(days=74))
    err = np.where(recent, 2.0, 1.0) * np.where(np.arange(len(days)) % 2, 1.0, -1.0)
    p = performance_check(pd.DataFrame({"target_date": days, "error": err}), as_of, S, "backtest")
    assert p.recent_rmse == pytest.approx(2.0) and p.baseline_rmse == pytest.approx(1.0)
    assert p.degradation_pct == pytest.approx(100.0)
    assert p.n_recent + p.n_baseline == int(in_window.sum())
    assert p.fired  # constant per-date errors: the batch spread is 0, the rise is certain


def test_no_errors_is_reported_not_fired() -> None:
    empty = pd.DataFrame({"target_date": pd.Series(dtype="datetime64[ns]"), "error": pd.Series(dtype=float)})
    p = performance_check(empty, date(2025, 1, 1), S, "none")
    assert not p.fired and p.source == "none" and p.p_value is None and p.degradation_pct is None
    assert p.reason is not None and "no realized errors" in p.reason


def test_missing_recent_window_is_reported() -> None:
    frame, as_of = iid_errors(np.random.default_rng(2))
    old = frame[frame["target_date"] < pd.Timestamp(as_of) - pd.Timedelta(days=20)]
    p = performance_check(old, as_of, S, "backtest")
    assert not p.fired and p.reason is not None and "recent window" in p.reason


def test_future_targets_and_nan_errors_are_ignored() -> None:
    frame, as_of = iid_errors(np.random.default_rng(3))
    base = performance_check(frame, as_of, S, "backtest")
    noisy = frame.copy()
    noisy.loc[noisy["target_date"] > pd.Timestamp(as_of), "error"] *= 100.0  # not yet realized
    noisy.loc[5, "error"] = np.nan
    again = performance_check(noisy, as_of, S, "backtest")
    assert again.recent_rmse == base.recent_rmse
    assert again.n_baseline in (base.n_baseline, base.n_baseline - 1)


def test_unknown_source_is_a_programming_error() -> None:
    frame, as_of = iid_errors(np.random.default_rng(4))
    with pytest.raises(ValueError, match="source must be one of"):
        performance_check(frame, as_of, S, "oracle")


def test_multi_step_errors_use_the_step_column() -> None:
    """10-step forecasts: 14 recent days hold fewer dates than one dependence batch, so no test."""
    days = pd.bdate_range("2024-01-01", periods=120)
    as_of = days[100].date()
    rng = np.random.default_rng(5)
    rows = [
        (days[i + k], rng.standard_normal() * (3.0 if i > 92 else 1.0), k)
        for i in range(105)
        for k in range(1, 11)
    ]
    frame = pd.DataFrame(rows, columns=["target_date", "error", "step"])
    p = performance_check(frame, as_of, S, "forecast_log")
    assert p.p_value is None and not p.fired
    assert p.reason is not None and "fewer than one batch" in p.reason
    shorter = performance_check(frame, as_of, S, "forecast_log", max_step=1)
    assert shorter.p_value is not None


# ---------------------------------------------------------------- decision


def checks(
    time_fired: bool = False, drift_fired: bool = False, perf_fired: bool = False
) -> tuple[TimeCheck, DriftCheck, PerformanceCheck]:
    t = TimeCheck(
        time_fired,
        21 if time_fired else 3,
        14,
        "Time fallback: 21 days since last optimization (limit 14)" if time_fired else None,
    )
    d = DriftCheck(
        drift_fired,
        "MEDIUM" if drift_fired else "NONE",
        False,
        "Data drift: MEDIUM severity (volatility x1.70 over the last 9 returns)"
        if drift_fired
        else "No drift",
        last_observation=date(2025, 3, 28),
        n_recent=30,
        n_reference=90,
        vol_ratio=1.4,
        p_value=0.01 if drift_fired else 0.6,
        wasserstein_sigma=math.nan,
    )
    p = PerformanceCheck(
        perf_fired,
        18.5,
        0.012 if perf_fired else 0.3,
        "forecast_log",
        7.1,
        6.0,
        10,
        42,
        "Performance degradation: RMSE +18.5% (p=0.012)" if perf_fired else "No performance trigger",
    )
    return t, d, p


def test_nothing_fired_means_no_fire() -> None:
    dec = decide("7d", date(2025, 3, 30), *checks())
    assert not dec.fire and dec.reasons == () and triggered_by(dec) == "none"


def test_reasons_are_ordered_and_readable() -> None:
    dec = decide("30d", date(2025, 3, 30), *checks(True, True, True))
    assert dec.fire
    assert dec.reasons == (
        "Performance degradation: RMSE +18.5% (p=0.012)",
        "Data drift: MEDIUM severity (volatility x1.70 over the last 9 returns)",
        "Time fallback: 21 days since last optimization (limit 14)",
    )
    assert triggered_by(dec) == "performance+drift+time"


def test_forced_fires_alone() -> None:
    dec = decide("7d", date(2025, 3, 30), *checks(), forced=True)
    assert dec.fire and dec.forced and dec.reasons == ("Forced by operator",)
    assert triggered_by(dec) == "forced"
    assert (
        triggered_by(decide("7d", date(2025, 3, 30), *checks(drift_fired=True), forced=True))
        == "forced+drift"
    )


def test_single_labels() -> None:
    assert triggered_by(decide("7d", date(2025, 3, 30), *checks(time_fired=True))) == "time"
    assert triggered_by(decide("7d", date(2025, 3, 30), *checks(perf_fired=True, drift_fired=True))) == (
        "performance+drift"
    )


def test_to_json_has_stable_keys_and_is_serializable() -> None:
    dec = decide("15d", date(2025, 3, 30), *checks(perf_fired=True))
    out = dec.to_json()
    json.dumps(out, allow_nan=False)  # NaN effect sizes become null
    assert out["horizon"] == "15d" and out["as_of"] == "2025-03-30"
    assert out["fire"] is True and out["forced"] is False and out["triggered_by"] == "performance"
    assert out["reasons"] == ["Performance degradation: RMSE +18.5% (p=0.012)"]
    assert out["time"]["fired"] is False and out["time"]["days_since_last"] == 3
    assert {"fired", "severity", "stale", "vol_ratio", "wasserstein_sigma", "p_value", "psi"} <= set(
        out["drift"]
    )
    assert out["drift"]["wasserstein_sigma"] is None
    assert out["drift"]["last_observation"] == "2025-03-28"
    perf = out["performance"]
    assert perf["fired"] is True and perf["degradation_pct"] == 18.5 and perf["p_value"] == 0.012
    assert perf["source"] == "forecast_log"


def test_real_checks_round_trip_to_json() -> None:
    rng = np.random.default_rng(13)
    series = walk(0.007 * rng.standard_normal(150))
    as_of = last_day(series)
    frame, _ = iid_errors(rng)
    dec = decide(
        "7d",
        as_of,
        time_check(None, as_of, S),
        drift_check(series, as_of, S),
        performance_check(frame, as_of, S, "backtest"),
    )
    text = json.dumps(dec.to_json(), allow_nan=False)
    assert json.loads(text)["time"]["days_since_last"] is None


# ---------------------------------------------------------------- real series


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_SERIES.exists(), reason="real series ../shared/data/usdclp_daily.csv absent")
def test_real_series_weekly_drift_is_rare_but_sees_the_2019_unrest() -> None:
    from bot.adapters.sources import read_series_file
    from bot.core.series import known_as_of, validate_series

    series, _ = validate_series(read_series_file(REAL_SERIES), source="real", max_gap_days=7)
    fridays = pd.date_range("2019-01-04", "2024-12-27", freq="W-FRI")
    fired = [f.date() for f in fridays if drift_check(known_as_of(series, f.date()), f.date(), S).fired]
    assert len(fired) < 0.3 * len(fridays)
    assert any(date(2019, 11, 12) <= d <= date(2019, 11, 29) for d in fired)  # the peso's break
    assert any(date(2020, 3, 9) <= d <= date(2020, 4, 10) for d in fired)  # COVID
