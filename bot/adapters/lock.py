"""The workspace lock: one run at a time per workspace.

`data/.chronops.lock` holds JSON {pid, host, since, command}. It is taken with O_CREAT|O_EXCL, so
exactly one process wins; a lock whose process is gone (same host, PID not alive) is stale and is
recovered automatically; a lock held by a live process makes the second run wait up to `timeout`
seconds and then exit with "locked by PID on HOST since TIME". `chronops unlock` removes it by hand
(for a lock left by a dead process on another host).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bot.errors import LockedError
from bot.secrets import redact

LOCK_NAME = ".chronops.lock"


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_NAME


def read_lock(path: Path) -> dict[str, object] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": -1, "host": "?", "since": "?", "command": "unreadable lock file"}
    return doc if isinstance(doc, dict) else None


def pid_alive(pid: int) -> bool:
    """A process with this PID exists on this host (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(doc: dict[str, object]) -> bool:
    """Held by a process on this host that no longer exists."""
    pid = doc.get("pid")
    return doc.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)


def describe(doc: dict[str, object]) -> str:
    return f"locked by PID {doc.get('pid')} on {doc.get('host')} since {doc.get('since')} ({doc.get('command')})"


def _try_create(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    doc = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": redact(" ".join(["chronops", *sys.argv[1:]]))[:200],
    }
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(doc))
        fh.flush()
        os.fsync(fh.fileno())
    return True


_HELD: set[Path] = set()


@contextlib.contextmanager
def workspace_lock(data_dir: Path, *, timeout: float = 0.0, poll: float = 0.5) -> Iterator[None]:
    """Hold the workspace lock (re-entrant within one process: the demo runs commands that lock too)."""
    path = lock_path(data_dir).resolve()
    if path in _HELD:
        yield
        return
    deadline = time.monotonic() + timeout
    while not _try_create(path):
        doc = read_lock(path)
        if doc is None:
            continue  # released between our attempt and the read
        if is_stale(doc):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if time.monotonic() >= deadline:
            raise LockedError(f"{data_dir}: {describe(doc)}; wait, or run `chronops unlock` if that process is gone")
        time.sleep(poll)
    _HELD.add(path)
    try:
        yield
    finally:
        _HELD.discard(path)
        doc = read_lock(path)
        if doc is not None and doc.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def unlock(data_dir: Path) -> dict[str, object] | None:
    """Remove the lock; returns what it said (None when there was none)."""
    path = lock_path(data_dir)
    doc = read_lock(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return doc
