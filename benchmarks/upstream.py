"""The loopback upstream of scenario 4: a tiny ASGI app served by uvicorn on 127.0.0.1.

    python -m benchmarks.upstream --port 8123 --lifetime 300

``/ok`` answers 200 with a small JSON body, ``/fail`` 503 at once, ``/slowfail`` 503 after 5 ms
(a struggling upstream). The process ends by itself after ``--lifetime`` seconds, whatever the
parent does, so a crashed benchmark never leaves it behind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from typing import Any

BODY = b'{"status": "ok", "items": [1, 2, 3]}'
SLOW_FAIL_SECONDS = 0.005


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/ok":
        status, body = 200, BODY
    elif path == "/fail":
        status, body = 503, b"unavailable"
    elif path == "/slowfail":
        await asyncio.sleep(SLOW_FAIL_SECONDS)
        status, body = 503, b"unavailable"
    else:
        status, body = 404, b"not found"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=300.0)
    args = parser.parse_args(argv)

    # The bound that holds even if the parent dies without stopping us.
    timer = threading.Timer(args.lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()

    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http="h11",
        loop="asyncio",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
