"""`chronops deploy` against a real git workspace (bare origin + clone, LocalForge) and real HTTP
health endpoints on 127.0.0.1: the real `chronops serve` for the success path, and a stub that keeps
reporting a stale hash (a forecaster that fails to load the new config) for the failure path.

The model is a random-weight tiny Chronos-Bolt built offline: its forecasts are noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.forges.base import Proposal
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.adapters.history import read_history
from bot.adapters.store import write_table
from bot.commands.demo import synthetic_series
from bot.commands.deploy import deploy_command
from bot.core.allowlist import allowlist_problem, normalize_model_ref
from bot.core.config import HorizonConfig, Provenance, config_hash, parse_config, render_config
from bot.core.series import validate_series
from bot.flow.deploy import health_problems, install_files, revision_mismatches
from tests.conftest import assert_one_line_error, git, run_cli, stop_process
from tests.test_forecaster import free_port, get_json, wait_for

OLD = {
    "horizon": "7d",
    "prediction_length": 5,
    "model_id": "models/bolt",
    "model_family": "bolt",
    "context_length": 64,
}


def settings_toml(url: str, timeout: float = 20.0) -> str:
    return (
        f'[deploy]\nhealth_urls = ["{url}"]\nhealth_timeout_seconds = {timeout}\nhealth_poll_seconds = 0.2\n'
        'model_allowlist = ["amazon/chronos-bolt-*", "models/*"]\n'
    )


@dataclass
class Workspace:
    bare: Path
    root: Path
    forge: LocalForge

    @property
    def live(self) -> Path:
        return self.root / "live" / "configs"

    def live_snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.live.iterdir())} if self.live.exists() else {}


@pytest.fixture
def ws(git_remote: tuple[Path, Path], tiny_bolt: Path) -> Workspace:
    """A clone whose main has configs/7d.json (v1), deployed to live/configs, plus a local model dir."""
    bare, clone = git_remote
    (clone / "configs").mkdir()
    (clone / "configs" / "7d.json").write_text(render_config(parse_config(OLD)))
    (clone / ".gitignore").write_text("live/\ndata/\nmodels/\nchronops.toml\n*.lock\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-m", "add 7d config")
    git(clone, "push", "origin", "main")
    (clone / "models").mkdir()
    (clone / "models" / "bolt").symlink_to(tiny_bolt)
    (clone / "chronops.toml").write_text(settings_toml("http://127.0.0.1:9/healthz"))
    assert deploy_command(clone, auto_revert=False, forge_kind="local", health_check=False, say=print) == 0
    forge = LocalForge(GitRepo.open(clone), clone / "data" / "forge" / "pulls.json")
    return Workspace(bare, clone, forge)


def merge_bot_pr(ws: Workspace, **changes: Any) -> HorizonConfig:
    """Propose and merge a config change as the bot would (LocalForge: real branch + merge commit)."""
    cfg = parse_config({**OLD, **changes, "version": 2})
    cfg = HorizonConfig(**{**vars(cfg), "provenance": Provenance(source="chronops", pull_request="1")})
    proposal = Proposal(
        horizon="7d", title="chronops: tune 7d", body="report", labels=("chronops",),
        files={"configs/7d.json": render_config(cfg)}, commit_message="chronops: tune 7d", approved=True,
    )  # fmt: skip
    pr = ws.forge.propose(proposal).pull
    ws.forge.merge(pr.number)
    assert (ws.root / "configs" / "7d.json").read_text() == render_config(cfg), "clone fast-forwarded"
    return cfg


def served_hash(url: str) -> str | None:
    doc = get_json(url, 1)[1]
    hash_: str | None = doc.get("horizons", {}).get("7d", {}).get("config_hash")
    return hash_


class StaleHandler(BaseHTTPRequestHandler):
    """A forecaster that never loads the new config: it keeps reporting the old hash."""

    stale_hash = ""

    def do_GET(self) -> None:
        body = json.dumps(
            {"status": "ok", "horizons": {"7d": {"config_hash": self.stale_hash}}, "errors": {}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stale_server() -> Iterator[str]:
    StaleHandler.stale_hash = config_hash(parse_config(OLD))
    server = ThreadingHTTPServer(("127.0.0.1", 0), StaleHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/healthz"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_success_path_with_the_real_forecaster(ws: Workspace, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    (ws.root / "chronops.toml").write_text(settings_toml(url))
    # A series to forecast from: a config that loads but cannot forecast is unhealthy.
    frame, _ = validate_series(synthetic_series(end="2025-12-31"), source="synthetic", max_gap_days=7)
    write_table(ws.root / "data" / "series.parquet", frame)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--horizon", "7d", "--port", str(port), "-w", str(ws.root)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "CHRONOPS_TORCH_THREADS": "1"},
        )  # fmt: skip
    try:
        old_hash = config_hash(parse_config(OLD))
        wait_for(lambda: served_hash(url) == old_hash, 45, "the forecaster")
        new = merge_bot_pr(ws, context_length=96)

        result = run_cli("deploy", "--auto-revert", "--forge", "local", "-w", str(ws.root), timeout=120)
        assert result.code == 0, (result, log.read_text())
        assert f"7d: {old_hash} → {config_hash(new)} (v2)" in result.stdout
        assert "deployed: 1 forecaster(s) report 7d=" + config_hash(new) in result.stdout
        assert (ws.live / "7d.json").read_bytes() == (ws.root / "configs" / "7d.json").read_bytes()
        assert (ws.live / "7d.json").stat().st_mode & 0o777 == 0o644, "readable by the forecaster's user"
        assert (ws.root / "live" / "configs.previous" / "7d.json").read_text() == render_config(
            parse_config(OLD)
        )
        assert served_hash(url) == config_hash(new)
        hist = read_history(ws.root / "data" / "optimization_history.parquet")
        row = hist.iloc[-1]
        assert (row["triggered_by"], row["status"], row["new_config_hash"], row["old_config_hash"]) == (
            "deploy", "deployed", config_hash(new), old_hash,
        )  # fmt: skip
        assert row["pull_request"] == "1"

        again = run_cli("deploy", "-w", str(ws.root), timeout=60)
        assert again.code == 0 and "nothing to deploy" in again.stdout, again
    finally:
        stop_process(proc)


def test_failed_health_check_restores_and_reverts(ws: Workspace, stale_server: str) -> None:
    (ws.root / "chronops.toml").write_text(settings_toml(stale_server, timeout=2))
    before = ws.live_snapshot()
    merge_bot_pr(ws, context_length=96)

    result = run_cli("deploy", "--auto-revert", "--forge", "local", "-w", str(ws.root), timeout=120)
    assert result.code == 5, result
    assert_one_line_error(
        result, "deploy failed", "previous configs restored", "7d serves", "revert #2 merged"
    )
    assert ws.live_snapshot() == before, "previous live configs back, byte-identical"

    # the revert landed on origin's main: the config is back to v1 in git too
    log = git(ws.bare, "log", "--format=%s", "main")
    assert log.splitlines()[0].startswith("Merge pull request #2 from chronops/revert-7d-1")
    assert "Revert chronops 7d (#1" in log
    assert git(ws.bare, "show", "main:configs/7d.json") + "\n" == render_config(parse_config(OLD))
    revert = next(p for p in ws.forge.pulls() if p.kind == "revert")
    assert revert.state == "merged" and revert.reason and revert.reason.startswith("deploy failed: ")

    hist = read_history(ws.root / "data" / "optimization_history.parquet")
    assert hist.iloc[-1]["status"] == "deploy_failed" and "revert #2 merged" in hist.iloc[-1]["notes"]
    from bot.flow.records import read_metrics

    metrics = read_metrics(ws.root / "data" / "metrics.parquet")
    deploys = metrics[metrics["event"] == "deploy"]
    assert deploys.iloc[-1]["status"] == "rolled_back" and not deploys.iloc[-1]["downtime"]

    # the workspace now matches the live dir again: nothing to deploy
    assert run_cli("deploy", "-w", str(ws.root), timeout=60).stdout.startswith("nothing to deploy")


def test_deploy_killed_after_install_is_checked_again(ws: Workspace, stale_server: str) -> None:
    """A deploy killed between install and health check (runner lost, OOM) must not leave an
    unverified config live: the next deploy sees its journal, checks again, and restores."""
    (ws.root / "chronops.toml").write_text(settings_toml(stale_server, timeout=1))
    before = ws.live_snapshot()
    merge_bot_pr(ws, context_length=96)
    killed = run_cli("deploy", "-w", str(ws.root), env={"CHRONOPS_CRASH_AT": "deploy:installed"}, timeout=60)
    assert killed.code == -9, killed
    assert ws.live_snapshot() != before, "the new config was installed before the kill"

    again = run_cli("deploy", "-w", str(ws.root), timeout=60)
    assert again.code == 5, again
    assert "a previous deploy was interrupted" in again.stdout
    assert ws.live_snapshot() == before, "restored to the set from before the interrupted deploy"
    assert (ws.root / "live" / "configs.previous" / "7d.json").read_bytes() == before["7d.json"]
    assert not (ws.root / "live" / "configs.pending.json").exists()


def test_unreachable_forecaster_without_auto_revert(ws: Workspace) -> None:
    (ws.root / "chronops.toml").write_text(
        settings_toml(f"http://127.0.0.1:{free_port()}/healthz", timeout=1)
    )
    before = ws.live_snapshot()
    merge_bot_pr(ws, context_length=96)
    result = run_cli("deploy", "-w", str(ws.root), timeout=60)
    assert result.code == 5, result
    assert_one_line_error(result, "unreachable", "chronops rollback")
    assert ws.live_snapshot() == before
    assert [p.kind for p in ws.forge.pulls()] == ["tune"], "nothing proposed without --auto-revert"


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (
            {"model_id": "evil/chronos-backdoor"},
            ("configs/7d.json", "key 'model_id'", "not in deploy.model_allowlist"),
        ),
        ({"model_id": "models/../../etc"}, ("key 'model_id'", "outside the workspace")),
        ({"temperature": 0.7}, ("configs/7d.json", "key 'temperature'", "bolt models output quantiles")),
        ({"context_length": "long"}, ("key 'context_length'", "expected an integer")),
    ],
)
def test_refused_config_installs_nothing(
    ws: Workspace, change: dict[str, Any], needles: tuple[str, ...]
) -> None:
    (ws.root / "configs" / "7d.json").write_text(json.dumps({**OLD, **change}, indent=2) + "\n")
    git(ws.root, "commit", "-am", "hand-edited config")
    git(ws.root, "push", "origin", "main")
    before, heads = ws.live_snapshot(), git(ws.bare, "rev-parse", "main")

    result = run_cli("deploy", "--auto-revert", "-w", str(ws.root), timeout=60)
    assert result.code == 1, result
    assert_one_line_error(result, "deploy refused, nothing installed", *needles)
    assert ws.live_snapshot() == before
    assert ws.forge.pulls() == [] and git(ws.bare, "rev-parse", "main") == heads, "nothing proposed"
    hist = read_history(ws.root / "data" / "optimization_history.parquet")
    assert hist.iloc[-1]["status"] == "deploy_refused"


def test_allowlist_rules() -> None:
    patterns = ["amazon/chronos-t5-*", "amazon/chronos-2", "models/*"]
    assert allowlist_problem("amazon/chronos-t5-small", patterns) is None
    assert allowlist_problem("amazon/chronos-2", patterns) is None
    assert allowlist_problem("./models/t5", patterns) is None
    assert allowlist_problem("/srv/stack/models/t5", patterns, workspace="/srv/stack") is None
    assert "not in deploy.model_allowlist" in (allowlist_problem("amazon/chronos-2-large", patterns) or "")
    assert "not in" in (allowlist_problem("Amazon/chronos-t5-small", patterns) or ""), "case-sensitive"
    assert "outside the workspace" in (
        allowlist_problem("/opt/models/t5", patterns, workspace="/srv/stack") or ""
    )
    assert "outside the workspace" in (allowlist_problem("models/../../x", patterns) or "")
    assert normalize_model_ref("models/a/../b") == "models/b"


def test_health_problems_and_atomic_install(tmp_path: Path) -> None:
    expected = {"7d": "new", "30d": "n30"}
    ok = {"u": {"horizons": {"7d": {"config_hash": "new"}, "30d": {"config_hash": "n30"}}, "errors": {}}}
    assert health_problems(ok, expected) == []
    stale = {"u": {"horizons": {"7d": {"config_hash": "old"}}, "errors": {"7d": "model not found"}}}
    assert health_problems(stale, expected) == [
        "u: 7d serves old, expected new: model not found",
        "30d: no forecaster reports this horizon (u)",
    ]
    assert health_problems({"u": "unreachable (refused)"}, expected) == ["u: unreachable (refused)"]

    install_files(tmp_path, {"7d.json": "a", "30d.json": "b"})
    install_files(tmp_path, {"7d.json": "c", "30d.json": None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7d.json"], "no temp files left"
    assert (tmp_path / "7d.json").read_text() == "c"


def test_deploy_help_documents_exit_codes() -> None:
    result = run_cli("deploy", "--help", timeout=60)
    assert result.code == 0
    text = " ".join(result.stdout.split())
    for needle in (
        "Exit codes: 0 deployed",
        "1 refused",
        "5 deploy failed",
        "--auto-revert",
        "--no-health-check",
    ):
        assert needle in text, needle


def test_a_horizon_whose_forecast_failed_is_not_healthy() -> None:
    url = "http://127.0.0.1:8080/healthz"
    entry = {"config_hash": "new", "healthy": False, "last_forecast_error": "no series yet"}
    assert health_problems({url: {"horizons": {"7d": entry}}}, {"7d": "new"}) == [
        f"{url}: 7d serves new but is unhealthy: no series yet"
    ]
    entry.update(healthy=True, last_forecast_error=None)
    assert health_problems({url: {"horizons": {"7d": entry}}}, {"7d": "new"}) == []


def test_revision_mismatches_compare_revisions_when_both_know_them() -> None:
    url = "http://127.0.0.1:8080/healthz"
    mine = {"version": "0.1.0", "revision": "abc"}
    doc = {"chronops": {"version": "0.1.0", "revision": "def"}}
    assert revision_mismatches({url: doc}, mine) == [f"{url} runs chronops revision def, this deploy is abc"]
    assert revision_mismatches({url: {"chronops": {"version": "0.1.0", "revision": "abc"}}}, mine) == []
    # A side that does not know its revision: the package versions are compared.
    assert revision_mismatches({url: {"chronops": {"version": "0.1.0", "revision": "unknown"}}}, mine) == []
    older = {"chronops": {"version": "0.0.9", "revision": "unknown"}}
    assert revision_mismatches({url: older}, mine) == [f"{url} runs chronops version 0.0.9, this deploy is 0.1.0"]
    assert revision_mismatches({url: "unreachable (refused)", "x": {"status": "ok"}}, mine) == []
