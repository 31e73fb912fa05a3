"""`chronops deploy`: apply the merged configs to the live stack, health-check, restore on failure.

1. Validate every configs/<h>.json strictly, and its model_id against deploy.model_allowlist. Any
   problem refuses the whole deploy before anything is installed (exit 1).
2. Compare with <live_dir>/<h>.json; identical bytes everywhere → "nothing to deploy" (exit 0).
3. Back up the live set to <live_dir>.previous/, note the previous texts in <live_dir>.pending.json
   (a deploy killed after installing is checked again, and undone on failure, by the next one),
   then install: every changed config is written to a temp file in the live dir first, then each is
   moved into place with os.replace (readers see the old file or the new one, never half of one).
4. The forecasters (`chronops serve`) poll the live dir and reload. Poll every deploy.health_urls
   until each reports the new config hash of every changed horizon it serves, for at most
   deploy.health_timeout_seconds.
5. On failure restore the previous configs (byte-identical), and with --auto-revert open and merge a
   revert pull request per changed horizon; alert; exit 5 (DeployFailedError).

Every outcome is recorded in the history (triggered_by="deploy") and the metrics (event "deploy").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.adapters.configs import read_config
from bot.adapters.history import HistoryRecord, record_optimization
from bot.adapters.store import atomic_write_text, file_lock
from bot.core.allowlist import allowlist_problem
from bot.core.config import HORIZONS, HorizonConfig, config_hash, parse_config
from bot.errors import ChronopsError, ConfigError, DeployFailedError
from bot.faults import crash_point
from bot.workspace import Workspace

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Fetch = Callable[[str, float], "dict[str, Any] | str"]

_KNOB_LABELS = (
    ("model_id", "model"),
    ("model_family", "family"),
    ("prediction_length", "prediction length"),
    ("context_length", "context length"),
    ("num_samples", "samples"),
    ("temperature", "temperature"),
    ("top_k", "top k"),
    ("top_p", "top p"),
)


@dataclass(frozen=True)
class Candidate:
    """A validated configs/<h>.json: its exact text is what gets installed."""

    horizon: str
    text: str
    config: HorizonConfig
    config_hash: str


@dataclass(frozen=True)
class Change:
    new: Candidate
    old_text: str | None  # the live file before the deploy; None when there was none
    old_config: HorizonConfig | None  # None when absent or unparseable

    @property
    def horizon(self) -> str:
        return self.new.horizon

    @property
    def old_hash(self) -> str | None:
        return config_hash(self.old_config) if self.old_config else None


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    detail: str
    unreachable: bool  # some endpoint did not answer at some point: the forecaster stopped serving


# --- validation ---------------------------------------------------------------------------------


def validate_configs(ws: Workspace) -> tuple[list[Candidate], dict[str, str]]:
    """Strictly parse every configs/<h>.json and check its model against the allow-list.

    Returns the valid candidates and the problems by horizon (each names the file, key and fix).
    """
    candidates: list[Candidate] = []
    problems: dict[str, str] = {}
    for h in HORIZONS:
        path = ws.config_path(h)
        if not path.exists():
            continue
        try:
            cfg = read_config(path, strict=True)
            text = path.read_text(encoding="utf-8")
        except ConfigError as exc:
            problems[h] = str(exc)
            continue
        problem = allowlist_problem(cfg.model_id, ws.settings.deploy.model_allowlist, workspace=str(ws.root))
        if problem:
            problems[h] = f"{path}: key 'model_id': {problem}"
            continue
        candidates.append(Candidate(h, text, cfg, config_hash(cfg)))
    return candidates, problems


def plan_changes(
    candidates: Sequence[Candidate], live_dir: Path, pending: Mapping[str, str | None] | None = None
) -> list[Change]:
    """The candidates whose bytes differ from the live file.

    `pending` holds the previous live texts of a deploy that was interrupted after installing: a
    horizon whose live file is no longer that previous text is checked again (and restored to it on
    failure), even when the live file already equals the candidate.
    """
    changes = []
    for c in candidates:
        live = live_dir / f"{c.horizon}.json"
        live_text = live.read_text(encoding="utf-8") if live.exists() else None
        if pending is not None and c.horizon in pending and live_text != pending[c.horizon]:
            previous = pending[c.horizon]
            changes.append(Change(c, previous, _parse_text(previous, c.horizon)))
            continue
        if live_text == c.text:
            continue
        changes.append(Change(c, live_text, _parse_text(live_text, c.horizon)))
    return changes


def _parse_text(text: str | None, horizon: str) -> HorizonConfig | None:
    if text is None:
        return None
    try:
        return parse_config(json.loads(text), expected_horizon=horizon)
    except (ValueError, ChronopsError):
        return None


# --- the journal of a deploy in progress ------------------------------------------------------------


def journal_path(live_dir: Path) -> Path:
    return live_dir.with_name(live_dir.name + ".pending.json")


def write_journal(live_dir: Path, run_id: str, changes: Sequence[Change]) -> None:
    """Before installing: what was live, so a deploy killed mid-way is checked (and undone) next time."""
    doc = {"run_id": run_id, "previous": {c.horizon: c.old_text for c in changes}}
    atomic_write_text(journal_path(live_dir), json.dumps(doc, indent=2) + "\n")


def read_journal(live_dir: Path) -> dict[str, str | None] | None:
    path = journal_path(live_dir)
    if not path.exists():
        return None
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))["previous"]
        return {str(h): (t if isinstance(t, str) else None) for h, t in previous.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s: unreadable deploy journal, ignored", path)
        return None


def clear_journal(live_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(live_dir))


# --- the live directory -------------------------------------------------------------------------


def install_files(directory: Path, files: Mapping[str, str | None]) -> None:
    """Write all files to temp files in `directory`, then os.replace each into place (None = remove).

    Nothing is replaced until every temp file is written and synced, so a full disk or a crash while
    writing leaves the old set whole. Files are made world-readable: the forecaster container runs as
    another user than the deploy runner.
    """
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in files.items():
            if text is None:
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o644)  # mkstemp's 0600 would hide it from the forecaster's user
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            staged.append((tmp, directory / name))
        for tmp, dest in staged:
            os.replace(tmp, dest)
        for name, text in files.items():
            if text is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / name)
        _fsync_dir(directory)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_dir(live_dir: Path) -> Path:
    return live_dir.with_name(live_dir.name + ".previous")


def backup_live_set(live_dir: Path) -> Path:
    """Copy the whole live set to <live_dir>.previous/ (what a manual restore would copy back)."""
    current = {
        f"{h}.json": (live_dir / f"{h}.json").read_text(encoding="utf-8")
        if (live_dir / f"{h}.json").exists()
        else None
        for h in HORIZONS
    }
    target = backup_dir(live_dir)
    install_files(target, current)
    return target


def restore(live_dir: Path, changes: Sequence[Change]) -> None:
    install_files(live_dir, {f"{c.horizon}.json": c.old_text for c in changes})


# --- health ---------------------------------------------------------------------------------------


def fetch_health(url: str, timeout: float) -> dict[str, Any] | str:
    """The endpoint's JSON document (also from a 503), or a one-line reason it could not be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({reason})"
    try:
        doc = json.loads(body)
    except ValueError:
        return "answered, but not with JSON (is it a chronops forecaster?)"
    return doc if isinstance(doc, dict) else "answered with JSON that is not an object"


def health_problems(docs: Mapping[str, dict[str, Any] | str], expected: Mapping[str, str]) -> list[str]:
    """Why the endpoints' documents do not (yet) show every expected {horizon: config_hash}. Pure."""
    problems: list[str] = []
    served: set[str] = set()
    for url, doc in docs.items():
        if isinstance(doc, str):
            problems.append(f"{url}: {doc}")
            continue
        horizons = doc.get("horizons") or {}
        errors = doc.get("errors") or {}
        for h, want in expected.items():
            if h not in horizons and h not in errors:
                continue
            served.add(h)
            got = (horizons.get(h) or {}).get("config_hash")
            if got != want:
                why = f": {errors[h]}" if h in errors else ""
                problems.append(f"{url}: {h} serves {got or 'no config'}, expected {want}{why}")
    if all(isinstance(d, dict) for d in docs.values()):
        for h in sorted(set(expected) - served):
            problems.append(f"{h}: no forecaster reports this horizon ({', '.join(docs)})")
    return problems


def wait_for_health(
    urls: Sequence[str],
    expected: Mapping[str, str],
    *,
    timeout: float,
    poll: float,
    fetch: Fetch = fetch_health,
) -> HealthReport:
    """Poll every URL until all report the expected hashes, or `timeout` seconds pass."""
    if not urls:
        return HealthReport(False, "deploy.health_urls is empty (list the forecasters' /healthz URLs)", False)
    deadline = time.monotonic() + timeout
    unreachable = False
    while True:
        per_request = max(0.5, min(5.0, deadline - time.monotonic()))
        docs = {url: fetch(url, per_request) for url in urls}
        unreachable |= any(isinstance(d, str) and d.startswith("unreachable") for d in docs.values())
        problems = health_problems(docs, expected)
        if not problems:
            shown = ", ".join(f"{h}={v}" for h, v in sorted(expected.items()))
            return HealthReport(True, f"{len(urls)} forecaster(s) report {shown}", unreachable)
        if time.monotonic() + poll > deadline:
            return HealthReport(False, f"after {timeout:g}s: " + "; ".join(problems), unreachable)
        time.sleep(poll)


# --- the command ----------------------------------------------------------------------------------


def deploy_command(
    root: Path,
    *,
    auto_revert: bool,
    forge_kind: str | None,
    health_check: bool,
    say: Say,
    now: datetime | None = None,
) -> int:
    """`chronops deploy`. Returns 0; raises ConfigError (exit 1) or DeployFailedError (exit 5)."""
    ws = Workspace.open(root)
    live = ws.live_dir
    now = now or datetime.now(UTC)
    run_id = f"deploy-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    with file_lock(live.with_name(live.name + ".deploy")):  # one deploy at a time on this host
        candidates, problems = validate_configs(ws)
        if problems:
            for h, problem in problems.items():
                _record(ws, run_id, now, h, "deploy_refused", None, None, None, problem, downtime=False)
            first = next(iter(problems.values()))
            more = f" (and {len(problems) - 1} more config(s) with problems)" if len(problems) > 1 else ""
            raise ConfigError(f"deploy refused, nothing installed: {first}{more}")
        if not candidates:
            raise ChronopsError(f"{ws.configs_dir}: no horizon configs to deploy (run `chronops init`)")
        pending = read_journal(live)
        changes = plan_changes(candidates, live, pending)
        if pending is not None:
            say(f"a previous deploy was interrupted after installing; checking {', '.join(pending)} again")
        if not changes:
            clear_journal(live)
            say(f"nothing to deploy: {live} already matches {ws.configs_dir}")
            return 0
        for c in changes:
            say(
                f"{c.horizon}: {c.old_hash or 'no live config'} → {c.new.config_hash} (v{c.new.config.version})"
            )
        # After an interrupted deploy the backup already holds the set from before it: keep it.
        saved = backup_live_set(live) if pending is None else backup_dir(live)
        write_journal(live, run_id, changes)
        install_files(live, {f"{c.horizon}.json": c.new.text for c in changes})
        crash_point("deploy:installed")
        say(f"installed {len(changes)} config(s) into {live} (previous set saved in {saved})")
        if not health_check:
            clear_journal(live)
            _record_all(ws, run_id, now, changes, "deployed", "health check skipped (--no-health-check)")
            say("health check skipped (--no-health-check)")
            return 0
        settings = ws.settings.deploy
        say(f"waiting up to {settings.health_timeout_seconds:g}s for {', '.join(settings.health_urls)}")
        report = wait_for_health(
            settings.health_urls,
            {c.horizon: c.new.config_hash for c in changes},
            timeout=settings.health_timeout_seconds,
            poll=settings.health_poll_seconds,
        )
        if report.ok:
            clear_journal(live)
            _record_all(ws, run_id, now, changes, "deployed", report.detail, downtime=report.unreachable)
            _alert_success(ws, changes, report, now)
            say(f"deployed: {report.detail}")
            return 0
        restore(live, changes)
        clear_journal(live)
        say(f"health check failed: {report.detail}")
        say(f"restored the previous configs in {live}")
        reverts = _auto_revert(ws, changes, report, forge_kind, say) if auto_revert else {}
    _record_failure(ws, run_id, now, changes, report, reverts)
    _alert_failure(ws, changes, report, reverts, now)
    summary = "; ".join(f"{h}: {v}" for h, v in reverts.items())
    raise DeployFailedError(
        f"deploy failed, previous configs restored in {live}: {_short(report.detail, 300)}"
        + (f" [auto-revert: {summary}]" if reverts else " (revert the merge, or run `chronops rollback`)")
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _auto_revert(
    ws: Workspace, changes: Sequence[Change], report: HealthReport, forge_kind: str | None, say: Say
) -> dict[str, str]:
    """Open and merge a revert pull request per changed horizon. {horizon: outcome}; never raises."""
    from bot.commands.run import make_forge

    try:
        forge = make_forge(ws, forge_kind)
    except ChronopsError as exc:
        say(f"auto-revert impossible: {exc}")
        return {c.horizon: f"not reverted ({exc})" for c in changes}
    outcomes = {}
    reason = f"deploy failed: {_short(report.detail, 400)}"
    for c in changes:
        try:
            pull = forge.rollback(c.horizon, to=None, reason=reason, merge=True)
        except ChronopsError as exc:
            text = str(exc)
            # GitHubForge merged, but could not dispatch deploy.yml: the live dir is already restored
            outcomes[c.horizon] = (
                f"revert {text}" if text.startswith("merged #") else f"not reverted ({text})"
            )
        else:
            state = "merged" if pull.state == "merged" else "opened"
            outcomes[c.horizon] = f"revert #{pull.number} {state}"
        say(f"{c.horizon}: {outcomes[c.horizon]}")
    return outcomes


def _record(
    ws: Workspace,
    run_id: str,
    now: datetime,
    horizon: str,
    status: str,
    old_hash: str | None,
    new_hash: str | None,
    pull_request: str | None,
    notes: str,
    *,
    downtime: bool,
    metrics_status: str | None = None,
) -> None:
    record_optimization(
        ws.history_path,
        HistoryRecord(
            run_id=run_id, horizon=horizon, optimization_date=now, triggered_by="deploy",
            performance_degradation_pct=None, drift_severity="NONE", days_since_last=None,
            # `success` marks a completed optimization (the time trigger counts from it); a deploy
            # is not one, whatever its outcome: the status says how it went.
            success=False, status=status, old_config_hash=old_hash, new_config_hash=new_hash,
            pull_request=pull_request, notes=_short(notes, 500),
        ),
    )  # fmt: skip
    try:
        from bot.flow.records import record_deployment
    except ImportError:  # pragma: no cover - the metrics store is optional
        return
    record_deployment(
        ws, horizon=horizon, status=metrics_status or status.removeprefix("deploy_"), downtime=downtime,
        now=now, config_hash=new_hash, pull_request=pull_request,
        error=None if status == "deployed" else _short(notes, 500), run_id=run_id,
    )  # fmt: skip


def _record_all(
    ws: Workspace, run_id: str, now: datetime, changes: Sequence[Change], status: str, notes: str,
    *, downtime: bool = False,
) -> None:  # fmt: skip
    for c in changes:
        _record(
            ws, run_id, now, c.horizon, status, c.old_hash, c.new.config_hash,
            c.new.config.provenance.pull_request, notes, downtime=downtime,
        )  # fmt: skip


def _record_failure(
    ws: Workspace,
    run_id: str,
    now: datetime,
    changes: Sequence[Change],
    report: HealthReport,
    reverts: Mapping[str, str],
) -> None:
    for c in changes:
        outcome = reverts.get(c.horizon, "")
        notes = report.detail + (f"; {outcome}" if outcome else "")
        _record(
            ws, run_id, now, c.horizon, "deploy_failed", c.old_hash, c.new.config_hash,
            c.new.config.provenance.pull_request, notes, downtime=report.unreachable,
            metrics_status="rolled_back" if "merged" in outcome else "failed",
        )  # fmt: skip


def _commit(ws: Workspace) -> str:
    try:
        from bot.adapters.git import GitRepo

        return GitRepo.open(ws.root).git("rev-parse", "--short=12", "HEAD")
    except Exception:  # the commit is informational; a workspace need not be a clone
        return "unknown"


def _changes_for_email(change: Change) -> list[dict[str, Any]]:
    old = change.old_config
    new = change.new.config
    rows = []
    for key, label in _KNOB_LABELS:
        before = getattr(old, key) if old is not None else None
        after = getattr(new, key)
        if before != after:
            rows.append({"label": label, "old": "—" if before is None else before, "new": after})
    return rows


def _notify(ws: Workspace, event: str, context: Mapping[str, Any]) -> None:
    try:
        from bot.flow.alerts import ALERT_EVENTS, notify
    except ImportError:  # pragma: no cover - alerts are optional
        return
    if event in ALERT_EVENTS:
        notify(ws, event, context)


def _alert_success(ws: Workspace, changes: Sequence[Change], report: HealthReport, now: datetime) -> None:
    commit = _commit(ws)
    for c in changes:
        _notify(ws, "deployment_successful", {
            "horizon": c.horizon, "version": c.new.config.version, "config_hash": c.new.config_hash,
            "commit": commit, "deployed_at": now, "changes": _changes_for_email(c), "health": report.detail,
        })  # fmt: skip


def _alert_failure(
    ws: Workspace, changes: Sequence[Change], report: HealthReport, reverts: Mapping[str, str], now: datetime
) -> None:
    commit = _commit(ws)
    for c in changes:
        outcome = reverts.get(c.horizon)
        _notify(ws, "rollback_executed", {
            "horizon": c.horizon, "automatic": True,
            "reason": f"deploy failed: {_short(report.detail, 400)}" + (f" ({outcome})" if outcome else ""),
            "from_version": c.new.config.version,
            "to_version": c.old_config.version if c.old_config else "none",
            "commit": commit, "executed_at": now,
        })  # fmt: skip
