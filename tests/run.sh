#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, then run the suite.
# Usage: bash tests/run.sh [pytest args...]   (default: the suite without `slow` tests)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    # Browser tests drive Debian's chromium; Playwright's own browser download is not used.
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

python -m pip install -q -e ".[test]"
python -m ruff check .
exec python -m pytest "$@"
