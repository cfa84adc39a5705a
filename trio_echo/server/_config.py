# What a server is told: the protocol mode and every bound on what a peer can
# make it hold (bytes, time, connections). One immutable value, validated once,
# shared by the command line, the server and the connection handler.
from __future__ import annotations

import math
import resource
from collections.abc import Callable

import attrs

from ..protocol import DEFAULT_MAX_MESSAGE_SIZE, Limits, Mode

__all__ = [
    "ConfigError",
    "ServerConfig",
    "default_max_connections",
]

MiB = 1024 * 1024

MIN_CONNECTION_BUFFER = 64 * 1024
"""The default connection buffer is never less than one full read."""


def _default_connection_buffer(config: ServerConfig) -> int:
    # A whole message, with room for what holding it costs besides its bytes
    # (a buffer's overhead per read, at most 1/64 of it) and for a read more.
    wanted = config.max_message_size + config.max_message_size // 16 + MIN_CONNECTION_BUFFER
    return min(wanted, config.memory_budget)


def default_max_connections() -> int:
    """Return a connection cap that fits the process's open-file limit.

    Each connection takes one file descriptor; 64 are kept back for the
    listeners, logging and the runtime.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(1, soft - 64)


class ConfigError(ValueError):
    """A setting out of its bounds, or two settings that disagree.

    Its message names settings by their field names; `describe` names them
    as its caller does (the command line by its flags).

    Attributes:
        setting: The setting at fault.
        problem: What is wrong with it, naming any other setting as
            ``{name}`` (formatted by `describe`).
        other: That other setting's name, if any.
    """

    def __init__(self, setting: str, problem: str, other: str | None = None) -> None:
        self.setting, self.problem, self.other = setting, problem, other
        super().__init__(self.describe())

    def describe(self, name: Callable[[str], str] = str) -> str:
        """The error in a sentence, each setting called ``name(setting)``."""
        other = name(self.other) if self.other else ""
        return f"{name(self.setting)} {self.problem.format(name=other)}"


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or math.isnan(value):
        raise ConfigError(attribute.name, f"must be positive, not {value!r}")


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ConfigError(attribute.name, f"must be zero or more, not {value!r}")


def _at_least(least: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not value >= least:
            raise ConfigError(attribute.name, f"must be at least {least}, not {value!r}")

    return check


@attrs.frozen(kw_only=True)
class ServerConfig:
    """How a server behaves, and the bounds it keeps.

    Attributes:
        mode: The protocol spoken on every connection.
        max_message_size: The largest length a count or framed message may
            announce.
        memory_budget: The most echo bytes all connections together may hold
            unsent. Past it, connections stop reading until bytes drain.
        connection_buffer: The most bytes one connection may hold: received
            bytes not yet framed and answers not yet sent, each buffer charged
            with its overhead. At most ``memory_budget``. By default a
            whole message and what holding it costs (``max_message_size``
            plus a sixteenth, plus 64 KiB), so that a client which sends a
            whole message before reading any of the echo, as the original's
            client did, completes; within the budget.
        header_timeout: Seconds a length prefix has to arrive in full: from
            the connection's start in count mode, from its first byte in
            framed mode.
        idle_timeout: Seconds a connection may go without a byte received or
            sent before it is closed.
        linger_timeout: Seconds a count connection waits for the peer to
            close when the peer may still send after its message: the server
            half-closes and discards what comes, so that unread bytes cannot
            turn its close into a reset that destroys the echo. (With nothing
            unread, it closes at once.)
        min_data_rate: Bytes per second a message's payload must average once
            ``min_data_rate_grace`` has passed since its length prefix, or
            the connection is closed (``too-slow``); 0 turns it off. Echo
            mode, which has no messages, has the idle timeout alone.
        min_data_rate_grace: Seconds a payload has before its rate counts.
        max_connections: The most connections served at once; past it the
            server stops accepting until one ends.
        tls_handshake_timeout: Seconds a TLS connection's handshake has to
            end, from the connection's start; the header timer starts when
            it ends. None: the header timeout.
    """

    mode: Mode = attrs.field(default=Mode.COUNT, converter=Mode)
    max_message_size: int = attrs.field(default=DEFAULT_MAX_MESSAGE_SIZE, validator=_at_least(0))
    memory_budget: int = attrs.field(default=256 * MiB, validator=_at_least(1))
    connection_buffer: int = attrs.field(
        default=attrs.Factory(_default_connection_buffer, takes_self=True),
        validator=_at_least(1),
    )
    header_timeout: float = attrs.field(default=10.0, validator=_positive)
    idle_timeout: float = attrs.field(default=60.0, validator=_positive)
    linger_timeout: float = attrs.field(default=2.0, validator=_non_negative)
    min_data_rate: float = attrs.field(default=240.0, validator=_non_negative)
    min_data_rate_grace: float = attrs.field(default=5.0, validator=_non_negative)
    max_connections: int = attrs.field(factory=default_max_connections, validator=_at_least(1))
    tls_handshake_timeout: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )

    limits: Limits = attrs.field(init=False, repr=False, eq=False)
    """The bounds of each connection, as its `EchoProtocol` takes them."""

    def __attrs_post_init__(self) -> None:
        if self.connection_buffer > self.memory_budget:
            raise ConfigError(
                "connection_buffer",
                f"({self.connection_buffer:,} bytes) may not exceed {{name}}"
                f" ({self.memory_budget:,} bytes)",
                "memory_budget",
            )
        limits = Limits(
            max_message_size=self.max_message_size,
            max_held=self.connection_buffer,
            header_timeout=self.header_timeout,
            idle_timeout=self.idle_timeout,
            linger_timeout=self.linger_timeout,
            min_data_rate=self.min_data_rate,
            min_data_rate_grace=self.min_data_rate_grace,
            handshake_timeout=(
                self.header_timeout
                if self.tls_handshake_timeout is None
                else self.tls_handshake_timeout
            ),
        )
        object.__setattr__(self, "limits", limits)
