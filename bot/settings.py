"""Bot settings: one TOML file (`chronops.toml` at the workspace root), validated at the edge.

Every key has a default (the seed's values); the file only needs what differs. Unknown keys are
errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from bot.core.config import HORIZONS
from bot.core.params import ApprovalSettings, TriggerSettings
from bot.core.watch import NULL_MODELS, WatchSettings
from bot.errors import SettingsError

SETTINGS_FILE = "chronops.toml"
# A host's own settings (health URLs, forge kind...), merged over chronops.toml; never committed.
LOCAL_SETTINGS_FILE = "chronops.local.toml"


@dataclass(frozen=True)
class SearchSettings:
    context_length: dict[str, list[int]] = field(
        default_factory=lambda: {
            "7d": [90, 180, 270],
            "15d": [90, 180, 365],
            "30d": [180, 365, 540],
            "90d": [365, 540, 730],
        }
    )
    num_samples: list[int] = field(default_factory=lambda: [50, 100, 200])
    temperature: list[float] = field(default_factory=lambda: [0.8, 1.0, 1.2])
    # Origins cover the whole history (every origin with enough context), in blocks of about
    # `split_block_obs` observations alternating tuning / validation. N > 0 keeps only the newest N
    # of a set; max_history_years > 0 drops origins older than that.
    tuning_origins: int = 0
    validation_origins: int = 0
    max_history_years: float = 0.0
    split_block_obs: int = 250
    # Origins are spaced by at least the horizon's prediction length (non-overlapping windows)
    # and at least this many observations.
    min_origin_step: int = 5
    # Besides the current config, the winner and every candidate sharing its predict call (T5: its
    # num_samples siblings, free) are scored on the validation origins, plus the best
    # validate_top - 1 other candidates: cached, so a changed winner needs no cold re-validation.
    validate_top: int = 1
    time_budget_seconds: float = 600.0
    seed: int = 20260101
    strategy: str = "halving"  # halving | grid | random
    # T5 samples per random stream (stream i seeded from (seed, i): the first k draws are the same
    # whatever the total); with CHRONOPS_T5_SAMPLER=stock also per predict call, bounding memory
    sample_chunk: int = 25


@dataclass(frozen=True)
class DataSettings:
    series: str = "data/series.parquet"
    history: str = "data/optimization_history.parquet"
    metrics: str = "data/metrics.parquet"
    forecasts: str = "data/forecasts.parquet"
    cache: str = "data/backtest_cache.parquet"
    runs: str = "data/runs"
    max_gap_days: int = 7
    lock_timeout_seconds: float = 0.0  # how long a second run waits for the workspace lock
    # A value dated D is known at the end of day D - known_days_before: 1 for USD/CLP's observado
    # (published the evening before its date), 0 for a series published on its own date.
    known_days_before: int = 1


@dataclass(frozen=True)
class ForgeSettings:
    kind: str = "local"  # local | github
    automerge: bool = True
    merge_method: str = "merge"  # merge | squash | rebase (github)
    base_branch: str = "main"
    reviewers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeploySettings:
    live_dir: str = "live/configs"
    model_allowlist: list[str] = field(
        default_factory=lambda: [
            "amazon/chronos-t5-tiny",
            "amazon/chronos-t5-mini",
            "amazon/chronos-t5-small",
            "amazon/chronos-t5-base",
            "amazon/chronos-bolt-tiny",
            "amazon/chronos-bolt-mini",
            "amazon/chronos-bolt-small",
            "amazon/chronos-bolt-base",
            "amazon/chronos-2",
            "models/*",
        ]
    )
    # `chronops deploy`: the forecasters' health endpoints, polled until they report the new hashes.
    health_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8080/healthz"])
    health_timeout_seconds: float = 120.0  # a first model load (cold hub cache) is slow
    health_poll_seconds: float = 1.0
    # `chronops serve`: how often it looks for changed live configs, and how often it forecasts.
    poll_seconds: float = 0.5
    forecast_interval_seconds: float = 86400.0
    # Where `chronops serve` refreshes the series before forecasting: "" re-reads data/series.parquet
    # (kept fresh by someone else), csv re-ingests `series_path`, mindicador fetches `series_url`.
    series_source: str = ""
    series_path: str = ""
    series_url: str = ""


@dataclass(frozen=True)
class AlertSettings:
    """Email alerts over SMTP. The login comes from the environment (SMTP_USER, SMTP_PASSWORD)."""

    enabled: bool = False
    recipients: list[str] = field(default_factory=list)
    sender: str = "chronops@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | ssl | none
    timeout: float = 10.0  # seconds per SMTP operation: a dead server never stalls a run
    log: str = "data/alerts.parquet"  # every alert sent or failed


@dataclass(frozen=True)
class WatchdogSettings:
    max_days_without_run: int = 8  # a weekly schedule plus a day of slack


@dataclass(frozen=True)
class Settings:
    approval: ApprovalSettings = field(default_factory=ApprovalSettings)
    triggers: TriggerSettings = field(default_factory=TriggerSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    data: DataSettings = field(default_factory=DataSettings)
    forge: ForgeSettings = field(default_factory=ForgeSettings)
    deploy: DeploySettings = field(default_factory=DeploySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    watchdog: WatchdogSettings = field(default_factory=WatchdogSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)


_CHOICES: dict[tuple[str, str], set[str]] = {
    ("search", "strategy"): {"grid", "random", "halving"},
    ("approval", "noise_loss"): {"vol_mse", "mse"},
    ("forge", "kind"): {"local", "github"},
    ("forge", "merge_method"): {"merge", "squash", "rebase"},
    ("alerts", "smtp_security"): {"starttls", "ssl", "none"},
    ("deploy", "series_source"): {"", "csv", "mindicador"},
    ("watch", "null_model"): set(NULL_MODELS),
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DRY_RUN_LEVELS = ("plan", "local", "full")  # `chronops run --dry-run LEVEL`


def log_level(env: Mapping[str, str] | None = None) -> str:
    """CHRONOPS_LOG (default WARNING), checked: a typo is an error, not a traceback."""
    raw = (os.environ if env is None else env).get("CHRONOPS_LOG", "").strip()
    level = raw.upper() or "WARNING"
    if level not in LOG_LEVELS:
        raise SettingsError(f"CHRONOPS_LOG={raw!r} is not a log level (use one of {', '.join(LOG_LEVELS)})")
    return level


def torch_threads(env: Mapping[str, str] | None = None) -> int | None:
    """CHRONOPS_TORCH_THREADS: torch's thread pool size per process (None: torch's default)."""
    raw = (os.environ if env is None else env).get("CHRONOPS_TORCH_THREADS", "").strip()
    if not raw:
        return None
    try:
        return max(1, int(raw))
    except ValueError:
        raise SettingsError(
            f"CHRONOPS_TORCH_THREADS={raw!r} is not a whole number (threads per process, e.g. 2; unset it "
            "for torch's default)"
        ) from None


def load_settings(path: Path, local: Path | None = None) -> Settings:
    """Read settings; a missing file gives the defaults. `local` (chronops.local.toml: a host's own
    settings, never committed) is merged over them table by table, key by key."""
    raw = _read_toml(path)
    sources = [str(path)]
    if local is not None and local.exists():
        raw = merge_tables(raw, _read_toml(local))
        sources.append(str(local))
    return settings_from_dict(raw, source=" + ".join(sources) if len(sources) > 1 else sources[0])


def merge_tables(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: tables recursively, every other value replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_tables(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text (is it a binary file?)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None


def settings_from_dict(raw: dict[str, Any], *, source: str = "settings") -> Settings:
    settings: Settings = _build(Settings, raw, source, ())
    return settings


def _build(cls: type[Any], raw: object, source: str, path: tuple[str, ...]) -> Any:
    where = ".".join(path) or "top level"
    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: [{where}] must be a table, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(
            f"{source}: unknown key '{'.'.join((*path, unknown[0]))}' (known keys in [{where}]: "
            f"{', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        hint = hints[name]
        key = (*path, name)
        if is_dataclass(hint):
            values[name] = _build(hint, value, source, key)  # type: ignore[arg-type]
        else:
            values[name] = _check_value(hint, value, source, key)
    result = replace(cls(), **values)
    _check_semantics(result, source, path)
    return result


def _check_value(hint: Any, value: Any, source: str, key: tuple[str, ...]) -> Any:
    name = ".".join(key)
    text = repr(hint).replace("typing.", "")

    def bad(expected: str) -> SettingsError:
        return SettingsError(f"{source}: '{name}' = {value!r} has the wrong type (expected {expected})")

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if value < 0:
            raise SettingsError(f"{source}: '{name}' = {value} must not be negative")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        if value < 0:
            raise SettingsError(f"{source}: '{name}' = {value} must not be negative")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        choices = _CHOICES.get((key[-2], key[-1])) if len(key) >= 2 else None
        if choices and value not in choices:
            raise SettingsError(f"{source}: '{name}' = {value!r} is not one of {', '.join(sorted(choices))}")
        return value
    if text.startswith("list["):
        if not isinstance(value, list):
            raise bad(text)
        inner = hint.__args__[0]
        return [_check_value(inner, v, source, key) for v in value]
    if text.startswith("dict["):
        if not isinstance(value, dict):
            raise bad("a table")
        inner = hint.__args__[1]
        return {k: _check_value(inner, v, source, (*key, k)) for k, v in value.items()}
    raise SettingsError(f"{source}: '{name}' has an unsupported type {text}")  # pragma: no cover


def _check_semantics(obj: Any, source: str, path: tuple[str, ...]) -> None:
    if isinstance(obj, SearchSettings):
        for horizon, ctxs in obj.context_length.items():
            if horizon not in HORIZONS:
                raise SettingsError(f"{source}: search.context_length has unknown horizon '{horizon}'")
            if not ctxs or min(ctxs) < 8:
                raise SettingsError(f"{source}: search.context_length.{horizon} needs values >= 8")
        if not obj.num_samples or min(obj.num_samples) < 1:
            raise SettingsError(f"{source}: search.num_samples needs positive values")
        if not obj.temperature or min(obj.temperature) <= 0:
            raise SettingsError(f"{source}: search.temperature needs positive values")
        for name in ("tuning_origins", "validation_origins"):
            if getattr(obj, name) < 0 or getattr(obj, name) == 1:
                raise SettingsError(f"{source}: search.{name} must be 0 (all) or >= 2")
        if obj.max_history_years < 0:
            raise SettingsError(f"{source}: search.max_history_years must be >= 0 (0 = the whole history)")
        if obj.split_block_obs < 1 or obj.validate_top < 1:
            raise SettingsError(f"{source}: search.split_block_obs and validate_top must be >= 1")
        if obj.sample_chunk < 1:
            raise SettingsError(f"{source}: search.sample_chunk must be >= 1")
    if isinstance(obj, ApprovalSettings) and obj.volatility_window < 2:
        raise SettingsError(f"{source}: approval.volatility_window must be >= 2 (daily changes)")
    if isinstance(obj, DeploySettings):
        for name in ("health_poll_seconds", "poll_seconds", "forecast_interval_seconds"):
            if getattr(obj, name) <= 0:
                raise SettingsError(f"{source}: deploy.{name} must be > 0")
        if obj.series_source == "csv" and not obj.series_path:
            raise SettingsError(f"{source}: deploy.series_source = 'csv' needs deploy.series_path (the file)")
    if isinstance(obj, WatchSettings):
        problem = obj.problem()
        if problem:
            raise SettingsError(f"{source}: {problem}")
    if isinstance(obj, ApprovalSettings) and not 0 < obj.max_noise_probability <= 1:
        raise SettingsError(f"{source}: approval.max_noise_probability must be in (0, 1]")


DEFAULT_SETTINGS_TOML = """\
# chronops settings. Every key is optional: what is not here takes the default shown.
# Reference: README.md, section "Configuration".

[approval]                        # the validation gate (seed, phase 3)
min_rmse_improvement_pct = 5.0    # approve when RMSE improves by >= 5% ...
min_mape_improvement_pct = 3.0    # ... or MAPE improves by >= 3%
max_std_increase_pct = 10.0       # error standard deviation may grow at most 10%
max_inference_time_increase_pct = 50.0
min_ci95_coverage_pct = 90.0      # pooled empirical coverage of the 95% interval
max_abs_bias = 5.0                # CLP
max_noise_probability = 0.05      # one-sided Diebold-Mariano p-value; 1.0 = seed's exact rule
noise_loss = "vol_mse"            # loss the noise test compares: vol_mse | mse
volatility_window = 60            # daily changes before an origin that set its volatility

[triggers]
max_days_since_optimization = 14  # time fallback
performance_recent_days = 14
performance_baseline_days = 60
performance_degradation_pct = 15.0
performance_alpha = 0.05
drift_recent_obs = 30             # drift is tested on log returns, never on levels
drift_reference_obs = 90
drift_alpha = 0.05
stale_after_days = 7
snooze_weeks = 4                  # a bot PR closed unmerged snoozes its horizon

[search]
num_samples = [50, 100, 200]      # t5 only
temperature = [0.8, 1.0, 1.2]     # t5 only
tuning_origins = 0                # 0 = every tuning origin of the history; N = the newest N
validation_origins = 0            # 0 = every validation origin (used only by the gate)
max_history_years = 0.0           # 0 = whole history; else only origins in the last N years
split_block_obs = 250             # ~a year per block, blocks alternate tuning / validation
validate_top = 1                  # winner + its shared-call siblings; N > 1 adds N - 1 runners-up
min_origin_step = 5
time_budget_seconds = 600.0
seed = 20260101
strategy = "halving"              # halving | grid | random
sample_chunk = 25                 # t5 samples per random stream (per call with the stock sampler)

[search.context_length]
"7d" = [90, 180, 270]
"15d" = [90, 180, 365]
"30d" = [180, 365, 540]
"90d" = [365, 540, 730]

[data]
series = "data/series.parquet"
history = "data/optimization_history.parquet"
metrics = "data/metrics.parquet"
forecasts = "data/forecasts.parquet"
cache = "data/backtest_cache.parquet"
runs = "data/runs"
max_gap_days = 7
lock_timeout_seconds = 0.0        # a second run waits this long for the workspace lock, then exits 4
known_days_before = 1             # a value dated D is known the evening of D-1 (USD/CLP); 0 = on D

[forge]
kind = "local"                    # local (git remote 'origin') | github
automerge = true
merge_method = "merge"
base_branch = "main"
reviewers = []

[deploy]
live_dir = "live/configs"         # `chronops deploy` writes here; `chronops serve` reloads from here
# model_allowlist: model_ids `deploy` lets into production (globs; local dirs only under the workspace).
# Default: amazon/chronos-t5-{tiny,mini,small,base}, amazon/chronos-bolt-{tiny,mini,small,base},
# amazon/chronos-2 and "models/*".
health_urls = ["http://127.0.0.1:8080/healthz"]  # forecasters that must report the new config hashes
health_timeout_seconds = 120.0    # then the deploy fails: previous configs restored, exit 5
health_poll_seconds = 1.0
poll_seconds = 0.5                # serve: how often to look for changed live configs
forecast_interval_seconds = 86400.0  # serve: refresh the series and forecast this often
series_source = ""                # serve: "" re-reads data/series.parquet | csv | mindicador
series_path = ""                  # csv: the date,value file to re-ingest
series_url = ""                   # mindicador: API base URL ("" = public API)

[alerts]                          # email alerts (login from env SMTP_USER / SMTP_PASSWORD)
enabled = false
recipients = []                   # e.g. ["ops@example.com"]
sender = "chronops@localhost"
smtp_host = "localhost"
smtp_port = 587
smtp_security = "starttls"        # starttls | ssl | none
timeout = 10.0                    # seconds; a send failure is logged, never fatal
log = "data/alerts.parquet"

[watchdog]
max_days_without_run = 8          # `chronops watchdog` alerts after this many days without a run

[watch]                           # `chronops watch`: the daily volatility watch (docs/watch.md)
enabled = true
false_alarm_weeks = 20.0          # at most 1 false alarm per 20 weeks on a random walk (10..104)
null_model = "garch"              # garch: the budget holds on GARCH walks too | iid: faster, more alarms
cooldown_obs = 10                 # shortest episode after an alarm (returns)
horizons = ["7d", "15d", "30d", "90d"]  # what an alarm re-optimizes
act_within_days = 7               # an older alarm (a catch-up) is recorded, calls no run
"""


def normalize_dry_run(argv: list[str]) -> list[str]:
    """`--dry-run` alone means `--dry-run plan` (typer has no optional option values)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        # a bare --dry-run means plan; a word after it is its level (checked, with the valid ones named)
        if arg == "--dry-run" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("plan")
    return out
