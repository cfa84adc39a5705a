# The command line: `trio-echo server` and `trio-echo client`.
#
# This module is the parser: it checks every argument and converts it to a
# typed value once, here, then hands the command to its module
# (_server_command, _client_command, _load_command). Every failure the user
# can cause ends with one sentence on standard error and a status from
# ExitStatus.
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import attrs

from .. import __version__
from .._status import PROG, ExitStatus, fail, speak_for
from ..protocol import ConfigError, Limits
from ..server._config import ServerConfig
from ..server._log import configure_logging
from ..server._signals import restore_default_handlers
from ._checks import UsageError, check_client, check_server
from ._client_command import run_client
from ._client_options import ClientOptions
from ._load_command import run_load_command
from ._readers import parse_size
from ._server_command import ServerOptions, run_server
from ._settings import HelpFormatter, add_client_arguments, add_server_arguments, flag

__all__ = ["ExitStatus", "build_parser", "main", "parse_size"]


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that a bad argument is its sentence, then where help is.

    Not the whole usage, which would bury the sentence: the sentence has
    the prefix of every failure, ``trio-echo: client: ...``.
    """

    def error(self, message: str) -> NoReturn:
        """Say ``message`` and where the options are listed; exit with `ExitStatus.USAGE`."""
        self.exit(
            ExitStatus.USAGE,
            f"{self.prog.replace(' ', ': ')}: {message}\n"
            f"Try '{self.prog} --help' for the options.\n",
        )


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's argument parser.

    A flag not given is absent from the parsed namespace: the defaults are
    those of `ServerConfig`, `ServerOptions` and `ClientOptions`.
    """
    parser = _Parser(
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
        formatter_class=HelpFormatter,
    )
    add_server_arguments(server)
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
        formatter_class=HelpFormatter,
    )
    add_client_arguments(client)
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
    speak_for(args.command)
    given = {
        name: value
        for name, value in vars(args).items()
        if name not in ("command", "command_parser")
    }
    if args.command == "server":
        try:
            options = _server_options(given)
        except ConfigError as error:
            return fail(error.describe(flag), ExitStatus.USAGE)
        except UsageError as error:
            return fail(str(error), ExitStatus.USAGE)
        configure_logging(options.log_level, options.log_format)
        return run_server(options, argv)
    try:
        client = ClientOptions(**check_client(given))
    except UsageError as error:
        command_parser.error(str(error))
    status = None
    try:
        restore_default_handlers()  # the client has no drain: a signal ends it
        status = run_client(client) if client.repeat is None else run_load_command(client)
    except* KeyboardInterrupt:  # alone, or from inside a nursery
        pass
    return fail("interrupted", ExitStatus.INTERRUPTED) if status is None else status


_LIMITS = frozenset(field.name for field in attrs.fields(Limits) if field.init)
_CONFIG = frozenset(field.name for field in attrs.fields(ServerConfig) if field.init)


def _server_options(given: dict[str, Any]) -> ServerOptions:
    """The server command's options, from the flags ``given``.

    Each flag's value goes to the class that declares its setting: `Limits`,
    `ServerConfig` or `ServerOptions`.

    Raises:
        UsageError: If two flags do not go together, or a flag asks for what
            this platform does not have.
        ConfigError: If the values do not make a valid `ServerConfig`.
    """
    given = check_server(given)
    limits = Limits(**{k: v for k, v in given.items() if k in _LIMITS})
    config = ServerConfig(limits=limits, **{k: v for k, v in given.items() if k in _CONFIG})
    rest = {k: v for k, v in given.items() if k not in _LIMITS | _CONFIG}
    return ServerOptions(config=config, **rest)
