"""OpenTelemetry metrics for breaker transports (extra ``otel``: ``opentelemetry-api``).

::

    from breaker_transport.otel import OpenTelemetryMetrics

    transport = AsyncCircuitBreakerTransport(policy=...)
    OpenTelemetryMetrics(transport)                    # the global MeterProvider, or pass one

Instruments (meter ``breaker_transport``; attribute ``circuit`` is the circuit key, ``state`` the
state a call was admitted or rejected in):

============================== ================= ============================================
``circuit_breaker.requests``   counter {request} every call: sent, or rejected (circuit, state)
``circuit_breaker.failures``   counter {request} calls that counted as failures (circuit, state)
``circuit_breaker.rejections`` counter {request} calls failed fast, not sent (circuit, state)
``circuit_breaker.transitions`` counter          transitions into ``state`` (circuit, state)
``circuit_breaker.state``      gauge             0 closed, 1 half-open, 2 open (circuit)
============================== ================= ============================================

All of them are asynchronous (observable) instruments read from per-circuit totals at collection
time, so a request costs one counter bump, and an evicted circuit's series stop being reported
(see ``_tally.py``). Counters count from when the exporter started watching; ``reset()`` on the
transport does not lower them. An OpenTelemetry Prometheus exporter turns these names into the
same ones ``breaker_transport.prometheus`` uses (``circuit_breaker_requests_total``, ...).

One instance can watch several transports: give each ``attributes=`` that tell them apart
(``watch(other, attributes={"client": "search"})``). Instrument names are registered once per
meter, so use one ``OpenTelemetryMetrics`` (or different ``prefix=``) per meter provider.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from ._tally import COUNTERS, DESCRIPTIONS, STATE_VALUE, Watchable, WatchList, counter_points

__all__ = ["OpenTelemetryMetrics"]


class OpenTelemetryMetrics:
    """Reports the circuits of one or more transports as OpenTelemetry metrics."""

    def __init__(
        self,
        transport: Watchable | None = None,
        *,
        meter_provider: MeterProvider | None = None,
        attributes: Mapping[str, str] | None = None,
        prefix: str = "circuit_breaker",
    ) -> None:
        if not isinstance(prefix, str) or not prefix or not prefix.replace(".", "_").isidentifier():
            raise ValueError(
                f"prefix must be a dotted name like 'circuit_breaker' or 'myapp.breaker', "
                f"got {prefix!r}"
            )
        from . import __version__

        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._meter = provider.get_meter("breaker_transport", __version__)
        self._watching = WatchList()
        meter = self._meter
        # The gauge first: its callback reads stats() and prunes counts of circuits the
        # transport no longer holds, and the SDK runs callbacks in registration order, so the
        # counters of the same collection are already pruned (elsewhere: one collection later).
        meter.create_observable_gauge(
            f"{prefix}.state", callbacks=[self._state], unit="1", description=DESCRIPTIONS["state"]
        )
        for counter in COUNTERS:
            meter.create_observable_counter(
                f"{prefix}.{counter}",
                callbacks=[functools.partial(self._counter, counter)],
                unit="{transition}" if counter == "transitions" else "{request}",
                description=DESCRIPTIONS[counter],
            )
        if transport is not None:
            self.watch(transport, attributes=attributes)
        elif attributes is not None:
            raise TypeError("attributes= needs a transport; pass both, or use watch()")

    def watch(self, transport: Watchable, *, attributes: Mapping[str, str] | None = None) -> None:
        """Report one more transport (each needs ``attributes`` that tell it apart)."""
        self._watching.add(transport, attributes)

    def close(self) -> None:
        """Stop reporting (the OpenTelemetry API cannot unregister callbacks; they go quiet)."""
        self._watching.closed = True

    # -- callbacks ----------------------------------------------------------------------------

    def _counter(self, counter: str, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, {**labels, "circuit": key, "state": state.value})
            for labels, counts in self._watching.read_counts()
            for key, state, value in counter_points(counts, counter)
        ]

    def _state(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for labels, stats in self._watching.read_stats():
            for key, circuit in stats.items():
                observations.append(
                    Observation(STATE_VALUE[circuit.state], {**labels, "circuit": key})
                )
        return observations

    def __repr__(self) -> str:
        return f"<OpenTelemetryMetrics meter={self._meter!r}>"
