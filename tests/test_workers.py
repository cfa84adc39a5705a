"""Workers that stay up, as a user runs them: a stopped worker is replaced,
systemd hears the supervisor only, and standard output that cannot be
written is one warning, not the end of the server."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ChildProcess, children
from tests.support.streams import round_trip

Spawn = Callable[..., ChildProcess]


def wait_for_count(process: ChildProcess, text: bytes, count: int, timeout: float = 30) -> None:
    """Wait until the log has ``text`` ``count`` times (polling the log file)."""
    deadline = time.monotonic() + timeout
    while process.stderr.count(text) < count:
        assert process.popen.poll() is None, f"exited: {process.stderr[-2000:]!r}"
        assert time.monotonic() < deadline, f"not {count} {text!r} in {process.stderr[-2000:]!r}"
        time.sleep(0.02)


def test_a_stopped_worker_is_killed_and_replaced(spawn: Spawn) -> None:
    parent = spawn(
        *("-m", "trio_echo", "server", "--port", "0", "--workers", "2"),
        *("--worker-timeout", "2"),
    )
    port = parent.wait_for_port()
    stopped = children(parent.pid)[0]
    os.kill(stopped, signal.SIGSTOP)  # as a worker stuck: its process is there, silent
    parent.wait_for_log(f"(pid {stopped}) has not answered for 2 s: killing it".encode())
    wait_for_count(parent, b") started", 3)
    assert stopped not in children(parent.pid)
    for _ in range(20):  # over both workers, as the kernel spreads them
        assert round_trip(port, b"hi") == b"hi"


@pytest.fixture
def notifications(short_tmp: Path) -> Iterator[tuple[socket.socket, str]]:
    """A socket systemd would listen on, which says who sent each message."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(short_tmp / "notify"))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        receiver.setblocking(False)
        yield receiver, str(short_tmp / "notify")


def received(receiver: socket.socket) -> list[tuple[int, bytes]]:
    """Every message waiting on ``receiver``, with its sender's pid."""
    messages = []
    while True:
        try:
            message, ancillary, _flags, _address = receiver.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i"))
            )
        except BlockingIOError:
            return messages
        (pid,) = [
            struct.unpack("3i", data)[0]
            for level, kind, data in ancillary
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
        ]
        messages.append((pid, message))


def test_only_the_supervisor_speaks_to_systemd(
    spawn: Spawn,
    notifications: tuple[socket.socket, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver, path = notifications
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    parent = spawn("-m", "trio_echo", "server", "--port", "0", "--workers", "2")
    parent.wait_for_port()
    parent.popen.send_signal(signal.SIGTERM)
    assert parent.popen.wait(timeout=30) == 0
    assert received(receiver) == [
        (parent.pid, b"READY=1\nSTATUS=serving with 2 workers"),
        (parent.pid, b"STOPPING=1"),
    ]


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
