"""breaker_transport.testing: what users test their own configuration with.

The first test is the README's "Testing your configuration" example, as written there.
"""

from __future__ import annotations

import httpx
import pytest
import respx

from breaker_transport import AsyncCircuitBreakerTransport, BreakerPolicy, CircuitOpenError
from breaker_transport.testing import (
    ManualClock,
    StateRecorder,
    assert_state,
    assert_stats,
    open_circuit,
    stats_of,
)

from .flavours import Flavour

pytestmark = pytest.mark.anyio
API = "https://api.example.com"


@respx.mock
async def test_readme_example_opens_and_recovers() -> None:
    route = respx.get("https://api.example.com/").mock(return_value=httpx.Response(503))
    clock, changes = ManualClock(), StateRecorder()
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=30.0)
    transport = AsyncCircuitBreakerTransport(policy=policy, clock=clock, on_state_change=changes)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://api.example.com/")
        await client.get("https://api.example.com/")
        assert_state(transport, "https://api.example.com", "open")
        with pytest.raises(CircuitOpenError):
            await client.get("https://api.example.com/")  # not sent: respx saw two calls
        assert_stats(transport, "https://api.example.com", failures=2, rejections=1)
        clock.advance(30.0)
        route.mock(return_value=httpx.Response(200))
        await client.get("https://api.example.com/")  # the probe
        assert_state(transport, "https://api.example.com", "closed")
    assert route.call_count == 3
    assert changes.transitions() == ["closed->open", "open->half_open", "half_open->closed"]


async def test_open_circuit_opens_as_failures_would_and_recovers(
    flavour: Flavour, clock: ManualClock
) -> None:
    changes = StateRecorder()
    policy = BreakerPolicy(failure_threshold=3, recovery_timeout=10.0)
    breaker = flavour.Async(
        flavour.mock(200),
        per_host={"api.example.com": policy},
        clock=clock,
        on_state_change=changes,
    )
    stats = open_circuit(breaker, f"{API}/anything")
    assert (stats.state.value, stats.failures, stats.retry_after) == ("open", 3, 10.0)
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        with pytest.raises(flavour.CircuitOpenError):
            await client.get(API)
        clock.advance(10.0)  # unlike force_open, it goes half-open on time
        assert (await client.get(API)).status_code == 200
    assert changes.transitions(API) == ["closed->open", "open->half_open", "half_open->closed"]
    assert changes.transitions("https://other.example") == []


def test_open_circuit_refuses_what_it_cannot_do(flavour: Flavour, clock: ManualClock) -> None:
    breaker = flavour.Sync(flavour.mock(), clock=clock)
    with pytest.raises(ValueError, match="needs a full URL"):
        open_circuit(breaker, "api.example.com")
    with pytest.raises(TypeError, match="needs a breaker transport"):
        open_circuit(object(), API)  # type: ignore[arg-type]
    breaker.set_mode("disabled")
    with pytest.raises(RuntimeError, match="cannot take a failure now"):
        open_circuit(breaker, API)
    rate_only = flavour.Sync(
        flavour.mock(),
        clock=clock,
        policy=BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=10, window_size=10
        ),
    )
    assert open_circuit(rate_only, API).failures == 10  # opened by the rate rule


def test_assert_stats_names_every_difference(flavour: Flavour, clock: ManualClock) -> None:
    breaker = flavour.Sync(flavour.mock(500, 200), clock=clock)
    with pytest.raises(AssertionError, match="has no stats yet"):
        assert_stats(breaker, API, failures=0)
    with flavour.lib.Client(transport=breaker) as client:
        client.get(API)
        client.get(API)
    assert_stats(breaker, API, failures=1, successes=1, in_flight=0, state="closed")
    with pytest.raises(AssertionError) as caught:
        assert_stats(breaker, f"{API}/path?q=1", failures=2, successes=1, rejections=3)
    message = str(caught.value)
    assert "failures=1 (expected 2)" in message and "rejections=0 (expected 3)" in message
    assert "successes" not in message.split(";")[0]
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['failure'\]"):
        assert_stats(breaker, API, failure=1)
    assert stats_of(breaker, flavour.lib.URL(f"{API}/x")) == stats_of(breaker, API)


def test_assert_state_shows_the_stats_when_it_fails(clock: ManualClock) -> None:
    breaker = AsyncCircuitBreakerTransport(
        httpx.MockTransport(lambda r: httpx.Response(200)), clock=clock
    )
    breaker.force_open(API)
    with pytest.raises(AssertionError, match=r"is open, expected closed; stats: CircuitStats\("):
        assert_state(breaker, API, "closed")


def test_manual_clock_validates_and_never_goes_back() -> None:
    clock = ManualClock(5)
    assert (clock(), clock.advance(1.5), repr(clock)) == (5.0, 6.5, "ManualClock(6.5)")
    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="finite and >= 0"):
            clock.advance(bad)
    with pytest.raises(TypeError, match="takes a number"):
        clock.advance("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="would go back"):
        clock.set(6.0)
    with pytest.raises(TypeError, match="finite number"):
        ManualClock(float("nan"))
