"""`chronops forecast`: issue today's forecast for each horizon from its live config."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.adapters.configs import read_config
from bot.commands.output import iso
from bot.errors import ChronopsError
from bot.serve.issue import issue_forecast, live_config_path, santiago_today, utcnow
from bot.serve.service import Say
from bot.workspace import Workspace, resolve_horizons


def forecast_command(
    root: Path,
    *,
    horizon: str | None,
    all_: bool,
    as_of: date | None,
    live_dir: Path | None,
    say: Say,
    now: datetime | None = None,
    collect: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """`chronops forecast`: issue today's (or `as_of`'s) forecast per horizon. 1 when any failed."""
    from bot.adapters.sources import load_series

    ws = Workspace.open(root)
    horizons = resolve_horizons(horizon, all_)
    now = now or utcnow()
    issue_date = as_of or santiago_today(now)
    series = load_series(ws, issue_date)
    failures = 0
    for h in horizons:
        try:
            cfg = read_config(live_config_path(ws, h, live_dir))
            issued = issue_forecast(ws, cfg, series=series, issue_date=issue_date, now=now)
            say(issued.describe())
            if collect:
                doc = issued.to_json()
                collect({**doc, "created_at": iso(doc["created_at"]), "ok": True, "appended": issued.appended,
                         "error": None})  # fmt: skip
        except ChronopsError as exc:
            failures += 1
            say(f"{h}: failed: {exc}")
            if collect:
                collect({"horizon": h, "ok": False, "error": str(exc)})
    return 1 if failures else 0


def forecast_main(root: Path, *, as_json: bool, say: Say, **kwargs: Any) -> int:
    """`chronops forecast [--json]`: a line per horizon, or one JSON document with the forecasts."""
    from bot.commands.output import emit

    issued: list[dict[str, Any]] = []
    code = forecast_command(root, say=(lambda _: None) if as_json else say, collect=issued.append, **kwargs)
    if as_json:
        emit("forecast", {"ok": code == 0, "horizons": issued})
    return code
