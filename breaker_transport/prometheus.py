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

from ._tally import COUNTERS, DESCRIPTIONS, STATE_VALUE, Watchable, WatchList, counter_points

__all__ = ["PrometheusMetrics"]


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

    def _families(
        self, names: tuple[str, ...]
    ) -> tuple[GaugeMetricFamily, dict[str, CounterMetricFamily]]:
        prefix = self._prefix
        gauge = GaugeMetricFamily(
            f"{prefix}_state", DESCRIPTIONS["state"], labels=(*names, "circuit")
        )
        counters = {
            counter: CounterMetricFamily(
                f"{prefix}_{counter}", DESCRIPTIONS[counter], labels=(*names, "circuit", "state")
            )
            for counter in COUNTERS
        }
        return gauge, counters

    def describe(self) -> Iterator[Metric]:
        """The metric names, without samples (lets the registry refuse a duplicate)."""
        gauge, counters = self._families(self._watching.label_names)
        yield gauge
        yield from counters.values()

    def collect(self) -> Iterator[Metric]:
        names = self._watching.label_names
        gauge, counters = self._families(names)
        # Stats first: reading them prunes the counts of circuits the transport dropped.
        for labels, stats in self._watching.read_stats():
            values = [labels[name] for name in names]
            for key, circuit in stats.items():
                gauge.add_metric([*values, key], STATE_VALUE[circuit.state])
        for labels, counts in self._watching.read_counts():
            values = [labels[name] for name in names]
            for counter, family in counters.items():
                for key, state, value in counter_points(counts, counter):
                    family.add_metric([*values, key, state.value], value)
        yield gauge
        yield from counters.values()
