"""What commands print: one JSON envelope for scripts and tables that stay readable at 80 columns.

Every `--json` document is an object with `schema_version` (bumped only on a breaking change),
`command`, and the command's own keys; every time in it is ISO 8601 with its UTC offset
(`2026-01-12T18:00:00+00:00`), every missing number `null` (never NaN).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1
MISSING = "–"


def iso(value: Any) -> str | None:
    """ISO 8601 for a datetime-like (naive ones are taken as UTC), None for a missing one."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if stamp is pd.NaT:
        return None
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return str(stamp.isoformat(timespec="seconds"))


def clean(value: Any) -> Any:
    """JSON-safe: times ISO 8601, NaN/NaT null, numpy scalars plain, anything else its str()."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | pd.Timestamp) or value is pd.NaT:
        return iso(value)
    if hasattr(value, "item"):  # numpy scalars
        return clean(value.item())
    if hasattr(value, "to_dict"):
        return clean(value.to_dict())
    return str(value)


def document(command: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = clean({"schema_version": SCHEMA_VERSION, "command": command, **payload})
    return doc


def dumps(command: str, payload: Mapping[str, Any]) -> str:
    return json.dumps(document(command, payload), indent=2, allow_nan=False)


def emit(command: str, payload: Mapping[str, Any]) -> None:
    """A --json document on stdout: plain text, no console markup or wrapping."""
    import sys

    sys.stdout.write(dumps(command, payload) + "\n")
    sys.stdout.flush()


# --- human tables -------------------------------------------------------------------------------


def when(value: Any) -> str:
    """'2026-01-12 18:00' (UTC, no seconds, no microseconds) or '–'."""
    text = iso(value)
    if text is None:
        return MISSING
    if "T" not in text:
        return text
    return text[:16].replace("T", " ")


def cell(value: Any) -> str:
    """A table cell: missing values (None, NaN, NaT, '') as '–', never 'nan' or 'None'."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, datetime | pd.Timestamp):
        return when(value)
    text = str(value)
    return MISSING if text in ("", "nan", "None", "NaT", "<NA>") else text


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str = "text"  # text | time | words (snake_case shown as words, so a narrow column wraps)


HISTORY_COLUMNS = (
    Column("optimization_date", "when (UTC)", "time"),
    Column("horizon", "horizon"),
    Column("triggered_by", "trigger"),
    Column("status", "outcome", "words"),
    Column("verdict", "gate", "words"),
    Column("pull_request", "PR"),
    Column("run_id", "run"),
)


def rows(frame: pd.DataFrame, columns: Sequence[Column]) -> list[list[str]]:
    out = []
    for record in frame.to_dict("records"):
        out.append([_show(record.get(c.key), c.kind) for c in columns])
    return out


def _show(value: Any, kind: str) -> str:
    if kind == "time":
        return when(value)
    text = cell(value)
    return text.replace("_", " ") if kind == "words" else text


def history_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """History rows for --json: every column, times ISO 8601, missing values null."""
    records: list[dict[str, Any]] = clean(frame.to_dict("records"))
    return records


def table(headers: Sequence[str], body: Sequence[Sequence[str]], *, title: str | None = None) -> Any:
    """A rich Table that folds long cells instead of cutting them ('hori…', '2026…') on narrow terminals."""
    from rich.box import SIMPLE_HEAD
    from rich.table import Table

    out = Table(title=title, box=SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in headers:
        out.add_column(header, overflow="fold")
    for row in body:
        out.add_row(*row)
    return out


def version_line() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"chronops {version('chronops')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        from bot import __version__

        return f"chronops {__version__}"


def ingest_main(
    root: Any, *, source: str, path: Any, url: str | None, start_year: int, as_json: bool, out: Any, err: Any
) -> None:
    """`chronops ingest [--json]`: warnings on stderr, then a line or one JSON document."""
    from bot.flow.ingest import ingest_series

    report = ingest_series(root, source=source, path=path, url=url, start_year=start_year)
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if as_json:
        emit("ingest", {"source": source, "rows": report.rows, "first": report.first, "last": report.last,
                        "warnings": list(report.warnings)})  # fmt: skip
        return
    out.print(f"stored {report.rows} observations {report.first} → {report.last}")
