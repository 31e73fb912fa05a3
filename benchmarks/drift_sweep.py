"""Weekly drift sweep on the real USD/CLP series: how often does drift fire, and does it see the crises?

    .venv/bin/python benchmarks/drift_sweep.py [--series ../shared/data/usdclp_daily.csv]

Every Friday from 2019-01-01 to 2024-12-31 runs `bot.core.triggers.drift_check` (default
`TriggerSettings`) on the rows known that evening (`bot.core.series.known_as_of`; nothing later is
passed). Prints the fired weeks (consecutive weeks condensed into runs), the share of weeks fired,
and the first fired Friday after two known shocks: Chile's social unrest (from 2019-10-18; the peso's
sharpest break came on 2019-11-12) and COVID (March 2020). The series is read in place and never
copied into the repository; without it the script prints "skipped: real series absent" and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from bot.adapters.sources import read_series_file
from bot.core.params import TriggerSettings
from bot.core.series import known_as_of, validate_series
from bot.core.triggers import SEVERITIES, DriftCheck, drift_check

DEFAULT_SERIES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "usdclp_daily.csv"
FIRST, LAST = date(2019, 1, 1), date(2024, 12, 31)
# (event start, first day of the peso's sharpest move in the series)
EVENTS = {
    "chile_unrest": (date(2019, 10, 18), date(2019, 11, 12)),  # +3.6% on 2019-11-12..15
    "covid": (date(2020, 3, 1), date(2020, 3, 9)),  # week of 2020-03-09: +3.4%
}
WITHIN_DAYS = 14


def fridays(first: date, last: date) -> list[date]:
    day = first + timedelta(days=(4 - first.weekday()) % 7)
    out: list[date] = []
    while day <= last:
        out.append(day)
        day += timedelta(days=7)
    return out


def runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive Fridays grouped into (first, last) runs."""
    out: list[tuple[date, date]] = []
    for day in days:
        if out and (day - out[-1][1]).days == 7:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=DEFAULT_SERIES)
    args = parser.parse_args()
    if not args.series.exists():
        print("skipped: real series absent")
        return 0
    started = time.perf_counter()
    series, _ = validate_series(read_series_file(args.series), source=str(args.series), max_gap_days=7)
    settings = TriggerSettings()
    checks: dict[date, DriftCheck] = {}
    for friday in fridays(FIRST, LAST):
        checks[friday] = drift_check(known_as_of(series, friday), friday, settings)
    fired = [d for d, c in checks.items() if c.fired]
    stale = [d for d, c in checks.items() if c.stale]
    share = len(fired) / len(checks)

    print(f"Weekly drift sweep {FIRST}..{LAST}: {len(checks)} Fridays, defaults {settings}")
    print(f"fired {len(fired)} weeks ({share:.1%}); stale {len(stale)}")
    by_severity = pd.Series([checks[d].severity for d in fired], dtype=object).value_counts().to_dict()
    print(f"severity of fired weeks: {by_severity}")
    print("fired weeks (runs of consecutive Fridays):")
    for a, b in runs(fired):
        in_run = [checks[d] for d in fired if a <= d <= b]
        strongest = min(in_run, key=lambda c: c.p_value if c.p_value is not None else 1.0)
        top = max((c.severity for c in in_run), key=SEVERITIES.index)
        span = f"{a}" if a == b else f"{a} .. {b}"
        print(f"  {span:26} {len(in_run):2d} wk  max {top:6}  strongest: {strongest.reason}")
    events: dict[str, dict[str, object]] = {}
    for name, (start, move) in EVENTS.items():
        first = next((d for d in fired if d >= start), None)
        lag = (first - start).days if first else None
        lag_move = (first - move).days if first else None
        events[name] = {
            "start": start.isoformat(),
            "market_move": move.isoformat(),
            "first_fired": first.isoformat() if first else None,
            "days_after_start": lag,
            "days_after_move": lag_move,
        }
        verdict = "within 2 weeks" if lag is not None and lag <= WITHIN_DAYS else "NOT within 2 weeks"
        print(
            f"{name}: first fired Friday {first}: {lag} days after {start} ({verdict}), "
            f"{lag_move} days after the peso's move of {move}"
        )
    elapsed = time.perf_counter() - started
    print(f"elapsed {elapsed:.1f} s")
    result = {
        "benchmark": "drift_sweep",
        "weeks": len(checks),
        "fired": len(fired),
        "fired_share": round(share, 4),
        "fired_weeks": [d.isoformat() for d in fired],
        "severity": by_severity,
        "events": events,
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(result, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
