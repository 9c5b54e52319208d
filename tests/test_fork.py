"""A transport created before os.fork (gunicorn --preload) works in the child: fresh locks, and none
of the parent's calls in flight."""

from __future__ import annotations

import os
import sys
import threading
import time

import httpx
import pytest

from breaker_transport import BreakerPolicy, CircuitBreakerTransport, CircuitState
from breaker_transport.testing import ManualClock

from .helpers import Reply, StreamingTransport

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

URL = "https://api.example.com/"
KEY = "https://api.example.com"


def _wait(pid: int, seconds: float) -> int:
    """The child's exit code; kills it if it has not exited within ``seconds`` (a deadlock)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_the_child_is_not_blocked_by_a_lock_the_parent_held_at_fork() -> None:
    clock = ManualClock()
    inner = StreamingTransport(lambda r: Reply(503))
    policy = BreakerPolicy(failure_threshold=1, recovery_timeout=10.0)
    transport = CircuitBreakerTransport(inner, policy=policy, clock=clock)
    with httpx.Client(transport=transport) as client:
        client.get(URL)  # opens
        clock.advance(10.0)
        inner.handler = lambda r: Reply(200)
        held_probe = client.send(client.build_request("GET", URL), stream=True)  # in flight
        holding, release = threading.Event(), threading.Event()

        def hold_the_lock() -> None:
            with transport._lock:
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        holding.wait(10)
        pid = os.fork()
        if pid == 0:  # the child: the parent's lock holder does not exist here
            code = 1
            try:
                stats = transport.stats()[KEY]
                assert stats.in_flight == 0  # the parent's probe is not ours
                assert stats.state is CircuitState.HALF_OPEN
                assert client.get(URL).status_code == 200  # its slot is free: our own probe
                assert transport.state(URL) is CircuitState.CLOSED
                code = 0
            finally:
                sys.stdout.flush()
                os._exit(code)
        release.set()
        holder.join(10)
        assert _wait(pid, 20.0) == 0
        assert transport.stats()[KEY].in_flight == 1  # the parent's own probe is still its own
        held_probe.close()
    assert transport.state(URL) is CircuitState.CLOSED
