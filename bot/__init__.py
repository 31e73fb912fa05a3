"""chronops: a GitOps bot that keeps Chronos USD/CLP forecasting configs tuned."""

import os as _os

# OpenMP threads that spin while waiting make torch 5-10x slower whenever another process shares the
# CPU (measured here: 18.6 s vs 2.4 s per T5-tiny predict under load). Passive waiting costs nothing
# measurable on an idle machine. Must be set before torch is imported; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def chronops_version() -> dict[str, str]:
    """The package version and the code revision: CHRONOPS_REVISION, the image's build arg (or what
    deploy.yml sets for the runner's chronops). /healthz reports it; `chronops deploy` compares it."""
    return {"version": __version__, "revision": _os.environ.get("CHRONOPS_REVISION") or "unknown"}
