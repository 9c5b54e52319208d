"""The registry: key -> circuit, with per-host policy resolution and a bound on memory.

One lock guards every circuit of a transport. It is held only for the pure state-machine steps
(never across I/O, an ``await`` or user code), and the transitions those steps produce are
collected under it and handed back, so the transport can call listeners after releasing it.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from itertools import islice
from typing import Any

from ._circuit import CLOSED, Circuit, Context, Ticket
from ._keys import PolicyResolver, host_and_port, parse_origin
from ._policy import BreakerPolicy
from ._types import Event, Eviction, Mode, Notice

logger = logging.getLogger("breaker_transport")


#: How many of the least recently used circuits an eviction looks at (see ``_evict_one``).
EVICTION_SCAN = 64


class CircuitMap(dict[str, Circuit]):
    """key -> circuit, least recently used first.

    A plain dict kept in recency order by taking a key out and putting it back at the end on each
    use: an ``OrderedDict`` keeps a linked-list node and an index slot per key besides its
    dict, 66 bytes per circuit against 21 here (42 once uses have churned the table).
    """

    __slots__ = ()

    def move_to_end(self, key: str) -> None:
        """Mark ``key`` as the most recently used (``OrderedDict``'s name for it)."""
        self[key] = self.pop(key)


class Registry:
    """Every circuit of one transport. Callers hold ``lock`` around each method marked *locked*."""

    def __init__(
        self,
        resolver: PolicyResolver,
        *,
        max_circuits: int,
        rng: random.Random | None,
        check_policy_per_request: bool,
    ) -> None:
        self.lock = threading.Lock()
        self.circuits = CircuitMap()
        self.context = Context(rng)
        self.resolver = resolver
        self.max_circuits = max_circuits
        #: set by ``set_mode(mode)`` with no key: applies to every circuit, existing and future
        self.mode_override: Mode | None = None
        # With a custom key= several hosts may share a circuit; their per_host policies must agree.
        self._check_policy = check_policy_per_request and bool(
            resolver.exact or resolver.host_port or resolver.wildcards
        )
        self._warned: set[str] = set()

    # -- hot path (locked) ---------------------------------------------------------------------

    def admit(self, key: str, url: Any, now: float) -> Ticket | float | None:
        """*locked* The circuit of ``key`` admits a call (see ``Circuit.admit``)."""
        circuits = self.circuits
        circuit = circuits.pop(key, None)
        if circuit is None:
            circuit = self._create(key, self._policy_for_url(url))
        else:
            circuits[key] = circuit  # back at the end: the most recently used (see CircuitMap)
            if self._check_policy:
                self._check_agreement(circuit, url)
        return circuit.admit(now)

    def drain(self) -> list[Event] | None:
        """*locked* The transitions and evictions produced since the last drain.

        The pending list is emptied in place, never replaced, so the transport can keep a
        reference to it and skip this call on the hot path while it is empty.
        """
        events = self.context.events
        if not events:
            return None
        drained = events.copy()
        events.clear()
        return drained

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (another thread of the parent may have held this one
        at the fork, and would never release it here), and none of the parent's calls in flight."""
        self.lock = threading.Lock()
        for circuit in self.circuits.values():
            circuit.forget_in_flight()

    # -- operations (locked) -------------------------------------------------------------------

    def get(self, key: str) -> Circuit | None:
        return self.circuits.get(key)

    def get_or_create(self, key: str) -> Circuit:
        """*locked* For operations naming a key (force_open, set_mode): made from the key alone."""
        circuit = self.circuits.get(key)
        if circuit is None:
            origin = parse_origin(key)
            policy = self.resolver.resolve(*origin) if origin else self.resolver.default
            circuit = self._create(key, policy)
        return circuit

    def set_mode(self, mode: Mode, key: str | None) -> None:
        """*locked*"""
        if key is None:
            self.mode_override = mode
            for circuit in self.circuits.values():
                circuit.mode = mode
        else:
            self.get_or_create(key).mode = mode

    # -- internals -----------------------------------------------------------------------------

    def _policy_for_url(self, url: Any) -> BreakerPolicy:
        try:
            return self.resolver.resolve(*host_and_port(url))
        except Exception as exc:  # a URL type we cannot read: its circuit gets the default policy
            message = "cannot read the host of %r; using the default policy"
            self.context.events.append(Notice(logging.DEBUG, message, (url,), exc))
            return self.resolver.default

    def _check_agreement(self, circuit: Circuit, url: Any) -> None:
        policy = self._policy_for_url(url)
        if policy is not circuit.policy and circuit.key not in self._warned:
            self._warned.add(circuit.key)
            self.context.events.append(
                Notice(
                    logging.WARNING,
                    "circuit %r is shared by hosts with different per_host policies (a custom "
                    "key= groups them); it keeps the policy it was created with",
                    (circuit.key,),
                )
            )

    def _create(self, key: str, policy: BreakerPolicy) -> Circuit:
        if len(self.circuits) >= self.max_circuits:
            self._evict_one()
        mode = self.mode_override
        circuit = Circuit(key, policy, self.context, mode)
        self.circuits[key] = circuit
        return circuit

    def _evict_one(self) -> None:
        """Drop the least-recently-used clean closed circuit; failing that, the LRU closed one;
        failing that, the open or half-open one whose open period ends soonest.

        It looks at the ``EVICTION_SCAN`` least recently used circuits only. A full scan cost
        O(max_circuits) under the lock for every new host once (nearly) every circuit was open
        or failing (many dead hosts at once): 1 ms per request with 10,000 circuits."""
        circuits = self.circuits
        victim: str | None = None
        dirty: list[str] = []
        closed: str | None = None
        soonest: tuple[float, str] | None = None
        for key, circuit in islice(circuits.items(), EVICTION_SCAN):
            if circuit.evictable:
                victim = key
                break
            dirty.append(key)
            if circuit.state is CLOSED:
                if closed is None:
                    closed = key
            else:
                ends = math.inf if circuit.forced else circuit.open_until
                if soonest is None or ends < soonest[0]:
                    soonest = (ends, key)
        if victim is None:
            victim = closed if closed is not None else soonest[1] if soonest else None
        if victim is None:
            return
        del circuits[victim]
        # The circuits passed over are busy or failing: move them to the recent end, so the next
        # eviction looks at others.
        for key in dirty:
            if key != victim:
                circuits.move_to_end(key)
        self.context.events.append(Eviction(victim))
