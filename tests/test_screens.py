"""What people see, in a real browser (issue 17): the PR body rendered as GitHub renders it (GitHub
alerts and <details> included), the HTML report, the dashboard and one email. Each is screenshotted
to artifacts/ (uploaded by CI, never committed) and measured: no SVG text may stick out of its
<svg> (a clipped date label or title), and the dashboard must show the seed's KPIs."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt

from bot.flow.status import write_dashboard
from bot.render.emails import render_email, run_emails
from bot.render.report import render_html, render_pr_body, with_review
from bot.workspace import Workspace
from tests.browser import chromium, measure, screenshot, visible_text
from tests.test_dashboard import NOW, repo_ws  # noqa: F401  (a fixture)
from tests.test_report import panels, run_context
from tests.test_review import ENV, override_context

# GitHub's alert blockquotes, as github.com renders them (class names from its HTML)
_ALERT = re.compile(r"<blockquote>\s*<p>\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]\s*", flags=re.S)
GITHUB_CSS = """
body { font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
       color: #1f2328; max-width: 1012px; margin: 24px auto; padding: 0 16px; }
h3 { font-size: 1.25em; margin: 24px 0 16px; }
table { border-collapse: collapse; display: block; overflow: auto; margin: 0 0 16px; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
tr:nth-child(2n) { background: #f6f8fa; }
code { font: 85% ui-monospace, SFMono-Regular, Menlo, monospace; background: rgba(129,139,152,.12);
       padding: .2em .4em; border-radius: 6px; }
pre { background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; }
pre code { background: none; padding: 0; }
details { margin: 0 0 16px; } summary { cursor: pointer; }
.markdown-alert { padding: 8px 16px; margin: 0 0 16px; border-left: .25em solid; }
.markdown-alert-title { font-weight: 500; margin: 0 0 4px; }
.markdown-alert-note { border-color: #0969da; } .markdown-alert-warning { border-color: #9a6700; }
.markdown-alert-caution { border-color: #d1242f; }
.mermaid-note { color: #59636e; font-size: 12px; }
"""


def github_html(markdown: str) -> str:
    """A PR body as github.com shows it: GFM tables, raw HTML (details, code), alert blockquotes.
    Mermaid blocks stay code (GitHub draws them in an iframe this page cannot load)."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough").render(markdown)

    def alert(m: re.Match[str]) -> str:
        kind = m.group(1).lower()
        return f'<div class="markdown-alert markdown-alert-{kind}"><p class="markdown-alert-title">{kind.title()}</p><p>'

    html = _ALERT.sub(alert, html)
    html = re.sub(r"</p>\s*</blockquote>", "</p></div>", html)
    html = html.replace(
        '<pre><code class="language-mermaid">',
        '<p class="mermaid-note">GitHub draws this Mermaid chart:</p><pre><code class="language-mermaid">',
    )
    return f'<!doctype html><html><head><meta charset="utf-8"><style>{GITHUB_CSS}</style></head><body>{html}</body></html>'


def test_pr_body_as_github_renders_it(tmp_path: Path) -> None:
    binary = chromium()
    for name, ctx in (("pr_body.png", run_context()), ("pr_body_override.png", override_context())):
        body = render_pr_body(with_review(ctx, env=ENV))
        html = github_html(body)
        assert "[!" not in html, "an alert was not rendered"
        page = tmp_path / f"{name}.html"
        page.write_text(html, encoding="utf-8")
        screenshot(binary, page, name, width=1100, height=2600)
        text = visible_text(binary, page)
        assert "Gain:" in text and "Merge or close:" in text and "unchanged keys" in text
        assert "Actions run and artifacts" in text
    assert 'class="markdown-alert markdown-alert-caution"' in html and "<details>" in html


def test_html_report_has_no_clipped_text(tmp_path: Path) -> None:
    binary = chromium()
    for name, ctx in (("report.png", run_context()), ("report_override.png", override_context())):
        html = render_html(with_review(ctx, env=ENV), panels())
        found = measure(binary, html, tmp_path)
        assert found["svgs"] == 3 and found["texts"] > 30, found
        assert found["clipped"] == [], found["clipped"]
        assert found["wrapped"] == [], f"Result cells wrapped: {found['wrapped']}"
        page = tmp_path / f"{name}.html"
        page.write_text(html, encoding="utf-8")
        screenshot(binary, page, name, height=3000)


def test_dashboard_shows_the_seed_kpis_and_clips_nothing(repo_ws: Workspace, tmp_path: Path) -> None:  # noqa: F811
    binary = chromium()
    page = write_dashboard(repo_ws, tmp_path / "site", NOW)
    found = measure(binary, page.read_text(encoding="utf-8"), tmp_path, width=1280)
    assert found["svgs"] >= 6 and found["clipped"] == [], found
    text = visible_text(binary, page)
    for kpi in (
        "Manual interventions per month",
        "Forecast accuracy",
        "Deployment success rate",
        "Memory per run",
        "Automation rate",
        "Validation success rate",
    ):
        assert kpi.lower() in text.lower(), kpi
    assert "RMSE before and after" in text
    screenshot(binary, page, "dashboard_kpis.png", width=1280, height=4400)


def test_an_email_in_the_browser(tmp_path: Path) -> None:
    binary = chromium()
    email = run_emails(override_context(), links_env=ENV)["validation_passed"]
    page = tmp_path / "email.html"
    page.write_text(email.html, encoding="utf-8")
    text = visible_text(binary, page)
    assert "Validation FAILED for 7d, approved by manual override" in text
    assert "Actions run" in text
    screenshot(binary, page, "email.png", width=800, height=1000)
    missed = render_email("run_missed", {"horizon": "all", "expected_at": "x", "last_run_at": None,
                                         "workflow": "optimize.yml"}, links_env=ENV)  # fmt: skip
    assert "all horizons" in missed.html
