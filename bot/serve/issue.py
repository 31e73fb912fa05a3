"""Issuing one forecast: the live config, the series known on the issue date, the forecast log row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.adapters.chronos import LoadedModel, load_model
from bot.adapters.forecast_log import FORECAST_COLUMNS, append_forecasts, read_forecast_log
from bot.adapters.store import file_lock
from bot.adapters.tiny import is_random_weight_model
from bot.core.calendar import banking_days_after
from bot.core.config import HorizonConfig, config_hash
from bot.core.metrics import Forecast
from bot.core.schedule import SANTIAGO
from bot.workspace import Workspace


def utcnow() -> datetime:
    return datetime.now(UTC)


def santiago_today(now: datetime) -> date:
    """The issue date: the calendar day in Chile, where the observado is published."""
    return now.astimezone(SANTIAGO).date()


def target_dates(last_observation: pd.Timestamp, steps: int) -> pd.DatetimeIndex:
    """The next `steps` Chilean banking days after the last observation (weekends, public holidays
    and the Dec 31 bank holiday skipped: `bot.core.calendar`), one per forecast step."""
    return pd.DatetimeIndex(banking_days_after(pd.Timestamp(last_observation).date(), steps))


def live_config_path(ws: Workspace, horizon: str, live_dir: Path | None) -> Path:
    """configs/<h>.json of the workspace, or <live_dir>/<h>.json when a live dir is given."""
    return (live_dir / f"{horizon}.json") if live_dir is not None else ws.config_path(horizon)


def model_is_random(ws: Workspace, model_id: str) -> bool:
    path = Path(model_id)
    path = path if path.is_absolute() else ws.root / path
    return path.is_dir() and is_random_weight_model(path)


def predict_config(
    model: LoadedModel, cfg: HorizonConfig, values: np.ndarray, *, seed: int, sample_chunk: int
) -> Forecast:
    """One forecast of `cfg.prediction_length` steps from the last `effective_context_length` values."""
    context = np.asarray(values, dtype=np.float64)[-cfg.effective_context_length :]
    forecast, _seconds = model.predict(
        context, cfg.prediction_length, num_samples=cfg.num_samples, temperature=cfg.temperature,
        top_k=cfg.top_k, top_p=cfg.top_p, seed=seed, sample_chunk=sample_chunk,
    )  # fmt: skip
    return forecast


def forecast_rows(
    cfg: HorizonConfig,
    forecast: Forecast,
    targets: pd.DatetimeIndex,
    *,
    issue_date: date,
    created_at: datetime,
) -> pd.DataFrame:
    """The forecast log rows of one issue (FORECAST_COLUMNS)."""
    lo, hi = forecast.interval95()
    n = len(targets)
    return pd.DataFrame(
        {
            "issue_date": [pd.Timestamp(issue_date)] * n,
            "horizon": cfg.horizon,
            "config_hash": config_hash(cfg),
            "target_date": targets,
            "point": forecast.median()[:n],
            "lo95": lo[:n],
            "hi95": hi[:n],
            "model_id": cfg.model_id,
            "created_at": pd.Timestamp(created_at),
        },
        columns=FORECAST_COLUMNS,
    )


@dataclass(frozen=True)
class Issue:
    """One horizon's forecast for one issue date; `appended` is False when the log already had it."""

    horizon: str
    issue_date: date
    config_hash: str
    model_id: str
    rows: pd.DataFrame
    appended: bool
    random_weights: bool
    last_observation: date

    def to_json(self) -> dict[str, Any]:
        steps = [
            {
                "target_date": pd.Timestamp(r.target_date).date().isoformat(),
                "point": float(r.point),
                "lo95": float(r.lo95),
                "hi95": float(r.hi95),
            }
            for r in self.rows.itertuples(index=False)
        ]
        created = self.rows["created_at"].iloc[0] if len(self.rows) else None
        return {
            "horizon": self.horizon,
            "issue_date": self.issue_date.isoformat(),
            "config_hash": self.config_hash,
            "model_id": self.model_id,
            "created_at": pd.Timestamp(created).isoformat() if created is not None else None,
            "last_observation": self.last_observation.isoformat(),
            "random_weights": self.random_weights,
            "steps": steps,
        }

    def describe(self) -> str:
        first, last = self.rows["target_date"].iloc[0], self.rows["target_date"].iloc[-1]
        what = "appended to the forecast log" if self.appended else "already in the forecast log"
        note = " (random-weight test model: the numbers are meaningless)" if self.random_weights else ""
        return (
            f"{self.horizon}: issue {self.issue_date} config {self.config_hash}: {len(self.rows)} steps "
            f"{first:%Y-%m-%d} → {last:%Y-%m-%d}, {what}{note}"
        )


def _logged(path: Path, issue_date: date, horizon: str, digest: str) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = read_forecast_log(path)
    mine = frame[
        (frame["issue_date"] == pd.Timestamp(issue_date))
        & (frame["horizon"] == horizon)
        & (frame["config_hash"] == digest)
    ]
    if mine.empty:
        return None
    latest = mine["created_at"].max()
    return mine[mine["created_at"] == latest].sort_values("target_date", ignore_index=True)


def issue_forecast(
    ws: Workspace,
    cfg: HorizonConfig,
    *,
    series: pd.DataFrame,
    issue_date: date,
    now: datetime,
    model: LoadedModel | None = None,
) -> Issue:
    """Forecast `cfg` from `series` (the rows known on `issue_date`) and append it once to the log."""
    digest = config_hash(cfg)
    path = ws.forecasts_path
    last_obs = pd.Timestamp(series["date"].iloc[-1])
    random = model_is_random(ws, cfg.model_id)

    def issue(rows: pd.DataFrame, appended: bool) -> Issue:
        return Issue(cfg.horizon, issue_date, digest, cfg.model_id, rows, appended, random, last_obs.date())

    existing = _logged(path, issue_date, cfg.horizon, digest)
    if existing is not None:
        return issue(existing, False)
    model = model or load_model(cfg.model_id, expected_family=cfg.model_family, workspace=ws.root)
    search = ws.settings.search
    forecast = predict_config(
        model, cfg, series["value"].to_numpy(), seed=search.seed, sample_chunk=search.sample_chunk
    )
    rows = forecast_rows(
        cfg, forecast, target_dates(last_obs, cfg.prediction_length), issue_date=issue_date, created_at=now
    )
    # Check-then-append under a lock of its own (append_rows takes the log's lock, which flock would
    # not let this process take twice): two issuers of the same forecast never both append.
    with file_lock(path.with_name(path.name + ".issue")):
        existing = _logged(path, issue_date, cfg.horizon, digest)
        if existing is not None:
            return issue(existing, False)
        append_forecasts(path, rows)
    return issue(rows, True)
