"""FastAPI: the shared client lives in the lifespan and reaches endpoints through a dependency.

``GET /external-data`` returns the upstream's data, or 503 with ``Retry-After`` at once while
the upstream's circuit is open. ``GET /circuits`` shows the breaker's state.

    UPSTREAM_URL=http://127.0.0.1:8001 granian --interface asgi examples.fastapi_app:app
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

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


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # over_http: TLS, HTTP/2, pool limits and proxies go to the breaker's inner transport.
    breaker = AsyncCircuitBreakerTransport.over_http(policy=POLICY)
    async with async_breaker_client(breaker, base_url=UPSTREAM_URL, timeout=5.0) as client:
        yield {"upstream": client, "breaker": breaker}  # the lifespan state, per request


def upstream(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.state.upstream
    return client


Upstream = Annotated[httpx.AsyncClient, Depends(upstream)]
app = FastAPI(lifespan=lifespan)


@app.get("/external-data")
async def external_data(client: Upstream) -> JSONResponse:
    try:
        response = await client.get("/data")
    except CircuitOpenError as error:  # known down: fail fast
        seconds = error.retry_after
        headers = {"Retry-After": str(max(1, math.ceil(seconds)))} if math.isfinite(seconds) else {}
        body = {"error": "upstream unavailable", "circuit": error.key}
        return JSONResponse(body, status_code=503, headers=headers)
    except httpx.TransportError as error:  # counted by the breaker; a 502 for our caller
        return JSONResponse({"error": type(error).__name__}, status_code=502)
    if response.is_server_error:
        return JSONResponse({"error": f"upstream said {response.status_code}"}, status_code=502)
    return JSONResponse({"data": response.text})


@app.get("/circuits")
async def circuits(request: Request) -> dict[str, str]:
    breaker: AsyncCircuitBreakerTransport = request.state.breaker
    return {key: stats.state.value for key, stats in breaker.stats().items()}
