"""Scenario 7: the Redis storage (shared state), a hook for ``benchmarks/redis_overhead.py``.

That module is written with the Redis storage backend. When it is there, ``redis-server`` is
installed and the ``redis`` client imports, this scenario starts a throw-away ``redis-server`` on
127.0.0.1 through it and folds its results in; otherwise it says which of those is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from typing import Any

MODULE = "benchmarks.redis_overhead"


def missing() -> str | None:
    """Why the scenario cannot run here, or None."""
    if importlib.util.find_spec(MODULE) is None:
        return f"{MODULE} is not there yet (it comes with the Redis storage backend)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if importlib.util.find_spec("redis") is None:
        return "the redis client is not installed (pip install redis)"
    return None


def run(budget: Any, quick: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "scenario": "redis_storage",
        "title": "7. Redis storage (shared state across processes)",
        "about": __doc__,
    }
    reason = missing()
    if reason is not None:
        result["skipped"] = reason
        return result
    module = importlib.import_module(MODULE)
    requests, repeats = (200, 3) if quick else (500, 5)
    with module.local_redis() as url:
        data = module.run(url, requests=requests, repeats=repeats)
    result["results"] = data
    report = getattr(module, "report", None)
    if callable(report):
        result["markdown"] = report(data)
    return result
