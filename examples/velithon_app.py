"""Velithon: one shared ``httpx.AsyncClient``, provided by the DI container, behind a breaker.

``GET /external-data`` returns the upstream's data; while the upstream's circuit is open it
answers 503 with ``Retry-After`` at once, without calling the upstream. ``GET /circuits`` shows
the breaker's state.

    UPSTREAM_URL=http://127.0.0.1:8001 granian --interface rsgi examples.velithon_app:app

This replaces a hand-written ``CircuitBreakerService`` singleton called around each request: the
breaker is the client's transport, so every request the shared client sends is guarded per host,
and the endpoint only maps ``CircuitOpenError`` to a 503.
"""

from __future__ import annotations

import math
import os

import httpx
from velithon import Velithon
from velithon.di import Provide, ServiceContainer, SingletonProvider, inject
from velithon.responses import JSONResponse

from breaker_transport import (
    AsyncCircuitBreakerTransport,
    BreakerPolicy,
    CircuitOpenError,
    async_breaker_client,
)

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8001")
POLICY = BreakerPolicy(
    failure_threshold=int(os.environ.get("FAILURE_THRESHOLD", "3")),
    recovery_timeout=float(os.environ.get("RECOVERY_TIMEOUT", "30")),
)


# One breaker per worker process: it holds the per-host circuits. over_http: TLS, HTTP/2, pool
# limits and proxies are set here, not on the client (a client given transport= ignores its own).
breaker = AsyncCircuitBreakerTransport.over_http(policy=POLICY)


class Services(ServiceContainer):
    # One shared client; every request it sends (mounts and proxies included) goes through breaker.
    upstream = SingletonProvider(
        async_breaker_client, breaker=breaker, base_url=UPSTREAM_URL, timeout=5.0
    )


services = Services()
app = Velithon()
app.register_container(services)


def unavailable(error: CircuitOpenError) -> JSONResponse:
    seconds = error.retry_after
    headers = {"Retry-After": str(max(1, math.ceil(seconds)))} if math.isfinite(seconds) else {}
    body = {"error": "upstream unavailable", "circuit": error.key}
    return JSONResponse(body, status_code=503, headers=headers)


@app.get("/external-data")
@inject
async def external_data(client: httpx.AsyncClient = Provide[services.upstream]) -> JSONResponse:
    try:
        response = await client.get("/data")
    except CircuitOpenError as error:  # known down: fail fast
        return unavailable(error)
    except httpx.TransportError as error:  # counted by the breaker; a 502 for our caller
        return JSONResponse({"error": type(error).__name__}, status_code=502)
    if response.is_server_error:
        return JSONResponse({"error": f"upstream said {response.status_code}"}, status_code=502)
    return JSONResponse({"data": response.text})


@app.get("/circuits")
async def circuits() -> JSONResponse:
    return JSONResponse({key: s.state.value for key, s in breaker.stats().items()})


@app.on_shutdown()
async def close_client() -> None:
    client = await services.resolve(Provide[services.upstream], services)
    await client.aclose()  # closes the breaker and its connection pool
