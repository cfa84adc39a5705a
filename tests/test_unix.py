"""Unix sockets: the socket file (stale ones removed, anything else refused,
its permissions, removed on exit by whoever made it), the peer named by its
credentials, and a supervisor that binds once for its workers."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ChildProcess, children
from tests.support.streams import round_trip
from trio_echo import open_unix_listener

LISTENING_UNIX = re.compile(rb"listening on unix:(\S+)")


def start(directory: Path, *args: str) -> ChildProcess:
    process = ChildProcess([sys.executable, "-m", "trio_echo", "server", *args], directory)
    process.wait_for_line(LISTENING_UNIX)
    return process


def run_server(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trio_echo", "server", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
        cwd=ROOT,
    )


def test_serves_on_a_unix_socket_only_and_removes_it_on_exit(
    short_tmp: Path, tmp_path: Path
) -> None:
    path = short_tmp / "echo.sock"
    process = start(tmp_path, "--unix", str(path))
    try:
        assert LISTENING_UNIX.findall(process.stdout) == [bytes(path)]
        assert b"listening on 127.0.0.1" not in process.stdout  # no TCP unless asked for
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert round_trip(path, b"over a unix socket") == b"over a unix socket"
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=30) == 0
    finally:
        process.stop()
    assert not path.exists()
    # The peer is named by its credentials: this process, this user.
    assert (
        b"connection from unix:pid=%d,uid=%d ended: complete"
        % (
            os.getpid(),
            os.getuid(),
        )
        in process.stderr
    )


def test_beside_tcp_when_a_port_is_given(short_tmp: Path, tmp_path: Path) -> None:
    path = short_tmp / "echo.sock"
    process = start(tmp_path, "--unix", str(path), "--port", "0", "--unix-mode", "660")
    try:
        port = process.wait_for_port()
        assert round_trip(port, b"tcp") == b"tcp"
        assert round_trip(path, b"unix") == b"unix"
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    finally:
        process.stop()


def test_a_stale_socket_file_is_removed_first(short_tmp: Path, tmp_path: Path) -> None:
    path = short_tmp / "echo.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening: as a killed server leaves it
    process = start(tmp_path, "--unix", str(path))
    try:
        assert round_trip(path, b"after a crash") == b"after a crash"
    finally:
        process.stop()


def test_a_file_that_is_not_a_socket_is_refused_and_kept(short_tmp: Path) -> None:
    path = short_tmp / "precious"
    path.write_text("not a socket")
    result = run_server("--unix", str(path))
    assert result.returncode == 3
    assert result.stderr.decode().strip() == (
        f"trio-echo: server: cannot listen on unix:{path}: the path exists and is not a socket:"
        " not removing it"
    )
    assert path.read_text() == "not a socket"


def test_a_socket_a_server_listens_on_is_refused_and_kept(short_tmp: Path) -> None:
    path = short_tmp / "busy.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        result = run_server("--unix", str(path))
        assert result.returncode == 3
        assert result.stderr.decode().strip() == (
            f"trio-echo: server: cannot listen on unix:{path}: a server is listening on it"
        )
        assert path.is_socket()


@pytest.mark.parametrize(
    ("flags", "sentence"),
    [
        (["--unix-mode", "600"], "--unix-mode is for a unix socket: give --unix PATH too"),
        (["--unix", "x", "--unix-mode", "999"], None),
    ],
    ids=["mode-without-unix", "bad-mode"],
)
def test_bad_unix_flags_are_one_sentence(flags: list[str], sentence: str | None) -> None:
    result = run_server(*flags)
    assert result.returncode == 2
    if sentence is not None:
        assert result.stderr.decode().strip() == f"trio-echo: server: {sentence}"
    else:
        assert b"'999' is not file permissions in octal (0600)" in result.stderr


def test_workers_inherit_one_unix_socket_that_the_supervisor_removes(
    short_tmp: Path, tmp_path: Path
) -> None:
    path = short_tmp / "echo.sock"
    parent = start(tmp_path, "--unix", str(path), "--workers", "2")
    try:
        assert b"workers=2" in parent.stdout
        workers = children(parent.pid)
        assert len(workers) == 2
        for index in range(20):
            assert round_trip(path, b"message %d" % index) == b"message %d" % index
        parent.popen.send_signal(signal.SIGTERM)
        assert parent.popen.wait(timeout=30) == 0
    finally:
        parent.stop()
    assert not path.exists()  # the supervisor made it, and removed it
    assert parent.stderr.count(b"SIGTERM: not accepting") == 2


def test_the_listener_keeps_a_file_someone_else_put_there(short_tmp: Path) -> None:
    path = short_tmp / "echo.sock"
    listener, socket_file = open_unix_listener(str(path), mode=0o640)
    listener.close()
    path.unlink()
    path.write_text("someone else's")
    socket_file.remove()  # not the file it made: kept
    assert path.read_text() == "someone else's"


def test_a_listener_with_a_full_backlog_is_refused_at_once(short_tmp: Path) -> None:
    # Connecting to it would wait: the check for a stale file must not.
    path = short_tmp / "busy.sock"
    with socket.socket(socket.AF_UNIX) as busy:
        busy.bind(str(path))
        busy.listen(0)
        waiting = []
        try:
            while True:  # fill its backlog
                client = socket.socket(socket.AF_UNIX)
                client.setblocking(False)
                waiting.append(client)
                client.connect(str(path))
        except BlockingIOError:
            pass
        try:
            with pytest.raises(OSError, match="a server is listening on it"):
                open_unix_listener(str(path))
        finally:
            for client in waiting:
                client.close()
    assert path.is_socket()


def test_servers_starting_at_once_at_one_path_take_turns(short_tmp: Path) -> None:
    # Neither takes the other's socket, bound but not yet listening, for a
    # stale one: one listens there, the other is refused.
    path = str(short_tmp / "echo.sock")
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def race() -> None:
        start.wait()
        try:
            outcomes.append(open_unix_listener(path))
        except OSError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (listening,) = [outcome for outcome in outcomes if isinstance(outcome, tuple)]
    (refused,) = [outcome for outcome in outcomes if isinstance(outcome, OSError)]
    assert "a server is listening on it" in str(refused)
    sock, socket_file = listening
    with sock:
        assert os.stat(path).st_ino == socket_file.inode[1]  # the winner's is there
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)  # it listens (the connection waits in its backlog)


def test_unix_with_sockets_handed_over_is_one_sentence(short_tmp: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "trio_echo",
                "server",
                "--fd",
                str(listener.fileno()),
                "--unix",
                str(short_tmp / "echo.sock"),
            ],
            pass_fds=(listener.fileno(),),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
            check=False,
            cwd=ROOT,
        )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "trio-echo: server: --unix makes a socket of its own, but sockets were handed over"
        " (--fd, or systemd's LISTEN_FDS): give one or the other"
    )
    assert not (short_tmp / "echo.sock").exists()
