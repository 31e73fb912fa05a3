"""The dashboard's charts over time (issue 17), as inline SVG in pure Python.

- `rmse_trend_chart`: every merged optimization at its merge date, RMSE before (grey) → after
  (blue, red when a rollback reverted it), one lane per horizon, its pull request number as a link
  when the forge has URLs; the winner across runs, with rollbacks marked.
- `trigger_timeline_chart`: triggers per week, stacked by kind (performance, drift, time, manual).

Every label is escaped; text is kept inside the viewBox (labels near an edge hang inward).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from html import escape
from typing import Any

from bot.render.charts import date_ticks, edge_anchor, nice_ticks

W, H = 1100, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 44, 40
BEFORE, AFTER, REVERTED, GRID, AXIS, INK = "#9ca3af", "#2563eb", "#dc2626", "#e5e7eb", "#6b7280", "#111827"
HORIZON_SHAPES = {"7d": 0, "15d": 1, "30d": 2, "90d": 3}
KIND_COLORS = {"performance": "#f59e0b", "drift": "#8b5cf6", "time": "#0ea5e9", "manual": "#64748b"}


def _open(chart_id: str, title: str, height: int = H) -> list[str]:
    return [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {W} {height}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11" fill="{INK}">',
        f"<title>{escape(title)}</title>",
    ]


def _empty(chart_id: str, title: str, message: str) -> str:
    parts = _open(chart_id, title, 120)
    parts.append(f'<rect x="0.5" y="0.5" width="{W - 1}" height="119" fill="#f9fafb" stroke="{GRID}"/>')
    parts.append(f'<text x="{W / 2}" y="64" text-anchor="middle" fill="{AXIS}">{escape(message)}</text>')
    return "\n".join([*parts, "</svg>"])


class _Axes:
    def __init__(self, x0: date, x1: date, y0: float, y1: float, height: int = H) -> None:
        if x1 <= x0:
            x0, x1 = x0 - timedelta(days=3), x1 + timedelta(days=3)
        self.x0, self.x1, self.height = x0, x1, height
        ticks = nice_ticks(y0, y1) or [y0, y1]
        self.y0, self.y1 = min(y0, ticks[0]), max(y1, ticks[-1])
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.ticks = ticks

    def x(self, day: date) -> float:
        return LEFT + (day - self.x0).days / max((self.x1 - self.x0).days, 1) * (W - LEFT - RIGHT)

    def y(self, value: float) -> float:
        bottom = self.height - BOTTOM
        return bottom - (value - self.y0) / (self.y1 - self.y0) * (bottom - TOP)

    def draw(self, unit: str) -> list[str]:
        bottom = self.height - BOTTOM
        out = []
        for t in self.ticks:
            y = self.y(t)
            out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
            label = f"{t:,.0f}" if abs(t) >= 10 or t == int(t) else f"{t:,.2g}"
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        for d in date_ticks(self.x0, self.x1, 6):
            x = self.x(d)
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="{edge_anchor(x, W)}" fill="{AXIS}">'
                f"{escape(d.isoformat())}</text>"
            )
        out.append(
            f'<polyline points="{LEFT},{TOP} {LEFT},{bottom} {W - RIGHT},{bottom}" fill="none" stroke="{AXIS}"/>'
        )
        mid = (TOP + bottom) / 2
        out.append(
            f'<text x="14" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 14 {mid:.1f})">'
            f"{escape(unit)}</text>"
        )
        return out


def _legend(items: Sequence[tuple[str, str]], y: float = 16) -> list[str]:
    out, x = [], float(LEFT)
    for name, color in items:
        out.append(f'<rect x="{x:.0f}" y="{y - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14:.0f}" y="{y}">{escape(name)}</text>')
        x += 28 + 6.5 * len(name)
    return out


def rmse_trend_chart(
    points: Sequence[Mapping[str, Any]],
    *,
    pull_url: Callable[[str], str | None] = lambda _: None,
    chart_id: str = "chart-trend",
    title: str = "RMSE before → after each merged optimization, over time (CLP)",
) -> str:
    """`points`: bot.core.ops_kpis.rmse_trend rows (at, horizon, before, after, pull_request, rolled_back)."""
    shown = [p for p in points if p.get("before") is not None and p.get("after") is not None]
    if not shown:
        return _empty(chart_id, title, "no merged optimization with an RMSE yet")
    days = [p["at"].date() for p in shown]
    values = [v for p in shown for v in (p["before"], p["after"]) if math.isfinite(v)]
    axes = _Axes(min(days), max(days), min(0.0, min(values)), max(values) * 1.1)
    parts = _open(chart_id, title) + axes.draw("RMSE (CLP)")
    parts += _legend([("before", BEFORE), ("after", AFTER), ("after, later rolled back", REVERTED)])
    for p, day in zip(shown, days, strict=True):
        x = axes.x(day) + 6 * HORIZON_SHAPES.get(str(p["horizon"]), 0)  # lanes: same-day merges stay apart
        yb, ya = axes.y(p["before"]), axes.y(p["after"])
        color = REVERTED if p.get("rolled_back") else AFTER
        pr = p.get("pull_request")
        what = f"{p['horizon']} {'#' + str(pr) if pr else ''} merged {day.isoformat()}: {p['before']:,.2f} → {p['after']:,.2f} CLP"
        if p.get("rolled_back"):
            what += " (rolled back)"
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{yb:.1f}" y2="{ya:.1f}" stroke="{color}" stroke-width="2"/>'
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{yb:.1f}" r="4" fill="{BEFORE}"><title>{escape(what)}</title></circle>'
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{ya:.1f}" r="5" fill="{color}"><title>{escape(what)}</title></circle>'
        )
        label = f"{p['horizon']} #{pr}" if pr else str(p["horizon"])
        if p.get("rolled_back"):
            label += " ↩"
        text = (
            f'<text x="{x:.1f}" y="{min(yb, ya) - 8:.1f}" text-anchor="{edge_anchor(x, W, 30)}" '
            f'fill="{color}">{escape(label)}</text>'
        )
        url = pull_url(str(pr)) if pr else None
        parts.append(f'<a href="{escape(url)}">{text}</a>' if url else text)
    return "\n".join([*parts, "</svg>"])


def trigger_timeline_chart(
    weeks: Sequence[Mapping[str, Any]],
    kinds: Sequence[str],
    *,
    chart_id: str = "chart-trigger-timeline",
    title: str = "Triggers per week, by kind",
) -> str:
    """`weeks`: rows with `week` (a date, the Monday) and a count per kind."""
    if not weeks:
        return _empty(chart_id, title, "no trigger has fired yet")
    days = [w["week"] for w in weeks]
    tops = [sum(int(w.get(k, 0)) for k in kinds) for w in weeks]
    axes = _Axes(min(days) - timedelta(days=4), max(days) + timedelta(days=10), 0.0, max(max(tops), 1) * 1.15)
    parts = _open(chart_id, title) + axes.draw("triggers")
    parts += _legend([(k, KIND_COLORS.get(k, AXIS)) for k in kinds])
    width = max(min((axes.x(days[0] + timedelta(days=6)) - axes.x(days[0])), 40.0), 3.0)
    for w in weeks:
        x, base = axes.x(w["week"]), 0
        for k in kinds:
            n = int(w.get(k, 0))
            if n <= 0:
                continue
            top, bottom = axes.y(base + n), axes.y(base)
            tip = escape(f"week of {w['week'].isoformat()}: {n} {k}")
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{bottom - top:.1f}" '
                f'fill="{KIND_COLORS.get(k, AXIS)}"><title>{tip}</title></rect>'
            )
            base += n
    return "\n".join([*parts, "</svg>"])


def github_pull_url(remote: str | None) -> Callable[[str], str | None]:
    """PR links for a github.com remote (https or ssh form); none for other forges."""
    import re

    m = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", remote or "")
    if not m:
        return lambda _: None
    owner, repo = m.group(1), m.group(2)
    return lambda number: f"https://github.com/{owner}/{repo}/pull/{number}" if number.isdigit() else None
