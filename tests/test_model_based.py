"""Model-based tests: the real transports (asyncio, trio, sync) against the reference model.

A hypothesis state machine sends requests to several hosts through a real breaker transport and a
real httpx client, with random outcomes (2xx/4xx/5xx, every exception kind, mid-body errors,
cancellation, Retry-After headers, a classify= that may break), calls held in flight while the
clock moves (concurrent probes, stale calls, slow calls, never-closed streams), failing listeners,
fallbacks, and reset/force_open/set_mode. After every step it checks the transport against
``tests/model.py``: every circuit's stats, its state, the transitions its listener saw, who reached
the upstream and what each caller got. The policies are drawn too, so the same machine covers the
rate windows (count and time), minimum_calls, slow calls, backoff with a seeded rng, and modes.

Example counts come from the hypothesis profile (tests/conftest.py): bounded in CI,
``HYPOTHESIS_PROFILE=long`` for a soak run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import httpx
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from breaker_transport import (
    DEFAULT_FAILURE_EXCEPTIONS,
    AsyncCircuitBreakerTransport,
    BreakerListener,
    BreakerPolicy,
    CallEvent,
    CircuitBreakerTransport,
    CircuitOpenError,
    CircuitState,
    FailureKind,
    Mode,
    Outcome,
    StateChange,
)
from breaker_transport.testing import ManualClock

from .drivers import (
    DATE_BASE,
    AsyncDriver,
    Held,
    Interrupt,
    Result,
    RetryAfter,
    Script,
    SyncDriver,
    http_date,
    verdict_classifier,
)
from .helpers import Recorder
from .model import Model, ModelTicket

# trio reports httpx's own abandoned async generators (a body closed before its end) at garbage
# collection; those two names only are tolerated, as in test_streaming.py.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    "(BoundAsyncStream.__aiter__|Response.aiter_raw):pytest.PytestUnraisableExceptionWarning"
)

# -- the world: hosts, outcomes, policies ------------------------------------------------------

#: request URLs and the circuit key each must land in (case, trailing dot, default port)
URLS = {
    "http://a.test/x": "http://a.test",
    "http://A.TEST./y": "http://a.test",
    "http://b.test:8080/": "http://b.test:8080",
    "https://c.test:443/z": "https://c.test",
}
KEYS = sorted(set(URLS.values()))
SPECIAL_KEY = "http://b.test:8080"  # gets the per_host policy when there is one
SPECIAL_PATTERN = "b.test:8080"

#: the default classification of each exception the upstream may raise, by kind
KIND_OF: dict[type[BaseException], FailureKind | None] = {
    httpx.ConnectError: FailureKind.CONNECT,
    httpx.ConnectTimeout: FailureKind.CONNECT_TIMEOUT,
    httpx.ReadError: FailureKind.READ,
    httpx.ReadTimeout: FailureKind.READ_TIMEOUT,
    httpx.WriteError: FailureKind.WRITE,
    httpx.WriteTimeout: FailureKind.WRITE_TIMEOUT,
    httpx.RemoteProtocolError: FailureKind.REMOTE_PROTOCOL,
    httpx.PoolTimeout: FailureKind.POOL_TIMEOUT,
    httpx.LocalProtocolError: FailureKind.LOCAL_PROTOCOL,
    httpx.UnsupportedProtocol: FailureKind.UNSUPPORTED_PROTOCOL,
    httpx.ProxyError: FailureKind.PROXY,
    httpx.CloseError: FailureKind.CLOSE,
    ValueError: None,  # not from httpx: a bug somewhere, never the host's fault
    Interrupt: None,  # a BaseException that is not an Exception
}

RETRY_AFTERS = [
    RetryAfter("5", None, 5.0),
    RetryAfter("120", None, 120.0),
    RetryAfter(" 7 ", None, 7.0),
    RetryAfter("0", None, 0.0),
    RetryAfter("99999999999999999999", None, 1e12),  # huge: capped by max_recovery_timeout
    RetryAfter("-5", None, None),  # negative: ignored
    RetryAfter("soon", None, None),  # garbage: ignored
    RetryAfter("1.5", None, None),  # not delta-seconds
    RetryAfter(http_date(DATE_BASE + 40), http_date(DATE_BASE), 40.0),  # against its own Date
    RetryAfter(http_date(DATE_BASE - 40), http_date(DATE_BASE), None),  # in the past
    RetryAfter(http_date(4_102_444_800), None, math.inf),  # 2100, against the wall clock
    RetryAfter(http_date(4_102_444_800), "not a date", math.inf),  # a broken Date: wall clock
]

STATUSES = [200, 200, 204, 404, 429, 500, 503, 503]
VERDICTS = [None, None, None, "success", "failure", "ignored", "raise", "junk"]


def scripts(keep_open: bool = False) -> st.SearchStrategy[Script]:
    consume = ["read", "read", "close_early", *(["keep_open"] * 2 if keep_open else [])]

    @st.composite
    def build(draw: st.DrawFn) -> Script:
        kind = draw(st.sampled_from(["status", "status", "raise", "body_error"]))
        verdict = draw(st.sampled_from(VERDICTS))
        if kind == "raise":
            return Script(raise_=draw(st.sampled_from(list(KIND_OF))), verdict=verdict)
        status = draw(st.sampled_from(STATUSES))
        retry_after = draw(st.one_of(st.none(), st.sampled_from(RETRY_AFTERS)))
        if kind == "body_error":
            return Script(
                status=status,
                body_error=draw(st.sampled_from(list(KIND_OF))),
                consume=draw(st.sampled_from(consume)),
                retry_after=retry_after,
                verdict=verdict,
            )
        preread = draw(st.booleans())
        return Script(
            status=status,
            consume="read" if preread else draw(st.sampled_from(consume)),
            preread=preread,
            retry_after=retry_after,
            verdict=verdict,
        )

    return build()


@st.composite
def policies(draw: st.DrawFn) -> BreakerPolicy:
    failure_threshold = draw(st.sampled_from([None, 1, 2, 3]))
    # 0.3, 0.6 and 0.7 are not binary fractions: 0.7 * 10 != 7 in floating point.
    rate = draw(st.sampled_from([None, None, 0.3, 0.5, 0.6, 0.7, 1.0]))
    slow = draw(st.sampled_from([None, None, 1.0, 2.5]))
    if failure_threshold is None and rate is None and slow is None:
        failure_threshold = 2
    minimum_calls = draw(st.integers(1, 4))
    recovery_timeout = draw(st.sampled_from([1.0, 3.0, 10.0]))
    codes = draw(st.sampled_from([None, frozenset(range(500, 600)) | {429}, frozenset({500, 503})]))
    exceptions = draw(
        st.sampled_from(
            [
                None,
                DEFAULT_FAILURE_EXCEPTIONS | {FailureKind.PROXY, FailureKind.POOL_TIMEOUT},
                frozenset({FailureKind.CONNECT}),
                frozenset({httpx.NetworkError, ValueError}),  # classes, matched with subclasses
            ]
        )
    )
    kwargs: dict[str, Any] = {
        "failure_threshold": failure_threshold,
        "recovery_timeout": recovery_timeout,
        "half_open_max_calls": draw(st.integers(1, 3)),
        "success_threshold": draw(st.integers(1, 3)),
        "probe_timeout": draw(st.sampled_from([2.0, 7.0, 30.0])),
        "failure_rate_threshold": rate,
        "minimum_calls": minimum_calls,
        "window_size": draw(st.integers(minimum_calls, 6)),
        "window_duration": draw(st.sampled_from([None, None, 10.0, 5.0])),
        "slow_call_duration": slow,
        "slow_call_rate_threshold": draw(st.sampled_from([1.0, 0.5, 0.7])),
        "recovery_backoff": draw(st.sampled_from([1.0, 2.0, 1.5])),
        "max_recovery_timeout": draw(
            st.sampled_from([None, recovery_timeout, recovery_timeout * 4])
        ),
        "recovery_jitter": draw(st.sampled_from([0.0, 0.0, 0.25])),
        "respect_retry_after": draw(st.booleans()),
        "mode": draw(st.sampled_from([Mode.ENFORCE, Mode.ENFORCE, Mode.OBSERVE])),
        "classify": draw(st.sampled_from([None, verdict_classifier])),
    }
    if codes is not None:
        kwargs["failure_status_codes"] = codes
    if exceptions is not None:
        kwargs["failure_exceptions"] = exceptions
    return BreakerPolicy(**kwargs)


def _short(policy: BreakerPolicy | None) -> str:
    """The fields that differ from the defaults: hypothesis prints this for a failing example."""
    if policy is None:
        return "None"
    default = BreakerPolicy()
    changed = [
        f"{f.name}={getattr(policy, f.name)!r}"
        for f in fields(policy)
        if getattr(policy, f.name) != getattr(default, f.name)
    ]
    return f"BreakerPolicy({', '.join(changed)})"


@dataclass(frozen=True)
class Config:
    policy: BreakerPolicy
    special: BreakerPolicy | None  # per_host policy of SPECIAL_PATTERN
    fallback: str | None  # None, "response" or "raise"
    seed: int

    def __repr__(self) -> str:
        return (
            f"Config(policy={_short(self.policy)}, special={_short(self.special)}, "
            f"fallback={self.fallback!r}, seed={self.seed})"
        )


configs = st.builds(
    Config,
    policy=policies(),
    special=st.one_of(st.none(), policies()),
    fallback=st.sampled_from([None, None, "response", "raise"]),
    seed=st.integers(0, 2**32 - 1),
)

# -- the expected classification (independent of breaker_transport/_classify.py) ------------------


def failure_exception(policy: BreakerPolicy, kind: type[BaseException]) -> bool:
    for matcher in policy.failure_exceptions:
        if isinstance(matcher, FailureKind):
            if KIND_OF[kind] is matcher:
                return True
        elif issubclass(kind, matcher):
            return True
    return False


def expected_outcome(policy: BreakerPolicy, script: Script, read_body: bool) -> Outcome:
    exc = script.raise_
    if exc is None and script.body_error is not None and read_body and not script.preread:
        exc = script.body_error
    if exc is not None:
        if not issubclass(exc, Exception):
            return Outcome.IGNORED  # never reaches classify
        default = Outcome.FAILURE if failure_exception(policy, exc) else Outcome.IGNORED
    else:
        default = (
            Outcome.FAILURE if script.status in policy.failure_status_codes else Outcome.SUCCESS
        )
    if policy.classify is not None and script.verdict in ("success", "failure", "ignored"):
        return Outcome(script.verdict)
    return default


def expected_hint(policy: BreakerPolicy, script: Script, read_body: bool) -> float | None:
    if script.raise_ is not None or script.retry_after is None:
        return None
    if script.body_error is not None and read_body and not script.preread:
        return None  # the body failed: the exception is the verdict, not the status
    if script.status not in (429, 503) or not policy.respect_retry_after:
        return None
    return script.retry_after.hint


class FallbackError(Exception):
    def __init__(self, error: CircuitOpenError) -> None:
        super().__init__("fallback failed")
        self.error = error


def response_fallback(request: httpx.Request, error: CircuitOpenError) -> httpx.Response:
    return httpx.Response(503, headers={"x-fallback": repr(error.retry_after)})


def raising_fallback(request: httpx.Request, error: CircuitOpenError) -> httpx.Response:
    raise FallbackError(error)


class Exploder(BreakerListener):
    """A listener that raises when told to: requests must not notice."""

    def __init__(self) -> None:
        self.armed = False

    def on_state_change(self, change: StateChange) -> None:
        if self.armed:
            raise RuntimeError("listener down")

    def on_call(self, event: CallEvent) -> None:
        if self.armed:
            raise RuntimeError("listener down")


@dataclass
class Flight:
    """A call of the machine in flight: its model ticket (None: not counted) and driver handle."""

    cid: str
    key: str
    url: str
    held: Held
    ticket: ModelTicket | None
    admission: Any
    admitted_at: float
    script: Script | None = None
    released_at: float | None = None


# -- the machine -----------------------------------------------------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    backend = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self.ready = False
        self.driver: Any = None
        self.counter = 0
        self.in_inner: list[Flight] = []
        self.open_streams: list[Flight] = []
        self.seen_changes = 0

    # -- set-up ------------------------------------------------------------------------------

    @initialize(config=configs)
    def setup(self, config: Config) -> None:
        self.config = config
        self.clock = ManualClock(1000.0)
        self.recorder = Recorder()
        self.callback_changes: list[StateChange] = []
        self.exploder = Exploder()
        per_host = {SPECIAL_PATTERN: config.special} if config.special is not None else None
        fallback = {None: None, "response": response_fallback, "raise": raising_fallback}[
            config.fallback
        ]

        def policy_of(key: str) -> BreakerPolicy:
            if key == SPECIAL_KEY and config.special is not None:
                return config.special
            return config.policy

        self.model = Model(policy_of, random.Random(config.seed))

        def make(inner: Any) -> Any:
            cls = (
                CircuitBreakerTransport if self.backend == "sync" else AsyncCircuitBreakerTransport
            )
            return cls(
                inner,
                policy=config.policy,
                per_host=per_host,
                on_state_change=self.callback_changes.append,
                listeners=[self.recorder, self.exploder],
                fallback=fallback,
                clock=self.clock,
                rng=random.Random(config.seed),
            )

        self.driver = (
            SyncDriver(make) if self.backend == "sync" else AsyncDriver(self.backend, make)
        )
        self.ready = True

    def teardown(self) -> None:
        if self.driver is not None:
            self.driver.shutdown()

    # -- helpers -------------------------------------------------------------------------------

    def next_cid(self) -> str:
        self.counter += 1
        return f"c{self.counter}"

    def admit(self, key: str) -> tuple[Any, ModelTicket | None]:
        admission = self.model.admit(key, self.clock())
        return admission, admission if isinstance(admission, ModelTicket) else None

    def check_rejection(self, result: Result, key: str, retry_after: float) -> None:
        state = CircuitState.HALF_OPEN if retry_after == 0.0 else CircuitState.OPEN
        fallback = self.config.fallback
        if fallback is None:
            assert isinstance(result.exc, CircuitOpenError), result
            assert result.exc.key == key
            assert result.exc.retry_after == retry_after
            assert result.exc.state is state
        elif fallback == "raise":
            assert isinstance(result.exc, FallbackError), result
            assert result.exc.error.retry_after == retry_after
        else:
            assert result.exc is None, result
            assert result.status == 503
            assert result.headers["x-fallback"] == repr(retry_after)
            assert result.extension == {"key": key, "state": state, "rejected": True}

    def check_sent(
        self, cid: str, result: Result, script: Script, key: str, admission: Any
    ) -> None:
        """The call reached the upstream once, and the caller got exactly what it produced."""
        assert self.driver.inner.seen.count(cid) == 1, cid
        raised = self.driver.inner.raised.get(cid)
        read_body = script.consume == "read"
        if script.raise_ is not None or (
            script.body_error is not None and read_body and not script.preread
        ):
            assert raised is not None
            assert result.exc is raised, (result, raised)
            return
        assert result.exc is None, result
        assert result.status == script.status
        assert result.body == (f"body:{cid}".encode() if read_body else None)
        if isinstance(admission, ModelTicket):
            assert result.extension == {"key": key, "state": admission.state}
        else:
            assert result.extension == {"key": key, "state": None, "bypassed": True}

    def settle(self, flight: Flight, script: Script, now: float, read_body: bool) -> None:
        if flight.ticket is None:
            return
        policy = self.model.circuits[flight.key].policy
        slow = False
        if policy.slow_call_duration is not None and script.raise_ is None:
            headers_at = flight.released_at if flight.released_at is not None else now
            slow = headers_at - flight.admitted_at > policy.slow_call_duration
        self.model.settle(
            flight.ticket,
            expected_outcome(policy, script, read_body),
            slow,
            now,
            expected_hint(policy, script, read_body),
        )

    def immediate(self, url: str, script: Script, bypass: bool) -> None:
        key = URLS[url]
        cid = self.next_cid()
        extensions = {"circuit_breaker": {"bypass": True}} if bypass else None
        if script.consume == "keep_open":
            script = Script(**{**script.__dict__, "consume": "read"})
        if bypass:
            admission: Any = None
            ticket = None
        else:
            admission, ticket = self.admit(key)
        note(f"{cid} {url} {script} -> {admission}")
        result = self.driver.call(url, cid, script, extensions)
        if isinstance(admission, float):
            assert cid not in self.driver.inner.seen
            self.check_rejection(result, key, admission)
            return
        self.check_sent(cid, result, script, key, admission)
        now = self.clock()
        flight = Flight(cid, key, url, None, ticket, admission, now)  # type: ignore[arg-type]
        self.settle(flight, script, now, script.consume == "read")

    # -- rules ---------------------------------------------------------------------------------

    @rule(url=st.sampled_from(list(URLS)), script=scripts(), bypass=st.booleans())
    def call(self, url: str, script: Script, bypass: bool) -> None:
        self.immediate(url, script, bypass)

    @rule(
        dt=st.sampled_from([0.5, 1.0, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0]),
        url=st.sampled_from(list(URLS)),
        script=scripts(),
    )
    def tick_then_call(self, dt: float, url: str, script: Script) -> None:
        """A call right after the clock moved, with no read in between: lazy transitions happen
        on admission."""
        self.clock.advance(dt)
        self.immediate(url, script, False)

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 40.0]))
    def tick(self, dt: float) -> None:
        self.clock.advance(dt)

    @precondition(
        lambda self: (
            self.ready
            and any(
                c.state is CircuitState.OPEN and not c.forced and c.open_until > self.clock()
                for c in self.model.circuits.values()
            )
        )
    )
    @rule(data=st.data(), early=st.booleans())
    def tick_to_the_end_of_an_open_period(self, data: st.DataObject, early: bool) -> None:
        """The exact edge: the clock lands on the moment the open period ends (or just before)."""
        ends = sorted(
            c.open_until
            for c in self.model.circuits.values()
            if c.state is CircuitState.OPEN and not c.forced and c.open_until > self.clock()
        )
        end = data.draw(st.sampled_from(ends))
        target = math.nextafter(end, -math.inf) if early else end
        if target > self.clock():
            self.clock.set(target)

    @precondition(lambda self: self.ready and len(self.in_inner) < 4)
    @rule(url=st.sampled_from(list(URLS)))
    def start_held(self, url: str) -> None:
        key = URLS[url]
        cid = self.next_cid()
        admission, ticket = self.admit(key)
        note(f"{cid} held {url} -> {admission}")
        held = self.driver.start_held(url, cid)
        if isinstance(admission, float):
            assert held.done.is_set(), "a rejected call must not reach the inner transport"
            assert cid not in self.driver.inner.seen
            assert held.result is not None
            self.check_rejection(held.result, key, admission)
            return
        assert not held.done.is_set(), f"{cid} should be parked in the inner transport"
        assert self.driver.inner.seen.count(cid) == 1
        self.in_inner.append(Flight(cid, key, url, held, ticket, admission, self.clock()))

    @precondition(lambda self: self.ready and self.in_inner)
    @rule(index=st.integers(0, 3), script=scripts(keep_open=True))
    def release(self, index: int, script: Script) -> None:
        flight = self.in_inner.pop(index % len(self.in_inner))
        flight.script = script
        flight.released_at = now = self.clock()
        note(f"release {flight.cid}: {script}")
        self.driver.release(flight.held, script)
        result = flight.held.result
        assert result is not None
        if script.consume == "keep_open" and script.raise_ is None and not script.preread:
            assert not flight.held.done.is_set()
            assert result.status == script.status
            self.open_streams.append(flight)
            return
        assert flight.held.done.is_set()
        self.check_sent(flight.cid, result, script, flight.key, flight.admission)
        self.settle(flight, script, now, script.consume == "read")

    @precondition(lambda self: self.ready and len(self.in_inner) < 4)
    @rule(
        url=st.sampled_from(list(URLS)),
        dt=st.sampled_from([0.5, 1.0, 2.5, 3.0]),
        script=scripts(),
    )
    def call_that_takes(self, url: str, dt: float, script: Script) -> None:
        """A call whose headers take ``dt`` seconds: slow or not, against slow_call_duration
        (1.0 or 2.5), and exactly at it for some."""
        self.start_held(url)
        if (
            self.in_inner
            and self.in_inner[-1].url == url
            and self.in_inner[-1].cid == (f"c{self.counter}")
        ):
            self.clock.advance(dt)
            self.release(len(self.in_inner) - 1, script)

    @precondition(lambda self: self.ready and self.in_inner and self.driver.can_cancel)
    @rule(index=st.integers(0, 3))
    def cancel(self, index: int) -> None:
        flight = self.in_inner.pop(index % len(self.in_inner))
        note(f"cancel {flight.cid}")
        self.driver.cancel(flight.held)
        assert flight.held.result is not None and flight.held.result.cancelled
        if flight.ticket is not None:
            self.model.settle(flight.ticket, Outcome.IGNORED, False, self.clock(), None)

    @precondition(lambda self: self.ready and self.open_streams)
    @rule(index=st.integers(0, 3))
    def close_stream(self, index: int) -> None:
        flight = self.open_streams.pop(index % len(self.open_streams))
        note(f"close {flight.cid}")
        self.driver.close_stream(flight.held)
        assert flight.script is not None
        self.settle(flight, flight.script, self.clock(), read_body=False)

    @rule(url=st.sampled_from(list(URLS)), batch=st.lists(scripts(), min_size=2, max_size=8))
    def burst(self, url: str, batch: list[Script]) -> None:
        """Several calls in a row to one host: fills windows, trips rates, uses up probes."""
        for script in batch:
            self.immediate(url, script, False)

    @precondition(lambda self: self.ready)
    @rule(
        op=st.sampled_from(
            ["reset", "reset_all", "force_open", "set_mode", "set_mode_all", "listener"]
        ),
        url=st.sampled_from(list(URLS)),
        mode=st.sampled_from(list(Mode)),
    )
    def operate(self, op: str, url: str, mode: Mode) -> None:
        """What an operator does at run time; and a listener that starts (or stops) failing."""
        transport = self.driver.transport
        now = self.clock()
        if op == "reset":
            transport.reset(url)
            self.model.reset(URLS[url], now)
        elif op == "reset_all":
            transport.reset()
            self.model.reset(None, now)
        elif op == "force_open":
            transport.force_open(url)
            self.model.force_open(URLS[url], now)
        elif op == "set_mode":
            transport.set_mode(mode.value, url)
            self.model.set_mode(mode, URLS[url])
        elif op == "set_mode_all":
            transport.set_mode(mode)
            self.model.set_mode(mode, None)
        else:
            self.exploder.armed = not self.exploder.armed

    # -- the check after every step ------------------------------------------------------------

    @precondition(lambda self: self.ready)
    @invariant()
    def transport_agrees_with_the_model(self) -> None:
        now = self.clock()
        real = self.driver.transport.stats()
        assert set(real) == set(self.model.circuits), (set(real), set(self.model.circuits))
        for key, stats in real.items():
            expected = self.model.snapshot(key, now)
            got = {f.name: getattr(stats, f.name) for f in fields(stats)}
            assert got == expected, f"{key}: real {got} != model {expected}"
        for key in KEYS:
            want = self.model.circuits[key].state if key in self.model.circuits else None
            assert self.driver.transport.state(key) is (want or CircuitState.CLOSED)
        # the on_state_change= callable and a BreakerListener see the same transitions
        assert self.callback_changes == self.recorder.changes
        changes = self.recorder.changes[self.seen_changes :]
        self.seen_changes = len(self.recorder.changes)
        model_changes = self.model.transitions
        self.model.transitions = []
        for key in KEYS:
            got_events = [(c.old, c.new, c.at, c.generation) for c in changes if c.key == key]
            want_events = [
                (t.old, t.new, t.at, t.generation) for t in model_changes if t.key == key
            ]
            assert got_events == want_events, f"{key}: {got_events} != {want_events}"


class AsyncioMachine(BreakerMachine):
    backend = "asyncio"


class TrioMachine(BreakerMachine):
    backend = "trio"


class SyncMachine(BreakerMachine):
    backend = "sync"


TestAsyncioTransportAgainstModel = AsyncioMachine.TestCase
TestTrioTransportAgainstModel = TrioMachine.TestCase
TestSyncTransportAgainstModel = SyncMachine.TestCase


# -- observe mode: never rejects, and reports exactly the transitions enforce reports ------------


@given(
    policy=policies(),
    steps=st.lists(
        st.tuples(st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0, 10.0]), st.sampled_from(STATUSES)),
        max_size=60,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_observe_mode_reports_the_transitions_of_enforce_and_never_rejects(
    policy: BreakerPolicy, steps: list[tuple[float, int]], seed: int
) -> None:
    """The same requests through an enforcing and an observing transport. The upstream's answer
    depends on the request's index, not on who reaches it, so both state machines see the same
    outcomes for the calls they count."""
    runs: dict[Mode, tuple[list[tuple[Any, ...]], list[bool]]] = {}
    for mode in (Mode.ENFORCE, Mode.OBSERVE):
        clock = ManualClock(1000.0)
        changes: list[StateChange] = []

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(int(request.headers["x-status"]))

        transport = CircuitBreakerTransport(
            httpx.MockTransport(answer),
            policy=policy,
            on_state_change=changes.append,
            clock=clock,
            rng=random.Random(seed),
        )
        transport.set_mode(mode)
        rejected = []
        with httpx.Client(transport=transport) as client:
            for dt, status in steps:
                clock.advance(dt)
                try:
                    client.get("http://x.test/", headers={"x-status": str(status)})
                    rejected.append(False)
                except CircuitOpenError:
                    rejected.append(True)
        runs[mode] = ([(c.old, c.new, c.at, c.generation) for c in changes], rejected)
    assert runs[Mode.OBSERVE][0] == runs[Mode.ENFORCE][0]
    assert not any(runs[Mode.OBSERVE][1])


# -- the rate rules at scale: decimal thresholds, windows of up to 200 calls -----------------------


@given(
    # 0.07, 0.14, 0.28, 0.55, 0.56 times 100 (or 50, 200) are not integers in binary floating point
    threshold=st.one_of(
        st.sampled_from([0.07, 0.14, 0.28, 0.55, 0.56]), st.integers(1, 100).map(lambda n: n / 100)
    ),
    slow_threshold=st.one_of(
        st.sampled_from([0.07, 0.14, 0.28, 0.55, 0.56]), st.integers(1, 100).map(lambda n: n / 100)
    ),
    # round window sizes are where decimal thresholds and binary floats disagree most
    minimum=st.one_of(st.sampled_from([10, 50, 100, 200]), st.integers(1, 200)),
    data=st.data(),
)
def test_rate_rules_trip_exactly_when_the_decimal_rate_is_reached(
    threshold: float, slow_threshold: float, minimum: int, data: st.DataObject
) -> None:
    """The state after every call agrees with the model's exact-fraction arithmetic, whatever
    the decimal threshold, at the minimum_calls-th call and as the count window slides."""
    window = data.draw(st.one_of(st.just(minimum), st.integers(minimum, 200)))
    policy = BreakerPolicy(
        failure_threshold=None,
        failure_rate_threshold=threshold,
        slow_call_duration=data.draw(st.sampled_from([None, 1.0])),
        slow_call_rate_threshold=slow_threshold,
        minimum_calls=minimum,
        window_size=window,
    )
    # Aim at the edge: the first minimum_calls calls hold exactly the failures (and slow calls)
    # that reach the threshold, or one fewer; then the window slides on with random calls.
    edge = math.ceil(Fraction(str(threshold)) * minimum) - data.draw(st.sampled_from([0, 1]))
    slow_edge = math.ceil(Fraction(str(slow_threshold)) * minimum) - data.draw(
        st.sampled_from([0, 1])
    )
    first = [(n < edge, n < slow_edge) for n in range(minimum)]
    failed_order = data.draw(st.permutations([f for f, _ in first]))
    slow_order = data.draw(st.permutations([s for _, s in first]))
    calls = list(zip(failed_order, slow_order, strict=True)) + data.draw(
        st.lists(st.tuples(st.booleans(), st.booleans()), max_size=window)
    )
    clock = ManualClock(1000.0)
    model = Model(lambda key: policy, random.Random(0))

    class Slow(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.headers["x-slow"] == "1":
                clock.advance(2.0)  # the headers took longer than slow_call_duration
            return httpx.Response(int(request.headers["x-status"]))

    transport = CircuitBreakerTransport(Slow(), policy=policy, clock=clock)
    key = "http://rate.test"
    with httpx.Client(transport=transport) as client:
        for failed, slow_call in calls:
            slow = slow_call and policy.slow_call_duration is not None
            ticket = model.admit(key, clock())
            if not isinstance(ticket, ModelTicket):
                break
            headers = {"x-status": "503" if failed else "200", "x-slow": "1" if slow else "0"}
            client.get(key, headers=headers)
            model.settle(
                ticket, Outcome.FAILURE if failed else Outcome.SUCCESS, slow, clock(), None
            )
            assert transport.state(key) is model.circuits[key].state
    snapshot = transport.stats()[key]
    assert (snapshot.window_calls, snapshot.failure_rate, snapshot.slow_call_rate) == tuple(
        model.snapshot(key, clock())[f] for f in ("window_calls", "failure_rate", "slow_call_rate")
    )
