"""The daily volatility watch's detector (bot/core/watch.py): ranks, CUSUM episodes, resumable state."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from bot.core.series import known_as_of
from bot.core.watch import (
    REFERENCE_OBS,
    THRESHOLDS,
    Cursor,
    WatchSettings,
    WatchState,
    advance,
    rank_score,
    sequential_ranks,
    threshold_for,
    update,
)
from bot.errors import DataError


def business_days(n: int, start: str = "2018-01-01") -> list[date]:
    return [d.date() for d in pd.bdate_range(start, periods=n)]


def walk(returns: np.ndarray) -> np.ndarray:
    return np.asarray(900.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)])))


def test_sequential_ranks_count_the_reference_with_half_ties() -> None:
    ref = np.arange(1.0, REFERENCE_OBS + 1.0)  # 1..250
    a = np.concatenate([ref, [100.0, 0.5, 1000.0]])
    u = sequential_ranks(a, REFERENCE_OBS)[0]
    # 100 vs 1..250: 99 below, one tie; 0.5 vs 2..250 + 100: none below; 1000 above all 250.
    assert u[0] == pytest.approx((99 + 0.5 + 0.5) / (REFERENCE_OBS + 1))
    assert u[1] == pytest.approx(0.5 / (REFERENCE_OBS + 1))
    assert u[2] == pytest.approx((250 + 0.5) / (REFERENCE_OBS + 1))
    with pytest.raises(ValueError, match="needs 250 returns"):
        sequential_ranks(a, 10)


def test_score_is_negative_on_average_and_bounded() -> None:
    u = (np.arange(REFERENCE_OBS + 1) + 0.5) / (REFERENCE_OBS + 1)  # every rank equally likely
    s = rank_score(u)
    assert s.mean() < -0.2  # a random walk drifts down
    assert 3.0 < s.max() < 3.2  # bounded: a return beyond the whole reference year scores ~3.1
    assert np.all(np.diff(s) > 0)  # a larger |return| scores higher


def test_threshold_table_and_settings() -> None:
    assert threshold_for(20.0, "garch") == THRESHOLDS["garch"][20.0]
    lo, hi = threshold_for(10.0, "iid"), threshold_for(20.0, "iid")
    assert lo <= threshold_for(15.0, "iid") <= hi
    assert WatchSettings().problem() is None
    assert "outside the calibrated" in (WatchSettings(false_alarm_weeks=1.0).problem() or "")
    assert "null_model" in (WatchSettings(null_model="normal").problem() or "")
    assert "horizons" in (WatchSettings(horizons=["8d"]).problem() or "")
    with pytest.raises(ValueError, match="outside the calibrated"):
        threshold_for(1.0)
    assert WatchSettings().threshold == threshold_for(20.0, "garch")


def test_a_volatility_doubling_alarms_once_per_episode() -> None:
    rng = np.random.default_rng(7)
    n, change = REFERENCE_OBS + 400, REFERENCE_OBS + 150
    r = 0.006 * rng.standard_normal(n)
    r[change:] *= 2.0  # a lasting doubling: one alarm, not one every few weeks
    trace = advance(r[None, :], REFERENCE_OBS, threshold_for(20.0), 10, Cursor.fresh(1))
    alarm_pos = REFERENCE_OBS + np.flatnonzero(trace.alarm[0])
    after = alarm_pos[alarm_pos >= change]
    assert len(after) == 1, alarm_pos
    assert after[0] - change < 15
    onset = trace.onset[0, after[0] - REFERENCE_OBS]
    assert change - 10 <= onset <= after[0]


def test_daily_updates_resume_to_the_same_state_as_one_replay() -> None:
    rng = np.random.default_rng(11)
    n = REFERENCE_OBS + 160
    r = 0.006 * rng.standard_normal(n)
    r[REFERENCE_OBS + 60 :] *= 2.5
    values, days = walk(r), business_days(n + 1)
    settings = WatchSettings()
    batch = update(days, values, WatchState(), settings, days[-1])
    assert batch.rebuilt and batch.alarms

    state = update(
        days[: REFERENCE_OBS + 20], values[: REFERENCE_OBS + 20], WatchState(), settings, days[0]
    ).state
    seen = []
    for k in range(REFERENCE_OBS + 21, n + 2):
        step = update(
            days[:k],
            values[:k],
            WatchState.from_json(json.loads(json.dumps(state.to_json()))),
            settings,
            days[k - 1],
        )
        assert not step.rebuilt and step.steps == 1
        seen += [a.day for a in step.alarms]
        assert all(a.actionable for a in step.alarms)  # seen the day it happened
        state = step.state
    assert state == batch.state
    assert seen == [a.day for a in batch.alarms]


def test_replayed_history_is_not_actionable_and_changes_rebuild() -> None:
    rng = np.random.default_rng(3)
    n = REFERENCE_OBS + 200
    r = 0.006 * rng.standard_normal(n)
    r[REFERENCE_OBS + 50 :] *= 2.5
    values, days = walk(r), business_days(n + 1)
    settings = WatchSettings()
    first = update(days, values, WatchState(), settings, days[-1] + timedelta(days=30))
    assert first.alarms and first.actionable is None  # a first run replays history: records, calls nothing
    again = update(days, values, first.state, settings, days[-1])
    assert again.steps == 0 and not again.rebuilt
    other = update(days, values, first.state, WatchSettings(false_alarm_weeks=52.0), days[-1])
    assert other.rebuilt  # another threshold: replay
    revised = update(days[:-5], values[:-5], first.state, settings, days[-1])
    assert revised.rebuilt  # the state's last date is gone from the series


def test_too_little_data_says_so() -> None:
    days = business_days(100)
    up = update(days, np.linspace(900, 950, 100), WatchState(), WatchSettings(), days[-1])
    assert up.steps == 0 and up.note and "needs 252" in up.note


def test_state_json_round_trip_and_bad_files() -> None:
    s = WatchState(
        last_date=date(2024, 1, 2), statistic=1.5, episode=True, since_alarm=3, recovery=0.7,
        episode_onset=date(2023, 12, 27), onset=None, last_alarm=date(2023, 12, 29), alarms=4, threshold=2.5,
    )  # fmt: skip
    assert WatchState.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(DataError, match="not a version-1 watch state"):
        WatchState.from_json({"version": 99})
    with pytest.raises(DataError, match="malformed"):
        WatchState.from_json({"version": 1, "statistic": "x"})


def test_known_as_of_follows_the_series_rule() -> None:
    frame = pd.DataFrame(
        {"date": pd.to_datetime(["2024-03-04", "2024-03-05", "2024-03-06"]), "value": [1.0, 2.0, 3.0]}
    )
    as_of = date(2024, 3, 4)
    assert len(known_as_of(frame, as_of)) == 2  # USD/CLP: the value dated tomorrow is known tonight
    assert len(known_as_of(frame, as_of, known_days_before=0)) == 1  # published on its own date
    assert len(known_as_of(frame, as_of + timedelta(days=1), known_days_before=-1)) == 1  # a day late


def test_drift_check_follows_the_series_rule() -> None:
    from bot.core.params import TriggerSettings
    from bot.core.triggers import drift_check

    days = pd.bdate_range("2024-01-01", periods=200)
    frame = pd.DataFrame({"date": days, "value": walk(0.005 * np.random.default_rng(1).standard_normal(199))})
    as_of = days[150].date()
    usdclp = drift_check(frame, as_of, TriggerSettings())
    same_day = drift_check(frame, as_of, TriggerSettings(), known_days_before=0)
    assert usdclp.last_observation == days[151].date() and same_day.last_observation == as_of


def test_watch_settings_are_checked_at_the_edge() -> None:
    from bot.errors import SettingsError
    from bot.settings import settings_from_dict

    assert (
        settings_from_dict({"watch": {"false_alarm_weeks": 52}}).watch.threshold == THRESHOLDS["garch"][52.0]
    )
    with pytest.raises(SettingsError, match="outside the calibrated"):
        settings_from_dict({"watch": {"false_alarm_weeks": 2}})
    with pytest.raises(SettingsError, match="not one of garch, iid"):
        settings_from_dict({"watch": {"null_model": "normal"}})
    assert settings_from_dict({"data": {"known_days_before": 0}}).data.known_days_before == 0
