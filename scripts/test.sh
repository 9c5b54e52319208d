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
"$VENV/bin/python" -c 'import httpx; print("environment 1: httpx", httpx.__version__, "(newest)")'
"$VENV/bin/python" -m pytest "$@"

# Environment 2: the lowest supported httpx (pyproject: httpx>=0.27), plus pytest-httpx, which pins
# an httpx minor version and so fits only here (0.31.* pins httpx 0.27.* and pytest 8.*, so this
# also runs the lowest supported pytest). Everything but the heavy "load" tests runs again.
LOW_VENV=${LOW_VENV:-.venv-httpx-lowest}
"$PYTHON" -m venv "$LOW_VENV"
"$LOW_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$LOW_VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" \
    "httpx==0.27.0" "pytest-httpx==0.31.*"
"$LOW_VENV/bin/python" -c 'import httpx; print("environment 2: httpx", httpx.__version__, "(lowest)")'
status=0
BREAKER_EXPECT_PYTEST_HTTPX=1 "$LOW_VENV/bin/python" -m pytest -m "not load" -p no:cacheprovider \
    "$@" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then  # 5: the arguments selected only load tests
    exit "$status"
fi
