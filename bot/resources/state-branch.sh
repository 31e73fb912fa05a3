#!/usr/bin/env bash
# Keep the bot's state (data/*.parquet: series, history, metrics, forecast log, watch alarms; and
# data/watch_state.json, the daily watch's detector) on a dedicated branch
# between CI runs, since each GitHub Actions job starts from a fresh checkout.
#
#   bash state-branch.sh init             start the branch (once; refused when it exists), with any
#                                         data/*.parquet present here
#   bash state-branch.sh restore          copy data/*.parquet from the branch into data/
#   bash state-branch.sh save MESSAGE     commit data/*.parquet to the branch and push it
#
# A missing branch is an error for restore and save (exit 4, one line saying how to start one): a lost
# branch must not silently restart the bot from an empty history. The backtest cache
# (data/backtest_cache.parquet) is left out: it is large, rebuildable, and kept in actions/cache.
# Files are added or replaced, never deleted.
#
# Concurrent saves (rollback.yml runs beside optimize.yml): restore keeps a copy of what it restored in
# data/.state-base/. When a save loses the race (the branch moved since it was fetched), it fetches the
# new tip and appends to each table only the rows this run added (rows not in its base copy), then
# pushes again (3 tries). That merge needs Python with pyarrow ($PYTHON, default python3): chronops'
# own environment has it.
#
# Environment: STATE_REMOTE (default $GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git), STATE_BRANCH (default
# chronops-state), GH_TOKEN (sent as an HTTP header for the remote commands only, never written to a
# git config, so checkouts can keep persist-credentials: false), PYTHON.
set -euo pipefail

branch="${STATE_BRANCH:-chronops-state}"
remote="${STATE_REMOTE:-${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}.git}"
python="${PYTHON:-python3}"
base_dir=data/.state-base
auth=()
if [ -n "${GH_TOKEN:-}" ]; then
  basic=$(printf 'x-access-token:%s' "$GH_TOKEN" | base64 | tr -d '\n')
  if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::add-mask::$basic"; fi
  auth=(-c "http.extraheader=AUTHORIZATION: basic $basic")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One line, as a GitHub annotation inside Actions.
fail() {
  local code=$1
  shift
  if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::error::$*" >&2; else echo "error: $*" >&2; fi
  exit "$code"
}

missing_branch() {
  fail 4 "no $branch branch on $remote: the bot's history is missing (deleted, renamed, or never started)." \
    "Restore it from a clone that has it (git push ORIGIN $branch), or start an empty one deliberately:" \
    "STATE_REMOTE=$remote bash state-branch.sh init"
}

# 0: the branch exists; 2: it does not. Anything else stops here.
branch_exists() {
  local status=0
  git "${auth[@]}" ls-remote --exit-code --heads "$remote" "$branch" >/dev/null 2>"$work/ls-remote.err" || status=$?
  case "$status" in
    0 | 2) return "$status" ;;
    *) fail "$status" "cannot read $remote (git ls-remote exited $status: $(head -n1 "$work/ls-remote.err"))" ;;
  esac
}

# Clone the branch's tip into $work/tree.
fetch_state() {
  rm -rf "$work/tree"
  git init -q "$work/tree"
  git "${auth[@]}" -C "$work/tree" fetch -q --depth=1 "$remote" "$branch"
  git -C "$work/tree" checkout -q -B "$branch" FETCH_HEAD
}

commit_tree() {
  git -C "$work/tree" -c user.name="github-actions[bot]" -c commit.gpgsign=false \
    -c user.email="41898282+github-actions[bot]@users.noreply.github.com" commit -q "$@"
}

init() {
  if branch_exists; then fail 1 "$branch already exists on $remote: nothing to start (restore it instead)"; fi
  mkdir -p "$work/tree"
  git init -q "$work/tree"
  git -C "$work/tree" checkout -q --orphan "$branch"
  mkdir -p "$work/tree/data"
  echo "chronops state: data/*.parquet, written by state-branch.sh. Do not merge into main." >"$work/tree/README"
  copy_ours "$work/tree/data"
  git -C "$work/tree" add -A
  commit_tree -m "Start the chronops state branch"
  git "${auth[@]}" -C "$work/tree" push -q "$remote" "HEAD:refs/heads/$branch"
  echo "started $branch on $remote"
}

restore() {
  local file count=0
  mkdir -p data
  branch_exists || missing_branch
  fetch_state
  rm -rf "$base_dir"
  mkdir -p "$base_dir"
  for file in "$work"/tree/data/*.parquet "$work"/tree/data/watch_state.json; do
    if [ ! -f "$file" ]; then continue; fi
    cp "$file" data/
    cp "$file" "$base_dir/"
    count=$((count + 1))
  done
  git -C "$work/tree" rev-parse HEAD >"$base_dir/COMMIT"
  echo "restored $count file(s) from $branch"
}

copy_ours() {
  local dest=$1 file
  for file in data/*.parquet data/watch_state.json; do
    if [ ! -f "$file" ]; then continue; fi
    if [ "${file##*/}" != backtest_cache.parquet ]; then cp "$file" "$dest/"; fi
  done
}

# After a lost race: each table on the new tip gets the rows this run added since its restore.
merge_ours() {
  "$python" - "$work/tree/data" "$base_dir" data <<'PY'
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

tip_dir, base_dir, ours_dir = map(Path, sys.argv[1:])
for ours_path in sorted(ours_dir.glob("*.parquet")):
    if ours_path.name == "backtest_cache.parquet":
        continue
    tip_path, base_path = tip_dir / ours_path.name, base_dir / ours_path.name
    ours = pq.read_table(ours_path)
    if not tip_path.exists():
        pq.write_table(ours, tip_path)
        continue
    tip = pq.read_table(tip_path)
    base = pq.read_table(base_path) if base_path.exists() else ours.slice(0, 0)
    seen = {tuple(r.values()) for r in base.to_pylist()}
    new_rows = [r for r in ours.to_pylist() if tuple(r.values()) not in seen]
    if not new_rows:
        continue
    added = pa.Table.from_pylist(new_rows, schema=ours.schema)
    merged = pa.concat_tables([tip, added], promote_options="default")
    pq.write_table(merged, tip_path)
    print(f"merged {len(new_rows)} new row(s) of {ours_path.name} onto the newer state")
PY
}

save() {
  local message=$1 try
  branch_exists || missing_branch
  for try in 1 2 3; do
    fetch_state
    mkdir -p "$work/tree/data"
    # Replace the files when nothing else saved since this run's restore (or it never restored, as
    # publish-forecasts, whose one file only it writes); else add this run's rows to the newer state.
    if [ ! -f "$base_dir/COMMIT" ] || [ "$(git -C "$work/tree" rev-parse HEAD)" = "$(cat "$base_dir/COMMIT")" ]; then
      copy_ours "$work/tree/data"
    else
      echo "the $branch branch moved since this run restored it: merging this run's rows onto it" >&2
      merge_ours
      # the watch's detector state is one document, not rows: the newest run's wins
      if [ -f data/watch_state.json ]; then cp data/watch_state.json "$work/tree/data/"; fi
    fi
    git -C "$work/tree" add data
    if git -C "$work/tree" diff --cached --quiet; then
      echo "state unchanged: nothing to push"
      return 0
    fi
    commit_tree -m "$message"
    if git "${auth[@]}" -C "$work/tree" push -q "$remote" "HEAD:refs/heads/$branch" 2>"$work/push.err"; then
      if [ -f "$base_dir/COMMIT" ]; then  # a second save in this run starts from this one
        cp "$work"/tree/data/*.parquet "$base_dir/"
        git -C "$work/tree" rev-parse HEAD >"$base_dir/COMMIT"
      fi
      echo "saved state to $branch"
      return 0
    fi
    echo "the $branch branch moved during this save (try $try); trying again" >&2
  done
  fail 1 "could not save the state to $branch after 3 tries: $(head -n1 "$work/push.err")"
}

shopt -s nullglob
case "${1:-}" in
  init) init ;;
  restore) restore ;;
  save)
    if [ -z "${2:-}" ]; then
      echo "usage: bash state-branch.sh save MESSAGE" >&2
      exit 2
    fi
    save "$2"
    ;;
  *)
    echo "usage: bash state-branch.sh init | restore | save MESSAGE" >&2
    exit 2
    ;;
esac
