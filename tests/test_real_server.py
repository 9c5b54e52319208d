"""A real HTTP server on 127.0.0.1: it fails, the circuit opens; it recovers, the circuit closes."""

from __future__ import annotations

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

from .servers import FlakyServer

POLICY = BreakerPolicy(failure_threshold=3, recovery_timeout=30.0)


@pytest.mark.anyio
async def test_real_server_fails_then_recovers(server: FlakyServer, clock: ManualClock) -> None:
    transport = AsyncCircuitBreakerTransport(policy=POLICY, clock=clock)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        assert (await client.get(server.url)).status_code == 200
        server.behaviour = "error"
        for _ in range(3):
            assert (await client.get(server.url)).status_code == 503
        hits = server.hits
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                await client.get(server.url)
        assert server.hits == hits  # failing fast: nothing reached the server
        server.behaviour = "ok"
        clock.advance(30.0)
        assert (await client.get(server.url)).status_code == 200
        assert transport.state(server.url) is CircuitState.CLOSED
    stats = transport.stats()[server.url]
    assert (stats.successes, stats.failures, stats.rejections) == (2, 3, 5)


@pytest.mark.anyio
async def test_real_connection_reset_mid_body_is_a_failure(
    server: FlakyServer, clock: ManualClock
) -> None:
    server.behaviour = "reset_mid_body"
    transport = AsyncCircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=1), clock=clock)
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(server.url)
        assert transport.state(server.url) is CircuitState.OPEN


def test_real_refused_connection_opens_the_sync_circuit(clock: ManualClock) -> None:
    with FlakyServer() as doomed:
        url = doomed.url
    # The server is gone: the port now refuses connections.
    transport = CircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=2), clock=clock)
    with httpx.Client(transport=transport, timeout=5.0) as client:
        for _ in range(2):
            with pytest.raises(httpx.ConnectError):
                client.get(url)
        with pytest.raises(CircuitOpenError):
            client.get(url)
