"""The Python state machine and the Lua script, driven with the same sequences, must agree.

``breaker_transport/storage/_rules.py`` describes the rules once; ``Circuit`` runs them in process
and ``SCRIPT`` runs them inside a real redis-server. Here hypothesis generates sequences of
admissions, settlements (outcome, slow, Retry-After, the random draw for jitter), clock steps,
``force_open``, ``reset``, mode changes and reads, and every step must give the same decision,
state, generation, deadline, counts and transition reason on both sides. Time is passed to the
script through its test-only ``now`` argument, so nothing waits. Clock steps are multiples of
1/4 s, so both sides do exact arithmetic on the same numbers.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breaker_transport import BreakerPolicy, CircuitState, Mode, Outcome, StateChange
from breaker_transport._circuit import Circuit, Context, Ticket
from breaker_transport.storage._rules import (
    D_ADMIT,
    D_DISABLED,
    D_PROBE,
    D_REJECT,
    D_SHADOW,
    F_LEASE_GONE,
    F_STALE,
    SCRIPT,
    SEP,
    pack_policy,
    parse_reply,
)

CODES = {CircuitState.CLOSED: 0, CircuitState.OPEN: 1, CircuitState.HALF_OPEN: 2}
OUTCOME = {Outcome.SUCCESS: "s", Outcome.FAILURE: "f", Outcome.IGNORED: "i"}

POLICIES = {
    "consecutive": BreakerPolicy(failure_threshold=3, recovery_timeout=2.0, probe_timeout=3.0),
    "probes": BreakerPolicy(
        failure_threshold=2,
        recovery_timeout=1.0,
        half_open_max_calls=2,
        success_threshold=2,
        probe_timeout=1.5,
    ),
    "count_window": BreakerPolicy(
        failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=4, window_size=6
    ),
    "time_window_slow": BreakerPolicy(
        failure_threshold=4,
        failure_rate_threshold=0.75,
        minimum_calls=3,
        window_duration=5.0,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        recovery_timeout=1.5,
    ),
    "backoff_jitter_retry_after": BreakerPolicy(
        failure_threshold=1,
        recovery_timeout=1.0,
        recovery_backoff=2.0,
        max_recovery_timeout=10.0,
        recovery_jitter=0.5,
    ),
    "observe": BreakerPolicy(failure_threshold=2, recovery_timeout=1.0, mode="observe"),
    # 0.07 * 100 is 7.000000000000001 in floating point: the rate is compared by dividing
    "decimal_rate": BreakerPolicy(
        failure_threshold=None, failure_rate_threshold=0.07, minimum_calls=100, window_size=100
    ),
    "consecutive_and_rate": BreakerPolicy(
        failure_threshold=2, failure_rate_threshold=0.9, minimum_calls=3, recovery_timeout=1.0
    ),
}


class DrawnRandom(random.Random):
    """Hands the Python side the same uniform draw that the script is given."""

    u = 0.0

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.u


@dataclass
class Pending:
    ticket: Ticket
    generation: int
    member: str


class LuaCircuit:
    """The script on one key of a real Redis, with time passed in."""

    def __init__(self, client: Any, policy: BreakerPolicy, key: str) -> None:
        self.script = client.register_script(SCRIPT)
        self.keys = [f"t:{{{key}}}", f"t:{{{key}}}:probes", f"t:{{{key}}}:ring"]
        self.packed, self.fingerprint = pack_policy(policy)

    def __call__(self, op: str, now: float, *extra: str) -> list[Any]:
        args = [op, self.packed, self.fingerprint, repr(now), "3600000", SEP.join(extra)]
        return parse_reply(self.script(keys=self.keys, args=args))


def compare(python: Circuit, reply: list[Any], now: float, where: str) -> None:
    state = (reply[1], reply[2], reply[4], reply[5], reply[6], reply[7])
    expected = (
        CODES[python.state],
        python.generation,
        int(python.forced),
        python.consecutive_failures,
        python.reopens,
        python.probe_successes,
    )
    assert state == expected, f"{where}: lua (s, g, f, c, r, ps) {state} != python {expected}"
    if python.state is CircuitState.OPEN and not python.forced:
        assert float(reply[3]) == python.open_until - now, where
    window = python.window
    if window is not None:
        assert (reply[12], reply[13], reply[14]) == (window.calls, window.failures, window.slow)
    assert _MODES[reply[8]] is python.mode, where


_MODES = {b"enforce": Mode.ENFORCE, b"observe": Mode.OBSERVE, b"disabled": Mode.DISABLED}

step = st.one_of(
    st.tuples(st.just("admit"), st.integers(0, 8) | st.integers(0, 60)),
    st.tuples(st.just("admit"), st.just(0)),
    st.tuples(
        st.just("settle"),
        st.integers(0, 7),
        st.sampled_from([Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAILURE, Outcome.IGNORED]),
        st.booleans(),
        st.sampled_from([None, 0.5, 4.0, 40.0]),
        st.floats(0, 1, exclude_max=True),
        st.integers(0, 4),
    ),
    st.tuples(st.just("read"), st.integers(0, 8)),
    st.tuples(st.just("force")),
    st.tuples(st.just("reset")),
    st.tuples(st.just("mode"), st.sampled_from(list(Mode))),
)

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def rules_client(redis_server: Any) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


def run_both(client: Any, policy: BreakerPolicy, key: str, steps: list[tuple[Any, ...]]) -> None:
    """Apply ``steps`` to a Python ``Circuit`` and to the script; assert they agree at each."""
    rng = DrawnRandom(0)
    python = Circuit(key, policy, Context(rng))
    lua = LuaCircuit(client, policy, key)
    pending: list[Pending] = []
    now = 1000.0
    members = iter(range(10**9))
    for index, action in enumerate(steps):
        where = f"step {index} {action}"
        kind = action[0]
        if kind == "admit":
            now += action[1] * 0.25
            member = f"m{next(members)}"
            reply = lua("admit", now, member, "", "", "", "", "", "")
            result = python.admit(now)
            decision = reply[0]
            if isinstance(result, Ticket):
                want = D_SHADOW if result.shadow else D_PROBE if result.probe else D_ADMIT
                assert decision == want, where
                pending.append(Pending(result, reply[2], member if result.probe else ""))
            elif result is None:
                assert decision == D_DISABLED, where
            else:
                assert decision == D_REJECT, where
                assert float(reply[11]) == result, where
        elif kind == "settle":
            if not pending:
                continue
            _, pick, outcome, slow, hint, draw, dt = action
            now += dt * 0.25
            entry = pending.pop(pick % len(pending))
            if entry.ticket.shadow:
                python.settle(entry.ticket, outcome, slow, now, hint)
                continue  # a shadow call never reaches the script (it moves nothing)
            rng.u = draw
            reply = lua(
                "settle",
                now,
                str(entry.generation),
                entry.member,
                OUTCOME[outcome],
                "1" if slow else "0",
                "" if hint is None else repr(hint),
                repr(draw),
            )
            stale = python.settle(entry.ticket, outcome, slow, now, hint)
            # None: an expired probe, counted already; the script reports its lease gone.
            assert bool(reply[10] & (F_STALE | F_LEASE_GONE)) == (stale is not False), where
        elif kind == "read":
            now += action[1] * 0.25
            reply = lua("read", now)
            python.snapshot(now)
        elif kind == "force":
            reply = lua("force", now)
            python.force_open(now)
        elif kind == "reset":
            reply = lua("reset", now)
            python.reset(now)
        else:
            reply = lua("mode", now, action[1].value)
            python.mode = action[1]
        compare(python, reply, now, where)
        changes = [e for e in python.context.events if isinstance(e, StateChange)]
        if changes:
            assert reply[9].decode() == changes[-1].reason, where
        python.context.events = []


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_python_and_lua_follow_the_same_rules(name: str, rules_client: Any) -> None:
    policy = POLICIES[name]
    counter = iter(range(10**9))

    @settings(
        max_examples=100,
        deadline=None,
        derandomize=IN_CI,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(step, min_size=1, max_size=60))
    def run(steps: list[tuple[Any, ...]]) -> None:
        run_both(rules_client, policy, f"{name}-{next(counter)}", steps)

    run()


S, F, IGN = Outcome.SUCCESS, Outcome.FAILURE, Outcome.IGNORED


def calls(*outcomes: Outcome, slow: bool = False, dt: int = 0) -> list[tuple[Any, ...]]:
    """Sequential calls: admit, then settle, each ``dt`` quarter-seconds later."""
    steps: list[tuple[Any, ...]] = []
    for outcome in outcomes:
        steps.append(("admit", dt))
        steps.append(("settle", 0, outcome, slow, None, 0.0, 0))
    return steps


EDGES = {
    # the count window is full and its oldest outcomes leave: a failure, then successes, then
    # failures that trip only if the first failure has left
    "count window eviction": ("count_window", calls(F, S, S, S, S, S, S, F, F, S, F)),
    # the failure rate reaches the threshold at exactly minimum_calls
    "minimum_calls-th call": ("count_window", calls(F, S, F, S)),
    # every bucket of the time window ages out in one jump (more than 10 buckets)
    "time window roll-over": (
        "time_window_slow",
        [*calls(S, F, S), ("read", 24), *calls(F, S, F, F), ("read", 3), *calls(S, F, F)],
    ),
    # a call that settles just as its bucket expires (2 buckets per second)
    "bucket edge": ("time_window_slow", [*calls(F, S, dt=2), *calls(F, dt=18), *calls(S, F)]),
    "slow calls trip": ("time_window_slow", calls(S, S, S, slow=True)),
    # three probes admitted while two slots exist; the third is rejected until one settles
    "probe slots": (
        "probes",
        [
            *calls(F, F),
            ("admit", 4),
            ("admit", 0),
            ("admit", 0),
            ("settle", 0, S, False, None, 0.0, 0),
            ("admit", 0),
            ("settle", 0, S, False, None, 0.0, 0),
            ("settle", 0, S, False, None, 0.0, 0),
        ],
    ),
    # a probe lease expires; its late settle is stale and a new probe takes the slot
    "probe lease expiry": (
        "consecutive",
        [*calls(F, F, F), ("admit", 8), ("admit", 12), ("settle", 0, F, False, None, 0.0, 0)],
    ),
    # re-opens in a row lengthen the open period up to the cap; Retry-After lengthens it
    "backoff": (
        "backoff_jitter_retry_after",
        [
            ("admit", 0),
            ("settle", 0, F, False, 4.0, 0.25, 0),
            *[
                step
                for draw in (0.0, 0.5, 0.99, 0.75)
                for step in (("admit", 40), ("settle", 0, F, False, None, draw, 0))
            ],
            ("admit", 40),
            ("settle", 0, F, False, 40.0, 0.5, 0),
        ],
    ),
    "observe mode shadows": ("observe", [*calls(F, F), *calls(S, F), ("admit", 4)]),
    # 7 failures in 100 calls reach 7%
    "a rate exactly at a decimal threshold": ("decimal_rate", calls(*[F] * 7, *[S] * 93)),
    # the failure that trips the consecutive rule enters the window too
    "the consecutive trip enters the window": ("consecutive_and_rate", calls(S, F, F)),
}


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_edges_agree(edge: str, rules_client: Any) -> None:
    name, steps = EDGES[edge]
    run_both(rules_client, POLICIES[name], f"edge-{edge}", steps)


def test_the_policy_fingerprint_changes_with_every_rule() -> None:
    base = BreakerPolicy()
    variants = [
        BreakerPolicy(failure_threshold=6),
        BreakerPolicy(recovery_timeout=61.0),
        BreakerPolicy(half_open_max_calls=2),
        BreakerPolicy(failure_rate_threshold=0.5),
        BreakerPolicy(slow_call_duration=2.0),
        BreakerPolicy(slow_call_duration=3.0),
        BreakerPolicy(failure_status_codes={500}),
        BreakerPolicy(recovery_jitter=0.1),
        BreakerPolicy(mode="observe"),
    ]
    prints = {pack_policy(p)[1] for p in variants}
    assert pack_policy(base)[1] not in prints
    assert len(prints) == len(variants)
    assert pack_policy(BreakerPolicy())[1] == pack_policy(base)[1]


def test_open_duration_inputs_are_exact_through_the_script(rules_client: Any) -> None:
    """Deadlines survive the trip into Redis and back bit for bit (formatted with %.17g)."""
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=1.0 / 3.0)
    lua = LuaCircuit(rules_client, policy, "exact")
    python = Circuit("exact", policy, Context(random.Random(0)))
    now = 1234.567890123
    lua("settle", now, "0", "", "f", "0", "", "0")
    ticket = python.admit(now)
    assert isinstance(ticket, Ticket)
    python.settle(ticket, Outcome.FAILURE, False, now)
    later = now + 0.1
    reply = lua("admit", later, "m", "", "", "", "", "", "")
    assert reply[0] == D_REJECT
    assert float(reply[11]) == python.admit(later) == python.open_until - later
    assert not math.isinf(float(reply[11]))


def test_resync_after_an_outage_keeps_the_more_pessimistic_view(rules_client: Any) -> None:
    """A worker's own view (state, seconds left open, forced, consecutive) rides on its first
    admission after Redis was away; the script keeps whichever view is worse."""
    policy = BreakerPolicy(failure_threshold=5, recovery_timeout=10.0)
    now = 5000.0

    def admit(lua: LuaCircuit, *view: str) -> list[Any]:
        return lua("admit", now, "m", "", *view, "")

    fresh = LuaCircuit(rules_client, policy, "resync-closed")
    reply = admit(fresh, "1", "30.0", "0", "5")  # shared closed, the worker saw it open
    assert (reply[0], reply[1], float(reply[11])) == (D_REJECT, 1, 30.0)
    assert reply[9] == b"open in a worker while Redis was away"

    shorter = LuaCircuit(rules_client, policy, "resync-later-deadline")
    for _ in range(5):  # opened 5 s ago for 10 s: until now + 5
        shorter("settle", now - 5, "0", "", "f", "0", "", "0")
    assert float(admit(shorter, "1", "30.0", "0", "5")[11]) == 30.0  # the later deadline
    assert float(admit(shorter, "1", "3.0", "0", "5")[11]) == 30.0  # never shortened

    counts = LuaCircuit(rules_client, policy, "resync-count")
    counts("settle", now, "0", "", "f", "0", "", "0")
    reply = admit(counts, "0", "0.0", "0", "4")
    assert (reply[1], reply[5]) == (0, 4)  # the larger consecutive count

    probing = LuaCircuit(rules_client, policy, "resync-half-open")
    reply = admit(probing, "2", "0.0", "0", "0")
    assert (reply[0], reply[1]) == (D_PROBE, 2)  # sent to a probe, counted globally

    forced = LuaCircuit(rules_client, policy, "resync-forced")
    reply = admit(forced, "1", "0.0", "1", "0")
    assert (reply[0], reply[4], reply[11]) == (D_REJECT, 1, b"inf")
