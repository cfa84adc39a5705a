# Every check between the command line's settings, in one place: a flag that
# means something only with another, flags that exclude each other, two that
# must agree, and what a flag needs of the platform.
#
# What one value may be is its declaration's bound, read where the flag is
# parsed (cli/_settings.py). That a connection buffer fits the memory budget
# is `ServerConfig`'s own check, because the library holds to it too; its
# error names the flags as these do.
from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import attrs

from ..server._metrics import MetricsUnavailableError, check_available
from ._client_options import LOAD_FLAGS, TLS_FLAGS, ClientOptions
from ._readers import MAX_LOAD_IN_FLIGHT, size_text
from ._settings import flag

__all__ = [
    "CLIENT_RULES",
    "SERVER_RULES",
    "Excludes",
    "Needs",
    "UsageError",
    "check_client",
    "check_server",
]


class UsageError(Exception):
    """Flags that do not go together; the message says how, in a sentence."""


@attrs.frozen
class Needs:
    """A setting that means something only with another.

    Attributes:
        setting: The setting given.
        other: The setting it needs.
        problem: What is wrong, after the setting's flag.
    """

    setting: str
    other: str
    problem: str

    def check(self, given: Mapping[str, Any]) -> None:
        """Raise `UsageError` if ``given`` has the setting without the other."""
        if self.setting in given and self.other not in given:
            raise UsageError(f"{flag(self.setting)} {self.problem}")


@attrs.frozen
class Excludes:
    """A setting that another may not go with.

    Attributes:
        setting: The setting given.
        other: The setting it excludes.
        problem: What is wrong, after the setting's flag.
    """

    setting: str
    other: str
    problem: str

    def check(self, given: Mapping[str, Any]) -> None:
        """Raise `UsageError` if ``given`` has both settings."""
        if self.setting in given and self.other in given:
            raise UsageError(f"{flag(self.setting)} {self.problem}")


SERVER_RULES: tuple[Needs | Excludes, ...] = (
    Needs("tls_key", "tls_cert", "is for TLS: give --tls-cert too"),
    Needs("tls_client_ca", "tls_cert", "is for TLS: give --tls-cert too"),
    Needs("handshake_timeout", "tls_cert", "is for TLS: give --tls-cert too"),
    Needs("unix_mode", "unix", "is for a unix socket: give --unix PATH too"),
)
"""What the server command's flags ask of each other, checked in order."""

CLIENT_RULES: tuple[Needs | Excludes, ...] = (
    Excludes("unix", "host", "names the server's socket: give no --host"),
    Excludes("unix", "port", "names the server's socket: give no --port"),
    *(Needs(name, "tls", "is for TLS: give --tls too") for name in TLS_FLAGS),
    Needs("key", "cert", "is the key of a client certificate: give --cert FILE too"),
    *(Needs(name, "repeat", "is for a load run: give --repeat N too") for name in LOAD_FLAGS),
)
"""What the client command's flags ask of each other, checked in order."""


def check_server(given: Mapping[str, Any]) -> dict[str, Any]:
    """Check the server command's flags ``given`` against each other.

    Returns:
        The settings, with what the flags imply: no TCP listener when only
        a unix socket is asked for.

    Raises:
        UsageError: If two flags do not go together, or a flag asks for
            what this platform does not have.
    """
    if given.get("reuse_port") and not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--reuse-port needs SO_REUSEPORT, which this platform does not have")
    if "metrics" in given:
        try:
            check_available()
        except MetricsUnavailableError as missing:
            raise UsageError(str(missing)) from None
    for rule in SERVER_RULES:
        rule.check(given)
    fds = given.get("fds", [])
    if repeated := sorted({fd for fd in fds if fds.count(fd) > 1}):
        raise UsageError(f"--fd {repeated[0]} is given more than once; name each socket once")
    if "unix" in given and not ("host" in given or "port" in given):
        return {**given, "tcp": False}  # only the unix socket was asked for
    return dict(given)


_CLIENT_DEFAULTS = ClientOptions()


def _check_load_in_flight(given: Mapping[str, Any]) -> None:
    """Raise `UsageError` if a load run would have more than `MAX_LOAD_IN_FLIGHT` under way."""
    size = given.get("size", _CLIENT_DEFAULTS.size)
    concurrency = given.get("concurrency", _CLIENT_DEFAULTS.concurrency)
    if "repeat" in given and size * concurrency > MAX_LOAD_IN_FLIGHT:
        raise UsageError(
            f"--size {size_text(size)} with --concurrency {concurrency} is"
            f" {size * concurrency:,} bytes under way at once, more than a load run's"
            f" {size_text(MAX_LOAD_IN_FLIGHT)}: lower one of them"
        )


def check_client(given: Mapping[str, Any]) -> dict[str, Any]:
    """Check the client command's flags ``given`` against each other.

    Returns:
        The settings, with the port that ``--host HOST:PORT`` names.

    Raises:
        UsageError: If two flags do not go together.
    """
    for rule in CLIENT_RULES:
        rule.check(given)
    _check_load_in_flight(given)
    settings = dict(given)
    if "host" in settings:
        settings["host"], port = settings["host"]
        if port is not None and settings.setdefault("port", port) != port:
            raise UsageError(
                f"--host names port {port} and --port names {settings['port']}: give one"
            )
    return settings
