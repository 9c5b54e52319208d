"""The demo end to end: real upstreams on 127.0.0.1, a real transport, real time (a short run).

The run is one module-scoped fixture (about 4 s); the assertions read its summary, a data
structure, never the text. The thresholds asserted on are the script's, with wide margins, so a
loaded machine does not flip them.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rich")
pytest.importorskip("uvicorn")

from rich.console import Console

from breaker_transport import BreakerPolicy, CircuitState
from breaker_transport.demo import DemoOptions, DemoSummary, parse_policy, run_demo
from breaker_transport.demo.live import make_console, summary_renderable
from breaker_transport.demo.policies import describe
from breaker_transport.demo.upstreams import retry_after_seconds

DURATION = 4.0


@pytest.fixture(scope="module")
def run() -> tuple[DemoSummary, str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    options = DemoOptions(duration=DURATION, concurrency=8, status=True)
    summary = asyncio.run(run_demo(options, console))
    return summary, out.getvalue()


def test_the_healthy_host_never_opens(run: tuple[DemoSummary, str]) -> None:
    healthy = run[0].host("healthy")
    assert not healthy.ever_opened
    assert healthy.failures == 0 and healthy.rejected == 0
    assert healthy.final_state is CircuitState.CLOSED
    assert healthy.sent > 20  # it really got traffic


def test_the_failing_host_opens_and_closes_again_once_it_recovers(
    run: tuple[DemoSummary, str],
) -> None:
    flaky = run[0].host("flaky")
    assert flaky.fault == pytest.approx((0.15 * DURATION, 0.5 * DURATION))
    assert flaky.ever_opened
    assert flaky.failures >= 3  # the threshold's worth reached the upstream
    assert flaky.rejected > 0  # and then the breaker failed fast instead
    assert flaky.time_to_detect is not None and flaky.time_to_detect >= 0
    assert flaky.recovered, flaky.transitions
    assert flaky.time_to_recover is not None and flaky.time_to_recover >= 0
    assert flaky.final_state is CircuitState.CLOSED
    # It opened before the fault ended and closed only after it ended.
    first_open = next(t for t in flaky.transitions if t.new is CircuitState.OPEN)
    assert first_open.t < 0.5 * DURATION
    last = flaky.transitions[-1]
    assert last.new is CircuitState.CLOSED and last.t >= 0.5 * DURATION


def test_the_refusing_host_opens_and_stays_failing_fast(run: tuple[DemoSummary, str]) -> None:
    refused = run[0].host("refused")
    assert refused.ever_opened
    assert refused.successes == 0
    assert refused.rejected > refused.failures
    assert refused.final_state is not CircuitState.CLOSED
    assert run[0].errors.get("ConnectError", 0) == refused.failures


def test_the_slow_host_trips_the_slow_call_rule(run: tuple[DemoSummary, str]) -> None:
    slow = run[0].host("slow")
    assert slow.ever_opened
    assert any("slow" in t.reason for t in slow.transitions if t.new is CircuitState.OPEN)
    assert slow.failures == 0  # slow, not failing: 200s that took too long


def test_retry_after_lengthens_the_open_period(run: tuple[DemoSummary, str]) -> None:
    summary = run[0]
    maintenance = summary.host("maintenance")
    assert maintenance.ever_opened
    first = next(s for s in maintenance.timeline if s.state is CircuitState.OPEN)
    policy = summary.policy
    asked = min(float(retry_after_seconds(DURATION)), policy.effective_max_recovery_timeout)
    assert asked > policy.recovery_timeout  # the script makes the header matter
    assert first.end - first.start >= asked - 0.01


def test_the_summary_adds_up(run: tuple[DemoSummary, str]) -> None:
    summary = run[0]
    assert summary.elapsed >= DURATION
    assert summary.elapsed < DURATION + 5  # it ended by itself
    for host in summary.hosts:
        assert host.sent == host.successes + host.failures + host.ignored
        assert host.timeline[0].start == 0.0
        assert all(a.end == b.start for a, b in itertools.pairwise(host.timeline))
    assert summary.rejected == sum(h.rejected for h in summary.hosts) > 0
    assert summary.wait_avoided > 0


def test_transitions_are_printed_as_plain_lines(run: tuple[DemoSummary, str]) -> None:
    text = run[1]
    assert "\x1b" not in text
    assert "flaky" in text and "closed -> open" in text and "half-open -> closed" in text
    assert "consecutive failures; probe in" in text
    assert "status page: http://127.0.0.1:" in text  # --status served it for the run


def test_without_the_demo_extra_the_cli_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from breaker_transport.__main__ import main\n"
        "sys.exit(main(['demo']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert "pip install 'breaker-transport[demo]'" in done.stderr


def test_the_rendered_summary_is_plain_text_off_a_terminal(run: tuple[DemoSummary, str]) -> None:
    out = io.StringIO()
    console = make_console(out)  # StringIO is not a tty
    console.print(summary_renderable(run[0]))
    text = out.getvalue()
    assert "\x1b" not in text
    assert "saved" in text and "failed fast" in text and "maintenance" in text


def test_the_plot_is_a_png(run: tuple[DemoSummary, str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from breaker_transport.demo.plot import write_plot

    target = write_plot(run[0], tmp_path / "timeline.png")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5_000


def test_policy_presets_and_overrides() -> None:
    assert parse_policy("consecutive", 20).failure_threshold == 3
    rate = parse_policy("rate", 20)
    assert rate.failure_threshold is None and rate.failure_rate_threshold == 0.5
    tuned = parse_policy("rate, failure_rate_threshold=0.3, recovery_timeout=2", 20)
    assert tuned.failure_rate_threshold == 0.3 and tuned.recovery_timeout == 2
    assert parse_policy("failure_threshold=7", 20).failure_threshold == 7
    assert "failure_threshold=3" in describe(parse_policy("consecutive", 20))
    assert describe(BreakerPolicy()) == "the defaults"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "unknown policy preset 'bogus'"),
        ("consecutive,nope=1", "'nope=1' is not field=value"),
        ("failure_threshold=three", "must be a Python literal"),
        ("failure_threshold=0", "failure_threshold must be between 1"),
        ("failure_threshold=None,slow_call_duration=None", "no trip rule"),
    ],
)
def test_bad_policy_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policy(spec, 20)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"duration": 0}, "duration must be in"),
        ({"concurrency": 0}, "concurrency must be between"),
        ({"pace": 0}, "pace must be between"),
    ],
)
def test_bad_options_say_what_is_wrong(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DemoOptions(**fields)  # type: ignore[arg-type]


def _script() -> list[str]:
    found = shutil.which("breaker-transport", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "breaker_transport"]


def test_the_console_script_runs_the_demo_piped_without_control_codes(tmp_path: Path) -> None:
    plot = tmp_path / "t.png"
    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "100"}  # must not force escapes on a pipe
    done = subprocess.run(
        [*_script(), "demo", "--duration", "2", "--concurrency", "4", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "summary" in done.stdout and "failed fast" in done.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_python_dash_m_gives_usage_and_rejects_bad_options() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "breaker_transport", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert helped.returncode == 0 and "--duration" in helped.stdout and "--plot" in helped.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "breaker_transport", "demo", "--policy", "bogus"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "unknown policy preset 'bogus'" in bad.stderr
