"""trio_echo against trio's own floor: its speed targets, in one run.

The floor (benchmarks/peers/trio_floor.py) is the least a trio server does:
raw sockets, a nursery per connection, read then send, no protocol object.
This tool measures trio_echo beside it, beside the Twisted original, and
beside the fastest Python peers that drive the shared ``EchoProtocol``, on
the loads the targets name, and says for each target whether it is met.

Each server runs pinned to CPU 0 and the C load generator to CPU 1; a
server's CPU is the harness's cgroup meter (benchmarks/running.py), and
each load is measured as the harness measures it (benchmarks/measuring.py:
``measure_load`` for a fixed rate or flat out, ``measure_idle`` for memory
per idle connection), on a fresh server process per measurement. Within a
repetition the servers of one load are measured one after the other and
then again in the mirrored order (A B C C B A), and a server's figure in
the repetition is the mean of its two runs: a ratio is then taken per
repetition between runs seconds apart, and a drift of the shared machine
during the load weighs on both sides alike. Every target is given as the
median of those per-repetition values, with the lowest and the highest, and
is met when the value met its goal in at least 80% of the repetitions, not
met when it missed in as many, and not decided otherwise. A
fixed-rate run that fell short of its rate is marked saturated: its CPU
figure was taken at its limit, not at that rate.

Memory per idle connection comes two ways: the harness's (the memory of
the server's control group, the kernel's on its behalf included, per
accepted connection that sends nothing; see benchmarks/running.py's
Meter), and
benchmarks/idle_memory.py's (tracemalloc in an in-process server:
nothing sent, and one digit of a length prefix sent), as a child process.

trio_echo is the one in ``--trio-echo CHECKOUT`` (this checkout by
default): the trio_echo package of its HEAD commit, copied at the start
(``git archive``), so that work going on in that checkout during the run
cannot reach the servers (``--working-tree`` measures the files as
they are instead). Every server process gets the copy first on its
``PYTHONPATH`` (so the peers drive that commit's ``EchoProtocol``); the
commit is recorded with the results, and the checkout's HEAD at the end.

    python benchmarks/floor.py                   # into benchmarks/.cache/results/floor.json
    python benchmarks/floor.py --quick           # the whole path, short
    python benchmarks/floor.py --trio-echo /work/main --commit-results
                                                 # benchmarks/results/floor.json, and the page
    python benchmarks/floor.py --report          # measure nothing: write the page again

``--commit-results`` writes benchmarks/results/floor.json, the generated
part ``floor`` of docs/models.md, and the same section of the harness's
report, benchmarks/results/benchmark.md (see benchmarks/pages.py).
"""

from __future__ import annotations

import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import LOADGEN_SOURCE, NoCompilerError, compile_c
from benchmarks.measuring import (
    SERVER_CPU,
    Bench,
    Cell,
    Run,
    Settings,
    measure_idle,
    measure_load,
    median,
    start,
)
from benchmarks.running import memory_measure
from benchmarks.servers import PEERS, ROOT, SERVERS, Server, trio_echo_command
from benchmarks.summary import Spread, grouped
from benchmarks.tool import Tool
from benchmarks.verdicts import against_goal

KiB = 1024


def _trio_echo(checkout: Path, log_level: str) -> Callable[[int, str], list[str]]:
    """trio_echo's server from ``checkout``, whatever the current folder holds."""

    def build(port: int, mode: str) -> list[str]:
        command = trio_echo_command(port, mode, log_level=log_level)
        run = (
            f"import runpy, sys; sys.path.insert(0, {str(checkout)!r}); "
            "runpy.run_module('trio_echo', run_name='__main__', alter_sys=True)"
        )
        return [command[0], "-c", run, *command[3:]]

    return build


def _floor(port: int, mode: str) -> list[str]:
    return [sys.executable, str(PEERS / "trio_floor.py"), "--port", str(port), "--mode", mode]


def servers(checkout: Path) -> dict[str, Server]:
    """Every server this tool starts, by name."""
    return {
        server.name: server
        for server in [
            Server(
                "trio-echo",
                "trio_echo",
                "trio_echo at --log-level warning (as the harness runs it)",
                _trio_echo(checkout, "WARNING"),
                program=SERVERS["trio-echo"].program,
            ),
            Server(
                "trio-echo-info",
                "trio_echo, --log-level info",
                "trio_echo with its line per connection",
                _trio_echo(checkout, "INFO"),
                program=SERVERS["trio-echo"].program,
            ),
            Server(
                "floor",
                "trio floor",
                "benchmarks/peers/trio_floor.py",
                _floor,
                modes=("count", "echo"),
                program=("benchmarks/peers/trio_floor.py",),
            ),
            SERVERS["twisted-original"],
            SERVERS["asyncio-protocol"],
            SERVERS["uvloop-protocol"],
            SERVERS["twisted"],
        ]
    }


@dataclass(frozen=True)
class Load:
    """A load (one of the harness's cells) and the servers measured on it."""

    cell: Cell
    servers: tuple[str, ...]


TRACEMALLOC = ("idle, nothing sent (tracemalloc)", "idle, one digit sent (tracemalloc)")
"""The loads benchmarks/idle_memory.py measures, trio_echo only."""


@dataclass
class FloorSettings:
    duration: float
    warmup: float
    repeat: int
    idle_connections: int
    tracemalloc_connections: int
    loads: list[Load] = field(default_factory=list)

    def harness(self) -> Settings:
        """The harness's settings, for its measuring functions."""
        return Settings(
            duration=self.duration,
            warmup=self.warmup,
            repeat=self.repeat,
            idle_connections=self.idle_connections,
            cells=[load.cell for load in self.loads],
            scaling=False,
        )


def _loads(connections: int, *, idle: bool = True) -> list[Load]:
    cpu = {"metric": "server_cpu_us_per_message", "group": "cpu"}
    loads = [
        Load(
            Cell("count 100 B at 5,000/s", "count", 100, connections, rate=5_000, **cpu),
            ("trio-echo", "floor", "trio-echo-info"),
        ),
        Load(
            Cell("count 100 B at 20,000/s", "count", 100, connections, rate=20_000, **cpu),
            ("trio-echo", "twisted-original"),
        ),
        Load(
            Cell("count 10 MB x4", "count", 10_000_000, 4, metric="megabytes_per_second"),
            ("trio-echo", "floor"),
        ),
        Load(Cell("echo 1 KiB x50", "echo", KiB, connections), ("trio-echo", "floor")),
        Load(
            Cell("framed 100 B x16", "framed", 100, connections, pipeline=16, **cpu),
            ("trio-echo", "asyncio-protocol", "uvloop-protocol", "twisted"),
        ),
    ]
    if idle:
        loads.append(Load(Cell("idle connections", "idle", group="memory"), ("trio-echo", "floor")))
    return loads


def full_settings() -> FloorSettings:
    return FloorSettings(
        duration=2.5,
        warmup=0.5,
        repeat=7,
        idle_connections=10_000,
        tracemalloc_connections=2_000,
        loads=_loads(50),
    )


def quick_settings() -> FloorSettings:
    return FloorSettings(
        duration=0.4,
        warmup=0.1,
        repeat=2,
        idle_connections=200,
        tracemalloc_connections=100,
        loads=_loads(20),
    )


# -- the targets --------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One speed target.

    ``kind``: ``ratio`` (trio_echo's figure over the reference's; the
    reference is the best of ``against`` in each repetition), ``difference``
    (trio_echo's minus the reference's) or ``absolute`` (trio_echo's own).
    """

    what: str
    load: str
    figure: str  # a key of FIGURES
    kind: str
    bound: float
    at_most: bool = True  # the target is "<= bound"; False: ">= bound"
    server: str = "trio-echo"
    against: tuple[str, ...] = ()
    unit: str = ""

    @property
    def goal(self) -> str:
        sign = "≤" if self.at_most else "≥"
        if self.kind == "ratio":
            reference = " the best of them" if len(self.against) > 1 else ""
            return f"{sign} {self.bound:g}x{reference}"
        return f"{sign} {self.bound:g} {self.unit}"


FIGURES: dict[str, tuple[Callable[[Run], float | None], bool]] = {
    # name: (the figure from a run, whether lower is better)
    "cpu": (lambda run: run.server_cpu_us_per_message or None, True),
    "msg/s": (lambda run: run.messages_per_second or None, False),
    "MB/s": (lambda run: run.megabytes_per_second or None, False),
    "p99": (lambda run: run.latency_us.get("p99"), True),
    "KiB": (lambda run: run.figure / KiB if run.figure is not None else None, True),
}

TARGETS = [
    Target(
        "CPU per connection, count 100 B at 5,000/s",
        "count 100 B at 5,000/s",
        "cpu",
        "ratio",
        1.05,
        against=("floor",),
    ),
    Target(
        "CPU per connection, count 100 B at 20,000/s",
        "count 100 B at 20,000/s",
        "cpu",
        "ratio",
        1.0,
        against=("twisted-original",),
    ),
    Target(
        "MB/s, count 10 MB x4", "count 10 MB x4", "MB/s", "ratio", 0.95, False, against=("floor",)
    ),
    Target(
        "p99 latency, count 10 MB x4", "count 10 MB x4", "p99", "ratio", 1.5, against=("floor",)
    ),
    Target(
        "msg/s, echo 1 KiB x50", "echo 1 KiB x50", "msg/s", "ratio", 0.95, False, against=("floor",)
    ),
    Target(
        "CPU per message, framed 100 B x16",
        "framed 100 B x16",
        "cpu",
        "ratio",
        1.0,
        against=("asyncio-protocol", "uvloop-protocol", "twisted"),
    ),
    Target(
        "the log line at INFO: extra CPU per connection, count 100 B at 5,000/s",
        "count 100 B at 5,000/s",
        "cpu",
        "difference",
        5.0,
        server="trio-echo-info",
        against=("trio-echo",),
        unit="µs",
    ),
    Target(
        "memory per idle connection, nothing sent (the harness)",
        "idle connections",
        "KiB",
        "absolute",
        5.0,
        unit="KiB",
    ),
    *(
        Target(
            f"memory per idle connection, {sent} (idle_memory.py: tracemalloc)",
            load,
            "KiB",
            "absolute",
            5.0,
            unit="KiB",
        )
        for load, sent in zip(TRACEMALLOC, ("nothing sent", "one digit sent"), strict=True)
    ),
]


def assess(target: Target, runs: list[Run]) -> dict[str, Any]:
    """The target's value in each repetition, their median, lowest and highest,
    and its verdict: met when the value met the goal in at least 80% of the
    repetitions, not met when it missed in as many, not decided otherwise
    (benchmarks/verdicts.py)."""
    get, lower_is_better = FIGURES[target.figure]
    by_rep: dict[int, dict[str, Run]] = {}
    for run in runs:
        if run.cell == target.load:
            by_rep.setdefault(run.repetition, {})[run.server] = run
    values, saturated = [], False
    for rep in sorted(by_rep):
        measured = by_rep[rep]
        if target.server not in measured:
            continue
        mine = get(measured[target.server])
        saturated |= measured[target.server].saturated
        references = [
            figure
            for name in target.against
            if name in measured and (figure := get(measured[name])) is not None
        ]
        saturated |= any(measured[name].saturated for name in target.against if name in measured)
        if mine is None or (target.against and len(references) < len(target.against)):
            continue  # a failed run: no value for this repetition
        reference = (min if lower_is_better else max)(references) if references else 0.0
        if target.kind == "ratio":
            values.append(mine / reference)
        elif target.kind == "difference":
            values.append(mine - reference)
        else:
            values.append(mine)
    goal = against_goal(values, target.bound, at_most=target.at_most)
    return {
        "what": target.what,
        "load": target.load,
        "kind": target.kind,
        "goal": target.goal,
        "bound": target.bound,
        "at_most": target.at_most,
        "value": median(values) if values else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
        "values": values,
        "verdict": goal.verdict if values else None,
        "met_in": goal.met_in,
        "saturated": saturated,
        "server": target.server,
        "against": list(target.against),
        "unit": target.unit,
    }


# -- measuring ----------------------------------------------------------------


def tracemalloc_runs(connections: int, rep: int) -> list[Run]:
    """benchmarks/idle_memory.py's figures for trio_echo, as runs."""
    runs = [Run("trio-echo", load, rep) for load in TRACEMALLOC]
    try:
        result = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve().parent / "idle_memory.py"),
                "--connections",
                str(connections),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as error:
        for run in runs:
            run.note = f"failed: {error}"
        return runs
    for run, label in zip(runs, ("nothing sent", "one digit sent"), strict=True):
        match = re.search(rf"^{label}\s+(\d+) B per idle connection", result.stdout, re.MULTILINE)
        if match:
            run.figure = run.bytes_per_idle_connection = float(match[1])
            run.note = f"{connections:,} connections"
        else:
            run.note = f"failed: {result.stderr.strip()[-300:] or result.returncode}"
    return runs


def measure_one(binary: Path, server: Server, load: Load, settings: FloorSettings, rep: int) -> Run:
    """One load on a fresh process of ``server``."""
    cell = load.cell
    bench = Bench(binary, None, server, settings.harness())
    try:
        bench.process = process = start(server, cell.mode, cpu=SERVER_CPU)
    except (RuntimeError, NoCompilerError) as error:
        return Run(server.name, cell.name, rep, note=str(error))
    try:
        measure = measure_idle if cell.workload == "idle" else measure_load
        return measure(bench, cell, rep)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        return Run(server.name, cell.name, rep, note=f"failed: {error}")
    finally:
        process.stop()


def run_all(
    binary: Path, known: dict[str, Server], settings: FloorSettings, *, log: bool = True
) -> list[Run]:
    """Every load's servers, one after the other, over the repetitions.

    Within a repetition each load's servers run twice, in mirrored order
    (A B C C B A; the next repetition starts from the other end), so that a
    drift of the machine during the load weighs on each alike; memory, once.
    """
    runs: list[Run] = []
    for rep in range(settings.repeat):
        for load in settings.loads:
            names = load.servers if rep % 2 == 0 else tuple(reversed(load.servers))
            if load.cell.workload != "idle":
                names += tuple(reversed(names))
            for name in names:
                run = measure_one(binary, known[name], load, settings, rep)
                runs.append(run)
                if log:
                    _log(settings, run, load.cell)
        for run in tracemalloc_runs(settings.tracemalloc_connections, rep):
            runs.append(run)
            if log:
                _log(settings, run, None)
    return runs


def _log(settings: FloorSettings, run: Run, cell: Cell | None) -> None:
    flags = " (client-limited)" * run.client_limited + " (saturated)" * run.saturated
    rate = f" at {run.messages_per_second:,.0f}/s" if cell and cell.workload != "idle" else ""
    cpu = f" cpu {run.server_cpu_us_per_message:,.1f} µs/msg" if rate else ""
    print(
        f"  [{run.repetition + 1}/{settings.repeat}] {run.server:<17} {run.cell:<34}"
        f" {run.figure or 0:>12,.1f}{rate}{cpu}{flags} {run.note}",
        file=sys.stderr,
        flush=True,
    )


def per_repetition(runs: list[Run]) -> list[Run]:
    """One run per server, load and repetition: the mean of its passes
    (a failed pass left out, a repetition with no pass measured kept as failed)."""
    groups: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.server, run.cell, run.repetition), []).append(run)
    combined = []
    for (server, cell, rep), passes in groups.items():
        ok = [run for run in passes if run.figure is not None]
        if len(ok) < 2:
            combined.append(ok[0] if ok else passes[0])
            continue

        def mean(attribute: str, ok: list[Run] = ok) -> float:
            return statistics.fmean(getattr(run, attribute) for run in ok)

        keys = set.intersection(*(set(run.latency_us) for run in ok))
        combined.append(
            Run(
                server,
                cell,
                rep,
                figure=mean("figure"),
                messages_per_second=mean("messages_per_second"),
                megabytes_per_second=mean("megabytes_per_second"),
                latency_us={key: statistics.fmean(r.latency_us[key] for r in ok) for key in keys},
                errors=sum(run.errors for run in passes),
                server_cpu_us_per_message=mean("server_cpu_us_per_message"),
                server_user_us_per_message=mean("server_user_us_per_message"),
                server_system_us_per_message=mean("server_system_us_per_message"),
                server_cpu_utilization=mean("server_cpu_utilization"),
                client_cpu_utilization=mean("client_cpu_utilization"),
                client_wait_us=mean("client_wait_us"),
                client_limited=any(run.client_limited for run in ok),
                saturated=any(run.saturated for run in ok),
                peak_memory=max(run.peak_memory for run in ok),
                bytes_per_idle_connection=mean("bytes_per_idle_connection"),
                note="; ".join(sorted({run.note for run in passes if run.note})),
            )
        )
    return combined


def summarise(runs: list[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per load, per server: each figure's median, lowest and highest over
    the repetitions (each the mean of its passes), the rate reached, how many
    repetitions were saturated, and the passes that failed or had errors."""
    failed = grouped(
        (run for run in runs if run.figure is None), lambda run: run.cell, lambda run: run.server
    )
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    by_load = grouped(per_repetition(runs), lambda run: run.cell, lambda run: run.server)
    for load, row in by_load.items():
        for server, measured in row.items():
            ok = [run for run in measured if run.figure is not None]
            lost = failed.get(load, {}).get(server, [])
            summary.setdefault(load, {})[server] = {
                "figure": Spread.of(run.figure for run in ok).as_dict(),
                "cpu_us_per_message": Spread.of(
                    r.server_cpu_us_per_message for r in ok if r.server_cpu_us_per_message
                ).as_dict(),
                "messages_per_second": Spread.of(r.messages_per_second for r in ok).as_dict(),
                "megabytes_per_second": Spread.of(r.megabytes_per_second for r in ok).as_dict(),
                "p99_us": Spread.of(r.latency_us.get("p99") for r in ok).as_dict(),
                "saturated": sum(1 for run in ok if run.saturated),
                "client_limited": sum(1 for run in ok if run.client_limited),
                "errors": sum(run.errors for run in measured),
                "runs": len(ok),
                "failed": len(lost),
                "notes": sorted({run.note for run in lost}),
            }
    return summary


def _git(checkout: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def snapshot(checkout: Path, folder: Path) -> Path:
    """The trio_echo package as committed at the checkout's HEAD, copied into
    ``folder`` (what the checkout's working tree does meanwhile cannot reach it).

    Raises:
        subprocess.CalledProcessError: If the checkout is not a git repository.
    """
    archive = subprocess.run(
        ["git", "-C", str(checkout), "archive", "--format=tar", "HEAD", "trio_echo"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def imported_from() -> str:
    """Where a server process (a script outside the checkout) imports trio_echo from."""
    result = subprocess.run(
        [sys.executable, "-c", "import trio_echo; print(trio_echo.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return str(Path(result.stdout.strip()).parent.parent)


def checkout_commit(checkout: Path) -> dict[str, object]:
    """What is measured, before the run: `benchmarks.provenance.environment`
    of the checkout (its commit, and whether it had changes not committed),
    with the checkout's folder and its commit's subject."""
    from benchmarks.provenance import environment

    return {
        **environment(root=checkout),
        "trio_echo_checkout": str(checkout),
        "trio_echo_subject": _git(checkout, "log", "-1", "--format=%s"),
    }


TOOL = Tool("floor", "floor.json")


def main(argv: list[str] | None = None) -> int:
    parser = TOOL.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--trio-echo",
        type=Path,
        default=ROOT,
        metavar="CHECKOUT",
        help="the trio_echo checkout to measure (its top folder; default: this one)",
    )
    parser.add_argument(
        "--working-tree",
        action="store_true",
        help="measure the checkout's files as they are, changes included (default: a copy of"
        " its HEAD commit's trio_echo, made at the start)",
    )
    args = parser.parse_args(argv)
    TOOL.full_run_only(parser, args)
    if args.report:
        TOOL.publish()
        return 0
    checkout = args.trio_echo.resolve()
    if not (checkout / "trio_echo" / "__main__.py").exists():
        parser.error(f"--trio-echo {checkout}: no trio_echo package there")
    if len(os.sched_getaffinity(0)) < 2:
        print("floor: needs two CPUs (one for the server, one for the load)", file=sys.stderr)
        return 2
    try:
        binary = compile_c(LOADGEN_SOURCE)
    except NoCompilerError as error:
        print(f"floor: skipped: {error}", file=sys.stderr)
        return 2
    settings = quick_settings() if args.quick else full_settings()
    missing = {name: why for name, server in servers(checkout).items() if (why := server.missing())}
    if missing:
        print(f"floor: cannot run {missing}", file=sys.stderr)
        return 2
    started = time.monotonic()
    load_before = os.getloadavg()
    measured = checkout_commit(checkout)
    from benchmarks.provenance import code_hashes

    code = code_hashes(servers(checkout).values(), root=checkout)
    with tempfile.TemporaryDirectory(prefix="trio-echo-floor-") as folder:
        try:
            source = checkout if args.working_tree else snapshot(checkout, Path(folder))
        except subprocess.CalledProcessError as error:
            parser.error(
                f"--trio-echo {checkout}: no commit to copy ({error.stderr!r});"
                " --working-tree measures its files as they are"
            )
        # Every server process (and idle_memory.py) imports trio_echo from there.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(source), os.environ.get("PYTHONPATH")])
        )
        measured["trio_echo_measured"] = (
            "the working tree" if args.working_tree else "a copy of the HEAD commit"
        )
        if imported_from() != str(source):
            print(
                f"floor: the servers would import trio_echo from {imported_from()}, not {source}",
                file=sys.stderr,
            )
            return 2
        runs = run_all(binary, servers(source), settings)
    env = dict(measured)
    env["trio_echo_checkout_head_after"] = after = _git(checkout, "rev-parse", "HEAD")
    if after != measured["commit"]:
        # Whether the package measured is still the checkout's at the end.
        env["trio_echo_changed_after"] = bool(
            _git(
                checkout,
                "diff",
                "--stat",
                str(measured["commit"]),
                after,
                "--",
                "trio_echo",
            )
        )
    env["seconds"] = round(time.monotonic() - started, 1)
    env["load_average_before"] = [round(value, 2) for value in load_before]
    env["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    document = {
        "environment": env,
        "code": code,
        "settings": {
            "duration": settings.duration,
            "warmup": settings.warmup,
            "repeat": settings.repeat,
            "idle_connections": settings.idle_connections,
            "memory": memory_measure(),
            "tracemalloc_connections": settings.tracemalloc_connections,
            "loads": [
                {**asdict(load.cell), "servers": list(load.servers)} for load in settings.loads
            ],
        },
        "servers": [{"name": s.name, "label": s.label} for s in servers(checkout).values()],
        "targets": [assess(target, per_repetition(runs)) for target in TARGETS],
        "summary": summarise(runs),
        "runs": [asdict(run) for run in runs],
    }
    TOOL.write(document, TOOL.out(args))
    from benchmarks.pages import floor_section

    print("\n".join(floor_section(document)))
    if args.commit_results:
        TOOL.publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
