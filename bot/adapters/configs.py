"""Horizon config files on disk."""

from __future__ import annotations

import json
from pathlib import Path

from bot.adapters.store import atomic_write_text
from bot.core.config import HORIZONS, HorizonConfig, parse_config, render_config
from bot.errors import ConfigError


def read_config(path: Path, *, strict: bool = False) -> HorizonConfig:
    """Parse and validate one config file; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run `chronops init` to create the default configs)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a JSON file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (binary file?)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    stem = path.stem if path.stem in HORIZONS else None
    try:
        return parse_config(data, strict=strict, expected_horizon=stem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def write_config(path: Path, cfg: HorizonConfig) -> None:
    atomic_write_text(path, render_config(cfg))
