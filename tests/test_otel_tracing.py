"""opentelemetry-instrumentation-httpx on the same client as the breaker, against a real server.

``instrument()`` patches httpx's own transports (class-level), which sit *beneath* the breaker: a
rejected request never reaches them, so it has no span. ``instrument_client(client)`` wraps the
client's transport, which *is* the breaker: the rejection gets a span, with the error recorded.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("opentelemetry.instrumentation.httpx")

from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
)

from .servers import FlakyServer


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _summary(finished: tuple[ReadableSpan, ...]) -> list[tuple[object, StatusCode, list[str]]]:
    def status(span: ReadableSpan) -> object:
        attributes = span.attributes or {}
        # The stable HTTP semantic conventions, or the older ones (the default of 0.4x-0.6x).
        return attributes.get("http.response.status_code", attributes.get("http.status_code"))

    def exceptions(span: ReadableSpan) -> list[str]:
        names = [str(e.attributes.get("exception.type")) for e in span.events if e.attributes]
        return [name.rsplit(".", 1)[-1] for name in names]

    return [(status(span), span.status.status_code, exceptions(span)) for span in finished]


def _open_then_rejected(client: httpx.Client, url: str) -> None:
    assert client.get(url).status_code == 503  # opens the circuit (threshold 1)
    with pytest.raises(CircuitOpenError):
        client.get(url)


def test_instrument_patches_beneath_the_breaker_so_rejections_have_no_span(
    server: FlakyServer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    server.behaviour = "error"
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        transport = CircuitBreakerTransport(
            httpx.HTTPTransport(), policy=BreakerPolicy(failure_threshold=1)
        )
        with httpx.Client(transport=transport) as client:
            _open_then_rejected(client, server.url)
    finally:
        instrumentor.uninstrument()
    assert _summary(exporter.get_finished_spans()) == [(503, StatusCode.ERROR, [])]
    assert server.hits == 1  # the rejection never left the process


def test_instrument_client_wraps_the_breaker_so_rejections_have_a_span(
    server: FlakyServer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    server.behaviour = "error"
    transport = CircuitBreakerTransport(
        httpx.HTTPTransport(), policy=BreakerPolicy(failure_threshold=1)
    )
    with httpx.Client(transport=transport) as client:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
        try:
            _open_then_rejected(client, server.url)
        finally:
            HTTPXClientInstrumentor.uninstrument_client(client)
    finished = exporter.get_finished_spans()
    assert _summary(finished) == [
        (503, StatusCode.ERROR, []),
        (None, StatusCode.ERROR, ["CircuitOpenError"]),
    ]
    assert server.hits == 1


@pytest.mark.anyio
async def test_instrument_client_on_the_async_client_too(
    server: FlakyServer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    server.behaviour = "error"
    transport = AsyncCircuitBreakerTransport(
        httpx.AsyncHTTPTransport(), policy=BreakerPolicy(failure_threshold=1)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
        try:
            assert (await client.get(server.url)).status_code == 503
            with pytest.raises(CircuitOpenError):
                await client.get(server.url)
        finally:
            HTTPXClientInstrumentor.uninstrument_client(client)
    statuses = [s.status.status_code for s in exporter.get_finished_spans()]
    assert statuses == [StatusCode.ERROR, StatusCode.ERROR]
    assert len(exporter.get_finished_spans()) == 2
