"""The client settings a custom transport hides, and the constructor and factory that keep them.

Each pitfall is shown first with a plain client (the breaker does not see the request, or the
setting is ignored), then fixed with ``over_http`` / ``async_breaker_client``. Real servers on
127.0.0.1 stand in for the upstream and for an HTTP forward proxy (it answers any request).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from breaker_transport import BreakerPolicy
from breaker_transport._factory import environment_proxies

from .flavours import Flavour
from .servers import FlakyServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def other_flavour_breaker(flavour: Flavour) -> Any:
    from .flavours import load

    return load("httpx2" if flavour.name == "httpx" else "httpx").Sync()


def factory(flavour: Flavour, sync: bool = False) -> Any:
    return flavour.breaker.breaker_client if sync else flavour.breaker.async_breaker_client


async def test_proxy_on_the_client_bypasses_the_breaker_proxy_on_over_http_does_not(
    flavour: Flavour, server: FlakyServer, dead_url: str, no_env_proxies: None
) -> None:
    plain = flavour.Async()
    async with flavour.lib.AsyncClient(transport=plain, proxy=server.url) as client:
        assert (await client.get(dead_url)).text == "ok"  # via the proxy mount ...
    assert plain.stats() == {}  # ... which the breaker never saw

    breaker = flavour.Async.over_http(proxy=server.url)
    async with factory(flavour)(breaker) as client:
        server.behaviour = "error"
        assert (await client.get(dead_url)).status_code == 503
    assert breaker.stats()[dead_url].failures == 1  # keyed by the target, not the proxy
    assert server.hits == 2


async def test_mounts_bypass_the_breaker_unless_the_factory_wraps_them(
    flavour: Flavour, dead_url: str, no_env_proxies: None
) -> None:
    plain = flavour.Async(flavour.mock())
    mounted = {dead_url: flavour.mock(503)}
    async with flavour.lib.AsyncClient(transport=plain, mounts=mounted) as client:
        assert (await client.get(dead_url)).status_code == 503
    assert plain.stats() == {}

    breaker = flavour.Async(flavour.mock(204), policy=BreakerPolicy(failure_threshold=1))
    other = "http://other.example"
    mounts = {dead_url: flavour.mock(503), other: None}  # None: routed to the client's transport
    async with factory(flavour)(breaker, mounts=mounts) as client:
        assert (await client.get(dead_url)).status_code == 503
        with pytest.raises(flavour.CircuitOpenError):
            await client.get(dead_url)  # the mount's twin shares the breaker's circuit
        assert (await client.get(other)).status_code == 204  # the breaker's own inner
    stats = breaker.stats()
    assert (stats[dead_url].rejections, stats[other].successes) == (1, 1)


async def test_a_breaker_given_as_a_mount_is_kept_as_it_is(
    flavour: Flavour, dead_url: str, no_env_proxies: None
) -> None:
    main = flavour.Async(flavour.mock())
    own = flavour.Async(flavour.mock(200))
    async with factory(flavour)(main, mounts={dead_url: own}) as client:
        await client.get(dead_url)
    assert (dead_url in own.stats(), main.stats()) == (True, {})


async def test_environment_proxies_are_ignored_with_transport_and_kept_by_the_factory(
    flavour: Flavour, server: FlakyServer, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with flavour.lib.AsyncClient(transport=flavour.Async()) as client:
        with pytest.raises(flavour.lib.ConnectError):
            await client.get(dead_url)  # HTTP_PROXY ignored: straight to the dead port

    breaker = flavour.Async.over_http()
    async with factory(flavour)(breaker) as client:
        assert (await client.get(dead_url)).text == "ok"  # through the proxy, and counted
    assert breaker.stats()[dead_url].successes == 1

    # NO_PROXY routes the host to the breaker's own (direct) transport: still counted.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    breaker = flavour.Async.over_http()
    async with factory(flavour)(breaker) as client:
        with pytest.raises(flavour.lib.ConnectError):
            await client.get(dead_url)
    assert breaker.stats()[dead_url].failures == 1

    # A transport of your own gets no environment proxies, as with Client(transport=...).
    monkeypatch.delenv("NO_PROXY")
    breaker = flavour.Async(flavour.mock(204))
    async with factory(flavour)(breaker) as client:
        assert (await client.get(dead_url)).status_code == 204
    assert server.hits == 1


def test_the_sync_factory_wraps_the_environment_proxy(
    flavour: Flavour, server: FlakyServer, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.behaviour = "error"
    breaker = flavour.Sync.over_http(policy=BreakerPolicy(failure_threshold=1))
    with factory(flavour, sync=True)(breaker, timeout=5.0) as client:
        assert client.get(dead_url).status_code == 503
        with pytest.raises(flavour.CircuitOpenError):
            client.get(dead_url)
    assert server.hits == 1


def test_environment_proxy_rules_follow_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "localhost, 10.0.0.1,::1,.internal.example,http://exact.example")
    assert environment_proxies() == {
        "https://": "http://proxy.local:3128",
        "all://localhost": None,
        "all://10.0.0.1": None,
        "all://[::1]": None,
        "all://*.internal.example": None,
        "http://exact.example": None,
    }
    monkeypatch.setenv("NO_PROXY", "*")
    assert environment_proxies() == {}


async def test_over_http_forwards_limits(
    flavour: Flavour, server: FlakyServer, no_env_proxies: None
) -> None:
    # limits reach the inner pool: with one connection, a second origin waits for the pool.
    # (PoolTimeout is our pool, not the host: ignored, as the policy says.)
    breaker = flavour.Async.over_http(limits=flavour.lib.Limits(max_connections=1))
    assert breaker.http_options == {"limits": flavour.lib.Limits(max_connections=1)}
    timeout = flavour.lib.Timeout(5.0, pool=0.05)
    with FlakyServer() as second:
        async with flavour.lib.AsyncClient(transport=breaker, timeout=timeout) as client:
            async with client.stream("GET", server.url):
                with pytest.raises(flavour.lib.PoolTimeout):
                    await client.get(second.url)
            assert (await client.get(second.url)).text == "ok"
    stats = breaker.stats()
    assert (stats[second.url].ignored, stats[second.url].successes) == (1, 1)


def test_bad_options_are_refused_by_name(flavour: Flavour) -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['http3'\].*'http2'"):
        flavour.Async.over_http(http3=True)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['transport'\]"):
        flavour.Sync.over_http(transport=flavour.lib.HTTPTransport())
    breaker = flavour.Async(flavour.mock())
    make = factory(flavour)
    for name in ("verify", "cert", "http1", "http2", "limits", "proxy"):
        with pytest.raises(TypeError, match=rf"{name}=.*over_http\({name}=\.\.\.\)"):
            make(breaker, **{name: None})
    with pytest.raises(TypeError, match="the breaker is the transport"):
        make(breaker, transport=flavour.mock())
    with pytest.raises(TypeError, match="breaker must be a breaker transport"):
        make(flavour.mock())
    with pytest.raises(
        TypeError, match=r"of the kind AsyncClient takes.*AsyncCircuitBreakerTransport"
    ):
        make(flavour.Sync(flavour.mock()))  # a sync breaker for an async client
    other = "httpx2" if flavour.name == "httpx" else "httpx"
    with pytest.raises(TypeError, match=rf"an {flavour.name} CircuitBreakerTransport .*{other}\."):
        factory(flavour, sync=True)(other_flavour_breaker(flavour))


async def test_wrap_shares_circuits_and_closes_only_its_own_inner(flavour: Flavour) -> None:
    first, second = flavour.scripted(500), flavour.scripted()
    breaker = flavour.Async(first, policy=BreakerPolicy(failure_threshold=1))
    twin = breaker.wrap(second)
    assert type(twin) is type(breaker) and twin.http_options is None
    async with flavour.lib.AsyncClient(transport=breaker) as client:
        await client.get("https://a.example/")
    async with flavour.lib.AsyncClient(transport=twin) as client:
        with pytest.raises(flavour.CircuitOpenError):
            await client.get("https://a.example/")
    assert (first.sent, second.sent, first.closed, second.closed) == (1, 0, 1, 1)
    assert twin.stats()["https://a.example"].rejections == 1
    with pytest.raises(TypeError, match="AsyncBaseTransport"):
        breaker.wrap(flavour.lib.HTTPTransport())


def test_importing_the_httpx2_twin_without_httpx2_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx2'] = None\n"
        "try:\n    import breaker_transport.httpx2\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert 'pip install "breaker-transport[httpx2]"' in out
    assert "Python 3.11+" in out
