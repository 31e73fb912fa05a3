"""Reports rendered with jinja2 from templates/ (StrictUndefined; values escaped for their format).

The PR body is Markdown and must stay under GitHub's 65,536-character limit: long sections are
truncated with a note, and the whole body is checked before it is returned.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
PR_BODY_LIMIT = 65_000
REPORT_SCHEMA_VERSION = 1


def _md_escape(value: object) -> str:
    """Escape text for a Markdown table cell / inline text: no HTML, no markup, no table breaks."""
    text = str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", text)
    return text.replace("\n", " ")


def _code(value: object) -> str:
    """A Markdown code span: its content is shown literally, so only backticks need neutralising."""
    text = str(value).replace("`", "'").replace("\n", " ")
    return f"`{text}`"


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _pct(value: object) -> str:
    if value is None:
        return "n/a"
    assert isinstance(value, int | float)
    return f"{value:+.1f}%"


def environment(templates: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_escape
    env.filters["code"] = _code
    env.filters["num"] = _fmt
    env.filters["pct"] = _pct
    env.filters["tojson_compact"] = lambda v: json.dumps(
        v, sort_keys=True, separators=(",", ":"), default=str
    )
    return env


@dataclass(frozen=True)
class RenderedReports:
    pr_body: str
    report_json: str


def render_pr_body(context: dict[str, Any], *, templates: Path = TEMPLATES_DIR) -> str:
    env = environment(templates)
    body = env.get_template("pr_body.md.j2").render(**context)
    if len(body) > PR_BODY_LIMIT:
        # Drop the long tables first, then hard-truncate with a note as a last resort.
        slim = dict(context, top_candidates=context["top_candidates"][:5], truncated_note=True)
        body = env.get_template("pr_body.md.j2").render(**slim)
    if len(body) > PR_BODY_LIMIT:
        note = "\n\n_(report truncated to fit GitHub's PR body limit; see the JSON report)_\n"
        body = body[: PR_BODY_LIMIT - len(note)] + note
    return body


def render_json(context: dict[str, Any]) -> str:
    doc = {"schema_version": REPORT_SCHEMA_VERSION, **context}
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
