#!/usr/bin/env bash
# Set up .venv with sagascope and everything the tests need, plus Debian's Chromium for the
# browser tests (when run as root on Debian). Non-editable: tests run against the installed
# wheel layout, as users get it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Also stunnel4 (TLS broker tests), Prometheus and Alertmanager (tests of the saga metrics,
# the shipped rules and the Alertmanager sink run the real programs).
missing=0
for bin in chromium chromedriver stunnel4 prometheus promtool prometheus-alertmanager; do
  command -v "$bin" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver stunnel4 prometheus prometheus-alertmanager >/dev/null
  else
    echo "note: chromium/stunnel4/prometheus/alertmanager not installed (needs root + apt);" \
      "tests that need them will be skipped" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[test]"
