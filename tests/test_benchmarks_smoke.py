"""The benchmark suite works: one scenario in a tiny, bounded configuration, and its report.

No timing is asserted (speed belongs to ``python -m benchmarks``, not to tests): only that every
competitor ran over the same inner transport, that the breakers really rejected, and that the
results come out as JSON and markdown. Skipped without the ``bench`` extra (the peers it compares).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

for module in ("pybreaker", "purgatory", "aiobreaker", "circuitbreaker"):
    pytest.importorskip(module, reason='needs the bench extra: pip install -e ".[bench]"')
if sys.version_info >= (3, 11):
    pytest.importorskip("interlock", reason='needs the bench extra: pip install -e ".[bench]"')

from benchmarks import open_path, report  # noqa: E402
from benchmarks.competitors import by_name  # noqa: E402
from benchmarks.measure import Budget  # noqa: E402

TINY = Budget(rounds=2, block_seconds=0.0005, max_calls=20)


def test_open_path_scenario_runs_every_competitor_and_writes_its_report(tmp_path: Path) -> None:
    result = open_path.run(TINY, quick=True)  # also checks that each breaker opened

    (variant,) = result["variants"]
    assert [row["competitor"] for row in variant["rows"]] == [c.name for c in by_name()]
    assert variant["rounds"] == 2 and 1 <= variant["calls"] <= 20
    for row in variant["rows"]:
        assert row["us_per_call"] > 0 and len(row["us_per_call_iqr"]) == 2
        assert row["x_raw"] > 0

    summary = report.write({"open_path": result}, report.environment(quick=True), tmp_path)
    written = json.loads((tmp_path / "open_path.json").read_text())
    assert written["environment"]["mode"] == "quick"
    assert written["variants"][0]["rows"] == variant["rows"]
    text = summary.read_text()
    assert "## Targets" in text and "| **ours** |" in text
    assert any("fast-fail" in row["target"] for row in report.targets({"open_path": result}))
