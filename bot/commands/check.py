"""`chronops check`: the trigger decision per horizon, printed or as stable JSON.

The same decision `chronops run` uses. `--data` takes any date,value CSV/parquet series instead of
the store; `--as-of DATE` evaluates as if today were DATE using only data known then. Exit 0 whether
or not anything fires; non-zero only on errors.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bot.adapters.sources import load_series, read_series_file
from bot.core.series import known_as_of, validate_series
from bot.core.triggers import TriggerDecision
from bot.errors import ChronopsError, DataError
from bot.flow.pipeline import trigger_decision
from bot.workspace import Workspace, resolve_horizons


def check(
    root: Path, *, horizon: str | None, all_: bool, data: Path | None, as_of: date | None,
    known_days_before: int | None = None,
) -> list[TriggerDecision]:  # fmt: skip
    """`known_days_before`: when a value of `--data` becomes known (default `data.known_days_before`)."""
    ws = Workspace.open(root, require=True)
    horizons = resolve_horizons(horizon, all_ or horizon is None)
    today = as_of or datetime.now(UTC).date()
    if known_days_before is not None and data is None:
        raise ChronopsError("--known-days-before describes a --data series (the store uses data.known_days_before)")
    known = ws.settings.data.known_days_before if known_days_before is None else known_days_before
    if data is not None:
        frame, _ = validate_series(
            read_series_file(data), source=str(data), max_gap_days=ws.settings.data.max_gap_days
        )
        series = known_as_of(frame, today, known) if as_of else frame
    else:
        series = load_series(ws, as_of)
    if series.empty:
        raise DataError(f"no observations known on or before {today}")
    if pd.Timestamp(series["date"].iloc[0]).date() > today:
        raise DataError(f"--as-of {today} is before the first observation")
    from bot.adapters.configs import read_config
    from bot.flow.pipeline import backtest_errors

    return [
        trigger_decision(
            ws,
            h,
            series,
            today,
            force=False,
            backtest_errors=backtest_errors(ws, read_config(ws.config_path(h))),
            known_days_before=known,
        )
        for h in horizons
    ]


def as_json_doc(decisions: list[TriggerDecision]) -> dict[str, Any]:
    return {"schema_version": 1, "decisions": [d.to_json() for d in decisions]}


def describe(d: TriggerDecision) -> str:
    head = f"{d.horizon}: {'FIRE' if d.fire else 'no trigger'} (as of {d.as_of})"
    lines = [head]
    lines += [f"  - {r}" for r in d.reasons]
    for name, check_ in (("time", d.time), ("drift", d.drift), ("performance", d.performance)):
        reason = getattr(check_, "reason", None)
        if reason and not check_.fired:
            lines.append(f"  · {name}: {reason}")
    return "\n".join(lines)


def check_command(
    root: Path, *, horizon: str | None, all_: bool, data: Path | None, as_of: str | None, as_json: bool,
    console: Any, known_days_before: int | None = None,
) -> None:  # fmt: skip
    when = None
    if as_of:
        try:
            when = date.fromisoformat(as_of)
        except ValueError:
            raise ChronopsError(f"--as-of {as_of!r} is not a date (use YYYY-MM-DD)") from None
    decisions = check(
        root, horizon=horizon, all_=all_, data=data, as_of=when, known_days_before=known_days_before
    )
    if as_json:
        from bot.commands.output import dumps

        console.out(dumps("check", as_json_doc(decisions)), highlight=False)
        return
    for d in decisions:
        console.print(describe(d), markup=False, highlight=False)
