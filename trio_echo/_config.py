# What a server is told: the protocol mode and every bound on what a peer can
# make it hold (bytes, time, connections). One immutable value, validated once,
# shared by the command line, the server and the connection handler.
from __future__ import annotations

import enum
import math
import resource

import attrs

from ._framer import DEFAULT_MAX_MESSAGE_SIZE

__all__ = [
    "DEFAULT_PORT",
    "Mode",
    "ServerConfig",
    "default_max_connections",
]

DEFAULT_PORT = 50007
"""The port the original Twisted server listened on."""

MiB = 1024 * 1024


class Mode(enum.StrEnum):
    """What the server does with the bytes of a connection."""

    COUNT = "count"
    """Read ``length SP payload``, echo the payload, close (the original's
    EchoCount)."""

    ECHO = "echo"
    """Echo every byte until the peer closes (the original's Echo)."""

    FRAMED = "framed"
    """Answer each of any number of messages with the same framing, until the
    peer half-closes."""


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
        connection_buffer: The most echo bytes one connection may hold unsent.
            It is at least ``max_message_size`` by default, so that a client
            which sends a whole message before reading any of the echo (as the
            original's client did) still completes.
        memory_budget: The most echo bytes all connections together may hold
            unsent. Past it, connections stop reading until bytes drain.
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
    connection_buffer: int = attrs.field(
        default=DEFAULT_MAX_MESSAGE_SIZE, validator=attrs.validators.ge(1)
    )
    memory_budget: int = attrs.field(default=256 * MiB, validator=attrs.validators.ge(1))
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
