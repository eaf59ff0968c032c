#!/usr/bin/env bash
# The whole test command: install everything (pinned) into .venv, check services, lint, type-check, run the suite.
# Usage: bash scripts/test.sh [--coverage] [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Every version comes from constraints.txt (refresh it with scripts/lock.sh), so a release published tomorrow
# changes nothing here. The build backend is pinned too: the editable install builds without isolation.
pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --constraint constraints.txt pip setuptools hatchling editables
"${pip[@]}" install --constraint constraints.txt --no-build-isolation -e '.[all]' --group dev

bash scripts/services.sh
bash scripts/browser.sh

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict: src/, tests/, benchmarks/)"
.venv/bin/mypy
echo "== lint-imports (the layers contract in pyproject.toml)"
.venv/bin/lint-imports
echo "== mkdocs (the documentation site, strict: a broken link or reference fails)"
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
echo "== pytest"
# pytest exits 5 when it collected no test: with set -e that fails this script too, as it should.
# Two worker processes (pytest-xdist), one per core of the 2-core reference machine: the suite spends much of
# its time waiting on servers, so two keep both cores busy. Each worker isolates itself as a whole run does
# (its own Redis key prefix and PostgreSQL schema); pass -n 0 to run in one process.
# --coverage adds the branch coverage report: Python 3.11's tracing makes the suite about 45 % slower with it.
coverage=()
if [ "${1:-}" = "--coverage" ]; then
    shift
    coverage=(--cov=tokenbank --cov-branch --cov-report=term --cov-fail-under=0)
fi
.venv/bin/pytest -n 2 "${coverage[@]}" -p no:cacheprovider "$@"
