"""`chronops schedule-guard`: is it the Sunday 02:xx America/Santiago slot? (the workflow's skip signal)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from bot.core.schedule import cron_slot, is_santiago_run_window
from bot.errors import ChronopsError

EXIT_OUTSIDE_WINDOW = 10


def schedule_guard_command(now: datetime, env: Mapping[str, str], say: Callable[[str], None]) -> int:
    """0 inside the window, 10 outside. CHRONOPS_SCHEDULE (the cron line that fired) judges that
    nominal slot instead of `now`: GitHub starts scheduled runs late under load."""
    cron = env.get("CHRONOPS_SCHEDULE", "").strip()
    try:
        when = cron_slot(cron, now) if cron else now
    except ValueError as exc:
        raise ChronopsError(str(exc)) from None
    if is_santiago_run_window(when):
        say(f"in window: {when.isoformat()} is Sunday 02:xx in America/Santiago")
        return 0
    say(f"outside window: {when.isoformat()} is not Sunday 02:xx in America/Santiago; skipping")
    return EXIT_OUTSIDE_WINDOW
