"""The seed's operational KPIs (issue 17) on test_kpis' hand-built history; expected values by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from bot.core.kpis import TRIGGER_KINDS, run_table, trigger_kinds
from bot.core.ops_kpis import (
    deployment_success_rate,
    forecast_accuracy,
    manual_interventions,
    memory_per_run,
    rmse_trend,
    weekly_triggers,
)
from bot.flow.records import MetricsRecord, records_frame
from tests.test_kpis import frames, m, t

NOW = pd.Timestamp(t(28))


def test_manual_interventions_per_month() -> None:
    history, metrics = frames()
    k = manual_interventions(run_table(history, metrics), history, NOW)
    # PR2 merged by a person, R4 override + forced, H3 an operator rollback: 4 in 31 days (Dec 28 -> Jan 28)
    assert k.n == 4 and k.value == pytest.approx(4 / (31 / 30.44)) and k.met is False
    assert "1 merged by a person, 1 override(s), 1 forced run(s), 1 operator rollback(s)" in k.detail
    assert k.display == "3.9 per month"


def test_forecast_accuracy_uses_realized_rmse_when_known() -> None:
    k = forecast_accuracy(run_table(*frames()))
    # live: 7d PR3 (backtest 9.9; PR1's realized 8.0 was replaced), 30d PR2 (backtest 19.0); 90d H2 has none
    assert k.n == 2 and k.value == pytest.approx((9.9 + 19.0) / 2) and k.unit == "CLP"
    assert "7d 9.90 (backtest)" in k.detail and k.target.text == "7-11 CLP" and k.met is False


def test_deployment_success_rate() -> None:
    _, metrics = frames()
    k = deployment_success_rate(metrics)
    assert k.n == 4 and k.value == pytest.approx(75.0) and k.met is False  # D3 failed


def test_memory_per_run_is_the_largest_recorded_peak() -> None:
    _, metrics = frames()
    assert memory_per_run(metrics).value is None  # nothing recorded it yet
    more = records_frame(
        [m("R7", "7d", t(20), status="proposed", peak_rss_mib=585.0),
         m("R8", "30d", t(21), status="proposed", peak_rss_mib=804.5)], MetricsRecord
    )  # fmt: skip
    k = memory_per_run(pd.concat([metrics, more], ignore_index=True))
    assert k.value == pytest.approx(804.5) and k.n == 2 and k.met is True and k.display == "804.5 MiB"


def test_trend_marks_rolled_back_merges() -> None:
    points = rmse_trend(run_table(*frames()), [{"reverts": "3"}])
    assert [p["pull_request"] for p in points] == ["1", "2", "3", "4"]
    assert [p["rolled_back"] for p in points] == [False, False, True, False]
    assert points[0]["before"] == 10.0 and points[0]["after"] == 8.0 and points[0]["source"] == "realized"


def test_weekly_triggers_count_over_time() -> None:
    table = weekly_triggers(run_table(*frames()), trigger_kinds, TRIGGER_KINDS)
    assert list(table.columns) == ["week", *TRIGGER_KINDS]
    # R1 drift + R2 performance (week of Dec 29), R3 time + R4 forced (Jan 5), H1 time (Jan 12), H2 drift (Jan 19)
    assert [str(w.date()) for w in table["week"]] == ["2025-12-29", "2026-01-05", "2026-01-12", "2026-01-19"]
    assert list(TRIGGER_KINDS) == ["performance", "drift", "watch", "time", "manual"]
    assert table[list(TRIGGER_KINDS)].to_numpy().tolist() == [
        [1, 1, 0, 0, 0],
        [0, 0, 0, 1, 1],
        [0, 0, 0, 1, 0],
        [0, 1, 0, 0, 0],
    ]
