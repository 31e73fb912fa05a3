"""Sunday 02:00 America/Santiago, across Chile's summer (UTC-3) and winter (UTC-4) time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.core.schedule import (
    SANTIAGO,
    cron_slot,
    is_santiago_run_window,
    last_scheduled_run,
    next_scheduled_run,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_zone_data_is_available() -> None:
    assert utc(2026, 1, 11, 5).astimezone(SANTIAGO).utcoffset() == timedelta(hours=-3)
    assert utc(2026, 7, 12, 6).astimezone(SANTIAGO).utcoffset() == timedelta(hours=-4)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Summer (CLST, UTC-3): 05:00 UTC is 02:00 Santiago.
        (utc(2026, 1, 11, 5, 0), True),
        (utc(2026, 1, 11, 5, 59), True),
        (utc(2026, 1, 11, 6, 0), False),
        (utc(2026, 1, 11, 4, 59), False),
        # Winter (CLT, UTC-4): 06:00 UTC is 02:00 Santiago.
        (utc(2026, 7, 12, 6, 0), True),
        (utc(2026, 7, 12, 5, 0), False),
        (utc(2026, 7, 12, 7, 0), False),
        # Right hour, wrong day: Saturday and Monday.
        (utc(2026, 1, 10, 5, 0), False),
        (utc(2026, 1, 12, 5, 0), False),
    ],
)
def test_run_window(now: datetime, expected: bool) -> None:
    assert is_santiago_run_window(now) is expected


def test_dst_transition_sundays() -> None:
    # 2026-04-05: summer time ends at Sunday 00:00 (clocks back to Saturday 23:00), so that
    # Sunday's 02:00 is already winter time: 06:00 UTC runs, 05:00 UTC (01:00) does not.
    assert not is_santiago_run_window(utc(2026, 4, 5, 5, 0))
    assert is_santiago_run_window(utc(2026, 4, 5, 6, 0))
    # 23:00 Saturday happens twice that night; neither is the window.
    assert not is_santiago_run_window(utc(2026, 4, 5, 2, 0))
    assert not is_santiago_run_window(utc(2026, 4, 5, 3, 0))
    # 2026-09-06: summer time starts at Sunday 00:00 (clocks jump to 01:00): 05:00 UTC is 02:00.
    assert is_santiago_run_window(utc(2026, 9, 6, 5, 0))
    assert not is_santiago_run_window(utc(2026, 9, 6, 6, 0))


def test_exactly_one_of_the_two_crons_hits_each_sunday() -> None:
    sunday = utc(2026, 1, 4)
    for week in range(53 * 2):
        day = sunday + timedelta(weeks=week)
        hits = [h for h in (5, 6) if is_santiago_run_window(day.replace(hour=h))]
        assert len(hits) == 1, day.date()


def test_other_weekday_and_hour() -> None:
    # Monday 09:00 Santiago in winter = 13:00 UTC.
    assert is_santiago_run_window(utc(2026, 7, 13, 13, 30), weekday=0, hour=9)
    assert not is_santiago_run_window(utc(2026, 7, 13, 13, 30))


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_santiago_run_window(datetime(2026, 1, 11, 5))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_scheduled_run(datetime(2026, 1, 11, 5))


def test_aware_non_utc_input_is_converted() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert is_santiago_run_window(datetime(2026, 1, 11, 14, 0, tzinfo=tokyo))  # = 05:00 UTC


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 11, 26, 10), utc(2026, 11, 29, 5)),  # Thursday → this Sunday, summer
        (utc(2026, 6, 3, 12), utc(2026, 6, 7, 6)),  # winter
        (utc(2026, 1, 11, 4, 59), utc(2026, 1, 11, 5)),  # a minute before
        (utc(2026, 1, 11, 5, 0), utc(2026, 1, 18, 5)),  # at the run: strictly after
        (utc(2026, 1, 11, 5, 30), utc(2026, 1, 18, 5)),
        (utc(2026, 3, 30, 0), utc(2026, 4, 5, 6)),  # the week summer time ends
        (utc(2026, 9, 1, 0), utc(2026, 9, 6, 5)),  # the week summer time starts
        # Saturday 23:30 Santiago (02:30 UTC Sunday): next is the coming Sunday, not a week later.
        (utc(2026, 1, 11, 2, 30), utc(2026, 1, 11, 5)),
    ],
)
def test_next_scheduled_run(now: datetime, expected: datetime) -> None:
    nxt = next_scheduled_run(now)
    assert nxt == expected
    assert nxt.utcoffset() == timedelta(0)
    assert is_santiago_run_window(nxt)


def test_last_scheduled_run() -> None:
    assert last_scheduled_run(utc(2026, 11, 26, 10)) == utc(2026, 11, 22, 5)
    assert last_scheduled_run(utc(2026, 1, 11, 5)) == utc(2026, 1, 11, 5)
    assert last_scheduled_run(utc(2026, 1, 11, 4, 59)) == utc(2026, 1, 4, 5)
    assert last_scheduled_run(utc(2026, 4, 10)) == utc(2026, 4, 5, 6)


def test_last_and_next_bracket_now() -> None:
    start = utc(2026, 1, 1)
    for hours in range(0, 24 * 400, 7):
        now = start + timedelta(hours=hours)
        before, after = last_scheduled_run(now), next_scheduled_run(now)
        assert before <= now < after
        assert timedelta(days=6) < after - before <= timedelta(days=7, hours=1)


def test_cron_slot_survives_a_late_start() -> None:
    # The 05:00 UTC run of a summer Sunday, started 70 minutes late, still belongs to 02:00 Santiago.
    late = utc(2026, 1, 11, 6, 10)
    assert not is_santiago_run_window(late)
    assert cron_slot("0 5 * * 0", late) == utc(2026, 1, 11, 5)
    assert is_santiago_run_window(cron_slot("0 5 * * 0", late))
    # …while the 06:00 UTC run of the same Sunday is 03:00 Santiago and is skipped.
    assert not is_santiago_run_window(cron_slot("0 6 * * 0", utc(2026, 1, 11, 6, 1)))
    # Winter: the 06:00 slot is the real one.
    assert is_santiago_run_window(cron_slot("0 6 * * 0", utc(2026, 7, 12, 6, 45)))
    assert not is_santiago_run_window(cron_slot("0 5 * * 0", utc(2026, 7, 12, 5, 3)))
    assert cron_slot("30 5 * * 7", utc(2026, 1, 13)) == utc(2026, 1, 11, 5, 30)


@pytest.mark.parametrize("cron", ["0 5 * * SUN", "*/5 * * * *", "0 5 1 * 0", "0 5 * *", ""])
def test_cron_slot_rejects_other_forms(cron: str) -> None:
    with pytest.raises(ValueError, match="unsupported cron"):
        cron_slot(cron, utc(2026, 1, 11))
