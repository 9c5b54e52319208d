"""``--plot FILE.png``: each circuit's state over time, under a strip showing its upstream's fault.

matplotlib (the ``demo`` extra) with the Agg backend: no display is needed, and importing this
module never opens a window.
"""

from __future__ import annotations

from pathlib import Path

from .._types import CircuitState
from .summary import DemoSummary

COLOURS = {
    CircuitState.CLOSED: "#2e9e44",
    CircuitState.HALF_OPEN: "#f0b429",
    CircuitState.OPEN: "#d64545",
}
FAULT_COLOUR = "#6b6b6b"


def write_plot(summary: DemoSummary, path: str | Path) -> Path:
    """Draw ``summary`` to ``path`` (PNG, or any format matplotlib knows by the suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    hosts = summary.hosts
    height = 1.3 + 0.55 * len(hosts)
    fig, ax = plt.subplots(figsize=(10, height), dpi=110)
    try:
        end = max(summary.elapsed, summary.planned)
        tick = end / 300  # the narrowest mark worth drawing
        for row, host in enumerate(reversed(hosts)):
            y = row * 1.0
            # The circuit's state: the thick bar. A failed probe's half-open moment lasts
            # milliseconds; it is drawn again on top, a few pixels wide, so it stays visible.
            for segment in host.timeline:
                ax.broken_barh(
                    [(segment.start, segment.end - segment.start)],
                    (y, 0.55),
                    facecolors=COLOURS[segment.state],
                    edgecolor="none",
                )
            blips = [
                (s.start, tick)
                for s in host.timeline
                if s.state is CircuitState.HALF_OPEN and s.end - s.start < tick
            ]
            if blips:
                ax.broken_barh(
                    blips, (y, 0.55), facecolors=COLOURS[CircuitState.HALF_OPEN], edgecolor="none"
                )
            # The upstream's fault: the thin strip above it.
            if host.fault is not None:
                start, stop = host.fault
                stop = end if stop is None else min(stop, end)
                ax.broken_barh([(start, stop - start)], (y + 0.62, 0.14), facecolors=FAULT_COLOUR)
        ax.set_yticks([row + 0.35 for row in range(len(hosts))])
        ax.set_yticklabels([h.name for h in reversed(hosts)])
        ax.set_xlim(0, end)
        ax.set_ylim(-0.2, len(hosts))
        ax.set_xlabel("seconds since the traffic started")
        ax.set_title(
            f"circuit state per upstream: {summary.rejected} of "
            f"{summary.sent + summary.rejected} requests failed fast",
            fontsize=10,
            loc="left",
            pad=22,
        )
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", length=0)
        legend = [Patch(color=COLOURS[s], label=s.value.replace("_", "-")) for s in COLOURS]
        legend.append(Patch(color=FAULT_COLOUR, label="upstream faulty"))
        ax.legend(
            handles=legend,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncol=len(legend),
            frameon=False,
            fontsize=9,
        )
        fig.tight_layout()
        target = Path(path)
        fig.savefig(target)
    finally:
        plt.close(fig)
    return target
