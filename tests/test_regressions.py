"""Regression tests for bugs the model-based, fault and bad-input tests found (one test per fix)."""

from __future__ import annotations

import math
from contextlib import closing

import httpx
import pytest

from breaker_transport import BreakerPolicy, CircuitBreakerTransport, CircuitState
from breaker_transport.testing import ManualClock

from .helpers import fixed

URL = "https://api.example.com/"
KEY = "https://api.example.com"


def test_the_failure_that_trips_the_consecutive_rule_enters_the_window() -> None:
    """It used to open the circuit before entering the window, so stats() of the open circuit
    showed a window one call short (window_calls 1 and failure_rate None here)."""
    policy = BreakerPolicy(failure_threshold=2, failure_rate_threshold=0.9, minimum_calls=2)
    transport = CircuitBreakerTransport(fixed(503), policy=policy, clock=ManualClock())
    with httpx.Client(transport=transport) as client:
        client.get(URL)
        client.get(URL)
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.OPEN
    assert (stats.window_calls, stats.failure_rate) == (2, 1.0)


def test_a_failure_rate_that_exactly_reaches_the_threshold_trips() -> None:
    """7 failures in the default window of 100 calls reach 7%; it used to compare with
    0.07 * 100 == 7.000000000000001 and need an eighth failure."""
    policy = BreakerPolicy(failure_threshold=None, failure_rate_threshold=0.07, minimum_calls=100)
    statuses = iter([503] * 7 + [200] * 93)
    inner = httpx.MockTransport(lambda request: httpx.Response(next(statuses)))
    transport = CircuitBreakerTransport(inner, policy=policy, clock=ManualClock())
    with httpx.Client(transport=transport) as client:
        for _ in range(100):
            client.get(URL)
    assert transport.state(URL) is CircuitState.OPEN


def test_a_retry_after_of_thousands_of_digits_is_capped_not_a_crash() -> None:
    """int() refuses 4,300 digits or more: the ValueError escaped from the request (the caller
    lost the 503) and the call stayed in flight forever, holding a probe slot if it was one."""
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, max_recovery_timeout=99.0)
    transport = CircuitBreakerTransport(
        fixed(503, **{"retry-after": "9" * 5000}), policy=policy, clock=ManualClock()
    )
    with httpx.Client(transport=transport) as client:
        assert client.get(URL).status_code == 503
    stats = transport.stats()[KEY]
    assert (stats.state, stats.in_flight, stats.failures) == (CircuitState.OPEN, 0, 1)
    assert stats.retry_after == 99.0  # capped by max_recovery_timeout


@pytest.mark.parametrize(
    "field",
    [
        "recovery_timeout",
        "probe_timeout",
        "window_duration",
        "slow_call_duration",
        "max_recovery_timeout",
        "failure_rate_threshold",
        "slow_call_rate_threshold",
        "recovery_jitter",
        "recovery_backoff",
    ],
)
def test_an_int_too_large_for_a_float_is_a_value_error_naming_the_field(field: str) -> None:
    """math.isfinite(10**400) raises OverflowError, which escaped from BreakerPolicy()."""
    with pytest.raises(ValueError, match=f"BreakerPolicy.{field} must"):
        BreakerPolicy(**{field: 10**400})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pattern", ["api.example.com:\u00b2", "api.example.com:\u0663", "api.example.com:\uff18"]
)
def test_a_per_host_port_in_non_ascii_digits_is_a_clear_error(pattern: str) -> None:
    """str.isdigit() accepts them: "²" made int() raise a ValueError that did not name the
    pattern, and "٣" was silently read as port 3."""
    with pytest.raises(ValueError, match="is malformed: port"):
        CircuitBreakerTransport(fixed(200), per_host={pattern: BreakerPolicy()})


@pytest.mark.parametrize(
    ("now", "error"),
    [
        ("12:00", TypeError),
        (None, TypeError),
        (True, TypeError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (10**400, ValueError),
    ],
)
def test_a_clock_that_returns_no_finite_number_is_an_error_at_construction(
    now: object, error: type[Exception]
) -> None:
    """A NaN clock made every open period end at once (the breaker never rejected), and a str
    clock raised a TypeError from inside the first request that opened a circuit."""
    with pytest.raises(error, match="clock must return"):
        CircuitBreakerTransport(fixed(200), clock=lambda: now)


@pytest.mark.parametrize("bad", ["", "http://", "https:///path", "://"])
def test_the_operator_api_refuses_a_key_that_no_request_can_have(bad: str) -> None:
    """force_open("") or force_open("http://") silently created a circuit that no request could
    ever use, while the circuit the operator meant stayed closed."""
    transport = CircuitBreakerTransport(fixed(200))
    for operation in (transport.force_open, transport.state, transport.reset):
        with pytest.raises(ValueError, match="circuit key"):
            operation(bad)
    assert transport.stats() == {}


def test_eviction_work_is_bounded_when_every_circuit_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the registry full of open circuits (many dead hosts at once), every new host made the
    eviction scan all max_circuits circuits under the lock: 1 ms per request at 10,000."""
    from breaker_transport._circuit import Circuit
    from breaker_transport._registry import EVICTION_SCAN

    checks = 0
    evictable = Circuit.evictable

    def counted(self: Circuit) -> bool:
        nonlocal checks
        checks += 1
        return bool(evictable.fget(self))  # type: ignore[attr-defined]

    monkeypatch.setattr(Circuit, "evictable", property(counted))
    transport = CircuitBreakerTransport(
        fixed(503), policy=BreakerPolicy(failure_threshold=1), max_circuits=1000
    )
    with httpx.Client(transport=transport) as client:
        for n in range(1000):
            client.get(f"http://dead{n}.example/")
        checks = 0
        for n in range(1000, 2000):
            client.get(f"http://dead{n}.example/")
    assert len(transport.stats()) == 1000
    assert checks <= 1000 * EVICTION_SCAN  # a full scan each time would be 1,000,000


@pytest.mark.anyio
async def test_call_listeners_agree_with_stats_for_a_probe_whose_slot_expired() -> None:
    """The expired probe is reported as ignored when its slot expires, and its late close reports
    nothing: on_call tallies (the metrics exporters) and stats() count it the same way."""
    from breaker_transport import AsyncCircuitBreakerTransport, BreakerListener, CallEvent
    from breaker_transport.testing import ManualClock

    from .helpers import Reply, StreamingTransport

    class Calls(BreakerListener):
        def __init__(self) -> None:
            self.results: list[str] = []

        def on_call(self, event: CallEvent) -> None:
            self.results.append(event.result)

    clock = ManualClock()
    answers = iter([Reply(503), Reply(200), Reply(200)])
    calls = Calls()
    transport = AsyncCircuitBreakerTransport(
        StreamingTransport(lambda r: next(answers)),
        policy=BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, probe_timeout=30.0),
        clock=clock,
        listeners=[calls],
    )
    url = "https://api.example.com/"
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(url)
        clock.advance(10.0)
        abandoned = await client.send(client.build_request("GET", url), stream=True)
        clock.advance(30.0)
        await client.get(url)  # expires the abandoned probe, then probes and closes
        await abandoned.aclose()  # late: counts nothing
    stats = transport.stats()["https://api.example.com"]
    assert calls.results == ["failure", "ignored", "success"]
    assert (stats.failures, stats.ignored, stats.successes) == (1, 1, 1)


def _probing(
    clock: ManualClock,
) -> tuple[CircuitBreakerTransport, httpx.Client, httpx.Response]:
    """A circuit opened by a 503, then 10 s later a streamed probe (a 200) left open."""
    from .helpers import Reply, StreamingTransport

    answers = iter([Reply(503), Reply(200)])
    transport = CircuitBreakerTransport(
        StreamingTransport(lambda r: next(answers)),
        policy=BreakerPolicy(failure_threshold=1, recovery_timeout=10.0, probe_timeout=5.0),
        clock=clock,
    )
    client = httpx.Client(transport=transport)
    client.get(URL)
    clock.advance(10.0)
    return transport, client, client.send(client.build_request("GET", URL), stream=True)


def test_a_probe_closed_after_probe_timeout_changes_nothing_even_with_no_traffic_between() -> None:
    """Review finding: expiry ran only at the next admission, so a late close with no request in
    between still counted and closed the circuit."""
    clock = ManualClock()
    transport, client, probe = _probing(clock)
    with closing(client):
        clock.advance(5.0)
        stats = transport.stats()[KEY]
        assert (stats.in_flight, stats.ignored) == (0, 1)  # a read notices the expiry too
        probe.close()
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.HALF_OPEN  # the late success did not close it
    assert (stats.successes, stats.ignored, stats.in_flight) == (0, 1, 0)


def test_a_late_probe_close_alone_counts_it_once_as_ignored() -> None:
    clock = ManualClock()
    transport, client, probe = _probing(clock)
    with closing(client):
        clock.advance(6.0)
        probe.close()  # nothing read the circuit in between
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.HALF_OPEN
    assert (stats.successes, stats.ignored, stats.in_flight) == (0, 1, 0)


def test_a_late_probe_of_an_older_half_open_period_counts_as_stale_after_a_reset() -> None:
    """The model-based test found it: a probe closed after probe_timeout, once an operator reset
    had closed the circuit, hit an assertion (there was no half-open state left to expire it in)."""
    clock = ManualClock()
    transport, client, probe = _probing(clock)
    with closing(client):
        transport.reset(KEY)
        clock.advance(6.0)
        probe.close()  # a stale success: counted, moves nothing
    stats = transport.stats()[KEY]
    assert stats.state is CircuitState.CLOSED
    assert (stats.successes, stats.failures, stats.in_flight) == (1, 0, 0)  # reset zeroed the rest


def test_an_inner_transport_returning_no_response_settles_the_call() -> None:
    class Broken(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return None  # type: ignore[return-value]

    transport = CircuitBreakerTransport(Broken(), clock=ManualClock())
    with httpx.Client(transport=transport) as client, pytest.raises(AttributeError):
        client.get("https://api.example.com/")
    stats = transport.stats()["https://api.example.com"]
    assert (stats.ignored, stats.in_flight) == (1, 0)


def test_circuit_open_error_pickles_and_has_a_default_state() -> None:
    import pickle

    from breaker_transport import CircuitOpenError

    error = CircuitOpenError("https://api.example.com", 2.5, state=CircuitState.HALF_OPEN)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CircuitOpenError
    assert (copy.key, copy.retry_after, copy.state) == (error.key, 2.5, CircuitState.HALF_OPEN)
    assert str(copy) == str(error)
    assert CircuitOpenError("k", 1.0).state is CircuitState.OPEN  # for users' own test doubles


def test_the_other_librarys_transport_is_refused_clearly() -> None:
    httpx2 = pytest.importorskip("httpx2")
    with pytest.raises(TypeError, match="is an httpx2 transport"):
        CircuitBreakerTransport(httpx2.MockTransport(lambda r: httpx2.Response(200)))
    from breaker_transport import httpx2 as twin

    with pytest.raises(TypeError, match="is an httpx transport"):
        twin.CircuitBreakerTransport(httpx.MockTransport(lambda r: httpx.Response(200)))


def test_no_log_call_happens_under_the_lock() -> None:
    """A logging handler is user code: one that reads the breaker (which takes its lock) while the
    policy-conflict warning is logged would deadlock if that warning were logged under the lock."""
    import logging
    import threading

    transport = CircuitBreakerTransport(
        fixed(200),
        key=lambda request: "shared",
        per_host={"a.example": BreakerPolicy(failure_threshold=2)},
        clock=ManualClock(),
    )

    class ReadsTheBreaker(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            transport.stats()

    handler = ReadsTheBreaker()
    logger = logging.getLogger("breaker_transport")
    logger.addHandler(handler)

    def run() -> None:
        with httpx.Client(transport=transport) as client:
            client.get("https://a.example/")
            client.get("https://b.example/")  # another policy, same key: the warning

    worker = threading.Thread(target=run, daemon=True)
    try:
        worker.start()
        worker.join(10)
    finally:
        logger.removeHandler(handler)
    assert not worker.is_alive(), "deadlocked: a log call ran under the registry lock"


def test_manual_clock_set_rejects_what_advance_rejects() -> None:
    clock = ManualClock()
    for bad in (math.nan, math.inf, "5"):
        with pytest.raises(TypeError, match=r"ManualClock\.set"):
            clock.set(bad)  # type: ignore[arg-type]
    clock.set(3.0)
    assert clock() == 3.0
