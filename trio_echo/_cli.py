# The command line: `trio-echo server` and `trio-echo client`.
#
# This module is the parser: it checks every argument and converts it to a
# typed value once, here, then hands the command to its module
# (_server_command, _client_command). Every failure the user can cause ends
# with one sentence on standard error and a status from ExitStatus.
from __future__ import annotations

import argparse
import math
import re
import socket
import sys
from collections.abc import Sequence

from . import __version__
from ._client_command import run_client, run_load_command
from ._config import DEFAULT_PORT, ServerConfig, default_max_connections
from ._framer import DEFAULT_MAX_MESSAGE_SIZE
from ._logging import LOG_FORMATS, configure_logging
from ._protocol import Mode
from ._server import ALL_INTERFACES
from ._server_command import ServerOptions, run_server
from ._status import PROG, ExitStatus, fail

__all__ = ["ExitStatus", "build_parser", "main", "parse_size"]

_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

MAX_SIZE = 1 << 40
"""The largest size a flag takes: 1 TiB."""


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


def _size(text: str) -> int:
    """A size from 1 byte to `MAX_SIZE`."""
    size = parse_size(text)
    if not 1 <= size <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size from 1 byte to 1TiB")
    return size


def _number(text: str, *, zero: bool, unit: str = "seconds") -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 if zero else value > 0) or math.isinf(value):
        kind = "zero or a positive number" if zero else "a positive number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind} of {unit}")
    return value


def _seconds(text: str) -> float:
    return _number(text, zero=False)


def _seconds_or_zero(text: str) -> float:
    return _number(text, zero=True)


def _rate(text: str) -> float:
    return _number(text, zero=True, unit="bytes per second")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _fd(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file descriptor number")
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
        type=_size,
        default=DEFAULT_MAX_MESSAGE_SIZE,
        metavar="SIZE",
        help="largest length a message may announce (default: 64MiB)",
    )
    parser.add_argument(
        "--connection-buffer",
        type=_size,
        default=None,
        metavar="SIZE",
        help=(
            "most echo bytes one connection may hold unsent "
            "(default: the maximum message size, so send-all-then-read clients complete)"
        ),
    )
    parser.add_argument(
        "--memory-budget",
        type=_size,
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
        "--min-data-rate",
        type=_rate,
        default=defaults.min_data_rate,
        metavar="BYTES_PER_SECOND",
        help=(
            "close a connection whose message payload, after a grace of "
            f"{defaults.min_data_rate_grace:g} s, averages less than this; 0 turns it off; "
            f"echo mode has no messages, so only the idle timeout (default: "
            f"{defaults.min_data_rate:g})"
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
        type=_seconds_or_zero,
        default=10.0,
        metavar="SECONDS",
        help=(
            "on SIGINT or SIGTERM, time open connections have to finish before they "
            "are cut; a second signal cuts them at once (default: 10)"
        ),
    )
    parser.add_argument(
        "--workers",
        type=_count,
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
        type=_fd,
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


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
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
        type=_size,
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
            " Each command lists its own options: trio-echo server --help,"
            " trio-echo client --help."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    server = commands.add_parser(
        "server",
        help="run the echo server",
        description="Run the echo server until SIGINT or SIGTERM.",
    )
    _add_server_arguments(server)
    server.set_defaults(command_parser=server)
    client = commands.add_parser(
        "client",
        help="send a message and check its echo, or put load on a server",
        description=(
            "Send a message to a trio_echo server (or any server of the protocol), "
            "write the echo to standard output and check it. Exit status 0 only when "
            "the echo matches."
        ),
    )
    _add_client_arguments(client)
    client.set_defaults(command_parser=client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` if
            None.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Unknown arguments are reported by the parser of the command they came
    # with (its usage, not the top level's), and before a missing command.
    args, unknown = parser.parse_known_args(argv)
    command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
    if unknown:
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error("give a COMMAND: server or client")
    if args.command == "server":
        try:
            options = _server_options(args)
        except ValueError as error:
            return fail(f"server: {error}", ExitStatus.USAGE)
        configure_logging(args.log_level, args.log_format)
        return run_server(options, argv)
    if args.repeat is None:
        for flag in ("concurrency", "size", "json"):
            if getattr(args, flag) != command_parser.get_default(flag):
                command_parser.error(f"--{flag} is for a load run: give --repeat N too")
        return run_client(args)
    return run_load_command(args)


def _server_options(args: argparse.Namespace) -> ServerOptions:
    """The server command's arguments as typed values.

    Raises:
        ValueError: If they do not make a valid `ServerConfig`.
    """
    if args.reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("--reuse-port needs SO_REUSEPORT, which this platform does not have")
    given: dict[str, object] = {
        name: value
        for name in ("connection_buffer", "max_connections")
        if (value := getattr(args, name)) is not None
    }
    config = ServerConfig(
        mode=Mode(args.mode),
        max_message_size=args.max_message_size,
        memory_budget=args.memory_budget,
        header_timeout=args.header_timeout,
        idle_timeout=args.idle_timeout,
        min_data_rate=args.min_data_rate,
        **given,  # type: ignore[arg-type]
    )
    return ServerOptions(
        config=config,
        host=args.host,
        port=args.port,
        grace=args.grace,
        workers=args.workers,
        fds=tuple(args.fd or ()),
        reuse_port=args.reuse_port,
    )
