"""Progress bars on stderr for long work (search, validation): one bar per stage, shown on a terminal
(or with CHRONOPS_PROGRESS=1), silent in logs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _progress_factory(progress: Progress) -> Callable[[str, int], Callable[[int, int], None]]:
    def make(label: str, _total: int) -> Callable[[int, int], None]:
        task = progress.add_task(label, total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return tick

    return make


@contextmanager
def progress_bars(console: Console, enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int, int], None]] | None]:
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False, disable=not console.is_terminal and os.environ.get("CHRONOPS_PROGRESS") != "1",
    )  # fmt: skip
    with progress:
        yield _progress_factory(progress)
