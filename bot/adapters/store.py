"""Files we own: atomic writes, parquet tables with locked appends, and the workspace lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bot.errors import DataError
from bot.faults import crash_point


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers see old or new, never half.

    The file gets `mode` (0644: what a plain write gets under the usual umask), not mkstemp's 0600:
    the forecaster container reads chronops.toml, configs and tables as another user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the PID in the name lets the next run tell a dead writer's leftover from a live write (bot.flow.recovery)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        crash_point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An advisory exclusive lock on `<path>.lock` (released by the kernel if the process dies)."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_table(path: Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a parquet table we own; a missing file is an empty frame, a corrupt one a DataError."""
    if not path.exists():
        return pd.DataFrame(columns=columns or [])
    try:
        # one open file: a path would be reopened for the pages, and a writer's os.replace in between
        # pairs the old footer with the new file's pages (a torn read of a file never torn on disk).
        # No reader threads: our tables are small, and Arrow's pool torn down at exit can abort the
        # process ("terminate called without an active exception", apache/arrow#34314).
        with open(path, "rb") as fh:
            frame = pq.read_table(fh, use_threads=False).to_pandas(use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (wrong schema?)")
    return frame


def check_table(path: Path, columns: list[str]) -> None:
    """Cheap check of a possibly large table: a parquet footer with these columns (absent is fine)."""
    if not path.exists():
        return
    try:
        with open(path, "rb") as fh:
            names = pq.read_schema(fh).names
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} (wrong schema?)")


def write_table(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False, nthreads=1)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def append_rows(path: Path, rows: pd.DataFrame, *, columns: list[str] | None = None) -> None:
    """Append under an exclusive lock: concurrent appenders never lose a record."""
    with file_lock(path):
        existing = read_table(path, columns=columns)
        frames = [f for f in (existing, rows) if not f.empty]
        combined = pd.concat(frames, ignore_index=True) if frames else rows
        write_table(path, combined)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
