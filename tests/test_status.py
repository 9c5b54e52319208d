"""status_app served for real (uvicorn on 127.0.0.1, in a thread), plus the ASGI corners."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from breaker_transport import BreakerPolicy, CircuitBreakerTransport, status_app
from breaker_transport.testing import ManualClock

pytest.importorskip("uvicorn")

from breaker_transport.demo.upstreams import ServerThread

EVIL = '<script>alert("x")</script>'


def _upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503 if request.url.host.startswith("down") else 200)


@pytest.fixture
def transport(clock: ManualClock) -> CircuitBreakerTransport:
    """Circuits in every state: closed, open (7 s to go), half-open, forced open, a hostile key."""
    policy = BreakerPolicy(failure_threshold=2, recovery_timeout=10.0)
    t = CircuitBreakerTransport(httpx.MockTransport(_upstream), policy=policy, clock=clock)
    with httpx.Client(transport=t) as client:
        client.get("https://up.example/")
        client.get("https://up.example/")
        for _ in range(2):
            client.get("https://down-early.example/")
        clock.advance(3.0)
        for _ in range(2):
            client.get("https://down.example/")
        with pytest.raises(httpx.TransportError):
            client.get("https://down.example/")  # a rejection
        clock.advance(7.5)  # down-early is past its 10 s: half-open at the next read
        client.get("https://up.example/", extensions={"circuit_breaker": {"key": EVIL}})
    t.force_open("https://held.example")
    return t


@pytest.fixture
def served(transport: CircuitBreakerTransport) -> Iterator[str]:
    app = status_app(transport, title="payments <breakers>", refresh=3)
    with ServerThread([app]) as server:
        yield server.urls[0]


def test_json_has_every_circuit_and_its_stats(served: str) -> None:
    response = httpx.get(f"{served}/json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert doc["status"] == "degraded"
    assert doc["counts"] == {"closed": 2, "open": 2, "half_open": 1}
    circuits = doc["circuits"]
    assert set(circuits) == {
        "https://up.example",
        "https://down.example",
        "https://down-early.example",
        "https://held.example",
        EVIL,
    }
    up = circuits["https://up.example"]
    assert up["state"] == "closed" and up["successes"] == 2 and up["retry_after"] is None
    down = circuits["https://down.example"]
    assert down["state"] == "open"
    assert down["failures"] == 2 and down["rejections"] == 1
    assert down["retry_after"] == pytest.approx(2.5)  # opened at +3 s for 10 s; now +10.5 s
    assert circuits["https://down-early.example"]["state"] == "half_open"
    assert circuits["https://down-early.example"]["retry_after"] == 0.0
    held = circuits["https://held.example"]
    assert held["state"] == "open" and held["forced_open"] is True
    assert held["retry_after"] is None  # infinity has no JSON spelling


def test_html_page_shows_states_probes_and_refreshes_itself(served: str) -> None:
    response = httpx.get(f"{served}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "<title>payments &lt;breakers&gt;</title>" in page
    assert "5 circuits: 2 closed, 1 half-open, 2 open" in page
    assert page.count('<tr class="open"') == 2
    assert page.count('<tr class="half_open"') == 1
    assert page.count('<tr class="closed"') == 2
    assert "in 2.5 s" in page  # the open circuit's next probe
    assert "probing now" in page and "forced open (until reset)" in page
    # Open circuits first, closed ones last.
    assert page.index("https://down.example") < page.index("https://up.example")
    # Keys are escaped: a hostile custom key is text, not markup.
    assert EVIL not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'href="/json"' in page


def test_asking_for_json_at_the_root_gets_json(served: str) -> None:
    response = httpx.get(served, headers={"accept": "application/json"}, timeout=10)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["counts"]["open"] == 2


def test_unknown_paths_and_methods(served: str) -> None:
    assert httpx.get(f"{served}/nope", timeout=10).status_code == 404
    posted = httpx.post(f"{served}/json", timeout=10)
    assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"
    head = httpx.head(f"{served}/json", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_fail_when_open_answers_503_for_readiness_probes(
    transport: CircuitBreakerTransport,
) -> None:
    strict = status_app(transport, fail_when_open=True)
    with ServerThread([strict]) as server:
        assert httpx.get(f"{server.urls[0]}/json", timeout=10).status_code == 503
        transport.reset()
        response = httpx.get(f"{server.urls[0]}/json", timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "ok"


# -- the ASGI corners, called directly ------------------------------------------------------


async def _call(app: Any, scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "headers": [], **scope}, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_mounted_under_a_prefix_it_routes_and_links_below_it(
    transport: CircuitBreakerTransport,
) -> None:
    app = status_app(transport)
    # Starlette-style mount: the full path, with root_path set to the mount point.
    status, _, body = asyncio.run(
        _call(app, {"path": "/ops/breakers/", "root_path": "/ops/breakers"})
    )
    assert status == 200 and b'href="/ops/breakers/json"' in body
    status, headers, _ = asyncio.run(
        _call(app, {"path": "/ops/breakers/json", "root_path": "/ops/breakers"})
    )
    assert status == 200 and headers[b"content-type"] == b"application/json"


def test_an_empty_transport_says_so() -> None:
    app = status_app(CircuitBreakerTransport(httpx.MockTransport(_upstream)))
    status, _, body = asyncio.run(_call(app, {"path": "/"}))
    assert status == 200 and b"no circuits yet" in body


def test_many_closed_circuits_are_capped_in_html_not_in_json(clock: ManualClock) -> None:
    t = CircuitBreakerTransport(httpx.MockTransport(_upstream), clock=clock)
    with httpx.Client(transport=t) as client:
        for i in range(12):
            client.get(f"https://h{i}.example/")
    app = status_app(t, max_closed_rows=5)
    _, _, page = asyncio.run(_call(app, {"path": "/"}))
    assert page.count(b'<tr class="closed"') == 5 and b"and 7 more closed circuits" in page
    _, _, doc = asyncio.run(_call(app, {"path": "/json"}))
    assert doc.count(b'"state": "closed"') == 12


def test_lifespan_is_acknowledged(transport: CircuitBreakerTransport) -> None:
    app = status_app(transport)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"refresh": 0}, ValueError, "status_app(refresh=) must be a number of seconds > 0, got 0"),
        ({"fail_when_open": "yes"}, TypeError, "status_app(fail_when_open=) must be a bool"),
        ({"max_closed_rows": -1}, ValueError, "status_app(max_closed_rows=) must be >= 0, got -1"),
        ({"title": 3}, TypeError, "status_app(title=) must be a str"),
    ],
)
def test_bad_arguments_say_what_is_wrong(
    transport: CircuitBreakerTransport, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        status_app(transport, **kwargs)


def test_it_needs_a_transport() -> None:
    with pytest.raises(TypeError, match=r"needs a breaker transport \(with \.stats\(\)\), got 42"):
        status_app(42)  # type: ignore[arg-type]
