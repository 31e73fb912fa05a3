"""What one horizon's run decided (`HorizonOutcome`) and how it was asked to run (`RunOptions`)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.adapters.forges.base import ProposalResult
from bot.core.config import HorizonConfig
from bot.core.gate import Verdict
from bot.core.metrics import Scores
from bot.core.trigger_summary import TriggerSummary
from bot.core.triggers import (
    TriggerDecision,
)

ProgressFactory = Callable[[str, int], Callable[[int, int], None]]


@dataclass
class RunOptions:
    force: bool = False
    dry_run: str | None = None  # None = real run; plan = no git; local = commit in a temp clone only
    automerge: bool | None = None  # None = settings.forge.automerge
    force_approve_reason: str | None = None
    as_of: date | None = None
    command: str = ""
    stage: str | None = None  # None = the whole run; "search" = stop after reports (see bot.flow.stages)
    watch_reason: str | None = None  # the daily watch's alarm that called this run (a trigger, not forced)

    @property
    def preview(self) -> bool:
        """plan and local dry runs reach no forge (`full` opens a real pull request, unmerged)."""
        return self.dry_run in ("plan", "local")


@dataclass
class HorizonOutcome:
    horizon: str
    # skipped | no_change | approved | rejected | approved_override | merged | proposed | failed | dry_run
    status: str
    decision: TriggerDecision | None = None
    verdict: Verdict | None = None
    winner: HorizonConfig | None = None
    current: HorizonConfig | None = None
    ranking: list[tuple[HorizonConfig, Scores]] = field(default_factory=list)
    proposal: ProposalResult | None = None
    run_dir: Path | None = None
    message: str = ""
    search_seconds: float = 0.0
    trigger_json: dict[str, Any] | None = None  # the decision as JSON, when it was made elsewhere
    # The run report's document (what report.json holds): validation scores, origins, ranking. Built by
    # the search in this process, or read from the export when the propose job finishes another's search.
    report: dict[str, Any] | None = None

    @property
    def triggers(self) -> TriggerSummary | None:
        """The trigger decision, typed, whether it was made here or in the search job."""
        if self.decision is not None:
            return TriggerSummary.of(self.decision)
        return TriggerSummary.from_json(self.trigger_json) if self.trigger_json else None

    def validation_rmse(self) -> tuple[float | None, float | None]:
        """Backtest RMSE of the live config and of the candidate on the validation origins."""
        scores = (self.report or {}).get("validation_scores") or {}
        return _rmse(scores.get("current")), _rmse(scores.get("candidate"))


def _rmse(scores: Any) -> float | None:
    value = scores.get("rmse") if isinstance(scores, dict) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def new_run_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def utcnow() -> datetime:
    return datetime.now(UTC)
