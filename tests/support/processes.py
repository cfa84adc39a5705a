"""Programs started for a test: trio_echo's command line, the peers, tools."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
COVERAGE_IN_CHILDREN = "COVERAGE_PROCESS_CONFIG"
"""Set by coverage (``patch = ["subprocess"]``) for the Python programs the tests
start to measure themselves; the peers, which are not trio_echo, go without."""
LISTENING = re.compile(rb"listening on (?:\[[^\]]+\]|[^\s:]+):(\d+)")


class ChildProcess:
    """A program started for a test; its output goes to files.

    Files, not pipes: a chatty child (the Twisted original prints every
    chunk) would block on a full pipe that nobody reads.
    """

    def __init__(
        self,
        command: Sequence[str],
        directory: Path,
        *,
        pass_fds: Sequence[int] = (),
        measured: bool = True,
    ) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not measured:
            env.pop(COVERAGE_IN_CHILDREN, None)
        self.stdout_path = Path(tempfile.mkstemp(prefix="stdout-", dir=directory)[1])
        self.stderr_path = Path(tempfile.mkstemp(prefix="stderr-", dir=directory)[1])
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.popen = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
                pass_fds=tuple(pass_fds),
            )
        self.port = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes()

    def rss(self) -> int:
        """Resident memory now, in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match[1]) * 1024

    def wait_for_port(self, timeout: float = 30.0) -> int:
        """Wait for the 'listening on HOST:PORT' line; return the port."""
        self.wait_for_line(LISTENING, timeout)
        match = LISTENING.search(self.stdout)
        assert match is not None
        self.port = int(match[1])
        return self.port

    def wait_for_line(self, pattern: re.Pattern[bytes], timeout: float = 30.0) -> None:
        """Wait until standard output has a match for ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern.search(self.stdout):
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"no line matching {pattern.pattern!r} from {self.popen.args}: "
            f"stdout={self.stdout[-500:]!r} stderr={self.stderr[-2000:]!r}"
        )

    def wait_for_log(self, text: bytes, timeout: float = 30.0) -> None:
        """Wait until standard error (the log) has ``text``; fail if the process
        exits first, or once ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.popen.poll() is None, f"exited without {text!r}: {self.stderr[-2000:]!r}"
            assert time.monotonic() < deadline, f"no {text!r} in {self.stderr[-2000:]!r}"
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the process, and its children (workers run in sessions of their own)."""
        for pid in children(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)


def children(pid: int) -> list[int]:
    """The child processes of ``pid``, whichever of its threads started them."""
    found = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in path.read_text().split()]
        except FileNotFoundError:  # that thread has ended
            continue
    return sorted(found)


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def twisted_available() -> bool:
    try:
        import twisted  # noqa: F401
    except ImportError:
        return False
    return True


requires_twisted = pytest.mark.skipif(
    not twisted_available(), reason="Twisted is not installed (pip install '.[test]')"
)
"""For the tests that run the Twisted original (``benchmarks/peers/twisted_original.py``)."""
