"""Every competitor, as an httpx transport wrapping the SAME inner transport.

The peers are used the way their documentation shows and a user would write them for an HTTP
client: one breaker per host, kept in a dict, and a 5xx turned into an exception inside the guarded
call (so it counts as a failure) and back into the response outside it (so the caller still gets
the 5xx, as with ``raw``). They all trip after 5 failures and stay open ``recovery`` seconds.
``interlock-cb`` ships httpx transports of its own: it is used as it is, with its defaults (a
failure rate over a window, its idiom) apart from the open period.

What each competitor does *not* do is part of the comparison: only ``ours`` settles a streamed
response when its body ends (so a read error after a 200 counts), keeps per-host policies, bounds
its memory, and is safe across threads and under trio. The peers settle at the headers.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerListener,
    BreakerPolicy,
    CallEvent,
    CircuitBreakerTransport,
    CircuitOpenError,
)

FAILURES = 5  # consecutive failures that open every breaker (interlock: its rate rule)


class UpstreamStatusError(Exception):
    """A 5xx, raised inside a peer's guarded call so that the peer counts it as a failure."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _raise_for_5xx(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 500:
        raise UpstreamStatusError(response)
    return response


# -- references ---------------------------------------------------------------------------------


class Passthrough(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """A wrapper that only forwards: the least any wrapper can cost."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)  # type: ignore[no-any-return]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)  # type: ignore[no-any-return]


class _PlainBody(httpx.AsyncByteStream, httpx.SyncByteStream):
    """A plain class-based body wrapper that only forwards: the least a settling one can cost.

    It lets go of the inner iterator at the end, as a careful wrapper does: the client keeps the
    wrapper until it collects the response, and a finished async generator kept that long stays
    in asyncio's set of live ones, which costs every request after it.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._iterator: Any = None

    def __aiter__(self) -> _PlainBody:
        self._iterator = self._stream.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._iterator.__anext__()  # type: ignore[no-any-return]
        except StopAsyncIteration:
            self._iterator = None
            raise

    def __iter__(self) -> _PlainBody:
        self._iterator = iter(self._stream)
        return self

    def __next__(self) -> bytes:
        return next(self._iterator)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._stream.aclose()

    def close(self) -> None:
        self._stream.close()


class PassthroughBody(Passthrough):
    """Forwards, and wraps every response body in ``_PlainBody``."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        response.stream = _PlainBody(response.stream)
        return response  # type: ignore[no-any-return]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.stream = _PlainBody(response.stream)
        return response  # type: ignore[no-any-return]


# -- ours ---------------------------------------------------------------------------------------


class CountingListener(BreakerListener):
    """Observability hooks on: a listener that overrides ``on_call`` (so every call builds and
    dispatches a ``CallEvent``), doing the least a metrics exporter would."""

    def __init__(self) -> None:
        self.calls = 0

    def on_call(self, event: CallEvent) -> None:
        self.calls += 1


def _policy(recovery: float) -> BreakerPolicy:
    return BreakerPolicy(failure_threshold=FAILURES, recovery_timeout=recovery)


def ours_async(inner: Any, recovery: float, **options: Any) -> AsyncCircuitBreakerTransport:
    return AsyncCircuitBreakerTransport(inner, policy=_policy(recovery), **options)


def ours_sync(inner: Any, recovery: float, **options: Any) -> CircuitBreakerTransport:
    return CircuitBreakerTransport(inner, policy=_policy(recovery), **options)


# -- the naive "do it yourself" breaker from the classic docs example --------------------------


if sys.version_info >= (3, 12):  # utcnow() is deprecated there; this is what it returns

    def _utcnow() -> datetime:
        return datetime.now(timezone.utc).replace(tzinfo=None)

else:
    _utcnow = datetime.utcnow


class NaiveOpenError(httpx.TransportError):
    pass


class Naive(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """host -> {"failures", "opened_at"}, ``datetime.utcnow``: no half-open limit, no thread
    safety, no bound on hosts, settles at the headers. A floor, not a peer."""

    def __init__(self, inner: Any, recovery: float) -> None:
        self._inner = inner
        self._recovery = recovery
        self._hosts: dict[str, dict[str, Any]] = {}

    def _before(self, request: httpx.Request) -> dict[str, Any]:
        host = request.url.host
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = {"failures": 0, "opened_at": None}
        opened_at = entry["opened_at"]
        if opened_at is not None:
            if (_utcnow() - opened_at).total_seconds() < self._recovery:
                raise NaiveOpenError(f"circuit for {host} is open", request=request)
            entry["opened_at"] = None  # let one through
        return entry

    def _failed(self, entry: dict[str, Any]) -> None:
        entry["failures"] += 1
        if entry["failures"] >= FAILURES:
            entry["opened_at"] = _utcnow()

    def _after(self, entry: dict[str, Any], response: httpx.Response) -> httpx.Response:
        if response.status_code >= 500:
            self._failed(entry)
        else:
            entry["failures"] = 0
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        entry = self._before(request)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception:
            self._failed(entry)
            raise
        return self._after(entry, response)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        entry = self._before(request)
        try:
            response = self._inner.handle_request(request)
        except Exception:
            self._failed(entry)
            raise
        return self._after(entry, response)


# -- peers: one breaker per host, 5xx turned into a failure by hand ----------------------------


class _PerHost(httpx.AsyncBaseTransport, httpx.BaseTransport):
    def __init__(self, inner: Any, recovery: float) -> None:
        self._inner = inner
        self._recovery = recovery
        self._breakers: dict[str, Any] = {}

    async def _send_async(self, request: httpx.Request) -> httpx.Response:
        return _raise_for_5xx(await self._inner.handle_async_request(request))

    def _send(self, request: httpx.Request) -> httpx.Response:
        return _raise_for_5xx(self._inner.handle_request(request))


class PyBreaker(_PerHost):
    """pybreaker: ``with breaker.calling():`` around the await (its ``call_async`` needs
    tornado), ``breaker.call(...)`` for sync."""

    def _breaker(self, request: httpx.Request) -> Any:
        import pybreaker

        host = request.url.host
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = pybreaker.CircuitBreaker(
                fail_max=FAILURES, reset_timeout=self._recovery, name=host
            )
        return breaker

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        breaker = self._breaker(request)
        try:
            with breaker.calling():
                return _raise_for_5xx(await self._inner.handle_async_request(request))
        except UpstreamStatusError as failed:
            return failed.response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._breaker(request).call(self._send, request)  # type: ignore[no-any-return]
        except UpstreamStatusError as failed:
            return failed.response


class Purgatory(_PerHost):
    """purgatory: the factory's breaker for the host, fetched once and kept in a dict."""

    def __init__(self, inner: Any, recovery: float) -> None:
        super().__init__(inner, recovery)
        from purgatory import AsyncCircuitBreakerFactory, SyncCircuitBreakerFactory

        self._async_factory = AsyncCircuitBreakerFactory(
            default_threshold=FAILURES, default_ttl=recovery
        )
        self._sync_factory = SyncCircuitBreakerFactory(
            default_threshold=FAILURES, default_ttl=recovery
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = await self._async_factory.get_breaker(host)
        try:
            async with breaker:
                return _raise_for_5xx(await self._inner.handle_async_request(request))
        except UpstreamStatusError as failed:
            return failed.response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = self._sync_factory.get_breaker(host)
        try:
            with breaker:
                return _raise_for_5xx(self._inner.handle_request(request))
        except UpstreamStatusError as failed:
            return failed.response


class AioBreaker(_PerHost):
    """aiobreaker: ``await breaker.call_async(send, request)``; ``breaker.call`` for sync."""

    def _breaker(self, request: httpx.Request) -> Any:
        import aiobreaker

        host = request.url.host
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = aiobreaker.CircuitBreaker(
                fail_max=FAILURES, timeout_duration=timedelta(seconds=self._recovery), name=host
            )
        return breaker

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._breaker(request).call_async(self._send_async, request)  # type: ignore[no-any-return]
        except UpstreamStatusError as failed:
            return failed.response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._breaker(request).call(self._send, request)  # type: ignore[no-any-return]
        except UpstreamStatusError as failed:
            return failed.response


class CircuitBreakerLib(_PerHost):
    """circuitbreaker: its decorator, applied once per host to the send function (the decorator
    is where it checks for an open circuit), kept in a dict."""

    def _guarded(self, request: httpx.Request, sync: bool) -> Callable[..., Any]:
        import circuitbreaker

        host = request.url.host
        key = f"{host}/sync" if sync else host
        guarded = self._breakers.get(key)
        if guarded is None:
            breaker = circuitbreaker.CircuitBreaker(
                failure_threshold=FAILURES, recovery_timeout=self._recovery, name=key
            )
            guarded = self._breakers[key] = breaker(self._send if sync else self._send_async)
        return guarded  # type: ignore[no-any-return]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._guarded(request, False)(request)  # type: ignore[no-any-return]
        except UpstreamStatusError as failed:
            return failed.response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._guarded(request, True)(request)  # type: ignore[no-any-return]
        except UpstreamStatusError as failed:
            return failed.response


def interlock_async(inner: Any, recovery: float) -> Any:
    from interlock import Config
    from interlock.integrations.httpx import AsyncCircuitBreakerTransport as Interlock

    return Interlock(inner, config=Config(wait_duration_in_open=recovery))


def interlock_sync(inner: Any, recovery: float) -> Any:
    from interlock import Config
    from interlock.integrations.httpx import CircuitBreakerTransport as Interlock

    return Interlock(inner, config=Config(wait_duration_in_open=recovery))


# -- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Competitor:
    name: str
    #: "reference" (raw, passthrough), "ours", "peer" or "floor" (the naive example)
    kind: str
    build_async: Callable[[Any, float], Any] | None
    build_sync: Callable[[Any, float], Any] | None
    #: what its rejection raises (to check that the open path measures rejections)
    open_error: tuple[str, ...] = ()
    #: the module it needs (a peer library), None for the ones made here
    module: str | None = None

    @property
    def available(self) -> bool:
        return self.module is None or importlib.util.find_spec(self.module) is not None


def _hooks_async(inner: Any, recovery: float) -> Any:
    return ours_async(inner, recovery, listeners=[CountingListener()])


def _hooks_sync(inner: Any, recovery: float) -> Any:
    return ours_sync(inner, recovery, listeners=[CountingListener()])


COMPETITORS: tuple[Competitor, ...] = (
    Competitor("raw", "reference", lambda inner, r: inner, lambda inner, r: inner),
    Competitor(
        "passthrough", "reference", lambda i, r: Passthrough(i), lambda i, r: Passthrough(i)
    ),
    Competitor("ours", "ours", ours_async, ours_sync, ("CircuitOpenError",)),
    Competitor("ours+hooks", "ours", _hooks_async, _hooks_sync, ("CircuitOpenError",)),
    Competitor(
        "interlock-cb",
        "peer",
        interlock_async,
        interlock_sync,
        ("CircuitOpenTransportError",),
        "interlock",
    ),
    Competitor("pybreaker", "peer", PyBreaker, PyBreaker, ("CircuitBreakerError",), "pybreaker"),
    Competitor("purgatory", "peer", Purgatory, Purgatory, ("OpenedState",), "purgatory"),
    Competitor(
        "aiobreaker", "peer", AioBreaker, AioBreaker, ("CircuitBreakerError",), "aiobreaker"
    ),
    Competitor(
        "circuitbreaker",
        "peer",
        CircuitBreakerLib,
        CircuitBreakerLib,
        ("CircuitBreakerError",),
        "circuitbreaker",
    ),
    Competitor("naive", "floor", Naive, Naive, ("NaiveOpenError",)),
)

#: only where the response body is streamed: what wrapping the body costs by itself
PASSTHROUGH_BODY = Competitor(
    "passthrough+body",
    "reference",
    lambda i, r: PassthroughBody(i),
    lambda i, r: PassthroughBody(i),
)

OPEN_ERRORS = (CircuitOpenError,)


def by_name(names: list[str] | None = None) -> list[Competitor]:
    """The competitors (every available one, or those named), in table order."""
    if names is None:
        return [c for c in COMPETITORS if c.available]
    table = {c.name: c for c in (*COMPETITORS, PASSTHROUGH_BODY)}
    return [table[name] for name in names if table[name].available]


def missing_peers() -> list[str]:
    """The bench extra's peers that are not installed (interlock-cb only exists for 3.11+)."""
    return [
        c.name
        for c in COMPETITORS
        if not c.available and not (c.module == "interlock" and sys.version_info < (3, 11))
    ]
