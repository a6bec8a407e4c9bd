#!/usr/bin/env bash
# Install everything (system packages, a virtualenv with every extra) and run the test suite.
# Used by the README's quick start and by .ci/run. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --all
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check .
lint-imports
python -m pytest -m "not slow" "$@"
