#!/usr/bin/env bash
# The browser tests drive Debian's chromium with Playwright; install it once if it is missing.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
echo "installing Debian's chromium for the browser tests (once)"
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "chromium is missing and this user cannot install it: run 'apt-get install -y chromium' as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq chromium >/dev/null
