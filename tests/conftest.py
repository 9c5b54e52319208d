from __future__ import annotations

from collections.abc import Iterator

import pytest

from breaker_transport.testing import ManualClock

from .flavours import Flavour, load
from .redis_server import RedisServer
from .servers import FlakyServer


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
