"""`chronops config validate` and `chronops model tiny`: check horizon configs, build test models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.adapters.configs import read_config
from bot.core.config import HORIZONS, Family
from bot.errors import ChronopsError


def config_validate_command(
    root: Path, paths: list[Path] | None, *, strict: bool, say: Callable[[str], None]
) -> None:
    """Each file ok or one line per problem (file, key, bad value, fix); raises when any failed."""
    files = paths or [root / "configs" / f"{h}.json" for h in HORIZONS]
    failures = []
    for f in files:
        try:
            cfg = read_config(f, strict=strict)
            say(f"ok       {f} ({cfg.model_family.value}, context {cfg.context_length})")
        except ChronopsError as exc:
            failures.append(str(exc))
    if failures:
        raise ChronopsError("\n".join(failures))


def model_tiny_command(family: str, out_dir: Path, *, seed: int, say: Callable[[str], None]) -> None:
    from bot.adapters.tiny import build_tiny_model  # imports torch: only when a model is built

    try:
        fam = Family(family)
    except ValueError:
        raise ChronopsError(f"unknown family '{family}' (use t5, bolt or chronos2)") from None
    path = build_tiny_model(fam, out_dir, seed=seed)
    say(f"wrote random-weight {fam.value} tiny model to {path} (forecasts are meaningless)")
