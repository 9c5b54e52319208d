"""The circuit: one small, pure state machine per key.

No I/O, no clock of its own, no locks, no async: every method takes ``now`` from its caller, and the
caller (the registry, under its lock) serialises the calls. The sync and async transports share it.

Life of a call::

    result = circuit.admit(now)         # a Ticket, or the seconds until a probe may be sent
    ...                                 # the request goes out; the caller reads the body
    circuit.settle(ticket, outcome, slow, now, retry_after_hint)   # exactly once, at close

Every transition bumps ``generation``; a ticket remembers the generation it was admitted in, so
an outcome that arrives after the circuit moved on (a call still in flight when the circuit
opened) is counted in the totals but cannot move the newer state.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from ._types import CircuitState, CircuitStats, Event, Mode, Outcome, StateChange, call_event
from ._windows import window_for

if TYPE_CHECKING:
    from ._policy import BreakerPolicy
    from ._windows import Window

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
SUCCESS = Outcome.SUCCESS
FAILURE = Outcome.FAILURE
IGNORED = Outcome.IGNORED
OBSERVE = Mode.OBSERVE
DISABLED = Mode.DISABLED


class Ticket:
    """An admitted call: which circuit, which generation, when, and in which role."""

    # ``shared`` is set only by a shared storage (``storage/_shared.py``), on its own tickets; the
    # in-process path never sets or reads it, so it costs that path nothing.
    __slots__ = (
        "admitted_at",
        "circuit",
        "generation",
        "probe",
        "settled",
        "shadow",
        "shared",
        "state",
    )
    shared: Any

    def __init__(
        self,
        circuit: Circuit,
        generation: int,
        admitted_at: float,
        state: CircuitState,
        probe: bool,
        shadow: bool,
    ) -> None:
        self.circuit = circuit
        self.generation = generation
        self.admitted_at = admitted_at
        self.state = state
        #: a half-open probe, holding one of the ``half_open_max_calls`` slots
        self.probe = probe
        #: sent by observe mode although enforce would have rejected it: counted as a rejection only
        self.shadow = shadow
        #: counted already (settled, or a probe whose slot expired): later settles change nothing
        self.settled = False


class Context:
    """What the circuits of one registry share: pending transitions and the random source."""

    __slots__ = ("events", "rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self.events: list[Event] = []
        self.rng = rng if rng is not None else random.Random()


class Recovery:
    """What a circuit carries from its first trip until it closes again.

    Kept apart from ``Circuit`` so that an idle closed circuit (the common case, and there may be
    100,000 of them) does not pay for the open period, the re-open count and the probes.
    """

    __slots__ = ("forced", "open_until", "probes", "reopens")

    def __init__(self) -> None:
        self.open_until = 0.0
        self.forced = False
        #: re-opens in a row after failed probes; lengthens the open period (recovery_backoff)
        self.reopens = 0
        #: the probes in flight, while half-open
        self.probes: list[Ticket] | None = None


class Circuit:
    """The state of one key. Read the module docstring for the life of a call."""

    __slots__ = (
        "consecutive_failures",
        "context",
        "failures",
        "generation",
        "ignored",
        "in_flight",
        "key",
        "mode",
        "policy",
        "probe_successes",
        "recovery",
        "rejections",
        "state",
        "successes",
        "window",
    )

    def __init__(
        self, key: str, policy: BreakerPolicy, context: Context, mode: Mode | None = None
    ) -> None:
        self.key = key
        self.policy = policy
        self.context = context
        self.mode = policy.mode if mode is None else mode
        self.state = CLOSED
        self.generation = 0
        self.consecutive_failures = 0
        #: None until the circuit first trips, and again once it closes
        self.recovery: Recovery | None = None
        #: successful probes in the current (or last) half-open period
        self.probe_successes = 0
        self.window: Window | None = window_for(policy)
        self.successes = 0
        self.failures = 0
        self.ignored = 0
        self.rejections = 0
        self.in_flight = 0

    # -- admission -----------------------------------------------------------------------------

    def admit(self, now: float) -> Ticket | float | None:
        """Admit a call: a Ticket, or the seconds until a probe may be sent (a rejection).

        None means the circuit is disabled: send the request and count nothing.
        """
        state = self.state
        if state is CLOSED:
            if self.mode is DISABLED:
                return None
            self.in_flight += 1
            return Ticket(self, self.generation, now, CLOSED, False, False)
        if self.mode is DISABLED:
            return None
        recovery = self.recovery or self._recovering()  # the rejection path: no call if it exists
        if state is OPEN:
            if recovery.forced:
                return self._reject(math.inf, now)
            if now < recovery.open_until:
                return self._reject(recovery.open_until - now, now)
            self._transition(HALF_OPEN, "recovery timeout elapsed", now)
        if recovery.probes:
            self.expire_probes(now)
        probes = recovery.probes
        assert probes is not None
        if len(probes) < self.policy.half_open_max_calls:
            self.in_flight += 1
            ticket = Ticket(self, self.generation, now, HALF_OPEN, True, False)
            probes.append(ticket)
            return ticket
        return self._reject(0.0, now)

    def _reject(self, retry_after: float, now: float) -> Ticket | float:
        if self.mode is OBSERVE:
            self.in_flight += 1
            return Ticket(self, self.generation, now, self.state, False, True)
        self.rejections += 1
        return retry_after

    def expire_probes(self, now: float) -> None:
        """A probe whose response is never closed gives its slot back after ``probe_timeout``."""
        recovery = self.recovery
        assert recovery is not None and recovery.probes is not None
        deadline = now - self.policy.probe_timeout
        kept = []
        for probe in recovery.probes:
            if probe.admitted_at > deadline:
                kept.append(probe)
            else:
                probe.settled = True
                self.in_flight -= 1
                self.ignored += 1
                # Its late close, if any, will count nothing: tell the call listeners now.
                self.context.events.append(
                    call_event(self.key, "ignored", HALF_OPEN, now - probe.admitted_at)
                )
        recovery.probes = kept

    def expired_at_close(self, ticket: Ticket, now: float) -> bool:
        """A probe closed after ``probe_timeout`` with no admission or read in between to notice:
        its slot expires now, as it would have then (the same result whatever other traffic
        there was). True if the probe is settled (counted as ignored) by that."""
        if (
            ticket.generation == self.generation  # still half-open, its slot still held
            and self.probes
            and now - ticket.admitted_at >= self.policy.probe_timeout
        ):
            self.expire_probes(now)
        return ticket.settled

    # -- settlement ----------------------------------------------------------------------------

    def settle(
        self,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        now: float,
        retry_after_hint: float | None = None,
    ) -> bool | None:
        """Record the outcome of an admitted call, exactly once. Returns True if it was stale
        (counted, but it could not move the newer state), None if it had been counted already.

        ``slow`` says the headers took longer than the policy's ``slow_call_duration``;
        ``retry_after_hint`` is a parsed ``Retry-After`` (seconds) of a failing 429/503 response.
        """
        if ticket.settled or (ticket.probe and self.expired_at_close(ticket, now)):
            return None  # an expired probe (already counted as ignored), or a second settle
        ticket.settled = True
        if ticket.probe:
            self._release_probe(ticket)
        self.in_flight -= 1
        if ticket.shadow:
            self.rejections += 1
            return False
        if outcome is SUCCESS:
            self.successes += 1
        elif outcome is FAILURE:
            self.failures += 1
        else:
            self.ignored += 1
        if ticket.generation != self.generation:
            return True
        if outcome is IGNORED:
            return False
        policy = self.policy
        if ticket.probe:
            if outcome is FAILURE:
                self._open(now, "probe failed", retry_after_hint, reopen=True)
            elif slow:
                self._open(now, "probe was slow", None, reopen=True)
            else:
                self.probe_successes += 1
                if self.probe_successes >= policy.success_threshold:
                    self._transition(CLOSED, "probe succeeded", now)
            return False
        failed = outcome is FAILURE
        window = self.window
        if window is not None:  # first: the outcome that trips the consecutive rule counts too
            window.record(failed, slow, now)
        if failed:
            self.consecutive_failures += 1
            threshold = policy.failure_threshold
            if threshold is not None and self.consecutive_failures >= threshold:
                self._open(
                    now, f"{self.consecutive_failures} consecutive failures", retry_after_hint
                )
                return False
        else:
            self.consecutive_failures = 0
        if window is not None and window.calls >= policy.minimum_calls:
            reason = self._rate_trip(window.calls, window.failures, window.slow)
            if reason is not None:
                self._open(now, reason, retry_after_hint if failed else None)
        return False

    def _release_probe(self, ticket: Ticket) -> None:
        # Identity, not equality: a probe of an older half-open period is simply not found.
        probes = self.recovery.probes if self.recovery is not None else None
        if probes is None:
            return
        for index, probe in enumerate(probes):
            if probe is ticket:
                del probes[index]
                return

    def _rate_trip(self, calls: int, failures: int, slow: int) -> str | None:
        # Divide, never multiply: 0.07 * 100 is 7.000000000000001, so 7 failures in 100 calls
        # would not "reach" 7%; failures / calls rounds the same way the threshold literal does.
        policy = self.policy
        threshold = policy.failure_rate_threshold
        if threshold is not None and failures / calls >= threshold:
            return f"failure rate {failures}/{calls} reached {threshold:.0%}"
        if (
            policy.slow_call_duration is not None
            and slow / calls >= policy.slow_call_rate_threshold
        ):
            return f"slow call rate {slow}/{calls} reached {policy.slow_call_rate_threshold:.0%}"
        return None

    # -- transitions ---------------------------------------------------------------------------

    def _open(
        self, now: float, reason: str, retry_after_hint: float | None, reopen: bool = False
    ) -> None:
        policy = self.policy
        recovery = self._recovering()
        recovery.reopens = recovery.reopens + 1 if reopen else 0
        duration = open_duration(policy, recovery.reopens, retry_after_hint, self.context.rng)
        recovery.open_until = now + duration
        self._transition(OPEN, reason, now)

    def _transition(self, new: CircuitState, reason: str, now: float) -> None:
        old = self.state
        self.state = new
        self.generation += 1
        if new is CLOSED:
            self.recovery = None  # no open period, no re-opens, no probes, not forced
            self.consecutive_failures = 0
            if self.window is not None:
                self.window.clear()
        elif new is HALF_OPEN:
            self._recovering().probes = []
            self.probe_successes = 0
        elif self.recovery is not None:
            self.recovery.probes = None
        self.context.events.append(StateChange(self.key, old, new, reason, now, self.generation))

    # -- operations ----------------------------------------------------------------------------

    def force_open(self, now: float) -> None:
        """Hold the circuit open, with no probes, until ``reset``."""
        recovery = self._recovering()
        recovery.forced = True
        recovery.open_until = math.inf
        if self.state is not OPEN:
            self._transition(OPEN, "forced open", now)

    def reset(self, now: float) -> None:
        """Closed, counters cleared. Calls still in flight stay in ``in_flight``."""
        if self.state is not CLOSED:
            self._transition(CLOSED, "reset", now)
        self.recovery = None
        self.consecutive_failures = 0
        if self.window is not None:
            self.window.clear()
        self.successes = self.failures = self.ignored = self.rejections = 0

    def forget_in_flight(self) -> None:
        """In a forked child: the parent's calls in flight will never settle here. Drop them
        (uncounted, they are the parent's) and give back their probe slots."""
        self.in_flight = 0
        recovery = self.recovery
        if recovery is not None and recovery.probes:
            for probe in recovery.probes:
                probe.settled = True
            recovery.probes = []

    def refresh(self, now: float) -> None:
        """Apply the lazy steps when read: an expired open circuit becomes half-open, and probes
        held past ``probe_timeout`` give their slots back."""
        if self.state is OPEN and not self.forced and now >= self.open_until:
            self._transition(HALF_OPEN, "recovery timeout elapsed", now)
        elif self.state is HALF_OPEN and self.probes:
            self.expire_probes(now)

    # -- the recovery state, by name (the registry, a shared storage, tests read these) ---------

    def _recovering(self) -> Recovery:
        recovery = self.recovery
        if recovery is None:
            recovery = self.recovery = Recovery()
        return recovery

    @property
    def open_until(self) -> float:
        """When the open period ends (clock time); ``math.inf`` while forced open."""
        return self.recovery.open_until if self.recovery is not None else 0.0

    @open_until.setter
    def open_until(self, value: float) -> None:
        if value or self.recovery is not None:
            self._recovering().open_until = value

    @property
    def forced(self) -> bool:
        """Held open by ``force_open`` until ``reset``."""
        return self.recovery is not None and self.recovery.forced

    @forced.setter
    def forced(self, value: bool) -> None:
        if value or self.recovery is not None:
            self._recovering().forced = value

    @property
    def reopens(self) -> int:
        """Re-opens in a row after failed probes; lengthens the open period."""
        return self.recovery.reopens if self.recovery is not None else 0

    @reopens.setter
    def reopens(self, value: int) -> None:
        if value or self.recovery is not None:
            self._recovering().reopens = value

    @property
    def probes(self) -> list[Ticket] | None:
        """The probes in flight while half-open; None otherwise."""
        return self.recovery.probes if self.recovery is not None else None

    @probes.setter
    def probes(self, value: list[Ticket] | None) -> None:
        if value is not None or self.recovery is not None:
            self._recovering().probes = value

    def retry_after(self, now: float) -> float | None:
        if self.state is CLOSED:
            return None
        if self.state is HALF_OPEN:
            return 0.0
        if self.forced:
            return math.inf
        return max(0.0, self.open_until - now)

    def snapshot(self, now: float) -> CircuitStats:
        self.refresh(now)
        window = self.window
        if window is None:
            return self.stats_with(now, 0, 0, 0)
        window.advance(now)
        return self.stats_with(now, window.calls, window.failures, window.slow)

    def stats_with(self, now: float, calls: int, failures: int, slow: int) -> CircuitStats:
        """A snapshot with the given window counts (this circuit's, or a shared store's)."""
        enough = self.policy.has_window and calls >= self.policy.minimum_calls and calls > 0
        return CircuitStats(
            state=self.state,
            consecutive_failures=self.consecutive_failures,
            successes=self.successes,
            failures=self.failures,
            ignored=self.ignored,
            rejections=self.rejections,
            in_flight=self.in_flight,
            retry_after=self.retry_after(now),
            mode=self.mode,
            forced_open=self.forced,
            window_calls=calls,
            failure_rate=failures / calls if enough else None,
            slow_call_rate=slow / calls if enough else None,
            generation=self.generation,
        )

    @property
    def evictable(self) -> bool:
        """Closed, idle and clean: dropping it loses nothing a fresh circuit would not have."""
        return self.state is CLOSED and self.consecutive_failures == 0 and self.in_flight == 0


def open_duration(
    policy: BreakerPolicy, reopens: int, retry_after_hint: float | None, rng: random.Random
) -> float:
    """How long a circuit stays open: backoff, jitter, then a server's Retry-After, all capped.

    ``recovery_timeout * recovery_backoff ** reopens``, times a random factor in
    ``[1 - recovery_jitter, 1 + recovery_jitter]``, kept within
    ``[recovery_timeout, effective_max_recovery_timeout]``; a Retry-After hint lengthens it (never
    shortens it) up to the same cap.
    """
    base = float(policy.recovery_timeout)
    cap = policy.effective_max_recovery_timeout
    # Cap the exponent's growth before it can overflow: past the cap the value no longer matters.
    duration = base
    for _ in range(reopens):
        duration *= policy.recovery_backoff
        if duration >= cap:
            duration = cap
            break
    if policy.recovery_jitter:
        duration *= rng.uniform(1.0 - policy.recovery_jitter, 1.0 + policy.recovery_jitter)
    duration = min(max(duration, base), cap)
    if retry_after_hint is not None and retry_after_hint > duration:
        duration = min(retry_after_hint, cap)
    return duration
