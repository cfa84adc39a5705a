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
from typing import Any

import attrs

from .. import __version__
from .._status import PROG, ExitStatus, fail
from ..protocol import Mode
from ..server._config import (
    MIN_CONNECTION_BUFFER,
    ConfigError,
    ServerConfig,
    default_max_connections,
)
from ..server._listeners import ALL_INTERFACES
from ..server._log import LOG_FORMATS, configure_logging
from ..server._metrics import MetricsUnavailableError, check_available
from ..server._signals import restore_default_handlers
from ._client_command import (
    LOAD_FLAGS,
    TLS_FLAGS,
    ClientOptions,
    run_client,
    run_load_command,
)
from ._server_command import ServerOptions, run_server

__all__ = ["ExitStatus", "build_parser", "main", "parse_size"]

_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)\s*$")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

MAX_SIZE = 1 << 40
"""The largest size a flag takes: 1 TiB."""


def parse_size(text: str) -> int:
    """Parse a byte count such as ``4096``, ``64KiB``, ``64M`` or ``1g``.

    Units are binary: K is 1024 bytes, M is 1024 K, G is 1024 M, T is 1024 G.

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


MAX_LOAD_SIZE = 1 << 30
"""The largest message of a load run: its messages are made in memory."""


def _load_size(text: str) -> int:
    size = _size(text)
    if size > MAX_LOAD_SIZE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than 1GiB, the largest message a load run makes (in memory)"
        )
    return size


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


def _host_and_port(text: str) -> tuple[str, int | None]:
    """A host, and the port it names if it names one.

    As the server prints its address (``[::1]:5000``, ``127.0.0.1:5000``),
    or a bracketed, bare name or address (``[::1]``, ``::1``, ``localhost``).
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a host ([::1] or [::1]:PORT)")
        return host, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None


def _metrics_address(text: str) -> tuple[str, int]:
    """Where to serve metrics: ``HOST:PORT``, or ``:PORT`` (this machine only).

    Hosts as `_host_and_port` takes them: ``[::1]:9100``, ``127.0.0.1:9100``.
    """
    if text.startswith(":"):
        text = "127.0.0.1" + text
    host, port = _host_and_port(text)
    if port is None or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (127.0.0.1:9100)")
    return host, port


def _fd(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file descriptor number")
    return int(text)


def _file_mode(text: str) -> int:
    """File permissions in octal: ``600``, ``0660``."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not file permissions in octal (0600)")
    return mode


def _at_least_a_read(text: str) -> int:
    """A size from `MIN_CONNECTION_BUFFER` (one full read) to `MAX_SIZE`."""
    size = _size(text)
    if size < MIN_CONNECTION_BUFFER:
        raise argparse.ArgumentTypeError(
            f"{text!r} is less than 64KiB, one full read: a connection could not keep up"
        )
    return size


def _default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the attrs class ``cls``.

    Only for a field whose default is a value, not a factory.
    """
    return attrs.fields_dict(cls)[name].default


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    # Every flag defaults to being absent (the parser's argument_default):
    # ServerConfig and ServerOptions own the defaults, and the help quotes them.
    def config(name: str) -> Any:
        return _default(ServerConfig, name)

    def option(name: str) -> Any:
        return _default(ServerOptions, name)

    parser.add_argument(
        "--host",
        help=(
            f"address or name to listen on (default: {option('host')}, this machine only; "
            f"'{ALL_INTERFACES}' listens on every interface, IPv4 and IPv6; '::' on IPv6)"
        ),
    )
    parser.add_argument(
        "--port",
        type=_port,
        help=f"port to listen on; 0 picks a free one (default: {option('port')})",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        help=(
            "count: echo the payload of one 'length payload' message, then close; "
            "echo: echo everything until the client closes; "
            f"framed: answer each of many messages in kind (default: {config('mode')})"
        ),
    )
    parser.add_argument(
        "--max-message-size",
        type=_size,
        metavar="SIZE",
        help=(
            "largest length a message may announce "
            f"(default: {_size_text(config('max_message_size'))})"
        ),
    )
    parser.add_argument(
        "--connection-buffer",
        type=_at_least_a_read,
        metavar="SIZE",
        help=(
            "most bytes one connection may hold, received or unsent, at least 64KiB "
            "(default: a whole message and what holding it costs, so that clients which "
            "send everything before they read complete; at most the memory budget)"
        ),
    )
    parser.add_argument(
        "--memory-budget",
        type=_at_least_a_read,
        metavar="SIZE",
        help=(
            "most bytes all connections together may hold, at least 64KiB "
            f"(default: {_size_text(config('memory_budget'))})"
        ),
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"time a length prefix has to arrive in full (default: {config('header_timeout'):g})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=(
            "close a connection after this long with nothing received or sent "
            f"(default: {config('idle_timeout'):g})"
        ),
    )
    parser.add_argument(
        "--linger-timeout",
        type=_seconds_or_zero,
        metavar="SECONDS",
        help=(
            "after a count message is echoed, how long to wait for a client that may still "
            "send to close, so that its unread bytes cannot turn the close into a reset "
            f"that destroys the echo; 0 closes at once (default: {config('linger_timeout'):g})"
        ),
    )
    parser.add_argument(
        "--min-data-rate",
        type=_rate,
        metavar="BYTES_PER_SECOND",
        help=(
            "close a connection whose message payload, after a grace of "
            f"{config('min_data_rate_grace'):g} s, averages less than this; 0 turns it off; "
            f"echo mode has no messages, so only the idle timeout (default: "
            f"{config('min_data_rate'):g})"
        ),
    )
    parser.add_argument(
        "--max-connections",
        type=_count,
        metavar="N",
        help=(
            "most connections served at once; past it, accepting pauses "
            f"(default: the open-file limit less 64, here {default_max_connections()})"
        ),
    )
    parser.add_argument(
        "--grace",
        type=_seconds_or_zero,
        metavar="SECONDS",
        help=(
            "on SIGINT, SIGTERM or SIGHUP, time open connections have to finish before "
            "they are cut; a second such signal, or SIGQUIT, cuts them at once "
            f"(default: {option('grace'):g})"
        ),
    )
    parser.add_argument(
        "--workers",
        type=_count,
        metavar="N",
        help=(
            "serve with N processes, each a single-threaded server, sharing the port "
            "(SO_REUSEPORT) under a supervising parent that restarts one that dies "
            f"(default: {option('workers')}, no parent)"
        ),
    )
    parser.add_argument(
        "--fd",
        dest="fds",
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
        "--unix",
        metavar="PATH",
        help=(
            "listen on a unix socket at PATH too (only there, unless --host or --port is "
            "given); a stale socket file is removed first, anything else there is refused; "
            "the file is removed on exit (default: none)"
        ),
    )
    parser.add_argument(
        "--unix-mode",
        type=_file_mode,
        metavar="MODE",
        help=f"the unix socket file's permissions, in octal (default: {option('unix_mode'):04o})",
    )
    tls = parser.add_argument_group(
        "TLS",
        "Serve every connection over TLS 1.2 or newer. SIGUSR1 loads the certificate and key"
        " again (for connections accepted from then on); if they cannot be loaded, the ones"
        " in use stay, with a warning.",
    )
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="the server's certificate chain, PEM, its own certificate first (default: no TLS)",
    )
    tls.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the certificate's private key, PEM (default: in the --tls-cert file)",
    )
    tls.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help=(
            "require a client certificate issued by an authority in FILE, PEM (mutual TLS; "
            "default: none asked for)"
        ),
    )
    tls.add_argument(
        "--tls-handshake-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=(
            "time a TLS handshake has to end, from the connection's start; the header "
            "timeout starts when it ends (default: the header timeout)"
        ),
    )
    parser.add_argument(
        "--metrics",
        type=_metrics_address,
        metavar="HOST:PORT",
        help=(
            "serve Prometheus metrics at http://HOST:PORT/metrics (:PORT: this machine "
            "only); with --workers, one scrape covers every worker, labelled by worker; "
            "needs the metrics extra: pip install 'trio_echo[metrics]' (default: off)"
        ),
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help=(
            "INFO logs one line per connection; DEBUG adds every chunk "
            f"(default: {option('log_level')})"
        ),
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help=f"text, or json for one JSON object per line (default: {option('log_format')})",
    )


def _size_text(size: int) -> str:
    """A byte count as the flags write it: ``64MiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    def option(name: str) -> Any:
        return _default(ClientOptions, name)

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
        "--host",
        type=_host_and_port,
        help=(
            f"the server's host, or HOST:PORT as the server prints it ([::1]:50007) "
            f"(default: {option('host')})"
        ),
    )
    parser.add_argument("--port", type=_port, help=f"the server's port (default: {option('port')})")
    parser.add_argument(
        "--unix",
        metavar="PATH",
        help="connect to the server's unix socket at PATH, instead of a host and a port",
    )
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        help=f"the server's mode (default: {option('mode')})",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=(
            f"give up after this long (default: {option('timeout'):g}; in a load run, per message)"
        ),
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="do not write the echo to standard output (it is still checked)",
    )
    tls = parser.add_argument_group(
        "TLS",
        "Speak TLS to the server, over TCP or a unix socket. A certificate that is"
        " rejected (the server's, or the client's by the server) exits with status"
        f" {int(ExitStatus.CERTIFICATE)}; a TLS file that cannot be used, with"
        f" {int(ExitStatus.USAGE)}.",
    )
    tls.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS: the server's certificate must verify and carry the server's name",
    )
    tls.add_argument(
        "--cafile",
        metavar="FILE",
        help="trust the certificate authorities in FILE (PEM) (default: the system's trust store)",
    )
    tls.add_argument(
        "--server-name",
        metavar="NAME",
        help=(
            "the name the server's certificate must carry (default: the host; "
            "over --unix, localhost)"
        ),
    )
    tls.add_argument(
        "--cert",
        metavar="FILE",
        help=(
            "present this client certificate (PEM) to a server that asks for one; "
            "the file may hold its key too"
        ),
    )
    tls.add_argument(
        "--key",
        metavar="FILE",
        help="the client certificate's private key (PEM) (default: in the --cert file)",
    )
    load = parser.add_argument_group(
        "load run",
        "Send many messages over concurrent connections and report throughput and latency.",
    )
    load.add_argument("--repeat", type=_count, metavar="N", help="messages to send in all")
    load.add_argument(
        "--concurrency",
        type=_count,
        metavar="C",
        help=f"connections at once (default: {option('concurrency')})",
    )
    load.add_argument(
        "--size",
        type=_load_size,
        metavar="SIZE",
        help=f"payload bytes per message (default: {option('size')})",
    )
    load.add_argument("--json", action="store_true", help="print the figures as JSON")


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser.

    A flag not given is absent from the parsed namespace: the defaults are
    those of `ServerConfig`, `ServerOptions` and `ClientOptions`.
    """
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
        description=(
            "Run the echo server until a signal stops it: SIGINT, SIGTERM or SIGHUP drain"
            " (stop accepting, let open connections finish within --grace), a second one"
            " cuts what is left; SIGQUIT cuts at once."
        ),
        argument_default=argparse.SUPPRESS,
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
        argument_default=argparse.SUPPRESS,
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
    if getattr(args, "command", None) is None:
        parser.error("give a COMMAND: server or client")
    given = {
        name: value
        for name, value in vars(args).items()
        if name not in ("command", "command_parser")
    }
    if args.command == "server":
        try:
            options = _server_options(given)
        except ConfigError as error:
            return fail(f"server: {error.describe(_flag)}", ExitStatus.USAGE)
        except ValueError as error:
            return fail(f"server: {error}", ExitStatus.USAGE)
        configure_logging(options.log_level, options.log_format)
        return run_server(options, argv)
    if "unix" in given:
        for name in ("host", "port"):
            if name in given:
                command_parser.error(f"--unix names the server's socket: give no {_flag(name)}")
    if not given.get("tls"):
        for name in TLS_FLAGS:
            if name in given:
                command_parser.error(f"{_flag(name)} is for TLS: give --tls too")
    if "key" in given and "cert" not in given:
        command_parser.error("--key is the key of a client certificate: give --cert FILE too")
    if "host" in given:
        given["host"], port = given["host"]
        if port is not None and given.setdefault("port", port) != port:
            command_parser.error(
                f"--host names port {port} and --port names {given['port']}: give one"
            )
    client = ClientOptions(**given)
    if client.repeat is None:
        for name in LOAD_FLAGS:
            if name in given:
                command_parser.error(f"{_flag(name)} is for a load run: give --repeat N too")
    status = None
    try:
        restore_default_handlers()  # the client has no drain: a signal ends it
        status = run_client(client) if client.repeat is None else run_load_command(client)
    except* KeyboardInterrupt:  # alone, or from inside a nursery
        pass
    return fail("client: interrupted", ExitStatus.INTERRUPTED) if status is None else status


def _flag(name: str) -> str:
    """The flag that sets the option ``name``: ``--connection-buffer``."""
    return "--" + name.replace("_", "-")


_CONFIG_FIELDS = frozenset(field.name for field in attrs.fields(ServerConfig) if field.init)


def _server_options(given: dict[str, Any]) -> ServerOptions:
    """The server command's options, from the flags ``given``.

    Raises:
        ConfigError: If they do not make a valid `ServerConfig`.
        ValueError: If they ask for what this platform does not have.
    """
    if given.get("reuse_port") and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("--reuse-port needs SO_REUSEPORT, which this platform does not have")
    if "metrics" in given:
        try:
            check_available()
        except MetricsUnavailableError as error:
            raise ValueError(str(error)) from None
    for flag in ("tls_key", "tls_client_ca", "tls_handshake_timeout"):
        if flag in given and "tls_cert" not in given:
            raise ValueError(f"{_flag(flag)} is for TLS: give --tls-cert too")
    if "unix_mode" in given and "unix" not in given:
        raise ValueError("--unix-mode is for a unix socket: give --unix PATH too")
    if "unix" in given and not ("host" in given or "port" in given):
        given = {**given, "tcp": False}  # only the unix socket was asked for
    fds = given.get("fds", [])
    if repeated := sorted({fd for fd in fds if fds.count(fd) > 1}):
        raise ValueError(f"--fd {repeated[0]} is given more than once; name each socket once")
    config = ServerConfig(**{k: v for k, v in given.items() if k in _CONFIG_FIELDS})
    return ServerOptions(
        config=config, **{k: v for k, v in given.items() if k not in _CONFIG_FIELDS}
    )
