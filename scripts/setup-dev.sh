#!/usr/bin/env bash
# Set up .venv with sagascope and everything the tests need (non-editable: tests run against
# the installed wheel layout, as users get it).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[test]"
