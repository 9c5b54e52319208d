#!/usr/bin/env bash
# The test command: sets up everything on a fresh machine (a venv, the test extra, redis-server),
# runs the static checks, then the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing redis-server (Debian package) for the shared-state tests"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "warning: redis-server is not installed; the Redis tests will skip (and fail with CI=true)"
    fi
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,dev]"

"$VENV/bin/ruff" check breaker_transport tests benchmarks examples
"$VENV/bin/ruff" format --check breaker_transport tests benchmarks examples
"$VENV/bin/mypy" --strict breaker_transport
"$VENV/bin/python" -m pytest "$@"
