"""A dry run is a preview: recorded for the audit trail, never counted as an optimization."""

from __future__ import annotations

import json
from pathlib import Path

from bot.adapters.history import get_last_optimization_date, read_history
from tests.conftest import run_cli, tiny_workspace


def test_a_dry_run_does_not_reset_the_time_trigger(tmp_path: Path, tiny_t5: Path) -> None:
    ws = tiny_workspace(tmp_path / "ws", tiny_t5)

    plan = run_cli("run", "--horizon", "7d", "--dry-run", "plan", "-w", str(ws), timeout=300)
    assert plan.code == 0, plan.stderr
    assert "dry run (plan): nothing written to git" in plan.stdout

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
