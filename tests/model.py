"""A reference model of the documented breaker behaviour, for the model-based tests.

Written from the README and issues 2 and 3, not from ``breaker_transport/_circuit.py``: it imports
no part of the state machine (only the policy object, which is configuration, and the enums), it
keeps every outcome of the current closed period in a plain list, finds the window by filtering
that list, and computes rates with exact fractions. It is slow and, we hope, obviously right.

Behaviour it encodes (one circuit per key, every step at a time ``now``):

- closed: every request is admitted. A failure adds one to the consecutive count, a success resets
  it, an ignored outcome changes nothing. ``failure_threshold`` failures in a row open the
  circuit. Each success/failure (not ignored) enters the window; once the window holds at least
  ``minimum_calls`` outcomes, a failure rate (or a slow-call rate) at or above its threshold opens
  the circuit. The window is the last ``window_size`` outcomes, or the outcomes that settled in the
  current bucket of ``window_duration / 10`` seconds and the 9 before it.
- open: rejected (``retry_after`` = the time left; infinity when forced) until the open period
  ends, then half-open at the first admission or read at or after that time.
- half-open: up to ``half_open_max_calls`` probes in flight; others are rejected with retry_after 0.
  A probe admitted ``probe_timeout`` seconds ago or more loses its slot at the next admission, read
  or its own close, whichever comes first, and counts as ignored (its late outcome changes nothing;
  so a late probe is ignored whatever other traffic there was). ``success_threshold`` good probes
  close the circuit; a failed or slow probe re-opens it, for an open period lengthened by the
  backoff.
- an outcome whose call was admitted in an older generation (before a transition) is counted in the
  totals but moves nothing; so is any outcome that arrives while the state is not the one the call
  was admitted in.
- the open period: ``recovery_timeout * recovery_backoff ** n`` (n = re-opens in a row after failed
  probes), times a jitter factor drawn from the shared rng when ``recovery_jitter`` is set, kept
  in ``[recovery_timeout, cap]``; a Retry-After hint on the opening failure lengthens it, up to
  the cap.
- modes: ``disabled`` passes requests through uncounted (a circuit is still created); ``observe``
  sends what enforce would reject and counts it only as a rejection when it settles.
- ``reset``: closed, counters and window cleared, in-flight calls stay in flight. ``force_open``:
  open with no end until reset.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from breaker_transport import TIME_WINDOW_BUCKETS, BreakerPolicy, CircuitState, Mode, Outcome

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


@dataclass
class ModelTicket:
    key: str
    generation: int
    admitted_at: float
    state: CircuitState
    probe: bool
    shadow: bool
    done: bool = False


@dataclass(frozen=True)
class ModelTransition:
    key: str
    old: CircuitState
    new: CircuitState
    at: float
    generation: int


@dataclass
class ModelCircuit:
    key: str
    policy: BreakerPolicy
    mode: Mode
    state: CircuitState = CLOSED
    generation: int = 0
    consecutive: int = 0
    successes: int = 0
    failures: int = 0
    ignored: int = 0
    rejections: int = 0
    in_flight: int = 0
    open_until: float = 0.0
    forced: bool = False
    reopens: int = 0
    probes: list[ModelTicket] = field(default_factory=list)
    probe_successes: int = 0
    #: (settled_at, failed, slow) of every outcome that entered the window since the last close
    outcomes: list[tuple[float, bool, bool]] = field(default_factory=list)

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        policy = self.policy
        if policy.window_duration is None:
            return self.outcomes[-policy.window_size :]
        width = policy.window_duration / TIME_WINDOW_BUCKETS
        current = math.floor(now / width)
        return [
            o for o in self.outcomes if math.floor(o[0] / width) > current - TIME_WINDOW_BUCKETS
        ]


def cap_of(policy: BreakerPolicy) -> float:
    if policy.max_recovery_timeout is not None:
        return float(policy.max_recovery_timeout)
    return max(300.0, float(policy.recovery_timeout))


def open_period(
    policy: BreakerPolicy, reopens: int, hint: float | None, rng: random.Random
) -> float:
    base = float(policy.recovery_timeout)
    cap = cap_of(policy)
    period = base
    for _ in range(reopens):
        period = min(period * policy.recovery_backoff, cap)
    if policy.recovery_jitter:
        period *= rng.uniform(1.0 - policy.recovery_jitter, 1.0 + policy.recovery_jitter)
    period = min(max(period, base), cap)
    if hint is not None and hint > period:
        period = min(hint, cap)
    return period


class Model:
    """Every circuit of one transport."""

    def __init__(self, policy_of: Callable[[str], BreakerPolicy], rng: random.Random) -> None:
        self.policy_of = policy_of
        self.rng = rng
        self.circuits: dict[str, ModelCircuit] = {}
        self.transitions: list[ModelTransition] = []
        self.mode_override: Mode | None = None

    # -- helpers -------------------------------------------------------------------------------

    def circuit(self, key: str) -> ModelCircuit:
        found = self.circuits.get(key)
        if found is None:
            policy = self.policy_of(key)
            mode = self.mode_override if self.mode_override is not None else policy.mode
            found = self.circuits[key] = ModelCircuit(key, policy, mode)
        return found

    def _move(self, c: ModelCircuit, new: CircuitState, now: float) -> None:
        old = c.state
        c.state = new
        c.generation += 1
        c.probes = []
        c.probe_successes = 0
        if new is CLOSED:
            c.consecutive = 0
            c.reopens = 0
            c.forced = False
            c.outcomes = []
        self.transitions.append(ModelTransition(c.key, old, new, now, c.generation))

    def _open(self, c: ModelCircuit, now: float, hint: float | None, reopen: bool) -> None:
        c.reopens = c.reopens + 1 if reopen else 0
        c.open_until = now + open_period(c.policy, c.reopens, hint, self.rng)
        self._move(c, OPEN, now)

    def refresh(self, key: str, now: float) -> None:
        c = self.circuits.get(key)
        if c is not None and c.state is OPEN and not c.forced and now >= c.open_until:
            self._move(c, HALF_OPEN, now)
        elif c is not None and c.state is HALF_OPEN:
            self._expire(c, now)

    def _expire(self, c: ModelCircuit, now: float) -> None:
        for probe in list(c.probes):
            if probe.admitted_at <= now - c.policy.probe_timeout:
                c.probes.remove(probe)
                probe.done = True
                c.in_flight -= 1
                c.ignored += 1

    # -- the request path ----------------------------------------------------------------------

    def admit(self, key: str, now: float) -> ModelTicket | float | None:
        """A ticket (sent and counted), a float (rejected: retry_after) or None (disabled)."""
        c = self.circuit(key)
        if c.mode is Mode.DISABLED:
            return None
        if c.state is CLOSED:
            c.in_flight += 1
            return ModelTicket(key, c.generation, now, CLOSED, False, False)
        if c.state is OPEN:
            if c.forced:
                return self._reject(c, math.inf, now)
            if now < c.open_until:
                return self._reject(c, c.open_until - now, now)
            self._move(c, HALF_OPEN, now)
        self._expire(c, now)
        if len(c.probes) < c.policy.half_open_max_calls:
            ticket = ModelTicket(key, c.generation, now, HALF_OPEN, True, False)
            c.probes.append(ticket)
            c.in_flight += 1
            return ticket
        return self._reject(c, 0.0, now)

    def _reject(self, c: ModelCircuit, retry_after: float, now: float) -> ModelTicket | float:
        if c.mode is Mode.OBSERVE:
            c.in_flight += 1
            return ModelTicket(c.key, c.generation, now, c.state, False, True)
        c.rejections += 1
        return retry_after

    def settle(
        self, ticket: ModelTicket, outcome: Outcome, slow: bool, now: float, hint: float | None
    ) -> None:
        c = self.circuits[ticket.key]
        if ticket.done:
            return
        if ticket.probe and ticket.generation == c.generation:
            self._expire(c, now)
            if ticket.done:
                return
        ticket.done = True
        if ticket in c.probes:
            c.probes.remove(ticket)
        c.in_flight -= 1
        if ticket.shadow:
            c.rejections += 1
            return
        if outcome is Outcome.SUCCESS:
            c.successes += 1
        elif outcome is Outcome.FAILURE:
            c.failures += 1
        else:
            c.ignored += 1
        if ticket.generation != c.generation or outcome is Outcome.IGNORED:
            return
        policy = c.policy
        failed = outcome is Outcome.FAILURE
        if ticket.probe:
            if failed:
                self._open(c, now, hint, reopen=True)
            elif slow:
                self._open(c, now, None, reopen=True)
            else:
                c.probe_successes += 1
                if c.probe_successes >= policy.success_threshold:
                    self._move(c, CLOSED, now)
            return
        c.consecutive = c.consecutive + 1 if failed else 0
        if policy.has_window:
            c.outcomes.append((now, failed, slow))
        threshold = policy.failure_threshold
        if failed and threshold is not None and c.consecutive >= threshold:
            self._open(c, now, hint, reopen=False)
            return
        if policy.has_window:
            window = c.window(now)
            if len(window) >= policy.minimum_calls:
                failures = sum(1 for o in window if o[1])
                slows = sum(1 for o in window if o[2])
                rate_trip = policy.failure_rate_threshold is not None and Fraction(
                    failures, len(window)
                ) >= Fraction(str(policy.failure_rate_threshold))
                slow_trip = policy.slow_call_duration is not None and Fraction(
                    slows, len(window)
                ) >= Fraction(str(policy.slow_call_rate_threshold))
                if rate_trip or slow_trip:
                    self._open(c, now, hint if failed else None, reopen=False)

    # -- operations ----------------------------------------------------------------------------

    def reset(self, key: str | None, now: float) -> None:
        targets = list(self.circuits.values()) if key is None else [self.circuits.get(key)]
        for c in targets:
            if c is None:
                continue
            if c.state is not CLOSED:
                self._move(c, CLOSED, now)
            c.forced = False
            c.open_until = 0.0
            c.consecutive = 0
            c.reopens = 0
            c.outcomes = []
            c.successes = c.failures = c.ignored = c.rejections = 0

    def force_open(self, key: str, now: float) -> None:
        c = self.circuit(key)
        c.forced = True
        if c.state is not OPEN:
            self._move(c, OPEN, now)
        c.open_until = math.inf

    def set_mode(self, mode: Mode, key: str | None) -> None:
        if key is None:
            self.mode_override = mode
            for c in self.circuits.values():
                c.mode = mode
        else:
            self.circuit(key).mode = mode

    def snapshot(self, key: str, now: float) -> dict[str, Any]:
        self.refresh(key, now)
        c = self.circuits[key]
        policy = c.policy
        window = c.window(now) if policy.has_window else []
        calls = len(window)
        enough = policy.has_window and calls >= policy.minimum_calls and calls > 0
        if c.state is CLOSED:
            retry_after: float | None = None
        elif c.state is HALF_OPEN:
            retry_after = 0.0
        elif c.forced:
            retry_after = math.inf
        else:
            retry_after = max(0.0, c.open_until - now)
        return {
            "state": c.state,
            "consecutive_failures": c.consecutive,
            "successes": c.successes,
            "failures": c.failures,
            "ignored": c.ignored,
            "rejections": c.rejections,
            "in_flight": c.in_flight,
            "retry_after": retry_after,
            "mode": c.mode,
            "forced_open": c.forced,
            "window_calls": calls,
            "failure_rate": sum(o[1] for o in window) / calls if enough else None,
            "slow_call_rate": sum(o[2] for o in window) / calls if enough else None,
            "generation": c.generation,
        }
