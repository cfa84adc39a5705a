"""Counted work: the instructions and system calls a server spends per
connection or per message, counted, not timed.

Timed figures on this machine move by a quarter between repetitions;
counts do not. Each server runs once under valgrind's callgrind (user-space
instructions, ``Ir``) and once under ``strace -f`` (system calls), with
``PYTHONHASHSEED=0``, and the C load generator sends it paced messages over
one connection at a time: one message each ``pace`` seconds, slow enough
that the server, slowed some fifty times by valgrind, serves each message
in a wake-up of its own (otherwise it would find the next one already
waiting, and the count would depend on timing).

Figures come by difference, within one run of the server: a warm-up, then
two repetitions of three intervals, each ended by a dump of the counters
(``callgrind_control --dump``; strace's records are split at the same
instants):

- ``N`` paced messages (or connections),
- ``2N`` paced messages,
- nothing, for as long as ``N`` messages take.

One repetition's figure is ``(2N interval - N interval - idle interval) /
N``: what a connection's opening and closing, the start-up, the warm-up
and the server's idle timers cost cancels out; what is left is the work of
``N`` messages. Each figure is given twice, one per repetition; two that
differ by more than ``AGREEMENT`` are flagged with a reason.

What the counts are and are not:

- They count the server's own process and every thread in it; valgrind
  runs one thread at a time, so a program's threads are serialised, but
  the work each does is counted all the same. A thread whose work depends
  on timing (a log writer that wakes every quarter second and writes what
  has gathered) makes a count that depends on timing too, and its flag
  says so.
- The forking server's children are counted too (``--trace-children``),
  each from the moment it is forked (``--zero-before=PyOS_AfterFork_Child``:
  a child starts with its parent's counters otherwise).
- Instructions leave out the kernel, cache misses and the scheduler: they
  decide whether a change makes a server do less, not how fast it is.
  System calls, counted alongside, are where the kernel's share shows.
- Under valgrind, OpenSSL sees valgrind's CPU (fewer features than this
  machine's) and may take other code paths: the results record both
  ``OPENSSL_ia32cap`` values, and the TLS figures are OpenSSL's work on
  valgrind's CPU.

    python benchmarks/work.py                      # every server, every load
    python benchmarks/work.py --servers trio-echo  # some servers
    python benchmarks/work.py --commit-results     # benchmarks/results/work.json, and the page
    python benchmarks/work.py --check              # trio_echo against its committed figures

``--check`` counts trio_echo's loads again and exits 1 when one is more
than ``GUARD`` above its committed figure (``nox -s work_guard``).
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.build import (
    LOADGEN_SOURCE,
    NoCompilerError,
    NoTlsError,
    compile_c,
    compile_tls_loadgen,
)
from benchmarks.floor import servers as floor_servers
from benchmarks.provenance import code_hashes, environment
from benchmarks.running import LoadFigures, ServerProcess, loadgen_command, run_loadgen
from benchmarks.servers import ROOT, SERVERS, Server
from benchmarks.tls import PEERS_COMPARED, make_certificate, peer_servers
from benchmarks.tool import Tool

AGREEMENT = 0.02
"""Two repetitions of a figure that differ by more than this share are flagged."""

GUARD = 0.03
"""``--check`` fails when a count is more than this share above its committed figure."""


@dataclass(frozen=True)
class Load:
    """What the load generator sends, and what one figure is per.

    Attributes:
        name: How results and tables name it.
        mode: The server's mode.
        size: Payload bytes per message.
        pipeline: Messages sent back to back per round (framed).
        unit: What a figure is per: "connection" or "message".
        n: Rounds in the shorter busy interval (the longer has twice as many)
            under callgrind; system calls, which repeat exactly, take a
            quarter as many.
        tls: Whether the connections are TLS.
    """

    name: str
    mode: str
    size: int
    unit: str
    n: int
    pipeline: int = 1
    tls: bool = False


LOADS = {
    load.name: load
    for load in [
        Load("count 100 B", "count", 100, "connection", n=200),
        Load("echo 1 KiB", "echo", 1024, "message", n=300),
        Load("framed 100 B x16", "framed", 100, "message", n=100, pipeline=16),
        Load("TLS, count 100 B", "count", 100, "connection", n=100, tls=True),
    ]
}

LOG_LOAD = "count 100 B"
"""The load on which trio_echo's line per connection is counted (INFO against WARNING)."""


@dataclass(frozen=True)
class Subject:
    """A server as this tool runs it on one load.

    Attributes:
        name: Its name in the results.
        label: How tables name it.
        command: Its command line, from the TLS chain's file (None: plain TCP).
        server: What its code is, for `benchmarks.provenance` (named ``name``).
        forks: Whether it serves each connection in a child process.
    """

    name: str
    label: str
    command: Callable[[Path | None], list[str]]
    server: Server
    forks: bool = False


def _plain(server: Server, mode: str) -> Callable[[Path | None], list[str]]:
    def command(chain: Path | None) -> list[str]:
        return server.command(0, mode)

    return command


TLS_SKIPPED = ("trio-tls-bio",)
"""benchmarks/tls.py's TLS peers not counted: the MemoryBIO variant is a
measurement of trio's SSLStream, not a server of the comparison."""


def subjects(load: Load) -> list[Subject]:
    """Every server this tool counts on ``load``: the comparison's, the trio
    floor, and, on `LOG_LOAD`, trio_echo at INFO."""
    if load.tls:
        servers = peer_servers()
        return [
            Subject(peer.name, peer.label, peer.command, servers[peer.name])
            for peer in PEERS_COMPARED
            if peer.tls and peer.name not in TLS_SKIPPED
        ]
    extra = floor_servers(ROOT)
    listed = [server for server in SERVERS.values() if server.name != "trio-echo-baseline"]
    listed.insert(2, extra["floor"])
    if load.name == LOG_LOAD:
        listed.insert(2, extra["trio-echo-info"])
    return [
        Subject(
            server.name,
            server.label,
            _plain(server, load.mode),
            server,
            forks=server.name == "forking",
        )
        for server in listed
        if load.mode in server.modes and server.missing() is None
    ]


def counted_servers() -> list[Server]:
    """Every server counted on some load, named as the results name it."""
    found: dict[str, Server] = {}
    for load in LOADS.values():
        found.update((subject.name, subject.server) for subject in subjects(load))
    return list(found.values())


def _loadgen(
    binary: Path, port: int, load: Load, *, rounds: int, pace: float, ca: Path | None
) -> list[str]:
    """The load generator: ``rounds`` rounds one ``pace`` apart, or, with no
    rounds, back to back for a second and a half (the warm-up)."""
    options: dict[str, object] = {"duration": 1.5}
    if ca is not None:
        options["tls_ca"] = ca
    if rounds:
        options = {
            **options,
            "rate": f"{1 / pace:.3f}",
            "messages": rounds * load.pipeline,
            "duration": rounds * pace * 4 + 10,
        }
    return loadgen_command(
        binary,
        port,
        workload=load.mode,
        size=load.size,
        connections=1,
        pipeline=load.pipeline,
        **options,
    )


def _run_loadgen(command: list[str]) -> LoadFigures:
    """Run the load generator unpinned (two servers may be counted at once);
    a run with an error counts nothing."""
    figures = run_loadgen(command, timeout=900, pinned=False)
    if figures.errors or figures.connect_errors:
        raise RuntimeError(f"loadgen saw errors: {figures.first_error}")
    return figures


@dataclass
class Busy:
    """What one busy interval did."""

    messages: int
    seconds: float
    p90_us: float  # the latency of a round, its 90th percentile


class Driver:
    """Sends one server its paced rounds, interval by interval."""

    def __init__(self, port: int, load: Load, binary: Path, ca: Path | None) -> None:
        self.port, self.load, self.binary, self.ca = port, load, binary, ca
        self.pace = 0.0

    def warm_up(self) -> float:
        """Serve rounds back to back for a while; return a pace three times a round's p90."""
        command = _loadgen(self.binary, self.port, self.load, rounds=0, pace=0, ca=self.ca)
        service = _run_loadgen(command).latency_us["p90"] / 1e6
        return min(MAX_PACE, max(MIN_PACE, math.ceil(service * 3000) / 1000))

    def busy(self, rounds: int) -> Busy:
        """Send ``rounds`` paced rounds, then wait out the server's last wake-up."""
        command = _loadgen(
            self.binary, self.port, self.load, rounds=rounds, pace=self.pace, ca=self.ca
        )
        started = time.monotonic()
        figures = _run_loadgen(command)
        time.sleep(self.pace * 2)
        return Busy(figures.messages, time.monotonic() - started, figures.latency_us["p90"])

    def units(self, messages: int) -> int:
        """How many of the load's units ``messages`` messages are."""
        return messages if self.load.unit == "message" else messages // self.load.pipeline


MIN_PACE, MAX_PACE = 0.01, 0.25
"""The pace's bounds, in seconds between rounds."""

INTERVAL, MIN_ROUNDS = 8.0, 20
"""A slow server (a long pace) takes fewer rounds than its load's ``n``:
as many as ``INTERVAL`` seconds hold, and ``MIN_ROUNDS`` at least."""


def repetition(
    driver: Driver, mark: Callable[[], Counter[str]], n: int
) -> tuple[Counter[str], int, float]:
    """One repetition: ``N`` rounds, ``2N`` rounds, then as long idle as ``N`` took.

    ``mark`` ends an interval and returns what was counted in it, by name.
    Returns the counts of ``N`` rounds by difference, the units they are,
    and the worse p90 latency (µs) of the two busy intervals.
    """
    short = driver.busy(n)
    counted_short = mark()
    long = driver.busy(2 * n)
    counted_long = mark()
    time.sleep(max(0.0, long.seconds - short.seconds))
    counted_idle = mark()
    counted = Counter(counted_long)
    counted.subtract(counted_short)
    counted.subtract(counted_idle)
    return counted, driver.units(long.messages - short.messages), max(short.p90_us, long.p90_us)


def _callgrind_total(path: Path) -> int:
    match = re.search(r"^totals: (\d+)", path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no totals in {path}")
    return int(match[1])


class Callgrind:
    """A server under callgrind, its counters read at each dump."""

    def __init__(self, folder: Path, *, forks: bool) -> None:
        self.folder, self.forks = folder, forks
        self.dumps = 0
        self._children_seen: set[Path] = set()

    def command(self, command: list[str]) -> list[str]:
        options = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={self.folder}/callgrind.%p",
            "--dump-instr=no",
            "--dump-line=no",
        ]
        if self.forks:
            options += ["--trace-children=yes", "--zero-before=PyOS_AfterFork_Child"]
        return ["env", "PYTHONHASHSEED=0", *options, *command]

    def dump(self, pid: int) -> Counter[str]:
        """Dump the counters; the instructions since the last dump, children's included."""
        subprocess.run(
            ["callgrind_control", "--dump", str(pid)], capture_output=True, check=True, timeout=300
        )
        self.dumps += 1
        path = self.folder / f"callgrind.{pid}.{self.dumps}"
        for _ in range(1200):
            if path.exists() and "\ntotals:" in path.read_text():
                break
            time.sleep(0.05)
        return Counter(Ir=_callgrind_total(path) + self._children(pid))

    def _children(self, parent: int) -> int:
        """The instructions of the children that exited since the last dump.

        A child writes its counters as it exits: wait until no new file
        has come for a second.
        """
        if not self.forks:
            return 0
        found: list[Path] = []
        while True:
            time.sleep(1.0)
            now = [
                path
                for path in self.folder.glob("callgrind.*")
                if path not in self._children_seen
                and not path.name.startswith(f"callgrind.{parent}")
            ]
            if len(now) == len(found):
                break
            found = now
        self._children_seen.update(found)
        return sum(_callgrind_total(path) for path in found)


SYSCALL = re.compile(r"^\d+\s+(\d+\.\d+)\s+([a-z_0-9]+)\(")
"""A system call's first line in ``strace -f -ttt`` output (a resumed one starts ``<...``)."""


def syscalls_between(trace: Path, start: float, end: float) -> Counter[str]:
    """The system calls begun between ``start`` and ``end`` (epoch seconds), by name."""
    counts: Counter[str] = Counter()
    with trace.open() as lines:
        for line in lines:
            match = SYSCALL.match(line)
            if match and start <= float(match[1]) < end:
                counts[match[2]] += 1
    return counts


class Strace:
    """A server under ``strace -f``, its record split at each mark."""

    def __init__(self, folder: Path) -> None:
        self.trace = folder / "strace"
        self.last = 0.0

    def command(self, command: list[str]) -> list[str]:
        return [
            "env",
            "PYTHONHASHSEED=0",
            "strace",
            "-f",
            "-ttt",
            "-qq",
            "-o",
            str(self.trace),
            *command,
        ]

    def mark(self) -> Counter[str]:
        """The system calls since the last mark."""
        now = time.time()
        time.sleep(0.3)  # strace writes behind the calls it records
        counts = syscalls_between(self.trace, self.last, now)
        self.last = now
        return counts


@contextmanager
def _started(command: list[str], *, timeout: float) -> Iterator[ServerProcess]:
    process = ServerProcess(command)
    try:
        process.wait_for_port(timeout=timeout)
        yield process
    finally:
        process.stop()


def count(subject: Subject, load: Load, rig: Rig) -> dict[str, Any]:
    """Count ``subject`` on ``load``: instructions, then system calls, two repetitions each."""
    command = subject.command(rig.chain if load.tls else None)
    binary = rig.tls_loadgen if load.tls else rig.loadgen
    ca = rig.ca if load.tls else None
    with tempfile.TemporaryDirectory(prefix="trio-echo-work-") as scratch:
        callgrind = Callgrind(Path(scratch), forks=subject.forks)
        instructions, p90s = [], []
        with _started(callgrind.command(command), timeout=600) as process:
            driver = Driver(process.port, load, binary, ca)
            driver.pace = driver.warm_up()
            callgrind.dump(process.pid)
            rounds = min(load.n, max(MIN_ROUNDS, int(INTERVAL / driver.pace)))
            for _ in range(2):
                counted, units, p90 = repetition(
                    driver, lambda: callgrind.dump(process.pid), rounds
                )
                instructions.append(round(counted["Ir"] / units))
                p90s.append(p90)
        strace = Strace(Path(scratch))
        syscalls, by_name = [], []
        with _started(strace.command(command), timeout=120) as process:
            pace = driver.pace
            driver = Driver(process.port, load, binary, ca)
            driver.warm_up()
            driver.pace = pace
            strace.mark()
            for _ in range(2):
                counted, units, _ = repetition(driver, strace.mark, max(MIN_ROUNDS, rounds // 4))
                syscalls.append(round(sum(counted.values()) / units, 3))
                by_name.append(
                    {
                        name: round(value / units, 3)
                        for name, value in sorted(counted.items())
                        if abs(value / units) >= 0.005
                    }
                )
    return {
        "label": subject.label,
        "instructions": instructions,
        "syscalls": syscalls,
        "syscalls_by_name": by_name,
        "pace_ms": round(driver.pace * 1000, 1),
        "rounds": rounds,
        "p90_ms": [round(p / 1000, 2) for p in p90s],
        "flag": flag(subject, instructions, p90s, driver.pace),
    }


def flag(subject: Subject, instructions: list[int], p90s: list[float], pace: float) -> str:
    """Why a figure may not be what it says, or "" when nothing says so."""
    reasons = []
    low, high = min(instructions), max(instructions)
    if low <= 0 or (high - low) / low > AGREEMENT:
        reason = f"its two counts differ by {(high - low) / max(low, 1):.1%}"
        if subject.name == "trio-echo-info":
            reason += " (its log writer batches what gathers each quarter second)"
        reasons.append(reason)
    if max(p90s) > pace * 1e6:
        reasons.append(
            f"a tenth of the rounds or more took longer than the pace (p90"
            f" {max(p90s) / 1000:.1f} ms, paced {pace * 1000:.0f} ms): they may have"
            " shared wake-ups"
        )
    return "; ".join(reasons)


@dataclass
class Rig:
    """The load generators and, for TLS, the certificate."""

    loadgen: Path
    tls_loadgen: Path | None
    chain: Path | None
    ca: Path | None


def openssl_caps() -> dict[str, str | None]:
    """OpenSSL's CPU capability vector (``OPENSSL_ia32cap``), natively and under valgrind."""
    caps: dict[str, str | None] = {}
    for name, prefix in (("native", []), ("valgrind", ["valgrind", "-q"])):
        try:
            said = subprocess.run(
                [*prefix, "openssl", "info", "-cpusettings"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            ).stdout
        except OSError:
            said = ""
        match = re.search(r"OPENSSL_ia32cap=(\S+)", said)
        caps[name] = match[1] if match else None
    return caps


def _rig(loads: list[Load], folder: Path) -> Rig:
    loadgen = compile_c(LOADGEN_SOURCE)
    if not any(load.tls for load in loads):
        return Rig(loadgen, None, None, None)
    chain, ca = make_certificate(folder)
    return Rig(loadgen, compile_tls_loadgen(), chain, ca)


def figure(entry: dict[str, Any]) -> float:
    """One entry's instructions per unit: the mean of its two repetitions."""
    return sum(entry["instructions"]) / len(entry["instructions"])


def run(
    loads: list[Load], names: set[str] | None, *, jobs: int, log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Count every server (or those in ``names``) on ``loads``, ``jobs`` at a time."""
    with tempfile.TemporaryDirectory(prefix="trio-echo-work-") as folder:
        rig = _rig(loads, Path(folder))
        tasks = [
            (load, subject)
            for load in loads
            for subject in subjects(load)
            if names is None or subject.name in names
        ]
        figures: dict[str, dict[str, Any]] = {load.name: {} for load in loads}
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = {
                pool.submit(count, subject, load, rig): (load, subject) for load, subject in tasks
            }
            for future in concurrent.futures.as_completed(futures):
                load, subject = futures[future]
                try:
                    entry = future.result()
                except (RuntimeError, subprocess.SubprocessError, OSError) as error:
                    entry = {"label": subject.label, "error": str(error)[:500]}
                    log(f"{load.name:18} {subject.name:22} failed: {entry['error']}")
                else:
                    log(
                        f"{load.name:18} {subject.name:22} {entry['instructions']} instructions,"
                        f" {entry['syscalls']} system calls per {load.unit}"
                        + (f"  [{entry['flag']}]" if entry["flag"] else "")
                    )
                figures[load.name][subject.name] = entry
    return {
        name: {server: row[server] for server in sorted(row, key=_order(name))}
        for name, row in figures.items()
    }


def _order(load: str) -> Callable[[str], int]:
    names = [subject.name for subject in subjects(LOADS[load])]
    return lambda name: names.index(name) if name in names else len(names)


GUARDED = ("trio-echo", "trio-echo-info", "trio-echo-tls")
"""The servers ``--check`` counts: trio_echo in each of its forms."""


def over_guard(
    document: dict[str, Any], counted: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], str]:
    """What ``counted`` does ``GUARD`` or more above ``document``'s figures, in words.

    A count's lower repetition decides: a round that shared a wake-up, or
    waited for a client the machine was slow to run, only adds work.
    """
    over = {}
    for load, row in counted.items():
        for server, entry in row.items():
            committed = document["figures"].get(load, {}).get(server)
            if committed is None or "error" in committed:
                continue
            if "error" in entry:
                over[load, server] = f"{load}, {server}: {entry['error']}"
                continue
            before, after = figure(committed), min(entry["instructions"])
            if after > before * (1 + GUARD):
                over[load, server] = (
                    f"{load}, {entry['label']}: {after:,.0f} instructions per"
                    f" {LOADS[load].unit}, {after / before - 1:+.1%} on the committed {before:,.0f}"
                )
    return over


def check(document: dict[str, Any], loads: list[Load], *, jobs: int) -> list[str]:
    """Count trio_echo again on ``loads``: what it does ``GUARD`` or more above its
    committed figures, in words (nothing when it does not).

    A load over the guard is counted once more, and fails only if it is
    over again: more work in the code shows both times, a slow moment of
    the machine seldom twice.
    """
    first = over_guard(document, run(loads, set(GUARDED), jobs=jobs))
    if not first:
        return []
    loads_over = [LOADS[load] for load in {load for load, _ in first}]
    again = over_guard(document, run(loads_over, {server for _, server in first}, jobs=jobs))
    return [
        f"{again[key]} (the first count: {first[key].rsplit(': ', 1)[-1]})"
        for key in again
        if key in first
    ]


def merge(committed: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``committed`` with the servers ``update`` counted again put in their place.

    The code hashes of the servers counted again are ``update``'s; the run
    that counted them is listed under ``"updates"`` with its environment.
    """
    document = json.loads(json.dumps(committed))
    counted: set[str] = set()
    for load, row in update["figures"].items():
        document["figures"].setdefault(load, {}).update(row)
        order = _order(load)
        document["figures"][load] = dict(
            sorted(document["figures"][load].items(), key=lambda item: order(item[0]))
        )
        counted.update(row)
    document["code"].update({name: update["code"][name] for name in counted})
    document.setdefault("updates", []).append(
        {
            "servers": sorted(counted),
            "loads": sorted(update["figures"]),
            "minutes": update["minutes"],
            "environment": update["environment"],
        }
    )
    return document


def _names(text: str | None, known: list[str], what: str) -> list[str] | None:
    """The names a comma-separated list gives, each one of ``known`` (a name
    may hold a comma itself: "TLS, count 100 B"), or None for no list.

    Raises:
        ValueError: If a name is not known.
    """
    if not text:
        return None
    pieces = [piece.strip() for piece in text.split(",")]
    names, unknown, at = [], [], 0
    while at < len(pieces):
        # The longest run of pieces from here that is one known name.
        end = next(
            (end for end in range(len(pieces), at, -1) if ", ".join(pieces[at:end]) in known),
            None,
        )
        if end is None:
            unknown.append(pieces[at])
            at += 1
        else:
            names.append(", ".join(pieces[at:end]))
            at = end
    if unknown:
        raise ValueError(f"no {what} named {', '.join(unknown)} (there are: {', '.join(known)})")
    return names


TOOL = Tool("work.py", "work.json")


def main(argv: list[str] | None = None) -> int:
    parser = TOOL.parser(
        __doc__.splitlines()[0],
        quick=None,
        report=None,
        commit=f"write {TOOL.committed} and the pages; with --servers or --loads, put what"
        " they count in place of the committed figures",
    )
    parser.add_argument("--servers", help="comma-separated server names (default: every one)")
    parser.add_argument(
        "--loads", help=f"comma-separated loads (default: every one: {', '.join(LOADS)})"
    )
    parser.add_argument("--jobs", type=int, default=2, help="servers counted at once (default 2)")
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"count trio_echo; fail if it does {GUARD * 100:.0f}%% more than committed",
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "strace"):
        if shutil.which(tool) is None:
            print(f"work.py: {tool} is not installed (apt-get install valgrind strace)")
            return 2
    try:
        load_names = _names(args.loads, list(LOADS), "load")
        names = _names(args.servers, [server.name for server in counted_servers()], "server")
    except ValueError as error:
        parser.error(str(error))
    loads = [LOADS[name] for name in load_names or LOADS]
    if args.check:
        if not TOOL.committed.exists():
            print(f"work.py: no committed figures to check against ({TOOL.committed} is missing)")
            return 2
        failures = check(json.loads(TOOL.committed.read_text()), loads, jobs=args.jobs)
        for failure in failures:
            print(f"more work than committed: {failure}")
        print("every count within the guard" if not failures else f"{len(failures)} over the guard")
        return 1 if failures else 0
    started = time.monotonic()
    measured = {
        "environment": environment(),
        "openssl_ia32cap": openssl_caps(),
        "code": code_hashes(counted_servers()),
    }
    try:
        figures = run(loads, set(names) if names else None, jobs=args.jobs)
    except (NoCompilerError, NoTlsError) as error:
        print(f"work.py: {error}")
        return 2
    document = {
        **measured,
        "settings": {
            "loads": {load.name: asdict(load) for load in LOADS.values()},
            "jobs": args.jobs,
            "pace_ms": [MIN_PACE * 1000, MAX_PACE * 1000],
        },
        "minutes": round((time.monotonic() - started) / 60, 1),
        "figures": figures,
    }
    if args.commit_results and (names or load_names):
        document = merge(json.loads(TOOL.committed.read_text()), document)
    out = TOOL.write(document, TOOL.out(args))
    print(f"wrote {out} ({round((time.monotonic() - started) / 60, 1)} minutes)")
    if args.commit_results:
        TOOL.publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
