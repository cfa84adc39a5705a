# The command line: `trio-echo server` and `trio-echo client`.
#
# Every failure the user can cause (a bad flag, a port in use, a refused
# connection) ends with one sentence on standard error and a non-zero status,
# never a traceback. The statuses are listed in ExitStatus.
from __future__ import annotations

import argparse
import enum
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

import trio

from . import __version__
from ._client import EchoCheck, FramedAnswers, exchange
from ._config import DEFAULT_PORT, ServerConfig, default_max_connections
from ._errors import RemoteProtocolError
from ._framer import DEFAULT_MAX_MESSAGE_SIZE, encode_header
from ._load import run_load
from ._logging import LOG_FORMATS, configure_logging
from ._protocol import Mode
from ._server import ALL_INTERFACES, EchoServer, ListenAddress, format_address, open_listeners
from ._systemd import ActivationError, listeners_from_fds, notify, systemd_listeners
from ._workers import Supervisor, WorkerStartError

__all__ = ["ExitStatus", "main", "parse_size"]

PROG = "trio-echo"

logger = logging.getLogger("trio_echo.server")
workers_logger = logging.getLogger("trio_echo.workers")


class ExitStatus(enum.IntEnum):
    """The command line's exit statuses."""

    OK = 0
    MISMATCH = 1
    """Client: the echo differs from what was sent (short, long or altered)."""
    USAGE = 2
    """A bad flag or argument."""
    CANNOT_LISTEN = 3
    """Server: the address could not be bound (in use, not resolvable)."""
    REFUSED = 4
    """Client: the connection was refused or the host did not resolve."""
    TIMEOUT = 5
    """Client: the exchange did not finish within --timeout."""
    RESET = 6
    """Client: the server reset or broke the connection."""
    PROTOCOL = 7
    """Client: the server's answer broke the framing (framed mode)."""
    IO_ERROR = 8
    """Client: the input file could not be read."""


_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """Parse a byte count such as ``4096``, ``64KiB``, ``64M`` or ``1g``.

    Units are binary: K is 1024 bytes, M is 1024 K, G is 1024 M.

    Raises:
        argparse.ArgumentTypeError: If ``text`` is not such a count.
    """
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (examples: 4096, 64KiB, 1MiB)")
    return int(match[1]) * _UNITS[match[2][:1].lower()]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ServerConfig(max_connections=1)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help=(
            "address or name to listen on (default: 127.0.0.1, this machine only; "
            f"'{ALL_INTERFACES}' listens on every interface, IPv4 and IPv6; '::' on IPv6)"
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port to listen on; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        default=Mode.COUNT.value,
        help=(
            "count: echo the payload of one 'length payload' message, then close; "
            "echo: echo everything until the client closes; "
            "framed: answer each of many messages in kind (default: count)"
        ),
    )
    parser.add_argument(
        "--max-message-size",
        type=parse_size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="SIZE",
        help="largest length a message may announce (default: 64MiB)",
    )
    parser.add_argument(
        "--connection-buffer",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help=(
            "most echo bytes one connection may hold unsent "
            "(default: the maximum message size, so send-all-then-read clients complete)"
        ),
    )
    parser.add_argument(
        "--memory-budget",
        type=parse_size,
        default=defaults.memory_budget,
        metavar="SIZE",
        help="most echo bytes all connections together may hold unsent (default: 256MiB)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        default=defaults.header_timeout,
        metavar="SECONDS",
        help=f"time a length prefix has to arrive in full (default: {defaults.header_timeout:g})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help=(
            "close a connection after this long with nothing received or sent "
            f"(default: {defaults.idle_timeout:g})"
        ),
    )
    parser.add_argument(
        "--max-connections",
        type=_count,
        default=None,
        metavar="N",
        help=(
            "most connections served at once; past it, accepting pauses "
            f"(default: the open-file limit less 64, here {default_max_connections()})"
        ),
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help=(
            "on SIGINT or SIGTERM, time open connections have to finish before they "
            "are cut; a second signal cuts them at once (default: 10)"
        ),
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=(
            "serve with N processes, each a single-threaded server, sharing the port "
            "(SO_REUSEPORT) under a supervising parent that restarts one that dies "
            "(default: 1, no parent)"
        ),
    )
    parser.add_argument(
        "--fd",
        type=int,
        action="append",
        metavar="FD",
        help=(
            "serve on this inherited listening socket instead of binding (repeatable); "
            "sockets passed by systemd (LISTEN_FDS) are used without it"
        ),
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="bind with SO_REUSEPORT, so that other processes can share the port",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        default="INFO",
        help="INFO logs one line per connection; DEBUG adds every chunk (default: INFO)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text, or json for one JSON object per line (default: text)",
    )


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the client's arguments to ``parser``."""
    parser.add_argument(
        "message",
        nargs="*",
        metavar="MESSAGE",
        help=(
            "the message to send, or - to read it from standard input; framed mode "
            "takes several and pipelines them on one connection"
        ),
    )
    parser.add_argument("--file", metavar="PATH", help="send the contents of PATH")
    parser.add_argument(
        "--host", default="127.0.0.1", help="the server's host (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"the server's port (default: {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        default=Mode.COUNT.value,
        help="the server's mode (default: count)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="give up after this long (default: 60; in a load run, per message)",
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="do not write the echo to standard output (it is still checked)",
    )
    load = parser.add_argument_group(
        "load run",
        "Send many messages over concurrent connections and report throughput and latency.",
    )
    load.add_argument("--repeat", type=_count, metavar="N", help="messages to send in all")
    load.add_argument(
        "--concurrency",
        type=_count,
        default=10,
        metavar="C",
        help="connections at once (default: 10)",
    )
    load.add_argument(
        "--size",
        type=parse_size,
        default=100,
        metavar="SIZE",
        help="payload bytes per message (default: 100)",
    )
    load.add_argument("--json", action="store_true", help="print the figures as JSON")


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Echo servers and client for the count protocol ('length SP payload'), built on Trio."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = commands.add_parser(
        "server",
        help="run the echo server",
        description="Run the echo server until SIGINT or SIGTERM.",
    )
    _add_server_arguments(server)
    client = commands.add_parser(
        "client",
        help="send a message and check its echo, or put load on a server",
        description=(
            "Send a message to a trio_echo server (or any server of the protocol), "
            "write the echo to standard output and check it. Exit status 0 only when "
            "the echo matches."
        ),
    )
    add_client_arguments(client)
    return parser


def _fail(message: str, status: ExitStatus) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def run_server(args: argparse.Namespace) -> int:
    """Run the server as the command line asked; return the exit status."""
    try:
        config = ServerConfig(
            mode=Mode(args.mode),
            max_message_size=args.max_message_size,
            memory_budget=args.memory_budget,
            header_timeout=args.header_timeout,
            idle_timeout=args.idle_timeout,
            **{
                name: value
                for name in ("connection_buffer", "max_connections")
                if (value := getattr(args, name)) is not None
            },
        )
    except ValueError as error:
        return _fail(f"server: {error}", ExitStatus.USAGE)
    if not args.grace >= 0:
        return _fail("server: --grace must be zero or more seconds", ExitStatus.USAGE)
    if args.workers < 1:
        return _fail("server: --workers must be at least 1", ExitStatus.USAGE)
    configure_logging(args.log_level, args.log_format)
    where = format_address(args.host, args.port)
    try:
        handed_over = listeners_from_fds(args.fd) if args.fd else systemd_listeners()
    except ActivationError as error:
        return _fail(f"server: {error}", ExitStatus.CANNOT_LISTEN)
    if args.workers > 1:
        return _run_workers(args, handed_over)
    try:
        listeners = handed_over or open_listeners(args.host, args.port, reuse_port=args.reuse_port)
    except OSError as error:
        reason = error.strerror or str(error)
        return _fail(f"cannot listen on {where}: {reason.lower()}", ExitStatus.CANNOT_LISTEN)
    server = EchoServer(config, listeners)
    trio.run(_serve_until_signalled, server, args.grace)
    return ExitStatus.OK


def _worker_arguments(args: argparse.Namespace) -> list[str]:
    """The server options every worker gets, as the parent was given them."""
    options = {
        "--host": args.host,
        "--mode": args.mode,
        "--max-message-size": args.max_message_size,
        "--connection-buffer": args.connection_buffer,
        "--memory-budget": args.memory_budget,
        "--header-timeout": args.header_timeout,
        "--idle-timeout": args.idle_timeout,
        "--max-connections": args.max_connections,
        "--grace": args.grace,
        "--log-level": args.log_level,
        "--log-format": args.log_format,
    }
    return [
        str(item) for key, value in options.items() if value is not None for item in (key, value)
    ]


def _run_workers(args: argparse.Namespace, handed_over: list[socket.socket] | None) -> int:
    """Run ``--workers`` processes under a supervisor; return the exit status."""
    command = [sys.executable, "-m", "trio_echo", "server", *_worker_arguments(args)]
    where = format_address(args.host, args.port)
    reserved: list[socket.socket] = []
    if handed_over:
        # Every worker accepts on the same inherited sockets.
        pass_fds = [sock.fileno() for sock in handed_over]
        command += [item for fd in pass_fds for item in ("--fd", str(fd))]
        addresses = handed_over
    elif hasattr(socket, "SO_REUSEPORT"):
        # Each worker binds its own socket; the kernel spreads connections.
        # The parent binds the port too (without listening, so it gets no
        # connections) to learn the port 0 picked, and to hold it.
        try:
            reserved = open_listeners(args.host, args.port, reuse_port=True, listen=False)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            return _fail(f"cannot listen on {where}: {reason}", ExitStatus.CANNOT_LISTEN)
        pass_fds = []
        command += ["--port", str(reserved[0].getsockname()[1]), "--reuse-port"]
        addresses = reserved
    else:
        # No SO_REUSEPORT: the parent listens, and the workers inherit.
        try:
            addresses = open_listeners(args.host, args.port)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            return _fail(f"cannot listen on {where}: {reason}", ExitStatus.CANNOT_LISTEN)
        pass_fds = [sock.fileno() for sock in addresses]
        command += [item for fd in pass_fds for item in ("--fd", str(fd))]
    supervisor = Supervisor(command, args.workers, pass_fds=pass_fds)
    try:
        supervisor.start()
    except WorkerStartError as error:
        supervisor.stop()
        return _fail(f"server: {error}", ExitStatus.CANNOT_LISTEN)
    for sock in addresses:
        host, port = sock.getsockname()[:2]
        print(
            f"listening on {format_address(host, port)} mode={args.mode} workers={args.workers}",
            flush=True,
        )
    notify(f"READY=1\nSTATUS=serving with {args.workers} workers")
    workers_logger.info("%d workers serving (pids %s)", args.workers, supervisor.pids)

    def on_signal(signum: int, received: int) -> None:
        name = signal.Signals(signum).name
        if received == 1:
            notify("STOPPING=1")
            workers_logger.info("%s: asking %d workers to drain", name, len(supervisor.pids))
        else:
            workers_logger.warning("%s again: asking the workers to stop at once", name)

    status = supervisor.run(on_signal)
    for sock in [*reserved, *(handed_over or [])]:
        sock.close()
    return status


async def _serve_until_signalled(server: EchoServer, grace: float) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def serve(
                *, task_status: trio.TaskStatus[list[ListenAddress]] = trio.TASK_STATUS_IGNORED
            ) -> None:
                await server.serve(task_status=task_status)
                nursery.cancel_scope.cancel()  # served to the end: stop watching signals

            addresses: list[ListenAddress] = await nursery.start(serve)
            for address in addresses:
                print(f"listening on {address} mode={server.config.mode}", flush=True)
            notify("READY=1")
            received = 0
            async for signum in signals:
                received += 1
                name = signal.Signals(signum).name
                if received == 1:
                    notify("STOPPING=1")
                    logger.info(
                        "%s: not accepting; open connections have %g s to finish", name, grace
                    )
                    server.shutdown(grace)
                else:
                    logger.warning(
                        "%s again: cutting %d open connection(s) now", name, server.connections
                    )
                    server.abort()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` if
            None.
    """
    args = build_parser().parse_args(argv)
    if args.command == "server":
        return run_server(args)
    if args.repeat is not None:
        return run_load_command(args)
    return run_client(args)


def _read_messages(args: argparse.Namespace) -> list[bytes]:
    """Return the payloads the client was asked to send.

    Raises:
        _UsageError: If the arguments do not name exactly one source, or
            name several messages outside framed mode.
        OSError: If the input cannot be read.
    """
    sources = len(args.message) + (args.file is not None)
    if sources == 0:
        raise _UsageError("client: give a MESSAGE, --file PATH, or - for standard input")
    if args.file is not None and args.message:
        raise _UsageError("client: give either MESSAGE or --file, not both")
    if sources > 1 and args.mode != Mode.FRAMED:
        raise _UsageError(f"client: {args.mode} mode sends one message; framed mode sends several")
    if args.file is not None:
        with open(args.file, "rb") as file:
            return [file.read()]
    messages = []
    for message in args.message:
        if message == "-":
            messages.append(sys.stdin.buffer.read())
        else:
            messages.append(os.fsencode(message))
    return messages


class _UsageError(Exception):
    pass


class _Progress:
    """Bytes sent and echoed, shown on standard error while it is a terminal."""

    INTERVAL = 0.5

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.echoed = 0
        self._start = time.monotonic()
        self._shown = False

    def on_sent(self, count: int) -> None:
        self.sent += count

    def on_echoed(self, count: int) -> None:
        self.echoed += count

    def show(self) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.echoed / elapsed / 1e6
        print(
            f"\rsent {self.sent:,} of {self.total:,} bytes, echoed {self.echoed:,}"
            f" ({rate:,.1f} MB/s)   ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self.show()
            print(file=sys.stderr)

    async def run(self) -> None:
        while True:
            await trio.sleep(self.INTERVAL)
            self.show()


async def _client_exchange(
    args: argparse.Namespace, messages: list[bytes], write: Callable[[bytes], None]
) -> str | None:
    """Run the client's exchange; return what is wrong with the echo, if anything."""
    mode = Mode(args.mode)
    total = sum(len(message) for message in messages)
    progress = _Progress(0)

    def echoed(data: bytes) -> None:
        write(data)
        progress.on_echoed(len(data))

    if mode is Mode.FRAMED:
        outgoing = [part for m in messages for part in (encode_header(len(m)), m)]
        answers = FramedAnswers(max_message_size=max(len(m) for m in messages), on_payload=echoed)
        sink: Callable[[bytes], None] = answers
        half_close_after: int | None = 0
    else:
        check = EchoCheck(messages[0])
        outgoing = [encode_header(total), messages[0]] if mode is Mode.COUNT else messages

        def sink(data: bytes) -> None:
            check(data)
            echoed(data)

        half_close_after = None if mode is Mode.COUNT else total
    progress.total = sum(len(data) for data in outgoing)  # what goes on the wire
    with trio.fail_after(args.timeout):
        stream = await trio.open_tcp_stream(args.host, args.port)
        async with stream:
            if not sys.stderr.isatty():
                sent_all = await exchange(stream, outgoing, sink, half_close_after=half_close_after)
            else:
                failure: Exception | None = None
                sent_all = False
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(progress.run)
                    try:
                        sent_all = await exchange(
                            stream,
                            outgoing,
                            sink,
                            half_close_after=half_close_after,
                            on_sent=progress.on_sent,
                        )
                    except Exception as error:  # raised below as itself, not in a group
                        failure = error
                    nursery.cancel_scope.cancel()
                progress.finish()
                if failure is not None:
                    raise failure
    if mode is Mode.FRAMED:
        answers.end()
        if answers.answers != messages:
            return _framed_problem(answers.answers, messages)
        return None
    problem = check.problem()
    if problem and not sent_all:
        problem += " (the server closed the connection before the whole message was sent)"
    return problem


def _framed_problem(answers: list[bytes], messages: list[bytes]) -> str:
    for index, (answer, message) in enumerate(zip(answers, messages, strict=False)):
        if answer != message:
            return f"answer {index + 1} differs from message {index + 1}"
    return f"{len(answers)} answers came back for {len(messages)} messages"


def run_client(args: argparse.Namespace) -> int:
    """Send the message(s) the command line names; return the exit status."""
    try:
        messages = _read_messages(args)
    except _UsageError as error:
        return _fail(str(error), ExitStatus.USAGE)
    except OSError as error:
        return _fail(
            f"client: cannot read {error.filename or 'the input'}: "
            f"{(error.strerror or str(error)).lower()}",
            ExitStatus.IO_ERROR,
        )
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        if not args.quiet:
            out.write(data)
            out.flush()

    where = format_address(args.host, args.port)
    try:
        problem = trio.run(_client_exchange, args, messages, write)
    except trio.TooSlowError:
        return _fail(
            f"client: no complete echo from {where} within {args.timeout:g} s", ExitStatus.TIMEOUT
        )
    except trio.BrokenResourceError as error:
        cause = error.__cause__ or error
        return _fail(f"client: the connection to {where} was reset ({cause})", ExitStatus.RESET)
    except RemoteProtocolError as error:
        return _fail(
            f"client: the answers from {where} break the framing: {error}", ExitStatus.PROTOCOL
        )
    except OSError as error:
        return _fail(
            f"client: cannot connect to {where}: {_connect_failure(error)}", ExitStatus.REFUSED
        )
    if problem is not None:
        return _fail(f"client: {problem}", ExitStatus.MISMATCH)
    return ExitStatus.OK


def _connect_failure(error: OSError) -> str:
    """Say in a few words why a connection failed.

    trio reports every address it tried as the cause of one OSError; the
    first attempt's reason is the one to tell.
    """
    cause = error.__cause__
    if isinstance(cause, BaseExceptionGroup):
        attempts = [e for e in cause.exceptions if isinstance(e, OSError)]
        if attempts:
            error = attempts[0]
    elif isinstance(cause, OSError):
        error = cause
    if error.errno is not None and error.errno > 0:  # name lookups have their own codes
        return os.strerror(error.errno).lower()
    return (error.strerror or str(error)).lower()


def run_load_command(args: argparse.Namespace) -> int:
    """Run a load run as the command line asked; return the exit status."""
    if args.message or args.file is not None:
        return _fail(
            "client: a load run (--repeat) makes its own messages; give no MESSAGE or --file",
            ExitStatus.USAGE,
        )
    report = trio.run(
        lambda: run_load(
            args.host,
            args.port,
            mode=args.mode,
            repeat=args.repeat,
            concurrency=args.concurrency,
            size=args.size,
            timeout=args.timeout,
        )
    )
    summary = report.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        latency = summary["latency_ms"]
        assert isinstance(latency, dict)
        print(
            f"{report.mode} mode, {report.size} B messages, {report.concurrency} connections: "
            f"{report.messages} echoed, {report.errors} errors in {report.seconds:.2f} s\n"
            f"throughput: {report.messages_per_second:,.0f} messages/s, "
            f"{report.megabytes_per_second:,.2f} MB/s\n"
            f"latency (ms): p50 {latency['p50']}, p90 {latency['p90']}, "
            f"p99 {latency['p99']}, max {latency['max']}"
        )
    if report.errors:
        print(
            f"{PROG}: client: {report.errors} messages failed; first: {report.first_error}",
            file=sys.stderr,
        )
        return ExitStatus.MISMATCH if report.messages else ExitStatus.REFUSED
    return ExitStatus.OK
