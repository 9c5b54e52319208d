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
