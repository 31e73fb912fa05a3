"""`chronops init --github`: the GitHub Actions workflows for a repository that is not a chronops clone.

Writes .github/workflows/chronops-optimize.yml and chronops-rollback.yml, which install a pinned
chronops (`install`: a release wheel URL, `git+https://…@TAG`, or an index pin), and the state-branch
script they call, .github/chronops/state-branch.sh. Never overwrites a file that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.adapters.store import atomic_write_bytes
from bot.errors import ChronopsError

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
WORKFLOWS = {
    "workflow-optimize.yml": ".github/workflows/chronops-optimize.yml",
    "workflow-rollback.yml": ".github/workflows/chronops-rollback.yml",
}
STATE_SCRIPT = ".github/chronops/state-branch.sh"
# A pip requirement that pins something: an exact version, a tagged VCS URL, or a file/URL.
PINNED = re.compile(r"(==\s*[\w.+!-]+$)|(@[\w.+/-]+$)|(\.whl$)|(\.tar\.gz$)")


def check_install_spec(spec: str) -> str:
    spec = spec.strip()
    if not spec:
        raise ChronopsError("--github needs --install SPEC: the chronops to install in the workflows "
                            "(a wheel URL, git+https://…/chronops@vX.Y.Z, or chronops==X.Y.Z)")  # fmt: skip
    if '"' in spec or "\n" in spec or "$" in spec:
        raise ChronopsError(f"--install {spec!r}: quotes, newlines and $ are not allowed in the spec")
    if not PINNED.search(spec):
        raise ChronopsError(
            f"--install {spec!r} is not pinned: use an exact version (==X.Y.Z), a tag (…@vX.Y.Z) or a "
            "wheel, so every run installs the same chronops"
        )
    return spec


def scaffold_github(root: Path, install: str) -> tuple[list[Path], list[Path]]:
    """(created, kept) paths of the workflows and the state script under `root`."""
    spec = check_install_spec(install)
    files: dict[Path, tuple[bytes, int]] = {}
    for resource, target in WORKFLOWS.items():
        text = (RESOURCES / resource).read_text(encoding="utf-8").replace("@CHRONOPS_PIP_SPEC@", spec)
        files[root / target] = (text.encode("utf-8"), 0o644)
    files[root / STATE_SCRIPT] = ((RESOURCES / "state-branch.sh").read_bytes(), 0o755)
    created, kept = [], []
    for path, (data, mode) in files.items():
        if path.exists():
            kept.append(path)
        else:
            atomic_write_bytes(path, data, mode=mode)
            created.append(path)
    return created, kept


def init_workspace(
    root: Path, *, model_id: str, github: bool, install: str
) -> tuple[list[Path], list[Path]]:
    """`chronops init`: the workspace, and with `github` the workflows; a bad spec writes nothing."""
    from bot.commands.init import scaffold

    if github:
        check_install_spec(install)
    created, kept = scaffold(root, model_id=model_id)
    more_created, more_kept = scaffold_github(root, install) if github else ([], [])
    return created + more_created, kept + more_kept
