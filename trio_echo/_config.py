# What a server is told: the protocol mode and every bound on what a peer can
# make it hold (bytes, time, connections). One immutable value, validated once,
# shared by the command line, the server and the connection handler.
from __future__ import annotations

import math
import resource

import attrs

from ._framer import DEFAULT_MAX_MESSAGE_SIZE
from ._protocol import Mode

__all__ = [
    "DEFAULT_PORT",
    "ServerConfig",
    "default_max_connections",
]

DEFAULT_PORT = 50007
"""The port the original Twisted server listened on."""

MiB = 1024 * 1024

MIN_CONNECTION_BUFFER = 64 * 1024
"""The default connection buffer is never less than one full read."""


def default_max_connections() -> int:
    """Return a connection cap that fits the process's open-file limit.

    Each connection takes one file descriptor; 64 are kept back for the
    listeners, logging and the runtime.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(1, soft - 64)


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isnan(value):
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be zero or more, not {value!r}")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """How a server behaves, and the bounds it keeps.

    Attributes:
        mode: The protocol spoken on every connection.
        max_message_size: The largest length a count or framed message may
            announce.
        memory_budget: The most echo bytes all connections together may hold
            unsent. Past it, connections stop reading until bytes drain.
        connection_buffer: The most echo bytes one connection may hold unsent;
            at most ``memory_budget``. By default ``max_message_size`` (so that
            a client which sends a whole message before reading any of the
            echo, as the original's client did, completes), but at least one
            full read (64 KiB), and within the budget.
        header_timeout: Seconds a length prefix has to arrive in full: from
            the connection's start in count mode, from its first byte in
            framed mode.
        idle_timeout: Seconds a connection may go without a byte received or
            sent before it is closed.
        linger_timeout: Seconds a count connection waits for the peer to
            close when the peer sent bytes after its message: the server
            half-closes and discards them, so that unread bytes cannot turn
            its close into a reset that destroys the echo. (With nothing
            unread, it closes at once.)
        max_connections: The most connections served at once; past it the
            server stops accepting until one ends.
    """

    mode: Mode = attrs.field(default=Mode.COUNT, converter=Mode)
    max_message_size: int = attrs.field(
        default=DEFAULT_MAX_MESSAGE_SIZE, validator=attrs.validators.ge(0)
    )
    memory_budget: int = attrs.field(default=256 * MiB, validator=attrs.validators.ge(1))
    connection_buffer: int = attrs.field(
        default=attrs.Factory(
            lambda self: min(max(self.max_message_size, MIN_CONNECTION_BUFFER), self.memory_budget),
            takes_self=True,
        ),
        validator=attrs.validators.ge(1),
    )
    header_timeout: float = attrs.field(default=10.0, validator=_positive)
    idle_timeout: float = attrs.field(default=60.0, validator=_positive)
    linger_timeout: float = attrs.field(default=2.0, validator=_non_negative)
    max_connections: int = attrs.field(
        factory=default_max_connections, validator=attrs.validators.ge(1)
    )

    def __attrs_post_init__(self) -> None:
        if self.connection_buffer > self.memory_budget:
            raise ValueError(
                f"connection_buffer ({self.connection_buffer}) may not exceed "
                f"memory_budget ({self.memory_budget})"
            )
