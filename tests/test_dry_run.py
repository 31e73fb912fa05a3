"""A dry run is a preview: recorded for the audit trail, never counted as an optimization."""

from __future__ import annotations

import json
from pathlib import Path

from bot.demo import synthetic_series
from bot.history import get_last_optimization_date, read_history
from bot.scaffold import scaffold
from tests.conftest import run_cli

SETTINGS = """\
[search]
num_samples = [10]
temperature = [1.0]
tuning_origins = 2
validation_origins = 2
sample_chunk = 10

[search.context_length]
"7d" = [90]
"""


def test_a_dry_run_does_not_reset_the_time_trigger(tmp_path: Path, tiny_t5: Path) -> None:
    ws = tmp_path / "ws"
    scaffold(ws, model_id=str(tiny_t5))
    (ws / "chronops.toml").write_text(SETTINGS)
    csv = tmp_path / "series.csv"
    synthetic_series(end="2025-12-31").to_csv(csv, index=False)
    assert run_cli("ingest", "--source", "csv", str(csv), "-w", str(ws)).code == 0

    plan = run_cli("run", "--horizon", "7d", "--dry-run", "plan", "-w", str(ws), timeout=300)
    assert plan.code == 0, plan.stderr
    assert "dry run (plan)" in plan.stdout

    history = read_history(ws / "data" / "optimization_history.parquet")
    row = history.iloc[-1]
    assert row["status"] == "dry_run" and not bool(row["success"]) and row["pull_request"] is None
    assert row["verdict"]  # the gate's verdict is kept for the record
    assert get_last_optimization_date(ws / "data" / "optimization_history.parquet", "7d") is None

    check = run_cli("check", "--horizon", "7d", "--as-of", "2025-12-31", "--json", "-w", str(ws))
    assert check.code == 0, check.stderr
    (decision,) = json.loads(check.stdout)["decisions"]
    assert decision["time"]["fired"], "a preview must not count as the last optimization"
    assert decision["time"]["days_since_last"] is None
