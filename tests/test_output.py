"""The JSON envelope and the human tables (issue 17): ISO 8601 times, no NaN, no 'nan', no
microseconds, nothing cut off at 80 columns."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, date, datetime

import pandas as pd
from rich.console import Console

from bot.commands.output import HISTORY_COLUMNS, cell, document, dumps, iso, rows, table, when


def test_document_has_schema_version_and_iso_times() -> None:
    doc = document("watchdog", {"at": datetime(2026, 1, 12, 18, 0, 0, 123456, tzinfo=UTC), "x": math.nan,
                                "d": date(2026, 1, 2), "t": pd.Timestamp("2026-01-03 04:05:06")})  # fmt: skip
    assert doc == {"schema_version": 1, "command": "watchdog", "at": "2026-01-12T18:00:00+00:00", "x": None,
                   "d": "2026-01-02", "t": "2026-01-03T04:05:06+00:00"}  # fmt: skip
    assert json.loads(dumps("history", {"rows": [{"v": float("inf")}]}))["rows"] == [{"v": None}]


def test_cells_never_say_nan() -> None:
    assert [cell(v) for v in (None, math.nan, pd.NaT, "", "nan", "7d", 3)] == ["–"] * 5 + ["7d", "3"]
    assert when(pd.Timestamp("2026-01-12 18:00:00.123456", tz="UTC")) == "2026-01-12 18:00"
    assert iso(None) is None and iso(pd.NaT) is None


def test_history_table_is_readable_at_80_columns() -> None:
    frame = pd.DataFrame([{
        "optimization_date": pd.Timestamp("2026-11-30 10:32:46.123456", tz="UTC"), "horizon": "7d",
        "triggered_by": "forced", "status": "rolled_back", "verdict": None, "pull_request": math.nan,
        "run_id": "20261130T103246Z-642755",
    }])  # fmt: skip
    body = rows(frame, HISTORY_COLUMNS)
    assert body == [["2026-11-30 10:32", "7d", "forced", "rolled back", "–", "–", "20261130T103246Z-642755"]]
    sink = io.StringIO()
    Console(file=sink, width=80).print(table([c.header for c in HISTORY_COLUMNS], body))
    text = sink.getvalue()
    assert "…" not in text and "nan" not in text and ".123456" not in text
    assert "when (UTC)" in text and "optimization_date" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
