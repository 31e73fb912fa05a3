"""KPIs on hand-built histories, every expected value computed by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from bot.adapters.history import HistoryRecord
from bot.core.kpis import (
    compute_kpis,
    drift_episodes,
    rolling_validation_rate,
    run_table,
    time_to_remediation,
    trigger_kinds,
)
from bot.flow.records import MetricsRecord, records_frame


def t(day: int, hour: int = 5, minute: int = 0, month: int = 1) -> datetime:
    return datetime(2026 if month < 12 else 2025, month, day, hour, minute, tzinfo=UTC)


def m(run_id: str, horizon: str, at: datetime, **kw: Any) -> MetricsRecord:
    return MetricsRecord(run_id=run_id, horizon=horizon, recorded_at=at, **kw)


def h(run_id: str, horizon: str, at: datetime, **kw: Any) -> HistoryRecord:
    base: dict[str, Any] = {
        "triggered_by": "time", "performance_degradation_pct": None, "drift_severity": "NONE",
        "days_since_last": None, "success": True, "status": "rejected",
    }  # fmt: skip
    return HistoryRecord(run_id=run_id, horizon=horizon, optimization_date=at, **{**base, **kw})


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    metrics = [
        # 7d: a clean check, then drift one week later triggers a run that the bot merges in 1 h
        m("R0", "7d", t(28, month=12), status="skipped", triggered_by="none"),
        m("R1", "7d", t(4), status="merged", triggered=True, triggered_by="drift", drift_detected=True,
          drift_severity="MEDIUM", validation_result="approved", pull_request="1", merged_by="bot",
          merged_at=t(4, 6), rmse_before=10.0, rmse_after=9.0, realized_rmse_before=10.0,
          realized_rmse_after=8.0),  # realized wins: 20 %
        # 30d: rejected, proposed for review, a person merges it 36 h after the trigger
        m("R2", "30d", t(4), status="proposed", triggered=True, triggered_by="performance",
          validation_result="rejected", pull_request="2", rmse_before=20.0, rmse_after=19.0),  # 5 %
        m("M2", "30d", t(6), event="merge", status="merged", pull_request="2", merged_by="person",
          merged_at=t(5, 17)),
        # 30d: time trigger, nothing better found
        m("R3", "30d", t(11), status="no_change", triggered=True, triggered_by="time",
          validation_result="rejected"),
        # 7d: forced run approved by override, merged by the bot 30 min later
        m("R4", "7d", t(11), status="merged", triggered=True, triggered_by="forced", forced=True,
          validation_result="approved_override", override_reason="demo", pull_request="3",
          merged_by="bot", merged_at=t(11, 5, 30), rmse_before=9.0, rmse_after=9.9),  # -10 %
        m("R5", "15d", t(11), status="failed", deployment_result="failed", error="boom"),
        m("R6", "90d", t(11), status="skipped", triggered_by="none"),
        m("D1", "7d", t(4, 7), event="deploy", status="deployed", downtime=False),
        m("D2", "30d", t(5, 18), event="deploy", status="deployed", downtime=False),
        m("D3", "7d", t(11, 6), event="deploy", status="failed", downtime=True),
        m("D4", "7d", t(11, 7), event="deploy", status="deployed", downtime=None),  # unknown: not counted
    ]  # fmt: skip
    history = [
        # runs the metrics do not have (recorded before metrics existed): 90d drift seen on the 18th
        # by a time-triggered run (rejected), drift-triggered run merged by the bot on the 25th
        h("H1", "90d", t(18), drift_severity="MEDIUM", status="rejected", verdict="rejected"),
        h("H2", "90d", t(25), triggered_by="drift", drift_severity="HIGH", status="merged",
          verdict="approved", pull_request="4"),
        # a rollback row is not a run
        h("H3", "7d", t(12), triggered_by="rollback", status="rolled_back", pull_request="5"),
        # a history row the metrics already have is not counted twice
        h("R1", "7d", t(4), triggered_by="drift", status="merged", verdict="approved", pull_request="1"),
    ]  # fmt: skip
    return records_frame(history, HistoryRecord), records_frame(metrics, MetricsRecord)


def by_key() -> dict[str, Any]:
    return {k.key: k for k in compute_kpis(*frames())}


def test_run_table_merges_sources_and_attaches_late_merges() -> None:
    runs = run_table(*frames())
    assert list(runs["run_id"]) == ["R0", "R1", "R2", "R3", "R4", "R5", "R6", "H1", "H2"]
    r2 = runs[runs["run_id"] == "R2"].iloc[0]
    assert r2["merged_by"] == "person" and r2["merged_at"] == pd.Timestamp(t(5, 17))
    h2 = runs[runs["run_id"] == "H2"].iloc[0]
    assert h2["merged_by"] == "bot" and h2["source"] == "history"


def test_automation_rate() -> None:
    k = by_key()["automation_rate"]
    # merged: PR1 (bot), PR2 (person), PR3 (bot, override), PR4 (bot) -> 2 of 4
    assert k.n == 4 and k.value == pytest.approx(50.0) and k.met is False
    assert "1 merged by a person, 1 approved by override" in k.detail


def test_validation_success_rate() -> None:
    k = by_key()["validation_success_rate"]
    # verdicts: R1 approved, R2 rejected, R3 rejected, R4 override, H1 rejected, H2 approved -> 2/6
    assert k.n == 6 and k.value == pytest.approx(100 / 3) and k.met is False


def test_rmse_improvement_prefers_realized() -> None:
    k = by_key()["rmse_improvement"]
    # PR1 realized 20 %, PR2 backtest 5 %, PR3 backtest -10 %, PR4 unknown -> (20 + 5 - 10) / 3 = 5
    assert k.n == 3 and k.value == pytest.approx(5.0) and k.met is True
    assert "1 realized, 2 backtest" in k.detail


def test_zero_downtime_rate() -> None:
    k = by_key()["zero_downtime_rate"]
    assert k.n == 3 and k.value == pytest.approx(200 / 3) and k.met is False


def test_false_positive_rate() -> None:
    k = by_key()["false_positive_rate"]
    # fired, not forced, with a result: R1, R2, R3, H1, H2; nothing better: R2, R3, H1 -> 60 %
    assert k.n == 5 and k.value == pytest.approx(60.0) and k.met is False


def test_drift_detection_latency() -> None:
    episodes = drift_episodes(run_table(*frames()))
    # 7d: clean 12-28, drift-triggered 01-04 -> 7 days; 90d: clean 01-11 (R6), drift seen 01-18
    # by a time run, first drift-triggered run 01-25 -> 14 days
    assert [(e["horizon"], e["latency_days"]) for e in episodes] == [("7d", 7.0), ("90d", 14.0)]
    k = by_key()["drift_detection_latency"]
    assert k.n == 2 and k.value == pytest.approx(10.5) and k.met is False


def test_drift_onset_from_detector_wins_and_unknown_onset_is_skipped() -> None:
    metrics = records_frame([
        # drift from the very first check: no clean run before, no detector date -> not measured
        m("A", "7d", t(4), triggered=True, triggered_by="drift", drift_detected=True, status="rejected"),
        m("B", "7d", t(11), status="skipped"),
        m("C", "7d", t(18), triggered=True, triggered_by="drift", drift_detected=True,
          drift_onset=t(16, 0), status="rejected"),  # detector dates it 2 days 5 h earlier
    ], MetricsRecord)  # fmt: skip
    history = records_frame([], HistoryRecord)
    episodes = drift_episodes(run_table(history, metrics))
    assert [e["latency_days"] for e in episodes] == [pytest.approx(2 + 5 / 24)]


def test_time_to_remediation() -> None:
    k = by_key()["time_to_remediation"]
    # PR1 1 h, PR2 36 h, PR3 0.5 h, PR4 0 h -> 37.5 / 4
    assert k.n == 4 and k.value == pytest.approx(9.375) and k.met is True


def test_remediation_counts_from_the_first_run_of_an_updated_pull_request() -> None:
    metrics = records_frame([
        m("A", "30d", t(4), triggered=True, triggered_by="performance", status="proposed",
          validation_result="rejected", pull_request="7"),
        m("B", "30d", t(11), triggered=True, triggered_by="performance", status="proposed",
          validation_result="approved", pull_request="7"),  # the same PR, updated
        m("M", "30d", t(12), event="merge", pull_request="7", merged_by="person", merged_at=t(12, 5)),
    ], MetricsRecord)  # fmt: skip
    runs = run_table(records_frame([], HistoryRecord), metrics)
    assert runs.loc[runs["run_id"] == "B", "merged_by"].item() == "person"
    assert runs.loc[runs["run_id"] == "A", "merged_at"].isna().item()
    k = time_to_remediation(runs)
    assert k.n == 1 and k.value == pytest.approx(8 * 24)  # 01-04 05:00 -> 01-12 05:00


def test_empty_inputs_give_na_not_errors() -> None:
    kpis = compute_kpis(records_frame([], HistoryRecord), records_frame([], MetricsRecord))
    assert len(kpis) == 7
    assert all(k.value is None and k.n == 0 and k.met is None and k.display == "n/a" for k in kpis)
    assert {k.to_dict()["target"] for k in kpis} >= {">= 80%", "<= 24 hours", "5-10%"}


def test_rolling_validation_rate() -> None:
    runs = run_table(*frames())
    rate = rolling_validation_rate(runs, days=30)
    # 01-04: R1 approved, R2 rejected -> 50 %; 01-11: + R3 rejected, R4 override -> 1/4;
    # 01-18: + H1 rejected -> 1/5; 01-25: + H2 approved -> 2/6
    assert list(rate["rate"].round(2)) == [50.0, 25.0, 20.0, 33.33]
    assert list(rate["n"]) == [2, 4, 5, 6]
    short = rolling_validation_rate(runs, days=7)
    assert list(short["n"]) == [2, 2, 1, 1]  # 7-day windows ending each verdict day


def test_trigger_kinds() -> None:
    assert trigger_kinds("Performance degradation, Data drift", False) == ["performance", "drift"]
    assert trigger_kinds("time", True) == ["time", "manual"]
    assert trigger_kinds(None, False) == []
