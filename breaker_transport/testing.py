"""Helpers for testing your own breaker configuration, without sleeping and without a network.

::

    from breaker_transport.testing import ManualClock, StateRecorder, assert_state, assert_stats

    clock, changes = ManualClock(), StateRecorder()
    transport = AsyncCircuitBreakerTransport(policy=policy, clock=clock, on_state_change=changes)
    ...                                   # drive failures through respx or MockTransport
    assert_state(transport, "https://api.example.com", "open")
    assert_stats(transport, "https://api.example.com", failures=5, rejections=0)
    clock.advance(policy.recovery_timeout)
    assert_state(transport, "https://api.example.com", "half_open")
    assert changes.transitions() == ["closed->open", "open->half_open"]

``open_circuit(transport, url)`` puts a circuit in the open state as consecutive failures would
(it recovers after ``recovery_timeout`` like any open circuit, unlike ``force_open``), for testing
what your application does while a host is down. Every helper works with the httpx and the httpx2
transports, sync and async.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any, Protocol

from ._circuit import FAILURE, Ticket
from ._keys import key_for
from ._transport import BreakerCore
from ._types import CircuitState, CircuitStats, StateChange

__all__ = [
    "ManualClock",
    "StateRecorder",
    "assert_state",
    "assert_stats",
    "open_circuit",
    "stats_of",
]


class ManualClock:
    """A clock that moves only when told to; pass it as ``clock=`` to a transport. Thread-safe."""

    def __init__(self, start: float = 0.0) -> None:
        if (
            isinstance(start, bool)
            or not isinstance(start, (int, float))
            or not math.isfinite(start)
        ):
            raise TypeError(f"ManualClock(start) takes a finite number, got {start!r}")
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"

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
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise TypeError(f"ManualClock.set(now) takes a finite number, got {now!r}")
        with self._lock:
            if now < self._now:
                raise ValueError(f"ManualClock.set({now!r}) would go back from {self._now!r}")
            self._now = float(now)


class StateRecorder:
    """Records every ``StateChange``; pass it as ``on_state_change=`` to a transport."""

    def __init__(self) -> None:
        self.changes: list[StateChange] = []
        self._lock = threading.Lock()

    def __call__(self, change: StateChange) -> None:
        with self._lock:
            self.changes.append(change)

    def transitions(self, url_or_key: str | None = None) -> list[str]:
        """``["closed->open", "open->half_open", ...]``, of one circuit or (None) of all."""
        key = None if url_or_key is None else key_for(url_or_key)
        with self._lock:
            changes = list(self.changes)
        return [f"{c.old.value}->{c.new.value}" for c in changes if key is None or c.key == key]


class _Inspectable(Protocol):
    def state(self, url_or_key: object) -> CircuitState: ...

    def stats(self) -> object: ...


def _key(transport: object, url_or_key: object) -> str | None:
    if isinstance(transport, BreakerCore):
        return transport._key_of(url_or_key)
    return key_for(url_or_key) if isinstance(url_or_key, str) else None


def stats_of(transport: _Inspectable, url_or_key: object) -> CircuitStats | None:
    """The stats of one circuit (None if it has none yet), found by URL or key."""
    snapshot = transport.stats()
    assert isinstance(snapshot, dict)
    key = _key(transport, url_or_key)
    found = snapshot.get(key) if key is not None else None
    assert found is None or isinstance(found, CircuitStats)
    return found


def assert_state(transport: _Inspectable, url_or_key: object, expected: CircuitState | str) -> None:
    """Assert the state of one circuit, with the circuit's stats in the failure message."""
    want = CircuitState(expected)
    got = transport.state(url_or_key)
    if got is not want:
        raise AssertionError(
            f"circuit {url_or_key!r} is {got.value}, expected {want.value}; "
            f"stats: {stats_of(transport, url_or_key)}"
        )


_STATS_FIELDS = frozenset(field.name for field in dataclasses.fields(CircuitStats))


def assert_stats(transport: _Inspectable, url_or_key: object, **expected: Any) -> None:
    """Assert some fields of one circuit's ``CircuitStats`` (``failures=3, rejections=1``...).

    Only the fields named are compared; the message lists every difference and the full stats.
    A circuit that does not exist yet fails, unless nothing but zero counts is expected of it.
    """
    unknown = set(expected) - _STATS_FIELDS
    if unknown:
        raise TypeError(
            f"assert_stats got unknown field(s) {sorted(unknown)}; known: {sorted(_STATS_FIELDS)}"
        )
    stats = stats_of(transport, url_or_key)
    if stats is None:
        raise AssertionError(f"circuit {url_or_key!r} has no stats yet (no request reached it)")
    wrong = {
        name: (getattr(stats, name), want)
        for name, want in expected.items()
        if getattr(stats, name) != want
    }
    if wrong:
        lines = ", ".join(
            f"{name}={got!r} (expected {want!r})" for name, (got, want) in wrong.items()
        )
        raise AssertionError(f"circuit {url_or_key!r}: {lines}; stats: {stats}")


def open_circuit(transport: BreakerCore[Any], url: str) -> CircuitStats:
    """Open the circuit of ``url`` as consecutive failures would, without sending a request.

    The circuit is the one of the URL's origin (a ``key=`` function is not consulted). The
    failures go through the same state machine as real ones (they count in ``failures``;
    listeners hear the transition) until the circuit's own policy opens it, so it recovers after
    ``recovery_timeout`` like any open circuit. Raises if the policy never opens on failures
    alone (a rate rule whose window it cannot fill), or if the circuit is half-open with every
    probe slot taken.
    """
    if not isinstance(transport, BreakerCore):
        raise TypeError(f"open_circuit needs a breaker transport, got {transport!r}")
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"open_circuit needs a full URL (policies match on its host), got {url!r}")
    key = transport._key_of(url)
    target = transport._url_type(url)
    for _ in range(100_000):  # bounded: a policy that never opens is an error, not a hang
        if transport.state(key) is CircuitState.OPEN:
            stats = stats_of(transport, key)
            assert stats is not None
            return stats
        ticket = transport._locked(lambda now: transport._registry.admit(key, target, now))
        if not isinstance(ticket, Ticket):
            raise RuntimeError(
                f"circuit {key} cannot take a failure now (admit returned {ticket!r}): it is "
                "disabled, or half-open with every probe slot taken"
            )
        transport._settle(ticket, FAILURE, False, None, None)
    raise RuntimeError(f"circuit {key}: 100000 failures did not open it; check its policy")
