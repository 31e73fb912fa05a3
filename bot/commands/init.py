"""`chronops init`: add the bot's files to a repository. Never overwrites anything."""

from __future__ import annotations

from pathlib import Path

from bot.adapters.store import atomic_write_text
from bot.core.config import (
    DEFAULT_PREDICTION_LENGTH,
    HORIZONS,
    Family,
    HorizonConfig,
    Provenance,
    detect_family,
    json_schema,
    render_config,
)
from bot.settings import DEFAULT_SETTINGS_TOML, SETTINGS_FILE

# Middle of each seed search space: a sensible starting point before the first tune.
DEFAULT_CONTEXT = {"7d": 180, "15d": 180, "30d": 365, "90d": 512}
WORKSPACE_GITIGNORE = """\
# chronops state (kept out of main; see README "State between runs")
data/*.parquet
data/runs/
data/forge/
data/*.lock
live/
data/.state-base/
# host-only files on the production host (docs/deploy.md)
chronops.local.toml
.env
chronops.env
"""


def default_config(horizon: str, model_id: str, family: Family | None = None) -> HorizonConfig:
    fam = family or detect_family(model_id) or Family.T5
    ctx = DEFAULT_CONTEXT[horizon]
    if fam is Family.T5:
        ctx = min(ctx, 512)
    t5 = fam is Family.T5
    return HorizonConfig(
        horizon=horizon,
        prediction_length=DEFAULT_PREDICTION_LENGTH[horizon],
        model_id=model_id,
        model_family=fam,
        context_length=ctx,
        version=1,
        provenance=Provenance(source="init"),
        num_samples=100 if t5 else None,
        temperature=1.0 if t5 else None,
        top_k=50 if t5 else None,
        top_p=1.0 if t5 else None,
    )


def scaffold(root: Path, *, model_id: str, family: Family | None = None) -> tuple[list[Path], list[Path]]:
    import json

    root.mkdir(parents=True, exist_ok=True)
    files: dict[Path, str] = {root / SETTINGS_FILE: DEFAULT_SETTINGS_TOML}
    for h in HORIZONS:
        files[root / "configs" / f"{h}.json"] = render_config(default_config(h, model_id, family))
    files[root / "configs" / "horizon-config.schema.json"] = json.dumps(json_schema(), indent=2) + "\n"
    files[root / "data" / ".gitkeep"] = ""
    created, kept = [], []
    for path, text in files.items():
        if path.exists():
            kept.append(path)
        else:
            atomic_write_text(path, text)
            created.append(path)
    gitignore = root / ".gitignore"
    existing = gitignore.read_text() if gitignore.exists() else ""
    if "data/*.parquet" not in existing:
        atomic_write_text(
            gitignore,
            existing + ("\n" if existing and not existing.endswith("\n") else "") + WORKSPACE_GITIGNORE,
        )
        (kept if existing else created).append(gitignore)
    return created, kept
