"""Email alerts over SMTP, an alerts log, and GitHub Actions step summaries.

`notify(ws, event, context)` renders the event's email (`bot.render.report.render_email`) and sends it to
`[alerts].recipients`. Sending never raises: a dead server, a refused login or a template error is
logged as a warning, recorded in the alerts log (`data/alerts.parquet`: time, event, horizon,
channel, recipients, ok, error) and answered with False, so an alert can never break a run.
Under GitHub Actions (`GITHUB_STEP_SUMMARY` set) every alert also appends one Markdown line to the
job summary. The SMTP login comes from the environment: SMTP_USER and SMTP_PASSWORD.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from bot.adapters.store import append_rows, read_table
from bot.flow.records import records_frame

if TYPE_CHECKING:
    from bot.core.triggers import TriggerDecision
    from bot.flow.outcome import HorizonOutcome
    from bot.settings import AlertSettings
    from bot.workspace import Workspace

log = logging.getLogger(__name__)

ALERT_EVENTS = (
    "optimization_triggered",
    "validation_passed",
    "validation_failed",
    "deployment_successful",
    "rollback_executed",
    "run_missed",
    "watch_alarm",
)


class Email(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str: ...


Renderer = Callable[[str, Mapping[str, Any]], Email]


@dataclass(frozen=True)
class AlertRecord:
    sent_at: datetime
    event: str
    horizon: str
    channel: str  # email | github-issue | local
    recipients: str  # comma-separated
    subject: str
    ok: bool
    error: str | None = None


ALERT_COLUMNS = list(AlertRecord.__dataclass_fields__)


def record_alert(path: Path, record: AlertRecord) -> None:
    append_rows(path, records_frame([record], AlertRecord), columns=ALERT_COLUMNS)


def read_alerts(path: Path) -> pd.DataFrame:
    frame = read_table(path, columns=ALERT_COLUMNS)
    if frame.empty:
        return records_frame([], AlertRecord)
    frame["sent_at"] = pd.to_datetime(frame["sent_at"], utc=True)
    return frame


# --- SMTP ---------------------------------------------------------------------------------------


def build_message(
    email: Email, *, sender: str, recipients: list[str], event: str, horizon: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = email.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "chronops.local")
    msg["X-Chronops-Event"] = event
    msg["X-Chronops-Horizon"] = horizon
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg


def send_message(
    settings: AlertSettings, msg: EmailMessage, *, user: str | None, password: str | None
) -> None:
    """One SMTP session: connect (TLS as configured), log in when a user is set, send. Raises on failure."""
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.timeout
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.smtp_security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if user:
            smtp.login(user, password or "")
        smtp.send_message(msg, from_addr=settings.sender, to_addrs=list(settings.recipients))


def _default_render(event: str, context: Mapping[str, Any]) -> Email:
    from bot.render.report import render_email

    return render_email(event, context)


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def notify(
    ws: Workspace,
    event: str,
    context: Mapping[str, Any],
    *,
    render: Renderer | None = None,
    now: datetime | None = None,
) -> bool:
    """Email `event` to the configured recipients. True when sent; never raises."""
    settings = ws.settings.alerts
    now = now or datetime.now(UTC)
    horizon = str(context.get("horizon", "all"))
    recipients = list(settings.recipients)
    ok, error, subject = False, None, ""
    if not settings.enabled or not recipients:
        log.info("alert %s for %s not emailed: alerts are disabled or have no recipients", event, horizon)
        _step_summary(event, horizon, subject, "email off")
        return False
    try:
        email = (render or _default_render)(event, context)
        subject = email.subject
        msg = build_message(
            email, sender=settings.sender, recipients=recipients, event=event, horizon=horizon
        )
        user, password = os.environ.get("SMTP_USER") or None, os.environ.get("SMTP_PASSWORD") or None
        send_message(settings, msg, user=user, password=password)
        ok = True
    except Exception as exc:  # an alert must never break the run that sends it
        error = _error_text(exc)
        log.warning(
            "could not email alert %s for %s via %s:%s: %s",
            event, horizon, settings.smtp_host, settings.smtp_port, error,
        )  # fmt: skip
    _safe_record(ws, AlertRecord(now, event, horizon, "email", ",".join(recipients), subject, ok, error))
    _step_summary(
        event, horizon, subject, f"emailed to {len(recipients)}" if ok else f"email FAILED ({error})"
    )
    return ok


def _safe_record(ws: Workspace, record: AlertRecord) -> None:
    try:
        record_alert(ws.path(ws.settings.alerts.log), record)
    except Exception as exc:  # the log is best effort too
        log.warning("could not record alert %s in the alerts log: %s", record.event, _error_text(exc))


def record_local_alert(ws: Workspace, event: str, horizon: str, subject: str, now: datetime) -> None:
    """An alert the local forge only records (where GitHub would open an issue)."""
    _safe_record(ws, AlertRecord(now, event, horizon, "local", "", subject, True, None))


# --- GitHub Actions step summary ----------------------------------------------------------------


def _md(text: str) -> str:
    for ch in "\\`*_[]<>|":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def summary_line(event: str, horizon: str, subject: str, outcome: str) -> str:
    what = f" — {_md(subject)}" if subject else ""
    return f"- **chronops alert** `{event}` ({_md(horizon)}){what}: {_md(outcome)}\n"


def _step_summary(event: str, horizon: str, subject: str, outcome: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(summary_line(event, horizon, subject, outcome))
    except OSError as exc:
        log.warning("could not append to GITHUB_STEP_SUMMARY: %s", _error_text(exc))


# --- contexts from a run ------------------------------------------------------------------------


def triggered_context(
    decision: TriggerDecision, run_id: str, started_at: datetime, expected_completion: str = "unknown"
) -> dict[str, Any]:
    """The optimization_triggered email's context, right after the triggers fired."""
    return {
        "horizon": decision.horizon,
        "run_id": run_id,
        "triggered_by": list(decision.reasons) or ["manual run"],
        "started_at": started_at,
        "expected_completion": expected_completion,
    }


def outcome_alerts(
    outcome: HorizonOutcome, run_id: str, *, automerge: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The validation_passed / validation_failed alert of a finished run (none when it was skipped)."""
    from bot.render.report import run_email_context, validation_event

    if outcome.verdict is None or outcome.report is None:
        return []
    run = outcome.report
    event = validation_event(run)
    pr = outcome.proposal
    context = run_email_context(
        event, run, automerge=automerge and outcome.verdict.approved,
        pull_request=(pr.pull.url or f"#{pr.pull.number}") if pr is not None else None,
    )  # fmt: skip
    return [(event, context)]


def notify_outcome(
    ws: Workspace, outcome: HorizonOutcome, run_id: str, *, automerge: bool
) -> dict[str, bool]:
    """Send a finished run's validation alert; returns {event: sent}. Never raises."""
    try:
        alerts = outcome_alerts(outcome, run_id, automerge=automerge)
    except Exception as exc:
        log.warning("could not build the alert for %s: %s", outcome.horizon, _error_text(exc))
        return {}
    return {event: notify(ws, event, context) for event, context in alerts}
