"""`chronops history`: past optimizations from data/optimization_history.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from bot.adapters.history import read_history
from bot.workspace import Workspace

COLUMNS = ["optimization_date", "run_id", "horizon", "triggered_by", "status", "verdict", "pull_request"]


def history_command(root: Path, *, horizon: str | None, as_json: bool, console: Any) -> None:
    ws = Workspace.open(root)
    frame = read_history(ws.history_path)
    if horizon:
        frame = frame[frame["horizon"] == horizon]
    if as_json:
        console.print_json(frame.to_json(orient="records", date_format="iso"))
        return
    table = Table(*COLUMNS)
    for _, row in frame.iterrows():
        table.add_row(*(str(row[c]) for c in COLUMNS))
    console.print(table)
