"""Production forecasts: `chronops forecast` issues one forecast per horizon into the forecast log, and
`chronops serve` is the always-on forecaster that reloads live configs without restarting.

A forecast is issued per (issue date, horizon, config hash): the next `prediction_length` business days
after the last observation known on the issue date, point = median, 95% interval, appended to
data/forecasts.parquet. Issuing again on the same day with the same config appends nothing.

The service keeps one `Slot` (parsed config + loaded model) per horizon. A watcher thread re-reads
`<live_dir>/<h>.json` every `deploy.poll_seconds`; when the bytes change it parses the config and loads
its model *outside* the lock, then swaps the slot reference under the lock. Requests only read slot
references under the lock, so a reload never fails a request in flight, and a config that does not
parse or load leaves the old slot serving while /healthz reports the error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot import chronops_version
from bot.adapters.chronos import LoadedModel, load_model
from bot.adapters.configs import read_config
from bot.core.config import HorizonConfig, config_hash
from bot.core.series import SeriesReport
from bot.errors import ChronopsError
from bot.serve.issue import Issue, issue_forecast, model_is_random, santiago_today, utcnow
from bot.workspace import Workspace

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Clock = Callable[[], datetime]
# Refreshes data/series.parquet (`bot.flow.ingest.ingest_series`, passed in by the serve command).
Ingest = Callable[..., SeriesReport]


# --- the service ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """What serves one horizon: a parsed live config and its loaded model."""

    config: HorizonConfig
    config_hash: str
    model: LoadedModel
    digest: str  # sha256 of the live file's bytes
    loaded_at: datetime
    random_weights: bool

    def to_json(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "config_hash": self.config_hash,
            "version": cfg.version,
            "model_id": cfg.model_id,
            "model_family": cfg.model_family.value,
            "context_length": cfg.context_length,
            "prediction_length": cfg.prediction_length,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
            "random_weights": self.random_weights,
        }


@dataclass
class _State:
    slots: dict[str, Slot] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # config/model load problems per horizon
    forecast_errors: dict[str, str] = field(default_factory=dict)
    latest: dict[str, Issue] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)


class ForecasterService:
    """The production forecaster: reloads live configs on change and forecasts once per interval."""

    def __init__(
        self,
        ws: Workspace,
        horizons: list[str],
        live_dir: Path,
        *,
        poll_seconds: float | None = None,
        interval_seconds: float | None = None,
        say: Say | None = None,
        clock: Clock = utcnow,
        ingest: Ingest | None = None,
    ) -> None:
        self.ingest = ingest
        self.ws = ws
        self.horizons = horizons
        self.live_dir = live_dir
        self.poll_seconds = poll_seconds or ws.settings.deploy.poll_seconds
        self.interval_seconds = interval_seconds or ws.settings.deploy.forecast_interval_seconds
        self.say = say or (lambda line: log.info("%s", line))
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self._state = _State()
        self._tried: dict[
            str, str
        ] = {}  # digest of the last bytes tried per horizon (broken ones stay broken)
        self._polled = threading.Event()
        self.stop = threading.Event()
        self._wake = threading.Event()

    # reloading -----------------------------------------------------------------------------------
    def _load(self, horizon: str, path: Path, digest: str) -> Slot:
        cfg = read_config(path)
        model = load_model(cfg.model_id, expected_family=cfg.model_family, workspace=self.ws.root)
        random = model_is_random(self.ws, cfg.model_id)
        return Slot(cfg, config_hash(cfg), model, digest, self.clock(), random)

    def poll(self) -> list[str]:
        """Look at every live config once; load and swap the changed ones. Returns the reloaded horizons."""
        reloaded = []
        for h in self.horizons:
            path = self.live_dir / f"{h}.json"
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                self._tried.pop(h, None)
                self._set_error(h, f"{path}: not found (deploy a config with `chronops deploy`)")
                continue
            except OSError as exc:
                self._set_error(h, f"{path}: cannot read ({exc.strerror})")
                continue
            digest = hashlib.sha256(data).hexdigest()
            with self._lock:
                current = self._state.slots.get(h)
            if current is not None and current.digest == digest:
                self._tried.pop(h, None)  # back to the serving bytes: a redeploy of a failed file retries
                self._set_error(h, None)
                continue
            if self._tried.get(h) == digest:
                continue  # the same broken bytes: already reported, wait for a change
            self._tried[h] = digest
            try:
                slot = self._load(h, path, digest)
            except Exception as exc:  # a broken config must never stop the service: keep the old one
                message = str(exc) if isinstance(exc, ChronopsError) else f"{type(exc).__name__}: {exc}"
                self._set_error(h, message)
                kept = f"; still serving {current.config_hash}" if current else ""
                self.say(f"{h}: cannot load the live config: {message}{kept}")
                continue
            with self._lock:
                self._state.slots[h] = slot
                self._state.errors.pop(h, None)
                self._state.pending.add(h)
            was = f" (was {current.config_hash})" if current else ""
            self.say(f"{h}: serving config {slot.config_hash} v{slot.config.version}{was}")
            reloaded.append(h)
        self._polled.set()
        return reloaded

    def _set_error(self, horizon: str, message: str | None) -> None:
        with self._lock:
            if message is None:
                self._state.errors.pop(horizon, None)
            else:
                self._state.errors[horizon] = message

    # forecasting ---------------------------------------------------------------------------------
    def refresh_series(self) -> None:
        """Refresh data/series.parquet from the configured source (deploy.series_source), if any."""
        settings = self.ws.settings.deploy
        if not settings.series_source or self.ingest is None:
            return
        try:
            path = self.ws.path(settings.series_path) if settings.series_path else None
            report = self.ingest(
                self.ws.root, source=settings.series_source, path=path, url=settings.series_url or None
            )
        except ChronopsError as exc:
            with self._lock:
                self._state.series["refresh_error"] = str(exc)
            self.say(f"series refresh failed (forecasting from the stored series): {exc}")
            return
        with self._lock:
            self._state.series.update(refreshed_at=self.clock().isoformat(timespec="seconds"))
            self._state.series.pop("refresh_error", None)
        self.say(f"series refreshed: {report.rows} observations up to {report.last}")

    def produce(self, horizons: list[str] | None = None) -> list[Issue]:
        """Issue today's forecast for each loaded horizon (idempotent per issue date and config)."""
        from bot.adapters.sources import load_series

        with self._lock:
            slots = {h: s for h, s in self._state.slots.items() if horizons is None or h in horizons}
        if not slots:
            return []
        now = self.clock()
        issue_date = santiago_today(now)
        try:
            series = load_series(self.ws, issue_date)
        except ChronopsError as exc:
            with self._lock:
                for h in slots:
                    self._state.forecast_errors[h] = str(exc)
            self.say(f"cannot forecast: {exc}")
            return []
        with self._lock:
            self._state.series.update(last_observation=str(series["date"].iloc[-1].date()), rows=len(series))
        issues = []
        for h, slot in slots.items():
            try:
                issue = issue_forecast(
                    self.ws, slot.config, series=series, issue_date=issue_date, now=now, model=slot.model
                )
            except Exception as exc:  # one horizon's failure never stops the others or the service
                message = str(exc) if isinstance(exc, ChronopsError) else f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._state.forecast_errors[h] = message
                self.say(f"{h}: forecast failed: {message}")
                continue
            with self._lock:
                self._state.latest[h] = issue
                self._state.forecast_errors.pop(h, None)
            issues.append(issue)
            self.say(issue.describe())
        return issues

    # HTTP documents ----------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, /healthz document): 200 while any horizon serves, else 503."""
        with self._lock:
            slots = dict(self._state.slots)
            errors = dict(self._state.errors)
            forecast_errors = dict(self._state.forecast_errors)
            latest_issues = dict(self._state.latest)
            latest = {h: i.issue_date.isoformat() for h, i in latest_issues.items()}
            series = dict(self._state.series)
        forecasted = {h: i.config_hash for h, i in latest_issues.items()}
        horizons = {}
        for h, slot in slots.items():
            # Healthy: the config it serves has issued a forecast, and the last attempt did not fail.
            healthy = forecasted.get(h) == slot.config_hash and h not in forecast_errors
            horizons[h] = {
                **slot.to_json(), "last_issue_date": latest.get(h), "healthy": healthy,
                "last_forecast_error": forecast_errors.get(h),
            }  # fmt: skip
        if not slots:
            status = "starting" if not self._polled.is_set() else "down"
        elif errors or forecast_errors or len(slots) < len(self.horizons):
            status = "degraded"
        else:
            status = "ok"
        doc: dict[str, Any] = {
            "status": status,
            "horizons": horizons,
            "errors": errors,
            "forecast_errors": forecast_errors,
            "live_dir": str(self.live_dir),
            "series": series,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "chronops": chronops_version(),
        }
        return (200 if slots else 503), doc

    def forecast_doc(self, horizon: str) -> tuple[int, dict[str, Any]]:
        if horizon not in self.horizons:
            return 404, {
                "error": f"unknown horizon '{horizon}' (this service serves {', '.join(self.horizons)})"
            }
        with self._lock:
            issue = self._state.latest.get(horizon)
            slot = self._state.slots.get(horizon)
        if issue is None:
            why = "no config loaded yet" if slot is None else "no forecast issued yet"
            return 503, {"error": f"{horizon}: {why}", "horizon": horizon}
        doc = issue.to_json()
        doc["live_config_hash"] = slot.config_hash if slot else None
        return 200, doc

    # loops -----------------------------------------------------------------------------------------
    def _watch(self) -> None:
        while True:
            try:
                if self.poll():
                    self._wake.set()
            except Exception:  # pragma: no cover - poll() already catches per horizon
                log.exception("live config poll failed")
            if self.stop.wait(self.poll_seconds):
                return

    def _forecast_loop(self) -> None:
        self._polled.wait()
        next_daily = time.monotonic()
        while not self.stop.is_set():
            self._wake.wait(timeout=max(0.0, next_daily - time.monotonic()))
            self._wake.clear()
            if self.stop.is_set():
                return
            with self._lock:
                pending = sorted(self._state.pending)
                self._state.pending.clear()
            try:
                if time.monotonic() >= next_daily:
                    next_daily = time.monotonic() + self.interval_seconds
                    self.refresh_series()
                    self.produce()
                elif pending:
                    self.produce(pending)
            except Exception:  # pragma: no cover - produce() already catches per horizon
                log.exception("forecast cycle failed")

    def run_once(self) -> list[Issue]:
        """Load the live configs, refresh the series, forecast once (no HTTP)."""
        self.poll()
        self.refresh_series()
        return self.produce()

    def serve(self, host: str, port: int) -> None:
        """Serve HTTP until SIGTERM/SIGINT (or `stop` is set), then shut down cleanly."""
        try:
            server = ThreadingHTTPServer((host, port), _handler_for(self))
        except OSError as exc:
            raise ChronopsError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another forecaster running? "
                "(choose another --port)"
            ) from None
        server.daemon_threads = True
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda _signum, _frame: self.stop.set())
        threads = [
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
            ),
            threading.Thread(target=self._watch, name="watch", daemon=True),
            threading.Thread(target=self._forecast_loop, name="forecast", daemon=True),
        ]
        for t in threads:
            t.start()
        self.say(
            f"serving {', '.join(self.horizons)} on http://{host}:{server.server_port} "
            f"(live configs: {self.live_dir}; GET /healthz, GET /forecast/<horizon>)"
        )
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            self.stop.set()
            self._wake.set()
            server.shutdown()
            server.server_close()
            for t in threads[1:]:
                t.join(timeout=30)
            self.say("stopped")


def _handler_for(service: ForecasterService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "chronops-forecaster"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            if path == "/healthz":
                code, doc = service.health()
            elif path.startswith("/forecast/"):
                code, doc = service.forecast_doc(path.removeprefix("/forecast/"))
            elif path == "":
                code, doc = 200, {"endpoints": ["/healthz", *(f"/forecast/{h}" for h in service.horizons)]}
            else:
                code, doc = 404, {"error": f"no such endpoint {path} (try /healthz or /forecast/<horizon>)"}
            body = (json.dumps(doc, indent=2, default=str) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


