"""pytest-httpx beneath the breaker: it patches httpx's own transports at class level, so the
breaker (wrapping the default inner transport) sees the mocked traffic.

pytest-httpx pins an httpx minor version, so it is installed only in the environment where it fits
(scripts/test.sh installs it with the lowest supported httpx). Elsewhere this module is skipped,
unless BREAKER_EXPECT_PYTEST_HTTPX=1 says it must run (set by scripts/test.sh for that env).
"""

from __future__ import annotations

import os

import httpx
import pytest

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
)
from breaker_transport.testing import ManualClock

if os.environ.get("BREAKER_EXPECT_PYTEST_HTTPX") != "1":
    pytest.importorskip("pytest_httpx", reason="pytest-httpx is installed only where it fits")

from pytest_httpx import HTTPXMock

URL = "https://api.example.com/data"
POLICY = BreakerPolicy(failure_threshold=2, recovery_timeout=10.0)


def test_sync_transport_under_pytest_httpx(httpx_mock: HTTPXMock, clock: ManualClock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("down"), url=URL)
    httpx_mock.add_response(url=URL, status_code=503)
    httpx_mock.add_response(url=URL, status_code=200, text="back")
    transport = CircuitBreakerTransport(httpx.HTTPTransport(), policy=POLICY, clock=clock)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(URL)
        assert client.get(URL).status_code == 503
        with pytest.raises(CircuitOpenError):  # rejected: pytest-httpx never sees it
            client.get(URL)
        clock.advance(10.0)
        assert client.get(URL).text == "back"
    assert transport.state(URL) is CircuitState.CLOSED
    stats = transport.stats()["https://api.example.com"]
    assert (stats.failures, stats.rejections, stats.successes) == (2, 1, 1)
    assert len(httpx_mock.get_requests()) == 3


@pytest.mark.anyio
async def test_async_transport_under_pytest_httpx(
    httpx_mock: HTTPXMock, clock: ManualClock
) -> None:
    httpx_mock.add_response(url=URL, status_code=502)
    httpx_mock.add_response(url=URL, status_code=502)
    transport = AsyncCircuitBreakerTransport(policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            assert (await client.get(URL)).status_code == 502
        with pytest.raises(CircuitOpenError):
            await client.get(URL)
    assert transport.state(URL) is CircuitState.OPEN
