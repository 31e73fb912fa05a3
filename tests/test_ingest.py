"""`chronops ingest`: validation, one-line errors, untouched store on rejection, mindicador client."""

from __future__ import annotations

import hashlib
import json
import threading
import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from bot.adapters.sources import fetch_mindicador
from bot.errors import DataError
from tests.conftest import REAL_SERIES, assert_one_line_error, run_cli

GOOD = "date,value\n2024-01-02,880.5\n2024-01-03,882.1\n2024-01-04,879.0\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    src = tmp_path / "good.csv"
    src.write_text(GOOD)
    result = run_cli("ingest", "--source", "csv", str(src), "-w", str(ws))
    assert result.code == 0, result.stderr
    assert (ws / "data" / "series.parquet").exists()
    return ws


def test_ingest_stores_sorted_series_with_warning(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    src = tmp_path / "unsorted.csv"
    src.write_text("date,value\n2024-01-03,882.1\n2024-01-02,880.5\n2024-02-20,900\n")
    result = run_cli("ingest", "--source", "csv", str(src), "-w", str(ws))
    assert result.code == 0, result.stderr
    assert "sorted them" in result.stderr and "gap of 48 days" in result.stderr
    frame = pd.read_parquet(ws / "data" / "series.parquet")
    assert list(frame["value"]) == [880.5, 882.1, 900.0]
    assert frame["date"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty file"),
        ("day,price\n2024-01-02,880\n", "missing column 'date'"),
        ("date,value\n2024-13-45,880\n", "row 2: unparsable date '2024-13-45'"),
        ("date,value\n2024-01-02,880\n2024-01-02,881\n", "duplicate date 2024-01-02"),
        ("date,value\n2024-01-02,880\n2024-01-03,NaN\n", "row 3: value"),
        ("date,value\n2024-01-02,880\n2024-01-03,-1\n", "not positive"),
        ("date,value\n2024-01-02,0\n", "not positive"),
        ("date,value\n", "no rows"),
    ],
)
def test_rejected_ingest_leaves_store_byte_identical(
    workspace: Path, tmp_path: Path, content: str, needle: str
) -> None:
    store = workspace / "data" / "series.parquet"
    before = digest(store)
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    result = run_cli("ingest", "--source", "csv", str(bad), "-w", str(workspace))
    assert_one_line_error(result, "bad.csv", needle)
    assert digest(store) == before
    leftovers = sorted(p.name for p in store.parent.iterdir() if not p.name.endswith(".lock"))
    assert leftovers == ["series.parquet"]  # no temp files left


def test_binary_garbage_and_missing_file(workspace: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    assert_one_line_error(
        run_cli("ingest", "--source", "csv", str(garbage), "-w", str(workspace)), "garbage.csv"
    )
    assert_one_line_error(
        run_cli("ingest", "--source", "csv", str(tmp_path / "nope.csv"), "-w", str(workspace)),
        "file not found",
    )
    assert_one_line_error(
        run_cli("ingest", "--source", "ftp", "-w", str(workspace)), "unknown --source 'ftp'"
    )


class _Mindicador(BaseHTTPRequestHandler):
    fail_first: typing.ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        year = self.path.rstrip("/").rsplit("/", 1)[-1]
        left = self.fail_first.get(year, 0)
        if left:
            self.fail_first[year] = left - 1
            self.send_response(503)
            self.end_headers()
            return
        serie = [
            {"fecha": f"{year}-01-0{d}T03:00:00.000Z", "valor": 800.0 + int(year) - 2000 + d}
            for d in (2, 3, 4)
        ]
        body = json.dumps({"version": "1.7.0", "codigo": "dolar", "serie": serie[::-1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mindicador() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mindicador)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/dolar"
    finally:
        server.shutdown()
        server.server_close()


def test_mindicador_year_by_year_with_retries(mindicador: str) -> None:
    _Mindicador.fail_first = {"2024": 2}
    frame = fetch_mindicador(mindicador, start_year=2023, end_year=2024, backoff=False)
    assert len(frame) == 6
    assert frame["date"].iloc[0] == "2023-01-04"  # API order is newest first; validation sorts


def test_mindicador_gives_up_with_one_line(mindicador: str) -> None:
    _Mindicador.fail_first = {"2024": 99}
    with pytest.raises(DataError, match="mindicador 2024: gave up after retries"):
        fetch_mindicador(mindicador, start_year=2024, end_year=2024, backoff=False, max_attempts=3)


def test_cli_ingest_mindicador(mindicador: str, tmp_path: Path) -> None:
    _Mindicador.fail_first = {}
    ws = tmp_path / "ws"
    ws.mkdir()
    result = run_cli(
        "ingest", "--source", "mindicador", "--url", mindicador, "--start-year", "2025", "-w", str(ws)
    )
    assert result.code != 0 or "stored" in result.stdout
    # start-year 2025 .. this year: every year answers with 3 rows
    frame = pd.read_parquet(ws / "data" / "series.parquet")
    assert len(frame) % 3 == 0 and len(frame) >= 3


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_SERIES.exists(), reason="real series ../shared/data/usdclp_daily.csv absent")
def test_ingest_real_series(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    result = run_cli("ingest", "--source", "csv", str(REAL_SERIES), "-w", str(ws))
    assert result.code == 0, result.stderr
    assert "stored 5916 observations 2003-01-02 → 2026-09-23" in result.stdout
