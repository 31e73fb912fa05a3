"""The production image, built and run under Docker: the forecaster serving and reloading a deployed
config, and the optimizer's dry run under the seed's 1 GiB memory limit.

`scripts/prepare-docker.sh` readies the machine (a Docker daemon, a stand-in python:3.11-slim base
built offline, the torch wheel as a local index). Where no Docker daemon can run, every test here is
skipped with the script's one line. Containers use `--network host` and bind 127.0.0.1 only; every
container and the torch index server are removed or stopped in finally-blocks.

The workspace is `chronops demo`'s (synthetic series, random-weight tiny T5): forecasts are noise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.test_forecaster import free_port

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
REVISION = "container-test"
FORECASTER_UID = "10001:10001"  # the image's user
MIB = 1024 * 1024


@dataclass(frozen=True)
class DockerEnv:
    docker: str
    base_image: str
    torch_index_dir: Path
    compose: bool

    def run(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.docker, *args], capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-3000:]}"
        return proc


@pytest.fixture(scope="session")
def docker_env() -> DockerEnv:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "prepare-docker.sh")],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode == 77:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    values = dict(re.findall(r"^([A-Z_]+)=(.*)$", proc.stdout, re.M))
    return DockerEnv(
        values["DOCKER"], values["BASE_IMAGE"], Path(values["TORCH_INDEX_DIR"]), values["COMPOSE"] == "1"
    )


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on 127.0.0.1 (a PEP 503 index for pip) for the duration of the block."""
    handler = functools.partial(_QuietFiles, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def build_image(env: DockerEnv, tag: str, revision: str) -> None:
    with serve_directory(env.torch_index_dir) as index:
        proc = env.run(
            "build", "--network", "host", "-f", str(ROOT / "Dockerfile.optimizer"), "-t", tag,
            "--secret", "id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt",
            "--build-arg", f"BASE_IMAGE={env.base_image}", "--build-arg", f"TORCH_INDEX_URL={index}",
            "--build-arg", f"CHRONOPS_REVISION={revision}", str(ROOT), timeout=1800,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="session")
def image(docker_env: DockerEnv) -> str:
    tag = "chronops:container-test"
    build_image(docker_env, tag, REVISION)
    return tag


@pytest.fixture
def demo_ws(tmp_path: Path) -> Path:
    """The demo workspace, laid out as docs/deploy.md leaves the stack directory."""
    from bot.demo import build_workspace

    ws = build_workspace(tmp_path / "demo")
    for name in ("data", "logs", "live/configs"):
        (ws / name).mkdir(parents=True, exist_ok=True)
    return ws


def http_json(url: str, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_for_status(url: str, status: int, seconds: float, container: tuple[DockerEnv, str]) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            code, doc = http_json(url, timeout=5)
            last = (code, doc)
            if code == status:
                return doc
        time.sleep(1)
    env, name = container
    logs = env.run("logs", "--tail", "40", name)
    raise AssertionError(f"{url} never answered {status} (last: {last}); logs:\n{logs.stdout}{logs.stderr}")


def mounts(ws: Path, *extra: str) -> list[str]:
    args = [
        "-v", f"{ws / 'data'}:/app/data", "-v", f"{ws / 'logs'}:/app/logs",
        "-v", f"{ws / 'models'}:/app/models:ro", "-v", f"{ws / 'chronops.toml'}:/app/chronops.toml:ro",
    ]  # fmt: skip
    for spec in extra:
        args += ["-v", spec]
    return args


def remove_container(env: DockerEnv, name: str) -> None:
    env.run("rm", "-f", name, timeout=120)
    assert name not in env.run("ps", "-a", "--format", "{{.Names}}").stdout.split()


def edit_config(ws: Path, horizon: str, **changes: Any) -> None:
    path = ws / "configs" / f"{horizon}.json"
    doc = json.loads(path.read_text())
    doc.update(changes, version=doc["version"] + 1)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def test_forecaster_container_serves_and_reloads_a_deployed_config(
    docker_env: DockerEnv, image: str, demo_ws: Path
) -> None:
    port = free_port()
    health = f"http://127.0.0.1:{port}/healthz"
    with (demo_ws / "chronops.toml").open("a") as fh:
        fh.write(f'\n[deploy]\nhealth_urls = ["{health}"]\nhealth_timeout_seconds = 240\n')
    # The ownership docs/deploy.md asks for: data/ and logs/ writable by the container user.
    for name in ("data", "logs"):
        for path in [demo_ws / name, *(demo_ws / name).rglob("*")]:
            os.chown(path, 10001, 10001)
    name = f"chronops-forecaster-{port}"
    try:
        docker_env.run(
            "run", "-d", "--name", name, "--user", FORECASTER_UID, "--memory", "1g", "--network", "host",
            # A git that cannot run: serving must not need it (the image's git is for the optimizer).
            "-e", "GIT_PYTHON_GIT_EXECUTABLE=/nonexistent/git",
            *mounts(demo_ws, f"{demo_ws / 'live' / 'configs'}:/app/live/configs:ro"),
            image, "serve", "--all", "--host", "127.0.0.1", "--port", str(port), check=True,
        )  # fmt: skip
        doc = wait_for_status(health, 503, 120, (docker_env, name))  # no live configs yet
        assert doc["chronops"]["revision"] == REVISION
        started = docker_env.run("inspect", "--format", "{{.State.StartedAt}}", name, check=True).stdout

        # A deploy from another chronops revision is refused before installing anything.
        other = run_cli("deploy", cwd=demo_ws, env={"CHRONOPS_REVISION": "some-other-revision"}, timeout=300)
        assert other.code == 1, other
        assert "revision" in other.stderr and REVISION in other.stderr, other.stderr
        assert not any((demo_ws / "live" / "configs").glob("*.json"))

        first = run_cli("deploy", cwd=demo_ws, env={"CHRONOPS_REVISION": REVISION}, timeout=300)
        assert first.code == 0, first.stdout + first.stderr
        doc = wait_for_status(health, 200, 60, (docker_env, name))
        assert set(doc["horizons"]) == {"7d", "15d", "30d", "90d"}
        code, forecast = http_json(f"http://127.0.0.1:{port}/forecast/7d")
        assert code == 200, forecast
        assert forecast["random_weights"] is True and len(forecast["steps"]) == 5
        assert all(step["lo95"] <= step["point"] <= step["hi95"] for step in forecast["steps"])
        old_hash = doc["horizons"]["7d"]["config_hash"]

        edit_config(demo_ws, "7d", context_length=120)
        second = run_cli("deploy", cwd=demo_ws, env={"CHRONOPS_REVISION": REVISION}, timeout=300)
        assert second.code == 0, second.stdout + second.stderr
        _, doc = http_json(health)
        assert doc["horizons"]["7d"]["config_hash"] != old_hash
        assert doc["horizons"]["7d"]["context_length"] == 120
        # Picked up by the running process: same start, no restart.
        state = docker_env.run(
            "inspect", "--format", "{{.State.StartedAt}} {{.RestartCount}} {{.State.Running}}", name, check=True
        ).stdout.split()
        assert state == [started.strip(), "0", "true"]
        assert (demo_ws / "data" / "forecasts.parquet").exists()
    finally:
        remove_container(docker_env, name)


def test_optimizer_dry_run_fits_in_one_gib(docker_env: DockerEnv, image: str, demo_ws: Path) -> None:
    for name in ("data", "logs"):
        for path in [demo_ws / name, *(demo_ws / name).rglob("*")]:
            os.chown(path, 10001, 10001)
    name = f"chronops-optimizer-{os.getpid()}"
    # The cgroup's own peak, read inside the container before it exits (v2 memory.peak, or v1's
    # memory.max_usage_in_bytes): docker removes the cgroup with the container.
    script = (
        'python -m bot "$@"; rc=$?; '
        "for f in /sys/fs/cgroup/memory.peak /sys/fs/cgroup/memory/memory.max_usage_in_bytes; do "
        'if [ -r "$f" ]; then echo "cgroup-peak-bytes $(cat "$f")"; break; fi; done; exit $rc'
    )
    try:
        started = time.monotonic()
        proc = docker_env.run(
            "run", "--name", name, "--user", FORECASTER_UID, "--memory", "1g", "--memory-swap", "1g",
            "--network", "host", *mounts(demo_ws, f"{demo_ws / 'configs'}:/app/configs"),
            "--entrypoint", "sh", image, "-c", script, "sh",
            "run", "--horizon", "7d", "--force", "--dry-run", "plan", timeout=900,
        )  # fmt: skip
        seconds = time.monotonic() - started
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        peak = int(re.search(r"^cgroup-peak-bytes (\d+)$", proc.stdout, re.M).group(1))  # type: ignore[union-attr]
        print(f"optimizer dry run in the container: {seconds:.1f} s, cgroup peak {peak / MIB:.0f} MiB")
        assert peak <= 1024 * MIB
        oom = docker_env.run("inspect", "--format", "{{.State.OOMKilled}}", name, check=True).stdout.strip()
        assert oom == "false"
    finally:
        remove_container(docker_env, name)
