"""One place that builds the forge a workspace is configured for (local git or GitHub)."""

from __future__ import annotations

from bot.adapters.forges.base import Forge
from bot.adapters.forges.local import LocalForge
from bot.adapters.git import GitRepo
from bot.errors import ChronopsError, ForgeError
from bot.workspace import Workspace


def make_forge(ws: Workspace, kind: str | None) -> Forge:
    kind = kind or ws.settings.forge.kind
    if kind == "local":
        repo = GitRepo.open(ws.root)
        return LocalForge(
            repo,
            ws.pulls_path,
            base=ws.settings.forge.base_branch,
            snooze_weeks=ws.settings.triggers.snooze_weeks,
        )
    if kind == "github":
        try:
            from bot.adapters.forges.github import GitHubForge
        except ImportError:
            raise ForgeError("the GitHub forge is not available in this build") from None
        forge: Forge = GitHubForge.from_environment(ws)
        return forge
    raise ChronopsError(f"unknown forge '{kind}' (use local or github)")
