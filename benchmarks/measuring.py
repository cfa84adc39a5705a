"""Measuring: the loads (cells), how each is measured, and what the kernel says.

Each server runs pinned to CPU 0 and the load generator to CPU 1. A run
records the server's CPU time, in user space and in the kernel, and its
memory, the kernel's on its behalf included (all of it: the process, its
threads and its child processes, exited ones included; see
`running.Meter`), next to the generator's own figures; a run whose
generator used `CLIENT_LIMIT` of its core or more is flagged: its figure is
a lower bound.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.build import NoCompilerError
from benchmarks.running import (
    PSS,
    LoadFigures,
    ServerProcess,
    descendants,
    loadgen_command,
    run_loadgen,
    start,
    start_loadgen,
)
from benchmarks.servers import Server, trio_echo_command

SERVER_CPU = 0
CLIENT_LIMIT = 0.90  # load generator CPU utilisation that flags a run
FIXED_RATES = (5_000, 1_000)
"""Connections per second of the fixed-rate loads. A server that does not
reach the offered rate is marked saturated: its CPU figure was then taken at
its limit, not at that rate."""

SATURATED = 0.95
"""A fixed-rate run that achieved less than this share of its rate is saturated."""

FAIRNESS_SAMPLES = 2_000
"""Messages the fairness probe times: its p99 is then the 20th worst of them."""
FAIRNESS_CONNECTIONS = 5
FAIRNESS_RATE = 1_000
"""Messages per second the fairness probe sends, 100 B each, over
`FAIRNESS_CONNECTIONS` connections: each has one message in flight and 5 ms
between them, so that a server that answers within that keeps up, and the
probe measures the server's fairness, not a queue of its own."""
FAIRNESS_WAIT_SHARE = 0.10
"""A fairness run is flagged when its probe waited for its CPU, per message on
average, this share of its median latency or more: the rig moved the figure."""
KiB, MiB = 1024, 1024 * 1024


@dataclass(frozen=True)
class Cell:
    """One load: a workload, a size, a number of connections."""

    name: str
    workload: str  # count | echo | framed | idle | fairness
    size: int = 100
    connections: int = 50
    pipeline: int = 1
    rate: float = 0.0  # messages/s, open loop; 0: as fast as the server goes
    metric: str = "messages_per_second"
    group: str = "headline"  # headline | cpu | size | concurrency | memory | fairness

    @property
    def mode(self) -> str:
        """The server mode this load needs."""
        return {"idle": "echo", "fairness": "framed"}.get(self.workload, self.workload)

    @property
    def saturable(self) -> bool:
        """Whether a run that falls short of the load's rate is saturated: a
        fixed-rate load's, not the fairness probe's, whose rate is its pace."""
        return bool(self.rate) and self.workload != "fairness"

    @property
    def lower_is_better(self) -> bool:
        """Whether a smaller figure is the better one (memory, latency, CPU)."""
        return self.group in ("memory", "fairness", "cpu")

    def loadgen(self, binary: Path, port: int, **options: object) -> list[str]:
        """The load generator's command for this cell."""
        if self.rate:
            options.setdefault("rate", self.rate)
        return loadgen_command(
            binary,
            port,
            workload=self.workload,
            size=self.size,
            connections=self.connections,
            pipeline=self.pipeline,
            **options,
        )


@dataclass
class Settings:
    duration: float
    warmup: float
    repeat: int
    idle_connections: int
    cells: list[Cell]
    scaling: bool = True  # trio_echo with 1..N workers, count 100 B
    memory: str = PSS  # what memory is measured by (running.memory_measure)


def full_settings() -> Settings:
    cells = [
        Cell("count 100 B", "count", 100, 50),
        Cell("echo 1 KiB", "echo", KiB, 50),
        Cell("framed 100 B x16", "framed", 100, 50, pipeline=16),
        Cell("count 10 MB", "count", 10_000_000, 4, metric="megabytes_per_second"),
        *(
            Cell(
                f"count 100 B at {rate:,}/s",
                "count",
                100,
                50,
                rate=rate,
                metric="server_cpu_us_per_message",
                group="cpu",
            )
            for rate in FIXED_RATES
        ),
    ]
    for size in (64, 4 * KiB, 64 * KiB, MiB, 10_000_000):
        connections = 50 if size <= 64 * KiB else 4
        cells.append(Cell(f"echo {size} B", "echo", size, connections, group="size"))
    for connections in (1, 10, 100, 1000):
        cells.append(
            Cell(f"echo 1 KiB x{connections}", "echo", KiB, connections, group="concurrency")
        )
    cells.append(Cell("idle connections", "idle", group="memory"))
    cells.append(
        Cell(
            "fairness",
            "fairness",
            connections=FAIRNESS_CONNECTIONS,
            rate=FAIRNESS_RATE,
            group="fairness",
        )
    )
    return Settings(duration=2.0, warmup=0.5, repeat=5, idle_connections=10_000, cells=cells)


def quick_settings() -> Settings:
    cells = [
        Cell("count 100 B", "count", 100, 20),
        Cell("echo 1 KiB", "echo", KiB, 20),
        Cell("framed 100 B x16", "framed", 100, 20, pipeline=16),
        Cell(
            "count 100 B at 1,000/s",
            "count",
            100,
            20,
            rate=1_000,
            metric="server_cpu_us_per_message",
            group="cpu",
        ),
        Cell("echo 64 KiB", "echo", 64 * KiB, 4, group="size"),
        Cell("idle connections", "idle", group="memory"),
    ]
    return Settings(
        duration=0.4, warmup=0.1, repeat=1, idle_connections=200, cells=cells, scaling=False
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
    server_user_us_per_message: float = 0.0  # of which in user space
    server_system_us_per_message: float = 0.0  # and in the kernel
    server_cpu_utilization: float = 0.0
    client_cpu_utilization: float = 0.0
    client_wait_us: float = 0.0  # the generator's time runnable but off its CPU
    client_limited: bool = False  # the generator was short of CPU: a lower bound
    saturated: bool = False  # a fixed-rate run that fell short of its rate
    peak_memory: int = 0  # the server's peak, as running.Meter measures memory
    bytes_per_idle_connection: float = 0.0
    note: str = ""

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Run:
        """A run as a results file or journal keeps it. Runs recorded before
        memory was read from the server's control group kept the parent's
        resident peak alone, as ``peak_rss``: it stands for the peak they have."""
        if "peak_rss" in record:
            record = {("peak_memory" if k == "peak_rss" else k): v for k, v in record.items()}
        return cls(**record)


# -- the measurements ---------------------------------------------------------


@dataclass
class Bench:
    """What a measurement needs: the load generator, and the server under test."""

    binary: Path
    process: ServerProcess | None  # None until it is started
    server: Server
    settings: Settings


def measure_load(bench: Bench, cell: Cell, rep: int) -> Run:
    """Throughput, latency and CPU of one load for the settings' duration."""
    binary, process, settings = bench.binary, bench.process, bench.settings
    assert process is not None
    run = Run(bench.server.name, cell.name, rep)
    if settings.warmup > 0:
        run_loadgen(
            cell.loadgen(binary, process.port, duration=settings.warmup),
            timeout=60 + settings.warmup,
        )
    # Persistent connections are measured once each has had an echo: what is
    # timed is the load, not the ramp to it; the server's CPU is read from
    # when the generator says it measures.
    settle = cell.workload in ("echo", "framed") and not cell.rate
    loadgen = start_loadgen(
        cell.loadgen(binary, process.port, duration=settings.duration, settle=settle)
    )
    assert loadgen.stderr is not None
    said = loadgen.stderr.readline()  # "measuring", or nothing if it failed first
    cpu_before, wall_before = process.cpu(), time.monotonic()
    try:
        out, err = loadgen.communicate(timeout=150 + settings.duration)
    except subprocess.TimeoutExpired:
        loadgen.kill()
        loadgen.communicate()
        raise
    cpu = process.cpu() - cpu_before
    wall = time.monotonic() - wall_before
    if loadgen.returncode != 0 or not out.strip() or said.strip() != "measuring":
        raise RuntimeError(f"loadgen failed: {(said + err).strip() or loadgen.returncode}")
    figures = LoadFigures.parse(out)
    run.messages_per_second = figures.messages_per_second
    run.megabytes_per_second = figures.megabytes_per_second
    run.latency_us = dict(figures.latency_us)
    run.errors = figures.errors + figures.connect_errors
    if figures.messages:
        run.server_cpu_us_per_message = cpu.total / figures.messages * 1e6
        run.server_user_us_per_message = cpu.user / figures.messages * 1e6
        run.server_system_us_per_message = cpu.system / figures.messages * 1e6
    run.server_cpu_utilization = cpu.total / wall if wall > 0 else 0.0
    run.client_cpu_utilization = figures.client_cpu_utilization
    run.client_wait_us = figures.client_wait_seconds * 1e6
    run.client_limited = run.client_cpu_utilization >= CLIENT_LIMIT
    run.saturated = cell.saturable and run.messages_per_second < SATURATED * cell.rate
    run.figure = getattr(run, cell.metric)
    run.peak_memory = process.memory().peak
    notes = [figures.first_error] if figures.first_error else []
    if settle and figures.settled < cell.connections:
        notes.append(
            f"measured after 30 s with {figures.settled:,} of {cell.connections:,}"
            " connections echoed once"
        )
    run.note = "; ".join(notes)
    return run


def accepted_connections(pid: int, port: int) -> int:
    """Connections to ``port`` that the server (``pid`` and its descendants) holds.

    A connection the kernel completed but the server has not accepted (its
    listen backlog) is not the server's, and is not counted.
    """
    count = 0
    for process in descendants(pid):
        try:
            connections = psutil.Process(process).net_connections(kind="tcp")
        except psutil.Error:  # it exited meanwhile
            continue
        count += sum(
            1
            for connection in connections
            if connection.laddr
            and connection.laddr.port == port
            and connection.status == psutil.CONN_ESTABLISHED
        )
    return count


def settled_connections(process: ServerProcess, opened: int) -> int:
    """Wait until the server holds every connection, or holds no more for a
    second (a cap that stops it accepting); return how many it holds."""
    accepted, steady_since = -1, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now_accepted = accepted_connections(process.pid, process.port)
        if now_accepted != accepted:
            accepted, steady_since = now_accepted, time.monotonic()
        if accepted >= opened or time.monotonic() - steady_since >= 1.0:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # and let it settle what it holds
    return accepted


def measure_idle(bench: Bench, cell: Cell, rep: int) -> Run:
    """The server's resident memory per connection it accepted that sends nothing.

    On a fresh server process (see `run_matrix`), divided by the connections
    the server actually holds: a cap that stops it accepting, and connect
    errors, are said in the run's note and counted as errors.
    """
    binary, process, settings = bench.binary, bench.process, bench.settings
    assert process is not None
    run = Run(bench.server.name, cell.name, rep)
    count = settings.idle_connections
    before = process.memory().now
    # The generator holds its connections until told (SIGTERM), or 60 s.
    loadgen = start_loadgen(
        loadgen_command(binary, process.port, workload="idle", connections=count, duration=60)
    )
    assert loadgen.stderr is not None
    ready = loadgen.stderr.readline().split()
    opened = int(ready[1]) if len(ready) == 2 and ready[0] == "ready" else 0
    accepted = settled_connections(process, opened)
    after = process.memory().now
    loadgen.terminate()
    out, _err = loadgen.communicate(timeout=60)
    first_error = LoadFigures.parse(out).first_error if out.strip() else ""
    run.errors = count - opened
    run.peak_memory = process.memory().peak
    if accepted:
        run.bytes_per_idle_connection = max(0.0, (after - before) / accepted)
        run.figure = run.bytes_per_idle_connection
    notes = [f"{accepted:,} of {count:,} connections accepted"]
    if opened < count:
        notes.append(f"{count - opened:,} connect errors")
    if accepted < opened:
        notes.append(
            f"{opened - accepted:,} connected as the client saw it but not accepted within a"
            " steady second (a cap on connections, or a short listen backlog: the kernel"
            " completes the client's side before the server's)"
        )
    if first_error:
        notes.append(first_error)
    run.note = "; ".join(notes)
    return run


def measure_fairness(bench: Bench, cell: Cell, rep: int) -> Run:
    """A small-message client's latency while another connection streams
    10 MB messages flat out.

    Both clients share the client CPU; the small one, the probe, runs ahead
    of the stream's generator whenever it has something to do (see
    `running.run_loadgen`), and times `FAIRNESS_SAMPLES` messages at
    `FAIRNESS_RATE` over the cell's connections. The kernel still runs the
    stream's sends before the probe can preempt them, so the probe's time
    waiting for its CPU is recorded, and a run whose probe waited, per
    message, `FAIRNESS_WAIT_SHARE` of its median latency or more is flagged
    (``client_limited``).
    """
    binary, process = bench.binary, bench.process
    assert process is not None
    run = Run(bench.server.name, cell.name, rep)
    rate = cell.rate or FAIRNESS_RATE
    seconds = FAIRNESS_SAMPLES / rate
    hog = start_loadgen(
        loadgen_command(
            binary, process.port, workload="framed", size=10_000_000, duration=seconds + 2
        )
    )
    time.sleep(0.5)
    small = run_loadgen(
        loadgen_command(
            binary,
            process.port,
            workload="framed",
            connections=cell.connections,
            duration=seconds + 1,
            rate=rate,
            messages=FAIRNESS_SAMPLES,
        ),
        timeout=60 + seconds,
        first_in_line=True,
    )
    hog_out, _ = hog.communicate(timeout=120)
    hog_mb = LoadFigures.parse(hog_out).megabytes_per_second if hog_out.strip() else 0.0
    run.latency_us = dict(small.latency_us)
    run.figure = run.latency_us["p99"] / 1000.0  # ms
    run.messages_per_second = small.messages_per_second
    run.megabytes_per_second = hog_mb
    run.errors = small.errors
    run.client_cpu_utilization = small.client_cpu_utilization
    run.client_wait_us = small.client_wait_seconds * 1e6
    waited = run.client_wait_us / small.messages if small.messages else math.inf
    run.client_limited = waited >= FAIRNESS_WAIT_SHARE * run.latency_us.get("p50", 0.0)
    run.peak_memory = process.memory().peak
    run.note = (
        f"10 MB stream alongside: {hog_mb:,.0f} MB/s; the probe timed {small.messages:,}"
        f" messages and waited {run.client_wait_us:,.0f} µs for its CPU"
    )
    return run


MEASURE: dict[str, Callable[[Bench, Cell, int], Run]] = {
    "idle": measure_idle,
    "fairness": measure_fairness,
}


@dataclass
class Journal:
    """The runs measured so far, kept in a file as they are made (one JSON
    object a line), so that a run stopped part way can carry on."""

    path: Path
    runs: list[Run] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, *, resume: bool) -> Journal:
        """The journal at ``path``: what it holds if resuming, else empty."""
        journal = cls(path)
        if resume and path.exists():
            journal.runs = [
                Run.from_record(json.loads(line)) for line in path.read_text().splitlines()
            ]
        else:
            path.write_text("")
        return journal

    def measured(self, server: str, cell: str, rep: int) -> bool:
        return any((r.server, r.cell, r.repetition) == (server, cell, rep) for r in self.runs)

    def add(self, runs: list[Run]) -> None:
        self.runs += runs
        with self.path.open("a") as file:
            file.writelines(json.dumps(asdict(run)) + "\n" for run in runs)


def run_matrix(
    servers: list[Server],
    settings: Settings,
    binary: Path,
    journal: Journal,
    *,
    until: float = math.inf,
    log: bool = True,
) -> bool:
    """Every server on every cell, interleaved over the repetitions.

    Runs the journal already holds are not measured again, and no new
    server process is started after ``until`` (a `time.monotonic` time).

    Returns:
        Whether every run is in the journal now.
    """
    modes = sorted({cell.mode for cell in settings.cells}, key=["count", "echo", "framed"].index)
    made = _Made(runs_to_make(servers, settings))
    made.made = sum(
        journal.measured(server.name, cell.name, rep)
        for rep in range(settings.repeat)
        for server in servers
        for cell in settings.cells
        if cell.mode in server.modes
    )
    complete = True
    for rep in range(settings.repeat):
        order = servers if rep % 2 == 0 else list(reversed(servers))
        for server in order:
            for mode in modes:
                if mode not in server.modes:
                    continue
                cells = [
                    cell
                    for cell in settings.cells
                    if cell.mode == mode and not journal.measured(server.name, cell.name, rep)
                ]
                # Memory is measured on a fresh process: one that served the
                # other loads has grown its heaps.
                batches = [[c for c in cells if c.workload != "idle"]]
                batches += [[c] for c in cells if c.workload == "idle"]
                for batch in filter(None, batches):
                    if time.monotonic() >= until:
                        complete = False
                        continue
                    bench = Bench(binary, None, server, settings)
                    journal.add(_measure_batch(bench, mode, batch, rep, log=log, made=made))
    return complete


def figure_unit(cell: Cell) -> str:
    """The unit of ``cell``'s figure, for a progress line."""
    if cell.workload == "idle":
        return "bytes per idle connection"
    if cell.workload == "fairness":
        return "ms p99 beside a stream"
    return {
        "messages_per_second": "messages/s",
        "megabytes_per_second": "MB/s",
        "server_cpu_us_per_message": "µs server CPU per message",
    }.get(cell.metric, cell.metric)


def runs_to_make(servers: list[Server], settings: Settings) -> int:
    """How many runs `run_matrix` makes: each server on each of its loads, each repetition."""
    loads = sum(cell.mode in server.modes for server in servers for cell in settings.cells)
    return loads * settings.repeat


@dataclass
class _Made:
    """How many runs are made so far, of how many."""

    total: int
    made: int = 0


def _measure_batch(
    bench: Bench, mode: str, cells: list[Cell], rep: int, *, log: bool, made: _Made | None = None
) -> list[Run]:
    """Measure ``cells`` on one server process, started for them."""
    server, settings = bench.server, bench.settings
    try:
        bench.process = process = start(server, mode, cpu=SERVER_CPU)
    except (RuntimeError, NoCompilerError) as error:
        return [Run(server.name, c.name, rep, note=str(error)) for c in cells]
    runs = []
    try:
        for cell in cells:
            measure = MEASURE.get(cell.workload, measure_load)
            try:
                run = measure(bench, cell, rep)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                run = Run(server.name, cell.name, rep, note=f"failed: {error}")
            runs.append(run)
            if made is not None:
                made.made += 1
            if log:
                flags = " (client-limited)" * run.client_limited + " (saturated)" * run.saturated
                count = f"run {made.made}/{made.total}, " if made is not None else ""
                print(
                    f"  [{count}repetition {rep + 1}/{settings.repeat}] {server.name:<17} "
                    f"{cell.name:<22} {run.figure or 0:>14,.1f} {figure_unit(cell)}{flags}"
                    f" {run.note}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        process.stop()
    return runs


@dataclass(frozen=True)
class Scaling:
    """trio_echo's connection rate with a number of workers."""

    workers: int
    messages_per_second: float  # the median
    min: float
    max: float
    server_cpus_busy: float
    client_cpu_utilization: float


def measure_scaling(binary: Path, settings: Settings, log: bool = True) -> list[Scaling]:
    """trio_echo's connection rate with 1 to N workers (N = the CPUs).

    Neither the workers nor the load generator are pinned here: the point
    is how the rate grows with processes, on a machine whose cores the
    load generator shares.
    """
    results: list[Scaling] = []
    cell = Cell("count 100 B", "count", 100, 50)
    for workers in range(1, (os.cpu_count() or 1) + 1):
        rates, cpu_used, client = [], [], []
        for _ in range(settings.repeat):
            process = ServerProcess(trio_echo_command(0, "count", workers=workers))
            try:
                port = process.wait_for_port()
                run_loadgen(
                    cell.loadgen(binary, port, duration=settings.warmup or 0.1),
                    timeout=60,
                    pinned=False,
                )
                before = process.cpu_seconds()
                figures = run_loadgen(
                    cell.loadgen(binary, port, duration=settings.duration),
                    timeout=120,
                    pinned=False,
                )
                rates.append(figures.messages_per_second)
                cpu_used.append((process.cpu_seconds() - before) / settings.duration)
                client.append(figures.client_cpu_utilization)
            finally:
                process.drain()
        entry = Scaling(
            workers=workers,
            messages_per_second=median(rates),
            min=min(rates),
            max=max(rates),
            server_cpus_busy=median(cpu_used),
            client_cpu_utilization=median(client),
        )
        results.append(entry)
        if log:
            print(
                f"  scaling: {workers} worker(s) {entry.messages_per_second:>12,.0f} messages/s",
                file=sys.stderr,
                flush=True,
            )
    return results


def median(values: Iterable[float]) -> float:
    """The median, or 0 for no values."""
    values = list(values)
    return statistics.median(values) if values else 0.0
