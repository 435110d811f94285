#!/usr/bin/env bash
# mypy over the sagascope namespace as it is installed: the folders are mapped to
# sagascope.* (setuptools package-dir), so lay them out that way with symlinks first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/sagascope"
for entry in src/sagascope/*; do ln -s "$root/$entry" "$stage/sagascope/"; done
for part in instrumentation store collector queries alerter dashboard demo_services; do
  ln -s "$root/$part" "$stage/sagascope/$part"
done
cd "$stage"
"${PYTHON:-python}" -m mypy --config-file "$root/pyproject.toml" -p sagascope
