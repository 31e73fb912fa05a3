"""Where series come from: local `date,value` files and the mindicador.cl API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_none,
    wait_random,
)

from bot.adapters.store import read_table
from bot.errors import DataError
from bot.workspace import Workspace

MINDICADOR_URL = "https://mindicador.cl/api/dolar"


def read_series_file(path: Path) -> pd.DataFrame:
    """Read a `date,value` CSV or parquet file as raw strings/numbers (validation happens in core)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a date,value CSV or parquet file")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pq.read_table(path, use_threads=False).to_pandas(use_threads=False)
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (expected a 'date,value' header and rows)")
        return pd.read_csv(path, dtype=str, skip_blank_lines=True, encoding="utf-8")
    except DataError:
        raise
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (binary file?)") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (expected a 'date,value' header and rows)") from None
    except (pd.errors.ParserError, pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse ({first})") from None


class _Retryable(Exception):
    pass


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable)


def fetch_mindicador(
    base_url: str = MINDICADOR_URL,
    *,
    start_year: int = 2003,
    end_year: int | None = None,
    timeout: float = 20.0,
    max_attempts: int = 5,
    max_seconds: float = 60.0,
    backoff: bool = True,
) -> pd.DataFrame:
    """Fetch the 'dolar' series year by year: GET {base_url}/{year} -> {"serie": [{fecha, valor}]}."""
    end = end_year or date.today().year

    @retry(
        retry=retry_if_exception(_is_retryable),
        stop=stop_after_attempt(max_attempts) | stop_after_delay(max_seconds),
        wait=(wait_exponential(multiplier=0.5, max=8.0) + wait_random(0, 0.5)) if backoff else wait_none(),
        reraise=True,
    )
    def get_year(year: int) -> list[dict[str, object]]:
        url = f"{base_url.rstrip('/')}/{year}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                raise _Retryable(f"HTTP {exc.code}") from None
            raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise _Retryable(str(getattr(exc, "reason", exc))) from None
        except json.JSONDecodeError:
            raise DataError(f"{url}: response is not JSON") from None
        serie = payload.get("serie") if isinstance(payload, dict) else None
        if not isinstance(serie, list):
            raise DataError(f"{url}: response has no 'serie' list (is this the mindicador API?)")
        return serie

    rows: list[tuple[str, object]] = []
    for year in range(start_year, end + 1):
        try:
            serie = get_year(year)
        except _Retryable as exc:
            raise DataError(f"mindicador {year}: gave up after retries ({exc})") from None
        for item in serie:
            if isinstance(item, dict):
                rows.append((str(item.get("fecha", ""))[:10], item.get("valor")))
    if not rows:
        raise DataError(f"{base_url}: no observations returned for {start_year}-{end}")
    return pd.DataFrame(rows, columns=["date", "value"])


# The observado dated D is published the evening before; a weekend and a holiday ahead is still real.
FUTURE_SLACK = timedelta(days=5)


def load_series(ws: Workspace, as_of: date | None = None) -> pd.DataFrame:
    if not ws.series_path.exists():
        raise DataError(
            f"{ws.series_path}: no series yet (run `chronops ingest --source csv PATH` or `--source mindicador`)"
        )
    from bot.core.series import validate_series

    # the store is re-checked on every read: a file edited or damaged since ingest fails with one line
    series, _ = validate_series(
        read_table(ws.series_path, columns=["date", "value"]), source=str(ws.series_path),
        max_gap_days=ws.settings.data.max_gap_days,
    )  # fmt: skip
    last = series["date"].iloc[-1].date()
    if last > datetime.now(UTC).date() + FUTURE_SLACK:
        raise DataError(
            f"{ws.series_path}: last observation is dated {last}, in the future (today is {datetime.now(UTC).date()}); "
            "re-ingest the series"
        )
    if as_of is not None:
        from bot.core.series import known_as_of

        series = known_as_of(series, as_of, ws.settings.data.known_days_before)
    if len(series) < 10:
        raise DataError(f"{ws.series_path}: only {len(series)} observations; need more history to forecast")
    return series.sort_values("date", ignore_index=True)
