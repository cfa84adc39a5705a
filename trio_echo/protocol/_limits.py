# The bounds one connection keeps, each declared once as a setting (see
# `_declarations`). `ServerConfig` declares the server's own settings the
# same way.
#
# Nothing here reads a setting on the hot path: `Limits` is a plain frozen
# attrs class, built once per server, whose fields a connection reads as
# attributes.
from __future__ import annotations

import attrs

from ._declarations import documented, setting
from ._framer import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["IDLE_GRANULARITY", "MIN_CONNECTION_BUFFER", "Limits", "default_max_held"]

IDLE_GRANULARITY = 0.5
"""Seconds by which the idle deadline may land late (see `EchoProtocol`)."""

MIN_CONNECTION_BUFFER = 64 * 1024
"""One full read: the default connection buffer is never less, and the
command line takes no buffer or budget below it."""


def default_max_held(max_message_size: int) -> int:
    """The bytes a connection may hold by default: a whole message, and what holding it costs.

    That is the message, a sixteenth more for a buffer's overhead per read
    (at most 1/64 of it), and a read more, so that a client which sends a
    whole message before it reads any of the echo, as the original's client
    did, completes.
    """
    return max_message_size + max_message_size // 16 + MIN_CONNECTION_BUFFER


_EACH = "each connection"
_TLS = "TLS"


@documented
@attrs.frozen
class Limits:
    """Every bound a connection keeps."""

    max_message_size: int = setting(
        DEFAULT_MAX_MESSAGE_SIZE,
        flag="--max-message-size",
        doc="the length a message may announce, and so the digits of its prefix",
        group=_EACH,
        unit="bytes",
        least=0,
        bound=True,
    )
    max_held: int = setting(
        attrs.Factory(lambda self: default_max_held(self.max_message_size), takes_self=True),
        flag="--connection-buffer",
        doc=(
            "memory one connection may hold: bytes received and not yet framed, and answers"
            " not yet sent, each buffer charged with its overhead"
        ),
        group=_EACH,
        unit="bytes",
        least=1,
        floor=MIN_CONNECTION_BUFFER,
        why="one full read",
        default_text=(
            "a whole message and what holding it costs, within {memory_budget}:"
            " {max_message_size} plus a sixteenth plus 64KiB, so that a client which sends"
            " its whole message before it reads completes"
        ),
        bound=True,
    )
    header_timeout: float = setting(
        10.0,
        flag="--header-timeout",
        doc=(
            "time for a length prefix to arrive in full: in count mode from the connection's"
            " start, in framed mode from the prefix's first byte"
        ),
        group=_EACH,
        unit="seconds",
        positive=True,
        bound=True,
    )
    idle_timeout: float = setting(
        60.0,
        flag="--idle-timeout",
        doc=(
            "time a connection may go with nothing received or sent, "
            "or with answers waiting and none taken"
        ),
        group=_EACH,
        unit="seconds",
        positive=True,
        bound=True,
    )
    linger_timeout: float = setting(
        2.0,
        flag="--linger-timeout",
        doc=(
            "time a count connection waits, after its echo and a half-close, for a client"
            " that may still send to close (unread bytes would turn the server's close into"
            " a reset that destroys the echo); 0 closes at once"
        ),
        group=_EACH,
        unit="seconds",
        least=0,
        bound=True,
    )
    min_data_rate: float = setting(
        240.0,
        flag="--min-data-rate",
        doc=(
            "how fast a message's payload must come, on average, once {min_data_rate_grace}"
            " has passed since its length prefix; 0 turns it off. Echo mode has no"
            " messages, and keeps the idle timeout alone"
        ),
        group=_EACH,
        unit="bytes/s",
        least=0,
        bound=True,
    )
    min_data_rate_grace: float = setting(
        5.0,
        flag="--min-data-rate-grace",
        doc="time a message's payload has before its rate counts",
        group=_EACH,
        unit="seconds",
        least=0,
        bound=True,
    )
    handshake_timeout: float = setting(
        attrs.Factory(lambda self: self.header_timeout, takes_self=True),
        flag="--tls-handshake-timeout",
        doc=(
            "time a TLS handshake has to end, from the connection's start; the header"
            " timeout starts when it ends"
        ),
        group=_TLS,
        unit="seconds",
        positive=True,
        default_text="that of {header_timeout}",
        bound=True,
    )
    idle_granularity: float = attrs.field(init=False)
    """Seconds by which the idle deadline may land late: see `EchoProtocol`."""

    @idle_granularity.default
    def _idle_granularity(self) -> float:
        return min(IDLE_GRANULARITY, self.idle_timeout / 16)
