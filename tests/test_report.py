"""Reports: snapshots of every template, the PR body size limit, escaping, self-contained HTML.

Snapshots live in tests/snapshots/. After an intended template change, regenerate them with

    CHRONOPS_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_report.py

and review the diff of tests/snapshots/ like any other code change.
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from bot.flow.report_context import write_run_reports
from bot.render.charts import nice_ticks
from bot.render.emails import EMAIL_EVENTS, EMAIL_KEYS, render_email, run_email_context
from bot.render.report import (
    PR_BODY_LIMIT,
    REPORT_SCHEMA_VERSION,
    chart_panels,
    md_code,
    md_escape,
    render_html,
    render_json,
    render_pr_body,
    report_document,
)

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "report-schema.md"
UPDATE = os.environ.get("CHRONOPS_UPDATE_SNAPSHOTS") == "1"
HOSTILE = "<script>alert(1)</script>**bold**|pipe"


def candidate(rank: int, ctx: int, ns: int, temp: float, rmse: float) -> dict[str, Any]:
    return {
        "rank": rank,
        "label": f"ctx={ctx} ns={ns} T={temp}",
        "key": f"{rank:012x}",
        "rmse": rmse,
        "mape": rmse / 9.3,
        "mae": rmse * 0.8,
        "bias": 0.4,
        "error_std": rmse * 0.97,
        "coverage95": 94.0,
        "crps": rmse * 0.55,
        "naive_rmse": 9.9,
        "skill": 1 - rmse / 9.9,
        "inference_seconds": 0.41,
        "n_origins": 12.0,
        "n_points": 84.0,
    }


def run_context() -> dict[str, Any]:
    """A fixed, hand-built run context shaped like bot.flow.pipeline.report_context's."""
    ranking = [
        candidate(1, 270, 200, 0.8, 7.91),
        candidate(2, 270, 100, 0.8, 7.98),
        candidate(3, 180, 200, 1.0, 8.12),
        candidate(4, 180, 100, 1.0, 8.40),
        candidate(5, 90, 50, 1.0, 8.77),
        candidate(6, 90, 20, 1.2, 9.35),
    ]
    ranking[3]["key"] = "cafe00000000"  # the live config's hash
    criteria = [
        ("rmse_or_mape", "RMSE or MAPE improvement", 12.3, 5.0, ">=", True),
        ("error_std", "Error standard deviation increase", -4.1, 10.0, "<=", True),
        ("inference_time", "Inference time increase", 2.0, 50.0, "<=", True),
        ("ci95_coverage", "95% interval coverage", 94.0, 90.0, ">=", True),
        ("abs_bias", "Absolute bias", 0.4, 5.0, "<", True),
        ("significance", "Chance the gain is noise", 0.021, 0.05, "<=", True),
    ]
    return {
        "horizon": "7d",
        "run_id": "20250113T050000Z-ab12cd",
        "prediction_length": 7,
        "random_weights": False,
        "verdict": {
            "approved": True,
            "decision": "approved",
            "criteria": [
                {
                    "name": n,
                    "label": lb,
                    "value": v,
                    "threshold": t,
                    "comparator": c,
                    "passed": p,
                    "detail": f"{v} {c} {t}",
                }
                for n, lb, v, t, c, p in criteria
            ],
            "reasons": ["all 6 criteria passed"],
            "rmse_improvement_pct": 12.3,
            "mape_improvement_pct": 11.8,
            "noise_probability": 0.021,
            "initial_deployment": False,
            "override_reason": None,
            "headline": "APPROVED: RMSE 12.3% lower, MAPE 11.8% lower, chance the gain is noise 2.1%",
            "detectable_rmse_gain_pct": 9.4,
            "noise_loss": "vol_mse",
        },
        "config_diff": [
            {"key": "model_id", "old": '"amazon/chronos-t5-small"', "new": '"amazon/chronos-t5-small"'},
            {"key": "context_length", "old": "180", "new": "270"},
            {"key": "num_samples", "old": "100", "new": "200"},
            {"key": "temperature", "old": "1.0", "new": "0.8"},
            {"key": "top_k", "old": "50", "new": "50"},
            {"key": "top_p", "old": "1.0", "new": "1.0"},
            {"key": "version", "old": "3", "new": "4"},
        ],
        "current_config": {
            "horizon": "7d",
            "model_id": "amazon/chronos-t5-small",
            "context_length": 180,
            "num_samples": 100,
            "temperature": 1.0,
            "version": 3,
        },
        "proposed_config": {
            "horizon": "7d",
            "model_id": "amazon/chronos-t5-small",
            "context_length": 270,
            "num_samples": 200,
            "temperature": 0.8,
            "version": 4,
        },
        "metrics_table": [
            {"name": "RMSE (CLP)", "current": 9.02, "candidate": 7.91, "naive": 9.9},
            {"name": "MAPE (%)", "current": 0.97, "candidate": 0.85, "naive": None},
            {"name": "CI95 coverage (%)", "current": 91.7, "candidate": 94.0, "naive": None},
            {"name": "Skill vs naive", "current": 0.089, "candidate": 0.201, "naive": 0.0},
        ],
        "validation_scores": {"current": {"rmse": 9.02}, "candidate": {"rmse": 7.91}},
        "top_candidates": ranking[:5],
        "all_candidates": ranking,
        "n_candidates": len(ranking),
        "duplicates": ["ctx=540 ns=200 T=0.8 is ctx=512 ns=200 T=0.8 (T5 reads at most 512)"],
        "n_tuning": 24,
        "n_validation": 12,
        "origins_text": "24 tuning and 12 validation origins, one every 7 observations, from 2024-03-01 to "
        "2024-10-31, in alternating blocks of 6 origins (tuning, validation, tuning, ...): both sets span the "
        "history and no target window of one overlaps a target window of the other",
        "noise_loss_text": "squared error divided by the variance of daily changes known at the origin",
        "trigger_reasons": ["Performance degradation: RMSE +18.5%", "Data drift: MEDIUM severity"],
        "trigger": {"fire": True, "forced": False},
        "truncated_note": False,
        "stamp": {
            "series_label": "USD/CLP dólar observado",
            "n_obs": 2480,
            "first_date": "2015-01-02",
            "last_date": "2025-01-10",
            "data_fingerprint": "9f2c4e1a77b0",
            "model_id": "amazon/chronos-t5-small",
            "model_revision": "476f6ca",
            "family": "t5",
            "seed": 42,
            "origin_step": 7,
            "tuning_range": "2024-03-01 → 2024-08-09 (24 origins)",
            "validation_range": "2024-08-16 → 2024-10-31 (12 origins)",
            "versions": {"python": "3.11.9", "chronos-forecasting": "2.3.2", "torch": "2.13.0"},
            "command": "chronops run --horizon 7d",
        },
        "metadata": {
            "tool": "chronops",
            "run_id": "20250113T050000Z-ab12cd",
            "horizon": "7d",
            "config_hash": "0000000000001",
            "previous_hash": "cafe00000000",
            "decision": "approved",
        },
    }


def validation_steps(bias: float, spread: float, seed: int) -> pd.DataFrame:
    """Step rows (bot.core.metrics.STEP_COLUMNS) for 4 weekly origins of a 7-step horizon."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2024-08-16", periods=28)
    actual = 940 + np.cumsum(np.random.default_rng(0).normal(0, 4, len(days)))
    rows = []
    for i in range(4):
        for k in range(7):
            j = i * 7 + k
            point = actual[j] + bias + rng.normal(0, 3)
            rows.append(
                {"origin": days[i * 7], "step": k + 1, "target_date": days[j], "actual": actual[j],
                 "point": point, "lo95": point - spread * np.sqrt(k + 1), "hi95": point + spread * np.sqrt(k + 1),
                 "crps": 2.0, "naive": actual[i * 7]}
            )  # fmt: skip
    return pd.DataFrame(rows)


def panels() -> Any:
    return chart_panels(
        {"Current config": validation_steps(4.0, 3.0, 1), "Candidate": validation_steps(0.5, 4.0, 2)}
    )


EMAIL_CONTEXTS: dict[str, dict[str, Any]] = {
    "deployment_successful": {
        "horizon": "7d", "version": 4, "config_hash": "0000000000001", "commit": "3f9a1c2",
        "deployed_at": datetime(2025, 1, 13, 5, 12, tzinfo=UTC),
        "changes": [{"label": "Context length", "old": "180", "new": "270"}],
        "health": "forecaster-7d answered /healthz in 1.2 s",
    },
    "rollback_executed": {
        "horizon": "7d", "reason": "forecaster-7d failed its health check", "automatic": True,
        "from_version": 4, "to_version": 3, "commit": "8b1e0d4",
        "executed_at": datetime(2025, 1, 13, 5, 20, tzinfo=UTC),
    },
    "run_missed": {
        "horizon": "all", "expected_at": "2025-01-19 02:00 America/Santiago",
        "last_run_at": "2025-01-12 02:00 America/Santiago", "workflow": "optimize.yml",
    },
    "watch_alarm": {
        "horizon": "all", "day": "2019-11-13", "onset": "2019-11-04", "statistic": 5.46, "threshold": 2.5,
        "ratio": 2.81, "false_alarm_weeks": 20.0, "forge": "github",
        "reason": "Volatility watch: CUSUM 5.46 >= 2.50 on 2019-11-13 (volatility x2.81 over the 8 returns since 2019-11-04)",
    },
}  # fmt: skip


def email_context(event: str) -> dict[str, Any]:
    if event in EMAIL_CONTEXTS:
        return EMAIL_CONTEXTS[event]
    run = run_context()
    if event == "validation_failed":
        run["verdict"] = {**run["verdict"], "approved": False, "decision": "rejected",
                          "headline": "REJECTED (failed: RMSE or MAPE improvement): RMSE 1.0% lower"}  # fmt: skip
        run["verdict"]["criteria"][0] = {**run["verdict"]["criteria"][0], "passed": False, "value": 1.0}
    return run_email_context(
        event, run, started_at=datetime(2025, 1, 13, 5, 0, tzinfo=UTC), expected_completion="~5 minutes",
        automerge=True,
    )  # fmt: skip


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; create it with CHRONOPS_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; CHRONOPS_UPDATE_SNAPSHOTS=1 to accept"


# --- snapshots -----------------------------------------------------------------------------------


def test_pr_body_snapshot() -> None:
    check_snapshot("pr_body.md", render_pr_body(run_context()))


def test_report_json_snapshot() -> None:
    check_snapshot("report.json", render_json(run_context()))


def test_report_html_snapshot() -> None:
    check_snapshot("report.html", render_html(run_context(), panels()))


@pytest.mark.parametrize("event", EMAIL_EVENTS)
def test_email_snapshots(event: str) -> None:
    email = render_email(event, email_context(event))
    check_snapshot(f"email_{event}.subject.txt", email.subject + "\n")
    check_snapshot(f"email_{event}.txt", email.text)
    check_snapshot(f"email_{event}.html", email.html)


# --- the PR body limit ---------------------------------------------------------------------------


def huge_context() -> dict[str, Any]:
    ctx = run_context()
    ranking = [candidate(i + 1, 30 + i, 200, 1.0, 8.0 + i / 1000) for i in range(10_000)]
    ctx.update(all_candidates=ranking, top_candidates=ranking[:5], n_candidates=len(ranking))
    ctx["duplicates"] = [f"ctx={i} duplicates ctx={i + 1} " + "x" * 200 for i in range(3_000)]
    ctx["trigger_reasons"] = ["Performance degradation " + "y" * 100_000] * 50
    ctx["stamp"] = {**ctx["stamp"], "model_id": "m" * 5_000, "command": "chronops run " + "--x " * 5_000}
    ctx["verdict"] = {**ctx["verdict"], "reasons": ["r" * 10_000] * 100, "override_reason": "o" * 20_000}
    return ctx


def test_ten_thousand_candidates_and_huge_values_stay_under_the_limit() -> None:
    body = render_pr_body(huge_context())
    assert len(body) <= PR_BODY_LIMIT
    assert "| Criterion | Value | Threshold | Result |" in body
    assert "report.json" in body and "shortened" in body
    assert body.count("<details>") == body.count("</details>")
    assert body.rstrip().endswith("-->") and "chronops-metadata" in body


def test_hard_cut_keeps_metadata_and_closes_details() -> None:
    body = render_pr_body(run_context(), limit=3_000)
    assert len(body) <= 3_000
    assert body.count("<details>") == body.count("</details>")
    meta = re.search(r"<!-- chronops-metadata (.*) -->", body)
    assert meta is not None and json.loads(meta.group(1))["run_id"] == "20250113T050000Z-ab12cd"


def test_small_report_is_not_truncated() -> None:
    body = render_pr_body(run_context())
    assert "shortened" not in body and "ctx=90 ns=20 T=1.2" in body


# --- escaping ------------------------------------------------------------------------------------


def hostile_context() -> dict[str, Any]:
    ctx = run_context()
    ctx["stamp"] = {**ctx["stamp"], "model_id": HOSTILE}
    ctx["config_diff"][0] = {"key": "model_id", "old": json.dumps(HOSTILE), "new": json.dumps(HOSTILE + "2")}
    ctx["all_candidates"][0] = {**ctx["all_candidates"][0], "label": HOSTILE}
    ctx["trigger_reasons"] = [HOSTILE, "ping @octocat"]
    ctx["verdict"] = {**ctx["verdict"], "headline": HOSTILE}
    return ctx


def test_pr_body_escapes_markdown_and_html() -> None:
    body = render_pr_body(hostile_context())
    assert "<script" not in body.lower() and "**bold**" not in body and "@octocat" not in body
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(body)
    assert "<script" not in html.lower() and "<strong>bold" not in html
    tables = re.findall(r"<table>.*?</table>", html, flags=re.S)
    assert len(tables) >= 4
    for table in tables:  # a stray `|` would add a cell to some row
        widths = {
            row.count("<td") + row.count("<th") for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)
        }
        assert len(widths) == 1, table


def test_md_filters() -> None:
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("- x") == "\\- x"
    assert md_code("x`|<y>") == "<code>x&#96;&#124;&lt;y&gt;</code>"


def test_html_report_escapes_values() -> None:
    page = render_html(hostile_context(), panels())
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;**bold**|pipe" in page


def test_chart_titles_are_escaped() -> None:
    page = render_html(run_context(), chart_panels({HOSTILE: validation_steps(0.0, 3.0, 1)}))
    assert "<script" not in page.lower() and page.count("<svg") == 2  # the panel and the search space


# --- the HTML report -----------------------------------------------------------------------------


def test_html_report_is_self_contained_with_an_svg_chart() -> None:
    page = render_html(run_context(), panels())
    assert page.count("<svg") == 3  # two backtest panels and the search space
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(//|data:text|javascript:)""", page, flags=re.I)
    assert "@import" not in page and "url(" not in page
    for needle in ("Median forecast", "95% interval", "Actual", "CLP per USD", "2024-08-16"):
        assert needle in page


def test_identical_configs_are_drawn_once() -> None:
    steps = validation_steps(0.0, 3.0, 1)
    (only,) = chart_panels({"Current config": steps, "Candidate": steps})
    assert only.title == "Current config = Candidate"


def test_chart_without_data_says_so() -> None:
    page = render_html(run_context(), ())
    assert "No validation forecasts to plot" in page


def test_nice_ticks() -> None:
    assert nice_ticks(931.2, 968.7) == [940.0, 950.0, 960.0]
    assert nice_ticks(0.0, 1.0, 4) == [0.0, 0.5, 1.0]


# --- JSON ----------------------------------------------------------------------------------------


def test_json_report_is_complete_and_documented() -> None:
    ctx = huge_context()
    doc = json.loads(render_json(ctx))
    assert doc["schema_version"] == REPORT_SCHEMA_VERSION
    assert len(doc["all_candidates"]) == 10_000 and doc["stamp"]["model_id"] == "m" * 5_000
    assert "truncated_note" not in doc
    documented = set(re.findall(r"^\| `([a-z_0-9]+)` \|", DOCS.read_text(encoding="utf-8"), flags=re.M))
    assert set(doc) <= documented, sorted(set(doc) - documented)


def test_json_report_has_no_nan() -> None:
    ctx = run_context()
    ctx["metrics_table"][0] = {**ctx["metrics_table"][0], "naive": float("nan")}
    assert report_document(ctx)["metrics_table"][0]["naive"] is None
    json.loads(render_json(ctx))


# --- emails --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EMAIL_EVENTS)
def test_every_email_names_its_horizon(event: str) -> None:
    ctx = {**email_context(event), "horizon": "15d"}
    email = render_email(event, ctx)
    assert email.subject.startswith("[Model Optimizer] ") and "15d" in email.subject
    assert "15d" in email.text and "15d" in email.html and "\n" not in email.subject
    assert "http://" not in email.html and "https://" not in email.html


def test_seed_email_content() -> None:
    triggered = render_email("optimization_triggered", email_context("optimization_triggered"))
    assert triggered.subject == "[Model Optimizer] Optimization Triggered for 7d"
    assert "- Performance degradation: RMSE +18.5%" in triggered.text
    assert "Optimization started at 2025-01-13 05:00:00 UTC" in triggered.text
    assert "Expected completion: ~5 minutes" in triggered.text
    passed = render_email("validation_passed", email_context("validation_passed"))
    assert passed.subject == "[Model Optimizer] Validation PASSED for 7d"
    assert "- RMSE: 12.3% lower than the live config" in passed.text
    assert "APPROVED: RMSE 12.3% lower" in passed.text  # one direction, in words, in both places
    assert "- Context length: 180 → 270" in passed.text and "- Num samples: 100 → 200" in passed.text
    assert "Deployment will proceed automatically." in passed.text


def test_email_subject_cannot_inject_headers() -> None:
    ctx = {**email_context("run_missed"), "horizon": "7d\r\nBcc: victim@example.invalid"}
    email = render_email("run_missed", ctx)
    assert "\r" not in email.subject and "\n" not in email.subject
    html = render_email("run_missed", {**ctx, "horizon": HOSTILE}).html
    assert "<script" not in html


def test_email_missing_key_is_named() -> None:
    ctx = dict(email_context("run_missed"))
    del ctx["workflow"]
    with pytest.raises(KeyError, match="workflow"):
        render_email("run_missed", ctx)
    with pytest.raises(ValueError, match="unknown email event"):
        render_email("nope", ctx)


def test_email_keys_cover_every_event() -> None:
    assert set(EMAIL_KEYS) == set(EMAIL_EVENTS)


# --- StrictUndefined -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["verdict", "stamp", "metadata", "trigger_reasons"])
def test_missing_context_key_raises(key: str) -> None:
    ctx = run_context()
    del ctx[key]
    with pytest.raises((jinja2.UndefinedError, KeyError)):
        render_pr_body(ctx)
    with pytest.raises((jinja2.UndefinedError, KeyError)):
        render_html(ctx, panels())


def test_missing_nested_key_raises() -> None:
    ctx = copy.deepcopy(run_context())
    del ctx["stamp"]["data_fingerprint"]
    with pytest.raises(jinja2.UndefinedError):
        render_pr_body(ctx)


# --- files ---------------------------------------------------------------------------------------


def test_write_run_reports(tmp_path: Path) -> None:
    paths = write_run_reports(
        tmp_path / "run" / "7d", run_context(), panels(), started_at=datetime(2025, 1, 13, 5, tzinfo=UTC),
        automerge=True, search_seconds=290.0,
    )  # fmt: skip
    assert sorted(paths) == [
        "emails/optimization_triggered.json",
        "emails/validation_passed.json",
        "pr_body.md",
        "report.html",
        "report.json",
    ]
    assert all(p.exists() for p in paths.values())
    assert not list((tmp_path / "run" / "7d").glob(".*.tmp"))
    mail = json.loads(paths["emails/optimization_triggered.json"].read_text())
    assert set(mail) == {"event", "subject", "text", "html"} and "~5 minutes" in mail["text"]
    assert json.loads(paths["report.json"].read_text())["verdict"]["decision"] == "approved"
