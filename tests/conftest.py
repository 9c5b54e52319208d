from __future__ import annotations

from collections.abc import Iterator

import pytest

from breaker_transport.testing import ManualClock

from .flavours import Flavour, load
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


@pytest.fixture(params=["httpx", "httpx2"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    """Each HTTP library the breaker supports: the contract tests run against both."""
    return load(str(request.param))
