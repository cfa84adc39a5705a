"""Running things: a server as a child process, and the C load generator.

The load generator (benchmarks/loadgen.c) prints one JSON object; it is
parsed into a `LoadFigures` here, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import LISTENING, ROOT, Server

CLIENT_CPU = 1
"""The CPU the load generator is pinned to (the server gets CPU 0)."""


CPU_ROOTS = (
    Path("/sys/fs/cgroup/cpuacct"),  # cgroup v1: cpuacct.usage, nanoseconds
    Path("/sys/fs/cgroup/unified"),  # cgroup v2 beside v1: cpu.stat's usage_usec
    Path("/sys/fs/cgroup"),  # cgroup v2 alone
)
MEMORY_ROOTS = (
    Path("/sys/fs/cgroup/memory"),  # cgroup v1: memory.usage_in_bytes
    Path("/sys/fs/cgroup"),  # cgroup v2 with its memory controller: memory.current
)


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds, in user space and in the kernel."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


@dataclass(frozen=True)
class MemoryUse:
    """Bytes of memory in use now, and at the most so far."""

    now: int
    peak: int


class Meter:
    """All the CPU time and memory of a process and everything it starts.

    The process joins control groups of its own before it runs its program.
    The kernel counts there the CPU of every task that was ever in the
    group, threads and child processes that have exited included, in
    nanoseconds, split into user and system time; and the memory the group's
    tasks are charged for, now and at its peak: their pages, and the
    kernel's memory on their behalf (thread stacks, page tables, socket
    structures), whichever process of the tree holds it. Page cache the
    group first read is charged too; figures taken by difference leave out
    what was read at start-up. (cgroup v1 leaves TCP buffers out unless
    told otherwise, and its counter of memory now is within a few hundred
    KiB, the kernel's per-CPU batches.)

    Where no group can be made (no cgroup file system, or no right to write
    it), the meter asks psutil instead (which reads /proc): the CPU of the
    process (which counts its exited threads), of its waited-for children
    and of its live descendants, in 10 ms ticks, where children that exit
    unwaited-for are lost; and user-space memory only (the proportional set
    size of the process tree, and the process's own peak).
    ``TRIO_ECHO_BENCH_CGROUPS=off`` makes it read /proc even where it could
    make groups.
    """

    def __init__(self) -> None:
        self.cpu_group: Path | None = None
        self.memory_group: Path | None = None
        if os.environ.get("TRIO_ECHO_BENCH_CGROUPS") != "off":
            self.cpu_group = _make_group(CPU_ROOTS, _counts_cpu)
            if self.cpu_group is not None and (self.cpu_group / "memory.current").exists():
                self.memory_group = self.cpu_group  # cgroup v2: one group counts both
            else:
                self.memory_group = _make_group(MEMORY_ROOTS, _counts_memory)
        self._pid = 0

    @property
    def exact(self) -> bool:
        """Whether the meter counts every task's CPU, exited ones included."""
        return self.cpu_group is not None

    @property
    def kernel_memory(self) -> bool:
        """Whether the memory figures are the group's, the kernel's included."""
        return self.memory_group is not None

    def join(self) -> None:
        """Put the calling process in the groups (run in the child, before exec)."""
        for group in self._groups():
            (group / "cgroup.procs").write_text(str(os.getpid()))

    def watch(self, pid: int) -> None:
        """Say which process the /proc fallback reads."""
        self._pid = pid

    def cpu(self) -> CpuTimes:
        """CPU time used so far."""
        group = self.cpu_group
        if group is None:
            return _proc_cpu_times(self._pid)
        if (usage := group / "cpuacct.usage").exists():
            # The exact total, split as the kernel charged it to either mode
            # (in ticks, before Linux 4.7).
            total = int(usage.read_text()) / 1e9
            if (user_file := group / "cpuacct.usage_user").exists():
                user = int(user_file.read_text())
                system = int((group / "cpuacct.usage_sys").read_text())
            else:
                ticks = dict(
                    line.split() for line in (group / "cpuacct.stat").read_text().splitlines()
                )
                user, system = int(ticks["user"]), int(ticks["system"])
            share = user / (user + system) if user + system else 1.0
            return CpuTimes(total * share, total * (1 - share))
        stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
        return CpuTimes(int(stat["user_usec"]) / 1e6, int(stat["system_usec"]) / 1e6)

    def seconds(self) -> float:
        """CPU seconds (user and system) used so far."""
        return self.cpu().total

    def memory(self) -> MemoryUse:
        """Memory in use now, and the peak so far."""
        group = self.memory_group
        if group is None:
            return _proc_memory(self._pid)
        if (usage := group / "memory.usage_in_bytes").exists():
            peak = group / "memory.max_usage_in_bytes"
        else:
            usage, peak = group / "memory.current", group / "memory.peak"
        now = int(usage.read_text())
        return MemoryUse(now, int(peak.read_text()) if peak.exists() else now)

    def close(self) -> None:
        """Kill whatever is left in the groups, and remove the groups."""
        for group in self._groups():
            _empty(group)

    def _groups(self) -> list[Path]:
        return list(dict.fromkeys(g for g in (self.cpu_group, self.memory_group) if g))


CONTROL_GROUP = "the control group's memory, the kernel's on its behalf included"
PSS = "the proportional set size (PSS), user space only"


def memory_measure() -> str:
    """What `Meter` measures memory by here: `CONTROL_GROUP` or `PSS`."""
    meter = Meter()
    try:
        return CONTROL_GROUP if meter.kernel_memory else PSS
    finally:
        meter.close()


def _make_group(roots: tuple[Path, ...], counts: Callable[[Path], bool]) -> Path | None:
    for root in roots:
        if counts(root):
            with contextlib.suppress(OSError):
                return Path(tempfile.mkdtemp(prefix="trio-echo-bench-", dir=root))
    return None


def _counts_cpu(root: Path) -> bool:
    return (root / "cpuacct.usage").exists() or (root / "cpu.stat").exists()


def _counts_memory(root: Path) -> bool:
    if (root / "memory.usage_in_bytes").exists():  # v1
        return True
    controllers = root / "cgroup.subtree_control"  # v2: its groups have memory.current
    return controllers.exists() and "memory" in controllers.read_text().split()


def _empty(group: Path) -> None:
    for _ in range(50):
        try:
            pids = (group / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        group.rmdir()


def _proc_cpu_times(pid: int) -> CpuTimes:
    user = system = 0.0
    for index, process in enumerate(descendants(pid)):
        try:
            times = psutil.Process(process).cpu_times()
        except psutil.Error:  # it exited meanwhile
            continue
        # user and system; and for the process itself, its waited-for
        # children's (its descendants' own are added as they come).
        user += times.user
        system += times.system
        if index == 0:
            user += times.children_user
            system += times.children_system
    return CpuTimes(user, system)


def _proc_memory(pid: int) -> MemoryUse:
    now = 0
    for process in descendants(pid):
        try:
            now += psutil.Process(process).memory_full_info().pss
        except psutil.Error:  # it exited meanwhile
            continue
    # psutil has no peak: the kernel's high-water mark, from /proc.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return MemoryUse(now, now)
    peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return MemoryUse(now, int(peak[1]) * 1024 if peak else now)


def descendants(pid: int) -> list[int]:
    """A process and its descendants, those its threads started included (a
    trio program starts its children from a worker thread)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:  # it exited meanwhile
        return [pid]
    return [pid, *(child.pid for child in children)]


class ServerProcess:
    """A server started as a child process; its output goes to files.

    Files, not pipes: a chatty child (the Twisted original prints every
    chunk) would block on a full pipe that nobody reads.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        cpu: int | None = None,
        directory: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="trio-echo-peer-", dir=directory))
        self.stdout_path = self._dir / "stdout"
        self.stderr_path = self._dir / "stderr"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.meter = meter = Meter()

        def preexec() -> None:
            meter.join()
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
                preexec_fn=preexec,  # noqa: PLW1509  (joins a cgroup, sets CPU affinity)
                pass_fds=tuple(pass_fds),
            )
        self.meter.watch(self.popen.pid)
        self.port = 0

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """CPU seconds used by the server and everything it started, so far."""
        return self.meter.seconds()

    def cpu(self) -> CpuTimes:
        """The same, in user space and in the kernel."""
        return self.meter.cpu()

    def memory(self) -> MemoryUse:
        """Memory of the server and everything it started (see `Meter`)."""
        return self.meter.memory()

    def wait_for_port(self, timeout: float = 30.0) -> int:
        """Wait for the 'listening on HOST:PORT' line; return the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.stdout)
            if match:
                self.port = int(match[1])
                return self.port
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        said = f"stdout={self.stdout[-500:]!r} stderr={self.stderr[-2000:]!r}"
        self.stop()
        raise RuntimeError(f"no 'listening on' line from {self.popen.args}: {said}")

    def stop(self) -> None:
        """Kill the process and what it started (and wait); remove its files."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)
        self._cleanup()

    def _cleanup(self) -> None:
        self.meter.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def drain(self) -> None:
        """Ask the process to stop (SIGINT), then to stop at once; kill it after 20 s."""
        for _ in range(2):
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.stop()
        else:
            self._cleanup()


def start(server: Server, mode: str, *, cpu: int | None = None) -> ServerProcess:
    """Start ``server`` in ``mode`` on a free port and wait until it listens.

    Raises:
        NoCompilerError: If a compiled server cannot be built.
        RuntimeError: If it does not start.
    """
    process = ServerProcess(server.command(0, mode), cpu=cpu)
    process.wait_for_port()
    return process


@dataclass(frozen=True)
class LoadFigures:
    """What one run of the load generator measured."""

    messages: int
    messages_per_second: float
    megabytes_per_second: float
    latency_us: dict[str, float]
    errors: int
    connect_errors: int
    open_connections: int
    client_cpu_utilization: float
    client_wait_seconds: float  # runnable, waiting for a CPU
    settled: int  # connections that had one echo (--settle)
    first_error: str

    @classmethod
    def parse(cls, text: str) -> LoadFigures:
        """Parse the generator's JSON line.

        Raises:
            ValueError: If ``text`` is not the generator's output.
        """
        try:
            data = json.loads(text)
            return cls(
                messages=int(data["messages"]),
                messages_per_second=float(data["messages_per_second"]),
                megabytes_per_second=float(data["megabytes_per_second"]),
                latency_us={key: float(value) for key, value in data["latency_us"].items()},
                errors=int(data["errors"]),
                connect_errors=int(data["connect_errors"]),
                open_connections=int(data["open_connections"]),
                client_cpu_utilization=float(data["client_cpu_utilization"]),
                client_wait_seconds=float(data["client_wait_seconds"]),
                settled=int(data["settled"]),
                first_error=str(data["first_error"]),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError(f"not the load generator's output: {text[:200]!r}") from error


def loadgen_command(
    binary: Path,
    port: int,
    *,
    workload: str,
    size: int = 100,
    connections: int = 1,
    pipeline: int = 1,
    settle: bool = False,
    **options: object,
) -> list[str]:
    """The load generator's command line (options as ``duration=2``, ``rate=200``;
    ``settle``: measure once every connection has had one echo)."""
    arguments: dict[str, object] = {
        "--port": port,
        "--workload": workload,
        "--size": size,
        "--connections": connections,
    }
    if pipeline > 1:
        arguments["--pipeline"] = pipeline
    arguments.update({f"--{key.replace('_', '-')}": value for key, value in options.items()})
    flags = ["--settle"] if settle else []
    return [str(binary), *(str(item) for pair in arguments.items() for item in pair), *flags]


def _pin_to_client_cpu() -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})


def _pin_to_client_cpu_first_in_line() -> None:
    _pin_to_client_cpu()
    with contextlib.suppress(PermissionError):  # not root: an ordinary process
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))


def run_loadgen(
    command: list[str], timeout: float, *, pinned: bool = True, first_in_line: bool = False
) -> LoadFigures:
    """Run the load generator to its end; return what it measured.

    Args:
        command: Its command line (`loadgen_command`).
        timeout: Seconds it may take.
        pinned: Whether it runs on `CLIENT_CPU`.
        first_in_line: Whether it runs ahead of every ordinary process on
            its CPU when it has something to do (real-time priority,
            ``SCHED_FIFO``, where the harness may set it): a probe that
            shares its CPU with another generator is then never kept
            waiting by it. Its figures say how long it waited all the same.

    Raises:
        RuntimeError: If it fails.
    """
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=(
            (_pin_to_client_cpu_first_in_line if first_in_line else _pin_to_client_cpu)
            if pinned
            else None
        ),
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"loadgen failed: {result.stderr.strip() or result.returncode}")
    return LoadFigures.parse(result.stdout)


def start_loadgen(command: list[str]) -> subprocess.Popen[str]:
    """Start the load generator in the background (pinned), its output in pipes."""
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_pin_to_client_cpu,  # noqa: PLW1509
    )


__all__ = [
    "CLIENT_CPU",
    "CpuTimes",
    "LoadFigures",
    "MemoryUse",
    "Meter",
    "ServerProcess",
    "loadgen_command",
    "memory_measure",
    "run_loadgen",
    "start",
    "start_loadgen",
]


def main() -> None:
    """Measure a server's CPU the harness's way: ``running.py cpu -- COMMAND``.

    Starts COMMAND as the harness starts a server, waits for its
    ``listening on`` line, and prints, as JSON, the CPU seconds it and
    everything it started have used by then, and whether that count is
    exact (a cgroup) or read from /proc.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cpu"])
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    process = ServerProcess(args.command)
    try:
        process.wait_for_port()
        print(json.dumps({"cpu_seconds": process.cpu_seconds(), "exact": process.meter.exact}))
    finally:
        process.stop()


if __name__ == "__main__":
    main()
