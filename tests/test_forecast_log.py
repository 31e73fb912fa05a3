"""The forecast log: schema, locked appends, realized errors joined to actuals."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.adapters.forecast_log import (
    ERROR_COLUMNS,
    FORECAST_COLUMNS,
    append_forecasts,
    read_forecast_log,
    realized_errors,
)
from bot.adapters.store import write_table
from bot.core.params import TriggerSettings
from bot.core.performance import performance_check
from bot.errors import DataError

DAYS = pd.bdate_range("2025-01-06", periods=30)
SERIES = pd.DataFrame({"date": DAYS, "value": 900.0 + np.arange(30, dtype=float)})


def forecasts(
    issue: int, steps: int = 5, horizon: str = "7d", config_hash: str = "abc123", bias: float = 2.0
) -> pd.DataFrame:
    targets = DAYS[issue + 1 : issue + 1 + steps]
    return pd.DataFrame(
        {
            "issue_date": [DAYS[issue]] * len(targets),
            "horizon": horizon,
            "config_hash": config_hash,
            "target_date": targets,
            "point": [900.0 + issue + k + 1 + bias for k in range(len(targets))],
            "lo95": 880.0,
            "hi95": 940.0,
            "model_id": "amazon/chronos-bolt-small",
            "created_at": pd.Timestamp("2025-01-01T12:00:00Z") + pd.Timedelta(days=issue),
        }
    )


def test_missing_log_is_empty_with_schema(tmp_path: Path) -> None:
    log = read_forecast_log(tmp_path / "forecasts.parquet")
    assert log.empty and list(log.columns) == FORECAST_COLUMNS


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "data" / "forecasts.parquet"
    append_forecasts(path, forecasts(0))
    append_forecasts(path, forecasts(1, horizon="15d"))
    log = read_forecast_log(path)
    assert len(log) == 10 and list(log.columns) == FORECAST_COLUMNS
    assert log["target_date"].dtype == "datetime64[ns]" and log["point"].dtype == np.float64
    assert str(log["created_at"].dt.tz) == "UTC"
    assert set(log["horizon"]) == {"7d", "15d"}
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "forecasts.parquet"
    threads = [threading.Thread(target=append_forecasts, args=(path, forecasts(i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_forecast_log(path)) == 40


def test_wrong_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "forecasts.parquet"
    write_table(path, pd.DataFrame({"date": [1], "value": [2.0]}))
    with pytest.raises(DataError, match=r"missing column\(s\) issue_date"):
        read_forecast_log(path)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "forecasts.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        read_forecast_log(path)


def test_bad_values_are_refused_on_append(tmp_path: Path) -> None:
    bad = forecasts(0)
    bad["point"] = bad["point"].astype(object)
    bad.loc[2, "point"] = "lots"
    with pytest.raises(DataError, match="row 2: point = 'lots' is not a number"):
        append_forecasts(tmp_path / "f.parquet", bad)
    with pytest.raises(DataError, match="unknown horizon '8d'"):
        append_forecasts(tmp_path / "f.parquet", forecasts(0, horizon="8d"))
    with pytest.raises(DataError, match="missing column"):
        append_forecasts(tmp_path / "f.parquet", forecasts(0).drop(columns=["model_id"]))
    assert not (tmp_path / "f.parquet").exists()


def test_realized_errors_join_actuals() -> None:
    log = pd.concat([forecasts(0), forecasts(1, bias=-3.0)], ignore_index=True)
    errors = realized_errors(log, SERIES, "7d", None)
    assert list(errors.columns) == ERROR_COLUMNS
    assert len(errors) == 10
    first = errors[errors["issue_date"] == DAYS[0]]
    assert first["error"].tolist() == pytest.approx([2.0] * 5)  # point - actual
    assert first["step"].tolist() == [1, 2, 3, 4, 5]
    assert errors[errors["issue_date"] == DAYS[1]]["error"].tolist() == pytest.approx([-3.0] * 5)


def test_only_the_requested_horizon() -> None:
    log = pd.concat([forecasts(0), forecasts(0, horizon="15d", bias=50.0)], ignore_index=True)
    errors = realized_errors(log, SERIES, "7d", None)
    assert errors["error"].tolist() == pytest.approx([2.0] * 5)
    assert realized_errors(log, SERIES, "90d", None).empty


def test_future_targets_have_no_error_yet() -> None:
    known = SERIES.iloc[:4]  # actuals up to DAYS[3]
    errors = realized_errors(forecasts(0), known, "7d", None)
    assert errors["target_date"].max() == DAYS[3] and len(errors) == 3


def test_unknown_hashes_are_reported_not_fatal() -> None:
    log = pd.concat([forecasts(0), forecasts(1, config_hash="zzz999", bias=40.0)], ignore_index=True)
    notes: list[str] = []
    errors = realized_errors(log, SERIES, "7d", {"abc123"}, warnings=notes)
    assert set(errors["config_hash"]) == {"abc123"}
    assert len(notes) == 1 and "zzz999" in notes[0] and "5" in notes[0]
    # without a warnings list nothing is raised either
    assert len(realized_errors(log, SERIES, "7d", {"abc123"})) == 5
    # every hash unknown: empty errors, still a note
    notes.clear()
    assert realized_errors(log, SERIES, "7d", {"nope"}, warnings=notes).empty and notes


def test_duplicate_rows_keep_the_latest() -> None:
    first = forecasts(0, bias=2.0)
    rerun = forecasts(0, bias=7.0)
    rerun["created_at"] = rerun["created_at"] + pd.Timedelta(hours=1)
    errors = realized_errors(pd.concat([first, rerun], ignore_index=True), SERIES, "7d", None)
    assert errors["error"].tolist() == pytest.approx([7.0] * 5)


def test_missing_actual_on_a_past_date_is_noted() -> None:
    holes = SERIES.drop(index=[2]).reset_index(drop=True)
    notes: list[str] = []
    errors = realized_errors(forecasts(0), holes, "7d", None, warnings=notes)
    assert len(errors) == 4 and notes and "no observation" in notes[0]


def test_empty_log_gives_empty_errors() -> None:
    log = read_forecast_log(Path("/nonexistent/forecasts.parquet"))
    errors = realized_errors(log, SERIES, "7d", None)
    assert errors.empty and list(errors.columns) == ERROR_COLUMNS


def test_errors_feed_the_performance_check() -> None:
    """Daily 5-step forecasts whose errors triple in the last two weeks: steps come along."""
    days = pd.bdate_range("2024-01-01", periods=130)
    rng = np.random.default_rng(0)
    series = pd.DataFrame({"date": days, "value": 900.0 + np.cumsum(rng.standard_normal(130))})
    as_of = days[110].date()
    frames = []
    for i in range(110):
        f = forecasts(0)
        targets = days[i + 1 : i + 6]
        scale = 3.0 if targets[0] > pd.Timestamp(as_of) - pd.Timedelta(days=14) else 1.0
        actual = series.set_index("date").loc[targets, "value"].to_numpy()
        f = f.assign(issue_date=days[i], target_date=targets, point=actual + scale * rng.standard_normal(5))
        frames.append(f)
    errors = realized_errors(pd.concat(frames, ignore_index=True), series, "7d", None)
    assert errors["step"].max() == 5
    check = performance_check(errors, as_of, TriggerSettings(), "forecast_log")
    assert check.fired and check.degradation_pct is not None and check.degradation_pct > 100
