"""chronops: a GitOps bot that keeps Chronos USD/CLP forecasting configs tuned."""

import os as _os

# OpenMP threads that spin while waiting make torch 5-10x slower whenever another process shares the
# CPU (measured here: 18.6 s vs 2.4 s per T5-tiny predict under load). Passive waiting costs nothing
# measurable on an idle machine. Must be set before torch is imported; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
