"""`chronops unlock`: remove a workspace lock left by a run that died on another host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.adapters.lock import describe, unlock
from bot.workspace import Workspace


def unlock_command(root: Path, *, say: Callable[[str], None]) -> None:
    ws = Workspace.open(root)
    doc = unlock(ws.path("data"))
    say(f"removed lock: {describe(doc)}" if doc else "no lock was held")
