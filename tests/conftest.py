from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from breaker_transport.testing import ManualClock

from .flavours import Flavour, load
from .redis_server import RedisServer
from .servers import FlakyServer

# Hypothesis profiles. No deadlines anywhere (a shared 2-core CI machine has pauses that say
# nothing about the code). "ci" (chosen when CI=true) is derandomized and bounded; "dev" is the
# local default; HYPOTHESIS_PROFILE=long is a soak run (about 50x the examples of "ci").
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile(
    "ci", derandomize=True, max_examples=40, stateful_step_count=40, **_COMMON
)
settings.register_profile("dev", max_examples=40, stateful_step_count=40, **_COMMON)
settings.register_profile("long", max_examples=2000, stateful_step_count=100, **_COMMON)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as running:
        yield running


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; ``redis_url`` empties it before each test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may kill and start again."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["httpx", "httpx2"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    """Each HTTP library the breaker supports: the contract tests run against both."""
    return load(str(request.param))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "load: heavy load or resource-bound tests (real sockets, a million requests)"
    )
