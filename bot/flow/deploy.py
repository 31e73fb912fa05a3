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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.adapters.configs import read_config
from bot.adapters.store import atomic_write_text
from bot.core.allowlist import allowlist_problem
from bot.core.config import HORIZONS, HorizonConfig, config_hash, parse_config
from bot.errors import ChronopsError, ConfigError
from bot.workspace import Workspace

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Fetch = Callable[[str, float], "dict[str, Any] | str"]

KNOB_LABELS = (
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
            entry = horizons.get(h) or {}
            got = entry.get("config_hash")
            if got != want:
                why = f": {errors[h]}" if h in errors else ""
                problems.append(f"{url}: {h} serves {got or 'no config'}, expected {want}{why}")
            elif entry.get("healthy") is False:  # loaded, but its forecast failed or has not run yet
                why = entry.get("last_forecast_error") or "no forecast issued with it yet"
                problems.append(f"{url}: {h} serves {want} but is unhealthy: {why}")
    if all(isinstance(d, dict) for d in docs.values()):
        for h in sorted(set(expected) - served):
            problems.append(f"{h}: no forecaster reports this horizon ({', '.join(docs)})")
    return problems


def revision_mismatches(docs: Mapping[str, dict[str, Any] | str], mine: Mapping[str, str]) -> list[str]:
    """Forecasters that report running other chronops code than this deploy (pure). A revision is
    compared when both sides know theirs, else the package version."""
    found = []
    for url, doc in docs.items():
        theirs = doc.get("chronops") if isinstance(doc, dict) else None
        if not isinstance(theirs, dict):
            continue
        known = "unknown" not in (theirs.get("revision", "unknown"), mine["revision"])
        key = "revision" if known else "version"
        if theirs.get(key) != mine[key]:
            found.append(f"{url} runs chronops {key} {theirs.get(key)}, this deploy is {mine[key]}")
    return found


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


