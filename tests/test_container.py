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

# Building the image (minutes on a cold cache) runs in the first test's setup.
pytestmark = [pytest.mark.container, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parent.parent
REVISION = "container-test"
# The image's own user where this test can hand it the folders (root); else this user's uid, as
# docs/deploy.md runs the stack (CHRONOPS_UID). Either way a non-root user.
FORECASTER_UID = "10001:10001" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}"


def give_to_container_user(ws: Path) -> None:
    """data/ and logs/ writable by the container user (docs/deploy.md: the stack's owner)."""
    if os.geteuid() != 0:
        return  # the container runs as this user, who owns them
    for name in ("data", "logs"):
        for path in [ws / name, *(ws / name).rglob("*")]:
            os.chown(path, 10001, 10001)
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
    from bot.commands.demo import build_workspace

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
    give_to_container_user(demo_ws)
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
    give_to_container_user(demo_ws)
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


# --- docs/deploy.md, followed as written ------------------------------------------------------------

RUNNER = "runner"  # the user docs/deploy.md names


def deploy_md_blocks() -> list[tuple[int, str]]:
    """(step number, script) of each ```bash block in docs/deploy.md's one-time set-up, in order."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text.split("## One-time set-up of the production host", 1)[1].split("\n## ", 1)[0]
    blocks, step, current = [], 0, None
    for line in section.splitlines():
        if m := re.match(r"^(\d+)\. \*\*", line):
            step = int(m.group(1))
        stripped = line.strip()
        if current is None and stripped == "```bash":
            current, indent = [], len(line) - len(line.lstrip())
        elif current is not None and stripped == "```":
            blocks.append((step, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line[indent:])
    return blocks


@pytest.fixture
def runner_user(docker_env: DockerEnv) -> Iterator[str]:
    """The non-root user docs/deploy.md runs everything as, in the docker group."""
    if os.geteuid() != 0:
        pytest.skip("following docs/deploy.md needs a second, non-root user: run as root to create it")
    if subprocess.run(["id", RUNNER], capture_output=True, check=False).returncode == 0:
        pytest.skip(f"a user named {RUNNER!r} already exists here; not touching it")
    subprocess.run(["useradd", "--create-home", "--groups", "docker", RUNNER], check=True)
    try:
        yield RUNNER
    finally:
        subprocess.run(["userdel", "--remove", RUNNER], capture_output=True, check=False)


def as_user(user: str, script: str, cwd: Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    base = {"HOME": f"/home/{user}", "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"}  # fmt: skip
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in {**base, **env}.items()),
         "bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def publish_origin(origin: Path, tiny_model_dir: str) -> None:
    """A bare repository holding this checkout's files, configs pointing at a local tiny model, and a
    small search in the committed chronops.toml: the repository an operator clones in step 2."""
    from bot.commands.demo import DEMO_SETTINGS
    from bot.commands.init import default_config
    from bot.core.config import Family, render_config

    work = origin.parent / "publish"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(src.read_bytes())
    for h in ("7d", "15d", "30d", "90d"):
        (work / "configs" / f"{h}.json").write_text(render_config(default_config(h, tiny_model_dir, Family.T5)))
    (work / "chronops.toml").write_text(DEMO_SETTINGS)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "commit", "-q", "--no-gpg-sign", "-m", "chronops"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(origin)], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(origin)], check=True)


def test_deploy_md_followed_literally(docker_env: DockerEnv, image: str, runner_user: str) -> None:
    """Steps 2–6 of docs/deploy.md's set-up, as written, as the non-root runner user (admin blocks as
    root, their `sudo` dropped). Substituted, and only these: the clone URL (a local bare repository),
    /srv/chronops (a scratch path), port 8080 (a free one, through CHRONOPS_PORT), the venv install
    (no torch index here: a wrapper running the image step 5 built, as the runner), and the
    mindicador ingest (no internet: a synthetic CSV). The image build runs as written, with the
    offline base and torch index passed through the environment variables the compose file reads."""
    from bot.adapters.tiny import build_tiny_model
    from bot.commands.demo import MODEL_DIR, synthetic_series
    from bot.core.config import Family

    port = free_port()
    scratch = Path(f"/var/tmp/chronops-deploy-md-{os.getpid()}")
    stack, origin = scratch / "chronops", scratch / "origin.git"
    scratch.mkdir(mode=0o755)
    scratch.chmod(0o755)
    # The runner cannot run this test's interpreter (it lives under /root): its "venv" runs the
    # image step 5 built, as the runner's uid in the stack directory, which is the same code.
    venv_install = (
        "mkdir -p .venv/bin\n"
        "cat > .venv/bin/chronops <<'SH'\n#!/bin/sh\n"
        'exec docker run --rm --network host --user "$(id -u):$(id -g)" -e CHRONOPS_REVISION '
        '-v "$PWD:$PWD" -w "$PWD" chronops:latest "$@"\nSH\n'
        "chmod +x .venv/bin/chronops\n"
    )

    def literal(script: str) -> str:
        if "python3 -m venv .venv" in script:
            return venv_install
        return (
            script.replace("https://github.com/OWNER/REPO", str(origin)).replace("/srv/chronops", str(stack))
            .replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            .replace("ingest --source mindicador", "ingest --source csv data/series-input.csv")
        )  # fmt: skip

    env = {"CHRONOPS_PORT": str(port), "BASE_IMAGE": docker_env.base_image, "CHRONOPS_BUILD_NETWORK": "host",
           "DOCKER_BUILDKIT": "1", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    blocks = deploy_md_blocks()
    assert [s for s, _ in blocks] == [2, 2, 3, 5, 6, 6], blocks
    try:
        publish_origin(origin, MODEL_DIR)
        # It stands in for GitHub: the runner's git refuses to clone a repository another user owns.
        subprocess.run(["chown", "-R", f"{RUNNER}:{RUNNER}", str(origin)], check=True)
        transcript = []
        with serve_directory(docker_env.torch_index_dir) as index:
            env["TORCH_INDEX_URL"] = index
            for step, script in blocks:
                script = literal(script)
                if step == 5:  # before the stack starts: the files a real operator brings (docs: ./models)
                    build_tiny_model(Family.T5, stack / MODEL_DIR)
                    synthetic_series(end="2025-12-31").to_csv(stack / "data" / "series-input.csv", index=False)
                    subprocess.run(["chown", "-R", f"{RUNNER}:{RUNNER}", str(stack / "models"), str(stack / "data")], check=True)  # fmt: skip
                if script.lstrip().startswith("sudo "):
                    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace("sudo ", "")], capture_output=True, text=True, check=False)  # fmt: skip
                else:
                    # One shell for steps 5 and 6, as in one terminal: step 6 uses step 5's export.
                    if step == 6 and "chronops deploy" in script:
                        exports = [ln for ln in transcript[-2].splitlines() if ln.startswith("export ")]
                        script = "\n".join([*exports, script])
                    proc = as_user(RUNNER, script, stack if stack.exists() else scratch, env)
                transcript.append(script)
                assert proc.returncode == 0, f"step {step}:\n{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        health = json.loads(proc.stdout[proc.stdout.index("{\n", proc.stdout.index("deployed:")) :])  # curl
        assert health["status"] == "ok", health
        assert all(entry["healthy"] for entry in health["horizons"].values()), health
        assert "deployed: 1 forecaster(s)" in proc.stdout
        owners = {p.owner() for p in (stack / "data").iterdir()} | {p.owner() for p in (stack / "live" / "configs").iterdir()}
        assert owners == {RUNNER}, owners
        assert (stack / "data" / "forecasts.parquet").exists()
    finally:
        subprocess.run(
            [docker_env.docker, "compose", "-f", "docker-compose.prod.yml", "down", "--volumes", "--remove-orphans"],
            cwd=stack, capture_output=True, check=False, env={**os.environ, **env}, timeout=300,
        )  # fmt: skip
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
        assert "usdclp-forecaster" not in docker_env.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
