"""A workspace: the repository the bot manages (configs/, data/, chronops.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.core.config import HORIZONS
from bot.errors import ChronopsError, UsageError
from bot.settings import LOCAL_SETTINGS_FILE, SETTINGS_FILE, Settings, load_settings


@dataclass(frozen=True)
class Workspace:
    root: Path
    settings: Settings

    @classmethod
    def open(cls, root: Path | None = None, *, require: bool = False) -> Workspace:
        """The workspace at `root` (default: the current directory). With `require`, a folder that
        has neither chronops.toml nor configs/ is an error instead of an empty workspace: commands
        that only read must not answer "nothing here" for the wrong folder."""
        base = (root or Path.cwd()).resolve()
        if not base.is_dir():
            raise ChronopsError(f"{base}: workspace directory not found")
        if require and not is_workspace(base):
            raise ChronopsError(
                f"{base}: not a chronops workspace (no {SETTINGS_FILE} or configs/); "
                "run `chronops init` there, or pass --workspace DIR"
            )
        return cls(base, load_settings(base / SETTINGS_FILE, base / LOCAL_SETTINGS_FILE))

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    @property
    def configs_dir(self) -> Path:
        return self.root / "configs"

    def config_path(self, horizon: str) -> Path:
        return self.configs_dir / f"{horizon}.json"

    @property
    def series_path(self) -> Path:
        return self.path(self.settings.data.series)

    @property
    def history_path(self) -> Path:
        return self.path(self.settings.data.history)

    @property
    def metrics_path(self) -> Path:
        return self.path(self.settings.data.metrics)

    @property
    def forecasts_path(self) -> Path:
        return self.path(self.settings.data.forecasts)

    @property
    def cache_path(self) -> Path:
        return self.path(self.settings.data.cache)

    @property
    def runs_dir(self) -> Path:
        return self.path(self.settings.data.runs)

    @property
    def pulls_path(self) -> Path:
        """The local forge's pull-request records."""
        return self.path("data/forge/pulls.json")

    @property
    def synthetic_marker(self) -> Path:
        """Present when data/series.parquet is the demo's synthetic series, not market data."""
        return self.series_path.parent / "SYNTHETIC"

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic_marker.exists()

    @property
    def live_dir(self) -> Path:
        return self.path(self.settings.deploy.live_dir)


def is_workspace(path: Path) -> bool:
    return (path / SETTINGS_FILE).is_file() or (path / "configs").is_dir()


def check_horizon(horizon: str) -> str:
    """A horizon named on the command line, or a usage error (exit 2) listing the valid ones."""
    if horizon not in HORIZONS:
        raise UsageError(f"unknown horizon '{horizon}' (use one of {', '.join(HORIZONS)})")
    return horizon


def resolve_horizons(horizon: str | None, all_: bool) -> list[str]:
    if all_ and horizon:
        raise UsageError("give either --horizon or --all, not both")
    if all_:
        return list(HORIZONS)
    if not horizon:
        raise UsageError("give --horizon H (one of 7d, 15d, 30d, 90d) or --all")
    return [check_horizon(horizon)]
