"""Reports rendered with jinja2 from templates/: PR body (Markdown), JSON, HTML, and emails.

Every template runs under StrictUndefined (a missing key raises instead of rendering blank), and
values are escaped for their format: the `md` and `code` filters for Markdown, autoescape for
`*.html.j2`, nothing for plain text (email subjects are also folded onto one line).

The PR body must stay under GitHub's 65,536-character limit whatever the inputs: it is rendered with
progressively tighter caps on long strings, lists and the candidate ranking, and as a last resort
cut at a line boundary, with a note pointing at report.json, which always holds everything.

The run context is the dict built by `bot.flow.pipeline.report_context`; its keys are documented, as the
JSON report, in docs/report-schema.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from bot.core.marker import METADATA_MARKER, metadata_comment
from bot.render.charts import Panel, Window, render_panels, search_space
from bot.render.review import parse_label, search_grid, summary


def templates_dir() -> Path:
    """The templates: `bot/render/templates` in an installed wheel (package data) or through the source
    tree's link to the top-level `templates/`; the top-level folder itself where a copy dropped the
    link (a Docker build context)."""
    here = Path(__file__).resolve().parent
    packaged = here / "templates"
    return packaged if packaged.is_dir() else here.parent.parent / "templates"


TEMPLATES_DIR = templates_dir()
PR_BODY_LIMIT = 65_000  # GitHub refuses bodies over 65,536 characters; keep a margin
REPORT_SCHEMA_VERSION = 1
HTML_LIMITS = (2_000, 200, 1_000)  # longest string, longest list of strings, ranking rows
PANEL_COLORS = ("#d97706", "#2563eb", "#059669", "#7c3aed")
# (longest string, longest list of strings, ranking rows) for each successive attempt at the PR body
PR_BODY_LEVELS = ((2_000, 50, 100), (500, 20, 25), (160, 10, 10), (60, 5, 0))
DISPLAY_ONLY_KEYS = ("truncated_note", "review")
DEFAULT_SNOOZE_WEEKS = 4  # settings.triggers.snooze_weeks's default

# --- filters -------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")  # with [ ] escaped, ( ) ! can form no link or image
_LIST_MARKER = re.compile(r"^([-+]|\d+[.)])(?=\s|$)")


def md_escape(value: object) -> str:
    """Text for inline Markdown and table cells: no raw HTML, no markup, no cell breaks, no @-pings."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _LIST_MARKER.sub(r"\\\1", text)  # would start a list item
    return text.replace("@", "@&#8203;")  # a zero-width space keeps "@user" from notifying anyone


_CODE_ENTITIES = {c: f"&#{ord(c)};" for c in "`*_[]\\|~@#{}!"}


def md_code(value: object) -> str:
    """Monospace text that stays literal everywhere, table cells included: an HTML <code> element
    whose content is entity-escaped (a Markdown code span could not hold `|` in a table, nor be
    free of raw `<`)."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = "".join(_CODE_ENTITIES.get(c, c) for c in text)
    return f"<code>{text}</code>"


def fmt_num(value: object, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if math.isfinite(value) else "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def fmt_change(improvement: object) -> str:
    """An improvement (positive = lower = better) in words: '12.3% lower', '3.0% higher'."""
    if (
        not isinstance(improvement, int | float)
        or isinstance(improvement, bool)
        or not math.isfinite(improvement)
    ):
        return "n/a"
    if round(improvement, 1) == 0:
        return "unchanged"
    return f"{abs(improvement):.1f}% {'lower' if improvement > 0 else 'higher'}"


def fmt_pct(value: object, digits: int = 1) -> str:
    """A signed percentage: +12.3%."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}%"


# how each gate criterion's value and threshold read: unit suffix, digits, scale
_CRITERION_FORMAT = {
    "rmse_or_mape": ("%", 1, 1.0),
    "error_std": ("%", 1, 1.0),
    "inference_time": ("%", 1, 1.0),
    "ci95_coverage": ("%", 1, 1.0),
    "abs_bias": (" CLP", 3, 1.0),
    "beats_naive": (" CLP", 3, 1.0),
    "significance": ("%", 1, 100.0),
}


def fmt_criterion(value: object, name: str) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    unit, digits, scale = _CRITERION_FORMAT.get(name, ("", 3, 1.0))
    return f"{value * scale:,.{digits}f}{unit}"


def fmt_when(value: object) -> str:
    if isinstance(value, datetime):
        zone = value.tzname() or ""
        return f"{value:%Y-%m-%d %H:%M:%S} {zone}".strip()
    if isinstance(value, date):
        return value.isoformat()
    return "n/a" if value is None else str(value)


def one_line(value: object, limit: int = 200) -> str:
    """Fold whitespace and control characters (no header injection in a subject), then cap."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metadata_comment(value: Mapping[str, Any]) -> str:
    return metadata_comment(_json_clean(value))


def safe_url(value: object) -> str:
    """An http(s) URL fit for a Markdown link target or an href: no spaces, parentheses or quotes."""
    from urllib.parse import quote

    text = str(value)
    if not text.startswith(("https://", "http://")):
        return ""
    return quote(text, safe=":/?#@!$&*+,;=%~-._")


def environment(templates: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        md=md_escape,
        code=md_code,
        num=fmt_num,
        pct=fmt_pct,
        crit=fmt_criterion,
        when=fmt_when,
        one_line=one_line,
        metadata_comment=_metadata_comment,
        url=safe_url,
        change=fmt_change,
    )
    return env


# --- PR body -------------------------------------------------------------------------------------


class _Shrinker:
    """Caps long strings and lists of strings in a nested structure, counting what it cut."""

    def __init__(self, max_str: int, max_items: int) -> None:
        self.max_str, self.max_items, self.cuts = max_str, max_items, 0

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) <= self.max_str:
                return value
            self.cuts += 1
            return value[: self.max_str] + f"… [{len(value) - self.max_str:,} more characters]"
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = list(value)
            # lists of records (criteria, metric rows) are structural and short: never cut them
            if len(items) > self.max_items and all(not isinstance(i, Mapping) for i in items):
                self.cuts += 1
                rest = len(items) - self.max_items
                return [self(i) for i in items[: self.max_items]] + [f"… {rest:,} more (see report.json)"]
            return [self(i) for i in items]
        return value


def _fit(context: Mapping[str, Any], max_str: int, max_items: int, max_rows: int) -> dict[str, Any]:
    shrink = _Shrinker(max_str, max_items)
    ranking = list(context["all_candidates"])
    fitted = {k: shrink(v) for k, v in context.items() if k not in ("all_candidates", "metadata")}
    fitted["all_candidates"] = [shrink(c) for c in ranking[:max_rows]]
    fitted["metadata"] = context["metadata"]
    fitted["truncated"] = shrink.cuts > 0 or len(ranking) > max_rows
    return fitted


def _hard_cut(body: str, limit: int) -> str:
    """Last resort: cut at a line boundary, close open <details>, keep the metadata comment."""
    meta_at = body.rfind(METADATA_MARKER)
    meta = body[meta_at:] if meta_at >= 0 and len(body) - meta_at < 4_000 else ""
    note = "\n\n_(report cut to fit GitHub's pull request body limit; the full report is in report.json)_\n"
    room = limit - len(meta) - len(note) - 200
    head = body[: meta_at if meta else len(body)][:room]
    head = head[: head.rfind("\n") + 1] if "\n" in head else head
    head += "\n</details>\n" * max(0, head.count("<details>") - head.count("</details>"))
    return head + note + "\n" + meta


def with_review(
    context: Mapping[str, Any],
    *,
    snooze_weeks: int = DEFAULT_SNOOZE_WEEKS,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The context plus `review` (bot.review.summary: title, three-line summary, links, chart data),
    unless it has one already. `env` is where the links come from (nothing when None)."""
    if "review" in context:
        return dict(context)
    return {**context, "review": summary(context, snooze_weeks=snooze_weeks, env=env or {})}


def render_pr_body(
    context: Mapping[str, Any], *, templates: Path = TEMPLATES_DIR, limit: int = PR_BODY_LIMIT
) -> str:
    """The pull request body, always at most `limit` characters."""
    template = environment(templates).get_template("pr_body.md.j2")
    context = with_review(context)
    body = ""
    for max_str, max_items, max_rows in PR_BODY_LEVELS:
        body = template.render(**_fit(context, max_str, max_items, max_rows))
        if len(body) <= limit:
            return body
    return _hard_cut(body, limit)


# --- JSON ----------------------------------------------------------------------------------------


def _json_clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, dates ISO strings, anything else its str()."""
    if isinstance(value, Mapping):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_clean(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_clean(value.item())
    return str(value)


def report_document(context: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON report: the run context, complete and untruncated, plus `schema_version`."""
    doc = {k: v for k, v in context.items() if k not in DISPLAY_ONLY_KEYS}
    cleaned: dict[str, Any] = _json_clean({"schema_version": REPORT_SCHEMA_VERSION, **doc})
    return cleaned


def render_json(context: Mapping[str, Any]) -> str:
    return json.dumps(report_document(context), indent=2, sort_keys=True, allow_nan=False) + "\n"


# --- HTML ----------------------------------------------------------------------------------------


def chart_panels(steps_by_label: Mapping[str, pd.DataFrame]) -> tuple[Panel, ...]:
    """Chart data from validation step rows (bot.core.metrics.STEP_COLUMNS), one panel per config.

    Pass the same DataFrame object twice (current config == candidate) and it is drawn once.
    """
    panels: list[Panel] = []
    seen: dict[int, int] = {}
    for label, steps in steps_by_label.items():
        if id(steps) in seen:
            i = seen[id(steps)]
            panels[i] = replace(panels[i], title=f"{panels[i].title} = {label}")
            continue
        seen[id(steps)] = len(panels)
        panels.append(_panel(label, steps, PANEL_COLORS[len(panels) % len(PANEL_COLORS)]))
    return tuple(panels)


def _day(value: Any) -> date:
    day: date = pd.Timestamp(value).date()
    return day


def _panel(label: str, steps: pd.DataFrame, color: str) -> Panel:
    windows = []
    for origin, rows in steps.sort_values(["origin", "step"]).groupby("origin", sort=True):
        windows.append(
            Window(
                origin=_day(origin),
                dates=tuple(_day(d) for d in rows["target_date"]),
                median=tuple(float(v) for v in rows["point"]),
                lo95=tuple(float(v) for v in rows["lo95"]),
                hi95=tuple(float(v) for v in rows["hi95"]),
            )
        )
    actual = steps.drop_duplicates("target_date").sort_values("target_date")
    pairs = tuple((_day(d), float(v)) for d, v in zip(actual["target_date"], actual["actual"], strict=True))
    return Panel(label, tuple(windows), pairs, color, _panel_summary(steps))


def _panel_summary(steps: pd.DataFrame) -> str:
    if steps.empty:
        return ""
    err = steps["point"].to_numpy(dtype=float) - steps["actual"].to_numpy(dtype=float)
    inside = (steps["lo95"] <= steps["actual"]) & (steps["actual"] <= steps["hi95"])
    rmse = math.sqrt(float((err**2).mean()))
    n = steps["origin"].nunique()
    return f"RMSE {rmse:,.2f} CLP · 95% coverage {100 * float(inside.mean()):.1f}% · {n} origins"


def render_html(
    context: Mapping[str, Any], panels: Sequence[Panel], *, templates: Path = TEMPLATES_DIR
) -> str:
    """A self-contained HTML report: inline CSS and SVG, nothing fetched from anywhere."""
    # far roomier caps than the PR body's, only so that absurd inputs cannot make a huge page
    context = with_review(context)
    fitted = _fit(context, *HTML_LIMITS)
    # Markup: bot.render.charts escapes every piece of text it puts in the SVG
    charts = [Markup(svg) for svg in render_panels(panels)]
    return (
        environment(templates)
        .get_template("report.html.j2")
        .render(
            **fitted,
            charts=list(zip([p.title for p in panels], charts, strict=True)),
            search_chart=Markup(_search_chart(context)),
        )
    )


def _search_chart(context: Mapping[str, Any]) -> str:
    grid = search_grid(context["all_candidates"])
    top = context["top_candidates"]
    parsed = parse_label(str(top[0]["label"])) if top else None
    winner = (parsed[0], parsed[1] or 0) if parsed else None
    return search_space(grid["contexts"], grid["samples"], grid["rmse"], winner=winner)
