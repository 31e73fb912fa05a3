"""Backtest charts as inline SVG, in pure Python: no plotting library, no fonts, no external files.

A `Panel` is one config's walk-forward backtest on the validation origins: one `Window` per origin
(median forecast and 95% interval for each step) plus the actual values. Panels meant to be compared
share one `Domain`, so the same date and value land on the same pixel in every panel. Every piece of
text goes through `html.escape`, so a label can never inject markup into the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

ACTUAL_COLOR = "#111827"
GRID_COLOR = "#e5e7eb"
AXIS_COLOR = "#6b7280"
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72, 16, 52, 36


@dataclass(frozen=True)
class Window:
    """One origin's forecast: per target date, the median and the 95% interval."""

    origin: date
    dates: tuple[date, ...]
    median: tuple[float, ...]
    lo95: tuple[float, ...]
    hi95: tuple[float, ...]


@dataclass(frozen=True)
class Panel:
    title: str
    windows: tuple[Window, ...]
    actual: tuple[tuple[date, float], ...]
    color: str = "#2563eb"
    subtitle: str = ""


@dataclass(frozen=True)
class Domain:
    x0: date
    x1: date
    y0: float
    y1: float


def shared_domain(panels: Sequence[Panel]) -> Domain | None:
    """The date and value range covering every panel (None when there is nothing to draw)."""
    dates = [d for p in panels for d, v in p.actual if math.isfinite(v)]
    values = [v for p in panels for _, v in p.actual if math.isfinite(v)]
    for p in panels:
        for w in p.windows:
            dates.extend(w.dates)
            values.extend(v for v in (*w.lo95, *w.hi95, *w.median) if math.isfinite(v))
    if not dates or not values:
        return None
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.01, 1.0)
    return Domain(min(dates), max(dates), lo - pad, hi + pad)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) inside [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def date_ticks(x0: date, x1: date, count: int = 6) -> list[date]:
    days = (x1 - x0).days
    if days <= 0:
        return [x0]
    stride = max(1, math.ceil(days / count))
    return [x0 + timedelta(days=i) for i in range(0, days + 1, stride)]


class _Scale:
    def __init__(self, domain: Domain, width: int, height: int) -> None:
        self.d = domain
        self.left, self.right = MARGIN_LEFT, width - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, height - MARGIN_BOTTOM
        self.days = max((domain.x1 - domain.x0).days, 1)

    def x(self, day: date) -> float:
        return self.left + (day - self.d.x0).days / self.days * (self.right - self.left)

    def y(self, value: float) -> float:
        frac = (value - self.d.y0) / (self.d.y1 - self.d.y0)
        return self.bottom - frac * (self.bottom - self.top)


def _points(pairs: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pairs)


def _value_label(value: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:,.{digits}f}"


def _axes(s: _Scale) -> list[str]:
    out = []
    ticks = nice_ticks(s.d.y0, s.d.y1)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for t in ticks:
        y = s.y(t)
        out.append(f'<line x1="{s.left}" x2="{s.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOR}"/>')
        out.append(
            f'<text x="{s.left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_value_label(t, step))}</text>'
        )
    for d in date_ticks(s.d.x0, s.d.x1):
        x = s.x(d)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{s.bottom}" y2="{s.bottom + 4}" stroke="{AXIS_COLOR}"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{s.bottom + 18}" text-anchor="middle">{escape(d.isoformat())}</text>'
        )
    out.append(
        f'<polyline points="{s.left},{s.top} {s.left},{s.bottom} {s.right},{s.bottom}" '
        f'fill="none" stroke="{AXIS_COLOR}"/>'
    )
    mid = (s.top + s.bottom) / 2
    out.append(
        f'<text x="14" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 14 {mid:.1f})">CLP per USD</text>'
    )
    return out


def _window(w: Window, s: _Scale, color: str) -> list[str]:
    rows = [
        (d, m, lo, hi)
        for d, m, lo, hi in zip(w.dates, w.median, w.lo95, w.hi95, strict=True)
        if math.isfinite(m) and math.isfinite(lo) and math.isfinite(hi)
    ]
    if not rows:
        return []
    x0 = s.x(w.origin)
    band = [(s.x(d), s.y(hi)) for d, _, _, hi in rows] + [(s.x(d), s.y(lo)) for d, _, lo, _ in reversed(rows)]
    median = [(s.x(d), s.y(m)) for d, m, _, _ in rows]
    return [
        f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{s.top}" y2="{s.bottom}" stroke="{GRID_COLOR}" stroke-dasharray="3 3"/>',
        f'<polygon points="{_points(band)}" fill="{color}" fill-opacity="0.18" stroke="none"/>',
        f'<polyline points="{_points(median)}" fill="none" stroke="{color}" stroke-width="1.8"/>',
    ]


def _legend(s: _Scale, color: str) -> list[str]:
    items = [
        (f'<line x1="0" x2="18" y1="0" y2="0" stroke="{ACTUAL_COLOR}" stroke-width="1.5"/>', "Actual"),
        (f'<line x1="0" x2="18" y1="0" y2="0" stroke="{color}" stroke-width="1.8"/>', "Median forecast"),
        (f'<rect x="0" y="-6" width="18" height="12" fill="{color}" fill-opacity="0.18"/>', "95% interval"),
        (
            f'<line x1="9" x2="9" y1="-7" y2="7" stroke="{AXIS_COLOR}" stroke-dasharray="3 3"/>',
            "Forecast origin",
        ),
    ]
    out, x = [], s.left
    for swatch, label in items:
        out.append(f'<g transform="translate({x} 38)">{swatch}<text x="24" y="4">{escape(label)}</text></g>')
        x += 34 + 7 * len(label)
    return out


def render_panel(panel: Panel, domain: Domain | None, *, width: int = 960, height: int = 320) -> str:
    """One `<svg>` element (no XML prolog, no namespace URL: it is meant to be inlined in HTML5)."""
    head = (
        f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12" fill="{ACTUAL_COLOR}">'
        f"<title>{escape(panel.title)}</title>"
        f'<text x="{MARGIN_LEFT}" y="18" font-size="14" font-weight="600">{escape(panel.title)}</text>'
        f'<text x="{width - MARGIN_RIGHT}" y="18" text-anchor="end" fill="{AXIS_COLOR}">'
        f"{escape(panel.subtitle)}</text>"
    )
    if domain is None:
        return (
            head
            + f'<text x="{MARGIN_LEFT}" y="{height / 2:.0f}">no validation forecasts to plot</text></svg>'
        )
    s = _Scale(domain, width, height)
    color = escape(panel.color)
    parts = [head, *_legend(s, color), *_axes(s)]
    for w in panel.windows:
        parts.extend(_window(w, s, color))
    actual = sorted((d, v) for d, v in panel.actual if math.isfinite(v))
    if actual:
        pts = _points([(s.x(d), s.y(v)) for d, v in actual])
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{ACTUAL_COLOR}" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_panels(panels: Sequence[Panel], *, width: int = 960, height: int = 320) -> list[str]:
    """One SVG per panel, all on the same axes so they can be compared by eye."""
    domain = shared_domain(panels)
    return [render_panel(p, domain, width=width, height=height) for p in panels]
