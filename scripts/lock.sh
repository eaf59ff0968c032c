#!/usr/bin/env bash
# Refresh constraints.txt: resolve the newest releases of everything the test command installs (the library with
# every extra, the `dev` dependency group, the build backend and pip itself) in a throwaway venv and pin them all.
# Upgrades come in only this way: run it, then run `bash scripts/test.sh`, then commit constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --upgrade pip setuptools
"${pip[@]}" install hatchling editables
"${pip[@]}" install --no-build-isolation -e '.[all]' --group dev
{
  echo "# Every package the test command installs, pinned. Made by scripts/lock.sh; do not edit by hand."
  "${pip[@]}" freeze --all --exclude-editable | LC_ALL=C sort -f
} > constraints.txt
echo "constraints.txt: $(grep -cv '^#' constraints.txt) pinned packages"
