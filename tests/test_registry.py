"""Memory stays bounded by max_circuits, and eviction drops what loses nothing first."""

from __future__ import annotations

import httpx

from breaker_transport import BreakerListener, BreakerPolicy, CircuitBreakerTransport, CircuitState
from breaker_transport.testing import ManualClock


def answering(failing: set[str]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda r: httpx.Response(503 if r.url.host in failing else 200))


class Evictions(BreakerListener):
    def __init__(self) -> None:
        self.keys: list[str] = []

    def on_evict(self, key: str) -> None:
        self.keys.append(key)


def test_the_least_recently_used_clean_closed_circuit_goes_first(clock: ManualClock) -> None:
    evictions = Evictions()
    transport = CircuitBreakerTransport(
        answering(set()), max_circuits=3, clock=clock, listeners=[evictions]
    )
    with httpx.Client(transport=transport) as client:
        for host in ("a", "b", "c"):
            client.get(f"https://{host}.example/")
        client.get("https://a.example/")  # a is now the most recently used
        client.get("https://d.example/")
    assert set(transport.stats()) == {"https://a.example", "https://c.example", "https://d.example"}
    assert evictions.keys == ["https://b.example"]


def test_failing_and_open_circuits_are_kept_while_clean_ones_can_go(clock: ManualClock) -> None:
    transport = CircuitBreakerTransport(
        answering({"sick.example", "dead.example"}),
        policy=BreakerPolicy(failure_threshold=2),
        max_circuits=3,
        clock=clock,
    )
    with httpx.Client(transport=transport) as client:
        client.get("https://sick.example/")  # one failure: closed but not clean
        client.get("https://dead.example/")
        client.get("https://dead.example/")  # open
        for n in range(50):
            client.get(f"https://healthy{n}.example/")
    keys = set(transport.stats())
    assert len(keys) == 3
    assert {"https://sick.example", "https://dead.example", "https://healthy49.example"} == keys
    assert transport.state("https://dead.example") is CircuitState.OPEN


def test_open_circuits_go_only_when_no_closed_one_is_left_soonest_ending_first(
    clock: ManualClock,
) -> None:
    transport = CircuitBreakerTransport(
        answering({"a.example", "b.example", "c.example"}),
        policy=BreakerPolicy(failure_threshold=1, recovery_timeout=100.0),
        per_host={"b.example": BreakerPolicy(failure_threshold=1, recovery_timeout=10.0)},
        max_circuits=3,
        clock=clock,
    )
    with httpx.Client(transport=transport) as client:
        for host in ("a", "b", "c"):
            client.get(f"https://{host}.example/")
        transport.force_open("https://c.example")
        client.get("https://new.example/")
    assert set(transport.stats()) == {
        "https://a.example",
        "https://c.example",
        "https://new.example",
    }


def test_thousands_of_hosts_stay_within_the_bound(clock: ManualClock) -> None:
    transport = CircuitBreakerTransport(answering(set()), max_circuits=100, clock=clock)
    with httpx.Client(transport=transport) as client:
        for n in range(2_000):
            client.get(f"https://h{n}.example/")
    assert len(transport.stats()) == 100
    assert len(transport._registry.circuits) == 100
