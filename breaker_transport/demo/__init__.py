"""``python -m breaker_transport demo``: the breaker against real, scripted, flaky upstreams.

Needs the ``demo`` extra (rich, uvicorn, matplotlib). Use it from code too::

    import asyncio
    from breaker_transport.demo import DemoOptions, run_demo

    summary = asyncio.run(run_demo(DemoOptions(duration=5)))
    assert summary.host("flaky").recovered

Modules: ``upstreams`` (the servers and their scripts), ``traffic`` (the workers), ``policies``
(presets for ``--policy``), ``summary`` (what happened, as data), ``live`` (the table),
``plot`` (``--plot``), ``run`` (all of it together).
"""

from .policies import PRESETS, parse_policy
from .run import DemoOptions, run_demo
from .summary import DemoSummary, HostSummary, Segment, Transition

__all__ = [
    "PRESETS",
    "DemoOptions",
    "DemoSummary",
    "HostSummary",
    "Segment",
    "Transition",
    "parse_policy",
    "run_demo",
]
