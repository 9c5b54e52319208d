"""The OpenTelemetry exporter against the real SDK's in-memory metric reader."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
)
from breaker_transport.otel import OpenTelemetryMetrics
from breaker_transport.testing import ManualClock

Points = dict[str, dict[frozenset[tuple[str, Any]], float]]


def read(reader: InMemoryMetricReader) -> Points:
    """name -> {attributes: value} for one collection."""
    points: Points = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing was observed at all
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "breaker_transport"
            for metric in scope.metrics:
                series = points.setdefault(metric.name, {})
                for point in metric.data.data_points:  # type: ignore[union-attr]
                    series[frozenset(point.attributes.items())] = point.value  # type: ignore[union-attr]
    return points


def at(**attributes: str) -> frozenset[tuple[str, Any]]:
    return frozenset(attributes.items())


def _upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503 if request.url.host.startswith("down") else 200)


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


def make(clock: ManualClock, **kwargs: Any) -> CircuitBreakerTransport:
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=10.0)
    return CircuitBreakerTransport(
        httpx.MockTransport(_upstream), policy=policy, clock=clock, **kwargs
    )


def test_counters_by_circuit_and_state_and_the_state_gauge(
    clock: ManualClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    transport = make(clock)
    OpenTelemetryMetrics(transport, meter_provider=provider)
    up, down = "https://up.example", "https://down.example"
    with httpx.Client(transport=transport) as client:
        for path in ("/a", "/b?q=1", "/c/d"):  # three URLs, one circuit
            client.get(up + path)
        client.get(down + "/x")
        client.get(down + "/y")  # opens
        for _ in range(3):
            with pytest.raises(CircuitOpenError):
                client.get(down + "/z")
        clock.advance(10)
        client.get(down + "/probe")  # half-open probe fails: open again
    points = read(reader)
    assert points["circuit_breaker.requests"] == {
        at(circuit=up, state="closed"): 3,
        at(circuit=down, state="closed"): 2,
        at(circuit=down, state="open"): 3,
        at(circuit=down, state="half_open"): 1,
    }
    assert points["circuit_breaker.failures"] == {
        at(circuit=down, state="closed"): 2,
        at(circuit=down, state="half_open"): 1,
    }
    assert points["circuit_breaker.rejections"] == {at(circuit=down, state="open"): 3}
    assert points["circuit_breaker.transitions"] == {
        at(circuit=down, state="open"): 2,
        at(circuit=down, state="half_open"): 1,
    }
    assert points["circuit_breaker.state"] == {at(circuit=up): 0, at(circuit=down): 2}
    # Counters are cumulative: a second collection reports the same totals.
    assert read(reader)["circuit_breaker.requests"][at(circuit=up, state="closed")] == 3


def test_the_state_gauge_sees_the_lazy_half_open_transition(
    clock: ManualClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    transport = make(clock)
    OpenTelemetryMetrics(transport, meter_provider=provider)
    with httpx.Client(transport=transport) as client:
        client.get("https://down.example/")
        client.get("https://down.example/")
    assert read(reader)["circuit_breaker.state"] == {at(circuit="https://down.example"): 2}
    clock.advance(10)
    assert read(reader)["circuit_breaker.state"] == {at(circuit="https://down.example"): 1}


def test_an_evicted_circuit_series_disappear(
    clock: ManualClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    transport = make(clock, max_circuits=2)
    OpenTelemetryMetrics(transport, meter_provider=provider)
    with httpx.Client(transport=transport) as client:
        client.get("https://a.example/")
        client.get("https://b.example/")
        assert len(read(reader)["circuit_breaker.state"]) == 2
        client.get("https://c.example/")  # evicts a (least recently used)
    points = read(reader)
    assert set(points["circuit_breaker.state"]) == {
        at(circuit="https://b.example"),
        at(circuit="https://c.example"),
    }
    circuits = {dict(k)["circuit"] for k in points["circuit_breaker.requests"]}
    assert circuits == {"https://b.example", "https://c.example"}


class _Streaming(httpx.BaseTransport):
    """Answers with a body that is not read yet, as a real network transport does."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"body"))


def test_a_call_settling_after_its_circuit_was_evicted_leaves_no_series(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    transport = CircuitBreakerTransport(_Streaming(), max_circuits=1)
    OpenTelemetryMetrics(transport, meter_provider=provider)
    with httpx.Client(transport=transport) as client:
        # A streamed response keeps its call in flight until it is read...
        with client.stream("GET", "https://slow.example/") as held:
            client.get("https://other.example/")  # ...and the eviction takes its circuit,
            held.read()  # so this settles a call whose circuit is gone.
    points = read(reader)
    assert {dict(k)["circuit"] for k in points["circuit_breaker.state"]} == {
        "https://other.example"
    }
    assert {dict(k)["circuit"] for k in points["circuit_breaker.requests"]} == {
        "https://other.example"
    }


def test_several_transports_need_attributes_that_tell_them_apart(
    clock: ManualClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    payments, search = make(clock), make(clock)
    metrics = OpenTelemetryMetrics(payments, meter_provider=provider, attributes={"client": "pay"})
    with pytest.raises(ValueError, match="the same label names"):
        metrics.watch(search, attributes={"service": "search"})
    with pytest.raises(ValueError, match="has the labels"):
        metrics.watch(search, attributes={"client": "pay"})
    with pytest.raises(ValueError, match="reserved"):
        metrics.watch(search, attributes={"circuit": "x"})
    with pytest.raises(ValueError, match="watched already"):
        metrics.watch(payments, attributes={"client": "again"})
    metrics.watch(search, attributes={"client": "search"})
    for transport in (payments, search):
        with httpx.Client(transport=transport) as client:
            client.get("https://api.example/")
    assert read(reader)["circuit_breaker.state"] == {
        at(client="pay", circuit="https://api.example"): 0,
        at(client="search", circuit="https://api.example"): 0,
    }


def test_a_second_transport_without_attributes_is_refused(
    clock: ManualClock, provider: MeterProvider
) -> None:
    metrics = OpenTelemetryMetrics(make(clock), meter_provider=provider)
    with pytest.raises(ValueError, match="give each of them labels="):
        metrics.watch(make(clock), attributes={"client": "b"})


def test_close_stops_reporting(
    clock: ManualClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    transport = make(clock)
    metrics = OpenTelemetryMetrics(transport, meter_provider=provider, prefix="myapp.breaker")
    with httpx.Client(transport=transport) as client:
        client.get("https://api.example/")
    assert "myapp.breaker.requests" in read(reader)
    metrics.close()
    assert not any(read(reader).values())


def test_bad_arguments(clock: ManualClock, provider: MeterProvider) -> None:
    with pytest.raises(ValueError, match="prefix must be a dotted name"):
        OpenTelemetryMetrics(make(clock), meter_provider=provider, prefix="no spaces")
    with pytest.raises(TypeError, match="expected a breaker transport"):
        OpenTelemetryMetrics(httpx.MockTransport(_upstream), meter_provider=provider)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="labels must map str to str"):
        OpenTelemetryMetrics(make(clock), meter_provider=provider, attributes={"a": 1})  # type: ignore[dict-item]


def test_counts_are_exact_across_threads(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    transport = CircuitBreakerTransport(httpx.MockTransport(_upstream))
    OpenTelemetryMetrics(transport, meter_provider=provider)
    barrier = threading.Barrier(8)

    def hammer() -> None:
        with httpx.Client(transport=transport) as client:
            barrier.wait(timeout=10)
            for _ in range(250):
                client.get("https://api.example/")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    key = at(circuit="https://api.example", state="closed")
    assert read(reader)["circuit_breaker.requests"][key] == 2000


@pytest.mark.anyio
async def test_the_async_transport_reports_the_same(
    clock: ManualClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    policy = BreakerPolicy(failure_threshold=1)
    transport = AsyncCircuitBreakerTransport(
        httpx.MockTransport(_upstream), policy=policy, clock=clock
    )
    OpenTelemetryMetrics(transport, meter_provider=provider)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("https://down.example/")
        with pytest.raises(CircuitOpenError):
            await client.get("https://down.example/")
    points = read(reader)
    assert points["circuit_breaker.rejections"] == {
        at(circuit="https://down.example", state="open"): 1
    }
    assert points["circuit_breaker.state"] == {at(circuit="https://down.example"): 2}
