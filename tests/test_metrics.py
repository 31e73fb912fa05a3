"""data/metrics.parquet: the schema round-trips, concurrent appends lose nothing, pipeline outcomes map
to rows, late merges come from the forge records, realized RMSE is filled from forecast errors."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.adapters.forges.base import ProposalResult, PullRecord
from bot.commands.init import default_config
from bot.core.config import config_hash
from bot.core.gate import Criterion, Verdict
from bot.core.performance import PerformanceCheck
from bot.core.triggers import DriftCheck, TimeCheck, TriggerDecision
from bot.flow.outcome import HorizonOutcome
from bot.flow.records import (
    METRICS_COLUMNS,
    MetricsRecord,
    append_metrics,
    fill_realized_rmse,
    metrics_from_outcome,
    read_metrics,
    realized_rmse,
    record_failed_run,
    record_run_metrics,
    records_frame,
    with_pulls,
)
from bot.settings import Settings
from bot.workspace import Workspace

NOW = datetime(2026, 1, 11, 5, 0, tzinfo=UTC)


def test_schema_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "metrics.parquet"
    append_metrics(path, [MetricsRecord("r1", "7d", NOW, status="skipped")])
    append_metrics(path, [MetricsRecord("r2", "30d", NOW, event="deploy", status="deployed", downtime=False,
                                        search_seconds=1.5, merged_at=NOW)])  # fmt: skip
    frame = read_metrics(path)
    assert list(frame.columns) == METRICS_COLUMNS and len(frame) == 2
    assert str(frame["recorded_at"].dt.tz) == "UTC"
    assert frame["downtime"].isna().iloc[0] and not frame["downtime"].iloc[1]
    assert frame["merged_at"].isna().iloc[0] and frame["merged_at"].iloc[1] == pd.Timestamp(NOW)
    assert frame["search_seconds"].iloc[1] == 1.5 and pd.isna(frame["search_seconds"].iloc[0])
    assert read_metrics(tmp_path / "absent.parquet").empty


def _append_many(path: str, worker: int) -> None:
    for i in range(8):
        append_metrics(Path(path), [MetricsRecord(f"w{worker}-{i}", "7d", NOW + timedelta(seconds=i))])


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.parquet"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(read_metrics(path)["run_id"]) == sorted(f"w{w}-{i}" for w in range(4) for i in range(8))


def decision(fire: bool, *, drift: bool = False, forced: bool = False) -> TriggerDecision:
    return TriggerDecision(
        horizon="7d", as_of=date(2026, 1, 11), fire=fire or forced, forced=forced,
        reasons=("Data drift: MEDIUM severity",) if drift else (),
        time=TimeCheck(False, 7, 14, None),
        drift=DriftCheck(drift, "MEDIUM" if drift else "NONE", False, "drift" if drift else None),
        performance=PerformanceCheck(False, 3.0, 0.4, "backtest", 10.0, 9.7, 10, 40, None),
    )  # fmt: skip


def verdict(approved: bool) -> Verdict:
    crit = Criterion("rmse_or_mape", "RMSE or MAPE improvement", 12.5, 5.0, ">=", approved, "RMSE -12.5%")
    return Verdict(
        approved=approved, decision="approved" if approved else "rejected", criteria=(crit,), reasons=(),
        rmse_improvement_pct=12.5, mape_improvement_pct=4.0, noise_probability=0.01,
        initial_deployment=False, override_reason=None, headline="approved",
    )  # fmt: skip


def test_outcomes_map_to_rows(tmp_path: Path) -> None:
    live = default_config("7d", "amazon/chronos-t5-small")
    winner = live.with_knobs(context_length=270, version=2)
    run_dir = tmp_path / "runs" / "r1" / "7d"
    report = {"validation_scores": {"current": {"rmse": 10.0}, "candidate": {"rmse": 8.75}}}
    pull = PullRecord(4, "7d", "chronops/7d", "t", "h", (), "merged", merged_at="2026-01-11T05:20:00+00:00",
                      merged_by="bot")  # fmt: skip
    merged = HorizonOutcome(
        "7d", "approved", decision=decision(True, drift=True), verdict=verdict(True), winner=winner, current=live,
        ranking=[(winner, None)] * 27, proposal=ProposalResult(pull, "created", merged=True), run_dir=run_dir,  # type: ignore[list-item]
        search_seconds=42.0, report=report,
    )  # fmt: skip
    row = metrics_from_outcome(merged, "r1", NOW)
    assert (row.status, row.triggered, row.triggered_by, row.drift_detected) == (
        "merged",
        True,
        "drift",
        True,
    )
    assert (row.configs_evaluated, row.search_seconds, row.validation_result) == (27, 42.0, "approved")
    assert (row.deployment_result, row.pull_request, row.merged_by) == ("merged", "4", "bot")
    assert row.merged_at == datetime(2026, 1, 11, 5, 20, tzinfo=UTC)
    assert (row.rmse_before, row.rmse_after, row.rmse_improvement_pct) == (10.0, 8.75, 12.5)
    assert json.loads(row.validation_criteria or "")[0]["name"] == "rmse_or_mape"
    assert json.loads(row.trigger_reasons) == ["Data drift: MEDIUM severity"]
    assert (row.old_config_hash, row.new_config_hash) == (config_hash(live), config_hash(winner))

    skipped = metrics_from_outcome(
        HorizonOutcome("7d", "skipped", decision=decision(False), current=live), "r2", NOW
    )
    assert (skipped.status, skipped.triggered, skipped.triggered_by) == ("skipped", False, "none")
    assert skipped.deployment_result == "not_proposed" and skipped.search_seconds is None
    same = HorizonOutcome("7d", "no_change", decision=decision(False, forced=True), verdict=verdict(False),
                          winner=live, current=live)  # fmt: skip
    row = metrics_from_outcome(same, "r3", NOW)
    assert (row.status, row.forced, row.triggered_by, row.deployment_result) == (
        "no_change",
        True,
        "forced",
        "unchanged",
    )

    ws = Workspace(tmp_path, Settings())
    record_run_metrics(ws, merged, "r1", NOW)
    record_failed_run(ws, "15d", "r1", NOW, "model load failed: " + "x" * 900)
    frame = read_metrics(ws.metrics_path)
    assert list(frame["status"]) == ["merged", "failed"] and len(frame["error"].iloc[1]) == 500


def test_late_merges_come_from_forge_records() -> None:
    metrics = records_frame([
        MetricsRecord("r1", "7d", NOW, status="merged", pull_request="1", merged_by="bot", merged_at=NOW),
        MetricsRecord("r2", "30d", NOW, status="proposed", pull_request="2"),
    ], MetricsRecord)  # fmt: skip
    pulls = [
        PullRecord(1, "7d", "chronops/7d", "t", "h", (), "merged", merged_at=NOW.isoformat(), merged_by="bot"),
        PullRecord(2, "30d", "chronops/30d", "t", "h", (), "merged", merged_at="2026-01-12T09:00:00+00:00",
                   merged_by="person"),
        PullRecord(3, "7d", "chronops/revert-7d-1", "t", "h", (), "merged", kind="revert", reverts=1,
                   merged_at="2026-01-13T09:00:00+00:00", merged_by="person"),
        PullRecord(4, "15d", "chronops/15d", "t", "h", (), "open"),
    ]  # fmt: skip
    out = with_pulls(metrics, pulls, NOW)
    extra = out.iloc[2:]
    assert list(extra["event"]) == ["merge", "rollback"] and list(extra["pull_request"]) == ["2", "3"]
    assert list(extra["merged_by"]) == ["person", "person"] and extra["rollback_of"].iloc[1] == "1"
    assert len(with_pulls(out, pulls, NOW)) == len(out)  # idempotent


def test_realized_rmse_is_filled_once(tmp_path: Path) -> None:
    merged_at = datetime(2026, 1, 10, tzinfo=UTC)
    ws = Workspace(tmp_path, Settings())
    append_metrics(ws.metrics_path, [
        MetricsRecord("r1", "7d", merged_at, status="merged", merged_at=merged_at, old_config_hash="old",
                      new_config_hash="new", rmse_before=10.0, rmse_after=9.0),
        MetricsRecord("r2", "30d", merged_at, status="proposed"),
    ])  # fmt: skip
    days = [merged_at + timedelta(days=d) for d in range(-6, 7) if d != 0]
    errors = pd.DataFrame({
        "horizon": "7d", "target_date": days,
        # before the merge the old config errs by 4 (RMSE 4); after it the new one by 3 (RMSE 3)
        "error": [4.0, -4.0, 4.0, -4.0, 4.0, -4.0, 3.0, -3.0, 3.0, -3.0, 3.0, -3.0],
        "config_hash": ["old"] * 6 + ["new"] * 6,
    })  # fmt: skip
    errors.loc[len(errors)] = ["7d", merged_at + timedelta(days=1), 100.0, "other"]  # another config: ignored
    assert fill_realized_rmse(ws, errors.iloc[:8], NOW, min_points=5) == 0  # only 2 points after
    assert fill_realized_rmse(ws, errors, NOW, min_points=5) == 1
    row = read_metrics(ws.metrics_path).iloc[0]
    assert (row["realized_rmse_before"], row["realized_rmse_after"]) == (4.0, 3.0)
    assert fill_realized_rmse(ws, errors, NOW) == 0
    assert realized_rmse(read_metrics(ws.metrics_path), errors.iloc[0:0], now=NOW).equals(
        read_metrics(ws.metrics_path)
    )


@pytest.mark.parametrize("bad", ["not parquet"])
def test_corrupt_metrics_is_one_clear_error(tmp_path: Path, bad: str) -> None:
    from bot.errors import DataError

    path = tmp_path / "metrics.parquet"
    path.write_text(bad)
    with pytest.raises(DataError, match="not a readable parquet file"):
        read_metrics(path)


def test_realized_rmse_from_the_forecast_log(tmp_path: Path) -> None:
    from bot.adapters.forecast_log import append_forecasts
    from bot.flow.records import fill_realized_from_forecast_log

    ws = Workspace(tmp_path, Settings())
    merged_at = datetime(2026, 1, 10, tzinfo=UTC)
    append_metrics(ws.metrics_path, [MetricsRecord("r1", "7d", merged_at, status="merged", merged_at=merged_at,
                                                   old_config_hash="old", new_config_hash="new")])  # fmt: skip
    assert (
        fill_realized_from_forecast_log(ws, pd.DataFrame({"date": [], "value": []}), NOW) == 0
    )  # no log yet
    days = pd.bdate_range("2025-12-01", "2026-02-10")
    series = pd.DataFrame({"date": days, "value": 900.0})
    rows = []
    for d in days[:-1]:
        config = "old" if d < pd.Timestamp("2026-01-10") else "new"
        rows.append({"issue_date": d, "horizon": "7d", "config_hash": config, "target_date": d + pd.offsets.BDay(1),
                     "point": 904.0 if config == "old" else 902.0, "lo95": 880.0, "hi95": 920.0,
                     "model_id": "m", "created_at": d})  # fmt: skip
    append_forecasts(ws.forecasts_path, pd.DataFrame(rows))
    assert fill_realized_from_forecast_log(ws, series, NOW) == 1
    row = read_metrics(ws.metrics_path).iloc[0]
    assert (row["realized_rmse_before"], row["realized_rmse_after"]) == (4.0, 2.0)
