"""What is live and how the bot is doing: `chronops status` and the static HTML dashboard.

- Live configs come from git, not from the working tree: the first-parent history of
  `configs/<h>.json` on the base branch (origin/<base>, else the local <base>) says which commit put
  the live config there, when, and through which pull request (a tune merge or a revert).
  `configs_at(ws, when)` answers "which config was live at the end of DATE".
- The dashboard (`write_dashboard`) is one self-contained HTML file: inline CSS, inline SVG charts,
  no scripts, nothing fetched from any host, so it works from disk and from GitHub Pages. Its
  sections are the seed's: Optimization Frequency, Validation Success Rate (rolling 30 days),
  Performance Improvements (RMSE before/after), Last Optimization Details, Trigger History, plus
  the KPIs against their targets.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from bot.adapters.history import read_history
from bot.adapters.store import atomic_write_text
from bot.core.config import HORIZONS, config_hash, parse_config
from bot.core.kpis import (
    TRIGGER_KINDS,
    Kpi,
    compute_kpis,
    improvement_pct,
    merged_pulls,
    rolling_validation_rate,
    run_table,
    trigger_kinds,
    trigger_reasons,
)
from bot.flow.records import read_metrics, with_pulls
from bot.workspace import Workspace

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"  # a link to the top-level templates/, shipped as package data
DASHBOARD_TEMPLATE = "dashboard.html.j2"
SECTIONS = (
    "Key Performance Indicators",
    "Optimization Frequency",
    "Validation Success Rate (rolling 30 days)",
    "Performance Improvements (RMSE before/after)",
    "Last Optimization Details",
    "Trigger History",
)
CHART_IDS = ("chart-frequency", "chart-validation", "chart-rmse", "chart-triggers")


# --- live configs from git ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveConfig:
    """The config of one horizon live at a moment, and the base-branch commit that put it there."""

    horizon: str
    at: datetime
    ref: str | None = None
    commit: str | None = None  # the first-parent commit that last changed configs/<h>.json
    committed_at: datetime | None = None
    subject: str = ""
    pull_request: int | None = None
    kind: str = "unknown"  # tune | revert | manual | unknown
    reverts: int | None = None
    version: int | None = None
    config_hash: str | None = None
    error: str | None = None

    @property
    def via(self) -> str:
        if self.pull_request is not None:
            return f"#{self.pull_request} ({self.kind})"
        if self.kind == "revert" and self.reverts is not None:
            return f"revert of #{self.reverts}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["via"] = self.via
        return out


_MERGE = re.compile(r"^Merge pull request #(\d+) from (\S+)")
_SQUASH = re.compile(r"\(#(\d+)\)\s*$")
_REVERTS = re.compile(r"#(\d+)")


def parse_change_subject(subject: str) -> tuple[int | None, str, int | None]:
    """(pull request, kind, reverted pull request) from a base-branch commit subject."""
    merge = _MERGE.match(subject)
    if merge:
        kind = "revert" if "revert" in merge.group(2).lower() else "tune"
        return int(merge.group(1)), kind, None
    reverted = _REVERTS.search(subject)
    if subject.lower().startswith("revert"):
        squash = _SQUASH.search(subject)
        if squash and subject.count("#") > 1:  # "Revert ... (#1, sha) (#4)": squash-merged revert PR #4
            return int(squash.group(1)), "revert", int(reverted.group(1)) if reverted else None
        return None, "revert", int(reverted.group(1)) if reverted else None
    squash = _SQUASH.search(subject)
    if squash:
        return int(squash.group(1)), "tune" if subject.lower().startswith("chronops") else "manual", None
    return None, "manual", None


def _git(root: Path, *args: str) -> str:
    from bot.adapters.git import GitRepo

    return GitRepo(root).git(*args)


def base_ref(root: Path, base: str) -> str | None:
    """origin/<base> when the clone has it (what was merged), else the local <base>, else HEAD."""
    for ref in (f"refs/remotes/origin/{base}", f"refs/heads/{base}", "HEAD"):
        try:
            _git(root, "rev-parse", "--verify", "--quiet", ref)
        except Exception:
            continue
        return ref.removeprefix("refs/remotes/").removeprefix("refs/heads/")
    return None


def config_at(ws: Workspace, horizon: str, when: datetime) -> LiveConfig:
    """The config of `horizon` live on the base branch at `when` (first-parent history)."""
    rel = ws.config_path(horizon).relative_to(ws.root).as_posix()
    try:
        ref = base_ref(ws.root, ws.settings.forge.base_branch)
    except Exception as exc:
        return LiveConfig(horizon, when, error=f"not a git repository ({type(exc).__name__})")
    if ref is None:
        return LiveConfig(horizon, when, error="no base branch to read the history from")
    stamp = when.astimezone(UTC).isoformat(timespec="seconds")
    live = _git(ws.root, "rev-list", "--first-parent", "-n", "1", f"--before={stamp}", ref)
    if not live:
        return LiveConfig(horizon, when, ref=ref, error=f"{ref} has no commit before {stamp}")
    log = _git(ws.root, "log", "--first-parent", "-n", "1", "--format=%H%x1f%cI%x1f%s", live, "--", rel)
    if not log:
        return LiveConfig(horizon, when, ref=ref, error=f"{rel} did not exist on {ref} at {stamp}")
    sha, committed, subject = log.split("\x1f", 2)
    pr, kind, reverts = parse_change_subject(subject)
    version, chash, error = _config_version(ws.root, live, rel, horizon)
    return LiveConfig(
        horizon, when, ref=ref, commit=sha, committed_at=datetime.fromisoformat(committed).astimezone(UTC),
        subject=subject, pull_request=pr, kind=kind, reverts=reverts, version=version, config_hash=chash,
        error=error,
    )  # fmt: skip


def _config_version(
    root: Path, commit: str, rel: str, horizon: str
) -> tuple[int | None, str | None, str | None]:
    try:
        raw = json.loads(_git(root, "show", f"{commit}:{rel}"))
    except Exception as exc:
        return None, None, f"unreadable {rel} at {commit[:10]} ({type(exc).__name__})"
    try:
        cfg = parse_config(raw, expected_horizon=horizon)
    except Exception:
        version = raw.get("version") if isinstance(raw, dict) else None
        return (
            version if isinstance(version, int) else None,
            None,
            f"{rel} at {commit[:10]} is not a valid config",
        )
    return cfg.version, config_hash(cfg), None


def configs_at(ws: Workspace, when: datetime) -> list[LiveConfig]:
    return [config_at(ws, h, when) for h in HORIZONS]


def end_of_day(day: date) -> datetime:
    """The last second of `day` in UTC: "live on DATE" means live when DATE ended."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


# --- status -------------------------------------------------------------------------------------


def next_run(now: datetime) -> datetime:
    from bot.core.schedule import next_scheduled_run

    return next_scheduled_run(now)


def _local_pulls(ws: Workspace) -> list[Any]:
    """The local forge's pull-request records, if any (people's merges show up only there)."""
    from bot.adapters.forges.base import PullRecord

    path = ws.path("data/forge/pulls.json")
    if ws.settings.forge.kind != "local" or not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["pulls"]
        names = set(PullRecord.__dataclass_fields__)
        return [PullRecord(**{**{k: v for k, v in r.items() if k in names}, "labels": tuple(r.get("labels", ()))})
                for r in raw]  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return []


@dataclass(frozen=True)
class Snapshot:
    """Everything status and the dashboard show, read once."""

    now: datetime
    history: pd.DataFrame
    metrics: pd.DataFrame
    runs: pd.DataFrame
    kpis: tuple[Kpi, ...]


def snapshot(ws: Workspace, now: datetime) -> Snapshot:
    history = read_history(ws.history_path)
    metrics = with_pulls(read_metrics(ws.metrics_path), _local_pulls(ws), now)
    return Snapshot(now, history, metrics, run_table(history, metrics), compute_kpis(history, metrics))


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return (
        pd.Timestamp(value).tz_convert(UTC).isoformat(timespec="seconds")
        if pd.Timestamp(value).tzinfo
        else str(value)
    )


def horizon_rows(ws: Workspace, snap: Snapshot) -> list[dict[str, Any]]:
    from bot.adapters.configs import read_config

    rows = []
    for h in HORIZONS:
        row: dict[str, Any] = {"horizon": h}
        try:
            cfg = read_config(ws.config_path(h))
            row.update(
                model_id=cfg.model_id, context_length=cfg.context_length, num_samples=cfg.num_samples,
                temperature=cfg.temperature, version=cfg.version, config_hash=config_hash(cfg),
                source=cfg.provenance.pull_request or cfg.provenance.run_id or cfg.provenance.source,
                updated_at=cfg.provenance.updated_at,
            )  # fmt: skip
        except Exception as exc:
            row["error"] = str(exc)
        live = config_at(ws, h, snap.now)
        row.update(
            live_version=live.version, live_hash=live.config_hash, live_since=_iso(live.committed_at),
            live_via=live.via if live.commit else None, live_commit=live.commit[:10] if live.commit else None,
            live_error=live.error,
        )  # fmt: skip
        mine = snap.runs[snap.runs["horizon"] == h]
        if not mine.empty:
            last = mine.iloc[-1]
            row.update(
                last_run=_iso(last["at"]), last_status=last["status"], last_trigger=last["triggered_by"] or None,
                last_verdict=last["verdict"], last_pull_request=last["pull_request"],
            )  # fmt: skip
        row["next_run"] = _iso(next_run(snap.now))
        rows.append(row)
    return rows


def status_document(ws: Workspace, now: datetime) -> dict[str, Any]:
    snap = snapshot(ws, now)
    return {
        "generated_at": _iso(now),
        "next_scheduled_run": _iso(next_run(now)),
        "horizons": horizon_rows(ws, snap),
        "kpis": [k.to_dict() for k in snap.kpis],
    }


def status_at_document(ws: Workspace, day: date) -> dict[str, Any]:
    when = end_of_day(day)
    return {
        "date": day.isoformat(),
        "at": _iso(when),
        "horizons": [c.to_dict() for c in configs_at(ws, when)],
    }


# --- inline SVG charts --------------------------------------------------------------------------

COLORS = {
    "merged": "#16a34a", "proposed": "#2563eb", "rejected": "#dc2626", "no_change": "#9ca3af",
    "failed": "#7c2d12", "skipped": "#e5e7eb", "before": "#9ca3af", "after": "#2563eb",
    "performance": "#f59e0b", "drift": "#8b5cf6", "time": "#0ea5e9", "manual": "#64748b",
    "line": "#2563eb", "target": "#16a34a",
}  # fmt: skip
W, H = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 56


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


def _legend(names: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], LEFT
    for name, color in names:
        out.append(f'<rect x="{x}" y="12" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="21">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out


def _y_axis(lo: float, hi: float, unit: str, width: int, height: int) -> tuple[list[str], float, float]:
    from bot.render.charts import nice_ticks

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
    parts += axis + _legend([(s.name, s.color) for s in series])
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
    from bot.render.charts import date_ticks

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
    parts += _legend(legend)
    coords = " ".join(f"{x(d):.1f},{_y(v, y0, y1, H):.1f}" for d, v in pts)
    parts.append(f'<polyline points="{coords}" fill="none" stroke="{COLORS["line"]}" stroke-width="2"/>')
    for d, v in pts:
        parts.append(
            f'<circle cx="{x(d):.1f}" cy="{_y(v, y0, y1, H):.1f}" r="3" fill="{COLORS["line"]}">'
            f"<title>{escape(f'{d.isoformat()}: {v:,.1f}{unit}')}</title></circle>"
        )
    return "\n".join([*parts, "</svg>"])


# --- the dashboard ------------------------------------------------------------------------------

OUTCOMES = ("merged", "proposed", "rejected", "no_change", "failed")


def _outcome(row: pd.Series) -> str:
    status = str(row["status"])
    if status in ("merged", "proposed", "no_change", "failed", "skipped"):
        return status
    return "rejected" if str(row["verdict"]).endswith("rejected") else status


def frequency(runs: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    fired = runs[runs["status"] != "skipped"]
    rows: list[dict[str, Any]] = []
    series: dict[str, list[float]] = {o: [] for o in OUTCOMES}
    for h in HORIZONS:
        mine = fired[fired["horizon"] == h]
        counts = mine.apply(_outcome, axis=1).value_counts() if not mine.empty else pd.Series(dtype=int)
        for o in OUTCOMES:
            series[o].append(float(counts.get(o, 0)))
        rows.append({
            "horizon": h, "runs": len(mine), **{o: int(counts.get(o, 0)) for o in OUTCOMES},
            "checks": int((runs["horizon"] == h).sum()),
            "last": _day(mine["at"].iloc[-1]) if not mine.empty else "never",
        })  # fmt: skip
    chart = bar_chart(
        "chart-frequency", "Optimizations per horizon, by outcome", list(HORIZONS),
        [Bars(o.replace("_", " "), COLORS[o], tuple(series[o])) for o in OUTCOMES], stacked=True,
        empty="no optimization has run yet",
    )  # fmt: skip
    return rows, chart


def _day(value: Any) -> str:
    return str(pd.Timestamp(value).strftime("%Y-%m-%d"))


def validation(runs: pd.DataFrame, kpi: Kpi) -> str:
    rate = rolling_validation_rate(runs, days=30)
    points = [(pd.Timestamp(d).date(), float(r)) for d, r in zip(rate["day"], rate["rate"], strict=True)]
    return line_chart(
        "chart-validation", "Validation success rate (rolling 30 days)", points, y_range=(0.0, 100.0),
        unit="%", target=(kpi.target.threshold, f"target {kpi.target.text}"),
        empty="no candidate has been through the gate yet",
    )  # fmt: skip


def performance(runs: pd.DataFrame) -> tuple[list[dict[str, Any]], str]:
    merged = merged_pulls(runs)
    rows = []
    for _, r in merged.iterrows():
        value, source = improvement_pct(r)
        realized = source == "realized"
        before = r["realized_before"] if realized else r["rmse_before"]
        after = r["realized_after"] if realized else r["rmse_after"]
        rows.append({
            "label": f"{r['horizon']} #{r['pull_request']}" if r["pull_request"] else f"{r['horizon']} {_day(r['at'])}",
            "horizon": r["horizon"], "date": _day(r["merged_at"]), "pull_request": r["pull_request"],
            "merged_by": r["merged_by"], "before": _num(before), "after": _num(after),
            "improvement": value, "source": source or "n/a",
        })  # fmt: skip
    shown = [r for r in rows if r["before"] is not None and r["after"] is not None][-12:]
    chart = bar_chart(
        "chart-rmse", "RMSE before and after each merged optimization (CLP)", [r["label"] for r in shown],
        [Bars("before", COLORS["before"], tuple(r["before"] for r in shown)),
         Bars("after", COLORS["after"], tuple(r["after"] for r in shown))],
        empty="no merged optimization with RMSE yet",
    )  # fmt: skip
    return rows, chart


def _s(value: Any) -> str | None:
    """Text or None: parquet gives NaN for a missing string."""
    return None if value is None or pd.isna(value) else str(value)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def triggers(runs: pd.DataFrame, limit: int = 40) -> tuple[list[dict[str, Any]], str]:
    fired = runs[runs["triggered"] | runs["forced"]]
    counts = {k: [0.0] * len(HORIZONS) for k in TRIGGER_KINDS}
    for _, r in fired.iterrows():
        for k in trigger_kinds(r["triggered_by"], bool(r["forced"])):
            counts[k][HORIZONS.index(r["horizon"])] += 1
    chart = bar_chart(
        "chart-triggers", "What triggered optimizations, per horizon", list(HORIZONS),
        [Bars(k, COLORS[k], tuple(v)) for k, v in counts.items()], stacked=True,
        empty="no trigger has fired yet",
    )  # fmt: skip
    rows = [
        {"date": pd.Timestamp(r["at"]).strftime("%Y-%m-%d %H:%M"), "horizon": r["horizon"],
         "triggered_by": r["triggered_by"] or ("forced" if r["forced"] else "n/a"),
         "reasons": trigger_reasons(r["trigger_reasons"]), "outcome": _outcome(r).replace("_", " "),
         "pull_request": r["pull_request"]}
        for _, r in fired.iloc[::-1].head(limit).iterrows()
    ]  # fmt: skip
    return rows, chart


def rollbacks(snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    m = snap.metrics
    if not m.empty:
        for _, r in m[m["event"] == "rollback"].iterrows():
            out.append({"date": _day(r["merged_at"] if pd.notna(r["merged_at"]) else r["recorded_at"]),
                        "horizon": r["horizon"], "pull_request": _s(r["pull_request"]), "reverts": _s(r["rollback_of"])})  # fmt: skip
    h = snap.history
    if not h.empty:
        seen = {(r["horizon"], str(r["pull_request"])) for r in out}
        for _, r in h[h["status"] == "rolled_back"].iterrows():
            if (r["horizon"], str(r["pull_request"])) not in seen:
                notes = str(r["notes"] or "")
                rev = re.match(r"reverts #(\d+)", notes)
                out.append({"date": _day(r["optimization_date"]), "horizon": r["horizon"],
                            "pull_request": _s(r["pull_request"]), "reverts": rev.group(1) if rev else None})  # fmt: skip
    return sorted(out, key=lambda r: r["date"], reverse=True)


def last_details(ws: Workspace, snap: Snapshot) -> list[dict[str, Any]]:
    rows = []
    m = snap.metrics
    for row in horizon_rows(ws, snap):
        h = row["horizon"]
        tuned = snap.runs[(snap.runs["horizon"] == h) & (snap.runs["status"] != "skipped")]
        detail: dict[str, Any] = {**row, "criteria": [], "reasons": [], "search_seconds": None,
                                  "configs_evaluated": None, "run_id": None, "optimized": None}  # fmt: skip
        if not tuned.empty:
            last = tuned.iloc[-1]
            detail.update(
                optimized=_day(last["at"]), run_id=last["run_id"], optimized_status=_outcome(last),
                optimized_trigger=last["triggered_by"], reasons=trigger_reasons(last["trigger_reasons"]),
                search_seconds=_num(last["search_seconds"]), configs_evaluated=_num(last["configs_evaluated"]),
                optimized_verdict=last["verdict"], optimized_pr=last["pull_request"],
            )  # fmt: skip
            if not m.empty:
                match = m[(m["event"] == "run") & (m["run_id"] == last["run_id"]) & (m["horizon"] == h)]
                if not match.empty and isinstance(match["validation_criteria"].iloc[-1], str):
                    detail["criteria"] = _criteria(match["validation_criteria"].iloc[-1])
        rows.append(detail)
    return rows


def _criteria(raw: str) -> list[dict[str, Any]]:
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    return [
        {"label": c.get("label", c.get("name", "?")), "passed": bool(c.get("passed")),
         "value": _num(c.get("value")), "comparator": c.get("comparator", ""), "threshold": _num(c.get("threshold"))}
        for c in items if isinstance(c, dict)
    ]  # fmt: skip


def _random_weights(ws: Workspace) -> bool:
    from bot.adapters.configs import read_config
    from bot.adapters.tiny import is_random_weight_model

    for h in HORIZONS:
        try:
            model = Path(read_config(ws.config_path(h)).model_id)
        except Exception:
            continue
        if is_random_weight_model(model if model.is_absolute() else ws.root / model):
            return True
    return False


def dashboard_context(ws: Workspace, now: datetime) -> dict[str, Any]:
    snap = snapshot(ws, now)
    kpis = {k.key: k for k in snap.kpis}
    freq_rows, freq_chart = frequency(snap.runs)
    perf_rows, perf_chart = performance(snap.runs)
    trig_rows, trig_chart = triggers(snap.runs)
    return {
        "generated_at": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "next_run": next_run(now).strftime("%Y-%m-%d %H:%M UTC"),
        "has_runs": not snap.runs.empty,
        "n_runs": int((snap.runs["status"] != "skipped").sum()) if not snap.runs.empty else 0,
        "n_checks": len(snap.runs),
        "first_run": _day(snap.runs["at"].iloc[0]) if not snap.runs.empty else None,
        "synthetic": (ws.series_path.parent / "SYNTHETIC").exists(),
        "random_weights": _random_weights(ws),
        "sections": SECTIONS,
        "kpis": [k.to_dict() | {"display": k.display} for k in snap.kpis],
        "frequency_rows": freq_rows,
        "frequency_chart": Markup(freq_chart),  # built from escaped parts only
        "validation_chart": Markup(validation(snap.runs, kpis["validation_success_rate"])),
        "validation_kpi": kpis["validation_success_rate"].to_dict()
        | {"display": kpis["validation_success_rate"].display},
        "performance_rows": perf_rows,
        "performance_chart": Markup(perf_chart),
        "details": last_details(ws, snap),
        "trigger_rows": trig_rows,
        "trigger_chart": Markup(trig_chart),
        "rollbacks": rollbacks(snap),
    }


def _when(value: Any) -> str:
    """An ISO timestamp as '2026-01-04 05:00 UTC' (anything else as is)."""
    if not value:
        return "n/a"
    try:
        return str(pd.Timestamp(value).tz_convert(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    except (ValueError, TypeError):
        return str(value)


def _environment(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, d=2: "n/a" if v is None else f"{v:,.{d}f}"
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v:+.1f}%"
    env.filters["when"] = _when
    return env


def render_dashboard(context: dict[str, Any], *, templates: Path = TEMPLATES_DIR) -> str:
    return _environment(templates).get_template(DASHBOARD_TEMPLATE).render(**context)


def write_dashboard(ws: Workspace, out_dir: Path, now: datetime) -> Path:
    """Render the dashboard to OUT_DIR/index.html (atomic); returns its path."""
    html = render_dashboard(dashboard_context(ws, now))
    target = out_dir / "index.html"
    atomic_write_text(target, html)
    atomic_write_text(out_dir / ".nojekyll", "")  # GitHub Pages: serve the file as is
    return target


# --- the status command -------------------------------------------------------------------------


def parse_day(text: str) -> date:
    from bot.errors import ChronopsError

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ChronopsError(f"--at {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-01-31") from None


def status_command(root: Path, *, at: str | None, as_json: bool, console: Any) -> None:
    """`chronops status [--at DATE] [--json]`, printed on a rich console."""
    from rich.table import Table

    ws = Workspace.open(root)
    if at is not None:
        doc = status_at_document(ws, parse_day(at))
        if as_json:
            console.print_json(json.dumps(doc, default=str))
            return
        table = Table(
            "horizon",
            "version",
            "config",
            "live since",
            "put there by",
            "commit",
            title=f"Live at the end of {doc['date']} (UTC)",
        )
        for c in doc["horizons"]:
            since = c["committed_at"].strftime("%Y-%m-%d %H:%M") if c["committed_at"] else ""
            table.add_row(c["horizon"], str(c["version"] or ""), c["config_hash"] or "", since,
                          c["via"] if c["commit"] else (c["error"] or ""), (c["commit"] or "")[:10])  # fmt: skip
        console.print(table)
        return
    doc = status_document(ws, datetime.now(UTC))
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    table = Table(
        "horizon", "model", "context", "ns", "T", "version", "live since", "from", "last run", "outcome"
    )
    for r in doc["horizons"]:
        cells = [str(r.get(k) or "") for k in (
            "horizon", "model_id", "context_length", "num_samples", "temperature", "version",
        )]  # fmt: skip
        since = _when(r["live_since"]) if r.get("live_since") else ""
        last = _when(r["last_run"]) if r.get("last_run") else "never"
        table.add_row(*cells, since, str(r.get("live_via") or ""), last, str(r.get("last_status") or ""))
    console.print(table)
    for r in doc["horizons"]:
        if r.get("error"):
            console.print(f"{r['horizon']}: {r['error']}")
    console.print(f"next scheduled run: {doc['next_scheduled_run']} (Sunday 02:00 America/Santiago)")
    kpis = Table("KPI", "value", "target", "met", "n", title="KPIs")
    for k in doc["kpis"]:
        value = (
            "n/a"
            if k["value"] is None
            else f"{k['value']:.1f}" + ("%" if k["unit"] == "%" else f" {k['unit']}")
        )
        met = "n/a" if k["met"] is None else ("yes" if k["met"] else "no")
        kpis.add_row(k["label"], value, k["target"], met, str(k["n"]))
    console.print(kpis)
