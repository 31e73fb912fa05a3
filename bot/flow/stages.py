"""Split runs for an Actions matrix: `run --stage search --out DIR` (one job per horizon, read-only
token) and `run --stage propose --from DIR` (one job with write permissions: PRs, merges, history).

The search stage writes DIR/<horizon>/ (reports, per-origin results, outcome.json, summary.md) or
DIR/<horizon>/skipped.json when no trigger fired. The propose stage rebuilds each outcome from those
files — nothing is recomputed — proposes, merges when approved, and records the history.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

from bot.adapters.forges.base import Forge
from bot.adapters.store import atomic_write_text
from bot.core.config import parse_config
from bot.core.gate import Verdict
from bot.errors import DataError
from bot.flow import recovery
from bot.flow.outcome import HorizonOutcome, RunOptions
from bot.flow.propose import finish_horizon
from bot.workspace import Workspace


def export_search(outcome: HorizonOutcome, out_dir: Path) -> Path:
    """Copy a searched horizon's run directory to OUT/<horizon> and write its summary line."""
    target = out_dir / outcome.horizon
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if outcome.run_dir is None:  # skipped: no trigger fired
        doc: dict[str, object] = {
            "horizon": outcome.horizon,
            "status": outcome.status,
            "message": outcome.message,
        }
        if outcome.decision:
            doc["trigger"] = outcome.decision.to_json()
        target.mkdir()
        atomic_write_text(target / "skipped.json", json.dumps(doc, indent=2, default=str) + "\n")
        atomic_write_text(target / "summary.md", f"- **{outcome.horizon}**: skipped ({outcome.message})\n")
        return target
    shutil.copytree(outcome.run_dir, target)
    headline = outcome.verdict.headline if outcome.verdict else outcome.status
    atomic_write_text(target / "summary.md", f"- **{outcome.horizon}**: {headline}\n")
    return target


def load_searched(src: Path, horizon: str) -> tuple[HorizonOutcome, str] | None:
    """(outcome, PR body) from a search export, or None when the horizon was skipped or absent."""
    folder = src / horizon
    if not (folder / "outcome.json").exists():
        return None
    try:
        doc = json.loads((folder / "outcome.json").read_text(encoding="utf-8"))
        body = (folder / "pr_body.md").read_text(encoding="utf-8")
        outcome = HorizonOutcome(
            horizon=horizon,
            status=doc["status"],
            verdict=Verdict.from_dict(doc["verdict"]),
            winner=parse_config(doc["proposed_config"]),
            current=parse_config(doc["current_config"]),
            run_dir=folder,
            message=doc.get("message", ""),
            search_seconds=float(doc.get("search_seconds", 0.0)),
            trigger_json=doc.get("trigger"),
            report=json.loads((folder / "report.json").read_text(encoding="utf-8")),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{folder}: unreadable search results ({exc})") from None
    return outcome, body


def propose_from(
    ws: Workspace,
    src: Path,
    horizons: list[str],
    *,
    forge: Forge | None,
    options: RunOptions,
    run_id: str,
    now: datetime,
) -> list[HorizonOutcome]:
    done = []
    for h in horizons:
        loaded = load_searched(src, h)
        if loaded is None:
            continue
        outcome, body = loaded
        searched_run = json.loads((src / h / "outcome.json").read_text(encoding="utf-8")).get(
            "run_id", run_id
        )
        marker = recovery.begin(ws, searched_run, h, options.command or "chronops run --stage propose", now)
        done.append(
            finish_horizon(ws, outcome, body, forge=forge, options=options, run_id=searched_run, now=now)
        )
        recovery.end(marker)
    return done
