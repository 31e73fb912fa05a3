#!/usr/bin/env bash
# Install (or remove) the weekly chronops optimizer cron job: Sunday 02:00 America/Santiago.
# For hosts that run the optimizer from cron instead of GitHub Actions (.github/workflows/optimize.yml).
#
#   sudo bash scripts/install-cron.sh              write /etc/cron.d/chronops (re-running rewrites
#                                                  the same file: never a duplicate job)
#   bash scripts/install-cron.sh --dry-run         print the file instead of writing it
#   sudo bash scripts/install-cron.sh --uninstall  remove it
#
# Environment: CRON_FILE (default /etc/cron.d/chronops), CRON_USER (default root), REPO_DIR (default:
# this repository), COMPOSE (default "docker compose").
#
# Chile moves between UTC-3 and UTC-4; CRON_TZ=America/Santiago makes cronie (RHEL, Fedora, Arch…)
# read the schedule in Santiago time. Debian's and Ubuntu's cron ignore CRON_TZ and use the host's
# zone: there, set the host to America/Santiago or install cronie (the script warns).
set -euo pipefail

CRON_FILE="${CRON_FILE:-/etc/cron.d/chronops}"
CRON_USER="${CRON_USER:-root}"
REPO_DIR="${REPO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
COMPOSE="${COMPOSE:-docker compose}"

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

render() {
  local repo
  repo=$(printf '%q' "$REPO_DIR")
  cat <<CRON
# chronops weekly optimizer. Managed by scripts/install-cron.sh: re-run it to update, --uninstall to remove.
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CRON_TZ=America/Santiago
0 2 * * 0 $CRON_USER cd $repo && mkdir -p logs && $COMPOSE -f docker-compose.prod.yml run --rm model-optimizer run --all >> logs/cron.log 2>&1
CRON
}

warn_if_cron_tz_ignored() {
  # Debian's cron (package "cron", not "cronie") schedules in the host's zone whatever CRON_TZ says.
  command -v dpkg-query >/dev/null 2>&1 || return 0
  if dpkg-query -W -f='${Status}' cronie 2>/dev/null | grep -q 'install ok installed'; then return 0; fi
  if ! dpkg-query -W -f='${Status}' cron 2>/dev/null | grep -q 'install ok installed'; then return 0; fi
  local zone
  zone=$(cat /etc/timezone 2>/dev/null || true)
  if [ "$zone" = America/Santiago ]; then return 0; fi
  echo "warning: Debian/Ubuntu cron ignores CRON_TZ and schedules in the host zone (${zone:-unknown}):" >&2
  echo "warning: the job would run Sunday 02:00 host time. Run 'timedatectl set-timezone" >&2
  echo "warning: America/Santiago' or install cronie." >&2
}

install_file() {
  local dir tmp
  dir=$(dirname "$CRON_FILE")
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.chronops-cron.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  render >"$tmp"
  chmod 0644 "$tmp" # cron skips group- or world-writable files in /etc/cron.d
  mv -f "$tmp" "$CRON_FILE" # atomic: cron never reads a half-written file
  trap - EXIT
  echo "installed $CRON_FILE (Sunday 02:00 America/Santiago, in $REPO_DIR)"
  warn_if_cron_tz_ignored
}

main() {
  case "${1:-}" in
    "")
      install_file
      ;;
    --dry-run)
      echo "# would write $CRON_FILE:"
      render
      ;;
    --uninstall)
      if [ -e "$CRON_FILE" ]; then
        rm -f "$CRON_FILE"
        echo "removed $CRON_FILE"
      else
        echo "nothing to remove: $CRON_FILE does not exist"
      fi
      ;;
    -h | --help)
      usage
      ;;
    *)
      echo "unknown option '$1'" >&2
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
