"""The shared-state engine: one transport's circuits, kept in a shared store (Redis).

The transport keeps its own ``Registry`` of ``Circuit`` objects. With a shared storage, each local
circuit is a *mirror* of the shared state (state, generation, deadline, consecutive count, mode),
plus this worker's own counters (successes, failures, ignored, rejections, in flight), plus the
in-process state machine to fall back on while the store is away.

A request costs, in round trips to the store:

- closed: two, one to admit (it reads the shared state, so a circuit another worker opened is seen
  at this worker's next request) and one to settle; an ignored outcome settles without one;
- open and known to be open: none. The deadline is mirrored locally and trusted for
  ``sync_interval`` seconds, so a ``reset`` by another worker is seen within that time;
- half-open: two, the probe's lease is taken and released in the store.

Everything between the round trips is a short step under the registry lock, never across I/O.
When a call to the store fails or times out, the worker logs one WARNING, falls back to its local
circuits (starting from the last shared state it saw) and tries the store again after
``retry_interval``; its first admission of each circuit after that merges the local view into the
shared one, pessimistically (see ``_rules.py``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._circuit import CLOSED, DISABLED, FAILURE, HALF_OPEN, IGNORED, OPEN, SUCCESS, Ticket
from .._keys import parse_origin
from .._policy import BreakerPolicy
from .._types import (
    CircuitState,
    CircuitStats,
    Event,
    Eviction,
    Mode,
    Notice,
    Outcome,
    StateChange,
)
from ._base import StorageUnavailableError
from ._rules import (
    ADMIT,
    D_ADMIT,
    D_DISABLED,
    D_PROBE,
    D_REJECT,
    D_SHADOW,
    F_POLICY_MISMATCH,
    READ,
    SEP,
    SETTLE,
    pack_policy,
)

if TYPE_CHECKING:
    from .._circuit import Circuit
    from .._transport import BreakerCore
    from ._redis import RedisStorage

logger = logging.getLogger("breaker_transport")

_STATES = (CLOSED, OPEN, HALF_OPEN)
_STATE_CODES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
_MODES = {b"enforce": Mode.ENFORCE, b"observe": Mode.OBSERVE, b"disabled": Mode.DISABLED}
_OUTCOMES = {SUCCESS: "s", FAILURE: "f", IGNORED: "i"}
_NO_VIEW = ("", "", "", "")
#: Outages closer together than this are logged at DEBUG after the first WARNING.
_WARN_EVERY = 60.0

Reply = Sequence[Any]
Call = tuple[tuple[str, str, str], tuple[str, ...]]


class Remote:
    """``Ticket.shared`` of a call admitted through the store: its probe lease, if any."""

    __slots__ = ("member", "pending")

    def __init__(self, member: str) -> None:
        self.member = member
        #: the async settlement still to await (see ``AsyncSharedCircuits.settle``)
        self.pending: Any = None


def _token() -> str:
    return f"{os.getpid():x}.{os.urandom(4).hex()}"


def _escape_glob(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


#: Every live engine, so a forked child can give each one fresh locks and connections.
_ENGINES: weakref.WeakSet[SharedCircuits] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SharedCircuits:
    """The sans-I/O part: locked steps that turn store replies into local state and results.

    The twins below (``SyncSharedCircuits``, ``AsyncSharedCircuits``) do the I/O in between.
    """

    def __init__(self, storage: RedisStorage, core: BreakerCore[Any], backend: Any) -> None:
        self.storage = storage
        self.core = core
        self.backend = backend
        self.prefix = storage.prefix
        self.idle_ttl_ms = str(max(1, round(storage.idle_ttl * 1000)))
        self.sync_interval = storage.sync_interval
        self.retry_interval = storage.retry_interval
        #: key -> monotonic time until which a mirrored OPEN (or disabled) verdict is trusted
        self.trust: dict[str, float] = {}
        #: keys whose local circuit ran on its own while the store was away
        self.dirty: set[str] = set()
        self.policy_warned: set[str] = set()
        self.packs: dict[int, tuple[BreakerPolicy, str, str]] = {}
        self.down = False
        self.retry_at = -math.inf
        self.warned_at = -math.inf
        #: the run-time default mode (``set_mode(mode)`` with no key), refreshed every sync_interval
        self.default_mode = ""
        self.default_mode_at = -math.inf
        self.token = _token()
        self.seq = itertools.count()
        _ENGINES.add(self)

    @property
    def round_trips(self) -> int:
        """Round trips to the store so far (for tests and benchmarks)."""
        return int(self.backend.round_trips)

    # -- keys and arguments --------------------------------------------------------------------

    def keys(self, key: str) -> tuple[str, str, str]:
        # One hash tag per circuit, so all three keys live in one Cluster slot.
        state = f"{self.prefix}:{{{key}}}"
        return state, f"{state}:probes", f"{state}:ring"

    @property
    def mode_key(self) -> str:
        return f"{self.prefix}:mode"

    def pack(self, policy: BreakerPolicy) -> tuple[str, str]:
        entry = self.packs.get(id(policy))
        if entry is None or entry[0] is not policy:
            packed, fingerprint = pack_policy(policy)
            entry = self.packs[id(policy)] = (policy, packed, fingerprint)
        return entry[1], entry[2]

    def op_call(self, key: str, policy: BreakerPolicy, op: str, *extra: str) -> Call:
        packed, fingerprint = self.pack(policy)
        return self.keys(key), (op, packed, fingerprint, "", self.idle_ttl_ms, SEP.join(extra))

    def policy_for_key(self, key: str) -> BreakerPolicy:
        circuit = self.core._registry.circuits.get(key)
        if circuit is not None:
            return circuit.policy
        origin = parse_origin(key)
        resolver = self.core._resolver
        return resolver.resolve(*origin) if origin else resolver.default

    # -- health --------------------------------------------------------------------------------

    def unavailable(self, exc: BaseException) -> None:
        """A call to the store failed: use local state, retry after ``retry_interval``."""
        mono = time.monotonic()
        self.retry_at = mono + self.retry_interval
        if self.down:
            return
        self.down = True
        level = logging.WARNING if mono - self.warned_at >= _WARN_EVERY else logging.DEBUG
        if level == logging.WARNING:
            self.warned_at = mono
        logger.log(
            level,
            "breaker state: Redis is unavailable (%s: %s); this worker uses its own in-process "
            "circuits until it is back (retrying every %gs)",
            type(exc).__name__,
            exc,
            self.retry_interval,
        )

    def available(self) -> None:
        if self.down:
            self.down = False
            logger.info("breaker state: Redis is back; circuits resynchronise at their next use")

    def away(self) -> bool:
        return self.down and time.monotonic() < self.retry_at

    def after_fork(self) -> None:
        """In a forked child: fresh connections and identity; no inherited trust. (The
        transport's own fork handler, in ``_transport.py``, renews the locks of every transport.)"""
        self.backend = self.backend.fork()
        self.token = _token()
        self.seq = itertools.count()
        self.trust.clear()

    # -- admission (locked steps) --------------------------------------------------------------

    def circuit_for(self, key: str, url: Any) -> Circuit:
        """*locked* The local circuit of ``key``, created with the URL's policy if needed."""
        registry = self.core._registry
        circuit = registry.circuits.get(key)
        if circuit is None:
            return registry._create(key, registry._policy_for_url(url))
        registry.circuits.move_to_end(key)
        if registry._check_policy:
            registry._check_agreement(circuit, url)
        return circuit

    def local_admit(self, circuit: Circuit, now: float) -> Ticket | float | None:
        """*locked* The in-process verdict (fallback, or a trusted open/disabled mirror)."""
        result = circuit.admit(now)
        if result.__class__ is Ticket:
            result.shared = None
        return result

    def try_local(self, circuit: Circuit, now: float) -> tuple[bool, Ticket | float | None]:
        """*locked* (True, verdict) when no round trip is needed, else (False, None)."""
        key = circuit.key
        if self.away():
            self.dirty.add(key)
            return True, self.local_admit(circuit, now)
        if circuit.probes:
            circuit.expire_probes(now)  # this worker's never-closed probes give up their slot
        until = self.trust.get(key)
        if (
            until is not None
            and time.monotonic() < until
            and (circuit.mode is DISABLED or (circuit.state is OPEN and now < circuit.open_until))
        ):
            return True, self.local_admit(circuit, now)
        return False, None

    def admit_call(self, circuit: Circuit, now: float) -> tuple[Call, str, bool]:
        """*locked* The admission script's call, its probe member, and whether to refresh the
        run-time default mode in the same round trip."""
        view: tuple[str, str, str, str] = _NO_VIEW
        if circuit.key in self.dirty:
            remaining = 0.0
            if circuit.state is OPEN and not circuit.forced:
                remaining = max(0.0, circuit.open_until - now)
            view = (
                str(_STATE_CODES[circuit.state]),
                repr(remaining),
                "1" if circuit.forced else "0",
                str(circuit.consecutive_failures),
            )
        member = f"{self.token}:{next(self.seq)}"
        mode_key = "" if self.backend.cluster else self.mode_key
        call = self.op_call(
            circuit.key, circuit.policy, ADMIT, member, self.default_mode, *view, mode_key
        )
        refresh = time.monotonic() >= self.default_mode_at + self.sync_interval
        return call, member, refresh

    def admitted(
        self, circuit: Circuit, reply: Reply, member: str, now: float
    ) -> Ticket | float | None:
        """*locked* Mirror the reply and turn its decision into a ticket or a verdict."""
        self.dirty.discard(circuit.key)
        self.mirror(circuit, reply, now)
        decision = reply[0]
        if decision in (D_ADMIT, D_PROBE):
            probe = decision == D_PROBE
            circuit.in_flight += 1
            ticket = Ticket(circuit, reply[2], now, HALF_OPEN if probe else CLOSED, probe, False)
            ticket.shared = Remote(member if probe else "")
            if probe:
                assert circuit.probes is not None
                circuit.probes.append(ticket)
            return ticket
        if decision == D_REJECT:
            circuit.rejections += 1
            return float(reply[11])
        if decision == D_SHADOW:
            circuit.in_flight += 1
            ticket = Ticket(circuit, reply[2], now, circuit.state, False, True)
            ticket.shared = None
            return ticket
        assert decision == D_DISABLED, decision
        return None

    def fallback_admit(self, key: str, url: Any, now: float) -> Ticket | float | None:
        """*locked*"""
        circuit = self.circuit_for(key, url)
        self.dirty.add(key)
        return self.local_admit(circuit, now)

    def set_default_mode(self, value: bytes | None) -> None:
        self.default_mode_at = time.monotonic()
        mode = "" if not value else value.decode()
        if mode != self.default_mode:
            self.default_mode = mode
            self.core._registry.mode_override = Mode(mode) if mode else None

    # -- the mirror ----------------------------------------------------------------------------

    def mirror(self, circuit: Circuit, reply: Reply, now: float) -> None:
        """*locked* Make the local circuit show the shared state; report what changed."""
        new = _STATES[reply[1]]
        old = circuit.state
        generation = reply[2]
        circuit.generation = generation
        if new is not old:
            circuit.state = new
            reason = reply[9].decode() or "changed by another worker"
            self.core._registry.context.events.append(
                StateChange(circuit.key, old, new, reason, now, generation)
            )
            if new is CLOSED and circuit.window is not None:
                circuit.window.clear()
            circuit.probes = [] if new is HALF_OPEN else None
        elif new is HALF_OPEN and circuit.probes is None:
            circuit.probes = []
        forced = reply[4] == 1
        circuit.forced = forced
        circuit.consecutive_failures = reply[5]
        circuit.reopens = reply[6]
        circuit.probe_successes = reply[7]
        mode = _MODES[reply[8]]
        circuit.mode = mode
        if new is OPEN:
            circuit.open_until = math.inf if forced else now + float(reply[3])
        else:
            circuit.open_until = 0.0
        if new is OPEN or mode is DISABLED:
            self.trust[circuit.key] = time.monotonic() + self.sync_interval
        else:
            self.trust.pop(circuit.key, None)
        if reply[10] & F_POLICY_MISMATCH and circuit.key not in self.policy_warned:
            self.policy_warned.add(circuit.key)
            self.core._registry.context.events.append(  # logged after the lock is released
                Notice(
                    logging.WARNING,
                    "circuit %r: workers disagree on its policy (the shared state was made with "
                    "another one); each worker applies its own rules to it. Give every worker "
                    "the same policy, or a different RedisStorage prefix",
                    (circuit.key,),
                )
            )

    def drain(self) -> list[Event] | None:
        """*locked* Pending events; an evicted circuit also loses its mirror bookkeeping."""
        events = self.core._registry.drain()
        if events:
            for event in events:
                if event.__class__ is Eviction:
                    self.trust.pop(event.key, None)
                    self.dirty.discard(event.key)
        return events

    # -- settlement (locked steps) -------------------------------------------------------------

    def settles_locally(self, ticket: Ticket, outcome: Outcome) -> bool:
        """True when the store cannot change: admitted locally, shadow, ignored, or expired."""
        return (
            ticket.shared is None
            or ticket.settled
            or (outcome is IGNORED and not ticket.probe)
            or self.away()
        )

    def local_settle(
        self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None, now: float
    ) -> bool | None:
        """*locked* The in-process state machine settles it (counted; maybe moves local state).

        While the store is away that local state is the worker's own view, merged at the next
        admission that reaches the store (admissions made meanwhile marked the key already)."""
        if self.down:
            self.dirty.add(ticket.circuit.key)
        return ticket.circuit.settle(ticket, outcome, slow, now, hint)

    def settle_call(self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None) -> Call:
        circuit = ticket.circuit
        policy = circuit.policy
        rnd = repr(self.core._registry.context.rng.random()) if policy.recovery_jitter else "0"
        return self.op_call(
            circuit.key,
            policy,
            SETTLE,
            str(ticket.generation),
            ticket.shared.member,
            _OUTCOMES[outcome],
            "1" if slow else "0",
            "" if hint is None else repr(float(hint)),
            rnd,
        )

    def settled(self, ticket: Ticket, outcome: Outcome, reply: Reply, now: float) -> bool | None:
        """*locked* Count the call locally and mirror the reply. Returns True if it was stale,
        None if this worker had counted it already (a probe whose slot expired here)."""
        circuit = ticket.circuit
        if ticket.settled or (ticket.probe and circuit.expired_at_close(ticket, now)):
            self.mirror(circuit, reply, now)
            return None
        ticket.settled = True
        if ticket.probe and circuit.probes:
            circuit._release_probe(ticket)
        circuit.in_flight -= 1
        if outcome is SUCCESS:
            circuit.successes += 1
        elif outcome is FAILURE:
            circuit.failures += 1
        else:
            circuit.ignored += 1
        self.mirror(circuit, reply, now)
        return bool(reply[10] & 6)  # F_STALE | F_LEASE_GONE

    def report(
        self,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        stale: bool | None,
        now: float,
        events: list[Event] | None,
    ) -> None:
        """Outside the lock: transitions, then the per-call event."""
        dispatch = self.core._dispatch
        if events:
            dispatch.emit(events)
        dispatch.settled(ticket, outcome, slow, stale, now)

    # -- the steps around a round trip (the sync and async twins add only the I/O) -------------
    # Each step takes the lock, works, drains and reports its own events after releasing it: the
    # events made before a round trip (an eviction, a notice, an expired probe) are never lost.

    def emit(self, events: list[Event] | None) -> None:
        if events:
            self.core._dispatch.emit(events)

    def begin_admission(
        self, key: str, url: Any, now: float
    ) -> tuple[Circuit, Ticket | float | None, tuple[Call, str, bool] | None]:
        """(circuit, verdict, None) when decided here; else (circuit, None, (the admission call,
        its probe member, whether to refresh the default mode)) for the store."""
        with self.core._lock:
            circuit = self.circuit_for(key, url)
            done, result = self.try_local(circuit, now)
            pending = None if done else self.admit_call(circuit, now)
            events = self.drain()
        self.emit(events)
        return circuit, result, pending

    def admission_failed(
        self, exc: BaseException, key: str, url: Any, now: float
    ) -> Ticket | float | None:
        """The store did not answer: this worker's own circuit decides."""
        self.unavailable(exc)
        with self.core._lock:
            result = self.fallback_admit(key, url, now)
            events = self.drain()
        self.emit(events)
        return result

    def admission_answered(
        self,
        circuit: Circuit,
        answer: tuple[Reply, bytes | None],
        member: str,
        refresh: bool,
        now: float,
    ) -> Ticket | float | None:
        reply, default_mode = answer
        self.available()
        with self.core._lock:
            if refresh:
                self.set_default_mode(default_mode)
            result = self.admitted(circuit, reply, member, now)
            events = self.drain()
        self.emit(events)
        return result

    def settle_here(
        self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None, now: float
    ) -> None:
        """Settle in this worker's circuit only (nothing shared can change, or Redis is away)."""
        with self.core._lock:
            stale = self.local_settle(ticket, outcome, slow, hint, now)
            events = self.drain()
        self.report(ticket, outcome, slow, stale, now, events)

    def settle_failed(
        self,
        exc: BaseException,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        hint: float | None,
        now: float,
    ) -> None:
        self.unavailable(exc)
        self.settle_here(ticket, outcome, slow, hint, now)

    def settle_answered(
        self, ticket: Ticket, outcome: Outcome, slow: bool, reply: Reply, now: float
    ) -> None:
        self.available()
        with self.core._lock:
            stale = self.settled(ticket, outcome, reply, now)
            events = self.drain()
        self.report(ticket, outcome, slow, stale, now, events)

    # -- operator API (locked steps) -----------------------------------------------------------

    def stats_from(self, circuit: Circuit, reply: Reply, now: float) -> CircuitStats:
        """*locked* This worker's counters with the shared state and window."""
        self.mirror(circuit, reply, now)
        return circuit.stats_with(now, reply[12], reply[13], reply[14])

    def applied(self, key: str, reply: Reply, now: float, *, create: bool) -> None:
        """*locked* Mirror an operator call's reply into the local circuit (made if ``create``)."""
        registry = self.core._registry
        circuit = registry.get_or_create(key) if create else registry.get(key)
        if circuit is not None:
            self.mirror(circuit, reply, now)

    def unreachable_for_operation(self, what: str, exc: BaseException) -> StorageUnavailableError:
        self.unavailable(exc)
        return StorageUnavailableError(
            f"{what}: Redis is unavailable ({type(exc).__name__}: {exc}); applied to this "
            "worker's own circuits only"
        )

    def state_after(self, key: str, replies: list[Reply] | None) -> CircuitState:
        """The state from a read (None: the store is away, so this worker's own view)."""
        now = self.core._clock()
        with self.core._lock:
            circuit = self.core._registry.get(key)
            if replies is None:
                if circuit is None:
                    return CLOSED
                circuit.refresh(now)
                return circuit.state
            if circuit is not None:
                self.mirror(circuit, replies[0], now)
            events = self.drain()
        self.emit(events)
        return _STATES[replies[0][1]]

    def stats_after(self, keys: list[str], replies: list[Reply] | None) -> dict[str, CircuitStats]:
        core = self.core
        if replies is None:
            snapshot: dict[str, CircuitStats] = core._locked(
                lambda now: {k: c.snapshot(now) for k, c in core._registry.circuits.items()}
            )
            return snapshot
        now = core._clock()
        result: dict[str, CircuitStats] = {}
        with core._lock:
            for key, reply in zip(keys, replies, strict=True):
                circuit = core._registry.get(key)
                if circuit is not None:
                    result[key] = self.stats_from(circuit, reply, now)
            events = self.drain()
        self.emit(events)
        return result

    def op_calls(
        self, names: list[str], op: str, extra: tuple[str, ...]
    ) -> tuple[list[str], list[Call]]:
        """The circuit keys inside state-hash ``names`` and the calls of ``op`` on each."""
        keys = [self.key_of_state(n) for n in names]
        return keys, [self.op_call(k, self.policy_for_key(k), op, *extra) for k in keys]

    def operated(self, keys: list[str], replies: list[Reply], *, create: bool) -> None:
        self.available()
        now = self.core._clock()
        with self.core._lock:
            for key, reply in zip(keys, replies, strict=True):
                self.applied(key, reply, now, create=create)
            events = self.drain()
        self.emit(events)

    def scan_pattern(self) -> str:
        return f"{_escape_glob(self.prefix)}:{{*}}"

    def key_of_state(self, name: str) -> str:
        """The circuit key inside a state hash's name ``prefix:{key}``."""
        return name[len(self.prefix) + 2 : -1]


class SyncSharedCircuits(SharedCircuits):
    """The sync twin: blocking calls to ``redis.Redis``, for ``CircuitBreakerTransport``."""

    def admit(self, request: Any) -> Any:
        core = self.core
        key, bypass = request_key(core, request)
        if bypass:
            return key
        now = core._clock()
        circuit, result, pending = self.begin_admission(key, request.url, now)
        if pending is not None:
            call, member, refresh = pending
            try:
                answer = self.backend.call(call, self.mode_key if refresh else None)
            except Exception as exc:
                result = self.admission_failed(exc, key, request.url, now)
            else:
                result = self.admission_answered(circuit, answer, member, refresh, now)
        return verdict(core, request, key, result)

    def settle(
        self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None, now: float | None
    ) -> None:
        if now is None:
            now = self.core._clock()
        if self.settles_locally(ticket, outcome):
            self.settle_here(ticket, outcome, slow, hint, now)
            return
        call = self.settle_call(ticket, outcome, slow, hint)
        try:
            reply, _ = self.backend.call(call, None)
        except Exception as exc:
            self.settle_failed(exc, ticket, outcome, slow, hint, now)
        else:
            self.settle_answered(ticket, outcome, slow, reply, now)

    # -- operator API --------------------------------------------------------------------------

    def read(self, keys: list[str]) -> list[Reply] | None:
        calls = [self.op_call(k, self.policy_for_key(k), READ) for k in keys]
        try:
            replies = self.backend.call_many(calls)
        except Exception as exc:
            self.unavailable(exc)
            return None
        self.available()
        return list(replies)

    def state(self, key: str) -> CircuitState:
        return self.state_after(key, self.read([key]))

    def stats(self) -> Mapping[str, CircuitStats]:
        keys = list(self.core._registry.circuits)
        return self.stats_after(keys, self.read(keys))

    def operate(self, key: str | None, op: str, *extra: str, create: bool, what: str) -> None:
        try:
            names = (
                [self.keys(key)[0]]
                if key is not None
                else list(self.backend.scan(self.scan_pattern()))
            )
            keys, calls = self.op_calls(names, op, extra)
            replies = self.backend.call_many(calls)
        except Exception as exc:
            raise self.unreachable_for_operation(what, exc) from exc
        self.operated(keys, replies, create=create)

    def close(self) -> None:
        """Close the breaker's own Redis connections (never the client you passed)."""
        self.backend.close()

    def set_default(self, mode: str) -> None:
        try:
            self.backend.set_mode(self.mode_key, mode)
        except Exception as exc:
            raise self.unreachable_for_operation("set_mode", exc) from exc
        self.set_default_mode(mode.encode())


class AsyncSharedCircuits(SharedCircuits):
    """The async twin: ``redis.asyncio`` (asyncio only), for ``AsyncCircuitBreakerTransport``."""

    async def handle_async_request(self, core: BreakerCore[Any], request: Any) -> Any:
        """The request path of ``core``: this engine's transport, or a ``wrap()`` twin of it,
        which shares its circuits but has an inner transport of its own. (The sync transport
        only asks ``admit``: it awaits nothing.)"""
        admission = await self.admit(request)
        if admission.__class__ is not Ticket:
            if admission.__class__ is not str:
                return admission
            response = await core._inner.handle_async_request(request)
            response.extensions["circuit_breaker"] = core._pass_through_info(admission)
            return response
        try:
            response = await core._inner.handle_async_request(request)
            response = core._track(admission, request, response, core._body)  # type: ignore[attr-defined]
        except BaseException as exc:
            core._settle_exception(admission, request, exc)  # also a non-response from the inner
            await self.flush(admission)
            raise
        await self.flush(admission)
        return response

    async def flush(self, ticket: Ticket) -> None:
        """Await a settlement that ``_track`` or ``_settle_exception`` started."""
        remote = ticket.shared
        if remote is not None and remote.pending is not None:
            pending, remote.pending = remote.pending, None
            await pending

    async def admit(self, request: Any) -> Any:
        core = self.core
        self.backend.check_loop()
        key, bypass = request_key(core, request)
        if bypass:
            return key
        now = core._clock()
        circuit, result, pending = self.begin_admission(key, request.url, now)
        if pending is not None:
            call, member, refresh = pending
            try:
                # Shielded and bounded: a request cancelled mid-admission must not leave a probe
                # lease it never learnt about (it would hold the slot until its lease ends).
                answer = await self.backend.shielded(call, self.mode_key if refresh else None)
            except Exception as exc:
                result = self.admission_failed(exc, key, request.url, now)
            else:
                result = self.admission_answered(circuit, answer, member, refresh, now)
        return verdict(core, request, key, result)

    def settle(
        self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None, now: float | None
    ) -> Any:
        """Settle now if nothing shared can change (returns None); else return the coroutine that
        settles in the store, also kept on the ticket for ``flush``."""
        if now is None:
            now = self.core._clock()
        if self.settles_locally(ticket, outcome):
            self.settle_here(ticket, outcome, slow, hint, now)
            return None
        pending = self._settle_remote(ticket, outcome, slow, hint, now)
        ticket.shared.pending = pending
        return pending

    async def _settle_remote(
        self, ticket: Ticket, outcome: Outcome, slow: bool, hint: float | None, now: float
    ) -> None:
        ticket.shared.pending = None
        call = self.settle_call(ticket, outcome, slow, hint)
        try:
            reply, _ = await self.backend.shielded(call, None)
        except Exception as exc:
            self.settle_failed(exc, ticket, outcome, slow, hint, now)
        else:
            self.settle_answered(ticket, outcome, slow, reply, now)

    # -- operator API --------------------------------------------------------------------------

    async def read(self, keys: list[str]) -> list[Reply] | None:
        calls = [self.op_call(k, self.policy_for_key(k), READ) for k in keys]
        try:
            replies = await self.backend.call_many(calls)
        except Exception as exc:
            self.unavailable(exc)
            return None
        self.available()
        return list(replies)

    async def state(self, key: str) -> CircuitState:
        self.backend.check_loop()
        return self.state_after(key, await self.read([key]))

    async def stats(self) -> Mapping[str, CircuitStats]:
        self.backend.check_loop()
        keys = list(self.core._registry.circuits)
        return self.stats_after(keys, await self.read(keys))

    async def operate(self, key: str | None, op: str, *extra: str, create: bool, what: str) -> None:
        self.backend.check_loop()
        try:
            if key is not None:
                names = [self.keys(key)[0]]
            else:
                names = [n async for n in self.backend.scan(self.scan_pattern())]
            keys, calls = self.op_calls(names, op, extra)
            replies = await self.backend.call_many(calls)
        except Exception as exc:
            raise self.unreachable_for_operation(what, exc) from exc
        self.operated(keys, replies, create=create)

    async def aclose(self) -> None:
        """Close the breaker's own Redis connections (never the client you passed)."""
        await self.backend.aclose()

    async def set_default(self, mode: str) -> None:
        self.backend.check_loop()
        try:
            await self.backend.set_mode(self.mode_key, mode)
        except Exception as exc:
            raise self.unreachable_for_operation("set_mode", exc) from exc
        self.set_default_mode(mode.encode())


def request_key(core: BreakerCore[Any], request: Any) -> tuple[str, bool]:
    """The circuit key of a request and whether it bypasses the breaker."""
    options = request.extensions.get("circuit_breaker")
    if options is not None:
        return core._read_options(options, request)
    return core._request_key(request), False


def verdict(core: BreakerCore[Any], request: Any, key: str, result: Ticket | float | None) -> Any:
    """A ticket as it is; None (disabled) as the key to pass through; seconds as a rejection."""
    if result.__class__ is Ticket:
        return result
    if result is None:
        return key
    return core._reject(request, key, result)  # type: ignore[arg-type]
