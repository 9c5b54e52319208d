"""The httpx flavour: the public transports and ``CircuitOpenError`` for ``httpx``.

Thin on purpose: it names httpx's classes and forwards to the shared core. The httpx2 flavour
(``breaker_transport.httpx2``) is the same few lines over ``httpx2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ._factory import build_client
from ._stream import AsyncBody, SyncBody
from ._transport import (
    AsyncBreakerCore,
    BreakerCore,
    CircuitOpenErrorMixin,
    SyncBreakerCore,
    TransportT,
    kind_map,
)

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from ._factory import HTTPBreakerOptions

    Options = HTTPBreakerOptions[httpx.Limits, "httpx.URL | str | httpx.Proxy"]

__all__ = [
    "AsyncCircuitBreakerTransport",
    "CircuitBreakerTransport",
    "CircuitOpenError",
    "async_breaker_client",
    "breaker_client",
]


class CircuitOpenError(CircuitOpenErrorMixin, httpx.TransportError):
    """The circuit of the request's key is open: the request was not sent.

    A subclass of ``httpx.TransportError``, so ``except httpx.HTTPError`` handlers catch it. It
    is not a ``NetworkError`` or ``TimeoutException``, so retry libraries that retry those (such
    as httpx-retries) do not hammer an open circuit. Attributes: ``request``, ``key`` (the circuit),
    ``retry_after`` (seconds until a probe is allowed: 0 while half-open, ``math.inf`` while forced
    open) and ``state``.
    """

    __module__ = "breaker_transport"  # the name tracebacks and spans show: the public one


class _AsyncBody(AsyncBody, httpx.AsyncByteStream):
    pass


class _SyncBody(SyncBody, httpx.SyncByteStream):
    pass


class _Httpx(BreakerCore[TransportT]):
    """What the core needs to know about httpx, and the typed ``over_http``."""

    _library = "httpx"
    _kinds = kind_map(httpx)
    _open_error = CircuitOpenError
    _response_type = httpx.Response
    _url_type = httpx.URL
    _other_library = ("httpx2", "breaker_transport.httpx2's transports")

    @classmethod
    def over_http(cls, **options: Unpack[Options]) -> Self:
        """A breaker over ``httpx.(Async)HTTPTransport(verify=, cert=, http2=, limits=, proxy=,
        ...)``: the settings a client given ``transport=`` would otherwise ignore. The other
        options are the breaker's (``policy=``, ``per_host=`` ...)."""
        return cls._over_http(options)


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

    if TYPE_CHECKING:  # the core's method serves requests directly: no extra coroutine per call

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response: ...


class CircuitBreakerTransport(
    _Httpx[httpx.BaseTransport], SyncBreakerCore[httpx.BaseTransport], httpx.BaseTransport
):
    """An ``httpx.BaseTransport`` (for ``httpx.Client``) with per-host circuits; thread-safe.

    The same options as ``AsyncCircuitBreakerTransport``; ``transport`` defaults to
    ``httpx.HTTPTransport()``, and ``close()``/``with`` close it.
    """

    _http_transport = httpx.HTTPTransport
    _body = _SyncBody

    if TYPE_CHECKING:  # the core's method serves requests directly: no extra frame per call

        def handle_request(self, request: httpx.Request) -> httpx.Response: ...


def async_breaker_client(
    breaker: AsyncCircuitBreakerTransport,
    *,
    mounts: Mapping[str, httpx.AsyncBaseTransport | None] | None = None,
    trust_env: bool = True,
    **client_options: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every request goes through ``breaker``: each of ``mounts``
    and each environment proxy (when ``trust_env`` and the breaker came from ``over_http``) is
    wrapped by a twin sharing its circuits. ``client_options`` are the other ``AsyncClient``
    options (``timeout``, ``headers``, ``base_url`` ...); transport settings (``verify``,
    ``http2``, ``limits``, ``proxy`` ...) belong to ``over_http`` and are refused here."""
    return build_client(
        httpx.AsyncClient, AsyncCircuitBreakerTransport, breaker, mounts, trust_env, client_options
    )


def breaker_client(
    breaker: CircuitBreakerTransport,
    *,
    mounts: Mapping[str, httpx.BaseTransport | None] | None = None,
    trust_env: bool = True,
    **client_options: Any,
) -> httpx.Client:
    """The ``httpx.Client`` twin of ``async_breaker_client``."""
    return build_client(
        httpx.Client, CircuitBreakerTransport, breaker, mounts, trust_env, client_options
    )
