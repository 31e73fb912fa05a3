"""Snooze: a bot pull request closed without merging means "not now" for its horizon.

While snoozed, runs must not reopen or recreate the proposal, unless the triggers changed materially
since it was closed. Once the snooze expires a new pull request may be opened. Pure: the clock comes in.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def snooze_until(closed_at: datetime, weeks: int) -> datetime:
    """When a snooze that started at `closed_at` ends."""
    _require_aware(closed_at, "closed_at")
    return closed_at + timedelta(weeks=weeks)


def is_snoozed(closed_at: datetime | None, now: datetime, weeks: int, triggers_changed: bool) -> bool:
    """True while a proposal closed unmerged at `closed_at` must not be re-proposed.

    `closed_at` is None when the horizon's latest bot pull request was not closed unmerged; `weeks`
    of 0 turns snoozing off; `triggers_changed` (the triggers fired differently from when the closed
    proposal was made) lifts the snooze early.
    """
    _require_aware(now, "now")
    if closed_at is None or weeks <= 0 or triggers_changed:
        return False
    return now < snooze_until(closed_at, weeks)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment.isoformat()})")
