"""Regression tests for bugs the model-based, fault and bad-input tests found (one test per fix)."""

from __future__ import annotations

import httpx

from breaker_transport import BreakerPolicy, CircuitBreakerTransport, CircuitState
from breaker_transport.testing import ManualClock

from .helpers import fixed

URL = "https://api.example.com/"
KEY = "https://api.example.com"


def test_the_failure_that_trips_the_consecutive_rule_enters_the_window() -> None:
    """It used to open the circuit before entering the window, so stats() of the open circuit
    showed a window one call short (window_calls 1 and failure_rate None here)."""
    policy = BreakerPolicy(failure_threshold=2, failure_rate_threshold=0.9, minimum_calls=2)
    transport = CircuitBreakerTransport(fixed(503), policy=policy, clock=ManualClock())
    with httpx.Client(transport=transport) as client:
        client.get(URL)
        client.get(URL)
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.OPEN
    assert (stats.window_calls, stats.failure_rate) == (2, 1.0)


def test_a_failure_rate_that_exactly_reaches_the_threshold_trips() -> None:
    """7 failures in the default window of 100 calls reach 7%; it used to compare with
    0.07 * 100 == 7.000000000000001 and need an eighth failure."""
    policy = BreakerPolicy(failure_threshold=None, failure_rate_threshold=0.07, minimum_calls=100)
    statuses = iter([503] * 7 + [200] * 93)
    inner = httpx.MockTransport(lambda request: httpx.Response(next(statuses)))
    transport = CircuitBreakerTransport(inner, policy=policy, clock=ManualClock())
    with httpx.Client(transport=transport) as client:
        for _ in range(100):
            client.get(URL)
    assert transport.state(URL) is CircuitState.OPEN
