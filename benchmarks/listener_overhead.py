"""What the per-request outcome hook costs on the closed path: listeners off vs on.

    python benchmarks/listener_overhead.py [--calls 20000] [--repeats 5]

Drives ``handle_request`` / ``handle_async_request`` directly over an inner transport that answers
at once (a pre-read 200), so the numbers are the breaker's own cost per call, with and without
``on_call`` listeners: a no-op one (the price of building and dispatching ``CallEvent``), the
OpenTelemetry exporter (SDK ``MeterProvider``) and the Prometheus collector. Bounded: ``calls`` x
``repeats`` per configuration, best repeat reported; needs the ``otel``/``prometheus`` extras and
``opentelemetry-sdk`` for those rows (they are skipped otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import httpx

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerListener,
    CallEvent,
    CircuitBreakerTransport,
)


class _Answer(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """One pre-read 200, handed back every time: building a Response costs far more than the
    breaker does, and would bury its cost in noise."""

    def __init__(self) -> None:
        self.response = httpx.Response(200, content=b"ok")
        self.response.read()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.handle_request(request)


class _NoOp(BreakerListener):
    def on_call(self, event: CallEvent) -> None:
        pass


Attach = Callable[[CircuitBreakerTransport | AsyncCircuitBreakerTransport], None]


def _configs() -> dict[str, Attach | None]:
    configs: dict[str, Attach | None] = {
        "no listeners": lambda t: None,
        "no-op on_call listener": lambda t: t.add_listener(_NoOp()),
    }
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from breaker_transport.otel import OpenTelemetryMetrics

        def otel(t: CircuitBreakerTransport | AsyncCircuitBreakerTransport) -> None:
            provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            OpenTelemetryMetrics(t, meter_provider=provider)

        configs["OpenTelemetryMetrics"] = otel
    except ImportError:
        configs["OpenTelemetryMetrics"] = None
    try:
        from prometheus_client import CollectorRegistry

        from breaker_transport.prometheus import PrometheusMetrics

        def prom(t: CircuitBreakerTransport | AsyncCircuitBreakerTransport) -> None:
            PrometheusMetrics(t, registry=CollectorRegistry())

        configs["PrometheusMetrics"] = prom
    except ImportError:
        configs["PrometheusMetrics"] = None
    if configs["OpenTelemetryMetrics"] and configs["PrometheusMetrics"]:
        both_otel, both_prom = configs["OpenTelemetryMetrics"], configs["PrometheusMetrics"]

        def both(t: CircuitBreakerTransport | AsyncCircuitBreakerTransport) -> None:
            both_otel(t)
            both_prom(t)

        configs["both exporters"] = both
    return configs


def _sync_run(transport: httpx.BaseTransport, request: httpx.Request, calls: int) -> float:
    handle = transport.handle_request
    start = time.thread_time()
    for _ in range(calls):
        handle(request)
    return time.thread_time() - start


async def _async_run(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, calls: int
) -> float:
    handle = transport.handle_async_request
    start = time.thread_time()
    for _ in range(calls):
        await handle(request)
    return time.thread_time() - start


def measure(calls: int, repeats: int) -> dict[str, dict[str, float]]:
    """{flavour: {config: ns per call}}, the inner transport's own cost subtracted.

    Timed in this thread's CPU time (``time.thread_time``), so waiting for a core on a busy
    machine does not count; the configurations are interleaved within each repeat and the best
    repeat is kept, so what noise is left hits every row alike.
    """
    request = httpx.Request("GET", "https://api.example/")
    sync: dict[str, httpx.BaseTransport] = {"inner transport alone": _Answer()}
    asyn: dict[str, httpx.AsyncBaseTransport] = {"inner transport alone": _Answer()}
    for name, attach in _configs().items():
        if attach is None:
            continue
        s, a = CircuitBreakerTransport(_Answer()), AsyncCircuitBreakerTransport(_Answer())
        attach(s)
        attach(a)
        sync[name], asyn[name] = s, a
    best_sync = dict.fromkeys(sync, float("inf"))
    best_async = dict.fromkeys(asyn, float("inf"))

    async def async_round() -> None:
        for name, transport in asyn.items():
            best_async[name] = min(best_async[name], await _async_run(transport, request, calls))

    for _ in range(repeats):
        for name, transport in sync.items():
            best_sync[name] = min(best_sync[name], _sync_run(transport, request, calls))
        asyncio.run(async_round())
    results: dict[str, dict[str, float]] = {"sync": {}, "async": {}}
    for flavour, best in (("sync", best_sync), ("async", best_async)):
        base = best["inner transport alone"]
        for name, seconds in best.items():
            cost = seconds if name == "inner transport alone" else seconds - base
            results[flavour][name] = cost / calls * 1e9
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not 1 <= args.calls <= 1_000_000 or not 1 <= args.repeats <= 50:
        parser.error("--calls must be in [1, 1e6] and --repeats in [1, 50]")
    results = measure(args.calls, args.repeats)
    print(f"closed path, {args.calls} calls x best of {args.repeats}; CPU ns per call")
    print(f"{'':28}{'sync':>10}{'async':>10}")
    for name in results["sync"]:
        label = name if name == "inner transport alone" else f"breaker, {name}"
        print(f"{label:<36}{results['sync'][name]:>10.0f}{results['async'][name]:>10.0f}")
    print("(rows after the first: the breaker's cost on top of the inner transport)")


if __name__ == "__main__":
    main()
