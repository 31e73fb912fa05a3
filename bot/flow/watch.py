"""The daily volatility watch, one banking day at a time: update the detector, record, call a run.

Decisions come from `bot.core.watch`; this module only sequences IO:
1. under the workspace lock: read the state (`data/watch_state.json`), advance it over the returns
   known today, write it back atomically, and append any alarm to `data/watch_alarms.parquet`
   (with its statistic, threshold, onset, volatility ratio, reason and what was done about it);
2. for the newest fresh alarm: email it (`watch_alarm`), then start the out-of-cycle optimization
   of `watch.horizons` -- on GitHub a workflow_dispatch of optimize.yml with the reason (the
   forge's `request_run`), locally the run itself (`chronops run --watch-reason`), after the lock
   is released (the run takes it).
The state is written before the run starts, so a crash in between loses that run rather than
starting a second one, and an alarm already acted on (by its day, in the alarm log) never acts again,
even when a lost state file is rebuilt from the series: one episode calls at most one run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bot.adapters.forges.base import Forge
from bot.adapters.lock import workspace_lock
from bot.adapters.store import append_rows, atomic_write_text, read_table
from bot.core.watch import Alarm, WatchState, WatchUpdate, update
from bot.errors import DataError, ForgeError
from bot.workspace import Workspace

STATE_FILE = "data/watch_state.json"
ALARMS_FILE = "data/watch_alarms.parquet"
ALARM_COLUMNS = [
    "day", "recorded_at", "statistic", "threshold", "onset", "ratio", "observations", "actionable",
    "action", "horizons", "reason", "detail",
]  # fmt: skip

RunLocally = Callable[[list[str], str], int]


@dataclass(frozen=True)
class WatchResult:
    as_of: date
    update: WatchUpdate
    action: str  # none | ran | dispatched | recorded | run_failed | dry_run | disabled
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        s = self.update.state
        return {
            "schema_version": 1,
            "as_of": self.as_of.isoformat(),
            "action": self.action,
            "detail": self.detail,
            "steps": self.update.steps,
            "rebuilt": self.update.rebuilt,
            "note": self.update.note,
            "state": s.to_json(),
            "alarms": [a.to_json() for a in self.update.alarms],
        }


def state_path(ws: Workspace) -> Path:
    return ws.path(STATE_FILE)


def alarms_path(ws: Workspace) -> Path:
    return ws.path(ALARMS_FILE)


def read_state(path: Path) -> WatchState:
    if not path.exists():
        return WatchState()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable watch state ({exc}); delete it to rebuild it") from None
    return WatchState.from_json(raw, source=str(path))


def read_alarms(ws: Workspace) -> pd.DataFrame:
    return read_table(alarms_path(ws), columns=ALARM_COLUMNS)


def run_watch(
    ws: Workspace,
    series: pd.DataFrame,
    as_of: date,
    now: datetime,
    *,
    forge: Forge | None,
    run_locally: RunLocally,
    dry_run: bool = False,
) -> WatchResult:
    """One daily step. `series`: the rows known as of `as_of`; `forge` None with `dry_run`."""
    settings = ws.settings.watch
    with workspace_lock(ws.path("data"), timeout=ws.settings.data.lock_timeout_seconds):
        state = read_state(state_path(ws))
        days = [pd.Timestamp(d).date() for d in series["date"]]
        up = update(days, series["value"].to_numpy(dtype=float), state, settings, as_of)
        alarm = up.actionable if settings.enabled else None
        if dry_run:
            return WatchResult(
                as_of, up, "dry_run", "nothing written" + (f"; would act on {alarm.day}" if alarm else "")
            )
        atomic_write_text(state_path(ws), json.dumps(up.state.to_json(), indent=2) + "\n")
        for a in up.alarms:
            if a is not alarm:
                why = (
                    "watch disabled"
                    if not settings.enabled
                    else "too old to act on (catch-up or first replay)"
                )
                _record(ws, a, now, "recorded", why)
        if alarm is None and settings.enabled:
            alarm = _pending(ws, as_of, settings.act_within_days)  # a dispatch that failed: retry it
        if alarm is None:
            return WatchResult(as_of, up, "disabled" if not settings.enabled else "none")
        if _acted_on(ws, alarm):  # a rebuilt state (lost file) sees the same alarm again: never twice
            _record(ws, alarm, now, "recorded", "already acted on")
            return WatchResult(as_of, up, "none", f"the alarm of {alarm.day} already called its run")
        _record(ws, alarm, now, "starting", "")
    _email(ws, alarm, now)
    action, detail = _start_run(alarm, list(settings.horizons), forge, run_locally)
    _record(ws, alarm, now, action, detail)
    return WatchResult(as_of, up, action, detail)


def _start_run(
    alarm: Alarm, horizons: list[str], forge: Forge | None, run_locally: RunLocally
) -> tuple[str, str]:
    if forge is not None:
        try:
            dispatched = forge.request_run(horizons, alarm.reason)
        except ForgeError as exc:  # nothing started: the next daily run retries (see _pending)
            return "dispatch_failed", str(exc)
        if dispatched is not None:
            return "dispatched", dispatched
    code = run_locally(horizons, alarm.reason)
    return ("ran", f"chronops run for {', '.join(horizons)}") if code == 0 else ("run_failed", f"exit {code}")


def _last_actions(ws: Workspace) -> pd.DataFrame:
    """The alarm log's last row per alarm day."""
    log = read_alarms(ws)
    if log.empty:
        return log
    log = log.assign(day=pd.to_datetime(log["day"]).dt.date)
    return log.drop_duplicates(subset=["day"], keep="last")


def _acted_on(ws: Workspace, alarm: Alarm) -> bool:
    last = _last_actions(ws)
    acted = (
        last[last["action"].isin(("starting", "ran", "run_failed", "dispatched"))] if not last.empty else last
    )
    return bool((acted["day"] == alarm.day).any()) if not acted.empty else False


def _pending(ws: Workspace, as_of: date, within_days: int) -> Alarm | None:
    """The newest alarm whose dispatch failed, while it is fresh enough to act on."""
    last = _last_actions(ws)
    if last.empty:
        return None
    failed = last[last["action"] == "dispatch_failed"].sort_values("day")
    if failed.empty or (as_of - failed["day"].iloc[-1]).days > within_days:
        return None
    r = failed.iloc[-1]
    return Alarm(
        r["day"], float(r["statistic"]), float(r["threshold"]), pd.Timestamp(r["onset"]).date(),
        float(r["ratio"]), int(r["observations"]), True,
    )  # fmt: skip


def _record(ws: Workspace, alarm: Alarm, now: datetime, action: str, detail: str) -> None:
    row = pd.DataFrame(
        [{
            "day": pd.Timestamp(alarm.day), "recorded_at": pd.Timestamp(now), "statistic": alarm.statistic,
            "threshold": alarm.threshold, "onset": pd.Timestamp(alarm.onset), "ratio": alarm.ratio,
            "observations": alarm.observations, "actionable": alarm.actionable, "action": action,
            "horizons": ",".join(ws.settings.watch.horizons), "reason": alarm.reason, "detail": detail,
        }]
    )  # fmt: skip
    append_rows(alarms_path(ws), row, columns=ALARM_COLUMNS)


def _email(ws: Workspace, alarm: Alarm, now: datetime) -> None:
    from bot.flow.alerts import notify

    notify(ws, "watch_alarm", alarm_context(ws, alarm), now=now)


def alarm_context(ws: Workspace, alarm: Alarm) -> dict[str, Any]:
    """The watch_alarm email's context."""
    return {
        "horizon": "all" if len(ws.settings.watch.horizons) == 4 else ",".join(ws.settings.watch.horizons),
        "day": alarm.day.isoformat(),
        "onset": alarm.onset.isoformat(),
        "statistic": round(alarm.statistic, 2),
        "threshold": round(alarm.threshold, 2),
        "ratio": round(alarm.ratio, 2),
        "reason": alarm.reason,
        "false_alarm_weeks": ws.settings.watch.false_alarm_weeks,
        "forge": ws.settings.forge.kind,
    }
