"""Results as files: JSON and markdown per scenario, a summary with the targets, a chart."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "interlock-cb",
    "pybreaker",
    "purgatory",
    "aiobreaker",
    "circuitbreaker",
    "uvicorn",
)


def environment(quick: bool) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "mode": "quick" if quick else "full",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "commit": commit or None,
        "packages": versions,
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _iqr(row: dict[str, Any], field: str, digits: int = 2) -> str:
    spread = row.get(field + "_iqr")
    if not spread:
        return ""
    return f" ({spread[0]:.{digits}f} … {spread[1]:.{digits}f})"


def variant_table(variant: dict[str, Any]) -> str:
    lines = [
        f"**{variant['name']}** — {variant['calls']:,} calls per block, {variant['rounds']} rounds",
        "",
        "| competitor | µs per request | added over raw, µs (IQR) | x raw | x passthrough |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in variant["rows"]:
        name = (
            f"**{row['competitor']}**"
            if row["competitor"].startswith("ours")
            else row["competitor"]
        )
        lines.append(
            f"| {name} | {_fmt(row.get('us_per_call'))} | "
            f"{row.get('added_us', 0):+.2f}{_iqr(row, 'added_us')} | "
            f"{_fmt(row.get('x_raw'), 3)} | {_fmt(row.get('x_passthrough'), 3)} |"
        )
    return "\n".join(lines)


def scenario_markdown(result: dict[str, Any]) -> str:
    parts = [f"## {result['title']}", ""]
    about = (result.get("about") or "").strip()
    if about:
        parts += [about, ""]
    if "skipped" in result:
        parts += [f"Skipped: {result['skipped']}.", ""]
        return "\n".join(parts)
    for variant in result.get("variants", []):
        parts += [variant_table(variant), ""]
    if "memory" in result:
        hosts = result["memory"]["hosts"]
        parts += [
            "**Memory kept per host** (tracemalloc, bytes)",
            "",
            "| competitor | " + " | ".join(f"{h:,} hosts" for h in hosts) + " |",
            "|---|" + "---:|" * len(hosts),
        ]
        for row in result["memory"]["rows"]:
            cells = " | ".join(_fmt(row.get(f"bytes_per_host_{h}"), 0) for h in hosts)
            parts.append(f"| {row['competitor']} | {cells} |")
        parts.append("")
    if "flatness" in result:
        parts += [
            "| paired per round | difference, µs (IQR) | ratio of µs per request (IQR) |",
            "|---|---:|---:|",
        ]
        for label, f in result["flatness"].items():
            parts.append(
                f"| {label} | {f['difference_us']:+.3f}{_iqr(f, 'difference_us', 3)} | "
                f"{f['ratio']:.3f}{_iqr(f, 'ratio', 3)} |"
            )
        parts += [
            "",
            f"Windows that tripped during the run (should be none): {result['tripped'] or 'none'}",
            "",
        ]
    if "throughput" in result:
        t = result["throughput"]
        parts += [
            f"**Throughput**, {t['requests_per_round']} GETs per round from "
            f"{result['concurrency']} tasks, {t['rounds']} rounds",
            "",
            "| competitor | requests/s | x raw throughput | client CPU µs/request "
            "| x raw client CPU |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in t["rows"]:
            parts.append(
                f"| {row['competitor']} | {row['requests_per_s']['median']:.0f} | "
                f"{row['x_raw_throughput']['median']:.3f} | "
                f"{row['client_cpu_us_per_request']['median']:.1f} | "
                f"{row['x_raw_client_cpu']['median']:.3f} |"
            )
        parts += [
            "",
            "**Failing upstream**: wall time for the same load, raw vs ours",
            "",
            "| upstream | raw ms | ours ms | rejected share | ours/raw wall | still sent "
            "| rejection µs | expected ours/raw |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, f in result["failing"].items():
            parts.append(
                f"| {label} | {f['raw_wall_ms']['median']:.1f} | "
                f"{f['ours_wall_ms']['median']:.1f} | "
                f"{f['rejected_share']:.3f} | {f['wall_ratio']['median']:.3f} | "
                f"{f['still_sent']:.3f} | {f['rejection_us']:.0f} | "
                f"{f['expected_wall_ratio']:.3f} |"
            )
        parts.append("")
    if "markdown" in result:  # redis_overhead's own report, a plain-text table
        parts += ["```text", result["markdown"].rstrip(), "```", ""]
    return "\n".join(parts)


def _row(result: dict[str, Any] | None, variant_key: str, competitor: str) -> dict[str, Any] | None:
    if not result:
        return None
    for variant in result.get("variants", []):
        if variant.get("key") == variant_key:
            for row in variant["rows"]:
                if row["competitor"] == competitor:
                    return row  # type: ignore[no-any-return]
    return None


def _peers_faster(result: dict[str, Any] | None, variant_key: str) -> list[str]:
    """Library peers whose median is below ours in that variant."""
    if not result:
        return []
    from .competitors import COMPETITORS

    peers = {c.name for c in COMPETITORS if c.kind == "peer"}
    for variant in result.get("variants", []):
        if variant.get("key") == variant_key:
            rows = {r["competitor"]: r for r in variant["rows"]}
            ours = rows.get("ours")
            if ours is None:
                return []
            return [
                f"{n} ({rows[n]['us_per_call']:.2f} vs {ours['us_per_call']:.2f} µs)"
                for n in rows
                if n in peers and rows[n]["us_per_call"] < ours["us_per_call"]
            ]
    return []


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every target of the issue with its measured median (None where it was not measured)."""
    closed = results.get("closed_path")
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append({"target": target, "measured": measured, "met": met})

    for key, limit, label in (
        ("transport_preread", 1.0, "closed path, transport level, pre-read inner: ≤ +1.0 µs"),
        ("transport_stream", 1.5, "closed path, transport level, streaming inner: ≤ +1.5 µs"),
    ):
        row = _row(closed, key, "ours")
        hooks = _row(closed, key, "ours+hooks")
        if row:
            add(
                label,
                f"+{row['added_us']:.2f} µs (IQR {row['added_us_iqr'][0]:.2f} … "
                f"{row['added_us_iqr'][1]:.2f}); hooks on: +{hooks['added_us']:.2f} µs"
                if hooks
                else f"+{row['added_us']:.2f} µs",
                row["added_us"] <= limit,
            )
    for key, label in (
        ("client_sequential_preread", "client level, sequential, pre-read"),
        ("client_concurrent_preread", "client level, 100 tasks, pre-read"),
        ("client_sequential_stream", "client level, sequential, streaming"),
        ("client_concurrent_stream", "client level, 100 tasks, streaming"),
    ):
        row = _row(closed, key, "ours")
        if row:
            add(
                f"{label}: ≤ 1.02 x passthrough",
                f"x {row['x_passthrough']:.3f} (IQR {row['x_passthrough_iqr'][0]:.3f} … "
                f"{row['x_passthrough_iqr'][1]:.3f})",
                row["x_passthrough"] <= 1.02,
            )
    opened = results.get("open_path")
    row = _row(opened, "rejected", "ours")
    if row:
        faster = _peers_faster(opened, "rejected")
        add(
            "fast-fail: ≤ 2.0 µs per rejected request, cheaper than every peer",
            f"{row['us_per_call']:.2f} µs (IQR {row['us_per_call_iqr'][0]:.2f} … "
            f"{row['us_per_call_iqr'][1]:.2f}); peers faster: {', '.join(faster) or 'none'}",
            row["us_per_call"] <= 2.0 and not faster,
        )
    many = results.get("many_hosts")
    if many:
        rows = {r["competitor"]: r for r in many["memory"]["rows"]}
        hosts = many["memory"]["hosts"]
        ours = rows.get("ours", {})
        values = [ours.get(f"bytes_per_host_{h}") for h in hosts]
        bound = next((n for n in rows if n.startswith("ours (max")), None)
        bounded = rows.get(bound, {}) if bound else {}
        add(
            "memory: ≤ 300 bytes per idle closed circuit, bounded by max_circuits",
            ", ".join(
                f"{v:.0f} B at {h:,} hosts"
                for v, h in zip(values, hosts, strict=True)
                if v is not None
            )
            + (
                f"; {bound}: "
                + ", ".join(
                    f"{bounded.get(f'bytes_per_host_{h}', 0) * h / 1024:.0f} KiB in all at {h:,}"
                    for h in hosts
                )
                if bound
                else ""
            ),
            all(v is not None and v <= 300 for v in values),
        )
    windows = results.get("windows")
    if windows:
        flat = windows["flatness"]
        add(
            "O(1) per call in every window mode (10 vs 10k, 1 s vs 1 h)",
            "; ".join(
                f"{k}: {v['difference_us']:+.3f} µs per request "
                f"(IQR {v['difference_us_iqr'][0]:+.3f} … {v['difference_us_iqr'][1]:+.3f})"
                for k, v in flat.items()
            ),
            # flat: the median difference is within noise, under 5% of a request's cost
            all(abs(v["ratio"] - 1) <= 0.05 for v in flat.values()),
        )
    loop = results.get("loopback")
    if loop and "throughput" in loop:
        rows = {r["competitor"]: r for r in loop["throughput"]["rows"]}
        ours = rows["ours"]["x_raw_throughput"]
        add(
            "loopback: throughput within 2% of raw",
            f"x {ours['median']:.3f} of raw (IQR {ours['iqr'][0]:.3f} … {ours['iqr'][1]:.3f})",
            ours["median"] >= 0.98,
        )
        for label, f in loop["failing"].items():
            add(
                f"loopback, failing upstream ({label}): wall time drops by the rejected share",
                f"ours/raw {f['wall_ratio']['median']:.3f} vs expected "
                f"{f['expected_wall_ratio']:.3f} (rejected {f['rejected_share']:.1%}, "
                f"still sent {f['still_sent']:.1%}, time saved {f['time_saved']:.1%})",
                f["wall_ratio"]["median"] <= f["expected_wall_ratio"] * 1.25 + 0.02,
            )
    faster_anywhere = []
    for name, result in results.items():
        for variant in result.get("variants", []) if isinstance(result, dict) else []:
            for peer in _peers_faster(result, variant.get("key", "")):
                faster_anywhere.append(f"{name}/{variant['key']}: {peer}")
    add(
        "no library peer faster on any scenario",
        "; ".join(faster_anywhere) or "none faster",
        not faster_anywhere,
    )
    return out


def targets_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | measured (median) | met |", "|---|---|:-:|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured']} | {met} |")
    return "\n".join(lines)


def write(results: dict[str, dict[str, Any]], env: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        (out / f"{name}.json").write_text(
            json.dumps({"environment": env, **result}, indent=2, ensure_ascii=False) + "\n"
        )
        (out / f"{name}.md").write_text(scenario_markdown(result) + "\n")
    goals = targets(results)
    summary = [
        "# Benchmark results",
        "",
        f"Mode: {env['mode']}; Python {env['python']}; {env['cpus']} CPUs; commit {env['commit']}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v) + ".",
        "",
        "## Targets",
        "",
        targets_markdown(goals),
        "",
    ]
    summary += [scenario_markdown(result) for result in results.values()]
    path = out / "summary.md"
    path.write_text("\n".join(summary) + "\n")
    (out / "targets.json").write_text(json.dumps(goals, indent=2, ensure_ascii=False) + "\n")
    (out / "ratios.md").write_text(ratio_table(results) + "\n")
    return path


def chart(results: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Four panels: added µs (pre-read, streaming), µs per rejection, bytes per host."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels: list[tuple[str, list[tuple[str, float, float, float]]]] = []
    closed = results.get("closed_path")
    for key, title in (
        ("transport_preread", "Closed path, pre-read inner:\nµs added per request over raw"),
        ("transport_stream", "Closed path, streaming inner:\nµs added per request over raw"),
    ):
        for variant in (closed or {}).get("variants", []):
            if variant["key"] == key:
                bars = [
                    (r["competitor"], r["added_us"], *r["added_us_iqr"])
                    for r in variant["rows"]
                    if r["competitor"] != "raw"
                ]
                panels.append((title, bars))
    opened = results.get("open_path")
    if opened:
        rows = opened["variants"][0]["rows"]
        panels.append(
            (
                "Open path: µs per rejected request\n(raw, passthrough: the failing call)",
                [(r["competitor"], r["us_per_call"], *r["us_per_call_iqr"]) for r in rows],
            )
        )
    many = results.get("many_hosts")
    if many:
        hosts = (
            many["memory"]["hosts"][1]
            if len(many["memory"]["hosts"]) > 1
            else many["memory"]["hosts"][0]
        )
        bars = [
            (
                r["competitor"],
                r[f"bytes_per_host_{hosts}"],
                r[f"bytes_per_host_{hosts}"],
                r[f"bytes_per_host_{hosts}"],
            )
            for r in many["memory"]["rows"]
            if r["competitor"] not in ("raw", "passthrough") and f"bytes_per_host_{hosts}" in r
        ]
        panels.append((f"Memory kept per host, bytes\n({hosts:,} hosts)", bars))
    if not panels:
        return None
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    for axis, (title, bars) in zip(axes.flat, panels, strict=False):
        names = [b[0] for b in bars]
        values = [b[1] for b in bars]
        low = [max(0.0, b[1] - b[2]) for b in bars]
        high = [max(0.0, b[3] - b[1]) for b in bars]
        colors = [
            "#d62728"
            if n.startswith("ours")
            else "#7f7f7f"
            if n in ("raw", "passthrough", "passthrough+body", "naive")
            else "#1f77b4"
            for n in names
        ]
        axis.barh(names, values, xerr=[low, high], color=colors, capsize=3)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=11)
        axis.grid(axis="x", alpha=0.3)
        for y, (value, up) in enumerate(zip(values, high, strict=True)):
            label = f" {value:.2f}" if value < 100 else f" {value:.0f}"
            axis.text(value + up, y, label, va="center", fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.axis("off")
    figure.suptitle("breaker_transport vs peers (medians over interleaved rounds; bars: IQR)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def ratio_table(results: dict[str, dict[str, Any]]) -> str:
    """The README's table: ratios in the same run (medians over rounds), bytes per host."""
    columns = [
        ("closed_path", "transport_preread", "x_raw", "closed, transport level, pre-read: x raw"),
        ("closed_path", "transport_stream", "x_raw", "closed, streaming: x raw"),
        ("closed_path", "client_sequential_preread", "x_passthrough", "AsyncClient: x passthrough"),
        (
            "closed_path",
            "client_concurrent_preread",
            "x_passthrough",
            "AsyncClient, 100 tasks: x passthrough",
        ),
        ("sync_client", "client_preread", "x_passthrough", "sync Client: x passthrough"),
        ("open_path", "rejected", "x_raw", "rejection: x raw failing call"),
    ]
    names: list[str] = []
    cells: dict[tuple[str, int], str] = {}
    for index, (scenario, key, field, _title) in enumerate(columns):
        for variant in results.get(scenario, {}).get("variants", []):
            if variant.get("key") != key:
                continue
            for row in variant["rows"]:
                name = row["competitor"]
                if name not in names:
                    names.append(name)
                if field in row:
                    cells[(name, index)] = f"{row[field]:.2f}"
    memory: dict[str, str] = {}
    many = results.get("many_hosts")
    if many:
        hosts = 10_000 if 10_000 in many["memory"]["hosts"] else many["memory"]["hosts"][-1]
        for row in many["memory"]["rows"]:
            value = row.get(f"bytes_per_host_{hosts}")
            if value is not None:
                memory[row["competitor"]] = f"{value:.0f}"
    header = [title for *_, title in columns] + (["bytes kept per host"] if memory else [])
    lines = ["| | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for name in names:
        row_cells = [cells.get((name, i), "-") for i in range(len(columns))]
        if memory:
            row_cells.append(memory.get(name, "-"))
        label = f"**{name}**" if name.startswith("ours") else name
        lines.append(f"| {label} | " + " | ".join(row_cells) + " |")
    return "\n".join(lines)
