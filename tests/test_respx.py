"""respx both ways: patching beneath the default inner transport, and a router as the inner one."""

from __future__ import annotations

import httpx
import pytest
import respx

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
)
from breaker_transport.testing import ManualClock, assert_state

pytestmark = pytest.mark.anyio
URL = "https://api.example.com/"


@respx.mock
async def test_respx_mock_beneath_the_default_inner_transport(clock: ManualClock) -> None:
    route = respx.get(URL).mock(
        side_effect=[httpx.Response(503), httpx.ConnectError, httpx.Response(200)]
    )
    transport = AsyncCircuitBreakerTransport(
        policy=BreakerPolicy(failure_threshold=2, recovery_timeout=30), clock=clock
    )
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).status_code == 503
        with pytest.raises(httpx.ConnectError):
            await client.get(URL)
        assert_state(transport, URL, "open")
        with pytest.raises(CircuitOpenError):
            await client.get(URL)
        assert route.call_count == 2  # the rejection never reached respx
        clock.advance(30)
        assert (await client.get(URL)).status_code == 200
        assert_state(transport, URL, CircuitState.CLOSED)


async def test_unmocked_url_raises_through_the_breaker_and_is_not_counted(
    clock: ManualClock,
) -> None:
    transport = AsyncCircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=1), clock=clock)
    with respx.mock(assert_all_called=False):
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(AssertionError):
                await client.get("https://not-mocked.example/")
    stats = transport.stats()["https://not-mocked.example"]
    assert (stats.state, stats.ignored, stats.failures) == (CircuitState.CLOSED, 1, 0)


async def test_router_as_the_inner_transport(clock: ManualClock) -> None:
    router = respx.MockRouter(using=None)
    router.get(URL).respond(502)
    transport = AsyncCircuitBreakerTransport(
        httpx.MockTransport(router.async_handler),
        policy=BreakerPolicy(failure_threshold=1),
        clock=clock,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).status_code == 502
        with pytest.raises(CircuitOpenError):
            await client.get(URL)


def test_respx_with_the_sync_transport(clock: ManualClock) -> None:
    with respx.mock:
        respx.get(URL).mock(side_effect=httpx.ReadTimeout("slow"))
        transport = CircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=1), clock=clock)
        with httpx.Client(transport=transport) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.get(URL)
            with pytest.raises(CircuitOpenError):
                client.get(URL)


def test_a_router_is_not_a_transport() -> None:
    with pytest.raises(TypeError, match="MockTransport"):
        AsyncCircuitBreakerTransport(respx.MockRouter(using=None))  # type: ignore[arg-type]
