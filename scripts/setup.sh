#!/usr/bin/env bash
# Create .venv and install anonymetry. --all adds every extra (Spark, models, test tools) and
# the Debian packages the tests use. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
all=0
[ "${1:-}" = "--all" ] && all=1
if [ "$all" = 1 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || need+=(chromium chromium-driver)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$all" = 1 ]; then
  python -m pip install -q -e '.[all]'
else
  python -m pip install -q -e .
fi
