"""What `chronops status` and the dashboard show, gathered from the workspace: live configs, runs, KPIs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from bot.adapters.config_history import config_at, configs_at, end_of_day
from bot.adapters.history import read_history
from bot.adapters.store import atomic_write_text
from bot.core.config import HORIZONS, config_hash
from bot.core.kpis import (
    TRIGGER_KINDS,
    Kpi,
    compute_kpis,
    run_table,
    trigger_kinds,
    trigger_reasons,
)
from bot.core.ops_kpis import ops_kpis, rmse_trend, weekly_triggers
from bot.errors import ChronopsError
from bot.flow.records import read_metrics, with_pulls
from bot.render.dashboard import (
    SECTIONS,
    day_label,
    frequency,
    iso_or_none,
    number_or_none,
    parse_criteria,
    performance,
    render_dashboard,
    run_outcome,
    text_or_none,
    triggers,
    validation,
)
from bot.render.timeline import github_pull_url, rmse_trend_chart, trigger_timeline_chart
from bot.workspace import Workspace


def next_run(now: datetime) -> datetime:
    from bot.core.schedule import next_scheduled_run

    return next_scheduled_run(now)


def _local_pulls(ws: Workspace) -> list[Any]:
    """The local forge's pull-request records, if any (people's merges show up only there)."""
    from bot.adapters.forges.base import PullRecord

    path = ws.pulls_path
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
    runs = run_table(history, metrics)
    kpis = (*compute_kpis(history, metrics), *ops_kpis(runs, history, metrics, pd.Timestamp(now)))
    return Snapshot(now, history, metrics, runs, kpis)


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
            live_version=live.version, live_hash=live.config_hash, live_since=iso_or_none(live.committed_at),
            live_via=live.via if live.commit else None, live_commit=live.commit[:10] if live.commit else None,
            live_error=live.error,
        )  # fmt: skip
        mine = snap.runs[snap.runs["horizon"] == h]
        if not mine.empty:
            last = mine.iloc[-1]
            row.update(
                last_run=iso_or_none(last["at"]), last_status=last["status"], last_trigger=last["triggered_by"] or None,
                last_verdict=last["verdict"], last_pull_request=last["pull_request"],
            )  # fmt: skip
        row["next_run"] = iso_or_none(next_run(snap.now))
        rows.append(row)
    return rows


def status_document(ws: Workspace, now: datetime) -> dict[str, Any]:
    snap = snapshot(ws, now)
    return {
        "generated_at": iso_or_none(now),
        "next_scheduled_run": iso_or_none(next_run(now)),
        "horizons": horizon_rows(ws, snap),
        "kpis": [k.to_dict() for k in snap.kpis],
    }


def status_at_document(ws: Workspace, day: date) -> dict[str, Any]:
    when = end_of_day(day)
    return {
        "date": day.isoformat(),
        "at": iso_or_none(when),
        "horizons": [c.to_dict() for c in configs_at(ws, when)],
    }


def rollbacks(snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    m = snap.metrics
    if not m.empty:
        for _, r in m[m["event"] == "rollback"].iterrows():
            out.append({"date": day_label(r["merged_at"] if pd.notna(r["merged_at"]) else r["recorded_at"]),
                        "horizon": r["horizon"], "pull_request": text_or_none(r["pull_request"]), "reverts": text_or_none(r["rollback_of"])})  # fmt: skip
    h = snap.history
    if not h.empty:
        seen = {(r["horizon"], str(r["pull_request"])) for r in out}
        for _, r in h[h["status"] == "rolled_back"].iterrows():
            if (r["horizon"], str(r["pull_request"])) not in seen:
                notes = str(r["notes"] or "")
                rev = re.match(r"reverts #(\d+)", notes)
                out.append({"date": day_label(r["optimization_date"]), "horizon": r["horizon"],
                            "pull_request": text_or_none(r["pull_request"]), "reverts": rev.group(1) if rev else None})  # fmt: skip
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
                optimized=day_label(last["at"]), run_id=last["run_id"], optimized_status=run_outcome(last),
                optimized_trigger=last["triggered_by"], reasons=trigger_reasons(last["trigger_reasons"]),
                search_seconds=number_or_none(last["search_seconds"]), configs_evaluated=number_or_none(last["configs_evaluated"]),
                optimized_verdict=last["verdict"], optimized_pr=last["pull_request"],
            )  # fmt: skip
            if not m.empty:
                match = m[(m["event"] == "run") & (m["run_id"] == last["run_id"]) & (m["horizon"] == h)]
                if not match.empty and isinstance(match["validation_criteria"].iloc[-1], str):
                    detail["criteria"] = parse_criteria(match["validation_criteria"].iloc[-1])
        rows.append(detail)
    return rows


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
    undone = rollbacks(snap)
    weeks = weekly_triggers(snap.runs, trigger_kinds, TRIGGER_KINDS)
    week_rows = [{**r, "week": pd.Timestamp(r["week"]).date()} for r in weeks.to_dict("records")]
    pull_url = github_pull_url(_origin_url(ws))
    return {
        "generated_at": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "next_run": next_run(now).strftime("%Y-%m-%d %H:%M UTC"),
        "has_runs": not snap.runs.empty,
        "n_runs": int((snap.runs["status"] != "skipped").sum()) if not snap.runs.empty else 0,
        "n_checks": len(snap.runs),
        "first_run": day_label(snap.runs["at"].iloc[0]) if not snap.runs.empty else None,
        "synthetic": ws.is_synthetic,
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
        "rollbacks": undone,
        # built from escaped parts only
        "trend_chart": Markup(rmse_trend_chart(rmse_trend(snap.runs, undone), pull_url=pull_url)),
        "trigger_timeline": Markup(trigger_timeline_chart(week_rows, TRIGGER_KINDS)),
        "pull_url": pull_url,
        "watch_alarms": watch_alarm_rows(ws),
    }


def _origin_url(ws: Workspace) -> str | None:
    """The workspace's origin remote (PR links on the dashboard when it is on github.com)."""
    from bot.adapters.git import GitRepo

    try:
        return GitRepo(ws.root).git("remote", "get-url", "origin")
    except Exception:  # no git, no clone, no origin: no links
        return None


def watch_alarm_rows(ws: Workspace, limit: int = 20) -> list[dict[str, Any]]:
    """The daily watch's latest alarms, newest first (one row per alarm: its final action)."""
    from bot.flow.watch import read_alarms

    alarms = read_alarms(ws)
    if alarms.empty:
        return []
    last = alarms.drop_duplicates(subset=["day"], keep="last").sort_values("day", ascending=False).head(limit)
    return [
        {"day": day_label(r["day"]), "statistic": float(r["statistic"]), "threshold": float(r["threshold"]),
         "onset": day_label(r["onset"]), "ratio": float(r["ratio"]), "action": str(r["action"]),
         "detail": text_or_none(r["detail"])}
        for _, r in last.iterrows()
    ]  # fmt: skip


def write_dashboard(ws: Workspace, out_dir: Path, now: datetime) -> Path:
    """Render the dashboard to OUT_DIR/index.html (atomic); returns its path."""
    html = render_dashboard(dashboard_context(ws, now))
    target = out_dir / "index.html"
    try:
        # world-readable: a web server or GitHub Pages serves it as another user
        atomic_write_text(target, html, mode=0o644)
        atomic_write_text(out_dir / ".nojekyll", "", mode=0o644)  # GitHub Pages: serve the file as is
    except OSError as exc:
        raise ChronopsError(f"--out {out_dir}: cannot write the dashboard there ({exc.strerror or exc})") from None
    return target
