"""The pure state machine, driven directly: no transport, no HTTP, time passed in by hand."""

from __future__ import annotations

import math
import random

import pytest

from breaker_transport import BreakerPolicy, CircuitState, Outcome
from breaker_transport._circuit import Circuit, Context, Ticket, open_duration

S, F, IGN = Outcome.SUCCESS, Outcome.FAILURE, Outcome.IGNORED
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def make(**fields: object) -> Circuit:
    return Circuit("https://h", BreakerPolicy(**fields), Context(random.Random(0)))  # type: ignore[arg-type]


def call(circuit: Circuit, outcome: Outcome, now: float = 0.0, slow: bool = False) -> Ticket:
    ticket = circuit.admit(now)
    assert isinstance(ticket, Ticket), f"expected admission, got {ticket!r}"
    circuit.settle(ticket, outcome, slow, now)
    return ticket


def transitions(circuit: Circuit) -> list[tuple[str, str]]:
    events = circuit.context.events
    circuit.context.events = []
    return [(e.old.value, e.new.value) for e in events]  # type: ignore[union-attr]


def test_opens_after_exactly_failure_threshold_consecutive_failures() -> None:
    c = make(failure_threshold=3)
    call(c, F)
    call(c, F)
    assert c.state is CLOSED and c.consecutive_failures == 2
    call(c, F)
    assert c.state is OPEN
    assert transitions(c) == [("closed", "open")]


def test_success_resets_the_consecutive_count_and_ignored_does_not() -> None:
    c = make(failure_threshold=3)
    call(c, F)
    call(c, F)
    call(c, S)
    assert c.consecutive_failures == 0
    call(c, F)
    call(c, F)
    call(c, IGN)
    assert c.consecutive_failures == 2
    call(c, F)
    assert c.state is OPEN


def test_open_rejects_with_the_time_left_and_counts_rejections() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0)
    call(c, F, now=100.0)
    assert c.admit(104.0) == pytest.approx(6.0)
    assert c.admit(109.5) == pytest.approx(0.5)
    assert c.rejections == 2
    assert c.retry_after(104.0) == pytest.approx(6.0)


def test_half_open_after_recovery_timeout_is_lazy_and_admits_one_probe() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0)
    call(c, F, now=0.0)
    transitions(c)
    assert c.state is OPEN  # no timer: nothing happens until someone asks
    probe = c.admit(10.0)
    assert isinstance(probe, Ticket) and probe.probe and probe.state is HALF_OPEN
    assert c.state is HALF_OPEN
    assert c.admit(10.0) == 0.0  # the only slot is taken
    assert transitions(c) == [("open", "half_open")]


def test_refresh_moves_an_expired_open_circuit_to_half_open() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0)
    call(c, F, now=0.0)
    c.refresh(9.999)
    assert c.state is OPEN
    c.refresh(10.0)
    assert c.state is HALF_OPEN


def test_success_threshold_probes_close_the_circuit() -> None:
    c = make(failure_threshold=1, recovery_timeout=1.0, success_threshold=2, half_open_max_calls=2)
    call(c, F, now=0.0)
    first = c.admit(1.0)
    second = c.admit(1.0)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    c.settle(first, S, False, 1.1)
    assert c.state is HALF_OPEN
    c.settle(second, S, False, 1.2)
    assert c.state is CLOSED
    assert c.consecutive_failures == 0


def test_failed_probe_reopens_and_restarts_the_timer() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0)
    call(c, F, now=0.0)
    probe = c.admit(10.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, F, False, 12.0)
    assert c.state is OPEN
    assert c.open_until == pytest.approx(22.0)


def test_slow_probe_is_a_failed_probe() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0, slow_call_duration=1.0)
    call(c, F, now=0.0)
    probe = c.admit(10.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, S, True, 12.0)
    assert c.state is OPEN
    assert c.successes == 1  # counted as what it was, but it re-opened the circuit


def test_ignored_probe_frees_its_slot_without_moving_state() -> None:
    c = make(failure_threshold=1, recovery_timeout=1.0)
    call(c, F, now=0.0)
    probe = c.admit(1.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, IGN, False, 1.0)
    assert c.state is HALF_OPEN
    again = c.admit(1.0)
    assert isinstance(again, Ticket) and again.probe


def test_stale_outcome_counts_in_totals_but_cannot_move_the_newer_state() -> None:
    c = make(failure_threshold=2, recovery_timeout=1.0)
    slow_call = c.admit(0.0)  # admitted while closed, generation 0
    assert isinstance(slow_call, Ticket)
    call(c, F)
    call(c, F)
    assert c.state is OPEN
    probe = c.admit(1.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, S, False, 1.0)
    assert c.state is CLOSED and c.generation == 3
    stale = c.settle(slow_call, F, False, 1.5)  # a failure from generation 0
    assert stale is True
    assert c.state is CLOSED and c.consecutive_failures == 0
    assert c.failures == 3 and c.in_flight == 0


def test_stale_probe_from_an_older_half_open_period_is_not_a_probe_now() -> None:
    c = make(failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=1, probe_timeout=0.5)
    call(c, F, now=0.0)
    old_probe = c.admit(1.0)
    assert isinstance(old_probe, Ticket)
    # The old probe's slot expires; a new probe fails and re-opens; then a new half-open period.
    new_probe = c.admit(1.6)
    assert isinstance(new_probe, Ticket)
    c.settle(new_probe, F, False, 1.6)
    assert c.state is OPEN
    assert isinstance(c.admit(2.6), Ticket)  # the probe of the next half-open period
    c.settle(old_probe, S, False, 2.7)  # late close of the expired probe: changes nothing
    assert c.state is HALF_OPEN
    assert c.admit(2.7) == 0.0  # the current probe's slot is still taken
    assert c.ignored == 1  # the expired probe, counted once


def test_never_closed_probe_loses_its_slot_after_probe_timeout() -> None:
    c = make(failure_threshold=1, recovery_timeout=1.0, probe_timeout=5.0)
    call(c, F, now=0.0)
    probe = c.admit(1.0)
    assert isinstance(probe, Ticket)
    assert c.admit(5.9) == 0.0
    assert c.in_flight == 1
    replacement = c.admit(6.0)
    assert isinstance(replacement, Ticket) and replacement.probe
    assert c.ignored == 1 and c.in_flight == 1
    assert c.settle(probe, F, False, 7.0) is None  # its late close changes (and counts) nothing
    assert c.state is HALF_OPEN and c.failures == 1 and c.ignored == 1  # the first failure only


def test_force_open_holds_until_reset() -> None:
    c = make()
    c.force_open(0.0)
    assert c.state is OPEN and c.forced
    assert c.admit(1e9) == math.inf
    assert c.retry_after(0.0) == math.inf
    c.reset(1.0)
    assert c.state is CLOSED and not c.forced
    assert c.successes == c.failures == c.ignored == c.rejections == 0
    assert isinstance(c.admit(1.0), Ticket)


def test_generation_bumps_once_per_transition() -> None:
    c = make(failure_threshold=1, recovery_timeout=1.0)
    call(c, F, now=0.0)
    probe = c.admit(1.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, S, False, 1.0)
    assert [e.generation for e in c.context.events] == [1, 2, 3]  # type: ignore[union-attr]


def test_disabled_mode_admits_nothing_and_counts_nothing() -> None:
    c = make(failure_threshold=1, mode="disabled")
    assert c.admit(0.0) is None
    c.force_open(0.0)
    assert c.admit(0.0) is None
    assert c.rejections == 0


def test_observe_mode_sends_what_enforce_would_reject_and_counts_it_as_rejection() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0, mode="observe")
    call(c, F, now=0.0)
    assert c.state is OPEN
    shadow = c.admit(1.0)
    assert isinstance(shadow, Ticket) and shadow.shadow
    assert c.in_flight == 1 and c.rejections == 0
    c.settle(shadow, S, False, 1.5)  # its outcome is not counted and does not move the state
    assert c.state is OPEN and c.successes == 0 and c.rejections == 1 and c.in_flight == 0


@pytest.mark.parametrize(
    ("reopens", "expected"),
    [(0, 10.0), (1, 20.0), (2, 40.0), (3, 80.0), (4, 100.0), (50, 100.0), (10_000, 100.0)],
)
def test_backoff_sequence_is_capped(reopens: int, expected: float) -> None:
    policy = BreakerPolicy(recovery_timeout=10.0, recovery_backoff=2.0, max_recovery_timeout=100.0)
    assert open_duration(policy, reopens, None, random.Random(0)) == expected


def test_jitter_stays_within_bounds_and_never_below_recovery_timeout() -> None:
    policy = BreakerPolicy(recovery_timeout=10.0, recovery_jitter=0.5, max_recovery_timeout=12.0)
    rng = random.Random(42)
    values = [open_duration(policy, 0, None, rng) for _ in range(500)]
    assert min(values) == 10.0
    assert max(values) == 12.0
    assert any(10.0 < v < 12.0 for v in values)


def test_retry_after_hint_lengthens_but_never_shortens_and_is_capped() -> None:
    policy = BreakerPolicy(recovery_timeout=10.0, max_recovery_timeout=60.0)
    rng = random.Random(0)
    assert open_duration(policy, 0, 30.0, rng) == 30.0
    assert open_duration(policy, 0, 3.0, rng) == 10.0
    assert open_duration(policy, 0, 1e12, rng) == 60.0


def test_default_max_recovery_timeout_is_max_of_300_and_recovery_timeout() -> None:
    assert BreakerPolicy(recovery_timeout=10.0).effective_max_recovery_timeout == 300.0
    assert BreakerPolicy(recovery_timeout=900.0).effective_max_recovery_timeout == 900.0


def test_close_resets_the_backoff() -> None:
    c = make(failure_threshold=1, recovery_timeout=10.0, recovery_backoff=2.0)
    call(c, F, now=0.0)
    probe = c.admit(10.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, F, False, 10.0)
    assert c.open_until == pytest.approx(30.0)  # 20 s: the first re-open
    probe = c.admit(30.0)
    assert isinstance(probe, Ticket)
    c.settle(probe, S, False, 30.0)
    assert c.state is CLOSED
    call(c, F, now=31.0)
    assert c.open_until == pytest.approx(41.0)  # back to 10 s
