"""``status_app(transport)``: every circuit's stats as JSON and as a self-refreshing HTML page.

A plain ASGI 3 application with no framework dependency: serve it on its own with any ASGI server,
or mount it in your web app (Starlette ``Mount("/breakers", app=status_app(t))``, FastAPI
``app.mount(...)``, Django Channels, ...). Paths are relative to where it is mounted:

- ``GET /``      HTML: one row per circuit, state colours, time to the next probe; refreshes itself.
                 A client that asks for ``application/json`` (and not HTML) gets the JSON instead.
- ``GET /json``  JSON: ``{"status", "time", "counts", "circuits": {key: {...}}}``.

``status`` is ``"ok"`` when every circuit is closed, else ``"degraded"``. The JSON answers 200
either way unless ``fail_when_open=True``, which makes it answer 503 while any circuit is open:
only use that for a readiness probe when taking the instance out of rotation actually helps, since
every replica calling the same dead upstream goes unready at once (resilience4j's health indicator
makes the same choice: it does not fail health by default).

In the JSON, ``retry_after`` is the seconds until a probe may be sent, or null when none is
scheduled: closed, or ``forced_open`` (held open until ``reset``; JSON has no infinity).
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

from ._types import CircuitState, CircuitStats

__all__ = ["status_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ORDER = {CircuitState.OPEN: 0, CircuitState.HALF_OPEN: 1, CircuitState.CLOSED: 2}
_COLOURS = {
    CircuitState.CLOSED: ("#1f7a34", "#e3f4e6"),
    CircuitState.HALF_OPEN: ("#8a5a00", "#fff2cc"),
    CircuitState.OPEN: ("#a61b1b", "#fde2e2"),
}


class _HasStats(Protocol):
    def stats(self) -> Mapping[str, CircuitStats]: ...


def _jsonable(stats: CircuitStats) -> dict[str, Any]:
    retry = stats.retry_after
    return {
        "state": stats.state.value,
        "consecutive_failures": stats.consecutive_failures,
        "successes": stats.successes,
        "failures": stats.failures,
        "ignored": stats.ignored,
        "rejections": stats.rejections,
        "in_flight": stats.in_flight,
        "retry_after": None if retry is None or math.isinf(retry) else round(retry, 3),
        "forced_open": stats.forced_open,
        "mode": stats.mode.value,
        "window_calls": stats.window_calls,
        "failure_rate": stats.failure_rate,
        "slow_call_rate": stats.slow_call_rate,
        "generation": stats.generation,
    }


def _counts(snapshot: Mapping[str, CircuitStats]) -> dict[str, int]:
    counts = {"closed": 0, "half_open": 0, "open": 0}
    for stats in snapshot.values():
        counts[stats.state.value] += 1
    return counts


def status_document(snapshot: Mapping[str, CircuitStats]) -> dict[str, Any]:
    """The JSON document for one ``transport.stats()`` snapshot."""
    counts = _counts(snapshot)
    degraded = counts["open"] or counts["half_open"]
    return {
        "status": "degraded" if degraded else "ok",
        "time": time.time(),
        "counts": counts,
        "circuits": {key: _jsonable(stats) for key, stats in sorted(snapshot.items())},
    }


def _next_probe(stats: CircuitStats) -> str:
    retry = stats.retry_after
    if retry is None:
        return ""
    if math.isinf(retry):
        return "forced open (until reset)"
    if stats.state is CircuitState.HALF_OPEN:
        return "probing now"
    return f"in {retry:.1f} s"


def status_page(
    snapshot: Mapping[str, CircuitStats],
    *,
    title: str,
    refresh: float,
    max_closed_rows: int,
    json_href: str = "json",
) -> str:
    """The HTML page for one snapshot. Every key is escaped: custom keys may hold anything."""
    counts = _counts(snapshot)
    link = html.escape(json_href, quote=True)
    ordered = sorted(snapshot.items(), key=lambda item: (_ORDER[item[1].state], item[0]))
    rows = []
    hidden = 0
    closed_shown = 0
    for key, stats in ordered:
        if stats.state is CircuitState.CLOSED:
            if closed_shown >= max_closed_rows:
                hidden += 1
                continue
            closed_shown += 1
        ink, paper = _COLOURS[stats.state]
        rate = "" if stats.failure_rate is None else f"{stats.failure_rate:.0%}"
        rows.append(
            f'<tr class="{stats.state.value}" style="background:{paper}">'
            f"<td>{html.escape(key)}</td>"
            f'<td><b style="color:{ink}">{stats.state.value.replace("_", "-")}</b></td>'
            f"<td>{_next_probe(stats)}</td>"
            f"<td>{stats.consecutive_failures}</td><td>{rate}</td>"
            f"<td>{stats.successes}</td><td>{stats.failures}</td><td>{stats.rejections}</td>"
            f"<td>{stats.in_flight}</td><td>{stats.mode.value}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="10">no circuits yet: no request has gone out</td></tr>')
    more = (
        f'<p>and {hidden} more closed circuits: see <a href="{link}">json</a>.</p>'
        if hidden
        else ""
    )
    summary = ", ".join(f"{n} {state.replace('_', '-')}" for state, n in counts.items())
    name = html.escape(title)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh:g}">
<title>{name}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: .3em .8em; text-align: left; border-bottom: 1px solid #ddd; }}
th {{ background: #f4f4f4; }}
td:nth-child(n+4) {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>{name}</h1>
<p>{len(snapshot)} circuits: {summary}. Refreshes every {refresh:g} s
(<a href="{link}">json</a>).</p>
<table><thead><tr><th>circuit</th><th>state</th><th>next probe</th><th>consecutive failures</th>
<th>failure rate</th><th>successes</th><th>failures</th><th>rejections</th><th>in flight</th>
<th>mode</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{more}
</body></html>
"""


def _route(scope: Scope) -> str:
    """The path below the mount point (frameworks keep the full path and set root_path)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.rstrip("/") or "/"


def _wants_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"accept":
            accept = value.decode("latin-1").lower()
            return "application/json" in accept and "text/html" not in accept
    return False


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    head: bool,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def status_app(
    transport: _HasStats,
    *,
    title: str = "circuit breakers",
    refresh: float = 2.0,
    fail_when_open: bool = False,
    max_closed_rows: int = 200,
) -> ASGIApp:
    """An ASGI app serving ``transport.stats()`` as HTML (``/``) and JSON (``/json``).

    ``refresh`` is the page's self-refresh period in seconds; ``fail_when_open=True`` makes the
    JSON answer 503 while any circuit is open (see the module docstring before using it as a
    readiness probe); ``max_closed_rows`` caps the closed circuits listed in the HTML (open and
    half-open ones are always listed; the JSON always has every circuit).
    """
    if not callable(getattr(transport, "stats", None)):
        raise TypeError(
            f"status_app needs a breaker transport (with .stats()), got {transport!r} "
            f"({type(transport).__name__})"
        )
    if (
        isinstance(refresh, bool)
        or not isinstance(refresh, (int, float))
        or not math.isfinite(refresh)
        or refresh <= 0
    ):
        raise ValueError(f"status_app(refresh=) must be a number of seconds > 0, got {refresh!r}")
    if not isinstance(fail_when_open, bool):
        raise TypeError(f"status_app(fail_when_open=) must be a bool, got {fail_when_open!r}")
    if isinstance(max_closed_rows, bool) or not isinstance(max_closed_rows, int):
        raise TypeError(f"status_app(max_closed_rows=) must be an int, got {max_closed_rows!r}")
    if max_closed_rows < 0:
        raise ValueError(f"status_app(max_closed_rows=) must be >= 0, got {max_closed_rows!r}")
    if not isinstance(title, str):
        raise TypeError(f"status_app(title=) must be a str, got {title!r}")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            raise RuntimeError(f"status_app serves HTTP only, not {kind!r}")
        method = scope.get("method", "GET")
        head = method == "HEAD"
        route = _route(scope)
        if route not in ("/", "/json"):
            await _respond(send, 404, b"not found: try / or /json\n", "text/plain", head)
            return
        if method not in ("GET", "HEAD"):
            allow = ((b"allow", b"GET, HEAD"),)
            await _respond(send, 405, b"method not allowed\n", "text/plain", head, allow)
            return
        snapshot = transport.stats()
        if route == "/json" or _wants_json(scope):
            document = status_document(snapshot)
            failing = fail_when_open and document["counts"]["open"] > 0
            body = json.dumps(document, allow_nan=False).encode()
            await _respond(send, 503 if failing else 200, body, "application/json", head)
            return
        page = status_page(
            snapshot,
            title=title,
            refresh=refresh,
            max_closed_rows=max_closed_rows,
            json_href=scope.get("root_path", "") + "/json",
        )
        await _respond(send, 200, page.encode(), "text/html; charset=utf-8", head)

    return app
