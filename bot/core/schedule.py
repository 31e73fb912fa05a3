"""When the weekly optimisation runs: Sunday 02:00 in America/Santiago. Pure: the clock comes in.

Cron on GitHub (and on most hosts) is UTC, and Chile moves between UTC-3 (summer, CLST) and UTC-4
(winter, CLT), so Sunday 02:00 Santiago is 05:00 UTC in summer and 06:00 UTC in winter. The workflow
schedules both hours and `is_santiago_run_window` tells which of the two is the real one.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

SANTIAGO = ZoneInfo("America/Santiago")
RUN_WEEKDAY = 6  # datetime.weekday(): Monday=0 … Sunday=6
RUN_HOUR = 2


def _aware(now_utc: datetime) -> datetime:
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        # astimezone() on a naive datetime silently assumes the host's zone: refuse instead.
        raise ValueError("now_utc must be timezone-aware, e.g. datetime.now(timezone.utc)")
    return now_utc


def _as_santiago(now_utc: datetime) -> datetime:
    return _aware(now_utc).astimezone(SANTIAGO)


def is_santiago_run_window(now_utc: datetime, *, weekday: int = RUN_WEEKDAY, hour: int = RUN_HOUR) -> bool:
    """True during the hour `hour`:00–:59 of `weekday` in America/Santiago (default Sunday 02:xx)."""
    local = _as_santiago(now_utc)
    return local.weekday() == weekday and local.hour == hour


def _run_on(day: datetime, hour: int) -> datetime:
    return datetime.combine(day.date(), time(hour), tzinfo=SANTIAGO).astimezone(UTC)


def next_scheduled_run(now_utc: datetime, *, weekday: int = RUN_WEEKDAY, hour: int = RUN_HOUR) -> datetime:
    """The first weekly run strictly after `now_utc`, in UTC."""
    local = _as_santiago(now_utc)
    day = local + timedelta(days=(weekday - local.weekday()) % 7)
    candidate = _run_on(day, hour)
    return candidate if candidate > now_utc else _run_on(day + timedelta(days=7), hour)


def last_scheduled_run(now_utc: datetime, *, weekday: int = RUN_WEEKDAY, hour: int = RUN_HOUR) -> datetime:
    """The latest weekly run at or before `now_utc`, in UTC (what a missed-run watchdog checks)."""
    local = _as_santiago(now_utc)
    day = local - timedelta(days=(local.weekday() - weekday) % 7)
    candidate = _run_on(day, hour)
    return candidate if candidate <= now_utc else _run_on(day - timedelta(days=7), hour)


def cron_slot(cron: str, now_utc: datetime) -> datetime:
    """The latest instant at or before `now_utc` that the UTC cron `M H * * D` was due.

    GitHub starts scheduled runs late under load (sometimes by over an hour); a guard that checks
    this nominal slot instead of the start time keeps a delayed 05:00 UTC run from being skipped.
    Only the numeric minute/hour/weekday form the workflow uses is accepted.
    """
    fields = cron.split()
    if (
        len(fields) != 5
        or fields[2:4] != ["*", "*"]
        or not all(f.isdigit() for f in (*fields[:2], fields[4]))
    ):
        raise ValueError(f"unsupported cron {cron!r}: expected 'MINUTE HOUR * * WEEKDAY' with numbers")
    minute, hour, cron_weekday = int(fields[0]), int(fields[1]), int(fields[4]) % 7  # cron: 0 and 7 = Sunday
    now = _aware(now_utc).astimezone(UTC)
    weekday = (cron_weekday - 1) % 7  # cron Sunday=0 → datetime Sunday=6
    day = now - timedelta(days=(now.weekday() - weekday) % 7)
    slot = datetime.combine(day.date(), time(hour, minute), tzinfo=UTC)
    return slot if slot <= now else slot - timedelta(days=7)
