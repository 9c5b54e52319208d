"""The examples in examples/, run for real: each web app is served by granian on 127.0.0.1 against
a real flaky upstream on another loopback port, and the sync script runs as a user would run it.

The apps' breakers use a recovery timeout of 0.5 s (set through the environment), and the test
waits for recovery by polling with a deadline, never by sleeping for a fixed time.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .servers import FlakyServer

ROOT = Path(__file__).resolve().parent.parent
RECOVERY_TIMEOUT = 0.5


def require(*modules: str) -> None:
    """The example's framework and server are in the test extra: skip (locally) or fail (CI)."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def granian(interface: str, target: str, upstream: str, log: Path) -> Iterator[str]:
    """Serve ``target`` with granian (one worker) until the block ends; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "UPSTREAM_URL": upstream,
        "FAILURE_THRESHOLD": "2",
        "RECOVERY_TIMEOUT": str(RECOVERY_TIMEOUT),
        "NO_PROXY": "*",
    }
    command = [
        str(Path(sys.executable).parent / "granian"),
        *("--interface", interface, "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "1", "--runtime-threads", "1", "--loop", "asyncio", target),
    ]
    with log.open("wb") as out:
        # Its own session, so that a granian which does not stop is ended with all its workers.
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded: until it answers, it exits, or 30 s pass
            if process.poll() is not None:
                raise AssertionError(
                    f"granian exited with {process.returncode}:\n{log.read_text()}"
                )
            try:
                httpx.get(f"{url}/circuits", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"granian did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.parametrize(
    ("framework", "interface", "target"),
    [
        ("velithon", "rsgi", "examples.velithon_app:app"),
        ("fastapi", "asgi", "examples.fastapi_app:app"),
    ],
)
def test_the_app_answers_200_then_503_then_200_as_the_upstream_fails_and_recovers(
    framework: str, interface: str, target: str, server: FlakyServer, tmp_path: Path
) -> None:
    require(framework, "granian")
    with (
        granian(interface, target, server.url, tmp_path / "granian.log") as app,
        httpx.Client(base_url=app, timeout=5.0) as client,
    ):
        first = client.get("/external-data")
        assert (first.status_code, first.json()) == (200, {"data": "ok"})

        server.behaviour = "error"
        assert [client.get("/external-data").status_code for _ in range(2)] == [502, 502]
        opened = time.monotonic()
        rejected = client.get("/external-data")
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "1"  # 0.5 s, rounded up to whole seconds
        assert rejected.json() == {"error": "upstream unavailable", "circuit": server.url}
        assert client.get("/circuits").json() == {server.url: "open"}
        assert server.hits == 3  # the rejection did not reach the upstream

        server.behaviour = "ok"
        seen = []
        deadline = time.monotonic() + 10
        while (status := client.get("/external-data").status_code) != 200:
            seen.append(status)
            assert time.monotonic() < deadline, f"no recovery within 10 s: {seen}"
            time.sleep(0.02)  # polling interval, not a wait for state
        recovered = time.monotonic()
    assert set(seen) <= {503}
    assert recovered - opened >= RECOVERY_TIMEOUT - 0.1
    assert server.hits == 4  # exactly one probe reached the upstream, and it closed the circuit


def test_the_sync_script_fails_fast_once_the_circuit_opens(server: FlakyServer) -> None:
    server.behaviour = "error"
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "examples" / "sync_client.py"), f"{server.url}/data"),
            *("--requests", "4", "--failure-threshold", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "NO_PROXY": "*"},
    )
    assert result.stdout.splitlines() == [
        "1: 503",
        "2: 503",
        "3: circuit open, not sent; probe in 30s",
        "4: circuit open, not sent; probe in 30s",
        f"{server.url}: open, 0 ok, 2 failed, 2 rejected",
    ]
    assert server.hits == 2
