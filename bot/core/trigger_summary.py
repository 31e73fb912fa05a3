"""What a trigger decision said, in the few typed fields that records, PRs and snoozing need.

A `TriggerDecision` is made in the search job; the propose job (another process in an Actions matrix)
only has its JSON. Both become a `TriggerSummary`, so no caller indexes dictionaries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.triggers import TriggerDecision, triggered_by


@dataclass(frozen=True)
class TriggerSummary:
    fire: bool
    forced: bool
    triggered_by: str  # 'performance+drift', 'time', 'watch', 'forced', 'none'
    reasons: tuple[str, ...]
    drift_fired: bool
    drift_severity: str
    performance_fired: bool
    performance_degradation_pct: float | None
    days_since_last: int | None

    @property
    def material(self) -> bool:
        """Drift or performance fired, the daily watch alarmed, or an operator forced it: reason enough to
        re-open a snoozed horizon."""
        watch = "watch" in self.triggered_by.split("+")
        return self.drift_fired or self.performance_fired or self.forced or watch

    @classmethod
    def of(cls, d: TriggerDecision) -> TriggerSummary:
        return cls(
            fire=d.fire, forced=d.forced, triggered_by=triggered_by(d), reasons=tuple(d.reasons),
            drift_fired=d.drift.fired, drift_severity=str(d.drift.severity), performance_fired=d.performance.fired,
            performance_degradation_pct=_finite(d.performance.degradation_pct), days_since_last=d.time.days_since_last,
        )  # fmt: skip

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TriggerSummary:
        """From `TriggerDecision.to_json()`; KeyError/TypeError/ValueError on a document of another shape."""
        drift, perf, time = doc["drift"], doc["performance"], doc["time"]
        days = time.get("days_since_last")
        return cls(
            fire=bool(doc["fire"]), forced=bool(doc.get("forced", False)),
            triggered_by=str(doc.get("triggered_by", "unknown")), reasons=tuple(str(r) for r in doc.get("reasons", ())),
            drift_fired=bool(drift["fired"]), drift_severity=str(drift.get("severity", "NONE")),
            performance_fired=bool(perf["fired"]), performance_degradation_pct=_finite(perf.get("degradation_pct")),
            days_since_last=int(days) if days is not None else None,
        )  # fmt: skip


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
