"""`chronops history`: past optimizations from data/optimization_history.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.adapters.history import read_history
from bot.commands.output import HISTORY_COLUMNS, dumps, history_records, rows, table
from bot.workspace import Workspace, check_horizon


def history_command(root: Path, *, horizon: str | None, as_json: bool, console: Any) -> None:
    """A table with readable headers (times to the minute, UTC; '–' where nothing was recorded), or
    `--json`: every column, times ISO 8601, missing values null."""
    ws = Workspace.open(root, require=True)
    frame = read_history(ws.history_path)
    if horizon is not None:
        frame = frame[frame["horizon"] == check_horizon(horizon)]
    if as_json:
        console.out(dumps("history", {"horizon": horizon, "rows": history_records(frame)}), highlight=False)
        return
    if frame.empty:
        console.print(f"no optimization recorded yet{' for ' + horizon if horizon else ''} ({ws.history_path})")
        return
    console.print(table([c.header for c in HISTORY_COLUMNS], rows(frame, HISTORY_COLUMNS)))
