"""The benchmark harness: every server on the same loads, side by side.

Each server runs pinned to CPU 0; the C load generator (benchmarks/
loadgen.c) runs pinned to CPU 1 and checks every echo byte for byte.
Servers are interleaved over the repetitions (A B C, C B A, A B C...) so
that drift in the machine hits them alike; each figure is the median of the
repetitions, with the spread (min-max), and a ratio to the Twisted original
measured in the same run. Every run records the load generator's CPU next
to the server's: a run whose generator used 90% or more of its core is
flagged as client-limited (its figure is a lower bound on the server).

    python benchmarks/harness.py            # the full matrix (about 20 minutes)
    python benchmarks/harness.py --quick    # the whole path, in under a minute

Results: benchmarks/results/ (``--out`` to change): benchmark.json (every
run), benchmark.md (the tables, with the conformance table when
conformance.json is there), and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import LOADGEN_SOURCE, NoCompilerError, compile_c
from benchmarks.servers import ROOT, SERVERS, Server, ServerProcess, start

SERVER_CPU = 0
CLIENT_CPU = 1
BASELINE = "twisted-original"
CLIENT_LIMIT = 0.90  # load generator CPU utilisation that flags a run
KiB, MiB = 1024, 1024 * 1024
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Cell:
    """One load: a workload, a size, a number of connections."""

    name: str
    workload: str  # count | echo | framed | idle | fairness
    size: int = 100
    connections: int = 50
    pipeline: int = 1
    metric: str = "messages_per_second"
    group: str = "headline"  # headline | size | concurrency | memory | fairness

    @property
    def mode(self) -> str:
        """The server mode this load needs."""
        return {"idle": "echo", "fairness": "framed"}.get(self.workload, self.workload)


@dataclass
class Settings:
    duration: float
    warmup: float
    repeat: int
    idle_connections: int
    cells: list[Cell]
    scaling: bool = True  # trio_echo with 1..N workers, count 100 B


def full_settings() -> Settings:
    cells = [
        Cell("count 100 B", "count", 100, 50),
        Cell("echo 1 KiB", "echo", KiB, 50),
        Cell("framed 100 B x16", "framed", 100, 50, pipeline=16),
        Cell("count 10 MB", "count", 10_000_000, 4, metric="megabytes_per_second"),
    ]
    for size in (64, 4 * KiB, 64 * KiB, MiB, 10_000_000):
        connections = 50 if size <= 64 * KiB else 4
        cells.append(Cell(f"echo {size} B", "echo", size, connections, group="size"))
    for connections in (1, 10, 100, 1000):
        cells.append(
            Cell(f"echo 1 KiB x{connections}", "echo", KiB, connections, group="concurrency")
        )
    cells.append(Cell("idle connections", "idle", group="memory"))
    cells.append(Cell("fairness", "fairness", group="fairness"))
    return Settings(duration=2.0, warmup=0.5, repeat=3, idle_connections=10_000, cells=cells)


def quick_settings() -> Settings:
    cells = [
        Cell("count 100 B", "count", 100, 20),
        Cell("echo 1 KiB", "echo", KiB, 20),
        Cell("framed 100 B x16", "framed", 100, 20, pipeline=16),
        Cell("echo 64 KiB", "echo", 64 * KiB, 4, group="size"),
        Cell("idle connections", "idle", group="memory"),
    ]
    return Settings(
        duration=0.4, warmup=0.1, repeat=1, idle_connections=200, cells=cells, scaling=True
    )


@dataclass
class Run:
    """One measurement of one server on one cell."""

    server: str
    cell: str
    repetition: int
    figure: float | None = None  # the cell's metric; None when the run failed
    messages_per_second: float = 0.0
    megabytes_per_second: float = 0.0
    latency_us: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    server_cpu_us_per_message: float = 0.0
    server_cpu_utilization: float = 0.0
    client_cpu_utilization: float = 0.0
    client_limited: bool = False
    peak_rss: int = 0
    bytes_per_idle_connection: float = 0.0
    note: str = ""


@dataclass
class Bench:
    """What a measurement needs: the load generator, and the server under test."""

    binary: Path
    process: ServerProcess
    server: Server
    settings: Settings


def loadgen_command(binary: Path, port: int, cell: Cell, **overrides: object) -> list[str]:
    options: dict[str, object] = {
        "--port": port,
        "--workload": cell.workload,
        "--size": cell.size,
        "--connections": cell.connections,
    }
    if cell.pipeline > 1:
        options["--pipeline"] = cell.pipeline
    options.update({f"--{key.replace('_', '-')}": value for key, value in overrides.items()})
    return [str(binary), *(str(item) for pair in options.items() for item in pair)]


def run_loadgen(command: list[str], timeout: float) -> dict[str, object]:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}),
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"loadgen failed: {result.stderr.strip() or result.returncode}")
    figures: dict[str, object] = json.loads(result.stdout)
    return figures


def measure_load(bench: Bench, cell: Cell, rep: int) -> Run:
    binary, process, server, settings = bench.binary, bench.process, bench.server, bench.settings
    run = Run(server.name, cell.name, rep)
    if settings.warmup > 0:
        run_loadgen(
            loadgen_command(binary, process.port, cell, duration=settings.warmup),
            timeout=60 + settings.warmup,
        )
    cpu_before, wall_before = process.cpu_seconds(), time.monotonic()
    figures = run_loadgen(
        loadgen_command(binary, process.port, cell, duration=settings.duration),
        timeout=120 + settings.duration,
    )
    cpu = process.cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    messages = int(figures["messages"])  # type: ignore[call-overload]
    run.messages_per_second = float(figures["messages_per_second"])  # type: ignore[arg-type]
    run.megabytes_per_second = float(figures["megabytes_per_second"])  # type: ignore[arg-type]
    run.figure = getattr(run, cell.metric)
    run.latency_us = dict(figures["latency_us"])  # type: ignore[call-overload]
    run.errors = int(figures["errors"]) + int(figures["connect_errors"])  # type: ignore[call-overload]
    run.server_cpu_us_per_message = cpu / messages * 1e6 if messages else 0.0
    run.server_cpu_utilization = cpu / wall if wall > 0 else 0.0
    run.client_cpu_utilization = float(figures["client_cpu_utilization"])  # type: ignore[arg-type]
    run.client_limited = run.client_cpu_utilization >= CLIENT_LIMIT
    run.peak_rss = process.memory()["peak_rss"]
    if figures.get("first_error"):
        run.note = str(figures["first_error"])
    return run


def measure_idle(bench: Bench, cell: Cell, rep: int) -> Run:
    binary, process, server, settings = bench.binary, bench.process, bench.server, bench.settings
    run = Run(server.name, cell.name, rep)
    count = settings.idle_connections
    before = process.memory()["rss"]
    command = loadgen_command(
        binary, process.port, Cell("idle", "idle", connections=count), duration=2
    )
    loadgen = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}),  # noqa: PLW1509
    )
    assert loadgen.stderr is not None
    ready = loadgen.stderr.readline().split()
    opened = int(ready[1]) if len(ready) == 2 and ready[0] == "ready" else 0
    time.sleep(1.0)  # let the server settle every connection it accepted
    after = process.memory()["rss"]
    out, _err = loadgen.communicate(timeout=60)
    figures = json.loads(out) if out.strip() else {}
    run.errors = count - opened
    run.peak_rss = process.memory()["peak_rss"]
    if opened:
        run.bytes_per_idle_connection = max(0.0, (after - before) / opened)
        run.figure = run.bytes_per_idle_connection
    run.note = f"{opened} of {count} connections open" + (
        f"; {figures['first_error']}" if figures.get("first_error") else ""
    )
    return run


def measure_fairness(bench: Bench, cell: Cell, rep: int) -> Run:
    binary, process, server, settings = bench.binary, bench.process, bench.server, bench.settings
    """A small-message client's latency while another connection streams
    10 MB messages flat out."""
    run = Run(server.name, cell.name, rep)
    hog = subprocess.Popen(
        loadgen_command(
            binary,
            process.port,
            Cell("hog", "framed", 10_000_000, 1),
            duration=settings.duration + 1,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}),  # noqa: PLW1509
    )
    time.sleep(0.5)
    small = run_loadgen(
        loadgen_command(
            binary,
            process.port,
            Cell("small", "framed", 100, 1),
            duration=settings.duration,
            rate=200,
        ),
        timeout=60 + settings.duration,
    )
    hog_out, _ = hog.communicate(timeout=120)
    hog_figures = json.loads(hog_out) if hog_out.strip() else {}
    run.latency_us = dict(small["latency_us"])  # type: ignore[call-overload]
    run.figure = float(run.latency_us["p99"]) / 1000.0  # ms
    run.messages_per_second = float(small["messages_per_second"])  # type: ignore[arg-type]
    run.megabytes_per_second = float(hog_figures.get("megabytes_per_second", 0.0))
    run.errors = int(small["errors"])  # type: ignore[call-overload]
    run.peak_rss = process.memory()["peak_rss"]
    run.note = f"10 MB stream alongside: {run.megabytes_per_second:,.0f} MB/s"
    return run


MEASURE = {"idle": measure_idle, "fairness": measure_fairness}


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the workers)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            pending += [
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
        except OSError:
            continue
    return total


def measure_scaling(binary: Path, settings: Settings, log: bool = True) -> list[dict[str, object]]:
    """trio_echo's connection rate with 1 to N workers (N = the CPUs).

    Neither the workers nor the load generator are pinned here: the point
    is how the rate grows with processes, on a machine whose cores the
    load generator shares.
    """
    results = []
    cell = Cell("count 100 B", "count", 100, 50)
    for workers in range(1, (os.cpu_count() or 1) + 1):
        rates, cpu_used, client = [], [], []
        for _ in range(settings.repeat):
            process = ServerProcess(
                [
                    sys.executable,
                    "-m",
                    "trio_echo",
                    "server",
                    "--port",
                    "0",
                    "--log-level",
                    "WARNING",
                    "--workers",
                    str(workers),
                ]
            )
            try:
                port = process.wait_for_port()
                subprocess.run(
                    loadgen_command(binary, port, cell, duration=settings.warmup or 0.1),
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
                before = _tree_cpu_seconds(process.pid)
                result = subprocess.run(
                    loadgen_command(binary, port, cell, duration=settings.duration),
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                figures = json.loads(result.stdout)
                rates.append(float(figures["messages_per_second"]))
                cpu_used.append((_tree_cpu_seconds(process.pid) - before) / settings.duration)
                client.append(float(figures["client_cpu_utilization"]))
            finally:
                process.popen.send_signal(2)
                process.popen.send_signal(2)
                try:
                    process.popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.stop()
        entry = {
            "workers": workers,
            "messages_per_second": _median(rates),
            "min": min(rates),
            "max": max(rates),
            "server_cpus_busy": _median(cpu_used),
            "client_cpu_utilization": _median(client),
        }
        results.append(entry)
        if log:
            print(
                f"  scaling: {workers} worker(s) {entry['messages_per_second']:>12,.0f} messages/s",
                file=sys.stderr,
                flush=True,
            )
    return results


def scaling_table(results: list[dict[str, object]]) -> list[str]:
    if not results:
        return []
    base = float(results[0]["messages_per_second"])  # type: ignore[arg-type]
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
        rate = float(entry["messages_per_second"])  # type: ignore[arg-type]
        lines.append(
            f"| {entry['workers']} | {rate:,.0f} ({entry['min']:,.0f}-{entry['max']:,.0f}) | "
            f"{rate / base if base else 0:.2f}x | {float(entry['server_cpus_busy']):.2f} | "  # type: ignore[arg-type]
            f"{float(entry['client_cpu_utilization']):.0%} |"  # type: ignore[arg-type]
        )
    return [*lines, ""]


def run_matrix(
    servers: list[Server], settings: Settings, binary: Path, log: bool = True
) -> list[Run]:
    runs: list[Run] = []
    modes = sorted({cell.mode for cell in settings.cells}, key=["count", "echo", "framed"].index)
    for rep in range(settings.repeat):
        order = servers if rep % 2 == 0 else list(reversed(servers))
        for server in order:
            for mode in modes:
                if mode not in server.modes:
                    continue
                cells = [cell for cell in settings.cells if cell.mode == mode]
                try:
                    process = start(server, mode, cpu=SERVER_CPU)
                except (RuntimeError, NoCompilerError) as error:
                    runs.extend(Run(server.name, c.name, rep, note=str(error)) for c in cells)
                    continue
                bench = Bench(binary, process, server, settings)
                try:
                    for cell in cells:
                        measure = MEASURE.get(cell.workload, measure_load)
                        try:
                            run = measure(bench, cell, rep)
                        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                            run = Run(server.name, cell.name, rep, note=f"failed: {error}")
                        runs.append(run)
                        if log:
                            flag = " (client-limited)" if run.client_limited else ""
                            print(
                                f"  [{rep + 1}/{settings.repeat}] {server.name:<17} "
                                f"{cell.name:<20} {run.figure or 0:>14,.1f}{flag} {run.note}",
                                file=sys.stderr,
                                flush=True,
                            )
                finally:
                    process.stop()
    return runs


# -- summary ------------------------------------------------------------------


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else 0.0


def summarise(runs: list[Run], servers: list[Server], settings: Settings) -> dict[str, object]:
    cells: dict[str, dict[str, object]] = {}
    for cell in settings.cells:
        row: dict[str, object] = {}
        baseline = _median(
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
            figure = _median(figures)
            row[server.name] = {
                "figure": figure,
                "min": min(figures),
                "max": max(figures),
                "ratio": figure / baseline if baseline else None,
                "latency_us": {
                    key: _median(r.latency_us.get(key, 0.0) for r in good)
                    for key in ("p50", "p99", "p999", "max")
                },
                "server_cpu_us_per_message": _median(r.server_cpu_us_per_message for r in good),
                "server_cpu_utilization": _median(r.server_cpu_utilization for r in good),
                "client_cpu_utilization": _median(r.client_cpu_utilization for r in good),
                "client_limited": any(r.client_limited for r in good),
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


def _figure_text(entry: dict[str, object], cell: Cell) -> str:
    figure = entry.get("figure")
    if figure is None:
        return "n/a"
    assert isinstance(figure, float)
    if cell.workload == "idle":
        text = f"{figure / 1024:,.1f} KiB"
    elif cell.workload == "fairness":
        text = f"{figure:,.2f} ms"
    else:
        text = f"{figure:,.0f}"
    ratio = entry.get("ratio")
    if isinstance(ratio, float):
        text += f" ({ratio:.2f}x)"
    if entry.get("client_limited"):
        text += " ⚠"
    return text


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
        f"(after {settings.warmup:g} s of warm-up); in brackets, the ratio to the Twisted "
        "original in the same run. ⚠: the load generator used 90% or more of its CPU, so "
        "the figure is a lower bound on what the server can do.",
        "",
    ]
    groups = [
        ("headline", "Throughput (messages/s, or MB/s for 10 MB messages)"),
        ("size", "Echo throughput by message size (messages/s)"),
        ("concurrency", "Echo throughput by connections, 1 KiB messages (messages/s)"),
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
                if cell.workload
                not in (
                    "idle",
                    "fairness",
                )
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
        lower_is_better = cell.workload in ("idle", "fairness")
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
    if conformance:
        lines += conformance_table(conformance, servers)
    return "\n".join(lines) + "\n"


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
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        for server in servers:
            xs, throughput, p99 = [], [], []
            for cell in cells:
                entry = summary[cell.name].get(server.name)
                if isinstance(entry, dict) and isinstance(entry.get("figure"), float):
                    xs.append(x_of(cell))
                    throughput.append(entry["figure"])
                    p99.append(entry["latency_us"]["p99"] / 1000)  # type: ignore[index]
            if xs:
                left.plot(xs, throughput, marker="o", label=server.label)
                right.plot(xs, p99, marker="o", label=server.label)
        for axis, ylabel in ((left, "messages/s"), (right, "p99 latency (ms)")):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.grid(True, which="both", alpha=0.3)
        left.legend(fontsize=8)
        figure.suptitle(f"echo, by {xlabel}")
        figure.tight_layout()
        path = out / f"echo-by-{group}.png"
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the whole path in under a minute")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated server names (default: all): " + ", ".join(SERVERS),
    )
    parser.add_argument(
        "--cells",
        help="only the loads whose names contain one of these comma-separated words",
    )
    parser.add_argument("--repeat", type=int, help="repetitions (default: 3, quick: 1)")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure trio_echo with 1..N workers (default: in the full run, not in --quick)",
    )
    parser.add_argument(
        "--conformance",
        action="store_true",
        help="run the conformance suite first, for the report's conformance table",
    )
    args = parser.parse_args(argv)
    settings = quick_settings() if args.quick else full_settings()
    if args.repeat:
        settings.repeat = args.repeat
    if args.duration:
        settings.duration = args.duration
    if args.scaling is not None:
        settings.scaling = args.scaling
    if args.cells:
        words = [word.strip() for word in args.cells.split(",") if word.strip()]
        settings.cells = [c for c in settings.cells if any(w in c.name for w in words)]
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if len(os.sched_getaffinity(0)) < 2:
        print("harness: needs two CPUs (one for the server, one for the load)", file=sys.stderr)
        return 2
    try:
        binary = compile_c(LOADGEN_SOURCE)
    except NoCompilerError as error:
        print(f"harness: {error}", file=sys.stderr)
        return 2
    servers = []
    for name in names:
        missing = SERVERS[name].missing()
        if missing:
            print(f"harness: skipping {SERVERS[name].label}: {missing}", file=sys.stderr)
        else:
            servers.append(SERVERS[name])
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    conformance_path = out / "conformance.json"
    if args.conformance:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/test_conformance.py",
                f"--conformance-json={conformance_path}",
            ],
            cwd=ROOT,
            check=False,
        )
    started = time.monotonic()
    runs = run_matrix(servers, settings, binary)
    scaling = measure_scaling(binary, settings) if settings.scaling else []
    summary = summarise(runs, servers, settings)
    env = environment()
    env["seconds"] = round(time.monotonic() - started, 1)
    conformance = json.loads(conformance_path.read_text()) if conformance_path.exists() else None
    (out / "benchmark.json").write_text(
        json.dumps(
            {
                "environment": env,
                "settings": {
                    "duration": settings.duration,
                    "warmup": settings.warmup,
                    "repeat": settings.repeat,
                    "idle_connections": settings.idle_connections,
                    "cells": [asdict(cell) for cell in settings.cells],
                },
                "summary": summary,
                "scaling": scaling,
                "runs": [asdict(run) for run in runs],
            },
            indent=1,
        )
        + "\n"
    )
    report = markdown(summary, servers, settings, conformance, env)
    report += "\n".join(scaling_table(scaling))
    (out / "benchmark.md").write_text(report)
    written = plots(summary, servers, settings, out)
    print(report)
    print(
        f"harness: {len(runs)} runs in {env['seconds']} s; wrote {out / 'benchmark.json'}, "
        f"{out / 'benchmark.md'}" + "".join(f", {path}" for path in written),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
