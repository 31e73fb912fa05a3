"""The reviewer's view (issue 17): a PR title that states the change, a three-line summary, unchanged
keys folded away, one mention of an override's reason, no candidate listed twice, a Mermaid chart,
links to the report in the PR body and in every email, and emails that say what happened."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from bot.render.emails import EMAIL_EVENTS, render_email, run_emails
from bot.render.report import render_pr_body, with_review
from bot.render.review import mermaid_ranking, pr_title, report_links, search_grid
from tests.test_report import email_context, run_context

ENV = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/fx", "GITHUB_RUN_ID": "42"}
ACTIONS = "https://github.com/acme/fx/actions/runs/42"


def override_context() -> dict[str, Any]:
    """The demo's case: an initial deployment the gate failed, approved by manual override."""
    ctx = copy.deepcopy(run_context())
    reason = "demo: random weights, approving to show the merge path"
    crit = ctx["verdict"]["criteria"]
    for c in crit[:3] + crit[5:]:
        c.update(value=None, passed=True, detail="no current config")
    crit[4].update(value=950.6, passed=False, detail="mean error -950.6 CLP")
    crit.append({"name": "beats_naive", "label": "Beats the naive random walk", "value": 2575.7,
                 "threshold": 3.46, "comparator": "<", "passed": False, "detail": "2575.7 vs 3.46"})  # fmt: skip
    ctx["verdict"].update(
        decision="approved_override", override_reason=reason, initial_deployment=True,
        rmse_improvement_pct=None, mape_improvement_pct=None, noise_probability=None,
        reasons=[f"manual override: {reason}", "Absolute bias failed: mean error -950.6 CLP"],
        headline="APPROVED BY MANUAL OVERRIDE (the gate failed: Absolute bias, Beats the naive random walk): x",
    )  # fmt: skip
    return ctx


def test_title_states_the_change() -> None:
    assert pr_title("7d", run_context()["config_diff"]) == (
        "chronops 7d: context 180→270, samples 100→200, temperature 1.0→0.8"
    )
    same = [{"key": "context_length", "old": "90", "new": "90"}]
    assert pr_title("30d", same) == "chronops 30d: re-validated config, no parameter change"
    model = [{"key": "model_id", "old": '"models/a"', "new": '"amazon/chronos-bolt-small"'}]
    assert pr_title("7d", model) == "chronops 7d: model a→chronos-bolt-small"


def test_three_line_summary_then_links() -> None:
    body = render_pr_body(with_review(run_context(), env=ENV))
    lines = body.splitlines()
    assert lines[0] == "### ✅ The gate approves: the candidate passed all 6 criteria on 12 unseen origins."
    assert lines[2].startswith("**Gain:** RMSE 12.3% lower than the live config (9.02 CLP → 7.91 CLP)")
    assert "chance this is noise 2.1%" in lines[2] and "±9.4%" in lines[2]
    assert lines[3].startswith("**Merge or close:** Merging deploys configs/7d.json")
    assert "snoozes 7d for 4 weeks" in lines[3]
    assert f"[Actions run and artifacts]({ACTIONS})" in body
    assert body.count(ACTIONS) == 2  # under the summary and in the footer


def test_unchanged_keys_are_folded_and_nothing_is_listed_twice() -> None:
    body = render_pr_body(run_context())
    config = body[body.index("### Config change") : body.index("### Live vs candidate")]
    visible, folded = config.split("<details>")
    for key in ("context&#95;length", "num&#95;samples", "temperature", "version"):
        assert key in visible
    for key in ("model&#95;id", "top&#95;k", "top&#95;p"):
        assert key not in visible and key in folded
    assert "3 unchanged keys" in folded
    ranks = re.findall(r"^\| (\d+) \| ctx=", body, flags=re.M)
    assert sorted(map(int, ranks)) == [1, 2, 3, 4, 5, 6]  # each candidate in one table row
    assert "<summary>Rank 6</summary>" in body


def test_override_reason_appears_once_and_criteria_that_do_not_apply_say_so() -> None:
    ctx = override_context()
    body = render_pr_body(ctx)
    assert body.count(ctx["verdict"]["override_reason"]) == 1
    assert body.startswith(
        "### ⚠️ Approved by manual override: the gate failed (absolute bias, beats the naive"
    )
    rows = [ln for ln in body.splitlines() if ln.startswith("| RMSE or MAPE improvement |")]
    assert rows == ["| RMSE or MAPE improvement | n/a | ≥ 5.0% | ➖ n/a |"]
    assert "| n/a | ≤ 5.0% | ✅ pass |" not in body
    assert "abs_bias" not in body and "beats_naive" not in body.split("chronops-metadata")[0]


def test_units_in_every_table_header() -> None:
    body = render_pr_body(run_context())
    assert "| # | Config | RMSE (CLP) | MAPE (%) | CRPS (CLP) | CI95 coverage (%) |" in body
    assert "Skill vs naive (1 − RMSE ÷ naive RMSE; &gt; 0 beats naive)" in body


def test_mermaid_chart_github_renders() -> None:
    body = render_pr_body(run_context())
    block = re.search(r"```mermaid\n(.*?)\n```", body, flags=re.S)
    assert block, body
    chart = block.group(1)
    assert chart.startswith("xychart-beta\n") and "bar [7.91, 7.98, 8.12, 8.4, 8.77, 9.35]" in chart
    assert '"#4 ctx=180 ns=100 T=1.0 (live)"' in chart
    hostile = mermaid_ranking([{"rank": 1, "label": 'x"]\n```<script>', "rmse": 1.0}], None)
    assert "<" not in hostile and "`" not in hostile and hostile.count('"') == 6


def test_links_come_from_the_actions_environment_or_a_reports_url() -> None:
    assert report_links({}, "R", "7d") == {
        "actions": None,
        "report": None,
        "local": "data/runs/R/7d/report.html",
    }
    links = report_links({**ENV, "CHRONOPS_REPORTS_URL": "https://acme.github.io/fx/runs/"}, "R", "7d")
    assert links["actions"] == ACTIONS
    assert links["report"] == "https://acme.github.io/fx/runs/R/7d/report.html"
    assert (
        report_links(
            {"GITHUB_SERVER_URL": "javascript:x", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "1"}, "R", "7d"
        )["actions"]
        is None
    )


@pytest.mark.parametrize("event", EMAIL_EVENTS)
def test_every_email_links_to_the_run(event: str) -> None:
    email = render_email(event, email_context(event), links_env=ENV)
    assert ACTIONS in email.text, email.text
    assert f'href="{ACTIONS}"' in email.html


def test_emails_say_what_happened() -> None:
    ctx = override_context()
    emails = run_emails(ctx, search_seconds=50.0)
    assert "Expected completion: ~1 minute\n" in emails["optimization_triggered"].text
    passed = emails["validation_passed"]
    assert passed.subject == "[Model Optimizer] Validation FAILED for 7d, approved by manual override"
    assert "failed: Absolute bias" in passed.text
    missed = render_email("run_missed", email_context("run_missed"))
    assert missed.subject == "[Model Optimizer] Scheduled Run Missed for all horizons"
    approved = render_email("validation_passed", email_context("validation_passed"))
    assert "RMSE: 12.3% lower than the live config" in approved.text
    assert "RMSE -12.3%" not in approved.text and "+12.3%" not in approved.text


def test_search_grid_keeps_the_best_per_cell() -> None:
    grid = search_grid(run_context()["all_candidates"])
    assert grid["contexts"] == [90, 180, 270] and grid["samples"] == [20, 50, 100, 200]
    assert grid["rmse"]["270x200"] == pytest.approx(7.91) and "90x200" not in grid["rmse"]
