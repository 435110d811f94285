#!/usr/bin/env bash
# Set up .venv with sagascope and everything the tests need, plus Debian's Chromium for the
# browser tests (when run as root on Debian). Non-editable: tests run against the installed
# wheel layout, as users get it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
    || ! command -v stunnel4 >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver stunnel4 prometheus prometheus-alertmanager >/dev/null
  else
    echo "note: chromium not installed (needs root + apt); browser tests will be skipped" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[test]"
