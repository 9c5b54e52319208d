"""Scripted inner transports and call drivers for the model-based tests.

A *script* says what the upstream does for one call (a status, an exception raised while sending,
an exception raised mid-body) and what the caller does with the response (read it, close it early,
keep it open). A call can be *held*: the inner transport parks it until the test releases it with
its script, so calls can be in flight while the clock moves and other calls come and go.

Three drivers run the same calls through a real breaker transport and a real httpx client:
asyncio and trio (through an anyio blocking portal, so a synchronous hypothesis machine can drive
an event loop that keeps running between steps) and sync (held calls in threads). Nothing here
sleeps: every wait is on an event the code under test sets, with a generous safety timeout.
"""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import httpx

from breaker_transport import AsyncCircuitBreakerTransport, CircuitBreakerTransport

from .helpers import _AsyncChunks, _SyncChunks

WAIT = 10.0  # a safety net only: every wait below ends as soon as the code under test acts


class Interrupt(BaseException):
    """A BaseException that is not cancellation (as KeyboardInterrupt is): always ignored."""


#: Far from the wall clock, so a Retry-After measured against it is predictable.
DATE_BASE = 1_700_000_000.0


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@dataclass(frozen=True)
class RetryAfter:
    """A Retry-After header a failing response carries, and the hint it must give (None: none).

    ``hint`` is ``math.inf`` for a date far in the future measured on the wall clock: whatever the
    wall clock says, the open period then ends at the policy's cap.
    """

    value: str
    date: str | None
    hint: float | None


@dataclass(frozen=True)
class Script:
    """What the upstream does for one call, and what the caller does with the response."""

    status: int = 200
    raise_: type[BaseException] | None = None  # raised by the inner transport instead of replying
    body_error: type[BaseException] | None = None  # raised after the first body chunk
    consume: str = "read"  # "read", "close_early" or "keep_open"
    preread: bool = False  # a response that comes back already read (as MockTransport's do)
    retry_after: RetryAfter | None = None
    verdict: str | None = None  # what the test classify= says: success/failure/ignored/raise/junk

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = self.retry_after.value
            if self.retry_after.date is not None:
                headers["date"] = self.retry_after.date
        if self.verdict is not None:
            headers["x-verdict"] = self.verdict
        return headers

    def exception(self, kind: type[BaseException]) -> BaseException:
        exc = kind("scripted") if kind is not Interrupt else Interrupt()
        exc.verdict = self.verdict  # type: ignore[attr-defined]
        return exc


def verdict_classifier(request: Any, response: Any, exc: BaseException | None) -> Any:
    """The ``classify=`` of the model tests: does what the script's ``verdict`` says."""
    from breaker_transport import Outcome

    verdict = getattr(exc, "verdict", None) if exc is not None else None
    if exc is None and response is not None:
        verdict = response.headers.get("x-verdict")
    if verdict == "raise":
        raise RuntimeError("a broken classifier")
    if verdict == "junk":
        return 42
    return None if verdict is None else Outcome(verdict)


@dataclass
class Result:
    """What the caller got: a response (status, body, extension) or an exception (the object)."""

    status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extension: Any = None
    exc: BaseException | None = None
    cancelled: bool = False


class Hold:
    """A call parked in the inner transport until ``release``."""

    def __init__(self, release: Any) -> None:
        self.entered = threading.Event()  # the call reached the inner transport, or was rejected
        self.release = release  # an anyio.Event (async) or threading.Event (sync)
        self.script: Script | None = None
        self.raised: BaseException | None = None


class ScriptedInner(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Answers each call (header ``x-call``) from its script; parks held calls until released."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.holds: dict[str, Hold] = {}
        self.seen: list[str] = []
        self.raised: dict[str, BaseException] = {}

    def _respond(self, request: httpx.Request, script: Script, sync: bool) -> httpx.Response:
        cid = request.headers["x-call"]
        if script.raise_ is not None:
            exc = script.exception(script.raise_)
            self.raised[cid] = exc
            raise exc
        body = f"body:{cid}".encode()
        if script.preread:
            return httpx.Response(script.status, headers=script.headers(), content=body)
        chunks: list[bytes | BaseException] = [body]
        if script.body_error is not None:
            exc = script.exception(script.body_error)
            self.raised[cid] = exc
            chunks.append(exc)
        stream: Any = _SyncChunks(chunks, []) if sync else _AsyncChunks(chunks, [])
        return httpx.Response(script.status, headers=script.headers(), stream=stream)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        cid = request.headers["x-call"]
        self.seen.append(cid)
        hold = self.holds.get(cid)
        if hold is None:
            return self._respond(request, self.scripts.pop(cid), sync=False)
        hold.entered.set()
        await hold.release.wait()
        assert hold.script is not None
        return self._respond(request, hold.script, sync=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        cid = request.headers["x-call"]
        self.seen.append(cid)
        hold = self.holds.get(cid)
        if hold is None:
            return self._respond(request, self.scripts.pop(cid), sync=True)
        hold.entered.set()
        if not hold.release.wait(WAIT):
            raise AssertionError(f"held call {cid} was never released")
        assert hold.script is not None
        return self._respond(request, hold.script, sync=True)


def _describe_response(response: httpx.Response, body: bytes | None) -> Result:
    return Result(
        status=response.status_code,
        body=body,
        headers=dict(response.headers),
        extension=response.extensions.get("circuit_breaker"),
    )


class Held:
    """A call the driver started and holds; the machine releases, cancels or closes it."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.result: Result | None = None
        self.headers_back = threading.Event()  # headers returned (stream kept open) or finished
        self.done = threading.Event()
        self.close: Any = None  # releases a kept-open stream
        self.scope: Any = None  # async: the call's cancel scope
        self.response: Any = None


class AsyncDriver:
    """Drives an ``AsyncCircuitBreakerTransport`` through ``httpx.AsyncClient`` on a portal."""

    can_cancel = True

    def __init__(self, backend: str, make: Callable[[ScriptedInner], Any]) -> None:
        self.inner = ScriptedInner()
        self.transport: AsyncCircuitBreakerTransport = make(self.inner)
        self._portal_cm = anyio.from_thread.start_blocking_portal(backend)
        self.portal = self._portal_cm.__enter__()
        self.client = httpx.AsyncClient(transport=self.transport)
        self.held: dict[str, Held] = {}
        self._futures: list[Future[Any]] = []

    def _request(self, url: str, cid: str, extensions: dict[str, Any] | None) -> httpx.Request:
        return self.client.build_request(
            "GET", url, headers={"x-call": cid}, extensions=extensions or {}
        )

    async def _consume(
        self, response: httpx.Response, script: Script | None, held: Held | None
    ) -> Result:
        consume = script.consume if script is not None else "read"
        if consume == "keep_open" and held is not None:
            held.response = response
            held.result = _describe_response(response, None)
            held.headers_back.set()
            await held.close.wait()
            await response.aclose()
            return held.result
        try:
            if consume == "close_early":
                return _describe_response(response, None)
            body = await response.aread()
            return _describe_response(response, body)
        except (Exception, Interrupt) as exc:
            return Result(exc=exc, status=response.status_code)
        finally:
            await response.aclose()

    async def _send(
        self, request: httpx.Request, script: Script | None, held: Held | None
    ) -> Result:
        try:
            response = await self.client.send(request, stream=True)
        except (Exception, Interrupt) as exc:
            return Result(exc=exc)
        return await self._consume(response, script, held)

    def call(
        self, url: str, cid: str, script: Script, extensions: dict[str, Any] | None = None
    ) -> Result:
        self.inner.scripts[cid] = script
        request = self._request(url, cid, extensions)
        result: Result = self.portal.call(self._send, request, script, None)
        self.inner.scripts.pop(cid, None)
        return result

    async def _run_held(self, held: Held, request: httpx.Request) -> None:
        with anyio.CancelScope() as scope:
            held.scope = scope
            hold = self.inner.holds[held.cid]
            try:
                response = await self.client.send(request, stream=True)
            except (Exception, Interrupt) as exc:
                result = Result(exc=exc)
            else:
                result = await self._consume(response, hold.script, held)
            held.result = result
        if scope.cancelled_caught:
            held.result = Result(cancelled=True)
        # done first: start_held reads "entered but not done" as "parked in the inner transport"
        held.done.set()
        held.headers_back.set()
        hold.entered.set()

    def start_held(self, url: str, cid: str) -> Held:
        held = Held(cid)
        hold = Hold(self.portal.call(anyio.Event))
        held.close = self.portal.call(anyio.Event)
        self.inner.holds[cid] = hold
        self.held[cid] = held
        self._futures.append(
            self.portal.start_task_soon(self._run_held, held, self._request(url, cid, None))
        )
        if not hold.entered.wait(WAIT):
            raise AssertionError(f"held call {cid} neither reached the inner transport nor ended")
        return held

    def release(self, held: Held, script: Script) -> None:
        hold = self.inner.holds[held.cid]
        hold.script = script
        self.portal.call(hold.release.set)
        if not held.headers_back.wait(WAIT):
            raise AssertionError(f"released call {held.cid} did not come back")

    def cancel(self, held: Held) -> None:
        self.portal.call(held.scope.cancel)
        if not held.done.wait(WAIT):
            raise AssertionError(f"cancelled call {held.cid} did not end")

    def close_stream(self, held: Held) -> None:
        self.portal.call(held.close.set)
        if not held.done.wait(WAIT):
            raise AssertionError(f"closed stream {held.cid} did not end")

    def shutdown(self) -> None:
        for held in self.held.values():
            if not held.done.is_set():
                self.portal.call(held.scope.cancel)
        for future in self._futures:
            future.result(WAIT)
        self.portal.call(self.client.aclose)
        self._portal_cm.__exit__(None, None, None)


class SyncDriver:
    """Drives a ``CircuitBreakerTransport`` through ``httpx.Client``; held calls run in threads."""

    can_cancel = False

    def __init__(self, make: Callable[[ScriptedInner], Any]) -> None:
        self.inner = ScriptedInner()
        self.transport: CircuitBreakerTransport = make(self.inner)
        self.client = httpx.Client(transport=self.transport)
        self.held: dict[str, Held] = {}
        self._threads: list[threading.Thread] = []

    def _request(self, url: str, cid: str, extensions: dict[str, Any] | None) -> httpx.Request:
        return self.client.build_request(
            "GET", url, headers={"x-call": cid}, extensions=extensions or {}
        )

    def _consume(
        self, response: httpx.Response, script: Script | None, held: Held | None
    ) -> Result:
        consume = script.consume if script is not None else "read"
        if consume == "keep_open" and held is not None:
            held.response = response
            held.result = _describe_response(response, None)
            held.headers_back.set()
            if not held.close.wait(WAIT):
                raise AssertionError(f"kept-open stream {held.cid} was never closed")
            response.close()
            return held.result
        try:
            if consume == "close_early":
                return _describe_response(response, None)
            body = response.read()
            return _describe_response(response, body)
        except (Exception, Interrupt) as exc:
            return Result(exc=exc, status=response.status_code)
        finally:
            response.close()

    def _send(self, request: httpx.Request, script: Script | None, held: Held | None) -> Result:
        try:
            response = self.client.send(request, stream=True)
        except (Exception, Interrupt) as exc:
            return Result(exc=exc)
        hold = self.inner.holds.get(request.headers["x-call"])
        if hold is not None:
            script = hold.script
        return self._consume(response, script, held)

    def call(
        self, url: str, cid: str, script: Script, extensions: dict[str, Any] | None = None
    ) -> Result:
        self.inner.scripts[cid] = script
        result = self._send(self._request(url, cid, extensions), script, None)
        self.inner.scripts.pop(cid, None)
        return result

    def _run_held(self, held: Held, request: httpx.Request) -> None:
        hold = self.inner.holds[held.cid]
        try:
            held.result = self._send(request, None, held)
        finally:
            held.done.set()
            held.headers_back.set()
            hold.entered.set()

    def start_held(self, url: str, cid: str) -> Held:
        held = Held(cid)
        hold = Hold(threading.Event())
        held.close = threading.Event()
        self.inner.holds[cid] = hold
        self.held[cid] = held
        thread = threading.Thread(
            target=self._run_held, args=(held, self._request(url, cid, None)), daemon=True
        )
        self._threads.append(thread)
        thread.start()
        if not hold.entered.wait(WAIT):
            raise AssertionError(f"held call {cid} neither reached the inner transport nor ended")
        return held

    def release(self, held: Held, script: Script) -> None:
        hold = self.inner.holds[held.cid]
        hold.script = script
        hold.release.set()
        if not held.headers_back.wait(WAIT):
            raise AssertionError(f"released call {held.cid} did not come back")

    def cancel(self, held: Held) -> None:  # pragma: no cover - the sync driver cannot cancel
        raise NotImplementedError

    def close_stream(self, held: Held) -> None:
        held.close.set()
        if not held.done.wait(WAIT):
            raise AssertionError(f"closed stream {held.cid} did not end")

    def shutdown(self) -> None:
        for held in self.held.values():
            hold = self.inner.holds[held.cid]
            if hold.script is None:
                hold.script = Script(raise_=Interrupt)
                hold.release.set()
            held.close.set()
        for thread in self._threads:
            thread.join(WAIT)
        self.client.close()
