"""`chronops status`: live configs, last runs and the seed's KPIs, as a table or JSON."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.commands.output import MISSING, cell, dumps, table, when
from bot.flow.status import status_at_document, status_document
from bot.workspace import Workspace


def parse_day(text: str) -> date:
    from bot.errors import ChronopsError

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ChronopsError(f"--at {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-31") from None


def status_command(root: Path, *, at: str | None, as_json: bool, console: Any) -> None:
    """`chronops status [--at DATE] [--json]`, printed on a rich console. Tables fold long cells
    instead of cutting them, so they stay readable at 80 columns."""
    ws = Workspace.open(root, require=True)
    if at is not None:
        doc = status_at_document(ws, parse_day(at))
        if as_json:
            console.out(dumps("status", doc), highlight=False)
            return
        body = [
            [c["horizon"], cell(c["version"]), cell(c["config_hash"]), when(c["committed_at"]),
             c["via"] if c["commit"] else cell(c["error"]), cell((c["commit"] or "")[:10])]
            for c in doc["horizons"]
        ]  # fmt: skip
        headers = ["horizon", "version", "config", "live since (UTC)", "put there by", "commit"]
        console.print(table(headers, body, title=f"Live at the end of {doc['date']} (UTC)"))
        return
    doc = status_document(ws, datetime.now(UTC))
    if as_json:
        console.out(dumps("status", doc), highlight=False)
        return
    models = {str(r.get("model_id") or MISSING) for r in doc["horizons"]}
    shared = len(models) == 1  # one model for every horizon: say it once, above the table
    if shared:
        console.print(f"model: {models.pop()}", markup=False, highlight=False)
    body = []
    for r in doc["horizons"]:
        knobs = f"ctx {cell(r.get('context_length'))}"
        if r.get("num_samples"):
            knobs += f" · ns {r['num_samples']} · T {r.get('temperature')}"
        model = str(r.get("model_id") or MISSING).rstrip("/").rsplit("/", 1)[-1]
        body.append([
            r["horizon"], *([] if shared else [model]), knobs, cell(r.get("version")), when(r.get("live_since")),
            cell(r.get("live_via")), when(r.get("last_run")) if r.get("last_run") else "never",
            cell(r.get("last_status")).replace("_", " "),
        ])  # fmt: skip
    headers = ["horizon", *([] if shared else ["model"]), "knobs", "v", "live since (UTC)", "from",
               "last run (UTC)", "outcome"]  # fmt: skip
    console.print(table(headers, body))
    for r in doc["horizons"]:
        if r.get("error"):
            console.print(f"{r['horizon']}: {r['error']}", markup=False, highlight=False)
    console.print(f"next scheduled run: {when(doc['next_scheduled_run'])} UTC (Sunday 02:00 America/Santiago)")
    kpis = []
    for k in doc["kpis"]:
        value = MISSING if k["value"] is None else f"{k['value']:,.1f}" + ("%" if k["unit"] == "%" else f" {k['unit']}")
        met = "n/a" if k["met"] is None else ("yes" if k["met"] else "no")
        kpis.append([k["label"], value, k["target"], met, str(k["n"])])
    console.print(table(["KPI", "value", "target", "met", "n"], kpis, title="KPIs (seed targets)"))
