# The commands' flags, made from the settings' declarations.
#
# Every setting is declared once, where its value lives (`Limits`,
# `ServerConfig`, `ServerOptions` for the server, `ClientOptions` for the
# client; see protocol/_limits.py). Here each declaration becomes a flag:
# its reader (from its unit and bound), its --help line (its words, its
# floor, its default) and its section of --help. A declaration whose flag is
# not a flag (``MESSAGE``) is a positional argument; one whose flag lists
# another after a comma (``--quiet, -q``) takes that spelling too.
# The documentation's table of bounds is made from the same declarations
# (`bounds_rows`); benchmarks/pages.py writes it into docs/discussion/bounds.md
# with the pages' other generated parts.
from __future__ import annotations

import argparse
import functools
import re
import textwrap
from collections.abc import Callable
from typing import Any

import attrs

from .._status import ExitStatus
from ..protocol._declarations import Setting, settings
from ..protocol._limits import Limits
from ..server._config import ServerConfig
from ._client_options import LOAD_RUN, TLS, ClientOptions
from ._readers import (
    read_count,
    read_fd,
    read_file_mode,
    read_host_and_port,
    read_load_size,
    read_metrics_address,
    read_number,
    read_port,
    read_server_name,
    read_size,
    size_text,
)
from ._server_options import ServerOptions

__all__ = [
    "CLIENT_GROUPS",
    "CLIENT_SETTINGS",
    "GROUPS",
    "SERVER_SETTINGS",
    "Declared",
    "HelpFormatter",
    "add_arguments",
    "add_client_arguments",
    "add_server_arguments",
    "bounds_rows",
    "client_declared",
    "declared",
    "flag",
    "help_text",
]

SERVER_SETTINGS: tuple[type, ...] = (ServerConfig, ServerOptions, Limits)
"""The classes whose settings the server command takes; within a section of
--help, their settings come in this order."""

GROUPS: dict[str, str | None] = {
    "listening": "Where to listen: TCP, a unix socket, or sockets handed over.",
    "serving": "The protocol, and the server as a whole: its memory, its connections, its"
    " processes and its shutdown.",
    "each connection": "What one connection may make the server hold, and for how long."
    " Sizes take binary units (4096, 64KiB, 1M, 2GiB), from 1 byte to 1TiB.",
    "TLS": "Serve every connection over TLS 1.2 or newer. SIGUSR1 loads the certificate and"
    " key again (for connections accepted from then on); if they cannot be loaded, the ones"
    " in use stay, with a warning.",
    "metrics and log": None,
}
"""The sections of ``trio-echo server --help``, in order, each with its words."""

CLIENT_SETTINGS: tuple[type, ...] = (ClientOptions,)
"""The classes whose settings the client command takes."""

CLIENT_GROUPS: dict[str, str | None] = {
    "": None,  # the command's own options
    TLS: "Speak TLS to the server, over TCP or a unix socket. A certificate that is rejected"
    " (the server's, or the client's by the server) exits with status"
    f" {int(ExitStatus.CERTIFICATE)}; a TLS file that cannot be used, with"
    f" {int(ExitStatus.USAGE)}.",
    LOAD_RUN: "Send many messages over concurrent connections and report throughput and latency.",
}
"""The sections of ``trio-echo client --help``, in order, each with its words."""


@attrs.frozen
class Declared:
    """A setting as its class declares it.

    Attributes:
        name: The field's name, and the parsed argument's.
        setting: Its declaration.
        default: The field's default: a value, or an `attrs.Factory`.
        home: The class that declares it.
    """

    name: str
    setting: Setting
    default: Any
    home: type


def _declared_in(homes: tuple[type, ...], groups: dict[str, str | None]) -> tuple[Declared, ...]:
    """Every setting of ``homes``, in the order of their sections in ``groups``."""
    every = [
        Declared(field.name, setting, field.default, home)
        for home in homes
        for field, setting in settings(home)
    ]
    return tuple(sorted(every, key=lambda one: list(groups).index(one.setting.group)))


@functools.cache
def declared() -> tuple[Declared, ...]:
    """Every setting of the server command, in the order --help lists them."""
    return _declared_in(SERVER_SETTINGS, GROUPS)


@functools.cache
def client_declared() -> tuple[Declared, ...]:
    """Every setting of the client command, in the order --help lists them."""
    return _declared_in(CLIENT_SETTINGS, CLIENT_GROUPS)


def _spellings(setting: Setting) -> list[str]:
    """The ways to write ``setting``'s flag: ``["--quiet", "-q"]``."""
    return setting.flag.split(", ")


def flag(name: str) -> str:
    """The flag that sets the setting ``name``: ``--connection-buffer`` for ``max_held``."""
    flags = {one.name: _spellings(one.setting)[0] for one in (*client_declared(), *declared())}
    return flags.get(name, "--" + name.replace("_", "-"))


_JOINED = "\u00a0"
"""Joins a number to its unit in help texts, so that no line ends between them."""


def _show(setting: Setting, value: Any, space: str = " ") -> str:
    """A value as the flags write it: ``64MiB``, ``60 s``, ``0600``."""
    if setting.unit == "bytes":
        return size_text(value)
    if setting.unit == "seconds":
        return f"{value:g}{space}s"
    if setting.unit == "bytes/s":
        return f"{value:g}{space}bytes/s"
    if setting.unit == "octal":
        return f"{value:04o}"
    return str(value)


def _default(one: Declared, name: Callable[[str], str], *, here: bool) -> str:
    """The default of ``one`` in words.

    With ``here``, a default derived from nothing else says what it is on
    this machine too.
    """
    setting, default = one.setting, one.default
    if setting.default_text:
        words = setting.default_in_words(name)
        if here and isinstance(default, attrs.Factory) and not default.takes_self:  # type: ignore[arg-type]
            words += f", here {_show(setting, default.factory())}"
        return words
    if default in (None, (), False):
        return ""
    return _show(setting, default, _JOINED if here else " ")


def _floor(setting: Setting) -> str:
    """The least the command line takes, and why: ``64KiB, one full read``."""
    if setting.floor is None:
        return ""
    return f"{_show(setting, setting.floor)}, {setting.why}"


def help_text(one: Declared) -> str:
    """The --help line of ``one``: its words, its floor and its default."""
    default = _default(one, flag, here=True)
    floor = _floor(one.setting)
    notes = [
        note for note in (floor and f"at least {floor}", default and f"default: {default}") if note
    ]
    text = one.setting.text(flag) + (f" ({'; '.join(notes)})" if notes else "")
    return text.replace("%", "%%")  # argparse formats help with %


def _choose(choices: tuple[str, ...]) -> Callable[[str], str]:
    """Read one of ``choices``, whatever its case."""
    by_case = {choice.casefold(): choice for choice in choices}
    return lambda text: by_case.get(text.casefold(), text)


def _sized(setting: Setting) -> Callable[[str], int]:
    """Read a size within ``setting``'s floor."""

    def read(text: str) -> int:
        size = read_size(text)
        if setting.floor is not None and size < setting.floor:
            raise argparse.ArgumentTypeError(f"{text!r} is less than {_floor(setting)}")
        return size

    return read


def _reading(setting: Setting) -> dict[str, Any]:
    """How argparse reads values of ``setting``: its type, metavar, action."""
    unit, zero = setting.unit, not setting.positive
    if unit == "bytes":
        return {"type": _sized(setting), "metavar": "SIZE"}
    if unit == "seconds":
        return {"type": functools.partial(read_number, zero=zero), "metavar": "SECONDS"}
    if unit == "bytes/s":
        rate = functools.partial(read_number, zero=zero, unit="bytes per second")
        return {"type": rate, "metavar": "BYTES_PER_SECOND"}
    if unit == "choice":
        return {"type": _choose(setting.choices), "choices": setting.choices}
    if unit == "switch":
        return {"action": "store_true"}
    if unit == "messages":
        return {"nargs": "*", "metavar": setting.flag}
    readers: dict[str, tuple[Callable[[str], Any] | None, str]] = {
        "count": (read_count, "N"),
        "port": (read_port, "PORT"),
        "fd": (read_fd, "FD"),
        "octal": (read_file_mode, "MODE"),
        "host:port": (read_metrics_address, "HOST:PORT"),
        "host": (None, "HOST"),
        "host[:port]": (read_host_and_port, "HOST"),
        "load size": (read_load_size, "SIZE"),
        "name": (None, "NAME"),
        "server name": (read_server_name, "NAME"),
        "path": (None, "PATH"),
        "file": (None, "FILE"),
    }
    read, metavar = readers[unit]
    reading: dict[str, Any] = {"metavar": metavar}
    if read is not None:
        reading["type"] = read
    if unit == "fd":
        reading["action"] = "append"
    return reading


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that no line of help ends inside a flag or after a number."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        lines = textwrap.wrap(re.sub(r"[ \t\n]+", " ", text), width, break_on_hyphens=False)
        return [line.replace(_JOINED, " ") for line in lines]


def add_arguments(
    parser: argparse.ArgumentParser,
    every: tuple[Declared, ...],
    groups: dict[str, str | None],
) -> None:
    """Add a flag to ``parser`` for each setting of ``every``.

    Each goes to its section of ``groups`` (``""``: the parser's own). A
    flag not given is absent from the parsed namespace (the parser's
    ``argument_default`` is `argparse.SUPPRESS`): the declarations own the
    defaults, and --help quotes them.
    """
    sections: dict[str, argparse.ArgumentParser | argparse._ArgumentGroup] = {
        title: parser.add_argument_group(title, words) if title else parser
        for title, words in groups.items()
    }
    for one in every:
        section = sections[one.setting.group]
        reading = _reading(one.setting)
        if one.setting.flag.startswith("-"):
            spellings = _spellings(one.setting)
            section.add_argument(*spellings, dest=one.name, help=help_text(one), **reading)
        else:  # a positional argument, named by its field
            section.add_argument(one.name, help=help_text(one), **reading)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag to ``parser`` for each setting of the server command."""
    add_arguments(parser, declared(), GROUPS)


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag to ``parser`` for each setting of the client command."""
    add_arguments(parser, client_declared(), CLIENT_GROUPS)


def _code(name: str) -> str:
    return f"`{flag(name)}`"


def bounds_rows() -> list[tuple[str, str, str]]:
    """The table of bounds: each setting declared as one, a connection's first.

    Returns:
        A row per setting: its flag, its default and what it bounds, in
        Markdown.
    """
    rows = []
    for one in sorted(declared(), key=lambda one: one.home is not Limits):
        if one.setting.bound:
            floor = _floor(one.setting)
            words = one.setting.text(_code) + (f"; at least {floor}" if floor else "")
            rows.append((f"`{one.setting.flag}`", _default(one, _code, here=False), words))
    return rows
