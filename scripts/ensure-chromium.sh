#!/bin/sh
# Make Debian's headless-capable Chromium available for the browser tests (dashboard, reports, screenshots).
# Installs only when /usr/bin/chromium is missing AND we are root (CI containers); otherwise it
# changes nothing and its exit code tells the caller whether Chromium is usable (0) or not (1).
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "chromium is missing and we are not root: install it with 'apt-get install chromium'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing and apt-get is not available" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# the emoji font: PR-body screenshots show ✅ ❌ ⚠️ as GitHub does, not as empty boxes
apt-get update -qq && apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
[ -x "$CHROMIUM" ]
