"""A bad-input sweep: malformed series, configs, settings, parquet stores and environment.

For each input, every command that reads it must answer with ONE line on stderr, starting with
`error: `, naming the file (or variable) and the problem; exit non-zero; show no traceback; and leave
every existing file in the workspace byte-identical (the lock file aside).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TINY_SEARCH_SETTINGS, CliResult, assert_one_line_error, run_cli, tiny_workspace

GARBAGE = bytes(range(256)) * 8 + b"\x00PAR1 not really"
PLAN = ("run", "--horizon", "7d", "--dry-run", "plan")
CHECK = ("check", "--all")
STATUS = ("status",)
HISTORY = ("history",)
VALIDATE = ("config", "validate", "--strict")
DASHBOARD = ("dashboard", "--out", "{site}")
VALIDATE_RUN = ("validate", "--run", "{run_id}")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, tiny_t5: Path) -> Path:
    """A workspace after one dry run: series, history, metrics, cache, a forecast log and a run dir."""
    ws = tiny_workspace(tmp_path_factory.mktemp("bad-inputs") / "ws", tiny_t5)
    first = run_cli(*PLAN, "--force", "-w", str(ws), timeout=300)
    assert first.code == 0, first.stderr
    return ws


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(GARBAGE)


def write(rel: str, content: bytes | str | Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        path = ws / rel
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return apply


def series_frame(**columns: object) -> bytes:
    return parquet_bytes(pd.DataFrame(columns))


DATES = pd.bdate_range("2020-01-01", periods=400)
SERIES = "data/series.parquet"
HIST = "data/optimization_history.parquet"
METRICS = "data/metrics.parquet"
CACHE = "data/backtest_cache.parquet"
CONFIG = "configs/7d.json"
TOML = "chronops.toml"


def config_with(**changes: object) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        import json

        doc = json.loads(path.read_text())
        doc.update(changes)
        path.write_text(json.dumps(doc))

    return apply


def directory_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("a directory where a file should be\n")


@dataclass
class Bad:
    name: str
    apply: Callable[[Path], None]
    commands: tuple[tuple[str, ...], ...]
    needles: tuple[str, ...]
    env: dict[str, str] | None = None


# fmt: off
BAD = [
    # the series store
    Bad("series-truncated", write(SERIES, truncate), (PLAN, CHECK), ("series.parquet",)),
    Bad("series-garbage", write(SERIES, GARBAGE), (PLAN, CHECK), ("series.parquet", "parquet")),
    Bad("series-empty-file", write(SERIES, b""), (PLAN, CHECK), ("series.parquet",)),
    Bad("series-wrong-schema", write(SERIES, series_frame(day=DATES, price=np.ones(400))), (PLAN, CHECK),
        ("series.parquet", "column")),
    Bad("series-wrong-types", write(SERIES, series_frame(date=DATES, value=["abc"] * 400)), (PLAN, CHECK),
        ("series.parquet", "value")),
    Bad("series-future-dates", write(SERIES, series_frame(date=pd.bdate_range("2101-01-03", periods=400), value=np.linspace(900, 950, 400))),
        (PLAN,), ("series.parquet", "future")),
    Bad("series-huge-values", write(SERIES, series_frame(date=DATES, value=np.full(400, 1e300))), (PLAN, CHECK),
        ("series.parquet", "implausibly large")),
    Bad("series-infinite", write(SERIES, series_frame(date=DATES, value=np.full(400, np.inf))), (PLAN,),
        ("series.parquet", "not a finite number")),
    Bad("series-no-rows", write(SERIES, series_frame(date=DATES[:0], value=np.ones(0))), (PLAN, CHECK),
        ("series.parquet",)),
    Bad("series-is-a-directory", write(SERIES, directory_instead), (PLAN, CHECK), ("series.parquet",)),
    # a horizon config
    Bad("config-json-list", write(CONFIG, "[1, 2, 3]\n"), (VALIDATE, PLAN, CHECK), ("7d.json",)),
    Bad("config-unknown-key", write(CONFIG, config_with(contxt_length=90)), (VALIDATE, PLAN), ("7d.json", "contxt_length")),
    Bad("config-wrong-type", write(CONFIG, config_with(context_length="long")), (VALIDATE, PLAN), ("7d.json", "context_length")),
    Bad("config-nan", write(CONFIG, config_with(temperature=float("nan"))), (VALIDATE, PLAN), ("7d.json", "temperature")),
    Bad("config-binary", write(CONFIG, GARBAGE), (VALIDATE, PLAN), ("7d.json", "UTF-8")),
    Bad("config-truncated", write(CONFIG, truncate), (VALIDATE, PLAN), ("7d.json", "JSON")),
    # settings
    Bad("settings-unknown-key", write(TOML, TINY_SEARCH_SETTINGS + "\n[data]\nlok_timeout_seconds = 3\n"), (PLAN, STATUS, HISTORY, CHECK),
        ("chronops.toml", "lok_timeout_seconds")),
    Bad("settings-wrong-type", write(TOML, TINY_SEARCH_SETTINGS.replace("tuning_origins = 2", 'tuning_origins = "two"')), (PLAN, STATUS),
        ("chronops.toml", "tuning_origins")),
    Bad("settings-invalid-toml", write(TOML, "[search\nnum_samples = [10\n"), (PLAN, STATUS), ("chronops.toml", "TOML")),
    Bad("settings-binary", write(TOML, GARBAGE), (PLAN, STATUS), ("chronops.toml",)),
    # the bot's own parquet stores
    Bad("history-truncated", write(HIST, truncate), (PLAN, STATUS, HISTORY, DASHBOARD), ("optimization_history.parquet",)),
    Bad("history-wrong-schema", write(HIST, series_frame(a=[1, 2])), (PLAN, STATUS, HISTORY, CHECK),
        ("optimization_history.parquet", "column")),
    Bad("history-garbage", write(HIST, GARBAGE), (PLAN, HISTORY), ("optimization_history.parquet",)),
    Bad("metrics-garbage", write(METRICS, GARBAGE), (PLAN, STATUS, DASHBOARD), ("metrics.parquet",)),
    Bad("metrics-wrong-schema", write(METRICS, series_frame(a=[1, 2])), (PLAN, STATUS, DASHBOARD), ("metrics.parquet",)),
    Bad("forecast-log-garbage", write("data/forecasts.parquet", GARBAGE), (PLAN, CHECK), ("forecasts.parquet",)),
    Bad("forecast-log-wrong-schema", write("data/forecasts.parquet", series_frame(a=[1, 2])), (PLAN, CHECK),
        ("forecasts.parquet",)),
    Bad("cache-truncated", write(CACHE, truncate), (PLAN, CHECK), ("backtest_cache.parquet",)),
    Bad("cache-wrong-schema", write(CACHE, series_frame(a=[1, 2])), (PLAN, CHECK), ("backtest_cache.parquet",)),
    Bad("run-results-garbage", lambda ws: garbage(next((ws / "data" / "runs").glob("*/7d/results.parquet"))),
        (VALIDATE_RUN,), ("results.parquet",)),
    Bad("run-meta-garbage", lambda ws: garbage(next((ws / "data" / "runs").glob("*/7d/results_meta.json"))),
        (VALIDATE_RUN,), ("results_meta.json",)),
    # the environment
    Bad("env-log-level", lambda ws: None, (STATUS, PLAN), ("CHRONOPS_LOG",), env={"CHRONOPS_LOG": "garbage"}),
    Bad("env-torch-threads", lambda ws: None, (PLAN,), ("CHRONOPS_TORCH_THREADS",), env={"CHRONOPS_TORCH_THREADS": "abc"}),
]
# fmt: on


def run_in(ws: Path, site: Path, command: tuple[str, ...], env: dict[str, str] | None) -> CliResult:
    run_id = next((ws / "data" / "runs").iterdir()).name if (ws / "data" / "runs").is_dir() else "none"
    args = [a.format(site=site, run_id=run_id) for a in command]
    return run_cli(*args, "-w", str(ws), env=env, timeout=300)


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_input_is_one_line_and_changes_nothing(good: Path, tmp_path: Path, bad: Bad) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(good, ws)
    bad.apply(ws)
    before = snapshot(ws)
    for command in bad.commands:
        result = run_in(ws, tmp_path / "site", command, bad.env)
        assert_one_line_error(result, *bad.needles)
        assert result.code not in (0, 3), (command, result)  # a known error, not a crash
        assert snapshot(ws) == before, f"{' '.join(command)} changed the workspace"


def test_ingest_rejects_garbage_and_keeps_the_store(good: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(good, ws)
    before = snapshot(ws)
    cases = {
        "garbage.csv": GARBAGE,
        "empty.csv": b"",
        "header-only.csv": b"date,value\n",
        "wrong-columns.csv": b"day,price\n2020-01-01,1\n",
        "letters.csv": b"date,value\n2020-01-01,abc\n2020-01-02,def\n",
        "garbage.parquet": GARBAGE,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        result = run_cli("ingest", "--source", "csv", str(path), "-w", str(ws))
        assert_one_line_error(result, name)
        assert snapshot(ws) == before, name


def test_unreadable_file(good: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop reads (covered by series-is-a-directory)")
    ws = tmp_path / "ws"
    shutil.copytree(good, ws)
    (ws / SERIES).chmod(0)
    try:
        result = run_cli(*PLAN, "-w", str(ws))
        assert_one_line_error(result, "series.parquet")
    finally:
        (ws / SERIES).chmod(0o644)
