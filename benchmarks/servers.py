"""Every implementation of the protocol that the benchmarks and the
conformance suite compare, and how to start one as a process.

Each takes ``--port PORT --mode MODE`` and prints ``listening on
HOST:PORT mode=MODE`` once it listens (port 0 lets the system pick).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.build import C_EPOLL_SOURCE, NoCompilerError, compile_c, find_compiler

PEERS = Path(__file__).resolve().parent / "peers"
ROOT = PEERS.parent.parent
LISTENING = re.compile(rb"listening on (?:\[[^\]]+\]|[^\s:]+):(\d+)")
ALL_MODES = ("count", "echo", "framed")


@dataclass(frozen=True)
class Server:
    """One implementation of the protocol.

    Attributes:
        name: Its identifier (command line, results).
        label: How tables name it.
        model: The concurrency model, in a few words.
        modes: The modes it serves.
        requires: Python modules it needs (optional extras).
        build: Makes its command from (port, mode).
    """

    name: str
    label: str
    model: str
    build: Callable[[int, str], list[str]]
    modes: tuple[str, ...] = ALL_MODES
    requires: tuple[str, ...] = field(default=())
    compiled: bool = False

    def missing(self) -> str | None:
        """Why this server cannot run here, or None if it can."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install '.[bench]')"
        if self.compiled and find_compiler() is None:
            return "no C compiler (install gcc)"
        return None

    def command(self, port: int, mode: str) -> list[str]:
        """The command line that starts it on ``port`` in ``mode``."""
        return self.build(port, mode)


def _python_peer(script: str, *extra: str) -> Callable[[int, str], list[str]]:
    def build(port: int, mode: str) -> list[str]:
        return [
            sys.executable,
            str(PEERS / script),
            "--port",
            str(port),
            "--mode",
            mode,
            "--quiet",
            *extra,
        ]

    return build


def _trio_echo(port: int, mode: str) -> list[str]:
    # WARNING: no line per connection, as the other servers log nothing.
    return [
        sys.executable,
        "-m",
        "trio_echo",
        "server",
        "--port",
        str(port),
        "--mode",
        mode,
        "--log-level",
        "WARNING",
    ]


def _c_epoll(port: int, mode: str) -> list[str]:
    return [str(compile_c(C_EPOLL_SOURCE)), "--port", str(port), "--mode", mode]


SERVERS: dict[str, Server] = {
    server.name: server
    for server in [
        Server(
            "twisted-original",
            "Twisted original",
            "Twisted reactor, the course's EchoCount/Echo as written",
            _python_peer("twisted_original.py"),
            modes=("count", "echo"),
            requires=("twisted",),
        ),
        Server(
            "trio-echo",
            "trio_echo",
            "Trio, a nursery per connection",
            _trio_echo,
        ),
        Server(
            "twisted",
            "Twisted",
            "Twisted reactor, a Protocol on the CountFramer",
            _python_peer("twisted_framer.py"),
            requires=("twisted",),
        ),
        Server(
            "asyncio-streams",
            "asyncio streams",
            "asyncio, a coroutine per connection (StreamReader/Writer)",
            _python_peer("asyncio_streams.py"),
        ),
        Server(
            "asyncio-protocol",
            "asyncio protocol",
            "asyncio Protocol/Transport callbacks",
            _python_peer("asyncio_protocol.py"),
        ),
        Server(
            "uvloop-protocol",
            "uvloop protocol",
            "asyncio Protocol/Transport on uvloop",
            _python_peer("asyncio_protocol.py", "--uvloop"),
            requires=("uvloop",),
        ),
        Server(
            "threads",
            "threads",
            "a thread per connection (socketserver) plus a writer thread",
            _python_peer("threads.py"),
        ),
        Server(
            "c-epoll",
            "C epoll",
            "C, one thread on epoll (the physical reference)",
            _c_epoll,
            compiled=True,
        ),
    ]
}


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

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def memory(self) -> dict[str, int]:
        """Resident memory now and at its peak, in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        return {"rss": int(values["VmRSS"]) * 1024, "peak_rss": int(values["VmHWM"]) * 1024}

    def threads(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE)
        return int(match[1]) if match else 0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)


def start(server: Server, mode: str, *, cpu: int | None = None) -> ServerProcess:
    """Start ``server`` in ``mode`` on a free port and wait until it listens.

    Raises:
        NoCompilerError: If a compiled server cannot be built.
        RuntimeError: If it does not start.
    """
    process = ServerProcess(server.command(0, mode), cpu=cpu)
    process.wait_for_port()
    return process


__all__ = ["SERVERS", "NoCompilerError", "Server", "ServerProcess", "start"]
