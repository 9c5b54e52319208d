"""The httpx flavour: the public transports and ``CircuitOpenError`` for ``httpx``.

Thin on purpose: it names httpx's classes and forwards to the shared core. The httpx2 flavour
(``breaker_transport.httpx2``) is the same few lines over ``httpx2``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from ._events import BreakerListener
from ._policy import BreakerPolicy
from ._stream import AsyncBody, SyncBody
from ._transport import (
    AsyncBreakerCore,
    CircuitOpenErrorMixin,
    Clock,
    Fallback,
    KeyFunction,
    SyncBreakerCore,
    kind_map,
)
from ._types import StateChange
from .storage import Storage

__all__ = ["AsyncCircuitBreakerTransport", "CircuitBreakerTransport", "CircuitOpenError"]


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


_KINDS = kind_map(httpx)


class AsyncCircuitBreakerTransport(AsyncBreakerCore, httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that routes every request through per-host circuits.

    ::

        transport = AsyncCircuitBreakerTransport(policy=BreakerPolicy(failure_threshold=5))
        async with httpx.AsyncClient(transport=transport) as client:
            ...

    ``transport`` is the inner transport (default ``httpx.AsyncHTTPTransport()``); ``aclose()``
    and ``async with`` close it. See ``BreakerPolicy`` for when circuits open and recover.
    ``storage`` keeps the circuit state: in process by default, or shared by every worker with
    ``RedisStorage(redis.asyncio.Redis(...))`` (then ``await areset()`` and friends act on it).
    """

    _library = "httpx"
    _kinds = _KINDS
    _open_error = CircuitOpenError
    _response_type = httpx.Response
    _url_type = httpx.URL
    _body = _AsyncBody

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        policy: BreakerPolicy | None = None,
        per_host: Mapping[str, BreakerPolicy] | None = None,
        key: KeyFunction | None = None,
        on_state_change: Callable[[StateChange], object] | None = None,
        fallback: Fallback | None = None,
        clock: Clock | None = None,
        max_circuits: int = 10_000,
        rng: random.Random | None = None,
        listeners: Iterable[BreakerListener] = (),
        storage: Storage | None = None,
    ) -> None:
        if transport is None:
            transport = httpx.AsyncHTTPTransport()
        elif not callable(getattr(transport, "handle_async_request", None)):
            raise TypeError(
                "transport must be an httpx.AsyncBaseTransport (it has no handle_async_request), "
                f"got {transport!r} ({type(transport).__name__}); wrap a respx router as "
                "httpx.MockTransport(router.async_handler)"
            )
        self._setup(
            transport,
            policy=policy,
            per_host=per_host,
            key=key,
            on_state_change=on_state_change,
            fallback=fallback,
            clock=clock,
            max_circuits=max_circuits,
            rng=rng,
            listeners=listeners,
            storage=storage,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await AsyncBreakerCore.handle_async_request(self, request)
        return response

    async def __aenter__(self) -> AsyncCircuitBreakerTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.aclose()


class CircuitBreakerTransport(SyncBreakerCore, httpx.BaseTransport):
    """An ``httpx.BaseTransport`` (for ``httpx.Client``) with per-host circuits; thread-safe.

    The same options as ``AsyncCircuitBreakerTransport``; ``transport`` defaults to
    ``httpx.HTTPTransport()``, and ``close()``/``with`` close it. A shared ``storage`` takes a
    sync client: ``RedisStorage(redis.Redis(...))``.
    """

    _library = "httpx"
    _kinds = _KINDS
    _open_error = CircuitOpenError
    _response_type = httpx.Response
    _url_type = httpx.URL
    _body = _SyncBody

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        policy: BreakerPolicy | None = None,
        per_host: Mapping[str, BreakerPolicy] | None = None,
        key: KeyFunction | None = None,
        on_state_change: Callable[[StateChange], object] | None = None,
        fallback: Fallback | None = None,
        clock: Clock | None = None,
        max_circuits: int = 10_000,
        rng: random.Random | None = None,
        listeners: Iterable[BreakerListener] = (),
        storage: Storage | None = None,
    ) -> None:
        if transport is None:
            transport = httpx.HTTPTransport()
        elif not callable(getattr(transport, "handle_request", None)):
            raise TypeError(
                "transport must be an httpx.BaseTransport (it has no handle_request), "
                f"got {transport!r} ({type(transport).__name__}); wrap a respx router as "
                "httpx.MockTransport(router.handler)"
            )
        self._setup(
            transport,
            policy=policy,
            per_host=per_host,
            key=key,
            on_state_change=on_state_change,
            fallback=fallback,
            clock=clock,
            max_circuits=max_circuits,
            rng=rng,
            listeners=listeners,
            storage=storage,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = SyncBreakerCore.handle_request(self, request)
        return response

    def __enter__(self) -> CircuitBreakerTransport:
        self._inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()
