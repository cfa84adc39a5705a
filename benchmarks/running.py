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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import LISTENING, ROOT, Server

CLIENT_CPU = 1
"""The CPU the load generator is pinned to (the server gets CPU 0)."""


CGROUP_ROOTS = (
    Path("/sys/fs/cgroup/cpuacct"),  # cgroup v1: cpuacct.usage, nanoseconds
    Path("/sys/fs/cgroup/unified"),  # cgroup v2 beside v1: cpu.stat's usage_usec
    Path("/sys/fs/cgroup"),  # cgroup v2 alone
)


class CpuMeter:
    """All the CPU time a process and everything it starts use, alive or exited.

    The process joins a control group of its own before it runs its
    program, and the kernel counts there the CPU of every task that was ever
    in the group: threads and child processes that have exited included, in
    nanoseconds. Where no group can be made (no cgroup file system, or no
    right to write it), the meter asks psutil instead (which reads /proc):
    the process's own time (which counts its exited threads) and what its
    waited-for children used, and its live descendants' time, in 10 ms
    ticks; children that exit unwaited-for are lost there, and the harness
    says so. ``TRIO_ECHO_BENCH_CGROUPS=off`` makes it read /proc even where
    it could make a group.
    """

    def __init__(self) -> None:
        self.group: Path | None = None
        roots = () if os.environ.get("TRIO_ECHO_BENCH_CGROUPS") == "off" else CGROUP_ROOTS
        for root in roots:
            if not ((root / "cpuacct.usage").exists() or (root / "cpu.stat").exists()):
                continue
            with contextlib.suppress(OSError):
                self.group = Path(tempfile.mkdtemp(prefix="trio-echo-bench-", dir=root))
                break
        self._pid = 0

    @property
    def exact(self) -> bool:
        """Whether the meter counts every task, exited ones included."""
        return self.group is not None

    def join(self) -> None:
        """Put the calling process in the group (run in the child, before exec)."""
        if self.group is not None:
            (self.group / "cgroup.procs").write_text(str(os.getpid()))

    def watch(self, pid: int) -> None:
        """Say which process the /proc fallback reads."""
        self._pid = pid

    def seconds(self) -> float:
        """CPU seconds (user and system) used so far."""
        if self.group is not None:
            if (usage := self.group / "cpuacct.usage").exists():
                return int(usage.read_text()) / 1e9
            stat = (self.group / "cpu.stat").read_text()
            match = re.search(r"^usage_usec (\d+)", stat, re.MULTILINE)
            return int(match[1]) / 1e6 if match else 0.0
        return _proc_cpu_seconds(self._pid)

    def close(self) -> None:
        """Kill whatever is left in the group, and remove the group."""
        if self.group is None:
            return
        for _ in range(50):
            try:
                pids = (self.group / "cgroup.procs").read_text().split()
            except OSError:
                return
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            self.group.rmdir()


def _proc_cpu_seconds(pid: int) -> float:
    total = 0.0
    for index, process in enumerate(descendants(pid)):
        try:
            times = psutil.Process(process).cpu_times()
        except psutil.Error:  # it exited meanwhile
            continue
        # user and system; and for the process itself, its waited-for
        # children's (its descendants' own are added as they come).
        total += times.user + times.system
        if index == 0:
            total += times.children_user + times.children_system
    return total


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
        self.meter = meter = CpuMeter()

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
    **options: object,
) -> list[str]:
    """The load generator's command line (options as ``duration=2``, ``rate=200``)."""
    arguments: dict[str, object] = {
        "--port": port,
        "--workload": workload,
        "--size": size,
        "--connections": connections,
    }
    if pipeline > 1:
        arguments["--pipeline"] = pipeline
    arguments.update({f"--{key.replace('_', '-')}": value for key, value in options.items()})
    return [str(binary), *(str(item) for pair in arguments.items() for item in pair)]


def _pin_to_client_cpu() -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})


def run_loadgen(command: list[str], timeout: float, *, pinned: bool = True) -> LoadFigures:
    """Run the load generator to its end; return what it measured.

    Raises:
        RuntimeError: If it fails.
    """
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=_pin_to_client_cpu if pinned else None,
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
    "LoadFigures",
    "ServerProcess",
    "loadgen_command",
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
