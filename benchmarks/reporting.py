"""Reporting: medians and ratios from the runs, the Markdown report, the plots."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from benchmarks.measuring import SERVER_CPU, Cell, Run, Scaling, Settings, median
from benchmarks.running import CLIENT_CPU
from benchmarks.servers import SERVERS, Server

BASELINE = "twisted-original"
MiB = 1024 * 1024


def summarise(
    runs: list[Run], servers: list[Server], settings: Settings
) -> dict[str, dict[str, object]]:
    cells: dict[str, dict[str, object]] = {}
    for cell in settings.cells:
        row: dict[str, object] = {}
        baseline = median(
            r.figure for r in runs if r.cell == cell.name and r.server == BASELINE and r.figure
        )  # a zero baseline (no memory at all) gives no ratio
        for server in servers:
            mine = [r for r in runs if r.cell == cell.name and r.server == server.name]
            good = [r for r in mine if r.figure is not None]
            if not good:
                note = mine[0].note if mine else ""
                if cell.mode not in server.modes:
                    note = f"no {cell.mode} mode"
                row[server.name] = {"figure": None, "note": note}
                continue
            figures = [r.figure for r in good if r.figure is not None]
            figure = median(figures)
            row[server.name] = {
                "figure": figure,
                "min": min(figures),
                "max": max(figures),
                "ratio": figure / baseline if baseline else None,
                "latency_us": {
                    key: median(r.latency_us.get(key, 0.0) for r in good)
                    for key in ("p50", "p99", "p999", "max")
                },
                "server_cpu_us_per_message": median(r.server_cpu_us_per_message for r in good),
                "server_cpu_utilization": median(r.server_cpu_utilization for r in good),
                "client_cpu_utilization": median(r.client_cpu_utilization for r in good),
                "client_limited": any(r.client_limited for r in good),
                "saturated": any(r.saturated for r in good),
                "offered_rate": cell.rate,
                "achieved_rate": median(r.messages_per_second for r in good),
                "peak_rss": max(r.peak_rss for r in good),
                "errors": sum(r.errors for r in mine),
                "note": next((r.note for r in good if r.note), ""),
            }
        cells[cell.name] = row
    return cells


UNITS = {
    "messages_per_second": "messages/s",
    "megabytes_per_second": "MB/s",
}


def _number_text(value: float, cell: Cell) -> str:
    if cell.workload == "idle":
        return f"{value / 1024:,.1f} KiB"
    if cell.workload == "fairness":
        return f"{value:,.2f} ms"
    if cell.group == "cpu":
        return f"{value:,.1f} µs"
    return f"{value:,.0f}"


def _figure_text(entry: dict[str, object], cell: Cell) -> str:
    figure = entry.get("figure")
    if figure is None:
        return "n/a"
    assert isinstance(figure, float)
    text = _number_text(figure, cell)
    low, high = entry.get("min"), entry.get("max")
    if isinstance(low, float) and isinstance(high, float) and low != high:
        text += f" [{_number_text(low, cell)} to {_number_text(high, cell)}]"
    ratio = entry.get("ratio")
    if isinstance(ratio, float):
        text += f" ({ratio:.2f}x)"
    if entry.get("client_limited"):
        text += " ⚠"
    if entry.get("saturated"):
        text += f" (saturated: {entry['achieved_rate']:,.0f}/s of {entry['offered_rate']:,.0f}/s)"
    if cell.rate and entry.get("errors"):
        text += f" ({entry['errors']:,} errors)"
    return text


def noise(summary: dict[str, dict[str, object]], servers: list[Server]) -> str:
    """How much repetitions of one server on one load differed, in words.

    The spread of a cell is (max - min) / median; the sentence gives the
    median spread over every server and load measured more than once, and
    the largest.
    """
    spreads = []
    for cell, row in summary.items():
        for server in servers:
            entry = row.get(server.name)
            if not isinstance(entry, dict):
                continue
            figure, low, high = entry.get("figure"), entry.get("min"), entry.get("max")
            if isinstance(figure, float) and figure and isinstance(low, float):
                assert isinstance(high, float)
                spreads.append(((high - low) / figure, server.label, cell))
    if not spreads or max(spread for spread, _, _ in spreads) == 0:
        return "Each figure is one measurement: this run says nothing of its noise."
    widest = max(spreads)
    return (
        "Between repetitions, one server's figure on one load varied by a median of "
        f"{median(spread for spread, _, _ in spreads):.0%} of its median (at most "
        f"{widest[0]:.0%}: {widest[1]}, {widest[2]}). Square brackets give each figure's "
        "lowest and highest; read two servers whose ranges overlap as a tie."
    )


def markdown(
    summary: dict[str, dict[str, object]],
    servers: list[Server],
    settings: Settings,
    conformance: list[dict[str, str]] | None,
    environment: dict[str, object],
) -> str:
    lines = [
        "# Benchmark report",
        "",
        f"Machine: {environment['machine']}; {environment['cpus']} CPUs; "
        f"Python {environment['python']}; {environment['date']}.",
        f"Each server pinned to CPU {SERVER_CPU}, the C load generator to CPU {CLIENT_CPU}. "
        f"Median of {settings.repeat} interleaved repetition(s) of {settings.duration:g} s "
        f"(after {settings.warmup:g} s of warm-up); in parentheses, the ratio to the Twisted "
        "original in the same run. ⚠: the load generator used 90% or more of its CPU, so "
        "the figure is a lower bound on what the server can do.",
        "",
        noise(summary, servers),
        "",
    ]
    groups = [
        ("headline", "Throughput (messages/s, or MB/s for 10 MB messages)"),
        ("size", "Echo throughput by message size (messages/s)"),
        ("concurrency", "Echo throughput by connections, 1 KiB messages (messages/s)"),
        (
            "cpu",
            "Server CPU per connection at a fixed rate (µs of user + system time of the "
            "server and everything it started, exited threads and processes included). "
            "A server that did not reach the offered rate is marked saturated, with the "
            "rate it reached: its CPU was taken at its limit",
        ),
        ("memory", f"Server memory per idle connection ({settings.idle_connections:,} open)"),
        (
            "fairness",
            "p99 latency of a 100 B client (200 messages/s) beside a 10 MB stream",
        ),
    ]
    for group, title in groups:
        cells = [cell for cell in settings.cells if cell.group == group]
        if not cells:
            continue
        lines += [f"## {title}", "", "| load | " + " | ".join(s.label for s in servers) + " |"]
        lines.append("|---" * (len(servers) + 1) + "|")
        for cell in cells:
            row = summary[cell.name]
            unit = UNITS.get(cell.metric, "") if group in ("headline",) else ""
            label = (
                f"{cell.name} ({cell.connections} conn.)"
                if cell.workload not in ("idle", "fairness")
                else cell.name
            )
            if unit == "MB/s":
                label += ", MB/s"
            texts = [_figure_text(row[s.name], cell) for s in servers]  # type: ignore[arg-type]
            lines.append(f"| {label} | " + " | ".join(texts) + " |")
        lines.append("")
    headline = [cell for cell in settings.cells if cell.group == "headline"]
    if headline:
        lines += [
            "## Latency and cost, headline loads",
            "",
            "p50 / p99 / p99.9 latency in µs; server CPU µs per message; peak RSS in MiB; "
            "load generator CPU.",
            "",
            "| load | server | p50 | p99 | p99.9 | CPU µs/msg | peak RSS | client CPU |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cell in headline:
            for server in servers:
                entry = summary[cell.name][server.name]
                assert isinstance(entry, dict)
                if entry.get("figure") is None:
                    continue
                latency = entry["latency_us"]
                lines.append(
                    f"| {cell.name} | {server.label} | {latency['p50']:,.0f} | "
                    f"{latency['p99']:,.0f} | {latency['p999']:,.0f} | "
                    f"{entry['server_cpu_us_per_message']:,.1f} | "
                    f"{entry['peak_rss'] / MiB:,.0f} | {entry['client_cpu_utilization']:.0%} |"
                )
        lines.append("")
    leaders = []
    for cell in settings.cells:
        row = summary[cell.name]
        scored = [
            (entry["figure"], name)
            for name, entry in row.items()
            if isinstance(entry, dict) and isinstance(entry.get("figure"), float)
        ]
        if not scored:
            continue
        lower_is_better = cell.lower_is_better
        best = min(scored) if lower_is_better else max(scored)
        python_only = [s for s in scored if s[1] != "c-epoll"]
        best_python = (
            (min(python_only) if lower_is_better else max(python_only)) if python_only else None
        )
        text = f"- {cell.name}: {SERVERS[best[1]].label}"
        if best_python and best_python[1] != best[1]:
            text += f"; among the Python servers, {SERVERS[best_python[1]].label}"
        leaders.append(text)
    if leaders:
        lines += ["## Who leads", "", *leaders, ""]
    lines += per_model_table(summary, servers, settings, conformance)
    if conformance:
        lines += conformance_table(conformance, servers)
    return "\n".join(lines) + "\n"


def _figure(
    summary: dict[str, dict[str, object]], cell: str, server: str, key: str
) -> float | None:
    entry = summary.get(cell, {}).get(server)
    value = entry.get(key) if isinstance(entry, dict) else None
    return value if isinstance(value, float) else None


def _saturated(summary: dict[str, dict[str, object]], cell: str | None, server: str) -> bool:
    entry = summary.get(cell or "", {}).get(server)
    return isinstance(entry, dict) and bool(entry.get("saturated"))


def per_model_table(
    summary: dict[str, dict[str, object]],
    servers: list[Server],
    settings: Settings,
    conformance: list[dict[str, str]] | None,
) -> list[str]:
    """One row per model: what it passes, and what it costs, side by side."""
    names = {cell.name for cell in settings.cells}
    cpu_cell = next((cell.name for cell in settings.cells if cell.group == "cpu"), None)
    lines = [
        "## Per model",
        "",
        "Conformance: cases passed of those run. CPU µs per connection at a fixed rate"
        " (count 100 B), and per message on echo 1 KiB; memory per idle connection.",
        "",
        "| model | conformance | count 100 B msg/s | echo 1 KiB msg/s | count 10 MB MB/s |"
        " CPU µs/conn (fixed rate) | CPU µs/msg (echo 1 KiB) | KiB per idle conn. |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def number(value: float | None, digits: int = 0, scale: float = 1.0) -> str:
        return "n/a" if value is None else f"{value / scale:,.{digits}f}"

    for server in servers:
        passed = "n/a"
        if conformance:
            mine = [o for o in conformance if o["server"] == server.name]
            run = [o for o in mine if o["outcome"] != "skipped"]
            good = [o for o in run if o["outcome"] in ("passed", "xpass")]
            passed = f"{len(good)} of {len(run)}" if run else "n/a"
        idle = next((c.name for c in settings.cells if c.group == "memory"), "")
        lines.append(
            f"| {server.label} | {passed} | "
            f"{number(_figure(summary, 'count 100 B', server.name, 'figure'))} | "
            f"{number(_figure(summary, 'echo 1 KiB', server.name, 'figure'))} | "
            + (
                f"{number(_figure(summary, 'count 10 MB', server.name, 'figure'))} | "
                if "count 10 MB" in names
                else "n/a | "
            )
            + f"{number(_figure(summary, cpu_cell or '', server.name, 'figure'), 1)}"
            + (" (saturated)" if _saturated(summary, cpu_cell, server.name) else "")
            + " | "
            f"{number(_figure(summary, 'echo 1 KiB', server.name, 'server_cpu_us_per_message'), 1)}"
            f" | {number(_figure(summary, idle, server.name, 'figure'), 1, 1024)} |"
        )
    return [*lines, ""]


def conformance_table(outcomes: list[dict[str, str]], servers: list[Server]) -> list[str]:
    cases: list[str] = []
    for outcome in outcomes:
        if outcome["case"] not in cases:
            cases.append(outcome["case"])
    by_key = {(o["server"], o["case"]): o for o in outcomes}
    symbols = {"passed": "✓", "xpass": "✓", "xfail": "✗", "failed": "✗!", "skipped": "n/a"}
    lines = [
        "## Conformance",
        "",
        "✓ conforms; ✗ does not (an expected failure, reason below); n/a: no such mode; "
        "✗! an unexpected failure.",
        "",
        "| case | " + " | ".join(s.label for s in servers) + " |",
        "|---" * (len(servers) + 1) + "|",
    ]
    reasons: list[str] = []
    for case in cases:
        cells = []
        for server in servers:
            outcome = by_key.get((server.name, case))
            cells.append(symbols.get(outcome["outcome"], "?") if outcome else "")
            if outcome and outcome["outcome"] in ("xfail", "failed") and outcome["reason"]:
                reasons.append(f"- {server.label}, {case}: {outcome['reason']}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines += ["", *sorted(set(reasons)), ""]
    return lines


_MARKERS = "osD^v<>pXh*P8d"


def _line_style(index: int) -> dict[str, object]:
    """A colour and a marker of its own for the server at ``index`` (up to 20 x 13)."""
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    return {
        "color": colours[index % len(colours)],
        "marker": _MARKERS[index % len(_MARKERS)],
        "linestyle": "-" if index < len(_MARKERS) else "--",
    }


def plots(
    summary: dict[str, dict[str, object]], servers: list[Server], settings: Settings, out: Path
) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for group, x_of, xlabel in (
        ("size", lambda c: c.size, "message size (bytes)"),
        ("concurrency", lambda c: c.connections, "connections"),
    ):
        cells = [cell for cell in settings.cells if cell.group == group]
        if len(cells) < 2:
            continue
        figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
        for index, server in enumerate(servers):
            style = _line_style(index)
            xs, throughput, p99 = [], [], []
            for cell in cells:
                entry = summary[cell.name].get(server.name)
                if isinstance(entry, dict) and isinstance(entry.get("figure"), float):
                    xs.append(x_of(cell))
                    throughput.append(entry["figure"])
                    p99.append(entry["latency_us"]["p99"] / 1000)  # type: ignore[index]
            if xs:
                left.plot(xs, throughput, label=server.label, **style)
                right.plot(xs, p99, label=server.label, **style)
        for axis, ylabel in ((left, "messages/s"), (right, "p99 latency (ms)")):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.grid(True, which="both", alpha=0.3)
        figure.suptitle(f"echo, by {xlabel}")
        # Outside the axes, so that it covers no line.
        figure.legend(*left.get_legend_handles_labels(), loc="center right", fontsize=8)
        figure.tight_layout(rect=(0, 0, 0.84, 1))
        path = out / f"echo-by-{group}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    cpu = [
        (server.label, _figure(summary, "echo 1 KiB", server.name, "server_cpu_us_per_message"))
        for server in servers
    ]
    cpu = [(label, value) for label, value in cpu if value is not None]
    if cpu:
        figure, axis = plt.subplots(figsize=(10, 4.5))
        axis.barh([label for label, _ in cpu], [value for _, value in cpu])
        axis.invert_yaxis()
        axis.set_xlabel("server CPU µs per message (echo 1 KiB, 50 connections)")
        axis.grid(True, axis="x", alpha=0.3)
        figure.tight_layout()
        path = out / "cpu-per-message.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def environment() -> dict[str, object]:
    return {
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def scaling_table(results: list[Scaling]) -> list[str]:
    if not results:
        return []
    base = results[0].messages_per_second
    lines = [
        "## trio_echo --workers: connection rate by worker processes",
        "",
        "count, 100 B messages, 50 connections, a new connection per message. Not pinned: "
        f"the load generator shares this machine's {os.cpu_count()} CPUs with the workers, so "
        "past one worker the workers and the client compete for the same cores, and the "
        "figures say how the rate grows here, not what more cores would give.",
        "",
        "| workers | messages/s | vs 1 worker | server CPUs busy | client CPU |",
        "|---|---|---|---|---|",
    ]
    for entry in results:
        rate = entry.messages_per_second
        lines.append(
            f"| {entry.workers} | {rate:,.0f} ({entry.min:,.0f}-{entry.max:,.0f}) | "
            f"{rate / base if base else 0:.2f}x | {entry.server_cpus_busy:.2f} | "
            f"{entry.client_cpu_utilization:.0%} |"
        )
    return [*lines, ""]


def servers_table(servers: list[Server]) -> list[str]:
    """The servers compared, each with its concurrency model."""
    lines = ["## The servers", "", "| server | model |", "|---|---|"]
    lines += [f"| {server.label} | {server.model} |" for server in servers]
    return [*lines, ""]
