#!/usr/bin/env bash
# One entry point for set-up, the demo and the test suite.
#   bash scripts/dev.sh demo [--dir DIR]   install (once) and run the offline demo
#   bash scripts/dev.sh test [PYTEST ARGS]  install (once) and run linters, type checks and tests
#   bash scripts/dev.sh setup               install only
# Torch: the CPU build is installed first (torch==2.13.0). Elsewhere, set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to force the CPU wheel, or leave it unset
# on a CUDA machine to get the GPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CHRONOPS_VENV:-.venv}"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.chronops-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing into $VENV (first run only; a few minutes)..." >&2
    local torch_args=()
    if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_args=(--index-url "$TORCH_INDEX_URL"); fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "torch==2.13.0" "${torch_args[@]}"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
    touch "$stamp"
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup)
    setup
    ;;
  demo)
    setup
    exec "$VENV/bin/chronops" demo "$@"
    ;;
  test)
    setup
    echo "== ruff" >&2
    "$VENV/bin/ruff" check bot tests benchmarks
    echo "== mypy" >&2
    "$VENV/bin/mypy"
    echo "== code map" >&2
    "$VENV/bin/python" scripts/code_map.py | tail -1
    if [ -f scripts/lint-infra.sh ]; then
      echo "== infrastructure linters" >&2
      PATH="$PWD/$VENV/bin:$PATH" bash scripts/lint-infra.sh
    fi
    # The container tests' Docker daemon, offline base image and torch index (minutes the first time,
    # idempotent after); exit 77 means no daemon can run here and those tests skip with its line.
    echo "== docker for the container tests (scripts/prepare-docker.sh)" >&2
    bash scripts/prepare-docker.sh >/dev/null || [ $? -eq 77 ]
    echo "== pytest" >&2
    exec "$VENV/bin/pytest" -q --durations=15 "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test|setup" >&2
    exit 2
    ;;
esac
