"""Running trio_echo as a service: a worker per core under a supervisor,
socket activation (systemd's LISTEN_FDS, or --fd), readiness notification
(sd_notify), the shipped unit files, and HAProxy in front of two instances."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ChildProcess, children
from tests.support.streams import round_trip
from trio_echo.cli._parser import build_parser
from trio_echo.server._listeners import ActivationError, listeners_from_fds, systemd_listeners
from trio_echo.server._systemd import notify

Spawn = Callable[..., ChildProcess]


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_workers_share_the_port_and_are_restarted(spawn: Spawn) -> None:
    parent = spawn("-m", "trio_echo", "server", "--port", "0", "--workers", "2")
    port = parent.wait_for_port()
    assert b"workers=2" in parent.stdout
    workers = children(parent.pid)
    assert len(workers) == 2
    for index in range(20):
        assert round_trip(port, b"message %d" % index) == b"message %d" % index
    # Connections went to both workers (SO_REUSEPORT spreads them); their
    # lines are written within a quarter second.
    wait_for(lambda: parent.stderr.count(b"ended: complete") == 20)
    served_by = {
        line.split(b"[")[1].split(b"]")[0]
        for line in parent.stderr.splitlines()
        if b"ended: complete" in line
    }
    assert served_by == {str(pid).encode() for pid in workers}

    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: b"restarting it" in parent.stderr and len(children(parent.pid)) == 2)
    (replacement,) = set(children(parent.pid)) - set(workers)
    wait_for(lambda: b"worker 1 (pid %d) started" % replacement in parent.stderr)
    assert round_trip(port, b"after a crash") == b"after a crash"

    survivors = children(parent.pid)
    parent.popen.send_signal(signal.SIGTERM)
    assert parent.popen.wait(timeout=30) == 0
    for pid in survivors:
        assert (
            not Path(f"/proc/{pid}").exists()
            or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
        )
    assert parent.stderr.count(b"SIGTERM: not accepting") == 2  # each worker drained


def test_workers_drain_a_transfer_on_sigterm(spawn: Spawn) -> None:
    parent = spawn("-m", "trio_echo", "server", "--port", "0", "--workers", "2")
    port = parent.wait_for_port()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"10 01234")
        assert sock.recv(100) == b"01234"  # it is being served
        parent.popen.send_signal(signal.SIGTERM)
        wait_for(lambda: parent.stderr.count(b"SIGTERM: not accepting") == 2)
        sock.sendall(b"56789")
        received = b""
        while data := sock.recv(100):
            received += data
    assert received == b"56789"
    assert parent.popen.wait(timeout=30) == 0


def test_one_ctrl_c_in_a_terminal_drains_every_worker(tmp_path: Path) -> None:
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process
    # group: the parent, and anything in its group. One Ctrl-C must drain
    # (each worker's first signal), not cut (a second one).
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        parent = subprocess.Popen(
            [sys.executable, "-m", "trio_echo", "server", "--port", "0", "--workers", "2"],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,  # a process group of its own, as a terminal job has
        )
    try:
        wait_for(lambda: b"listening on" in out.read_bytes())
        port = int(out.read_bytes().split(b":")[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"10 01234")
            assert sock.recv(100) == b"01234"
            os.killpg(parent.pid, signal.SIGINT)
            wait_for(lambda: err.read_bytes().count(b"SIGTERM: not accepting") == 2)
            sock.sendall(b"56789")
            received = b""
            while data := sock.recv(100):
                received += data
        assert received == b"56789"
        assert parent.wait(timeout=30) == 0
    finally:
        for pid in children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
        parent.wait()
    log = err.read_bytes()
    assert b"SIGINT: asking 2 workers to drain" in log
    assert b"again" not in log  # no worker took a second signal
    assert log.count(b"ended: complete") == 1


@pytest.fixture(params=["tcp", "unix"])
def inherited(
    request: pytest.FixtureRequest, short_tmp: Path
) -> Iterator[tuple[socket.socket, int | Path]]:
    """A listening socket to hand over (TCP, or unix as ``ListenStream=/run/x.sock``),
    and where it listens: its port, or its path."""
    if request.param == "tcp":
        listener = socket.create_server(("127.0.0.1", 0))
        where: int | Path = listener.getsockname()[1]
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        where = short_tmp / "trio-echo.sock"
        listener.bind(str(where))
        listener.listen()
    with listener:
        yield listener, where


def wait_until_listening(process: ChildProcess, where: int | Path) -> None:
    if isinstance(where, int):
        assert process.wait_for_port() == where
    else:
        process.wait_for_line(re.compile(b"listening on unix:" + re.escape(bytes(where))))


def test_serving_on_an_inherited_socket_with_fd(
    tmp_path: Path, inherited: tuple[socket.socket, int | Path]
) -> None:
    listener, where = inherited
    process = ChildProcess(
        [sys.executable, "-m", "trio_echo", "server", "--fd", str(listener.fileno())],
        tmp_path,
        pass_fds=(listener.fileno(),),
    )
    try:
        wait_until_listening(process, where)
        assert round_trip(where, b"inherited") == b"inherited"
        process.popen.send_signal(signal.SIGTERM)
        assert process.popen.wait(timeout=30) == 0
    finally:
        process.stop()
    if isinstance(where, Path):
        assert where.is_socket(), "a socket handed over was removed"
        assert b"connection from unix:pid=" in process.stderr


def test_systemd_socket_activation_and_notify(
    tmp_path: Path, inherited: tuple[socket.socket, int | Path]
) -> None:
    listener, where = inherited
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = tmp_path / "notify"
    notifications.bind(str(notify_path))
    notifications.settimeout(20)
    # As systemd does: the socket at descriptor 3, LISTEN_PID the service's
    # own pid (known only after the fork, hence the exec from Python).
    become_service = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()), "
        "NOTIFY_SOCKET=sys.argv[2]); "
        "os.execv(sys.executable, [sys.executable, '-m', 'trio_echo', 'server'])"
    )
    process = ChildProcess(
        [sys.executable, "-c", become_service, str(listener.fileno()), str(notify_path)],
        tmp_path,
        pass_fds=(listener.fileno(),),
    )
    try:
        wait_until_listening(process, where)
        assert notifications.recv(4096) == b"READY=1"
        assert round_trip(where, b"activated") == b"activated"
        process.popen.send_signal(signal.SIGTERM)
        assert notifications.recv(4096) == b"STOPPING=1"
        assert process.popen.wait(timeout=30) == 0
    finally:
        process.stop()
        notifications.close()
    if isinstance(where, Path):
        assert where.is_socket(), "a socket handed over was removed"


def test_systemd_listeners_are_for_this_process_only() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x"}
    assert systemd_listeners(environ) is None
    assert environ == {}  # removed, so that children do not take them
    assert systemd_listeners({}) is None
    assert systemd_listeners({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}) is None


def test_a_handed_over_descriptor_must_be_a_listening_socket(tmp_path: Path) -> None:
    with (
        socket.socket() as unbound,
        pytest.raises(ActivationError, match="not a listening stream socket"),
    ):
        listeners_from_fds([unbound.fileno()])
    path = tmp_path / "file"
    path.write_text("x")
    with path.open() as file, pytest.raises(ActivationError, match="not a socket"):
        listeners_from_fds([file.fileno()])


def test_bad_fd_is_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_echo", "server", "--fd", "0"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_notify_without_a_socket_does_nothing() -> None:
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "relative/path"}) is False


def test_notify_abstract_socket() -> None:
    name = f"trio-echo-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert receiver.recv(100) == b"READY=1"


def test_the_shipped_unit_files_are_consistent() -> None:
    service = (ROOT / "deploy/systemd/trio-echo.service").read_text()
    socket_unit = (ROOT / "deploy/systemd/trio-echo.socket").read_text()
    assert "Type=notify" in service
    assert "ListenStream=" in socket_unit
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    arguments = shlex.split(exec_start.removeprefix("ExecStart="))[1:]
    parsed = build_parser().parse_args(arguments)  # the example's flags are real
    assert parsed.command == "server"
    assert parsed.workers >= 1


@pytest.mark.skipif(
    shutil.which("haproxy") is None,
    reason="haproxy is not installed (Debian: apt-get install haproxy; .ci/run installs it)",
)
def test_haproxy_in_front_of_two_instances(spawn: Spawn, tmp_path: Path) -> None:
    instances = [spawn("-m", "trio_echo", "server", "--port", "0") for _ in range(2)]
    ports = [instance.wait_for_port() for instance in instances]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        front = probe.getsockname()[1]
    config = (ROOT / "deploy/haproxy/haproxy.cfg").read_text()
    config = config.replace("127.0.0.1:5017", f"127.0.0.1:{front}")
    config = config.replace("127.0.0.1:5001", f"127.0.0.1:{ports[0]}")
    config = config.replace("127.0.0.1:5002", f"127.0.0.1:{ports[1]}")
    (tmp_path / "haproxy.cfg").write_text(config)
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def listening() -> bool:
            if haproxy.poll() is not None:
                raise AssertionError(f"haproxy exited: {haproxy.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", front), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(listening)
        for index in range(10):
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "trio_echo",
                    "client",
                    "--port",
                    str(front),
                    f"through haproxy {index}",
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == f"through haproxy {index}".encode()
        # Round robin: both instances served.
        for instance in instances:
            assert b"ended: complete" in instance.stderr
    finally:
        haproxy.terminate()
        haproxy.communicate(timeout=10)


# -- platforms without a feature: the server falls back, or says so -----------

WITHOUT_SO_REUSEPORT = (
    "import socket, sys, trio; del socket.SO_REUSEPORT; "
    "from trio_echo.cli._parser import main; sys.exit(main(sys.argv[1:]))"
)
"""The command line, on a platform whose socket module has no SO_REUSEPORT."""


def test_workers_fall_back_to_inherited_sockets_without_so_reuseport(tmp_path: Path) -> None:
    # Where the socket module has no SO_REUSEPORT, the parent listens and
    # the workers inherit its sockets.
    parent = ChildProcess(
        [sys.executable, "-c", WITHOUT_SO_REUSEPORT, "server", "--port", "0", "--workers", "2"],
        tmp_path,
    )
    try:
        port = parent.wait_for_port()
        for index in range(6):
            assert round_trip(port, b"inherited %d" % index) == b"inherited %d" % index
        assert b"--fd" in Path(f"/proc/{children(parent.pid)[0]}/cmdline").read_bytes()
        parent.popen.send_signal(signal.SIGTERM)
        assert parent.popen.wait(timeout=30) == 0
    finally:
        parent.stop()


def test_reuse_port_without_so_reuseport_is_one_sentence() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_SO_REUSEPORT, "server", "--port", "0", "--reuse-port"],
        capture_output=True,
        timeout=30,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        b"trio-echo: server: --reuse-port needs SO_REUSEPORT, which this platform does not have"
    ]


def test_workers_without_posix_sessions_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trio_echo.cli import _server_command
    from trio_echo.cli._parser import main

    monkeypatch.setattr(_server_command, "SUPERVISOR_AVAILABLE", False)
    assert main(["server", "--port", "0", "--workers", "2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--workers needs POSIX process sessions and signals" in line


def test_notify_without_unix_sockets_is_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(socket, "AF_UNIX")
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "notify")})


def test_workers_drain_and_exit_when_the_supervisor_is_killed(spawn: Spawn) -> None:
    parent = spawn("-m", "trio_echo", "server", "--port", "0", "--workers", "2")
    parent.wait_for_port()
    workers = children(parent.pid)
    assert len(workers) == 2
    os.kill(parent.pid, signal.SIGKILL)  # no chance to pass anything on
    parent.popen.wait(timeout=10)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
    assert parent.stderr.count(b"the supervisor exited: not accepting") == 2


def test_an_inherited_datagram_socket_is_refused_in_one_sentence(short_tmp: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(short_tmp / "listener"))
        result = subprocess.run(
            [sys.executable, "-m", "trio_echo", "server", "--fd", str(listener.fileno())],
            pass_fds=(listener.fileno(),),
            capture_output=True,
            timeout=30,
            check=False,
            cwd=ROOT,
        )
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert b"not a listening stream socket" in line or b"serves stream sockets only" in line
