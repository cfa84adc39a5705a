"""The command line, as a user runs it: child processes, real sockets, exit
statuses and signals."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ChildProcess as Process
from tests.support.streams import wait_until_acknowledged
from trio_echo import ServerConfig
from trio_echo.cli._client_options import ClientOptions
from trio_echo.cli._parser import ExitStatus, _server_options, build_parser, parse_size
from trio_echo.cli._server_command import ServerOptions

Spawn = Callable[..., Process]
MiB = 1024 * 1024
CLIENT_COMMAND = [sys.executable, "-m", "trio_echo", "client"]


def run(*args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trio_echo", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def assert_one_sentence(stderr: bytes) -> None:
    assert b"Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.fixture
def server(spawn: Spawn) -> tuple[Process, int]:
    process = spawn("-m", "trio_echo", "server", "--port", "0", name="server")
    return process, process.wait_for_port()


@pytest.fixture
def framed_server(spawn: Spawn) -> tuple[Process, int]:
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--mode", "framed")
    return process, process.wait_for_port()


def test_help_and_version() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert b"server" in result.stdout
    assert b"client" in result.stdout
    assert run("server", "--help").returncode == 0
    assert b"--max-connections" in run("server", "--help").stdout
    version = run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith(b"trio-echo ")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "trio-echo"
    if not script.exists():
        pytest.skip("the package is not installed in this environment")
    result = subprocess.run([script, "--help"], capture_output=True, check=False, timeout=60)
    assert result.returncode == 0
    assert b"usage: trio-echo" in result.stdout


def test_client_round_trip_of_a_text_message(server: tuple[Process, int]) -> None:
    _process, port = server
    result = run("client", "--port", str(port), "hello world")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello world", b"")


def test_client_binary_data_from_standard_input(server: tuple[Process, int]) -> None:
    _process, port = server
    data = bytes(range(256)) * 1000
    result = run("client", "--port", str(port), "-", stdin=data)
    assert result.returncode == 0
    assert result.stdout == data


def test_client_file_and_quiet(server: tuple[Process, int], tmp_path: Path) -> None:
    _process, port = server
    path = tmp_path / "message.bin"
    path.write_bytes(b"\x00\xff" * 50_000)
    result = run("client", "--port", str(port), "--file", str(path), "--quiet")
    assert (result.returncode, result.stdout) == (0, b"")


def test_client_framed_pipelines_several_messages(framed_server: tuple[Process, int]) -> None:
    _process, port = framed_server
    result = run("client", "--mode", "framed", "--port", str(port), "one", "", "three")
    assert (result.returncode, result.stdout) == (0, b"onethree")


def test_client_echo_mode(spawn: Spawn) -> None:
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--mode", "echo")
    port = process.wait_for_port()
    result = run("client", "--mode", "echo", "--port", str(port), "-", stdin=b"echo me")
    assert (result.returncode, result.stdout) == (0, b"echo me")


def altering_server(
    reply: Callable[[bytes], bytes], delay: float = 0.0
) -> tuple[int, threading.Thread]:
    """A one-shot blocking server that answers a count message with ``reply(payload)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b" " not in data:
                    data += conn.recv(100)
                length, _, payload = data.partition(b" ")
                while len(payload) < int(length):
                    payload += conn.recv(100)
                time.sleep(delay)
                conn.sendall(reply(payload))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        pytest.param(lambda p: p[:-1], b"short", id="short"),
        pytest.param(lambda p: p + b"!", b"long", id="long"),
        pytest.param(lambda p: p.upper(), b"differs", id="altered"),
    ],
)
def test_client_wrong_echo_exits_with_mismatch(
    reply: Callable[[bytes], bytes], words: bytes
) -> None:
    port, thread = altering_server(reply)
    result = run("client", "--port", str(port), "hello")
    thread.join(10)
    assert result.returncode == ExitStatus.MISMATCH
    assert words in result.stderr
    assert_one_sentence(result.stderr)


def on_a_terminal(stream: str, *args: str) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Run trio_echo with standard output or error (``stream``) on a pseudo
    terminal; return the run, with the other stream, and what the terminal
    showed."""
    controller, terminal = pty.openpty()
    other = "stderr" if stream == "stdout" else "stdout"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "trio_echo", *args],
            **{stream: terminal, other: subprocess.PIPE},  # type: ignore[arg-type]
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        shown = b""
        with contextlib.suppress(OSError):  # once the terminal is closed and drained
            while chunk := os.read(controller, 4096):
                shown += chunk
    finally:
        os.close(controller)
    return result, shown


def test_client_progress_on_a_terminal() -> None:
    port, thread = altering_server(lambda p: p, delay=1.2)
    result, shown = on_a_terminal("stderr", "client", "--port", str(port), "slow echo")
    thread.join(10)
    assert (result.returncode, result.stdout) == (0, b"slow echo")
    assert b"sent 11 of 11 bytes, echoed 0" in shown  # "9 slow echo"
    assert b"echoed 9" in shown


def test_client_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        result = run("client", "--port", str(port), "x")
    assert result.returncode == ExitStatus.REFUSED
    assert b"connection refused" in result.stderr
    assert_one_sentence(result.stderr)


def test_client_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never answers
        result = run("client", "--port", str(silent.getsockname()[1]), "--timeout", "0.5", "x")
    assert result.returncode == ExitStatus.TIMEOUT
    assert b"within 0.5 s" in result.stderr
    assert_one_sentence(result.stderr)


def test_client_reset() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def reset_after_reading() -> None:
        with listener:
            conn, _ = listener.accept()
            conn.recv(100)
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            conn.close()

    thread = threading.Thread(target=reset_after_reading, daemon=True)
    thread.start()
    result = run("client", "--port", str(listener.getsockname()[1]), "x" * 10)
    thread.join(10)
    assert result.returncode == ExitStatus.RESET
    assert b"reset" in result.stderr
    assert_one_sentence(result.stderr)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["client"], b"give a MESSAGE", id="no-message"),
        pytest.param(["client", "a", "b"], b"framed mode sends several", id="two-in-count"),
        pytest.param(["client", "--file", "x", "y"], b"not both", id="file-and-message"),
        pytest.param(["client", "--port", "99999", "x"], b"not a port", id="bad-port"),
        pytest.param(["client", "--timeout", "-1", "x"], b"seconds", id="bad-timeout"),
        pytest.param(["client", "--repeat", "5", "x"], b"no MESSAGE", id="load-with-message"),
        pytest.param(["server", "--mode", "chat"], b"invalid choice", id="bad-mode"),
        pytest.param(["server", "--max-message-size", "lots"], b"not a size", id="bad-size"),
        pytest.param(
            ["server", "--connection-buffer", "2G"],
            b"--connection-buffer (2,147,483,648 bytes) may not exceed --memory-budget",
            id="buffer-over-budget",
        ),
        pytest.param(
            ["server", "--connection-buffer", "1"], b"less than 64KiB", id="buffer-below-a-read"
        ),
        pytest.param(
            ["server", "--memory-budget", "1K"], b"less than 64KiB", id="budget-below-a-read"
        ),
        pytest.param(
            ["server", "--fd", "3", "--fd", "3"], b"--fd 3 is given more than once", id="fd-twice"
        ),
        pytest.param(["server", "--linger-timeout", "-1"], b"zero or a positive", id="bad-linger"),
        pytest.param(["server", "--idle-timeout", "0"], b"positive", id="zero-idle-timeout"),
        pytest.param(
            ["server", "--min-data-rate", "-1"], b"bytes per second", id="negative-data-rate"
        ),
        pytest.param(
            ["server", "--grace", "-3"], b"'-3' is not zero or a positive", id="negative-grace"
        ),
        pytest.param(["server", "--max-connections", "0"], b"at least 1", id="zero-connections"),
        pytest.param(["server", "--workers", "0"], b"'0' is not a whole number", id="no-workers"),
        pytest.param(
            ["server", "--max-message-size", "0"], b"from 1 byte to 1TiB", id="zero-message-size"
        ),
        pytest.param(
            ["server", "--max-message-size", "99999999999999999999GiB"],
            b"from 1 byte to 1TiB",
            id="huge-message-size",
        ),
        pytest.param(["client", "--size", "1K", "x"], b"give --repeat N too", id="size-alone"),
        pytest.param(
            ["client", "--size", "100", "x"], b"--size is for a load run", id="default-size-alone"
        ),
        pytest.param(["--bogus"], b"unrecognized arguments: --bogus", id="top-level-bogus"),
        pytest.param(
            ["client", "--repeat", "1", "--size", "1GiB", "--concurrency", "5"],
            b"--size 1GiB with --concurrency 5 is 5,368,709,120 bytes under way at once,"
            b" more than a load run's 4GiB: lower one of them",
            id="load-too-big",
        ),
        pytest.param(
            ["client", "--max-message-size", "4", "hello"],
            b"the message is 5 bytes, longer than --max-message-size (4); give a larger"
            b" --max-message-size if the server takes longer messages",
            id="message-too-long",
        ),
        pytest.param(
            ["client", "--tls", "--server-name", "", "x"],
            b"'' is not a name a certificate can carry",
            id="empty-server-name",
        ),
        pytest.param([], b"give a COMMAND", id="no-command"),
    ],
)
def test_usage_errors(args: list[str], words: bytes) -> None:
    result = run(*args)
    assert result.returncode == ExitStatus.USAGE
    sentence, *rest = result.stderr.decode().splitlines()
    assert words.decode() in sentence
    assert sentence.startswith("trio-echo: ")
    # A sentence of the parser's is followed by where help is; one of the
    # commands' own checks stands alone.
    helps = [
        [f"Try '{prog} --help' for the options."]
        for prog in ("trio-echo", "trio-echo server", "trio-echo client")
    ]
    assert rest in [[], *helps], result.stderr


def options_of(*argv: str) -> ServerOptions:
    args = vars(build_parser().parse_args(["server", *argv]))
    return _server_options(
        {k: v for k, v in args.items() if k not in ("command", "command_parser")}
    )


@pytest.mark.parametrize(("flag", "rate"), [([], 240.0), (["--min-data-rate", "0"], 0.0)])
def test_the_minimum_data_rate_reaches_the_config(flag: list[str], rate: float) -> None:
    config = options_of(*flag).config
    assert config.limits.min_data_rate == rate


@pytest.mark.parametrize(("flag", "linger"), [([], 2.0), (["--linger-timeout", "0"], 0.0)])
def test_the_linger_timeout_reaches_the_config(flag: list[str], linger: float) -> None:
    config = options_of(*flag).config
    assert config.limits.linger_timeout == linger


def test_the_server_commands_defaults_are_its_options_and_configs() -> None:
    # No flag sets a value of its own: what is not given is left to
    # ServerOptions and ServerConfig.
    assert set(vars(build_parser().parse_args(["server"]))) == {"command", "command_parser"}
    assert options_of() == ServerOptions()
    assert options_of("--memory-budget", "1MiB").config == ServerConfig(memory_budget=1 << 20)


def test_the_client_commands_defaults_are_its_options() -> None:
    args = vars(build_parser().parse_args(["client", "x"]))
    assert set(args) == {"command", "command_parser", "message"}
    assert ClientOptions(message=args["message"]) == ClientOptions(message=("x",))


@pytest.mark.parametrize("command", ["server", "client"])
def test_a_bad_flag_is_its_sentence_then_where_help_is(command: str) -> None:
    result = run(command, "--bogus")
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr == (
        f"trio-echo: {command}: unrecognized arguments: --bogus\n"
        f"Try 'trio-echo {command} --help' for the options.\n".encode()
    )


def test_every_failure_has_one_prefix(server: tuple[Process, int]) -> None:
    # The parser's, the server's and the client's sentences alike.
    _process, port = server
    failures = [
        run("server", "--port", str(port), timeout=30),  # cannot listen
        run("server", "--tls-key", "k.pem"),  # flags that do not go together
        run("server", "--port", "x"),  # a bad value
        run("client", "--port", "1", "--file", "missing"),
        run("client", "--port", "x"),
    ]
    first_lines = [result.stderr.splitlines()[0] for result in failures]
    assert [line.split(b": ")[:2] for line in first_lines] == (
        [[b"trio-echo", b"server"]] * 3 + [[b"trio-echo", b"client"]] * 2
    ), first_lines
    assert not any(b"server: server:" in line or b"error:" in line for line in first_lines)


def test_client_unreadable_file(tmp_path: Path) -> None:
    result = run("client", "--file", str(tmp_path / "missing"))
    assert result.returncode == ExitStatus.IO_ERROR
    assert b"no such file" in result.stderr
    assert_one_sentence(result.stderr)


def test_server_port_in_use(server: tuple[Process, int]) -> None:
    _process, port = server
    result = run("server", "--port", str(port), timeout=30)
    assert result.returncode == ExitStatus.CANNOT_LISTEN
    assert b"address already in use" in result.stderr
    assert_one_sentence(result.stderr)


def test_server_unresolvable_host() -> None:
    result = run("server", "--host", "no-such-host.invalid", "--port", "0", timeout=30)
    assert result.returncode == ExitStatus.CANNOT_LISTEN
    assert_one_sentence(result.stderr)


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    received = b""
    while len(received) < count and (data := sock.recv(count - len(received))):
        received += data
    return received


def test_sigterm_during_a_transfer_lets_it_complete(server: tuple[Process, int]) -> None:
    process, port = server
    payload = bytes(range(256)) * 4096  # 1 MiB
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"%d " % len(payload) + payload[:1000])
        assert recv_exactly(sock, 1000) == payload[:1000]  # it is being served
        process.popen.send_signal(signal.SIGTERM)
        process.wait_for_log(b"waiting for 1 connection(s) to end")  # listeners closed
        # Not accepting any more...
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=5),
        ):
            pass
        # ...but the transfer in progress goes on to the end.
        sock.sendall(payload[1000:])
        echoed = bytearray(payload[:1000])
        while data := sock.recv(1 << 16):
            echoed += data
    assert echoed == payload
    assert process.popen.wait(timeout=30) == 0
    log = process.stderr
    assert b"SIGTERM" in log
    assert b"ended: complete" in log


def test_second_signal_exits_at_once(spawn: Spawn) -> None:
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--grace", "60")
    port = process.wait_for_port()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"100 stalled")
        assert recv_exactly(sock, 7) == b"stalled"  # it is being served
        process.popen.send_signal(signal.SIGTERM)
        process.wait_for_log(b"waiting for 1 connection(s) to end")
        assert process.popen.poll() is None  # waiting for the stalled connection
        start = time.monotonic()
        process.popen.send_signal(signal.SIGINT)
        assert process.popen.wait(timeout=10) == 0
        assert time.monotonic() - start < 5
    assert b"cutting 1 open connection" in process.stderr
    assert b"ended: cancelled" in process.stderr


def test_json_log_lines(spawn: Spawn) -> None:
    process = spawn(
        "-m", "trio_echo", "server", "--port", "0", "--log-format", "json", "--log-level", "debug"
    )
    port = process.wait_for_port()
    assert run("client", "--port", str(port), "hi").returncode == 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"+5 hello")
        assert sock.recv(100) == b""
    process.popen.send_signal(signal.SIGINT)
    assert process.popen.wait(timeout=30) == 0
    entries = [json.loads(line) for line in process.stderr.splitlines()]
    ends = [e for e in entries if "outcome" in e]
    assert [e["outcome"] for e in ends] == ["complete", "bad-length"]
    assert ends[0]["bytes_in"] == 4
    assert ends[0]["bytes_out"] == 2
    assert ends[1]["peer"].startswith("127.0.0.1:")
    assert ends[1]["level"] == "WARNING"
    assert any(e["message"].endswith("extracted content length=2") for e in entries)


def test_load_run_json(server: tuple[Process, int]) -> None:
    _process, port = server
    result = run(
        "client",
        "--port",
        str(port),
        "--repeat",
        "40",
        "--concurrency",
        "4",
        "--size",
        "1KiB",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["messages"], summary["errors"], summary["size"]) == (40, 0, 1024)
    assert summary["messages_per_second"] > 0


def test_load_run_text(server: tuple[Process, int]) -> None:
    _process, port = server
    result = run("client", "--port", str(port), "--repeat", "10", "--concurrency", "2")
    assert result.returncode == 0
    assert b"10 echoed, 0 errors" in result.stdout
    assert b"latency (ms): p50" in result.stdout


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("64KiB", 65536),
        ("64k", 65536),
        ("1M", 1 << 20),
        ("2 GiB", 2 << 30),
        ("1TiB", 1 << 40),
        ("1t", 1 << 40),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_echo_server_reads_the_data_behind_tcp_urgent_data(spawn: Spawn) -> None:
    # The server's reader is already waiting when urgent data arrives with
    # in-band data behind it (the process is stopped meanwhile, so that all
    # of it is queued at once): the echo must carry on past the urgent mark.
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--mode", "echo")
    port = process.wait_for_port()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(b"x")
        assert recv_exactly(client, 1) == b"x"  # the connection's reader waits now
        os.kill(process.pid, signal.SIGSTOP)
        try:
            client.send(b"abcd", socket.MSG_OOB)  # "d" is the urgent byte
            client.send(b"efgh")
            wait_until_acknowledged(client)  # all of it queued at the stopped server
        finally:
            os.kill(process.pid, signal.SIGCONT)
        client.settimeout(10)
        echoed = b""
        while echoed != b"abcefgh":
            data = client.recv(100)
            assert data, f"the server closed after echoing {echoed!r}"
            echoed += data
    assert echoed == b"abcefgh"


@pytest.fixture
def echo_server(spawn: Spawn) -> int:
    return spawn("-m", "trio_echo", "server", "--port", "0", "--mode", "echo").wait_for_port()


def test_count_client_against_an_echo_server_fails_at_once(echo_server: int) -> None:
    start = time.monotonic()
    result = run("client", "--port", str(echo_server), "hello")
    assert time.monotonic() - start < 10  # not the 60 s timeout
    assert result.returncode == ExitStatus.MISMATCH
    assert b"at byte 0" in result.stderr
    assert b"seems to be in echo or framed mode" in result.stderr
    assert_one_sentence(result.stderr)


def test_framed_client_against_a_count_server_names_count_mode(
    server: tuple[Process, int],
) -> None:
    _process, port = server
    result = run("client", "--port", str(port), "--mode", "framed", "one", "two", "three")
    assert result.returncode == ExitStatus.PROTOCOL
    assert b"seems to be in count mode" in result.stderr
    assert_one_sentence(result.stderr)


def test_echo_client_against_a_count_server_says_nothing_came_back(
    server: tuple[Process, int],
) -> None:
    _process, port = server
    result = run("client", "--port", str(port), "--mode", "echo", "hello")
    assert result.returncode in (ExitStatus.MISMATCH, ExitStatus.RESET)
    assert b"nothing came back" in result.stderr
    assert_one_sentence(result.stderr)


def silent_listener() -> socket.socket:
    """A port that accepts connections (the kernel does) and never answers."""
    return socket.create_server(("127.0.0.1", 0), backlog=64)


@pytest.mark.parametrize(
    ("target", "arguments", "status", "kind", "words"),
    [
        pytest.param(
            "echo",
            ["--mode", "count"],
            ExitStatus.MISMATCH,
            b"mismatch",
            b"echo or framed",
            id="mismatch",
        ),
        pytest.param(
            "silent",
            ["--timeout", "0.5"],
            ExitStatus.TIMEOUT,
            b"timeout",
            b"within 0.5 s",
            id="timeout",
        ),
        pytest.param(
            "count", ["--mode", "framed"], ExitStatus.PROTOCOL, b"framing", b"framing", id="framing"
        ),
        pytest.param("closed", [], ExitStatus.REFUSED, b"refused", b"cannot connect", id="refused"),
    ],
)
def test_load_run_status_follows_the_first_failure(  # noqa: PLR0917
    spawn: Spawn,
    target: str,
    arguments: list[str],
    status: ExitStatus,
    kind: bytes,
    words: bytes,
) -> None:
    listener = silent_listener()
    port = listener.getsockname()[1]
    if target == "closed":
        listener.close()
    elif target != "silent":
        listener.close()
        port = spawn("-m", "trio_echo", "server", "--port", "0", "--mode", target).wait_for_port()
    start = time.monotonic()
    result = run("client", "--port", str(port), "--repeat", "4", "--concurrency", "2", *arguments)
    listener.close()
    assert time.monotonic() - start < 20
    assert result.returncode == status, result.stderr
    assert b"4 of 4 messages failed (4 " + kind + b"); the first: " in result.stderr
    assert words in result.stderr
    assert not result.stderr.rstrip().endswith(b":")  # never an empty reason
    assert_one_sentence(result.stderr)


# -- the client streams, and names its own failures ---------------------------


def peak_rss_of(command: list[str], **popen: object) -> tuple[int, bytes, int]:
    """Run ``command`` to its end; return its status, its errors and its peak RSS."""
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        **popen,  # type: ignore[arg-type]
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    return process.returncode, errors, usage.ru_maxrss * 1024


BIG = 256 * MiB


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with path.open("wb") as file:
        block = random.Random(7).randbytes(MiB)
        for index in range(BIG // MiB):
            file.write(block[index:] + block[:index])
    return path


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process = Process(
        [sys.executable, "-m", "trio_echo", "server", "--port", "0", "--max-message-size", "1G"],
        tmp_path_factory.mktemp("big-server"),
    )
    try:
        yield process.wait_for_port()
    finally:
        process.stop()


def client_peak_rss(port: int, path: Path, how: str) -> int:
    """Send ``path`` with the client, as ``how`` says; return its peak RSS."""
    client = [sys.executable, "-m", "trio_echo", "client", "--port", str(port), "--quiet"]
    client += ["--max-message-size", "1G"]  # as the server's
    if how == "file":
        status, errors, peak = peak_rss_of([*client, "--file", str(path)])
    elif how == "stdin-file":
        with path.open("rb") as stdin:
            status, errors, peak = peak_rss_of([*client, "-"], stdin=stdin)
    else:  # a pipe: spooled to a temporary file, not to memory
        with subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE) as cat:
            status, errors, peak = peak_rss_of([*client, "-"], stdin=cat.stdout)
    assert (status, errors) == (0, b"")
    return peak


@pytest.mark.parametrize("how", ["file", "stdin-pipe", "stdin-file"])
def test_the_client_streams_a_large_message_in_bounded_memory(
    big_server: int, big_file: Path, how: str, tmp_path: Path
) -> None:
    # Against the same client sending 1 MiB (what the interpreter, trio and
    # any coverage tracer cost is the same in both): a message 256 times
    # larger costs a few pieces more, not the message.
    small = tmp_path / "small.bin"
    with big_file.open("rb") as big:
        small.write_bytes(big.read(MiB))
    baseline = client_peak_rss(big_server, small, how)
    peak = client_peak_rss(big_server, big_file, how)
    assert peak - baseline < 16 * MiB, (
        f"{(peak - baseline) / MiB:.0f} MiB more RSS for {BIG // MiB} MiB than for 1 MiB"
    )


def test_a_broken_pipe_on_the_output_ends_quietly(big_server: int, big_file: Path) -> None:
    port = big_server
    reader = subprocess.Popen(["head", "-c", "5"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert reader.stdin is not None
    result = subprocess.run(
        [*CLIENT_COMMAND, "--port", str(port), "--file", str(big_file), "--max-message-size", "1G"],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    reader.stdin.close()
    assert reader.stdout is not None
    with reader.stdout, big_file.open("rb") as sent:
        assert reader.stdout.read() == sent.read(5)
    reader.wait(timeout=30)
    assert (result.returncode, result.stderr) == (ExitStatus.OUTPUT_ERROR, b"")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_full_output_is_named_as_such(server: tuple[Process, int]) -> None:
    _process, port = server
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "trio_echo", "client", "--port", str(port), "hello"],
            stdout=full,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    assert result.returncode == ExitStatus.OUTPUT_ERROR
    assert b"cannot write the echo to standard output: no space left on device" in result.stderr
    assert_one_sentence(result.stderr)


def test_a_reset_after_a_message_too_large_says_why(spawn: Spawn) -> None:
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--max-message-size", "1K")
    port = process.wait_for_port()
    result = run("client", "--port", str(port), "x" * 100_000)
    assert result.returncode in (ExitStatus.RESET, ExitStatus.MISMATCH)
    assert b"a server refuses a message longer than its --max-message-size" in result.stderr
    assert b"this one is 100,000 bytes" in result.stderr
    assert_one_sentence(result.stderr)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("[::1]", "::1", None),
        ("[::1]:5000", "::1", 5000),
        ("127.0.0.1:5000", "127.0.0.1", 5000),
        ("::1", "::1", None),
        ("localhost", "localhost", None),
    ],
)
def test_the_client_takes_hosts_as_the_server_prints_them(
    text: str, host: str, port: int | None
) -> None:
    args = build_parser().parse_args(["client", "--host", text, "x"])
    assert args.host == (host, port)


def test_a_host_and_a_port_that_disagree_are_refused() -> None:
    result = run("client", "--host", "[::1]:5000", "--port", "6000", "x")
    assert result.returncode == ExitStatus.USAGE
    assert b"--host names port 5000 and --port names 6000" in result.stderr


def test_the_client_reaches_an_ipv6_server_by_its_printed_address(spawn: Spawn) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    process = spawn("-m", "trio_echo", "server", "--host", "::1", "--port", "0")
    port = process.wait_for_port()
    result = run("client", "--host", f"[::1]:{port}", "over six")
    assert (result.returncode, result.stdout) == (0, b"over six")


def test_a_load_run_with_nothing_completed_shows_no_latency() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
        result = run("client", "--port", str(port), "--repeat", "3", "--concurrency", "1")
    assert result.returncode == ExitStatus.REFUSED
    assert b"no message completed" in result.stdout
    assert b"latency (ms)" not in result.stdout


@pytest.mark.parametrize(
    ("mode", "messages", "expected"),
    [("count", ["hello"], b"hello\r\n"), ("framed", ["one", "two"], b"one\r\ntwo\r\n")],
)
def test_on_a_terminal_the_echo_ends_its_lines(
    spawn: Spawn, mode: str, messages: list[str], expected: bytes
) -> None:
    process = spawn("-m", "trio_echo", "server", "--port", "0", "--mode", mode)
    port = process.wait_for_port()
    result, shown = on_a_terminal(
        "stdout", "client", "--port", str(port), "--mode", mode, *messages
    )
    assert result.returncode == 0, result.stderr
    assert shown == expected
    # Into a pipe, the bytes exactly.
    piped = run("client", "--port", str(port), "--mode", mode, *messages)
    assert piped.stdout == b"".join(m.encode() for m in messages)


def test_a_file_whose_size_is_not_known_is_sent_whole(server: tuple[Process, int]) -> None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo here")
    _process, port = server
    result = run("client", "--port", str(port), "--file", str(cpuinfo))
    assert result.returncode == 0, result.stderr
    assert result.stdout == cpuinfo.read_bytes() != b""  # it reports a size of 0


def test_a_closed_standard_output_is_one_sentence(server: tuple[Process, int]) -> None:
    _process, port = server
    result = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m trio_echo client --port {port} hi >&-'],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitStatus.OUTPUT_ERROR
    assert b"standard output is closed" in result.stderr
    assert_one_sentence(result.stderr)


def test_a_load_run_makes_no_message_over_a_gibibyte() -> None:
    result = run("client", "--repeat", "1", "--size", "1TiB")
    assert result.returncode == ExitStatus.USAGE
    assert b"more than 1GiB, the largest message a load run makes" in result.stderr
