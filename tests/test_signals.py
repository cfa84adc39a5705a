"""The signals, each sent at the moment in question: before the server
listens, during a drain, back to back; and the supervisor's side: a drain
while a worker starts, drain and cut as signals that cannot merge, failed
starts backed off and then given up, a worker that ignores the drain killed,
one that stops answering replaced, and a cut while starting that announces
nothing.

The moments are made deterministic: a signal blocked from the child's start
is delivered at the moment the child unblocks it (once its handlers are
in), and a stand-in worker blocks until the test releases it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from tests.support.processes import ROOT, ChildProcess
from trio_echo import EchoServer, ServerConfig, open_listeners
from trio_echo.cli._server_command import (
    ServerOptions,
    _first_leaf,
    _serve_until_signalled,
    _supervise,
)
from trio_echo.server import _signals, _supervisor
from trio_echo.server._signals import handle_shutdown_signals
from trio_echo.server._supervisor import Supervisor, WorkerStartError, describe_status


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_echo", "server", "--port", "0", *args]


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 0), (signal.SIGHUP, 0), (signal.SIGQUIT, 0)],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_signal_before_the_server_listens_ends_it_in_one_line(
    signum: signal.Signals, status: int, workers: str
) -> None:
    # The signal is blocked from the child's first instruction, so it is
    # pending all through Python's start and the imports, and delivered the
    # moment the command line unblocks it, its handlers in place.
    # (A child inherits its parent's signal mask.)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signum])
    try:
        process = subprocess.Popen(
            server_command("--workers", workers),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert out == b""  # it never listened
    assert b"Traceback" not in err
    assert err.count(b"\n") == 1
    assert f"{signum.name} before listening: not starting".encode() in err


def echo_over(port: int) -> socket.socket:
    """An echo-mode connection the server is surely serving: one message has
    come back through it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"first")
    assert sock.recv(100) == b"first"
    return sock


def test_sigquit_cuts_even_sent_together_with_a_sigterm(tmp_path: Path) -> None:
    server = ChildProcess(server_command("--mode", "echo", "--grace", "600"), tmp_path)
    try:
        with echo_over(server.wait_for_port()):
            server.popen.send_signal(signal.SIGTERM)
            server.popen.send_signal(signal.SIGQUIT)
            # With the grace alone it would wait ten minutes for this connection.
            assert server.popen.wait(timeout=60) == 0
        assert b"SIGQUIT: cutting 1 open connection(s) now" in server.stderr
    finally:
        server.stop()


def test_sighup_drains_like_sigterm(tmp_path: Path) -> None:
    server = ChildProcess(server_command("--mode", "echo"), tmp_path)
    try:
        with echo_over(server.wait_for_port()) as sock:
            server.popen.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while b"SIGHUP: not accepting" not in server.stderr:
                assert server.popen.poll() is None
                assert time.monotonic() < deadline, "the server never said it drains"
                sock.sendall(b"x")  # the drain lets the open connection go on
                assert sock.recv(100) == b"x"
            sock.sendall(b"after the drain began")
            assert sock.recv(100) == b"after the drain began"
        assert server.popen.wait(timeout=60) == 0
    finally:
        server.stop()


async def test_every_drain_signal_after_the_first_cuts_and_a_cut_is_final() -> None:
    seen: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            handle_shutdown_signals,
            lambda name: seen.append(f"drain {name}"),
            lambda name: seen.append(f"cut {name}"),
        )
        for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.raise_signal(signum)
            await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert seen == ["drain SIGHUP", "cut SIGINT"]


# -- the supervisor -------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    control = int(sys.argv[1])
    with open(sys.argv[2]) as file:
        mode = file.read()
    def report(signum, frame):
        os.write(control, signal.Signals(signum).name.encode() + b"\\n")
        if mode != "stubborn":
            sys.exit(0)
    for signum in (signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, report)
    signal.signal(
        signal.SIGUSR1, lambda signum, frame: os.write(control, b"SIGUSR1\\n")
    )
    os.write(control, b"starting\\n")
    if mode == "fail":
        sys.exit(1)
    if mode == "blocked":
        os.read(control, 1)  # until the test releases it
    print("listening on 127.0.0.1:1 mode=count", flush=True)
    while True:
        time.sleep(60)
    """
)


class StandIn:
    """Workers run as a stand-in program that reports to the test over a
    socket: when it starts, and each signal it gets."""

    def __init__(self, tmp_path: Path, mode: str) -> None:
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        self.mode = tmp_path / "mode"
        self.mode.write_text(mode)  # read at each start: a test may change it
        self.ours, theirs = socket.socketpair()
        self.ours.setblocking(False)
        self.theirs = theirs
        self.command = [sys.executable, str(script), str(theirs.fileno()), str(self.mode)]
        self.buffered = b""

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.ours.close()
        self.theirs.close()

    def supervisor(self, count: int, **options: float) -> Supervisor:
        return Supervisor(self.command, count, pass_fds=[self.theirs.fileno()], **options)

    async def next_line(self) -> bytes:
        while b"\n" not in self.buffered:
            await trio.lowlevel.wait_readable(self.ours)
            self.buffered += self.ours.recv(1024)
        line, _, self.buffered = self.buffered.partition(b"\n")
        return line


async def test_a_drain_while_a_worker_starts_stops_the_starting_cleanly(tmp_path: Path) -> None:
    with StandIn(tmp_path, "blocked") as stand_in:
        supervisor = stand_in.supervisor(2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(nursery.start, supervisor.run))
            assert await stand_in.next_line() == b"starting"  # worker 1, blocked
            supervisor.drain()
            assert await stand_in.next_line() == b"SIGTERM"
        # run() returned (the nursery is done) without an error, and worker 2
        # was never started.
        assert not stand_in.buffered
        assert supervisor.failure is None


async def test_a_worker_that_stops_answering_is_killed_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The stand-in listens but never answers its line: as a worker that is
    # stopped, or stuck in a step that never yields.
    with StandIn(tmp_path, "polite") as stand_in:
        supervisor = stand_in.supervisor(1, heartbeat=0.5)
        caplog.set_level(logging.INFO, "trio_echo.workers")
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            (pid,) = supervisor.pids
            assert await stand_in.next_line() == b"starting"
            assert await stand_in.next_line() == b"starting"  # its replacement
            supervisor.drain()
        assert (
            f"worker 1 (pid {pid}) has not answered for 0.5 s: killing it (SIGKILL)" in caplog.text
        )
        assert f"worker 1 (pid {pid}) killed by SIGKILL; restarting it in" in caplog.text


def notifications_to(directory: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    """A socket that takes what this process would tell systemd."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(directory / "notify"))
    receiver.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(directory / "notify"))
    return receiver


async def test_a_cut_while_the_workers_start_announces_nothing(
    tmp_path: Path,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "trio_echo.workers")
    with (
        StandIn(tmp_path, "blocked") as stand_in,
        socket.socket() as listener,
        notifications_to(short_tmp, monkeypatch) as notifications,
    ):
        listener.bind(("127.0.0.1", 0))
        supervisor = stand_in.supervisor(3)
        stopped_by: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                _supervise, supervisor, ServerOptions(workers=3), [listener], None, stopped_by
            )
            assert await stand_in.next_line() == b"starting"  # worker 1, blocked
            signal.raise_signal(signal.SIGQUIT)
        assert stopped_by == ["SIGQUIT"]
        assert capsys.readouterr().out == ""  # no 'listening on'
        assert "workers serving" not in caplog.text
        with pytest.raises(BlockingIOError):
            notifications.recv(100)  # no READY=1


async def test_a_cut_before_the_server_serves_announces_nothing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A SIGQUIT recorded after the command line looked, before trio took the
    # signals: it is handled first, before the server serves.
    monkeypatch.setattr(_signals, "_early", [signal.SIGQUIT])
    with notifications_to(short_tmp, monkeypatch) as notifications:
        server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0))
        await _serve_until_signalled(server, 10.0)
        assert capsys.readouterr().out == ""
        with pytest.raises(BlockingIOError):
            notifications.recv(100)


async def test_a_cancelled_supervisor_cuts_its_workers(tmp_path: Path) -> None:
    with StandIn(tmp_path, "polite") as stand_in:
        supervisor = stand_in.supervisor(1)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            assert await stand_in.next_line() == b"starting"
            nursery.cancel_scope.cancel()
        assert await stand_in.next_line() == b"SIGQUIT"


async def test_a_worker_that_ignores_the_drain_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_supervisor, "KILL_MARGIN", 0.2)
    with StandIn(tmp_path, "stubborn") as stand_in:
        supervisor = stand_in.supervisor(1, grace=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            (pid,) = supervisor.pids
            supervisor.drain()
        # run() returned: the worker is gone, and it took a SIGKILL.
        assert await stand_in.next_line() == b"starting"
        assert await stand_in.next_line() == b"SIGTERM"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert f"worker 1 (pid {pid}) is still running past the grace period: killing it" in (
            caplog.text
        )


async def test_failed_starts_back_off_and_then_the_supervisor_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_supervisor, "RESTART_DELAY", 0.01)
    # The first start succeeds, then the program fails at every start.
    with StandIn(tmp_path, "stubborn") as stand_in:
        supervisor = stand_in.supervisor(1, grace=0)
        caplog.set_level(logging.INFO, "trio_echo.workers")
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            stand_in.mode.write_text("fail")
            (pid,) = supervisor.pids
            os.kill(pid, signal.SIGKILL)
        delays = [
            record.getMessage().rsplit(" in ", 1)[1]
            for record in caplog.records
            if "restarting it in" in record.getMessage()
        ]
        assert delays == ["0.01 s", "0.02 s", "0.04 s", "0.08 s"]
        assert "killed by SIGKILL; restarting it in 0.01 s" in caplog.text
        assert supervisor.failure == (
            f"worker 1 failed {_supervisor.MAX_FAILURES_IN_A_ROW} times in a row, most recently:"
            " worker 1 did not start (exited with status 1); stopping the server"
        )


def test_a_workers_end_is_said_in_words() -> None:
    assert describe_status(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_status(-signal.SIGTERM) == "killed by SIGTERM"
    assert describe_status(3) == "exited with status 3"


def test_a_signal_ignored_by_whoever_started_it_stays_ignored(tmp_path: Path) -> None:
    # nohup starts its command with SIGHUP ignored: a closed terminal must
    # not stop a server started that way.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        server = ChildProcess(server_command("--mode", "echo"), tmp_path)
    finally:
        signal.signal(signal.SIGHUP, previous)
    try:
        with echo_over(server.wait_for_port()) as sock:
            server.popen.send_signal(signal.SIGHUP)
            server.popen.send_signal(signal.SIGTERM)  # after it, in order: the drain
            deadline = time.monotonic() + 60
            while b"SIGTERM: not accepting" not in server.stderr:
                assert server.popen.poll() is None
                assert time.monotonic() < deadline, "the server never said it drains"
                sock.sendall(b"x")
                assert sock.recv(100) == b"x"
        assert server.popen.wait(timeout=60) == 0
        assert b"SIGHUP" not in server.stderr
    finally:
        server.stop()


async def test_drain_and_cut_reach_a_worker_as_two_signals_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_supervisor, "KILL_MARGIN", 0.2)
    with StandIn(tmp_path, "stubborn") as stand_in:
        supervisor = stand_in.supervisor(1, grace=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            assert await stand_in.next_line() == b"starting"
            supervisor.drain()
            supervisor.drain()  # the supervisor gave up, then systemd said stop
            supervisor.cut()  # back to back: a second SIGTERM could merge with the first
            assert {await stand_in.next_line(), await stand_in.next_line()} == {
                b"SIGTERM",
                b"SIGQUIT",
            }
        # The worker was killed at the deadline, having had no second SIGTERM.
        assert not stand_in.buffered
        with pytest.raises(BlockingIOError):
            stand_in.ours.recv(100)


async def test_a_worker_that_never_starts_fails_the_first_start(tmp_path: Path) -> None:
    with StandIn(tmp_path, "fail") as stand_in:
        supervisor = stand_in.supervisor(2)
        with pytest.raises(BaseExceptionGroup) as caught:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
    error = _first_leaf(caught.value)
    assert isinstance(error, WorkerStartError)
    assert str(error) == "worker 1 did not start (exited with status 1)"


def test_the_package_imports_nothing_heavy_until_used() -> None:
    # So that `python -m trio_echo` catches the signals before trio loads.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, trio_echo, trio_echo.server._signals; "
            "heavy = ('trio', 'attr', 'trio_echo.server._listeners'); "
            "print(sorted(m for m in heavy if m in sys.modules))",
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert result.stdout == b"[]\n"
    import trio_echo

    assert set(trio_echo.__all__) == set(trio_echo._EXPORTS)
    for name in trio_echo.__all__:  # each resolves to its module's object
        assert getattr(trio_echo, name) is not None


async def test_with_every_shutdown_signal_ignored_there_is_nothing_to_handle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_signals, "_ignored", set(_signals.SHUTDOWN_SIGNALS))
    async with trio.open_nursery() as nursery:
        await nursery.start(handle_shutdown_signals, pytest.fail, pytest.fail)
        nursery.cancel_scope.cancel()
