"""`chronops status`: live configs, last runs and the seed's KPIs, as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.flow.status import status_at_document, status_document
from bot.render.dashboard import when_label
from bot.workspace import Workspace


def parse_day(text: str) -> date:
    from bot.errors import ChronopsError

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ChronopsError(f"--at {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-31") from None


def status_command(root: Path, *, at: str | None, as_json: bool, console: Any) -> None:
    """`chronops status [--at DATE] [--json]`, printed on a rich console."""
    from rich.table import Table

    ws = Workspace.open(root)
    if at is not None:
        doc = status_at_document(ws, parse_day(at))
        if as_json:
            console.print_json(json.dumps(doc, default=str))
            return
        table = Table(
            "horizon",
            "version",
            "config",
            "live since",
            "put there by",
            "commit",
            title=f"Live at the end of {doc['date']} (UTC)",
        )
        for c in doc["horizons"]:
            since = c["committed_at"].strftime("%Y-%m-%d %H:%M") if c["committed_at"] else ""
            table.add_row(c["horizon"], str(c["version"] or ""), c["config_hash"] or "", since,
                          c["via"] if c["commit"] else (c["error"] or ""), (c["commit"] or "")[:10])  # fmt: skip
        console.print(table)
        return
    doc = status_document(ws, datetime.now(UTC))
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    table = Table(
        "horizon", "model", "context", "ns", "T", "version", "live since", "from", "last run", "outcome"
    )
    for r in doc["horizons"]:
        cells = [str(r.get(k) or "") for k in (
            "horizon", "model_id", "context_length", "num_samples", "temperature", "version",
        )]  # fmt: skip
        since = when_label(r["live_since"]) if r.get("live_since") else ""
        last = when_label(r["last_run"]) if r.get("last_run") else "never"
        table.add_row(*cells, since, str(r.get("live_via") or ""), last, str(r.get("last_status") or ""))
    console.print(table)
    for r in doc["horizons"]:
        if r.get("error"):
            console.print(f"{r['horizon']}: {r['error']}")
    console.print(f"next scheduled run: {doc['next_scheduled_run']} (Sunday 02:00 America/Santiago)")
    kpis = Table("KPI", "value", "target", "met", "n", title="KPIs")
    for k in doc["kpis"]:
        value = (
            "n/a"
            if k["value"] is None
            else f"{k['value']:.1f}" + ("%" if k["unit"] == "%" else f" {k['unit']}")
        )
        met = "n/a" if k["met"] is None else ("yes" if k["met"] else "no")
        kpis.add_row(k["label"], value, k["target"], met, str(k["n"]))
    console.print(kpis)
