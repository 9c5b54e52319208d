"""The Prometheus exporter against a real prometheus_client CollectorRegistry."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from breaker_transport import BreakerPolicy, CircuitBreakerTransport, CircuitOpenError
from breaker_transport.prometheus import PrometheusMetrics
from breaker_transport.testing import ManualClock

UP, DOWN = "https://up.example", "https://down.example"


def _upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503 if request.url.host.startswith("down") else 200)


def make(clock: ManualClock, **kwargs: object) -> CircuitBreakerTransport:
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=10.0)
    return CircuitBreakerTransport(
        httpx.MockTransport(_upstream),
        policy=policy,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


def drive(transport: CircuitBreakerTransport, clock: ManualClock) -> None:
    with httpx.Client(transport=transport) as client:
        client.get(UP + "/a")
        client.get(UP + "/b?x=1")
        client.get(DOWN + "/1")
        client.get(DOWN + "/2")  # opens
        for _ in range(2):
            with pytest.raises(CircuitOpenError):
                client.get(DOWN + "/3")
        clock.advance(10)
        client.get(DOWN + "/probe")  # fails: open again


def test_counters_and_gauge_with_prometheus_names(clock: ManualClock) -> None:
    registry = CollectorRegistry()
    transport = make(clock)
    PrometheusMetrics(transport, registry=registry)
    drive(transport, clock)
    value = registry.get_sample_value
    assert value("circuit_breaker_requests_total", {"circuit": UP, "state": "closed"}) == 2
    assert value("circuit_breaker_requests_total", {"circuit": DOWN, "state": "closed"}) == 2
    assert value("circuit_breaker_requests_total", {"circuit": DOWN, "state": "open"}) == 2
    assert value("circuit_breaker_requests_total", {"circuit": DOWN, "state": "half_open"}) == 1
    assert value("circuit_breaker_failures_total", {"circuit": DOWN, "state": "closed"}) == 2
    assert value("circuit_breaker_failures_total", {"circuit": DOWN, "state": "half_open"}) == 1
    assert value("circuit_breaker_failures_total", {"circuit": UP, "state": "closed"}) is None
    assert value("circuit_breaker_rejections_total", {"circuit": DOWN, "state": "open"}) == 2
    assert value("circuit_breaker_transitions_total", {"circuit": DOWN, "state": "open"}) == 2
    assert value("circuit_breaker_state", {"circuit": UP}) == 0
    assert value("circuit_breaker_state", {"circuit": DOWN}) == 2
    clock.advance(20)  # the lazy transition shows at the next scrape
    assert value("circuit_breaker_state", {"circuit": DOWN}) == 1


def test_the_exposition_parses_and_labels_are_keys_not_urls(clock: ManualClock) -> None:
    registry = CollectorRegistry()
    transport = make(clock)
    PrometheusMetrics(transport, registry=registry)
    drive(transport, clock)
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"circuit_breaker_requests", "circuit_breaker_state"} <= set(families)
    assert families["circuit_breaker_requests"].type == "counter"
    assert families["circuit_breaker_state"].type == "gauge"
    circuits = {s.labels["circuit"] for f in families.values() for s in f.samples}
    assert circuits == {UP, DOWN}  # never "/a", "?x=1" or another path
    assert "# HELP circuit_breaker_state Current state of the circuit: 0 closed" in text


def test_series_are_bounded_by_max_circuits_and_removed_on_eviction(clock: ManualClock) -> None:
    registry = CollectorRegistry()
    transport = make(clock, max_circuits=3)
    PrometheusMetrics(transport, registry=registry)
    with httpx.Client(transport=transport) as client:
        for i in range(10):
            client.get(f"https://h{i}.example/page/{i}")
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    gauge = {s.labels["circuit"] for s in families["circuit_breaker_state"].samples}
    assert gauge == {"https://h7.example", "https://h8.example", "https://h9.example"}
    counted = {
        s.labels["circuit"]
        for s in families["circuit_breaker_requests"].samples
        if s.name.endswith("_total")
    }
    assert counted == gauge


def test_several_transports_in_one_registry(clock: ManualClock) -> None:
    registry = CollectorRegistry()
    payments, search = make(clock), make(clock)
    metrics = PrometheusMetrics(payments, registry=registry, labels={"client": "payments"})
    metrics.watch(search, labels={"client": "search"})
    for transport in (payments, search):
        with httpx.Client(transport=transport) as client:
            client.get(UP + "/")
    for client in ("payments", "search"):
        labels = {"client": client, "circuit": UP, "state": "closed"}
        assert registry.get_sample_value("circuit_breaker_requests_total", labels) == 1
    # A second collector with the same names is refused by the registry itself.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusMetrics(make(clock), registry=registry, labels={"client": "other"})


def test_namespace_and_unregister(clock: ManualClock) -> None:
    registry = CollectorRegistry()
    transport = make(clock)
    metrics = PrometheusMetrics(transport, registry=registry, namespace="myapp")
    drive(transport, clock)
    assert registry.get_sample_value("myapp_circuit_breaker_state", {"circuit": DOWN}) == 2
    metrics.unregister()
    assert registry.get_sample_value("myapp_circuit_breaker_state", {"circuit": DOWN}) is None
    metrics.unregister()  # idempotent


def test_a_collected_transport_drops_out(clock: ManualClock) -> None:
    import gc

    registry = CollectorRegistry()
    transport = make(clock)
    PrometheusMetrics(transport, registry=registry)
    drive(transport, clock)
    assert registry.get_sample_value("circuit_breaker_state", {"circuit": DOWN}) == 2
    del transport
    gc.collect()
    assert registry.get_sample_value("circuit_breaker_state", {"circuit": DOWN}) is None


def test_bad_arguments(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="namespace must be a metric-name prefix"):
        PrometheusMetrics(make(clock), registry=None, namespace="my-app")
    with pytest.raises(TypeError, match="labels= needs a transport"):
        PrometheusMetrics(registry=None, labels={"client": "x"})
    with pytest.raises(ValueError, match="must be an identifier"):
        PrometheusMetrics(make(clock), registry=None, labels={"bad name": "x"})
