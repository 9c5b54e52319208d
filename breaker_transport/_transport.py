"""The transport logic shared by every flavour (httpx, httpx2) and both twins (sync, async).

A flavour module subclasses ``AsyncBreakerCore``/``SyncBreakerCore`` together with its library's
base transport, and sets the few class attributes that name library classes. Everything here is
duck-typed on the request and response, so it serves any httpx-shaped library.

The path of a request: ``_admit`` (key, clock, one locked state-machine step) -> the inner
transport -> ``_track`` (classify the status; settle now if the body was pre-read, else wrap the
stream) -> ``_finish_body`` when the body ends, fails or is closed -> ``_settle`` (one locked step).
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
import random
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._circuit import FAILURE, SUCCESS, Ticket
from ._classify import (
    RETRY_AFTER_STATUSES,
    ExceptionClassifier,
    KindMap,
    call_classifier,
    parse_retry_after,
)
from ._events import BreakerListener, Dispatcher
from ._keys import KeyMaker, PolicyResolver, key_for
from ._policy import BreakerPolicy, FailureKind, coerce_mode
from ._registry import Registry
from ._stream import AsyncBody, SyncBody
from ._types import CircuitState, CircuitStats, Mode, Outcome, StateChange, call_event
from .storage._base import Storage, attach_storage

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger("breaker_transport")

#: Every live transport (twins included), so that a forked child can reset their locks.
_LIVE: weakref.WeakSet[BreakerCore[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A transport created before ``os.fork`` (gunicorn ``--preload``) keeps its circuits in the
    child, but never the parent's locks or calls in flight. (RedisStorage also renews its
    connections; see ``storage/_shared.py``.)"""
    done: set[int] = set()
    for core in list(_LIVE):
        registry = core._registry
        if id(registry) not in done:
            done.add(id(registry))
            registry.after_fork()
        core._lock = registry.lock


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_EXTENSION = "circuit_breaker"
_OPTION_NAMES = frozenset({"bypass", "key"})

KeyFunction = Callable[[Any], str]
Fallback = Callable[[Any, Any], Any]
Clock = Callable[[], float]

#: A flavour's inner transport type (``httpx.AsyncBaseTransport``, ``httpx2.BaseTransport`` ...).
TransportT = TypeVar("TransportT")


def kind_map(module: Any) -> KindMap:
    """``FailureKind`` -> exception classes of an httpx-shaped library module."""
    names = {
        FailureKind.CONNECT: "ConnectError",
        FailureKind.CONNECT_TIMEOUT: "ConnectTimeout",
        FailureKind.READ: "ReadError",
        FailureKind.READ_TIMEOUT: "ReadTimeout",
        FailureKind.WRITE: "WriteError",
        FailureKind.WRITE_TIMEOUT: "WriteTimeout",
        FailureKind.REMOTE_PROTOCOL: "RemoteProtocolError",
        FailureKind.POOL_TIMEOUT: "PoolTimeout",
        FailureKind.LOCAL_PROTOCOL: "LocalProtocolError",
        FailureKind.UNSUPPORTED_PROTOCOL: "UnsupportedProtocol",
        FailureKind.PROXY: "ProxyError",
        FailureKind.CLOSE: "CloseError",
    }
    return {kind: (getattr(module, name),) for kind, name in names.items()}


class CircuitOpenErrorMixin(Exception):
    """What every flavour's ``CircuitOpenError`` carries: ``key``, ``retry_after``, ``state``."""

    key: str
    retry_after: float
    state: CircuitState

    def __init__(
        self,
        key: str,
        retry_after: float,
        *,
        request: Any = None,
        state: CircuitState = CircuitState.OPEN,
    ) -> None:
        # The message is built when it is read (__str__), not here: building the error is most of
        # what a rejection costs, and formatting the message would be a third of that.
        super().__init__(key, request=request)  # type: ignore[call-arg]
        self.key = key
        self.retry_after = retry_after
        self.state = state

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (multiprocessing, pytest-xdist, task queues): the default would call
        # __init__ with the message alone. The request is dropped, as httpx's own errors lose it.
        return (_rebuild_open_error, (type(self), self.key, self.retry_after, self.state))

    def __str__(self) -> str:
        if math.isinf(self.retry_after):
            when = "it is forced open until reset"
        elif self.state is CircuitState.HALF_OPEN:
            when = "it is half-open and every probe slot is taken; retry shortly"
        else:
            when = f"a probe is allowed in {self.retry_after:.3f}s"
        return f"circuit {self.key} is open: {when}"


def _rebuild_open_error(
    cls: type[CircuitOpenErrorMixin], key: str, retry_after: float, state: CircuitState
) -> CircuitOpenErrorMixin:
    return cls(key, retry_after, state=state)


def _keyword_names(function: Callable[..., Any]) -> frozenset[str]:
    """The options a constructor takes by keyword (the inner ``transport`` aside)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(function).parameters.values()
    return frozenset(p.name for p in parameters if p.kind in kinds) - {"self", "transport"}


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            f"{name} must be a callable or None, got {value!r} ({type(value).__name__})"
        )


def _check_clock(clock: Clock) -> None:
    """Read a custom clock once. One that returns no finite number would break the state machine
    silently (an open period ending at NaN ends at once) or fail inside a request later."""
    now: object = clock()
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise TypeError(
            f"clock must return the time in seconds as a number, got {now!r} "
            f"({type(now).__name__}) from {clock!r}"
        )
    try:
        finite = math.isfinite(now)
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError(f"clock must return a finite time in seconds, got {now!r} from {clock!r}")


class BreakerCore(Generic[TransportT]):
    """State, configuration and the operator API of one breaker transport."""

    # Set by each flavour.
    _library: ClassVar[str]
    _kinds: ClassVar[KindMap]
    _open_error: ClassVar[type[CircuitOpenErrorMixin]]
    _response_type: ClassVar[type[Any]]
    _url_type: ClassVar[type[Any]]
    #: the other httpx-shaped library, and where this package's transports for it live
    _other_library: ClassVar[tuple[str, str]]
    # Set by each twin (async, sync) of a flavour.
    _http_transport: ClassVar[Callable[..., Any]]  # the library's (Async)HTTPTransport
    _inner_method: ClassVar[str]  # "handle_async_request" / "handle_request"
    _inner_base: ClassVar[str]  # "AsyncBaseTransport" / "BaseTransport"
    _router_handler: ClassVar[str]  # how to wrap a respx router: "async_handler" / "handler"

    _inner: Any
    #: set by each twin: does this transport await its storage?
    _asynchronous: ClassVar[bool]
    _http_options: Mapping[str, Any] | None = None

    def __init__(
        self,
        transport: TransportT | None = None,
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
        self._setup(
            self._http_transport() if transport is None else self._checked_inner(transport),
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

    def _checked_inner(self, transport: object) -> object:
        # The twins duck-type their inner transport, but the other library's transports have the
        # same methods and would fail later, obscurely (httpx asserts on its own stream class).
        other_name, other_home = self._other_library
        other = sys.modules.get(other_name)
        if other is not None and isinstance(
            transport, (other.BaseTransport, other.AsyncBaseTransport)
        ):
            raise TypeError(
                f"transport is an {other_name} transport ({type(transport).__name__}), and "
                f"{self._library} clients cannot use it; for {other_name}, use {other_home}"
            )
        if not callable(getattr(transport, self._inner_method, None)):
            raise TypeError(
                f"transport must be an {self._library}.{self._inner_base} (it has no "
                f"{self._inner_method}), got {transport!r} ({type(transport).__name__}); wrap a "
                f"respx router as {self._library}.MockTransport(router.{self._router_handler})"
            )
        return transport

    @classmethod
    def _over_http(cls, options: Mapping[str, Any]) -> Self:
        """Build the library's HTTP transport from the options it takes, and wrap it."""
        own = _keyword_names(BreakerCore.__init__)
        forwarded = _keyword_names(cls._http_transport.__init__)
        unknown = set(options) - own - forwarded - {"transport"}
        if "transport" in options or unknown:
            bad = sorted(unknown | ({"transport"} & set(options)))
            raise TypeError(
                f"{cls.__name__}.over_http() got unknown option(s) {bad}: it takes the breaker's "
                f"options {sorted(own)} and the {cls._http_transport.__qualname__} options "
                f"{sorted(forwarded)}; to wrap a transport of your own, pass it to "
                f"{cls.__name__}(transport)"
            )
        http = {name: value for name, value in options.items() if name in forwarded}
        breaker = cls(cls._http_transport(**http), **{n: v for n, v in options.items() if n in own})
        breaker._http_options = MappingProxyType(http)
        return breaker

    @property
    def http_options(self) -> Mapping[str, Any] | None:
        """The HTTP transport options given to ``over_http`` (None for a transport of your own)."""
        return self._http_options

    def wrap(self, transport: TransportT) -> Self:
        """A transport over another inner ``transport`` that shares this one's circuits,
        policies, listeners, fallback and clock (``mounts=`` of one client, say): a host's circuit
        is the same whichever of them its requests go through. Each closes only its own inner
        transport."""
        twin = copy.copy(self)  # shallow on purpose: the registry, lock and dispatcher are shared
        twin._inner = self._checked_inner(transport)
        twin._closed = False
        twin._http_options = None
        _LIVE.add(twin)
        return twin

    def _setup(
        self,
        transport: Any,
        *,
        policy: BreakerPolicy | None,
        per_host: Mapping[str, BreakerPolicy] | None,
        key: KeyFunction | None,
        on_state_change: Callable[[StateChange], object] | None,
        fallback: Fallback | None,
        clock: Clock | None,
        max_circuits: int,
        rng: random.Random | None,
        listeners: Iterable[BreakerListener],
        storage: Any = None,
    ) -> None:
        if policy is None:
            policy = BreakerPolicy()
        elif not isinstance(policy, BreakerPolicy):
            raise TypeError(
                f"policy must be a BreakerPolicy or None, got {policy!r} ({type(policy).__name__})"
            )
        _check_callable("key", key)
        _check_callable("fallback", fallback)
        _check_callable("clock", clock)
        if clock is not None:
            _check_clock(clock)
        if isinstance(max_circuits, bool) or not isinstance(max_circuits, int):
            raise TypeError(
                f"max_circuits must be an int >= 1, got {max_circuits!r} "
                f"({type(max_circuits).__name__})"
            )
        if max_circuits < 1:
            raise ValueError(f"max_circuits must be >= 1, got {max_circuits!r}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, got {rng!r}")
        self._inner = transport
        self._resolver = PolicyResolver(policy, per_host)
        self._registry = Registry(
            self._resolver,
            max_circuits=max_circuits,
            rng=rng,
            check_policy_per_request=key is not None,
        )
        self._lock = self._registry.lock
        _LIVE.add(self)
        # Transitions and evictions waiting to be emitted; empty on almost every call (see drain).
        self._pending = self._registry.context.events
        self._dispatch = Dispatcher(on_state_change, listeners)
        self._default_key = KeyMaker(max_circuits)
        self._key_fn = key
        self._fallback = fallback
        self._clock: Clock = clock if clock is not None else time.monotonic
        self._classifiers: dict[int, ExceptionClassifier] = {}
        self._key_errors: set[type] = set()
        self._closed = False
        # None: the in-process registry above (the default). Otherwise a shared engine
        # (storage/_shared.py) that the request path and the operator API hand over to.
        self._storage = attach_storage(storage, self, asynchronous=self._asynchronous)

    # -- operator API --------------------------------------------------------------------------

    @property
    def policy(self) -> BreakerPolicy:
        """The default policy (hosts that match no ``per_host`` pattern)."""
        return self._resolver.default

    def add_listener(self, listener: BreakerListener) -> None:
        """Attach a listener (an exporter, say) after construction."""
        self._dispatch.add(listener)

    def _key_of(self, url_or_key: object) -> str:
        if isinstance(url_or_key, str):
            return key_for(url_or_key)
        if isinstance(url_or_key, self._url_type):
            return self._default_key(url_or_key)
        raise TypeError(
            f"expected a URL or a circuit key (str), got {url_or_key!r} "
            f"({type(url_or_key).__name__})"
        )

    def _locked(self, action: Callable[[float], Any]) -> Any:
        now = self._clock()
        with self._lock:
            result = action(now)
            events = self._registry.drain()
        if events:
            self._dispatch.emit(events)
        return result

    def _shared_sync(self, what: str) -> Any:
        """The shared engine if this transport may call it blocking; raises for an async one."""
        storage = self._storage
        if storage is not None and self._asynchronous:
            raise RuntimeError(
                f"{what}() cannot reach the shared state of an async storage from sync code; "
                f"use `await transport.a{what}(...)`"
            )
        return storage

    def state(self, url_or_key: object) -> CircuitState:
        """The state of a circuit; a key with no circuit yet reads as CLOSED.

        With an async shared storage this is this worker's last view (no I/O); ``astate`` reads
        the shared state.
        """
        key = self._key_of(url_or_key)
        if self._storage is not None and not self._asynchronous:
            shared_state: CircuitState = self._storage.state(key)
            return shared_state

        def read(now: float) -> CircuitState:
            circuit = self._registry.get(key)
            if circuit is None:
                return CircuitState.CLOSED
            circuit.refresh(now)
            return circuit.state

        state: CircuitState = self._locked(read)
        return state

    def stats(self) -> Mapping[str, CircuitStats]:
        """A snapshot of every circuit, by key.

        With a shared storage the counters are this worker's and the state is the shared one;
        with an async shared storage this is this worker's last view (``astats`` reads it).
        """
        if self._storage is not None and not self._asynchronous:
            shared_stats: Mapping[str, CircuitStats] = self._storage.stats()
            return shared_stats

        def read(now: float) -> dict[str, CircuitStats]:
            return {k: c.snapshot(now) for k, c in self._registry.circuits.items()}

        snapshot: dict[str, CircuitStats] = self._locked(read)
        return snapshot

    def reset(self, url_or_key: object = None) -> None:
        """Close a circuit and clear its counters; None resets every circuit."""
        shared = self._shared_sync("reset")
        key = self._reset_local(url_or_key)
        if shared is not None:
            shared.operate(key, "reset", create=False, what="reset")

    def _reset_local(self, url_or_key: object) -> str | None:
        key = None if url_or_key is None else self._key_of(url_or_key)

        def act(now: float) -> None:
            if key is None:
                for each in self._registry.circuits.values():
                    each.reset(now)
            else:
                circuit = self._registry.get(key)
                if circuit is not None:
                    circuit.reset(now)

        self._locked(act)
        return key

    def force_open(self, url_or_key: object) -> None:
        """Hold a circuit open (no probes) until ``reset``; creates the circuit if needed."""
        shared = self._shared_sync("force_open")
        key = self._force_open_local(url_or_key)
        if shared is not None:
            shared.operate(key, "force", create=True, what="force_open")

    def _force_open_local(self, url_or_key: object) -> str:
        key = self._key_of(url_or_key)
        self._locked(lambda now: self._registry.get_or_create(key).force_open(now))
        return key

    def set_mode(self, mode: Mode | str, url_or_key: object = None) -> None:
        """``"enforce"``, ``"observe"`` or ``"disabled"``, for one circuit or (None) for all,
        existing and future. Counts are kept."""
        shared = self._shared_sync("set_mode")
        value, key = self._set_mode_local(mode, url_or_key)
        if shared is not None:
            if key is None:
                shared.set_default(value.value)
            shared.operate(key, "mode", value.value, create=True, what="set_mode")

    def _set_mode_local(self, mode: Mode | str, url_or_key: object) -> tuple[Mode, str | None]:
        value = coerce_mode(mode, "set_mode(mode)")
        key = None if url_or_key is None else self._key_of(url_or_key)
        self._locked(lambda now: self._registry.set_mode(value, key))
        return value, key

    # -- the request path ----------------------------------------------------------------------

    def _request_key(self, request: Any) -> str:
        key_fn = self._key_fn
        if key_fn is None:
            return self._default_key(request.url)
        try:
            key = key_fn(request)
        except Exception as exc:
            self._report_key_error(type(exc), "the key= callable raised", exc)
            return self._default_key(request.url)
        if type(key) is not str or not key:
            self._report_key_error(
                type(key), f"the key= callable returned {key!r}, not a non-empty str", None
            )
            return self._default_key(request.url)
        return key

    def _report_key_error(self, kind: type, message: str, exc: BaseException | None) -> None:
        # Logged once per kind of error at ERROR (then at DEBUG): a broken key= must not flood logs.
        level = logging.DEBUG if kind in self._key_errors else logging.ERROR
        self._key_errors.add(kind)
        logger.log(
            level, "%s; using the request's origin as its circuit key", message, exc_info=exc
        )

    def _read_options(self, options: object, request: Any) -> tuple[str, bool]:
        if not isinstance(options, Mapping):
            raise TypeError(
                f'request.extensions["{_EXTENSION}"] must be a dict with "bypass" and/or "key", '
                f"got {options!r} ({type(options).__name__})"
            )
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise ValueError(
                f'request.extensions["{_EXTENSION}"] has unknown option(s) '
                f"{sorted(map(str, unknown))}; "
                'known: "bypass", "key"'
            )
        bypass = options.get("bypass", False)
        if not isinstance(bypass, bool):
            raise TypeError(
                f'request.extensions["{_EXTENSION}"]["bypass"] must be a bool, got {bypass!r}'
            )
        key = options.get("key")
        if key is None:
            key = self._request_key(request)
        elif type(key) is not str or not key:
            raise TypeError(
                f'request.extensions["{_EXTENSION}"]["key"] must be a non-empty str, got {key!r}'
            )
        return key, bypass

    def _admit(self, request: Any) -> Ticket | str | Any:
        """A Ticket; or a key (str) to pass the request through uncounted; or a fallback
        response. Raises the flavour's ``CircuitOpenError`` when rejecting without a fallback."""
        options = request.extensions.get(_EXTENSION)
        if options is None:
            key = (
                self._default_key(request.url)
                if self._key_fn is None
                else self._request_key(request)
            )
        else:
            key, bypass = self._read_options(options, request)
            if bypass:
                return key
        now = self._clock()
        lock = self._lock
        registry = self._registry
        lock.acquire()
        try:
            result = registry.admit(key, request.url, now)
            events = registry.drain() if self._pending else None
        finally:
            lock.release()
        if events is not None:
            self._dispatch.emit(events)
        if result.__class__ is Ticket:
            return result
        if result is None:
            return key  # disabled
        return self._reject(request, key, result)  # type: ignore[arg-type]

    def _reject(self, request: Any, key: str, retry_after: float) -> Any:
        state = CircuitState.HALF_OPEN if retry_after == 0.0 else CircuitState.OPEN
        if self._dispatch.call_listeners:
            self._dispatch.call(call_event(key, "rejected", state, None))
        error = self._open_error(key, retry_after, request=request, state=state)
        if self._fallback is None:
            raise error
        response: Any = self._fallback(request, error)
        if not isinstance(response, self._response_type):
            raise TypeError(
                f"fallback must return an {self._library}.Response, got {response!r} "
                f"({type(response).__name__})"
            )
        response.extensions[_EXTENSION] = {"key": key, "state": state, "rejected": True}
        return response

    def _pass_through_info(self, key: str) -> dict[str, Any]:
        return {"key": key, "state": None, "bypassed": True}

    def _track(self, ticket: Ticket, request: Any, response: Any, body: type[Any]) -> Any:
        """Classify the headers; settle a pre-read response now, else wrap its stream."""
        circuit = ticket.circuit
        policy = circuit.policy
        response.extensions[_EXTENSION] = {"key": circuit.key, "state": ticket.state}
        status = response.status_code
        outcome = FAILURE if status in policy.failure_status_codes else SUCCESS
        hint = None
        if status in RETRY_AFTER_STATUSES and policy.respect_retry_after:
            hint = self._retry_after_hint(response)
        slow = False
        now = None
        if policy.slow_call_duration is not None:
            now = self._clock()
            slow = now - ticket.admitted_at > policy.slow_call_duration
        if response.is_closed:  # pre-read (MockTransport): its stream will never be closed again
            if policy.classify is not None:
                outcome = call_classifier(policy, request, response, None) or outcome
            self._settle(ticket, outcome, slow, hint, now)
            return response
        ref = weakref.ref(response) if policy.classify is not None else None
        response.stream = body(response.stream, self, ticket, request, ref, outcome, slow, hint)
        return response

    def _retry_after_hint(self, response: Any) -> float | None:
        value = response.headers.get("retry-after")
        if value is None:
            return None
        return parse_retry_after(value, response.headers.get("date"), time.time())

    def _exception_outcome(
        self, ticket: Ticket, request: Any, response: Any, exc: BaseException
    ) -> Outcome:
        policy = ticket.circuit.policy
        classifier = self._classifiers.get(id(policy))
        if classifier is None:
            classifier = self._classifiers[id(policy)] = ExceptionClassifier(policy, self._kinds)
        outcome = classifier.outcome(exc)
        if policy.classify is not None and isinstance(exc, Exception):
            outcome = call_classifier(policy, request, response, exc) or outcome
        return outcome

    def _settle_exception(self, ticket: Ticket, request: Any, exc: BaseException) -> None:
        """The inner transport raised before any response."""
        self._settle(ticket, self._exception_outcome(ticket, request, None, exc), False, None, None)

    def _finish_body(
        self,
        ticket: Ticket,
        request: Any,
        response_ref: Any,
        outcome: Outcome,
        slow: bool,
        hint: float | None,
        exc: BaseException | None,
    ) -> Any:
        """The body ended (exc None), failed, or was closed: settle with the final verdict.

        Returns what ``_settle`` returns (an async body awaits it when it is not None)."""
        response = response_ref() if response_ref is not None else None
        if exc is not None:
            outcome = self._exception_outcome(ticket, request, response, exc)
            hint = None
        elif response is not None:
            outcome = call_classifier(ticket.circuit.policy, request, response, None) or outcome
        return self._settle(ticket, outcome, slow, hint, None)

    def _settle(
        self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None, now: float | None
    ) -> Any:
        """Record the outcome. Returns None, or (an async shared storage) what to await."""
        if self._storage is not None:
            return self._storage.settle(ticket, outcome, slow, hint, now)
        if now is None:
            now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            stale = ticket.circuit.settle(ticket, outcome, slow, now, hint)
            events = self._registry.drain() if self._pending else None
        finally:
            lock.release()
        if events is not None:
            self._dispatch.emit(events)
        if self._dispatch.call_listeners:
            self._dispatch.settled(ticket, outcome, slow, stale, now)
        return None


class AsyncBreakerCore(BreakerCore[TransportT]):
    """The async twin: an ``AsyncBaseTransport``-shaped class over the shared core."""

    _body: ClassVar[type[AsyncBody]]
    _asynchronous = True
    _inner_method = "handle_async_request"
    _inner_base = "AsyncBaseTransport"
    _router_handler = "async_handler"

    async def handle_async_request(self, request: Any) -> Any:
        if self._storage is not None:
            return await self._storage.handle_async_request(self, request)
        admission = self._admit(request)
        if admission.__class__ is not Ticket:
            if admission.__class__ is not str:
                return admission  # the fallback's response
            response = await self._inner.handle_async_request(request)
            response.extensions[_EXTENSION] = self._pass_through_info(admission)
            return response
        try:
            response = await self._inner.handle_async_request(request)
            return self._track(admission, request, response, self._body)
        except BaseException as exc:
            # Raised by the inner transport, or while tracking what it returned (an inner that
            # returned something other than a response): either way the call settles, once.
            self._settle_exception(admission, request, exc)
            raise

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    # The operator API, awaiting the shared state (the sync methods serve in-process state).

    async def astate(self, url_or_key: object) -> CircuitState:
        """``state``, read from the shared state when the storage is shared."""
        if self._storage is None:
            return self.state(url_or_key)
        shared_state: CircuitState = await self._storage.state(self._key_of(url_or_key))
        return shared_state

    async def astats(self) -> Mapping[str, CircuitStats]:
        """``stats``, with the shared state when the storage is shared."""
        if self._storage is None:
            return self.stats()
        shared_stats: Mapping[str, CircuitStats] = await self._storage.stats()
        return shared_stats

    async def areset(self, url_or_key: object = None) -> None:
        """``reset``, on the shared state when the storage is shared."""
        key = self._reset_local(url_or_key)
        if self._storage is not None:
            await self._storage.operate(key, "reset", create=False, what="reset")

    async def aforce_open(self, url_or_key: object) -> None:
        """``force_open``, on the shared state when the storage is shared."""
        key = self._force_open_local(url_or_key)
        if self._storage is not None:
            await self._storage.operate(key, "force", create=True, what="force_open")

    async def aset_mode(self, mode: Mode | str, url_or_key: object = None) -> None:
        """``set_mode``, on the shared state when the storage is shared."""
        value, key = self._set_mode_local(mode, url_or_key)
        if self._storage is not None:
            if key is None:
                await self._storage.set_default(value.value)
            await self._storage.operate(key, "mode", value.value, create=True, what="set_mode")

    async def __aexit__(self, *args: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the inner transport (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.aclose()
        finally:
            if self._storage is not None:
                await self._storage.aclose()


class SyncBreakerCore(BreakerCore[TransportT]):
    """The sync twin: a ``BaseTransport``-shaped class, safe to share across threads."""

    _body: ClassVar[type[SyncBody]]
    _asynchronous = False
    _inner_method = "handle_request"
    _inner_base = "BaseTransport"
    _router_handler = "handler"

    def handle_request(self, request: Any) -> Any:
        # A shared storage admits (and settles) through its store; the rest is the same path.
        storage = self._storage
        admission = self._admit(request) if storage is None else storage.admit(request)
        if admission.__class__ is not Ticket:
            if admission.__class__ is not str:
                return admission
            response = self._inner.handle_request(request)
            response.extensions[_EXTENSION] = self._pass_through_info(admission)
            return response
        try:
            response = self._inner.handle_request(request)
            return self._track(admission, request, response, self._body)
        except BaseException as exc:  # as in handle_async_request
            self._settle_exception(admission, request, exc)
            raise

    def __enter__(self) -> Self:
        self._inner.__enter__()
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the inner transport (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.close()
        finally:
            if self._storage is not None:
                self._storage.close()
