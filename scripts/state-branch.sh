#!/usr/bin/env bash
# Keep the bot's state (data/*.parquet: series, history, metrics, forecast log, watch alarms; and
# data/watch_state.json, the daily watch's detector) on a dedicated branch
# between CI runs, since each GitHub Actions job starts from a fresh checkout.
#
#   bash scripts/state-branch.sh restore          copy data/*.parquet from the branch into data/
#   bash scripts/state-branch.sh save MESSAGE     commit data/*.parquet to the branch and push it
#
# The backtest cache (data/backtest_cache.parquet) is left out: it is large, rebuildable, and kept in
# actions/cache instead. The branch is created by the first save; restoring before that is a no-op.
# Files are added or replaced, never deleted. A save that lost a race (the branch moved since it was
# fetched) is refused by the remote rather than overwriting it.
#
# Environment: STATE_REMOTE (default $GITHUB_SERVER_URL/$GITHUB_REPOSITORY.git), STATE_BRANCH (default
# chronops-state), GH_TOKEN (sent as an HTTP header for the remote commands only, never written to a
# git config, so checkouts can keep persist-credentials: false).
set -euo pipefail

branch="${STATE_BRANCH:-chronops-state}"
remote="${STATE_REMOTE:-${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}.git}"
auth=()
if [ -n "${GH_TOKEN:-}" ]; then
  basic=$(printf 'x-access-token:%s' "$GH_TOKEN" | base64 | tr -d '\n')
  if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::add-mask::$basic"; fi
  auth=(-c "http.extraheader=AUTHORIZATION: basic $basic")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Clone the branch's tip into $work (return 0), or start it there as a new branch (return 1).
fetch_state() {
  local status=0
  git init -q "$work"
  git "${auth[@]}" -C "$work" ls-remote --exit-code --heads "$remote" "$branch" >/dev/null || status=$?
  case "$status" in
    0)
      git "${auth[@]}" -C "$work" fetch -q --depth=1 "$remote" "$branch"
      git -C "$work" checkout -q -B "$branch" FETCH_HEAD
      ;;
    2)
      git -C "$work" checkout -q --orphan "$branch"
      return 1
      ;;
    *)
      echo "cannot read $remote (git ls-remote exited $status)" >&2
      exit "$status"
      ;;
  esac
}

restore() {
  local file count=0
  mkdir -p data
  if ! fetch_state; then
    echo "no $branch branch yet: starting from an empty history"
    return 0
  fi
  for file in "$work"/data/*.parquet "$work"/data/watch_state.json; do
    if [ ! -f "$file" ]; then continue; fi
    cp "$file" data/
    count=$((count + 1))
  done
  echo "restored $count file(s) from $branch"
}

save() {
  local message=$1 file
  fetch_state || true
  mkdir -p "$work/data"
  for file in data/*.parquet data/watch_state.json; do
    if [ ! -f "$file" ]; then continue; fi
    if [ "${file##*/}" != backtest_cache.parquet ]; then cp "$file" "$work/data/"; fi
  done
  git -C "$work" add data
  if git -C "$work" diff --cached --quiet; then
    echo "state unchanged: nothing to push"
    return 0
  fi
  git -C "$work" -c user.name="github-actions[bot]" -c commit.gpgsign=false \
    -c user.email="41898282+github-actions[bot]@users.noreply.github.com" commit -q -m "$message"
  git "${auth[@]}" -C "$work" push -q "$remote" "HEAD:refs/heads/$branch"
  echo "saved state to $branch"
}

shopt -s nullglob
case "${1:-}" in
  restore) restore ;;
  save)
    if [ -z "${2:-}" ]; then
      echo "usage: bash scripts/state-branch.sh save MESSAGE" >&2
      exit 2
    fi
    save "$2"
    ;;
  *)
    echo "usage: bash scripts/state-branch.sh restore | save MESSAGE" >&2
    exit 2
    ;;
esac
