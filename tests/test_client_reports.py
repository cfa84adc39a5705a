"""What the client holds, and what it says: input with no end refused at a
bound, a whole echo with no close after it, a plain client at a TLS port,
framed answers one per line, and a load run's payload, memory bound, errors
by kind, progress and interruption."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pty
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.processes import ROOT, ChildProcess as Process
from tests.support.streams import wait_until
from tests.support.tls import TLSFiles
from trio_echo import Endpoint, Mode
from trio_echo._messages import Message, MessageTooLongError, SpoolError
from trio_echo.cli._client_output import LoadProgress
from trio_echo.cli._parser import ExitStatus
from trio_echo.client._load import LoadRun, error_kind, run_load
from trio_echo.client._streamed import StreamedMessage
from trio_echo.protocol import rules_of

Spawn = Callable[..., Process]
MiB = 1024 * 1024
CLIENT = [sys.executable, "-m", "trio_echo", "client"]
TRY_HELP = b"Try 'trio-echo client --help' for the options.\n"


def client(*args: str, stdin: int | bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``trio-echo client ARGS``, with ``stdin`` as its input (bytes or a descriptor)."""
    return subprocess.run(
        [sys.executable, "-m", "trio_echo", "client", *args],
        input=stdin if isinstance(stdin, bytes) else None,
        stdin=stdin if isinstance(stdin, int) else None,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture
def server(spawn: Spawn) -> Callable[..., int]:
    """Start ``trio-echo server`` with the flags given; return its port."""

    def start(*flags: str) -> int:
        return spawn("-m", "trio_echo", "server", "--port", "0", *flags).wait_for_port()

    return start


# -- Input with no end ---------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.FRAMED])
def test_a_file_with_no_end_is_refused_at_the_bound(mode: Mode) -> None:
    # Nothing listens there: the input is refused before any connection.
    result = client(
        "--port", "1", "--mode", str(mode), "--max-message-size", "1MiB", "--file", "/dev/zero"
    )
    assert (result.returncode, result.stdout) == (ExitStatus.USAGE, b"")
    assert result.stderr == (
        b"trio-echo: client: /dev/zero goes on past --max-message-size (1MiB); give a larger"
        b" --max-message-size if the server takes longer messages\n"
    )


def test_standard_input_with_no_end_is_refused_at_the_default_bound() -> None:
    # `yes | trio-echo client -`: the default bound is the server's, 64MiB.
    with open("/dev/zero", "rb") as endless:
        result = client("--port", "1", "-", stdin=endless.fileno())
    assert (result.returncode, result.stdout) == (ExitStatus.USAGE, b"")
    assert result.stderr == (
        b"trio-echo: client: standard input goes on past --max-message-size (64MiB); give a"
        b" larger --max-message-size if the server takes longer messages\n"
    )


def test_echo_mode_streams_input_past_the_bound(server: Callable[..., int]) -> None:
    # A pipe: echo mode needs no length first, so nothing is copied or refused.
    port = server("--mode", "echo")
    data = random.Random(3).randbytes(3 * MiB)
    result = client(
        "--port", str(port), "--mode", "echo", "--max-message-size", "1MiB", "-", stdin=data
    )
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == data


async def test_a_streamed_message_holds_at_most_its_window() -> None:
    reader, writer = os.pipe()
    os.write(writer, b"x" * 100)
    message = StreamedMessage(reader, owned=True, window=30)
    pieces_read: list[bytes] = []

    async def take() -> None:
        async with contextlib.aclosing(message.pieces()) as pieces:
            async for data in pieces:
                pieces_read.append(data)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take)
            await wait_until(lambda: message.size == 100)
            os.close(writer)  # the end is there to read, once there is room
            await trio.testing.wait_all_tasks_blocked()
            # 100 bytes held, more than the window: it waits for the echo.
            assert (message.size, message.ended) == (100, False)
            assert message.read(100, 1) == b""  # the echo caught up: room again
            await wait_until(lambda: message.ended)
        assert pieces_read == [b"x" * 100]
    finally:
        message.close()


def test_input_within_the_bound_is_copied_and_sent(server: Callable[..., int]) -> None:
    port = server()
    result = client("--port", str(port), "--max-message-size", "5", "-", stdin=b"hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello", b"")


def test_the_copy_stops_at_the_bound() -> None:
    reader, writer = os.pipe()
    os.write(writer, b"x" * 100)
    os.close(writer)
    with open(reader, "rb") as pipe, pytest.raises(MessageTooLongError, match="past 99 bytes"):
        Message.from_stream(pipe, limit=99)


def test_a_copy_that_cannot_be_written_names_where_it_went(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: Full())
    reader, writer = os.pipe()
    os.write(writer, b"abc")
    os.close(writer)
    with open(reader, "rb") as pipe, pytest.raises(SpoolError) as raised:
        Message.from_stream(pipe)
    assert raised.value.directory == tempfile.gettempdir()
    assert isinstance(raised.value.__cause__, OSError)


# -- Reports that tell the truth ----------------------------------------------


@contextmanager
def echo_without_close() -> Iterator[tuple[int, threading.Event]]:
    """A count server that echoes ``5 hello`` whole, and closes only when told."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while not data.endswith(b"hello"):
                    data += conn.recv(100)
                conn.sendall(b"hello")
                release.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], release
    finally:
        release.set()
        thread.join(10)


def test_a_whole_echo_without_a_close_is_complete() -> None:
    with echo_without_close() as (port, _release):
        result = client("--port", str(port), "--timeout", "1", "hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello", b"")


def test_a_plain_client_at_a_tls_port_is_told(
    server: Callable[..., int], tls_files: TLSFiles
) -> None:
    port = server("--tls-cert", tls_files.cert, "--tls-key", tls_files.key)
    result = client("--port", str(port), "hello")
    # The server ends the connection once it reads a byte that is not TLS:
    # with an end of stream, or a reset if the rest was still unread.
    assert result.returncode in {ExitStatus.MISMATCH, ExitStatus.RESET}
    assert result.stderr.endswith(
        b" (nothing came back: a server that speaks TLS ends a plain connection so;"
        b" if it does, give --tls)\n"
    )
    assert result.stderr.count(b"\n") == 1


def test_framed_answers_one_per_line_with_lines(server: Callable[..., int]) -> None:
    port = server("--mode", "framed")
    plain = client("--port", str(port), "--mode", "framed", "one", "two", "three")
    lines = client("--port", str(port), "--mode", "framed", "--lines", "one", "two", "three")
    assert (plain.returncode, plain.stdout) == (0, b"onetwothree")
    assert (lines.returncode, lines.stdout) == (0, b"one\ntwo\nthree\n")


# -- The load generator ------------------------------------------------------


def load_run(mode: Mode, size: int, repeat: int = 1, concurrency: int = 1) -> LoadRun:
    return LoadRun(
        Endpoint(port=1),
        rules_of(mode),
        b"x" * size,
        30.0,
        repeat=repeat,
        concurrency=concurrency,
    )


@pytest.mark.parametrize("mode", list(Mode))
def test_a_load_run_sends_one_payload_shared(mode: Mode) -> None:
    run = load_run(mode, 4 * MiB)
    # The payload itself, after its prefix (if the mode has one): no copy.
    assert run.request[-1] is run.payload
    assert sum(map(len, run.request)) == len(rules_of(mode).request_prefix(4 * MiB)) + 4 * MiB
    small = load_run(mode, 100)  # a small message goes in one send
    assert len(small.request) == 1


def test_a_load_runs_errors_are_counted_by_kind() -> None:
    assert error_kind(ConnectionRefusedError()) == "refused"
    assert error_kind(trio.BrokenResourceError()) == "reset"
    assert error_kind(trio.TooSlowError()) == "timeout"


async def test_a_load_run_against_nobody_counts_refusals() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        report = await run_load("127.0.0.1", sock.getsockname()[1], repeat=6, concurrency=2)
    assert (report.messages, report.errors, report.errors_by_kind) == (0, 6, {"refused": 6})
    assert report.summary()["errors_by_kind"] == {"refused": 6}


def test_the_load_command_names_its_errors_by_kind() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
        text = client("--port", port, "--repeat", "3")
        as_json = client("--port", port, "--repeat", "3", "--json")
    assert text.returncode == ExitStatus.REFUSED
    assert b"0 echoed, 3 errors (3 refused) in " in text.stdout
    assert text.stderr.startswith(
        b"trio-echo: client: 3 of 3 messages failed (3 refused); the first: cannot connect:"
    )
    assert json.loads(as_json.stdout)["errors_by_kind"] == {"refused": 3}


def test_the_load_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    run = load_run(Mode.COUNT, 100, repeat=2000)
    run.latencies += [0.001] * 12
    run.failed(ConnectionResetError())
    progress = LoadProgress(run)
    progress.show()
    progress.finish()
    shown = capsys.readouterr().err
    assert shown.startswith("\r12 of 2,000 messages echoed, 1 failed (")
    assert shown.endswith("messages/s)   \n")


@contextmanager
def holding_server() -> Iterator[tuple[int, threading.Event, threading.Event]]:
    """A server that accepts a connection, reads, and answers nothing until told.

    Yields its port, an event set once a connection is accepted, and one
    that ends it.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    accepted, release = threading.Event(), threading.Event()

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.recv(100)
                accepted.set()
                release.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted, release
    finally:
        release.set()
        thread.join(10)


def test_a_load_run_shows_its_progress_on_a_terminal() -> None:
    controller, terminal = pty.openpty()
    with holding_server() as (port, accepted, _release):
        process = subprocess.Popen(
            [*CLIENT, "--port", str(port), "--repeat", "1", "--timeout", "60"],
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            cwd=ROOT,
        )
        try:
            os.close(terminal)
            assert accepted.wait(30)
            shown = b""
            while b"0 of 1 messages echoed, 0 failed" not in shown:
                readable, _, _ = select.select([controller], [], [], 30)
                assert readable, shown
                shown += os.read(controller, 4096)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
            os.close(controller)
    assert process.returncode == ExitStatus.INTERRUPTED


def test_ctrl_c_prints_the_figures_so_far() -> None:
    with holding_server() as (port, accepted, _release):
        process = subprocess.Popen(
            [*CLIENT, "--port", str(port), "--repeat", "3", "--concurrency", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        assert accepted.wait(30)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == ExitStatus.INTERRUPTED
    assert out.startswith(b"count mode, 100 B messages, 1 connections: 0 echoed, 0 errors in ")
    assert b"no message completed" in out
    assert err == b"trio-echo: client: interrupted after 0 of 3 messages\n"


def test_a_load_run_refuses_more_than_its_bound_under_way() -> None:
    result = client("--repeat", "1", "--size", "1GiB", "--concurrency", "50")
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr == (
        b"trio-echo: client: --size 1GiB with --concurrency 50 is 53,687,091,200 bytes under"
        b" way at once, more than a load run's 4GiB: lower one of them\n" + TRY_HELP
    )


def test_the_spool_directory_is_named_in_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_echo", "client", "--help"],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},
        check=True,
    )
    assert b"temporary file in $TMPDIR (else /tmp)" in result.stdout
    assert b"--lines" in result.stdout
    assert Path(tempfile.gettempdir()).is_dir()
