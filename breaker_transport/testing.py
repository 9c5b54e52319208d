"""Helpers for testing your own breaker configuration, without sleeping.

::

    from breaker_transport.testing import ManualClock, assert_state

    clock = ManualClock()
    transport = AsyncCircuitBreakerTransport(inner, policy=policy, clock=clock)
    ...                                   # drive failures through respx or MockTransport
    assert_state(transport, "https://api.example.com", "open")
    clock.advance(policy.recovery_timeout)
    assert_state(transport, "https://api.example.com", "half_open")
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

from ._types import CircuitState, CircuitStats

__all__ = ["ManualClock", "assert_state", "stats_of"]


class ManualClock:
    """A clock that moves only when told to; pass it as ``clock=`` to a transport. Thread-safe."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"ManualClock.advance(seconds) takes a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(
                f"ManualClock.advance(seconds) must be finite and >= 0, got {seconds!r}"
            )
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (never backwards: a monotonic clock does not go back)."""
        with self._lock:
            if now < self._now:
                raise ValueError(f"ManualClock.set({now!r}) would go back from {self._now!r}")
            self._now = float(now)


class _Inspectable(Protocol):
    def state(self, url_or_key: object) -> CircuitState: ...

    def stats(self) -> object: ...


def assert_state(transport: _Inspectable, url_or_key: object, expected: CircuitState | str) -> None:
    """Assert the state of one circuit, with the circuit's stats in the failure message."""
    want = CircuitState(expected)
    got = transport.state(url_or_key)
    if got is not want:
        raise AssertionError(
            f"circuit {url_or_key!r} is {got.value}, expected {want.value}; "
            f"stats: {stats_of(transport, url_or_key)}"
        )


def stats_of(transport: _Inspectable, url_or_key: object) -> CircuitStats | None:
    """The stats of one circuit (None if it has none yet), found by URL or key."""
    from ._keys import key_for

    key = key_for(url_or_key) if isinstance(url_or_key, str) else None
    snapshot = transport.stats()
    assert isinstance(snapshot, dict)
    if key is None:
        key = next((k for k in snapshot if str(url_or_key).startswith(k)), None)
    found = snapshot.get(key) if key is not None else None
    assert found is None or isinstance(found, CircuitStats)
    return found
