"""`chronops validate --run RUN_ID`: re-run the gate from stored per-origin results.

Not a single forecast is recomputed: the scores and per-origin losses come from
data/runs/<run_id>/<horizon>/results.parquet, so operators can tune thresholds and see the verdict
each setting would have given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.adapters.store import read_table
from bot.core.gate import Verdict, evaluate_gate
from bot.core.loss import MSE, noise_test_losses
from bot.core.metrics import pooled_scores
from bot.core.params import ApprovalSettings
from bot.errors import DataError
from bot.workspace import Workspace, check_horizon

RESULT_COLUMNS = [
    "config_key",
    "set",
    "origin",
    "step",
    "actual",
    "point",
    "lo95",
    "hi95",
    "crps",
    "naive",
    "seconds",
]


def run_dirs(ws: Workspace, run_id: str) -> list[Path]:
    base = ws.runs_dir / run_id
    if not base.is_dir():
        known = sorted(p.name for p in ws.runs_dir.iterdir()) if ws.runs_dir.is_dir() else []
        hint = f" (known runs: {', '.join(known[-5:])})" if known else " (no runs stored yet)"
        raise DataError(f"run '{run_id}' not found under {ws.runs_dir}{hint}")
    dirs = sorted(p for p in base.iterdir() if (p / "results.parquet").exists())
    if not dirs:
        raise DataError(f"{base}: no stored per-origin results")
    return dirs


def revalidate(run_dir: Path, approval: ApprovalSettings) -> tuple[Verdict, Verdict | None]:
    """(re-evaluated verdict, verdict stored by the original run)."""
    meta = _read_json(
        run_dir / "results_meta.json",
        ("winner_key", "current_key", "initial", "prediction_length", "origin_step"),
    )
    # runs stored before the vol_mse loss have no scale column and were judged on raw squared error
    loss = str(meta.get("noise_loss", MSE))
    columns = RESULT_COLUMNS if loss == MSE else [*RESULT_COLUMNS, "scale"]
    results = read_table(run_dir / "results.parquet", columns=columns)
    val = results[results["set"] == "validation"]

    def scores_of(key: str) -> tuple[Any, pd.Series]:
        rows = val[val["config_key"] == key]
        if rows.empty:
            raise DataError(f"{run_dir}: no validation rows for config {key}")
        secs = rows.groupby("origin")["seconds"].first().dropna()  # timed alone at some origins only
        scale = rows.groupby("origin")["scale"].first() if loss != MSE else None
        seconds = float(np.median(secs)) if len(secs) else 0.0
        return pooled_scores(rows, seconds), noise_test_losses(rows, loss, scale)

    cand, cand_losses = scores_of(meta["winner_key"])
    current = current_losses = None
    if not meta["initial"]:
        current, current_losses = scores_of(meta["current_key"])
    stored = None
    report = run_dir / "report.json"
    override = None
    if report.exists():
        stored = Verdict.from_dict(_read_json(report, ("verdict",))["verdict"])
        override = stored.override_reason
    verdict = evaluate_gate(
        current=current,
        candidate=cand,
        naive_rmse=cand.naive_rmse,
        current_losses=current_losses,
        candidate_losses=cand_losses,
        prediction_length=int(meta["prediction_length"]),
        settings=approval,
        force_reason=override,
        origin_step=int(meta["origin_step"]),
        noise_loss=loss,
    )
    return verdict, stored


def _read_json(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A stored run's JSON file with these keys, or a DataError naming it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({' '.join(str(exc).split())[:200]})") from None
    missing = [k for k in keys if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)} (not written by this chronops?)")
    return dict(doc)


def with_overrides(approval: ApprovalSettings, overrides: dict[str, float | None]) -> ApprovalSettings:
    changes: dict[str, Any] = {k: float(v) for k, v in overrides.items() if v is not None}
    return replace(approval, **changes)


def validate_command(
    root: Path,
    run_id: str,
    *,
    horizon: str | None,
    overrides: dict[str, float | None],
    as_json: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Re-judge every horizon of RUN_ID (or one) with the settings' thresholds and `overrides`."""
    ws = Workspace.open(root, require=True)
    if horizon is not None:
        check_horizon(horizon)  # exit 2 on a horizon that does not exist
    approval = with_overrides(ws.settings.approval, overrides)
    docs = []
    dirs = run_dirs(ws, run_id)
    if horizon is not None and horizon not in {d.name for d in dirs}:
        have = ", ".join(d.name for d in dirs)
        raise DataError(f"run '{run_id}' has no results for {horizon} (it has: {have})")
    for run_dir in dirs:
        if horizon and run_dir.name != horizon:
            continue
        verdict, stored = revalidate(run_dir, approval)
        same = stored is not None and stored.to_dict() == verdict.to_dict()
        docs.append({"horizon": run_dir.name, "verdict": verdict.to_dict(), "same_as_stored": same})
        if not as_json:
            say(
                f"{run_dir.name}: {verdict.headline}"
                + ("" if same else "  (differs from the stored verdict)")
            )
            for c in verdict.criteria:
                mark = "n/a " if c.value is None and c.passed else ("pass" if c.passed else "FAIL")
                value = "n/a" if c.value is None else f"{c.value:.4g}"
                say(f"  {mark}  {c.label}: {value} {c.comparator} {c.threshold:g}")
    doc = {"run_id": run_id, "horizons": docs}
    if as_json:
        from bot.commands.output import emit

        emit("validate", doc)
    return doc
