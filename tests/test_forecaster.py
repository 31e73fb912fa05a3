"""`chronops serve`: reloads a changed live config without restarting or failing a request, keeps the
old config serving when the new one is broken, forecasts into the log, stops cleanly on SIGTERM.

The model is a random-weight tiny Chronos-Bolt built offline: its forecasts are noise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot.adapters.forecast_log import read_forecast_log
from bot.adapters.store import atomic_write_text, write_table
from bot.core.config import config_hash, parse_config
from bot.serve.service import ForecasterService
from bot.workspace import Workspace
from tests.conftest import run_cli, stop_process

NOW = datetime(2024, 12, 30, 15, 0, tzinfo=UTC)


def config(model: Path, context: int = 64) -> dict[str, Any]:
    return {
        "horizon": "7d", "prediction_length": 5, "model_id": str(model), "model_family": "bolt",
        "context_length": context,
    }  # fmt: skip


def hash_of(doc: dict[str, Any]) -> str:
    return config_hash(parse_config(doc))


@pytest.fixture
def ws(tmp_path: Path, tiny_bolt: Path) -> Path:
    root = tmp_path / "ws"
    days = pd.bdate_range("2024-01-01", periods=200)
    values = 900.0 + np.cumsum(np.random.default_rng(3).normal(0.0, 3.0, len(days)))
    write_table(root / "data" / "series.parquet", pd.DataFrame({"date": days, "value": values}))
    atomic_write_text(root / "live" / "configs" / "7d.json", json.dumps(config(tiny_bolt)))
    return root


def get_json(url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(ws: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "CHRONOPS_TORCH_THREADS": "1", "COLUMNS": "200"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--horizon", "7d", "--port", str(port), "-w", str(ws)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(base + "/healthz", 1)[0] == 200 or proc.poll() is not None, 45, "/healthz")
        assert proc.poll() is None, log.read_text()
        yield base, proc, log
    finally:
        stop_process(proc)


def test_serve_reloads_without_failing_requests(
    server: tuple[str, subprocess.Popen[bytes], Path], ws: Path, tiny_bolt: Path
) -> None:
    base, proc, log = server
    old, new = config(tiny_bolt), config(tiny_bolt, context=96)
    code, doc = get_json(base + "/healthz")
    assert code == 200 and doc["horizons"]["7d"]["config_hash"] == hash_of(old)
    assert doc["horizons"]["7d"]["random_weights"] is True
    # the startup forecast cycle issues the old config's forecast
    wait_for(lambda: get_json(base + "/forecast/7d")[1].get("config_hash") == hash_of(old), 15, "a forecast")

    results: list[tuple[int, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, body = get_json(base + "/healthz", 5)
                results.append((status, body["horizons"]["7d"]["config_hash"]))
                if status != 200:
                    failures.append(f"HTTP {status}")
            except Exception as exc:  # any failed request fails the test
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        atomic_write_text(ws / "live" / "configs" / "7d.json", json.dumps(new))
        started = time.monotonic()
        wait_for(lambda: bool(results) and results[-1][1] == hash_of(new), 10, "the new hash")
        reload_seconds = time.monotonic() - started
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert failures == [], failures[:5]
    hashes = [h for _, h in results]
    assert len(results) > 20 and hashes[0] == hash_of(old) and hashes[-1] == hash_of(new)
    assert reload_seconds < 5

    # the reloaded config forecasts into the log; /forecast/7d serves it
    wait_for(lambda: get_json(base + "/forecast/7d")[1].get("config_hash") == hash_of(new), 15, "a forecast")
    code, fc = get_json(base + "/forecast/7d")
    assert code == 200 and len(fc["steps"]) == 5 and fc["random_weights"] is True
    logged = read_forecast_log(ws / "data" / "forecasts.parquet")
    assert set(logged["config_hash"]) == {hash_of(old), hash_of(new)}

    # a broken config: the old one keeps serving and the error is reported
    atomic_write_text(ws / "live" / "configs" / "7d.json", '{"horizon": "7d", "context_length": "long"}')
    wait_for(lambda: "7d" in get_json(base + "/healthz")[1]["errors"], 10, "the error report")
    code, doc = get_json(base + "/healthz")
    assert code == 200 and doc["status"] == "degraded"
    assert doc["horizons"]["7d"]["config_hash"] == hash_of(new)
    assert "context_length" in doc["errors"]["7d"] and "model_id" in doc["errors"]["7d"]
    assert get_json(base + "/forecast/7d")[0] == 200
    assert get_json(base + "/forecast/30d")[0] == 404

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()
    text = log.read_text()
    assert "stopped" in text and "Traceback" not in text, text


def test_service_keeps_old_slot_and_recovers(ws: Path, tiny_bolt: Path) -> None:
    """The same behaviour in-process, step by step (no threads, no HTTP)."""
    said: list[str] = []
    service = ForecasterService(
        Workspace.open(ws), ["7d", "30d"], ws / "live" / "configs", say=said.append, clock=lambda: NOW
    )
    assert service.health()[0] == 503 and service.health()[1]["status"] == "starting"
    assert service.poll() == ["7d"]
    code, doc = service.health()
    assert code == 200 and doc["status"] == "degraded" and "not found" in doc["errors"]["30d"]
    assert service.poll() == [], "unchanged bytes are not reloaded"

    live = ws / "live" / "configs" / "7d.json"
    live.write_text('{"horizon": "7d"')  # a torn write, as a hand edit might leave
    assert service.poll() == []
    assert "invalid JSON" in service.health()[1]["errors"]["7d"]
    assert service.health()[1]["horizons"]["7d"]["config_hash"] == hash_of(config(tiny_bolt))
    atomic_write_text(live, json.dumps(config(tiny_bolt)))  # back to the serving bytes: error cleared
    assert service.poll() == [] and "7d" not in service.health()[1]["errors"]
    # a model that cannot be loaded (say the hub was down) is retried when the same file is deployed again
    missing = config(ws / "models" / "not-yet-there", context=96)
    atomic_write_text(live, json.dumps(missing))
    assert service.poll() == [] and "not found" in service.health()[1]["errors"]["7d"]
    assert service.poll() == [], "the same broken bytes are not reloaded every poll"
    atomic_write_text(live, json.dumps(config(tiny_bolt)))  # deploy restores the previous file
    assert service.poll() == []
    (ws / "models").mkdir()
    (ws / "models" / "not-yet-there").symlink_to(tiny_bolt)
    atomic_write_text(live, json.dumps(missing))  # redeployed, and now it loads
    assert service.poll() == ["7d"] and service.health()[1]["horizons"]["7d"]["context_length"] == 96

    issues = service.produce()
    assert [i.horizon for i in issues] == ["7d"] and issues[0].appended
    assert str(issues[0].issue_date) == "2024-12-30"
    assert service.produce()[0].appended is False, "idempotent per issue date and config"
    code, fc = service.forecast_doc("7d")
    assert code == 200 and fc["issue_date"] == "2024-12-30" and fc["live_config_hash"] == fc["config_hash"]
    assert service.forecast_doc("30d")[0] == 503


def test_serve_once_forecasts_and_reports_missing_configs(ws: Path) -> None:
    once = run_cli("serve", "--once", "-w", str(ws), timeout=120)  # all horizons; only 7d is live
    assert once.code == 1, once
    assert "7d: issue" in once.stdout and "appended to the forecast log" in once.stdout, once.stdout
    assert "30d:" in once.stdout and "not found" in once.stdout, once.stdout
    assert len(read_forecast_log(ws / "data" / "forecasts.parquet")) == 5


BLOCK_GIT = "import sys; sys.modules['git'] = None; sys.modules['github'] = None; from bot.cli import main; main()"


def test_serve_and_forecast_work_without_git(ws: Path) -> None:
    """The forecaster image has no git: the production path must never import GitPython or PyGithub."""
    env = {**os.environ, "COLUMNS": "200", "CHRONOPS_TORCH_THREADS": "1"}
    for args in (["serve", "--once", "--horizon", "7d"], ["forecast", "--horizon", "7d", "--live-dir", "live/configs"]):
        proc = subprocess.run(
            [sys.executable, "-c", BLOCK_GIT, *args, "-w", str(ws)],
            capture_output=True, text=True, timeout=180, env=env, cwd=ws, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert len(read_forecast_log(ws / "data" / "forecasts.parquet")) == 5  # the second issue appends nothing
