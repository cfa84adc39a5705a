"""Running things: a server as a child process, and the C load generator.

The load generator (benchmarks/loadgen.c) prints one JSON object; it is
parsed into a `LoadFigures` here, once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import LISTENING, ROOT, Server

CLIENT_CPU = 1
"""The CPU the load generator is pinned to (the server gets CPU 0)."""


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
        preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
                preexec_fn=preexec,  # noqa: PLW1509  (only sets CPU affinity)
                pass_fds=tuple(pass_fds),
            )
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
        self.stop()
        raise RuntimeError(
            f"no 'listening on' line from {self.popen.args}: "
            f"stdout={self.stdout[-500:]!r} stderr={self.stderr[-2000:]!r}"
        )

    def stop(self) -> None:
        """Kill the process (and wait for it)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)

    def drain(self) -> None:
        """Ask the process to stop (SIGINT), then to stop at once; kill it after 20 s."""
        for _ in range(2):
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.stop()


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
