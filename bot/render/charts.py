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
from itertools import pairwise

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


def edge_anchor(x: float, width: float, half_width: float = 36.0) -> str:
    """text-anchor for an axis label at x in a viewBox `width` wide: a centred date near either edge
    would be cut off (the report's last date used to read '2026-09'), so it hangs inward instead."""
    if x + half_width > width - 2:
        return "end"
    if x - half_width < 2:
        return "start"
    return "middle"


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
            f'<text x="{x:.1f}" y="{s.bottom + 18}" text-anchor="{edge_anchor(x, s.right + MARGIN_RIGHT)}">'
            f"{escape(d.isoformat())}</text>"
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


# The dashboard's charts: one size, margins that leave room for the axis labels.
W, H = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 56

COLORS = {
    "merged": "#16a34a", "proposed": "#2563eb", "rejected": "#dc2626", "no_change": "#9ca3af",
    "failed": "#7c2d12", "skipped": "#e5e7eb", "before": "#9ca3af", "after": "#2563eb",
    "performance": "#f59e0b", "drift": "#8b5cf6", "watch": "#ef4444", "time": "#0ea5e9", "manual": "#64748b",
    "line": "#2563eb", "target": "#16a34a",
}  # fmt: skip


@dataclass(frozen=True)
class Bars:
    name: str
    color: str
    values: tuple[float, ...]


def _open(chart_id: str, title: str, width: int = W, height: int = H) -> list[str]:
    return [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
    ]


def _empty(chart_id: str, title: str, message: str) -> str:
    parts = _open(chart_id, title, W, 120)
    parts.append(f'<rect x="0.5" y="0.5" width="{W - 1}" height="119" fill="#f9fafb" stroke="#e5e7eb"/>')
    parts.append(f'<text x="{W / 2}" y="64" text-anchor="middle" fill="#6b7280">{escape(message)}</text>')
    return "\n".join([*parts, "</svg>"])


def _series_legend(names: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], LEFT
    for name, color in names:
        out.append(f'<rect x="{x}" y="12" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="21">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _y_axis(lo: float, hi: float, unit: str, width: int, height: int) -> tuple[list[str], float, float]:

    ticks = nice_ticks(lo, hi) or [lo, hi]
    y0, y1 = min(lo, ticks[0]), max(hi, ticks[-1])
    if y1 <= y0:
        y1 = y0 + 1.0
    out = []
    for t in ticks:
        y = _y(t, y0, y1, height)
        out.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        label = f"{t:,.0f}" if abs(t) >= 10 or t == int(t) else f"{t:,.2g}"
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label + unit)}</text>')
    out.append(
        f'<polyline points="{LEFT},{TOP} {LEFT},{height - BOTTOM} {width - RIGHT},{height - BOTTOM}" '
        'fill="none" stroke="#6b7280"/>'
    )
    return out, y0, y1


def _y(value: float, y0: float, y1: float, height: int) -> float:
    return (height - BOTTOM) - (value - y0) / (y1 - y0) * (height - BOTTOM - TOP)


def bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Bars],
    *,
    stacked: bool = False,
    unit: str = "",
    empty: str = "no data yet",
) -> str:
    """Grouped (or stacked) vertical bars, one group per category. Every text is escaped."""
    values = [v for s in series for v in s.values if math.isfinite(v)]
    if not categories or not values:
        return _empty(chart_id, title, empty)
    tops = [sum(max(s.values[i], 0.0) for s in series) for i in range(len(categories))] if stacked else values
    lo = min(0.0, *values)
    hi = max(max(tops), 0.0) or 1.0
    parts = _open(chart_id, title)
    axis, y0, y1 = _y_axis(lo, hi * 1.05, unit, W, H)
    parts += axis + _series_legend([(s.name, s.color) for s in series])
    slot = (W - LEFT - RIGHT) / len(categories)
    bar_w = slot * 0.7 / (1 if stacked else len(series))
    for i, cat in enumerate(categories):
        x0 = LEFT + i * slot + slot * 0.15
        base = 0.0
        for j, s in enumerate(series):
            v = s.values[i]
            if not math.isfinite(v):
                continue
            x = x0 if stacked else x0 + j * bar_w
            lo_v, hi_v = (base, base + v) if stacked else (min(0.0, v), max(0.0, v))
            top, bottom = _y(hi_v, y0, y1, H), _y(lo_v, y0, y1, H)
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{max(bottom - top, 0):.1f}" fill="{s.color}">'
                f"<title>{escape(f'{cat} · {s.name}: {v:,.2f}{unit}')}</title></rect>"
            )
            if stacked:
                base += v
        label_x = LEFT + (i + 0.5) * slot
        parts.append(
            f'<text x="{label_x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{escape(cat)}</text>'
            if len(categories) <= 8 else
            f'<text x="{label_x:.1f}" y="{H - BOTTOM + 12}" text-anchor="end" '
            f'transform="rotate(-35 {label_x:.1f} {H - BOTTOM + 12})">{escape(cat)}</text>'
        )  # fmt: skip
    return "\n".join([*parts, "</svg>"])


def line_chart(
    chart_id: str,
    title: str,
    points: Sequence[tuple[date, float]],
    *,
    y_range: tuple[float, float] | None = None,
    unit: str = "",
    target: tuple[float, str] | None = None,
    empty: str = "no data yet",
) -> str:
    """One line over dates, with dots, an optional horizontal target line."""

    pts = [(d, v) for d, v in points if math.isfinite(v)]
    if not pts:
        return _empty(chart_id, title, empty)
    x_lo, x_hi = min(d for d, _ in pts), max(d for d, _ in pts)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - timedelta(days=1), x_hi + timedelta(days=1)
    lo, hi = y_range or (min(v for _, v in pts), max(v for _, v in pts))
    parts = _open(chart_id, title)
    axis, y0, y1 = _y_axis(lo, hi, unit, W, H)
    parts += axis
    span = (x_hi - x_lo).days

    def x(d: date) -> float:
        return LEFT + (d - x_lo).days / span * (W - LEFT - RIGHT)

    for d in date_ticks(x_lo, x_hi, 5):
        parts.append(
            f'<text x="{x(d):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{d.isoformat()}</text>'
        )
    legend = [(title.split(" (")[0], COLORS["line"])]
    if target is not None:
        ty = _y(target[0], y0, y1, H)
        parts.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="{COLORS["target"]}" '
            'stroke-dasharray="6 4"/>'
        )
        legend.append((target[1], COLORS["target"]))
    parts += _series_legend(legend)
    coords = " ".join(f"{x(d):.1f},{_y(v, y0, y1, H):.1f}" for d, v in pts)
    parts.append(f'<polyline points="{coords}" fill="none" stroke="{COLORS["line"]}" stroke-width="2"/>')
    for d, v in pts:
        parts.append(
            f'<circle cx="{x(d):.1f}" cy="{_y(v, y0, y1, H):.1f}" r="3" fill="{COLORS["line"]}">'
            f"<title>{escape(f'{d.isoformat()}: {v:,.1f}{unit}')}</title></circle>"
        )
    return "\n".join([*parts, "</svg>"])
def _heat(frac: float) -> str:
    """Green (best) → amber → red (worst) for frac in [0, 1]."""
    stops = ((0.0, (22, 163, 74)), (0.5, (245, 158, 11)), (1.0, (220, 38, 38)))
    for (f0, c0), (f1, c1) in pairwise(stops):
        if frac <= f1:
            t = 0.0 if f1 == f0 else (frac - f0) / (f1 - f0)
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#dc2626"


def search_space(
    contexts: Sequence[int],
    samples: Sequence[int],
    rmse: dict[str, float],
    *,
    winner: tuple[int, int] | None = None,
    title: str = "Search space: best tuning RMSE (CLP) per context × samples",
) -> str:
    """A heat map of the search: one cell per (context, samples), the best tuning RMSE over the other
    knobs written in it, greener is better; the winner's cell is outlined. Every text is escaped."""
    cell_w, cell_h, left, top = 96, 34, 110, 48
    # wide enough for the title: ~8.6 px per character of 14 px semibold text, with room to spare
    width = max(left + cell_w * max(len(contexts), 1) + 16, round(16 + 8.6 * len(title)))
    height = top + cell_h * max(len(samples), 1) + 48
    head = (
        f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12" fill="{ACTUAL_COLOR}">'
        f"<title>{escape(title)}</title>"
        f'<text x="8" y="18" font-size="14" font-weight="600">{escape(title)}</text>'
    )
    values = [v for v in rmse.values() if math.isfinite(v)]
    if not contexts or not samples or not values:
        return head + f'<text x="8" y="{height / 2:.0f}">no candidates to plot</text></svg>'
    lo, hi = min(values), max(values)
    parts = [head]
    for j, ns in enumerate(samples):
        y = top + j * cell_h
        label = f"{ns} samples" if ns else "no sampling"
        parts.append(
            f'<text x="{left - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>'
        )
        for i, ctx in enumerate(contexts):
            x = left + i * cell_w
            value = rmse.get(f"{ctx}x{ns}")
            if value is None or not math.isfinite(value):
                parts.append(
                    f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{GRID_COLOR}"/>'
                )
                continue
            frac = 0.0 if hi == lo else (value - lo) / (hi - lo)
            stroke = ' stroke="#111827" stroke-width="3"' if winner == (ctx, ns) else ""
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{_heat(frac)}" '
                f'fill-opacity="0.75"{stroke}><title>{escape(f"context {ctx}, {ns} samples: {value:,.2f} CLP")}</title></rect>'
            )
            parts.append(
                f'<text x="{x + (cell_w - 2) / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="middle">'
                f"{escape(f'{value:,.1f}')}</text>"
            )
    bottom = top + cell_h * len(samples)
    for i, ctx in enumerate(contexts):
        cx = left + i * cell_w + (cell_w - 2) / 2
        parts.append(f'<text x="{cx:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(str(ctx))}</text>')
    parts.append(
        f'<text x="{left + cell_w * len(contexts) / 2:.1f}" y="{bottom + 36}" text-anchor="middle" '
        f'fill="{AXIS_COLOR}">context length (observations); outlined: the winner</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
