"""The httpx flavour: the public transports and ``CircuitOpenError`` for ``httpx``.

Thin on purpose: it names httpx's classes and forwards to the shared core. The httpx2 flavour
(``breaker_transport.httpx2``) is the same few lines over ``httpx2``.
"""

from __future__ import annotations

import httpx

from ._stream import AsyncBody, SyncBody
from ._transport import (
    AsyncBreakerCore,
    BreakerCore,
    CircuitOpenErrorMixin,
    SyncBreakerCore,
    TransportT,
    kind_map,
)

__all__ = [
    "AsyncCircuitBreakerTransport",
    "CircuitBreakerTransport",
    "CircuitOpenError",
]


class CircuitOpenError(CircuitOpenErrorMixin, httpx.TransportError):
    """The circuit of the request's key is open: the request was not sent.

    A subclass of ``httpx.TransportError``, so ``except httpx.HTTPError`` handlers catch it. It
    is not a ``NetworkError`` or ``TimeoutException``, so retry libraries that retry those (such
    as httpx-retries) do not hammer an open circuit. Attributes: ``request``, ``key`` (the circuit),
    ``retry_after`` (seconds until a probe is allowed: 0 while half-open, ``math.inf`` while forced
    open) and ``state``.
    """


class _AsyncBody(AsyncBody, httpx.AsyncByteStream):
    pass


class _SyncBody(SyncBody, httpx.SyncByteStream):
    pass


class _Httpx(BreakerCore[TransportT]):
    """What the core needs to know about httpx."""

    _library = "httpx"
    _kinds = kind_map(httpx)
    _open_error = CircuitOpenError
    _response_type = httpx.Response
    _url_type = httpx.URL


class AsyncCircuitBreakerTransport(
    _Httpx[httpx.AsyncBaseTransport],
    AsyncBreakerCore[httpx.AsyncBaseTransport],
    httpx.AsyncBaseTransport,
):
    """An ``httpx.AsyncBaseTransport`` that routes every request through per-host circuits.

    ::

        transport = AsyncCircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=5))
        async with httpx.AsyncClient(transport=transport) as client:
            ...

    ``transport`` is the inner transport (default ``httpx.AsyncHTTPTransport()``); ``aclose()``
    and ``async with`` close it. See ``BreakerPolicy`` for when circuits open and recover.
    """

    _http_transport = httpx.AsyncHTTPTransport
    _body = _AsyncBody

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await AsyncBreakerCore.handle_async_request(self, request)
        return response


class CircuitBreakerTransport(
    _Httpx[httpx.BaseTransport], SyncBreakerCore[httpx.BaseTransport], httpx.BaseTransport
):
    """An ``httpx.BaseTransport`` (for ``httpx.Client``) with per-host circuits; thread-safe.

    The same options as ``AsyncCircuitBreakerTransport``; ``transport`` defaults to
    ``httpx.HTTPTransport()``, and ``close()``/``with`` close it.
    """

    _http_transport = httpx.HTTPTransport
    _body = _SyncBody

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = SyncBreakerCore.handle_request(self, request)
        return response
