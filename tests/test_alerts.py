"""Email alerts against a REAL SMTP server (aiosmtpd on 127.0.0.1), plain, STARTTLS and SSL, plus
the failure paths: a dead server, a refused login and a broken template never raise."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.flow.alerts import ALERT_EVENTS, notify, read_alerts, summary_line
from bot.settings import AlertSettings, Settings
from bot.workspace import Workspace

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

NOW = datetime(2026, 1, 11, 5, 30, tzinfo=UTC)
RECIPIENTS = ["ops@example.com", "ml@example.com"]

CONTEXTS: dict[str, dict[str, Any]] = {
    "optimization_triggered": {
        "horizon": "7d", "run_id": "20260111T050000Z-abc123",
        "triggered_by": ["Performance degradation: RMSE +18.5%", "Data drift: MEDIUM severity"],
        "started_at": NOW, "expected_completion": "~5 minutes",
    },
    "validation_passed": {
        "horizon": "15d", "run_id": "20260111T050000Z-abc123", "headline": "approved: RMSE -12.3%",
        "decision": "approved", "rmse_improvement_pct": 12.3, "mape_improvement_pct": 4.0,
        "changes": [{"label": "Context length", "old": "180", "new": "270"}], "automerge": True,
        "pull_request": "#7", "override_reason": None, "random_weights": False,
    },
    "validation_failed": {
        "horizon": "30d", "run_id": "20260111T050000Z-abc123", "headline": "rejected",
        "failed": [{"label": "CI95 coverage", "detail": "84% < 90%"}], "rmse_improvement_pct": 1.0,
        "mape_improvement_pct": 0.5, "changes": [], "pull_request": None, "no_change": True,
        "random_weights": True,
    },
    "deployment_successful": {
        "horizon": "90d", "version": 3, "config_hash": "abcdef123456", "commit": "0123456789ab",
        "deployed_at": NOW, "changes": [{"label": "Samples", "old": "100", "new": "200"}],
        "health": "forecaster reloaded, health check passed",
    },
    "rollback_executed": {
        "horizon": "7d", "reason": "RMSE spiked", "automatic": False, "from_version": 3,
        "to_version": 2, "commit": "fedcba987654", "executed_at": NOW,
    },
    "run_missed": {
        "horizon": "all", "expected_at": NOW, "last_run_at": datetime(2026, 1, 1, tzinfo=UTC),
        "workflow": "optimize.yml",
    },
    "watch_alarm": {
        "horizon": "all", "day": "2019-11-13", "onset": "2019-11-08", "statistic": 3.61, "threshold": 3.3,
        "ratio": 2.4, "reason": "Volatility watch: CUSUM 3.61 >= 3.30 on 2019-11-13", "false_alarm_weeks": 20.0,
        "forge": "github",
    },
}  # fmt: skip
SUBJECTS = {
    "optimization_triggered": "[Model Optimizer] Optimization Triggered for 7d",
    "validation_passed": "[Model Optimizer] Validation PASSED for 15d",
    "validation_failed": "[Model Optimizer] Validation FAILED for 30d",
    "deployment_successful": "[Model Optimizer] Deployment Successful for 90d",
    "rollback_executed": "[Model Optimizer] Rollback Executed for 7d",
    "run_missed": "[Model Optimizer] Scheduled Run Missed for all horizons",
    "watch_alarm": "[Model Optimizer] Volatility Watch Alarm on 2019-11-13 (all)",
}


@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    ok = auth_data.login == b"bot" and auth_data.password == b"s3cret"
    return aiosmtpd_smtp.AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def cert(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate for the TLS tests")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return tmp_path


def server_tls(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert / "cert.pem", cert / "key.pem")
    return ctx


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def workspace(tmp_path: Path, port: int, **changes: Any) -> Workspace:
    alerts = AlertSettings(
        enabled=True, recipients=RECIPIENTS, sender="chronops@example.com", smtp_host="127.0.0.1",
        smtp_port=port, smtp_security="none", timeout=5.0,
    )  # fmt: skip
    return Workspace(tmp_path, Settings(alerts=replace(alerts, **changes)))


@pytest.fixture
def summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    monkeypatch.delenv("SMTP_USER", raising=False)
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    return path


def test_every_alert_type_is_delivered(tmp_path: Path, smtp_server: tuple[Inbox, int], summary: Path) -> None:
    inbox, port = smtp_server
    ws = workspace(tmp_path, port)
    assert set(CONTEXTS) == set(ALERT_EVENTS)
    for event in ALERT_EVENTS:
        assert notify(ws, event, CONTEXTS[event], now=NOW) is True, event
    assert len(inbox.messages) == len(ALERT_EVENTS)
    for event, (rcpts, msg) in zip(ALERT_EVENTS, inbox.messages, strict=True):
        assert rcpts == RECIPIENTS
        assert msg["Subject"] == SUBJECTS[event]
        assert msg["X-Chronops-Event"] == event
        assert msg["X-Chronops-Horizon"] == CONTEXTS[event]["horizon"]
        assert msg["From"] == "chronops@example.com" and msg["To"] == ", ".join(RECIPIENTS)
        types = [p.get_content_type() for p in msg.walk()]
        assert "text/plain" in types and "text/html" in types
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
        assert CONTEXTS[event]["horizon"].encode() in text
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert list(log["event"]) == list(ALERT_EVENTS) and log["ok"].all() and log["error"].isna().all()
    assert list(log["horizon"]) == [CONTEXTS[e]["horizon"] for e in ALERT_EVENTS]
    assert set(log["recipients"]) == {",".join(RECIPIENTS)}
    lines = summary.read_text().splitlines()
    assert len(lines) == len(ALERT_EVENTS) and all("emailed to 2" in ln for ln in lines)
    assert "`validation_passed` (15d)" in lines[1]


def test_login_comes_from_the_environment(
    tmp_path: Path, smtp_server: tuple[Inbox, int], summary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = smtp_server
    ws = workspace(tmp_path, port)
    monkeypatch.setenv("SMTP_USER", "bot")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    assert notify(ws, "run_missed", CONTEXTS["run_missed"], now=NOW) is True
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    assert notify(ws, "run_missed", CONTEXTS["run_missed"], now=NOW) is False
    assert len(inbox.messages) == 1
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert list(log["ok"]) == [True, False]
    assert "SMTPAuthenticationError" in log["error"].iloc[1] and "wrong" not in log["error"].iloc[1]


def test_server_down_returns_false_quickly_and_is_recorded(
    tmp_path: Path, summary: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ws = workspace(tmp_path, free_port())  # nothing listens there
    started = time.monotonic()
    for event in ("validation_passed", "rollback_executed"):
        assert notify(ws, event, CONTEXTS[event], now=NOW) is False
    assert time.monotonic() - started < 5
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert list(log["ok"]) == [False, False] and list(log["horizon"]) == ["15d", "7d"]
    assert all("ConnectionRefusedError" in e for e in log["error"])
    assert list(log["subject"]) == [SUBJECTS["validation_passed"], SUBJECTS["rollback_executed"]]
    assert "could not email alert validation_passed for 15d" in caplog.text
    assert all("email FAILED" in ln for ln in summary.read_text().splitlines())


def test_template_error_is_an_alert_failure_not_a_crash(
    tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    ws = workspace(tmp_path, port)
    assert notify(ws, "deployment_successful", {"horizon": "7d"}, now=NOW) is False
    assert notify(ws, "no_such_event", {"horizon": "7d"}, now=NOW) is False
    assert not inbox.messages
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert "KeyError" in log["error"].iloc[0] and "ValueError" in log["error"].iloc[1]


def test_disabled_alerts_send_nothing(tmp_path: Path, smtp_server: tuple[Inbox, int], summary: Path) -> None:
    inbox, port = smtp_server
    assert notify(workspace(tmp_path, port, enabled=False), "run_missed", CONTEXTS["run_missed"]) is False
    assert notify(workspace(tmp_path, port, recipients=[]), "run_missed", CONTEXTS["run_missed"]) is False
    assert not inbox.messages and not (tmp_path / "data" / "alerts.parquet").exists()
    assert summary.read_text().count("email off") == 2


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_modes_verify_the_server_certificate(
    tmp_path: Path, cert: Path, summary: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    inbox, port = Inbox(), free_port()
    tls = server_tls(cert)
    kwargs: dict[str, Any] = (
        {"ssl_context": tls} if mode == "ssl" else {"tls_context": tls, "require_starttls": True}
    )
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        ws = workspace(tmp_path, port, smtp_security=mode)
        assert notify(ws, "run_missed", CONTEXTS["run_missed"], now=NOW) is False  # untrusted certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cert / "cert.pem"))
        assert notify(ws, "run_missed", CONTEXTS["run_missed"], now=NOW) is True
    finally:
        controller.stop()
    assert len(inbox.messages) == 1 and inbox.messages[0][1]["Subject"] == SUBJECTS["run_missed"]
    log = read_alerts(tmp_path / "data" / "alerts.parquet")
    assert "CERTIFICATE_VERIFY_FAILED" in log["error"].iloc[0]


def test_summary_line_escapes_markdown() -> None:
    line = summary_line("run_missed", "all", "a|b <script>", "emailed to 1")
    assert "a\\|b \\<script\\>" in line and line.endswith("\n")


def test_run_alerts_from_a_pipeline_outcome(
    tmp_path: Path, smtp_server: tuple[Inbox, int], summary: Path
) -> None:
    from bot.flow.alerts import notify_outcome, triggered_context
    from bot.flow.outcome import HorizonOutcome
    from tests.test_metrics import decision, verdict

    inbox, port = smtp_server
    ws = workspace(tmp_path, port)
    d = decision(True, drift=True)
    assert notify(ws, "optimization_triggered", triggered_context(d, "r1", NOW, "~5 minutes"), now=NOW)
    run_dir = tmp_path / "runs" / "r1" / "7d"
    run_dir.mkdir(parents=True)
    v = verdict(True)
    report = {
        "horizon": "7d", "run_id": "r1", "verdict": v.to_dict(), "random_weights": True,
        "trigger_reasons": list(d.reasons),
        "config_diff": [{"key": "context_length", "old": "180", "new": "270"},
                        {"key": "version", "old": "1", "new": "2"}],
    }  # fmt: skip
    (run_dir / "report.json").write_text(json.dumps(report))
    outcome = HorizonOutcome("7d", "approved", decision=d, verdict=v, run_dir=run_dir, report=report)
    assert notify_outcome(ws, outcome, "r1", automerge=True) == {"validation_passed": True}
    skipped = HorizonOutcome("7d", "skipped", decision=decision(False))
    assert notify_outcome(ws, skipped, "r2", automerge=True) == {}
    subjects = [m["Subject"] for _, m in inbox.messages]
    assert subjects == [SUBJECTS["optimization_triggered"], "[Model Optimizer] Validation PASSED for 7d"]
    body = inbox.messages[1][1].get_body(("plain",))
    assert body is not None and "270" in body.get_content()
