# What a pump is told to do next: the answers of `EchoProtocol.next_action`.
from __future__ import annotations

import attrs

from ._events import _SentinelBase

__all__ = [
    "CHECK_UNREAD",
    "CLOSE",
    "HANDSHAKE",
    "PAUSED",
    "SEND_EOF",
    "YIELD",
    "Action",
    "Receive",
]


@attrs.frozen
class Receive:
    """Read at most ``max_bytes``, waiting for them.

    Pass them (``b""`` at the end of the stream) to `EchoProtocol.receive_data`.
    A read that need not wait need not be a checkpoint either: the protocol
    says `YIELD` when a step's work is done.

    With ``echo``, the read's bytes are their own answer, and nothing waits
    to be sent before them: a pump may send them straight back, as much as
    goes without waiting, and report both at once with
    `EchoProtocol.echoed`. Nothing of the read outlives that call unless the
    send was short (the rest is then held, and counted in `held`).

    Attributes:
        max_bytes: The most bytes to read: what the protocol can hold.
        echo: Whether the bytes may go straight back (`EchoProtocol.echoed`).
    """

    max_bytes: int
    echo: bool = False


class YIELD(metaclass=_SentinelBase):
    """A step's work is done: let other tasks run, then ask again.

    Said when framing work is left after MAX_MESSAGES_PER_STEP messages,
    and before a read once STEP_BYTES were taken in since the last one.
    """


class PAUSED(metaclass=_SentinelBase):
    """Nothing to do until bytes are sent (`EchoProtocol.sent`).

    The connection holds all it may, or its last answers must go out first.
    """


class CHECK_UNREAD(metaclass=_SentinelBase):  # noqa: N801
    """Say, without waiting, whether closing now could reset the connection.

    Pass bytes that wait unread to `EchoProtocol.receive_data`, or call
    `EchoProtocol.report_unread`: `Unread.NO` only if nothing waits and
    everything sent is acknowledged, `Unread.UNKNOWN` if the transport
    cannot tell.
    """


class SEND_EOF(metaclass=_SentinelBase):  # noqa: N801
    """Half-close (send the end of stream), then call `EchoProtocol.eof_sent`."""


class HANDSHAKE(metaclass=_SentinelBase):
    """Do the TLS handshake, then call `EchoProtocol.handshake_done`."""


class CLOSE(metaclass=_SentinelBase):
    """Close the connection: `EchoProtocol.outcome` says how it ended."""


Action = (
    Receive
    | type[YIELD]
    | type[PAUSED]
    | type[CHECK_UNREAD]
    | type[SEND_EOF]
    | type[HANDSHAKE]
    | type[CLOSE]
)
"""What `EchoProtocol.next_action` may say."""
