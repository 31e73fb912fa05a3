"""What a reviewer reads first: the PR title, a three-line summary, links to the full report, and the
data behind the charts (a Mermaid chart GitHub draws in the PR body, the search-space grid).

Pure functions of the run context (`bot.pipeline.report_context`) and of the environment mapping
they are given: nothing here reads files, the clock or `os.environ` itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# config keys a reviewer cares about, by the short name the PR title uses
SHORT_NAMES = {
    "model_id": "model",
    "context_length": "context",
    "num_samples": "samples",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
}
TITLE_LIMIT = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9=.,:/ _-]")
_LABEL = re.compile(r"ctx=(\d+)(?: ns=(\d+))?(?: T=([\d.]+))?")


def _show(raw: object) -> str:
    try:
        value = json.loads(str(raw))
    except ValueError:
        return str(raw)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value.rsplit("/", 1)[-1] or value  # a model path by its last part
    return str(value)


def changed_keys(config_diff: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [row for row in config_diff if row["old"] != row["new"] and row["key"] in SHORT_NAMES]


def pr_title(horizon: str, config_diff: Sequence[Mapping[str, Any]]) -> str:
    """'chronops 7d: context 180→90, samples 100→10': the change itself, not a verdict."""
    parts = [
        f"{SHORT_NAMES[r['key']]} {_show(r['old'])}→{_show(r['new'])}" for r in changed_keys(config_diff)
    ]
    title = f"chronops {horizon}: " + (
        ", ".join(parts) if parts else "re-validated config, no parameter change"
    )
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def report_links(env: Mapping[str, str], run_id: str, horizon: str) -> dict[str, str | None]:
    """Where the run's full report can be read.

    - `actions`: the GitHub Actions run page (its artifacts hold the run folder), from
      GITHUB_SERVER_URL / GITHUB_REPOSITORY / GITHUB_RUN_ID when the run happens in Actions;
    - `report`: the HTML report on a static site (e.g. GitHub Pages) when CHRONOPS_REPORTS_URL is
      set: `<CHRONOPS_REPORTS_URL>/<run_id>/<horizon>/report.html`;
    - `local`: the report's path inside the workspace (always).
    """
    server = env.get("GITHUB_SERVER_URL", "").rstrip("/")
    repo, run = env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_RUN_ID", "")
    actions = f"{server}/{repo}/actions/runs/{run}" if server.startswith("http") and repo and run else None
    base = env.get("CHRONOPS_REPORTS_URL", "").rstrip("/")
    report = f"{base}/{run_id}/{horizon}/report.html" if base.startswith("http") else None
    return {"actions": actions, "report": report, "local": f"data/runs/{run_id}/{horizon}/report.html"}


def _labels(criteria: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(str(c["label"]).lower() for c in criteria)


def verdict_words(run: Mapping[str, Any]) -> str:
    """Line one: the decision in plain words."""
    v = run["verdict"]
    failed = [c for c in v["criteria"] if not c["passed"]]
    n, k = len(v["criteria"]), run["n_validation"]
    return {
        "approved": f"The gate approves: the candidate passed all {n} criteria on {k} unseen origins.",
        "rejected": f"The gate rejects this candidate: {_labels(failed)} failed on {k} unseen origins.",
        "initial_approved": "First validated config for this horizon: it beats the naive random walk "
        "and passes coverage and bias.",
        "initial_rejected": f"First validation of this horizon failed: {_labels(failed)}.",
        "approved_override": (
            f"Approved by manual override: the gate failed ({_labels(failed)})."
            if failed
            else "Approved by manual override (the gate passed as well)."
        ),
    }.get(str(v["decision"]), str(v["headline"]))


def _metric(run: Mapping[str, Any], prefix: str) -> Mapping[str, Any] | None:
    return next((r for r in run["metrics_table"] if str(r["name"]).startswith(prefix)), None)


def _clp(value: object) -> str:
    return f"{value:,.2f} CLP" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def gain_words(run: Mapping[str, Any]) -> str:
    """Line two: the gain and how sure we are of it."""
    v = run["verdict"]
    rmse = _metric(run, "RMSE")
    if v["initial_deployment"]:
        cand = rmse["candidate"] if rmse else None
        naive = rmse["naive"] if rmse else None
        if isinstance(cand, int | float) and isinstance(naive, int | float) and naive > 0:
            ratio = (naive - cand) * 100.0 / naive
            side = f"{abs(ratio):.1f}% {'below' if ratio > 0 else 'above'}"
            if ratio < -100:
                side = f"{cand / naive:,.1f}× the error of"
            return f"RMSE {_clp(cand)}: {side} the naive random walk ({_clp(naive)}) on {run['n_validation']} origins."
        return "No RMSE could be computed against the naive random walk."
    pct = v["rmse_improvement_pct"]
    if not isinstance(pct, int | float):
        return "The RMSE change could not be computed."
    direction = "lower" if pct > 0 else "higher"
    before_after = f" ({_clp(rmse['current'])} → {_clp(rmse['candidate'])})" if rmse else ""
    parts = [f"RMSE {abs(pct):.1f}% {direction} than the live config{before_after}"]
    noise = v.get("noise_probability")
    if isinstance(noise, int | float):
        parts.append(
            "chance this is noise <0.1%" if 0 < noise < 0.001 else f"chance this is noise {noise * 100:.1f}%"
        )
    detectable = v.get("detectable_rmse_gain_pct")
    if isinstance(detectable, int | float):
        parts.append(f"the data resolves gains of about ±{detectable:.1f}% or more")
    return "; ".join(parts) + "."


def merge_words(run: Mapping[str, Any], snooze_weeks: int) -> str:
    """Line three: what merging and closing do."""
    h = run["horizon"]
    return (
        f"Merging deploys configs/{h}.json to production (revert the merge to roll back); closing keeps "
        f"the live config and snoozes {h} for {snooze_weeks} weeks unless drift or degradation fire."
    )


def summary(run: Mapping[str, Any], *, snooze_weeks: int, env: Mapping[str, str]) -> dict[str, Any]:
    """Everything the top of the PR body, the HTML report and the emails say before the details."""
    return {
        "title": pr_title(run["horizon"], run["config_diff"]),
        "verdict": verdict_words(run),
        "gain": gain_words(run),
        "merge": merge_words(run, snooze_weeks),
        "links": report_links(env, run["run_id"], run["horizon"]),
        "changed": [dict(r) for r in changed_keys(run["config_diff"])],
        "unchanged": [dict(r) for r in run["config_diff"] if r["old"] == r["new"]],
        "other_changes": [
            dict(r) for r in run["config_diff"] if r["old"] != r["new"] and r["key"] not in SHORT_NAMES
        ],
        "mermaid": mermaid_ranking(
            run["all_candidates"] or run["top_candidates"], run["metadata"].get("previous_hash")
        ),
    }


# --- chart data --------------------------------------------------------------------------------


def parse_label(label: str) -> tuple[int, int | None, float | None] | None:
    """(context, samples, temperature) from a candidate label such as 'ctx=90 ns=10 T=1.0'."""
    m = _LABEL.search(label)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None, float(m.group(3)) if m.group(3) else None


def mermaid_ranking(candidates: Sequence[Mapping[str, Any]], current_key: object, limit: int = 10) -> str:
    """A Mermaid `xychart-beta` bar chart of the best candidates' tuning RMSE: GitHub draws it in the
    PR body. Labels are ours (ctx=… ns=… T=…); anything but plain characters is dropped anyway."""
    rows = [c for c in candidates if isinstance(c.get("rmse"), int | float) and math.isfinite(c["rmse"])][
        :limit
    ]
    if not rows:
        return ""

    def label(c: Mapping[str, Any]) -> str:
        text = _UNSAFE.sub("", str(c["label"]))[:40]  # a code block, but GitHub's Mermaid parses it
        return f"#{c['rank']} {text}" + (" (live)" if c.get("key") == current_key else "")

    top = max(c["rmse"] for c in rows)
    return "\n".join(
        [
            "xychart-beta",
            '    title "Tuning RMSE of the best candidates (CLP, lower is better)"',
            "    x-axis [" + ", ".join(f'"{label(c)}"' for c in rows) + "]",
            f'    y-axis "RMSE (CLP)" 0 --> {top * 1.1:.4g}',
            "    bar [" + ", ".join(f"{c['rmse']:.4g}" for c in rows) + "]",
        ]
    )


def search_grid(candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The search space as a grid: best tuning RMSE per (context, samples) over the other knobs."""
    best: dict[tuple[int, int], float] = {}
    for c in candidates:
        parsed = parse_label(str(c.get("label", "")))
        rmse = c.get("rmse")
        if parsed is None or not isinstance(rmse, int | float) or not math.isfinite(rmse):
            continue
        key = (parsed[0], parsed[1] or 0)
        best[key] = min(best.get(key, math.inf), float(rmse))
    contexts = sorted({k[0] for k in best})
    samples = sorted({k[1] for k in best})
    return {"contexts": contexts, "samples": samples, "rmse": {f"{c}x{s}": v for (c, s), v in best.items()}}
