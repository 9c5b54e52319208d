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
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test,dev,bench]"

"$VENV/bin/ruff" check breaker_transport tests benchmarks examples
"$VENV/bin/ruff" format --check breaker_transport tests benchmarks examples
"$VENV/bin/mypy" --strict breaker_transport
"$VENV/bin/python" -c 'import httpx; print("environment 1: httpx", httpx.__version__, "(newest)")'
"$VENV/bin/python" -m pytest "$@"

# Environment 2: the lowest supported httpx (pyproject: httpx>=0.27) with the core of the test
# extra and pytest-httpx, which pins an httpx minor version and so fits only here (0.31.* pins
# httpx 0.27.* and pytest 8.*: the lowest supported pytest runs too). The rest of the test extra
# does not all install with httpx 0.27 (hishel 2 needs 0.28), so this runs the tests of everything
# the library does with httpx itself; the heavy "load" tests run in environment 1 only.
LOW_VENV=${LOW_VENV:-.venv-httpx-lowest}
LOWEST_TESTS=(
    tests/test_circuit.py tests/test_transport.py tests/test_streaming.py tests/test_sync.py
    tests/test_respx.py tests/test_real_server.py tests/test_policy.py tests/test_policies.py
    tests/test_keys.py tests/test_registry.py tests/test_testing_helpers.py
    tests/test_client_settings.py tests/test_contract.py tests/test_model_based.py
    tests/test_faults.py tests/test_bad_input.py tests/test_regressions.py tests/test_resources.py
    tests/test_fork.py tests/test_pytest_httpx.py
)
# ... on the lowest supported Python too, where this machine has it (else the default one).
LOW_PYTHON=${LOW_PYTHON:-}
if [ -z "$LOW_PYTHON" ]; then
    for candidate in python3.10 "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3 2>/dev/null | head -n 1)"; do
        if [ -n "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
            LOW_PYTHON=$candidate
            break
        fi
    done
fi
LOW_PYTHON=${LOW_PYTHON:-$PYTHON}
"$LOW_PYTHON" -m venv "$LOW_VENV"
"$LOW_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$LOW_VENV/bin/python" -m pip install -q --disable-pip-version-check -e . "httpx==0.27.0" \
    "pytest-httpx==0.31.*" "respx>=0.21" "anyio>=4" "trio>=0.25" "hypothesis>=6.100" \
    "httpx2>=2.16; python_version >= '3.11'"
"$LOW_VENV/bin/python" -c 'import httpx, sys; print("environment 2: httpx", httpx.__version__, "(lowest), Python", sys.version.split()[0])'
BREAKER_EXPECT_PYTEST_HTTPX=1 "$LOW_VENV/bin/python" -m pytest -m "not load" -p no:cacheprovider \
    "${LOWEST_TESTS[@]}" "$@"
