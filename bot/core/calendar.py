"""Chilean banking days: the days the dólar observado is published.

The Banco Central de Chile publishes no observado on weekends, public holidays or the bank holiday
of December 31 (`holidays`' CL calendar, categories public + bank). On the real series 2022-2025
the weekdays missing from the data are exactly these holidays (50 of 50). A forecast's k-th step is
the k-th next observation, so its target date must skip them: labelling it with the k-th weekday
would compare it, after a holiday, with the next day's value.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import holidays

CATEGORIES = ("public", "bank")


@functools.lru_cache(maxsize=64)
def bank_holidays(year: int) -> frozenset[date]:
    """Chile's public and bank holidays of `year` (rules-based: any year works, offline)."""
    return frozenset(holidays.country_holidays("CL", years=[year], categories=CATEGORIES))


def is_banking_day(day: date) -> bool:
    return day.weekday() < 5 and day not in bank_holidays(day.year)


def banking_days_after(last: date, steps: int) -> list[date]:
    """The `steps` Chilean banking days after `last` (which itself need not be one)."""
    out: list[date] = []
    day = last
    while len(out) < steps:
        day += timedelta(days=1)
        if is_banking_day(day):
            out.append(day)
    return out
