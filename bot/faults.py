"""Fault injection for crash-safety tests: named points where a test can kill the process.

`crash_point(name)` does nothing unless the environment variable CHRONOPS_CRASH_AT names it. Then
the process is killed with SIGKILL on the spot: no `finally`, no atexit, no flush, exactly what a
power cut, an OOM kill or a cancelled CI job does. `CHRONOPS_CRASH_AT=name:N` kills at the Nth hit
of that point instead of the first. With CHRONOPS_CRASH_MODE=raise the point raises RuntimeError
instead (the unexpected-exception path: exit 3 and a crash log).

The points (see docs/reliability.md for what each one proves):
  engine:origin            each (call group, origin) the backtest engine evaluates
  write:<file name>        every atomic write, after the temp file is synced, before os.replace
  forge:pushed             local forge: branch pushed, pull-request record not yet written
  forge:merged             local forge: merge commit pushed to the base, record still says open
  forge:rollback-pushed    local forge: revert branch pushed, revert record not yet written
  github:pushed            GitHub forge: branch pushed, pull request not yet opened
  github:rollback-pushed   GitHub forge: revert branch pushed, revert pull request not yet opened
  pipeline:proposed        pull request opened or updated, run not yet recorded in the history
  pipeline:recorded        history appended, metrics not yet
  rollback:done            rollback made on the forge, not yet recorded in the history
  deploy:installed         configs installed into the live dir, health not yet checked
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from bot.secrets import redact

CRASH_ENV = "CHRONOPS_CRASH_AT"
MODE_ENV = "CHRONOPS_CRASH_MODE"
_HITS: dict[str, int] = {}


def parse_target(value: str) -> tuple[str, int]:
    """`name` or `name:N` -> (name, N); names may contain ':' themselves (`write:pulls.json:2`)."""
    match = re.fullmatch(r"(.+):(\d+)", value.strip())
    if match:
        return match.group(1), max(int(match.group(2)), 1)
    return value.strip(), 1


def crash_point(name: str) -> None:
    """Kill this process here when CHRONOPS_CRASH_AT names this point (a no-op otherwise)."""
    value = os.environ.get(CRASH_ENV)
    if not value:
        return
    target, nth = parse_target(value)
    if target != name:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] != nth:
        return
    if os.environ.get(MODE_ENV) == "raise":
        raise RuntimeError(f"injected fault at {name}")
    os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
def crash_log_dir() -> Path | None:
    """Where crash logs go: CHRONOPS_CRASH_DIR, else the workspace's logs/ when it exists and is
    writable (the containers mount it, so a crash log outlives the container), else the temp dir."""
    configured = os.environ.get("CHRONOPS_CRASH_DIR")
    candidate = Path(configured) if configured else Path.cwd() / "logs"
    if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK):
        return candidate
    return None


def write_crash_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="chronops-crash-", suffix=".log", dir=crash_log_dir())
    with os.fdopen(fd, "w") as fh:
        fh.write(redact(f"chronops crashed: {' '.join(sys.argv)}\n\n"))
        fh.write(redact(traceback.format_exc()))
    return Path(name)
