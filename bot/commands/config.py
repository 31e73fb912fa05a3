"""`chronops config validate` and `chronops model tiny`: check horizon configs, build test models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.adapters.configs import read_config
from bot.core.config import HORIZONS, Family
from bot.errors import ChronopsError, ConfigError


def config_validate_command(
    root: Path, paths: list[Path] | None, *, strict: bool, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Each file ok or one line per problem (file, key, bad value, fix); raises when any failed.
    Returns one result per file ({path, ok, horizon, family, context_length, error}) for --json."""
    files = paths or [root / "configs" / f"{h}.json" for h in HORIZONS]
    failures, results = [], []
    for f in files:
        try:
            cfg = read_config(f, strict=strict)
            if f.stem != cfg.horizon:  # configs/<horizon>.json is the only name the bot reads
                raise ConfigError(
                    f"{f}: a config file is named after its horizon: this one is for {cfg.horizon}, "
                    f"save it as {cfg.horizon}.json"
                )
            say(f"ok       {f} ({cfg.model_family.value}, context {cfg.context_length})")
            results.append({"path": str(f), "ok": True, "horizon": cfg.horizon, "family": cfg.model_family.value,
                            "context_length": cfg.context_length, "error": None})  # fmt: skip
        except ChronopsError as exc:
            failures.append(str(exc))
            results.append({"path": str(f), "ok": False, "horizon": None, "family": None,
                            "context_length": None, "error": str(exc)})  # fmt: skip
    if failures:
        raise ConfigValidationFailed("\n".join(failures), results)
    return results


class ConfigValidationFailed(ConfigError):
    """Some configs failed; `results` has every file's outcome (for --json)."""

    def __init__(self, message: str, results: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.results = results


def model_tiny_command(family: str, out_dir: Path, *, seed: int, say: Callable[[str], None]) -> None:
    from bot.adapters.tiny import build_tiny_model  # imports torch: only when a model is built

    try:
        fam = Family(family)
    except ValueError:
        raise ChronopsError(f"unknown family '{family}' (use t5, bolt or chronos2)") from None
    path = build_tiny_model(fam, out_dir, seed=seed)
    say(f"wrote random-weight {fam.value} tiny model to {path} (forecasts are meaningless)")


def config_validate_main(
    root: Path, paths: list[Path] | None, *, strict: bool, as_json: bool, say: Callable[[str], None]
) -> None:
    """`chronops config validate [--json]`: lines, or one JSON document (also when some failed)."""
    from bot.commands.output import emit

    try:
        results = config_validate_command(root, paths, strict=strict, say=(lambda _: None) if as_json else say)
    except ConfigValidationFailed as exc:
        if as_json:
            emit("config validate", {"ok": False, "files": exc.results})
        raise
    if as_json:
        emit("config validate", {"ok": True, "files": results})
