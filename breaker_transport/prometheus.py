"""Prometheus metrics for breaker transports (extra ``prometheus``: ``prometheus_client``).

::

    from breaker_transport.prometheus import PrometheusMetrics

    PrometheusMetrics(transport)              # registers with prometheus_client.REGISTRY

Metrics (label ``circuit`` is the circuit key, ``state`` the state a call was admitted or
rejected in):

================================== ======= =============================================
``circuit_breaker_requests_total``    counter every call: sent, or rejected
``circuit_breaker_failures_total``    counter calls that counted as failures
``circuit_breaker_rejections_total``  counter calls failed fast, not sent
``circuit_breaker_transitions_total`` counter transitions into ``state``
``circuit_breaker_state``             gauge   0 closed, 1 half-open, 2 open (``circuit`` only)
================================== ======= =============================================

The same meanings and, once OpenTelemetry's Prometheus exporter has translated them, the same
names as ``breaker_transport.otel``. This is a custom collector: it reads per-circuit totals at
scrape time, so a request costs one counter bump, and an evicted circuit's series are gone from
the next scrape (see ``_tally.py``). Counters count from when the collector started watching;
``reset()`` on the transport does not lower them.

One collector can watch several transports: give each ``labels=`` that tell them apart
(``watch(other, labels={"client": "search"})``); the registry refuses a second collector with
the same metric names, so use ``watch`` (or a different ``namespace=``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._tally import STATE_VALUE, STATES, Watchable, WatchList

__all__ = ["PrometheusMetrics"]

_DOCS = {
    "requests": "Requests through the circuit: sent, or rejected while open or half-open",
    "failures": "Requests whose outcome counted as a failure",
    "rejections": "Requests failed fast by an open or half-open circuit (not sent)",
    "transitions": "State transitions of the circuit, by the state entered",
    "state": "Current state of the circuit: 0 closed, 1 half-open, 2 open",
}


class PrometheusMetrics(Collector):
    """A ``prometheus_client`` collector for the circuits of one or more transports.

    ``registry`` defaults to the global ``REGISTRY``; pass ``None`` to register it yourself.
    ``namespace`` prefixes every name (``myapp`` -> ``myapp_circuit_breaker_requests_total``).
    """

    def __init__(
        self,
        transport: Watchable | None = None,
        *,
        registry: CollectorRegistry | None = REGISTRY,
        labels: Mapping[str, str] | None = None,
        namespace: str = "",
    ) -> None:
        if not isinstance(namespace, str) or (namespace and not namespace.isidentifier()):
            raise ValueError(
                f"namespace must be a metric-name prefix like 'myapp', got {namespace!r}"
            )
        self._prefix = f"{namespace}_circuit_breaker" if namespace else "circuit_breaker"
        self._watching = WatchList()
        self._registry = registry
        if transport is not None:
            self._watching.add(transport, labels)
        elif labels is not None:
            raise TypeError("labels= needs a transport; pass both, or use watch()")
        if registry is not None:
            registry.register(self)

    def watch(self, transport: Watchable, *, labels: Mapping[str, str] | None = None) -> None:
        """Report one more transport (each needs ``labels`` that tell it apart)."""
        self._watching.add(transport, labels)

    def unregister(self) -> None:
        """Remove the collector from the registry it registered with."""
        if self._registry is not None:
            self._registry.unregister(self)
            self._registry = None

    def _families(self, names: tuple[str, ...]) -> dict[str, Metric]:
        prefix = self._prefix
        series = (*names, "circuit", "state")
        return {
            "requests": CounterMetricFamily(f"{prefix}_requests", _DOCS["requests"], labels=series),
            "failures": CounterMetricFamily(f"{prefix}_failures", _DOCS["failures"], labels=series),
            "rejections": CounterMetricFamily(
                f"{prefix}_rejections", _DOCS["rejections"], labels=series
            ),
            "transitions": CounterMetricFamily(
                f"{prefix}_transitions", _DOCS["transitions"], labels=series
            ),
            "state": GaugeMetricFamily(
                f"{prefix}_state", _DOCS["state"], labels=(*names, "circuit")
            ),
        }

    def describe(self) -> Iterator[Metric]:
        """The metric names, without samples (lets the registry refuse a duplicate)."""
        yield from self._families(self._watching.label_names).values()

    def collect(self) -> Iterator[Metric]:
        names = self._watching.label_names
        families = self._families(names)
        state = families["state"]
        assert isinstance(state, GaugeMetricFamily)
        for labels, stats in self._watching.read_stats():
            values = [labels[name] for name in names]
            for key, circuit in stats.items():
                state.add_metric([*values, key], STATE_VALUE[circuit.state])
        for labels, counts in self._watching.read_counts():
            values = [labels[name] for name in names]
            for key, tally in counts.items():
                for each in STATES:
                    series = [*values, key, each.value]
                    results = tally.by_state[each]
                    for name, value in (
                        ("requests", sum(results.values())),
                        ("failures", results["failure"]),
                        ("rejections", results["rejected"]),
                        ("transitions", tally.transitions[each]),
                    ):
                        if value:
                            family = families[name]
                            assert isinstance(family, CounterMetricFamily)
                            family.add_metric(series, value)
        yield from families.values()
