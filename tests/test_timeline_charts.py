"""The dashboard's charts over time (issue 17): merges with PR links and rollbacks marked, triggers per week."""

from __future__ import annotations

from datetime import date

import pandas as pd

from bot.render.timeline import github_pull_url, rmse_trend_chart, trigger_timeline_chart


def point(day: int, pr: str, rolled_back: bool = False, horizon: str = "7d") -> dict[str, object]:
    return {"at": pd.Timestamp(f"2026-01-{day:02d}", tz="UTC"), "horizon": horizon, "before": 10.0,
            "after": 9.0, "pull_request": pr, "rolled_back": rolled_back}  # fmt: skip


def test_trend_links_each_merge_and_marks_rollbacks() -> None:
    url = github_pull_url("git@github.com:acme/fx.git")
    svg = rmse_trend_chart([point(5, "1", rolled_back=True), point(12, "3", horizon="<30d>")], pull_url=url)
    assert '<a href="https://github.com/acme/fx/pull/1">' in svg and "7d #1 ↩" in svg
    assert "https://github.com/acme/fx/pull/3" in svg and "&lt;30d&gt; #3" in svg and "<30d>" not in svg
    assert "#dc2626" in svg  # the reverted merge in red
    local = rmse_trend_chart([point(5, "1")])
    assert "<a " not in local  # a local forge has no URLs
    assert "no merged optimization" in rmse_trend_chart([])


def test_pull_urls_only_for_github() -> None:
    assert github_pull_url("https://github.com/acme/fx")("7") == "https://github.com/acme/fx/pull/7"
    assert github_pull_url("/tmp/origin.git")("7") is None
    assert github_pull_url("https://github.com/acme/fx.git")("x") is None


def test_trigger_timeline_stacks_kinds_per_week() -> None:
    weeks = [{"week": date(2026, 1, 5), "drift": 2, "time": 1}, {"week": date(2026, 1, 12), "manual": 1}]
    svg = trigger_timeline_chart(weeks, ("performance", "drift", "time", "manual"))
    assert svg.count("<rect") == 3 + 4  # three bars and four legend swatches
    assert "week of 2026-01-05: 2 drift" in svg
    assert "no trigger" in trigger_timeline_chart([], ("drift",))
