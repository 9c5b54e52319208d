"""Trip policies through the transport: rate windows, slow calls, adaptive open time, modes."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from email.utils import formatdate

import httpx
import pytest

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
    Mode,
    StateChange,
)
from breaker_transport._classify import parse_retry_after
from breaker_transport.testing import ManualClock

from .helpers import Reply, StreamingTransport

URL = "https://api.example.com/"
KEY = "https://api.example.com"


class Scripted:
    """A sync breaker over an inner transport that answers from a list the test edits."""

    def __init__(self, policy: BreakerPolicy, clock: ManualClock, **kw: object) -> None:
        self.answers: list[Reply | BaseException] = []
        self.clock = clock
        self.inner = StreamingTransport(lambda r: self.answers.pop(0))
        self.transport = CircuitBreakerTransport(self.inner, policy=policy, clock=clock, **kw)  # type: ignore[arg-type]
        self.client = httpx.Client(transport=self.transport)

    def send(
        self, status: int = 200, *, headers: dict[str, str] | None = None, took: float = 0.0
    ) -> str:
        """One call; ``took`` seconds pass between admission and the headers."""
        if took:
            clock = self.clock

            def answer(request: httpx.Request) -> Reply:
                clock.advance(took)
                return Reply(status, headers=headers or {})

            self.inner.handler = answer
        else:
            self.inner.handler = lambda r: Reply(status, headers=headers or {})
        try:
            self.client.get(URL)
        except CircuitOpenError:
            return "rejected"
        return "sent"

    @property
    def state(self) -> CircuitState:
        return self.transport.state(URL)

    def stats(self):  # type: ignore[no-untyped-def]
        return self.transport.stats()[KEY]


@pytest.fixture
def make(clock: ManualClock) -> Iterator[Callable[..., Scripted]]:
    made: list[Scripted] = []

    def factory(policy: BreakerPolicy, **kw: object) -> Scripted:
        scripted = Scripted(policy, clock, **kw)
        made.append(scripted)
        return scripted

    yield factory
    for scripted in made:
        scripted.client.close()


# -- failure rate over a count window ---------------------------------------------------------


def test_rate_rule_waits_for_minimum_calls_then_trips_at_the_threshold(
    make: Callable[..., Scripted],
) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=4, window_size=10
        )
    )
    for status in (503, 503, 503):
        b.send(status)
    assert b.state is CircuitState.CLOSED  # 100% failures, but only 3 calls in the window
    assert b.stats().failure_rate is None
    b.send(200)  # the minimum_calls-th call: 3/4 = 75% >= 50%
    assert b.state is CircuitState.OPEN


def test_rate_rule_exactly_at_the_threshold_trips_and_below_does_not(
    make: Callable[..., Scripted],
) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=4, window_size=4
        )
    )
    for status in (503, 200, 200):
        b.send(status)
    b.send(200)  # 1/4 = 25%
    assert b.state is CircuitState.CLOSED
    assert b.stats().failure_rate == pytest.approx(0.25)
    b.send(503)  # the ring drops the oldest (a failure) and adds a failure: 1/4
    assert b.state is CircuitState.CLOSED
    b.send(503)  # 2/4 = 50%: trips
    assert b.state is CircuitState.OPEN


def test_ignored_outcomes_never_enter_the_window(make: Callable[..., Scripted]) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=2, window_size=10
        )
    )
    b.answers = []
    b.inner.handler = lambda r: httpx.PoolTimeout("full")
    for _ in range(5):
        with pytest.raises(httpx.PoolTimeout):
            b.client.get(URL)
    assert b.stats().window_calls == 0
    b.send(200)
    b.send(503)  # 1/2
    assert b.state is CircuitState.OPEN


def test_count_window_ring_rolls_over(make: Callable[..., Scripted]) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.6, minimum_calls=5, window_size=5
        )
    )
    for status in (503, 503, 200, 200, 200):  # 2/5 = 40%
        b.send(status)
    for _ in range(2):  # replaces the two failures with successes
        b.send(200)
    assert b.stats().failure_rate == 0.0
    for _ in range(2):
        b.send(503)
    assert b.stats().failure_rate == pytest.approx(0.4)
    assert b.state is CircuitState.CLOSED
    b.send(503)  # 3/5 = 60%
    assert b.state is CircuitState.OPEN


def test_consecutive_and_rate_rules_whichever_trips_first(make: Callable[..., Scripted]) -> None:
    policy = BreakerPolicy(
        failure_threshold=3, failure_rate_threshold=0.5, minimum_calls=10, window_size=10
    )
    b = make(policy)
    for _ in range(3):
        b.send(503)
    assert b.state is CircuitState.OPEN  # consecutive rule, long before minimum_calls
    changes: list[StateChange] = []
    c = make(policy, on_state_change=changes.append)
    for status in (503, 200) * 5:  # never 3 in a row, but 5/10 at the 10th call
        c.send(status)
    assert c.state is CircuitState.OPEN
    assert changes[0].reason.startswith("failure rate 5/10")


def test_window_clears_when_the_circuit_closes(
    make: Callable[..., Scripted], clock: ManualClock
) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=2, recovery_timeout=5
        )
    )
    b.send(503)
    b.send(503)
    assert b.state is CircuitState.OPEN
    clock.advance(5)
    b.send(200)
    assert b.state is CircuitState.CLOSED
    assert b.stats().window_calls == 0
    b.send(503)  # 1 call: below minimum_calls again
    assert b.state is CircuitState.CLOSED


# -- failure rate over a time window ----------------------------------------------------------


def test_time_window_drops_outcomes_older_than_the_window(
    make: Callable[..., Scripted], clock: ManualClock
) -> None:
    # 10 s in 10 buckets of 1 s; the clock starts at 1000.0, the start of a bucket.
    b = make(
        BreakerPolicy(
            failure_threshold=None,
            failure_rate_threshold=0.5,
            minimum_calls=3,
            window_duration=10.0,
        )
    )
    b.send(503)
    b.send(503)
    clock.advance(9.999)  # still bucket 1009: the bucket at 1000 is 9 buckets old, inside
    assert b.stats().window_calls == 2
    clock.advance(0.001)  # 1010.0: bucket 1000 has aged out
    assert b.stats().window_calls == 0
    b.send(503)
    assert b.state is CircuitState.CLOSED  # only one failure in the window


def test_time_window_bucket_roll_over_keeps_the_recent_buckets(
    make: Callable[..., Scripted], clock: ManualClock
) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None,
            failure_rate_threshold=0.75,
            minimum_calls=4,
            window_duration=10.0,
        )
    )
    b.send(503)  # bucket 1000
    clock.advance(5.0)
    b.send(200)  # bucket 1005
    clock.advance(4.5)
    b.send(503)  # bucket 1009
    clock.advance(0.5)  # 1010: bucket 1000 (a failure) leaves
    assert b.stats().window_calls == 2
    b.send(503)
    b.send(503)  # 3 failures of 4 in buckets 1005..1010
    assert b.state is CircuitState.OPEN


def test_a_call_that_completes_just_as_its_bucket_expires_counts_when_it_settles(
    clock: ManualClock,
) -> None:
    inner = StreamingTransport(lambda r: Reply(503))
    policy = BreakerPolicy(
        failure_threshold=None, failure_rate_threshold=1.0, minimum_calls=2, window_duration=10.0
    )
    transport = CircuitBreakerTransport(inner, policy=policy, clock=clock)
    with httpx.Client(transport=transport) as client:
        client.get(URL)  # settles at 1000.0, bucket 1000
        slow = client.send(client.build_request("GET", URL), stream=True)  # admitted at 1000.0
        clock.advance(10.0)  # bucket 1000 expires now
        assert transport.stats()[KEY].window_calls == 0
        slow.close()  # the outcome enters the window when it settles: bucket 1010
        assert transport.stats()[KEY].window_calls == 1
        assert transport.state(URL) is CircuitState.CLOSED  # the expired failure is gone
        client.get(URL)
        assert transport.state(URL) is CircuitState.OPEN


def test_time_window_memory_does_not_grow_with_traffic(
    make: Callable[..., Scripted], clock: ManualClock
) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=1.0, minimum_calls=1, window_duration=1.0
        )
    )
    b.send(200)
    circuit = b.transport._registry.circuits[KEY]
    window = circuit.window
    assert window is not None
    size = len(window._buckets)  # type: ignore[union-attr]
    for _ in range(300):
        b.send(200)
        clock.advance(0.013)
    assert len(window._buckets) == size  # type: ignore[union-attr]
    assert window.calls <= 300


# -- slow calls -------------------------------------------------------------------------------


def test_slow_calls_open_the_circuit_by_their_own_rate(make: Callable[..., Scripted]) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=3,
            slow_call_duration=1.0,
            slow_call_rate_threshold=0.5,
            minimum_calls=4,
            window_size=4,
        )
    )
    b.send(200, took=0.5)
    b.send(200, took=1.0)  # exactly the duration is not slow
    b.send(200, took=1.5)  # slow
    assert b.stats().consecutive_failures == 0
    b.send(200, took=2.0)  # slow: 2/4 = 50%
    assert b.state is CircuitState.OPEN
    assert b.stats().successes == 4  # slow successes are still successes


def test_slow_success_resets_the_consecutive_count(make: Callable[..., Scripted]) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=2, slow_call_duration=1.0, minimum_calls=100, window_size=100
        )
    )
    b.send(503)
    b.send(200, took=5.0)
    b.send(503)
    assert b.state is CircuitState.CLOSED


def test_slow_probe_is_a_failed_probe(make: Callable[..., Scripted], clock: ManualClock) -> None:
    b = make(BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, slow_call_duration=1.0))
    b.send(503)
    clock.advance(10.0)
    b.send(200, took=3.0)
    assert b.state is CircuitState.OPEN
    clock.advance(10.0)
    b.send(200, took=0.1)
    assert b.state is CircuitState.CLOSED


def test_slow_is_measured_to_the_headers_not_the_body(clock: ManualClock) -> None:
    inner = StreamingTransport(lambda r: Reply(200, [b"a", b"b"]))
    policy = BreakerPolicy(
        failure_threshold=None, slow_call_duration=1.0, minimum_calls=1, window_size=1
    )
    transport = CircuitBreakerTransport(inner, policy=policy, clock=clock)
    with httpx.Client(transport=transport) as client:
        with client.stream("GET", URL) as response:
            clock.advance(60.0)  # a long body read after fast headers
            response.read()
    assert transport.state(URL) is CircuitState.CLOSED
    assert transport.stats()[KEY].slow_call_rate == 0.0


# -- open durations that adapt ----------------------------------------------------------------


def test_backoff_lengthens_each_reopen_and_closing_resets_it(
    make: Callable[..., Scripted], clock: ManualClock
) -> None:
    b = make(
        BreakerPolicy(
            failure_threshold=1,
            recovery_timeout=10.0,
            recovery_backoff=2.0,
            max_recovery_timeout=35.0,
        )
    )
    b.send(503)
    waits = []
    for _ in range(4):
        waits.append(b.stats().retry_after)
        clock.advance(b.stats().retry_after)
        b.send(503)  # the probe fails
    assert waits == [10.0, 20.0, 35.0, 35.0]
    clock.advance(35.0)
    b.send(200)
    assert b.state is CircuitState.CLOSED
    b.send(503)
    assert b.stats().retry_after == 10.0


def test_jitter_comes_from_the_injected_rng(clock: ManualClock) -> None:
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=100.0, recovery_jitter=0.2)

    def open_period(seed: int) -> float:
        transport = CircuitBreakerTransport(
            httpx.MockTransport(lambda r: httpx.Response(503)),
            policy=policy,
            clock=clock,
            rng=random.Random(seed),
        )
        with httpx.Client(transport=transport) as client:
            client.get(URL)
        retry_after = transport.stats()[KEY].retry_after
        assert retry_after is not None
        return retry_after

    assert open_period(7) == open_period(7)
    periods = {open_period(seed) for seed in range(20)}
    assert len(periods) > 1
    assert all(100.0 <= p <= 120.0 for p in periods)


def test_retry_after_seconds_on_the_opening_503_keeps_it_open_at_least_that_long(
    make: Callable[..., Scripted], clock: ManualClock
) -> None:
    b = make(BreakerPolicy(failure_threshold=2, recovery_timeout=10.0))
    b.send(503, headers={"Retry-After": "120"})  # not the failure that opens: no effect
    b.send(503, headers={"Retry-After": "45"})
    assert b.stats().retry_after == 45.0
    clock.advance(44.0)
    with pytest.raises(CircuitOpenError) as caught:
        b.client.get(URL)
    assert caught.value.retry_after == pytest.approx(1.0)


def test_retry_after_http_date_is_measured_against_the_response_date(
    make: Callable[..., Scripted],
) -> None:
    b = make(BreakerPolicy(failure_threshold=1, recovery_timeout=10.0))
    date = 1_700_000_000
    b.send(
        503,
        headers={
            "Retry-After": formatdate(date + 90, usegmt=True),
            "Date": formatdate(date, usegmt=True),
        },
    )
    assert b.stats().retry_after == 90.0


def test_retry_after_is_capped_by_max_recovery_timeout(make: Callable[..., Scripted]) -> None:
    b = make(BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, max_recovery_timeout=60.0))
    b.send(503, headers={"Retry-After": "99999999999999999999"})
    assert b.stats().retry_after == 60.0
    c = make(BreakerPolicy(failure_threshold=1, recovery_timeout=10.0))
    c.send(503, headers={"Retry-After": str(7 * 24 * 3600)})
    assert c.stats().retry_after == 300.0  # the default cap: max(300 s, recovery_timeout)


@pytest.mark.parametrize(
    "value", ["-5", "soon", "", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "9" * 5000]
)
def test_unusable_retry_after_is_ignored_and_logged_at_debug(
    make: Callable[..., Scripted], caplog: pytest.LogCaptureFixture, value: str
) -> None:
    b = make(BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, max_recovery_timeout=60.0))
    with caplog.at_level(logging.DEBUG, logger="breaker_transport"):
        b.send(503, headers={"Retry-After": value})
    retry_after = b.stats().retry_after
    if value.isdigit():  # a huge number is usable: capped
        assert retry_after == 60.0
    else:
        assert retry_after == 10.0
        assert "Retry-After" in caplog.text


def test_429_retry_after_is_honoured_once_429_is_a_failure(make: Callable[..., Scripted]) -> None:
    b = make(
        BreakerPolicy(failure_threshold=1, recovery_timeout=5.0, failure_status_codes={429, 503})
    )
    b.send(429, headers={"Retry-After": "30"})
    assert b.stats().retry_after == 30.0
    c = make(BreakerPolicy(failure_threshold=1, recovery_timeout=5.0))
    c.send(429, headers={"Retry-After": "30"})
    assert c.state is CircuitState.CLOSED  # 429 is not a failure by default


def test_respect_retry_after_false(make: Callable[..., Scripted]) -> None:
    b = make(BreakerPolicy(failure_threshold=1, recovery_timeout=5.0, respect_retry_after=False))
    b.send(503, headers={"Retry-After": "30"})
    assert b.stats().retry_after == 5.0


def test_failed_probe_with_retry_after(make: Callable[..., Scripted], clock: ManualClock) -> None:
    b = make(BreakerPolicy(failure_threshold=1, recovery_timeout=5.0))
    b.send(503)
    clock.advance(5.0)
    b.send(503, headers={"Retry-After": "40"})
    assert b.stats().retry_after == 40.0


@pytest.mark.parametrize(
    ("value", "date", "now", "expected"),
    [
        ("120", None, 0.0, 120.0),
        (" 7 ", None, 0.0, 7.0),
        ("0", None, 0.0, 0.0),
        ("Tue, 14 Nov 2023 22:15:00 GMT", "Tue, 14 Nov 2023 22:13:20 GMT", 0.0, 100.0),
        ("Tue, 14 Nov 2023 22:15:00 GMT", None, 1_699_999_900.0, 200.0),  # no Date: the wall clock
        ("Tue, 14 Nov 2023 22:15:00 GMT", "garbage", 1_699_999_900.0, 200.0),
        (
            "Tue, 14 Nov 2023 22:15:00 GMT",
            "Tue, 14 Nov 2023 22:16:00 GMT",
            0.0,
            None,
        ),  # in the past
        ("-1", None, 0.0, None),
        ("1e3", None, 0.0, None),
        ("٣", None, 0.0, None),  # a non-ASCII digit is not delta-seconds
        # RFC 9110's obsolete forms, which recipients must accept: RFC 850 and asctime (GMT).
        ("Tuesday, 14-Nov-23 22:15:00 GMT", "Tue, 14 Nov 2023 22:13:20 GMT", 0.0, 100.0),
        ("Tue Nov 14 22:15:00 2023", "Tue, 14 Nov 2023 22:13:20 GMT", 0.0, 100.0),
        ("Tue Nov 14 22:15:00 2023", None, 1_699_999_900.0, 200.0),
    ],
)
def test_parse_retry_after(
    value: str, date: str | None, now: float, expected: float | None
) -> None:
    assert parse_retry_after(value, date, now) == expected


# -- modes ------------------------------------------------------------------------------------


def test_observe_mode_never_rejects_but_reports_the_same_transitions(clock: ManualClock) -> None:
    def run(mode: str) -> tuple[list[tuple[str, str]], list[str], int, int]:
        local = ManualClock(clock())
        changes: list[StateChange] = []
        fallbacks: list[object] = []
        upstream = {"status": 503}  # failing for the first five steps, then healthy
        transport = CircuitBreakerTransport(
            httpx.MockTransport(lambda r: httpx.Response(upstream["status"])),
            policy=BreakerPolicy(failure_threshold=2, recovery_timeout=10.0, mode=mode),  # type: ignore[arg-type]
            clock=local,
            on_state_change=changes.append,
            fallback=lambda r, e: fallbacks.append(e) or httpx.Response(599),
        )
        results = []
        with httpx.Client(transport=transport) as client:
            for step in range(8):
                results.append(str(client.get(URL).status_code))
                if step == 4:
                    local.advance(10.0)
                    upstream["status"] = 200
        stats = transport.stats()[KEY]
        return (
            [(c.old.value, c.new.value) for c in changes],
            results,
            stats.rejections,
            len(fallbacks),
        )

    enforce_changes, enforce_results, enforce_rejections, enforce_fallbacks = run("enforce")
    observe_changes, observe_results, observe_rejections, observe_fallbacks = run("observe")
    assert observe_changes == enforce_changes
    assert "599" in enforce_results
    assert "599" not in observe_results  # every request was sent
    assert observe_rejections == enforce_rejections > 0
    assert (enforce_fallbacks, observe_fallbacks) == (enforce_rejections, 0)


def test_disabled_mode_passes_everything_and_counts_nothing(make: Callable[..., Scripted]) -> None:
    b = make(BreakerPolicy(failure_threshold=1, mode="disabled"))  # type: ignore[arg-type]
    for _ in range(3):
        assert b.send(503) == "sent"
    assert b.transport.stats()[KEY].failures == 0


def test_set_mode_at_run_time_keeps_counts_and_applies_to_future_circuits(
    make: Callable[..., Scripted],
) -> None:
    b = make(BreakerPolicy(failure_threshold=2))
    b.send(503)
    b.send(503)
    assert b.send() == "rejected"
    b.transport.set_mode("observe")
    assert b.send() == "sent"
    assert b.stats().failures == 2
    assert b.stats().rejections == 2  # the shadow call is a rejection
    b.transport.set_mode(Mode.ENFORCE, URL)
    assert b.send() == "rejected"
    assert b.transport.stats()[KEY].mode is Mode.ENFORCE
    b.transport.set_mode("disabled")
    b.transport.force_open("https://other.example")
    other = b.client.get("https://other.example/", extensions={})
    assert other.extensions["circuit_breaker"]["bypassed"] is True
    with pytest.raises(ValueError, match="set_mode\\(mode\\) must be one of"):
        b.transport.set_mode("off")


@pytest.mark.anyio
async def test_policies_work_the_same_through_the_async_transport(clock: ManualClock) -> None:
    transport = AsyncCircuitBreakerTransport(
        httpx.MockTransport(lambda r: httpx.Response(503, headers={"Retry-After": "42"})),
        policy=BreakerPolicy(
            failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=2, recovery_timeout=10
        ),
        clock=clock,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(URL)
        await client.get(URL)
        with pytest.raises(CircuitOpenError) as caught:
            await client.get(URL)
    assert caught.value.retry_after == 42.0
