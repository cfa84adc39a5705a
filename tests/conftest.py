"""Helpers shared by the tests: servers on port 0, and peer processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from trio_echo import EchoServer, ServerConfig, open_listeners

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
LISTENING = re.compile(rb"listening on (?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^\s:]+)):(?P<port>\d+)")


async def start_server(
    nursery: trio.Nursery, host: str = "127.0.0.1", **settings: object
) -> tuple[EchoServer, int]:
    """Start an EchoServer on a free port; return it and its port."""
    server = EchoServer(ServerConfig(**settings), open_listeners(host, 0))  # type: ignore[arg-type]
    addresses = await nursery.start(server.serve)
    return server, addresses[0].port


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (state another process or socket changes)."""
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110  (nothing here to wait on but the state)
            await trio.sleep(0.01)


class Process:
    """A child process whose output goes to files, read on demand.

    Files, not pipes: a chatty child (the Twisted original prints every
    chunk) would block on a full pipe that nobody reads.
    """

    def __init__(self, args: list[str], tmp_path: Path, name: str) -> None:
        self.stdout_path = tmp_path / f"{name}.out"
        self.stderr_path = tmp_path / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT
            )

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()

    def wait_for_port(self, timeout: float = 20.0) -> int:
        """Wait for the 'listening on HOST:PORT' line; return the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.stdout)
            if match:
                return int(match["port"])
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError(
            f"no 'listening on' line; stdout={self.stdout!r} stderr={self.stderr!r}"
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[object]:
    """Start child processes that are killed when the test ends."""
    processes: list[Process] = []

    def start(*args: str, name: str = "proc") -> Process:
        process = Process(python_command(*args), tmp_path, f"{name}{len(processes)}")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


def twisted_available() -> bool:
    try:
        import twisted  # noqa: F401
    except ImportError:
        return False
    return True


requires_twisted = pytest.mark.skipif(
    not twisted_available(), reason="Twisted is not installed (pip install '.[test]')"
)

os.environ.setdefault("PYTHONUNBUFFERED", "1")
