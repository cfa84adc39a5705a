"""Servers that stay up, as a user runs them: standard output that cannot
be written is one warning, not the end of the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ChildProcess

Spawn = Callable[..., ChildProcess]


def wait_for_count(process: ChildProcess, text: bytes, count: int, timeout: float = 30) -> None:
    """Wait until the log has ``text`` ``count`` times (polling the log file)."""
    deadline = time.monotonic() + timeout
    while process.stderr.count(text) < count:
        assert process.popen.poll() is None, f"exited: {process.stderr[-2000:]!r}"
        assert time.monotonic() < deadline, f"not {count} {text!r} in {process.stderr[-2000:]!r}"
        time.sleep(0.02)


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("output", ["full", "broken-pipe"])
def test_an_unwritable_standard_output_is_one_warning(
    tmp_path: Path, workers: str, output: str
) -> None:
    if output == "full":
        stdout = os.open("/dev/full", os.O_WRONLY)
    else:
        reader, stdout = os.pipe()
        os.close(reader)  # a reader that has gone
    stderr = tmp_path / "stderr"
    try:
        with stderr.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "trio_echo", "server", "--port", "0", "--workers", workers],
                stdout=stdout,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
    finally:
        os.close(stdout)
    try:
        deadline = time.monotonic() + 30
        while b"cannot write to standard output" not in stderr.read_bytes():
            assert process.poll() is None, stderr.read_bytes()
            assert time.monotonic() < deadline, stderr.read_bytes()
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log_text = stderr.read_bytes()
    assert b"Traceback" not in log_text
    assert b"Exception ignored" not in log_text
    assert log_text.count(b"cannot write to standard output") == 1
