"""`chronops ingest`: a date,value series into data/series.parquet, validated, atomically."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.adapters.sources import MINDICADOR_URL, fetch_mindicador, read_series_file
from bot.adapters.store import file_lock, write_table
from bot.core.series import SeriesReport, validate_series
from bot.errors import ChronopsError, UsageError
from bot.workspace import Workspace


def ingest_series(
    root: Path, *, source: str, path: Path | None, url: str | None = None, start_year: int = 2003
) -> SeriesReport:
    ws = Workspace.open(root)
    if source == "csv":
        if path is None:
            raise UsageError("--source csv needs a PATH to a date,value file")
        raw = read_series_file(path)
        label = str(path)
    elif source == "mindicador":
        raw = fetch_mindicador(url or MINDICADOR_URL, start_year=start_year)
        label = url or MINDICADOR_URL
    else:
        raise UsageError(f"unknown --source '{source}' (use csv or mindicador)")
    frame, report = validate_series(raw, source=label, max_gap_days=ws.settings.data.max_gap_days)
    with file_lock(ws.series_path):
        write_table(ws.series_path, frame)
    marker = ws.synthetic_marker
    if marker.exists() and source != "synthetic":
        marker.unlink()
    if ws.forecasts_path.exists():
        # New actuals turn logged forecasts into realized errors: fill "RMSE after" in the metrics.
        from datetime import UTC, datetime

        from bot.flow.records import fill_realized_from_forecast_log

        try:
            fill_realized_from_forecast_log(ws, frame, datetime.now(UTC))
        except ChronopsError as exc:
            report = replace(report, warnings=(*report.warnings, f"realized RMSE not updated: {exc}"))
    return report
