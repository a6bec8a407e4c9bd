#!/usr/bin/env bash
# Install anonymetry into .venv and run the end-to-end demo on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
anonymetry demo "$@"
