"""The httpx2 flavour: the same transports and ``CircuitOpenError`` for Pydantic's ``httpx2`` fork.

::

    import httpx2
    from breaker_transport import BreakerPolicy
    from breaker_transport.httpx2 import AsyncCircuitBreakerTransport, CircuitOpenError

    client = httpx2.AsyncClient(transport=AsyncCircuitBreakerTransport(policy=BreakerPolicy()))

httpx2's classes are distinct from httpx's (``httpx.ConnectError`` is not an
``httpx2.TransportError``), so this module names httpx2's own; the state machine, the policies
(they name ``FailureKind``, not classes) and everything else are shared with the httpx flavour.
Install with ``pip install "breaker-transport[httpx2]"`` (httpx2 needs Python 3.11+). Do not mix
the two libraries in one code path: an httpx2 client takes these transports, an httpx client
takes ``breaker_transport``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

try:
    import httpx2
except ImportError as exc:  # pragma: no cover - the extra is installed in the test runs
    raise ImportError(
        "breaker_transport.httpx2 needs the httpx2 package (Python 3.11+): "
        'pip install "breaker-transport[httpx2]"'
    ) from exc

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

    Options = HTTPBreakerOptions[httpx2.Limits, "httpx2.URL | str | httpx2.Proxy"]

__all__ = [
    "AsyncCircuitBreakerTransport",
    "CircuitBreakerTransport",
    "CircuitOpenError",
    "async_breaker_client",
    "breaker_client",
]


class CircuitOpenError(CircuitOpenErrorMixin, httpx2.TransportError):
    """The circuit of the request's key is open: the request was not sent.

    A subclass of ``httpx2.TransportError`` (not of its ``NetworkError``/``TimeoutException``),
    with ``request``, ``key``, ``retry_after`` and ``state``, as ``breaker_transport``'s.
    """


class _AsyncBody(AsyncBody, httpx2.AsyncByteStream):
    pass


class _SyncBody(SyncBody, httpx2.SyncByteStream):
    pass


class _Httpx2(BreakerCore[TransportT]):
    """What the core needs to know about httpx2, and the typed ``over_http``."""

    _library = "httpx2"
    _kinds = kind_map(httpx2)
    _open_error = CircuitOpenError
    _response_type = httpx2.Response
    _url_type = httpx2.URL
    _other_library = ("httpx", "breaker_transport's transports (not breaker_transport.httpx2's)")

    @classmethod
    def over_http(cls, **options: Unpack[Options]) -> Self:
        """A breaker over ``httpx2.(Async)HTTPTransport(**transport options)``; the other options
        are the breaker's. See ``breaker_transport.AsyncCircuitBreakerTransport.over_http``."""
        return cls._over_http(options)


class AsyncCircuitBreakerTransport(
    _Httpx2[httpx2.AsyncBaseTransport],
    AsyncBreakerCore[httpx2.AsyncBaseTransport],
    httpx2.AsyncBaseTransport,
):
    """An ``httpx2.AsyncBaseTransport`` with per-host circuits (inner default:
    ``httpx2.AsyncHTTPTransport()``); options as in ``breaker_transport``'s."""

    _http_transport = httpx2.AsyncHTTPTransport
    _body = _AsyncBody

    if TYPE_CHECKING:  # the core's method serves requests directly: no extra coroutine per call

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response: ...


class CircuitBreakerTransport(
    _Httpx2[httpx2.BaseTransport], SyncBreakerCore[httpx2.BaseTransport], httpx2.BaseTransport
):
    """An ``httpx2.BaseTransport`` (for ``httpx2.Client``) with per-host circuits; thread-safe."""

    _http_transport = httpx2.HTTPTransport
    _body = _SyncBody

    if TYPE_CHECKING:  # the core's method serves requests directly: no extra frame per call

        def handle_request(self, request: httpx2.Request) -> httpx2.Response: ...


def async_breaker_client(
    breaker: AsyncCircuitBreakerTransport,
    *,
    mounts: Mapping[str, httpx2.AsyncBaseTransport | None] | None = None,
    trust_env: bool = True,
    **client_options: Any,
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` whose every request (mounts and environment proxies included)
    goes through ``breaker``; see ``breaker_transport.async_breaker_client``."""
    return build_client(
        httpx2.AsyncClient, AsyncCircuitBreakerTransport, breaker, mounts, trust_env, client_options
    )


def breaker_client(
    breaker: CircuitBreakerTransport,
    *,
    mounts: Mapping[str, httpx2.BaseTransport | None] | None = None,
    trust_env: bool = True,
    **client_options: Any,
) -> httpx2.Client:
    """The ``httpx2.Client`` twin of ``async_breaker_client``."""
    return build_client(
        httpx2.Client, CircuitBreakerTransport, breaker, mounts, trust_env, client_options
    )
