"""`chronops serve`: the forecaster service (hot reload of live configs, /healthz, daily forecasts)."""

from __future__ import annotations

from pathlib import Path

from bot.core.config import HORIZONS
from bot.errors import ChronopsError
from bot.serve.service import ForecasterService, Say
from bot.workspace import Workspace, resolve_horizons


def serve_command(
    root: Path,
    *,
    horizon: str | None,
    all_: bool,
    host: str,
    port: int,
    live_dir: Path | None,
    interval: float | None,
    once: bool,
    say: Say,
) -> int:
    """`chronops serve`: the forecaster service (or, with `once`, one load-and-forecast pass)."""
    ws = Workspace.open(root)
    horizons = resolve_horizons(horizon, all_) if (horizon or all_) else list(HORIZONS)
    live = live_dir if live_dir is not None else ws.live_dir
    if interval is not None and interval <= 0:
        raise ChronopsError(f"--interval {interval:g}: must be > 0 seconds")
    from bot.flow.ingest import ingest_series

    service = ForecasterService(ws, horizons, live, interval_seconds=interval, say=say, ingest=ingest_series)
    if once:
        issues = service.run_once()
        _, doc = service.health()
        for h, message in {**doc["errors"], **doc["forecast_errors"]}.items():
            say(f"{h}: {message}")
        return 0 if len(issues) == len(horizons) else 1
    service.serve(host, port)
    return 0
