"""HTTP/2 against real h2 servers on 127.0.0.1, over TLS with trustme certificates.

Also where two hidden client settings matter: ``http2`` and ``verify`` reach the inner transport
only through ``over_http`` (a client given ``transport=`` ignores its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from breaker_transport import BreakerPolicy
from breaker_transport.testing import ManualClock, assert_state

from .flavours import Flavour
from .h2_servers import GoawayServer, HypercornServer, Tls

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tls() -> Tls:
    return Tls()


async def test_http2_and_verify_reach_the_inner_transport_only_through_over_http(
    flavour: Flavour, tls: Tls, tmp_path: Path, clock: ManualClock
) -> None:
    with HypercornServer(tls, tmp_path) as server:
        # The pitfall: the client's own verify= and http2= are ignored with transport=.
        plain = flavour.Async()
        async with flavour.lib.AsyncClient(
            transport=plain, verify=tls.client_context(), http2=True
        ) as client:
            with pytest.raises(flavour.lib.ConnectError):  # certificate verify failed
                await client.get(server.url)
        assert plain.stats()[server.url].failures == 1  # and it counts against the host

        policy = BreakerPolicy(failure_threshold=2, recovery_timeout=1.0)
        breaker = flavour.Async.over_http(
            policy=policy, clock=clock, http2=True, verify=tls.client_context()
        )
        async with flavour.lib.AsyncClient(transport=breaker) as client:
            response = await client.get(server.url)
            assert (response.http_version, response.text) == ("HTTP/2", "2 200")
            server.status = 503
            for _ in range(2):
                assert (await client.get(server.url)).status_code == 503
            with pytest.raises(flavour.CircuitOpenError):
                await client.get(server.url)
            server.status = 200
            clock.advance(1.0)
            assert (await client.get(server.url)).http_version == "HTTP/2"
        assert_state(breaker, server.url, "closed")
        assert server.hits == 4


async def test_one_goaway_fails_every_stream_on_the_connection_at_once(
    flavour: Flavour, tls: Tls, clock: ManualClock
) -> None:
    burst = 8
    events: list[Any] = []
    policy = BreakerPolicy(failure_threshold=5)
    breaker = flavour.Async.over_http(
        policy=policy,
        clock=clock,
        on_state_change=events.append,
        http1=False,
        http2=True,
        verify=tls.client_context(),
    )
    errors: list[BaseException] = []
    with GoawayServer(tls, burst) as server:
        async with flavour.lib.AsyncClient(transport=breaker, timeout=10.0) as client:
            assert (await client.get(server.url)).http_version == "HTTP/2"  # the connection

            async def one() -> None:
                try:
                    await client.get(server.url)
                except flavour.lib.TransportError as exc:
                    errors.append(exc)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for _ in range(burst):
                        group.start_soon(one)
    # One event, eight failures: all streams share the connection, so they fail together and
    # a threshold below the burst opens the circuit at once. One transition, not several; the
    # consecutive count stops at the threshold (the later failures were admitted before the
    # transition: they count in the totals only).
    assert [type(e).__name__ for e in errors] == ["RemoteProtocolError"] * burst
    assert server.connections == 1
    stats = breaker.stats()[server.url]
    assert (stats.failures, stats.successes, stats.consecutive_failures) == (burst, 1, 5)
    assert [(e.old.value, e.new.value) for e in events] == [("closed", "open")]
