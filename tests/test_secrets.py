"""Secrets never leak: sentinel values in CHRONOPS_GITHUB_TOKEN, GITHUB_TOKEN and SMTP_PASSWORD must not
appear in stdout, stderr, DEBUG logs, crash logs, reports, pull-request bodies, emails, git history,
the history/metrics/alerts parquet files or error text — on success, on known failures (a forge URL
that carries the token and cannot be reached, a GitHub that answers 5xx to everything) and on an
unexpected exception that writes a crash log."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import CliResult, git, run_cli
from tests.github_stub import running_stub
from tests.test_crash_safety import CRASH_SETTINGS, RUN, Base, base, copy_workspace

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

pytestmark = pytest.mark.slow
__all__ = ["base"]  # the session workspace, shared with the crash-safety tests

CHRONOPS_TOKEN = "ghs_SENTINELchronops0123456789abcdefXYZ"
GITHUB_TOKEN = "ghp_SENTINELgithub9876543210fedcbaXYZ"
SMTP_PASSWORD = "smtp-SENTINEL-password-4242"
SENTINELS = (CHRONOPS_TOKEN, GITHUB_TOKEN, SMTP_PASSWORD)


@dataclass
class Inbox:
    raw: list[bytes] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        inbox.logins.append((auth.login, auth.password))
        return aiosmtpd_smtp.AuthResult(success=auth.password == SMTP_PASSWORD.encode(), handled=False)

    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def alerts_settings(port: int) -> str:
    return CRASH_SETTINGS + (
        '\n[alerts]\nenabled = true\nrecipients = ["ops@example.com"]\nsender = "chronops@example.com"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_security = "none"\ntimeout = 5.0\n'
    )


@dataclass
class Scene:
    repo: Path
    env: dict[str, str]
    results: list[CliResult] = field(default_factory=list)

    def cli(self, *args: str, **env: str) -> CliResult:
        # isolated: the DEBUG logs this test reads reach stderr only in a fresh process
        result = run_cli(*args, cwd=self.repo, env={**self.env, **env}, timeout=300, isolated=True)
        self.results.append(result)
        return result


@pytest.fixture
def scene(base: Base, tmp_path: Path, smtp: tuple[Inbox, int]) -> Scene:
    repo = copy_workspace(base, tmp_path / "ws")
    (repo / "chronops.toml").write_text(alerts_settings(smtp[1]))
    tmp = repo.parent / "tmp"  # crash logs and temporary worktrees land here, and are scanned
    tmp.mkdir()
    env = {
        **base.env, "CHRONOPS_GITHUB_TOKEN": CHRONOPS_TOKEN, "GITHUB_TOKEN": GITHUB_TOKEN,
        "SMTP_USER": "bot", "SMTP_PASSWORD": SMTP_PASSWORD, "CHRONOPS_LOG": "DEBUG", "TMPDIR": str(tmp),
        "CHRONOPS_RETRY_BACKOFF": "0",
    }  # fmt: skip
    return Scene(repo, env)


def file_texts(root: Path, *, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if not path.is_file() or any(rel.startswith(s) for s in skip):
            continue
        if path.suffix == ".parquet":  # compressed pages: compare the decoded cells
            yield rel, pd.read_parquet(path).to_csv()
        else:
            yield rel, path.read_bytes().decode("utf-8", "replace")


def assert_no_leaks(scene: Scene, *extra: str, skip: tuple[str, ...] = ()) -> None:
    root = scene.repo.parent
    texts: list[tuple[str, str]] = []
    for i, r in enumerate(scene.results):
        texts += [(f"call {i} stdout", r.stdout), (f"call {i} stderr", r.stderr)]
    texts += list(file_texts(root, skip=skip))  # workspace, reports, parquet, crash logs (TMPDIR)
    for repo in (scene.repo, root / "origin.git"):
        texts.append((f"git log of {repo.name}", git(repo, "log", "--all", "-p")))
    texts += [(f"extra {i}", t) for i, t in enumerate(extra)]
    leaks = [(where, s) for where, text in texts for s in SENTINELS if s in text]
    assert leaks == [], leaks


def test_success_path_leaks_nothing(scene: Scene, smtp: tuple[Inbox, int]) -> None:
    inbox, _ = smtp
    run = scene.cli(*RUN)
    assert run.code == 0, run
    assert scene.cli("status", "--json").code == 0
    assert scene.cli("history", "--json").code == 0
    assert scene.cli("dashboard", "--out", str(scene.repo.parent / "site")).code == 0
    assert len(inbox.raw) >= 2 and inbox.logins and inbox.logins[0][1] == SMTP_PASSWORD.encode()
    assert "DEBUG" in run.stderr  # the logs were on
    assert_no_leaks(scene, *(m.decode("utf-8", "replace") for m in inbox.raw))


def test_forge_url_with_a_token_that_cannot_be_reached(scene: Scene, smtp: tuple[Inbox, int]) -> None:
    url = f"https://x-access-token:{GITHUB_TOKEN}@127.0.0.1:9/acme/{CHRONOPS_TOKEN}.git"
    git(scene.repo, "remote", "set-url", "origin", url)
    run = scene.cli(*RUN)
    assert run.code == 1, run
    assert run.stderr.count("error: ") >= 1 and "Traceback" not in run.stderr
    history = pd.read_parquet(scene.repo / "data" / "optimization_history.parquet")
    assert history.iloc[-1]["status"] == "failed" and "git fetch" in str(history.iloc[-1]["notes"])
    assert_no_leaks(scene, *(m.decode("utf-8", "replace") for m in smtp[0].raw), skip=("repo/.git/config",))


def test_github_answering_5xx_to_everything(scene: Scene) -> None:
    with running_stub(scene.repo.parent / "origin.git", token=CHRONOPS_TOKEN) as stub:
        stub.set_faults(1.0, kinds=("502",))
        env = {"GITHUB_REPOSITORY": stub.repository, "GITHUB_API_URL": stub.api_url}
        run = scene.cli(*RUN, "--forge", "github", **env)
        rollback = scene.cli("rollback", "--horizon", "7d", "--forge", "github", **env)
    assert run.code == 1 and "502" in run.stdout, run
    assert rollback.code == 1 and rollback.stderr.splitlines()[-1].startswith("error: "), rollback
    requests = [f"{r.method} {r.path} {r.query} {r.body}" for r in stub.requests]
    assert_no_leaks(scene, *requests)


def test_unexpected_exception_crash_log(scene: Scene) -> None:
    crash = scene.cli(
        *RUN, "--force-approve", "--reason", f"pasted by mistake: {CHRONOPS_TOKEN} {SMTP_PASSWORD}",
        CHRONOPS_CRASH_AT="pipeline:proposed", CHRONOPS_CRASH_MODE="raise",
    )  # fmt: skip
    assert crash.code == 3 and "details in" in crash.stderr, crash
    logs = list((scene.repo.parent / "tmp").glob("chronops-crash-*.log"))
    assert len(logs) == 1 and "injected fault at pipeline:proposed" in logs[0].read_text()
    again = scene.cli(*RUN)  # recovers the crashed run (its history row says why)
    assert again.code == 0, again
    assert_no_leaks(scene)
