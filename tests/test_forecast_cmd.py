"""`chronops forecast`: one issue per horizon into the forecast log, idempotent per day and config.

The models are random-weight tiny Chronos models built offline: their forecasts are noise, so these
tests check dates, shapes, bookkeeping and idempotency, never accuracy.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.adapters.forecast_log import FORECAST_COLUMNS, read_forecast_log
from bot.adapters.store import write_table
from bot.commands.forecast import forecast_command
from bot.core.config import config_hash, parse_config
from bot.serve.issue import santiago_today, target_dates
from tests.conftest import run_cli

DAYS = pd.bdate_range("2024-01-01", periods=260)  # Mon 2024-01-01 … Fri 2024-12-27
NOW = datetime(2024, 12, 30, 15, 0, tzinfo=UTC)


def t5_config(model: Path, **changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "horizon": "7d", "prediction_length": 5, "model_id": str(model), "model_family": "t5",
        "context_length": 64, "num_samples": 20, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
    }  # fmt: skip
    doc.update(changes)
    return doc


def bolt_config(model: Path, **changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "horizon": "15d", "prediction_length": 10, "model_id": str(model), "model_family": "bolt",
        "context_length": 128,
    }  # fmt: skip
    doc.update(changes)
    return doc


@pytest.fixture
def ws(tmp_path: Path, tiny_t5: Path, tiny_bolt: Path) -> Path:
    root = tmp_path / "ws"
    values = 900.0 + np.cumsum(np.random.default_rng(7).normal(0.0, 3.0, len(DAYS)))
    write_table(root / "data" / "series.parquet", pd.DataFrame({"date": DAYS, "value": values}))
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "7d.json").write_text(json.dumps(t5_config(tiny_t5), indent=2) + "\n")
    (root / "configs" / "15d.json").write_text(json.dumps(bolt_config(tiny_bolt), indent=2) + "\n")
    return root


def test_target_dates_are_the_next_chilean_banking_days() -> None:
    friday = pd.Timestamp("2024-12-20")
    # Christmas (a Wednesday) is skipped: the 3rd observation after Friday is published on the 26th
    assert [d.date() for d in target_dates(friday, 3)] == [
        date(2024, 12, 23),
        date(2024, 12, 24),
        date(2024, 12, 26),
    ]
    assert target_dates(pd.Timestamp("2024-12-21"), 1)[0] == pd.Timestamp("2024-12-23")  # a Saturday obs
    # Sept 18-19 (Fiestas Patrias) and the Dec 31 bank holiday
    assert target_dates(pd.Timestamp("2025-09-17"), 1)[0] == pd.Timestamp("2025-09-22")
    assert [d.date() for d in target_dates(pd.Timestamp("2025-12-30"), 2)] == [date(2026, 1, 2), date(2026, 1, 5)]
    # the issue date is the calendar day in Chile: 02:00 UTC on Jan 1 is still Dec 31 there
    assert santiago_today(datetime(2025, 1, 1, 2, 0, tzinfo=UTC)) == date(2024, 12, 31)


def test_cli_forecast_appends_once_per_issue_date(ws: Path, tiny_t5: Path) -> None:
    first = run_cli("forecast", "--horizon", "7d", "--as-of", "2024-06-12", "-w", str(ws), timeout=120)
    assert first.code == 0, first
    assert "appended to the forecast log" in first.stdout and "random-weight" in first.stdout
    log = read_forecast_log(ws / "data" / "forecasts.parquet")
    assert list(log.columns) == FORECAST_COLUMNS and len(log) == 5
    cfg = parse_config(t5_config(tiny_t5))
    assert set(log["config_hash"]) == {config_hash(cfg)} and set(log["horizon"]) == {"7d"}
    assert set(log["issue_date"]) == {pd.Timestamp("2024-06-12")}
    # as of Wednesday 06-12 the value dated Thursday 06-13 is already published (it is fixed from
    # Wednesday's trades), so the path starts on Friday 06-14; Thursday 06-20 (Día de los Pueblos
    # Indígenas) is a holiday with no observado
    expected = ["2024-06-14", "2024-06-17", "2024-06-18", "2024-06-19", "2024-06-21"]
    assert list(log["target_date"]) == [pd.Timestamp(d) for d in expected]
    assert (log["lo95"] <= log["point"]).all() and (log["point"] <= log["hi95"]).all()
    assert set(log["model_id"]) == {str(tiny_t5)}

    again = run_cli("forecast", "--horizon", "7d", "--as-of", "2024-06-12", "-w", str(ws), timeout=120)
    assert again.code == 0, again
    assert "already in the forecast log" in again.stdout
    assert len(read_forecast_log(ws / "data" / "forecasts.parquet")) == 5, "no duplicate rows"

    bad = run_cli("forecast", "--horizon", "7d", "--as-of", "14/06/2024", "-w", str(ws), timeout=120)
    assert bad.code == 1 and bad.stderr.strip() == "error: --as-of '14/06/2024': not a date (use YYYY-MM-DD)"


def test_all_horizons_new_config_and_live_dir(ws: Path, tiny_bolt: Path) -> None:
    lines: list[str] = []
    code = forecast_command(ws, horizon=None, all_=True, as_of=None, live_dir=None, say=lines.append, now=NOW)
    assert code == 1, "30d and 90d have no config"
    assert any(ln.startswith("30d: failed:") and "not found" in ln for ln in lines), lines
    log = read_forecast_log(ws / "data" / "forecasts.parquet")
    assert log.groupby("horizon").size().to_dict() == {"7d": 5, "15d": 10}
    assert set(log["issue_date"]) == {pd.Timestamp("2024-12-30")}
    assert log.loc[log["horizon"] == "15d", "target_date"].min() == pd.Timestamp("2024-12-30")

    # a live dir with a different 15d config: a new hash is a new issue on the same day
    live = ws / "live"
    live.mkdir()
    (live / "15d.json").write_text(json.dumps(bolt_config(tiny_bolt, context_length=64)))
    lines.clear()
    code = forecast_command(
        ws, horizon="15d", all_=False, as_of=None, live_dir=live, say=lines.append, now=NOW
    )
    assert code == 0 and "appended" in lines[0], lines
    log = read_forecast_log(ws / "data" / "forecasts.parquet")
    assert log[log["horizon"] == "15d"]["config_hash"].nunique() == 2 and len(log) == 25
    lines.clear()
    forecast_command(ws, horizon="15d", all_=False, as_of=None, live_dir=live, say=lines.append, now=NOW)
    assert (
        "already in the forecast log" in lines[0]
        and len(read_forecast_log(ws / "data" / "forecasts.parquet")) == 25
    )


def test_t5_forecast_is_reproducible(ws: Path, tiny_t5: Path) -> None:
    """Same config, same data, same seed: the same numbers (a rerun after a crash logs no new draw)."""
    from bot.adapters.chronos import load_model
    from bot.serve.issue import predict_config

    cfg = parse_config(t5_config(tiny_t5))
    model = load_model(cfg.model_id)
    values = np.linspace(900.0, 950.0, 100)
    a = predict_config(model, cfg, values, seed=1, sample_chunk=10).median()
    b = predict_config(model, cfg, values, seed=1, sample_chunk=10).median()
    assert a.shape == (5,) and np.array_equal(a, b)
