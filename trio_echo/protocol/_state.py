# The phases of one connection, how it may end, and the table that says how
# it closes once its answers are out.
#
#   HANDSHAKING -> READING -> ENDING -> (LINGERING ->) DONE
#
# A TLS connection begins HANDSHAKING; any other begins READING. Reading is
# over (ENDING) when a count message ends, the peer ends the stream, or the
# peer breaks the protocol; once the answers are out, the connection closes
# (DONE) or first discards what the peer still sends (LINGERING). An expired
# deadline, a broken transport or the server's cancellation goes straight to
# DONE from any phase. Nothing here sees bytes.
from __future__ import annotations

import enum

from ._events import _SentinelBase

__all__ = [
    "CLEAN_OUTCOMES",
    "CLOSINGS",
    "DONE",
    "ENDING",
    "HANDSHAKING",
    "LINGERING",
    "READING",
    "Closing",
    "Outcome",
    "Phase",
    "Unread",
]


class HANDSHAKING(metaclass=_SentinelBase):
    """The TLS handshake comes first."""


class READING(metaclass=_SentinelBase):
    """The protocol wants the peer's bytes."""


class ENDING(metaclass=_SentinelBase):
    """Reading is over: the last answers go out, then the connection closes."""


class LINGERING(metaclass=_SentinelBase):
    """Discarding what the peer sends until it closes (half-closed, if it can)."""


class DONE(metaclass=_SentinelBase):
    """The outcome is known and the connection must close."""


Phase = type[HANDSHAKING] | type[READING] | type[ENDING] | type[LINGERING] | type[DONE]


class Outcome(enum.StrEnum):
    """How a connection ended, as it appears in the log.

    Besides these, a connection that broke the protocol ends with the
    `trio_echo.Reason` of its error (``bad-length``, ``too-many-digits``,
    ``length-too-large``, ``eof-in-header``, ``eof-in-payload``).
    """

    COMPLETE = "complete"
    """Count mode: the payload was echoed in full."""
    NO_MESSAGE = "no-message"
    """Count mode: the peer closed before sending a byte."""
    CLOSED = "closed"
    """Echo and framed modes: the peer closed and every answer was sent."""
    HEADER_TIMEOUT = "header-timeout"
    """A length prefix did not arrive within the header timeout."""
    IDLE_TIMEOUT = "idle-timeout"
    """Nothing was received or sent for the idle timeout."""
    TOO_SLOW = "too-slow"
    """A message's payload came in slower than the minimum data rate."""
    BUDGET_TIMEOUT = "budget-timeout"
    """The server's memory budget stayed full for the idle timeout while the
    connection waited for room to read: the server's limit, not the peer's
    fault."""
    RESET = "reset"
    """The peer went away (a reset, or a broken pipe) mid-transfer."""
    TLS_HANDSHAKE = "tls-handshake"
    """The TLS handshake failed (the detail gives the ssl library's words),
    or did not end within the handshake timeout."""
    CANCELLED = "cancelled"
    """The server cut the connection short (shutdown after the grace period)."""
    INTERNAL_ERROR = "internal-error"
    """A bug in this server; logged with its traceback."""


CLEAN_OUTCOMES = frozenset({Outcome.COMPLETE, Outcome.NO_MESSAGE, Outcome.CLOSED})
"""The endings the protocol intends."""


class Unread(enum.Enum):
    """Whether closing now could reset the connection, as the transport knows.

    A close resets the connection if bytes of the peer's wait unread, or
    arrive later while answers are still on their way (the reset then
    destroys them).
    """

    YES = "yes"
    """Bytes wait unread."""
    NO = "no"
    """Nothing waits unread, and every byte sent has been acknowledged."""
    UNKNOWN = "unknown"
    """The transport cannot tell, or answers are still on their way."""


class Closing(enum.Enum):
    """How a connection whose answers are all out closes."""

    NOW = "now"
    """Close: nothing is known to wait that a close could turn into a reset."""
    HALF_CLOSE = "half-close"
    """Send the end of stream, then discard until the peer closes (LINGERING)."""
    DISCARD = "discard"
    """Discard until the peer closes, without a half-close (LINGERING), then
    close gracefully (a TLS stream sends close_notify)."""


CLOSINGS: dict[tuple[Unread, bool], Closing] = {
    # (whether closing now could reset, whether the transport can half-close)
    (Unread.NO, True): Closing.NOW,
    (Unread.NO, False): Closing.NOW,
    (Unread.UNKNOWN, True): Closing.HALF_CLOSE,
    (Unread.UNKNOWN, False): Closing.NOW,  # nothing known unread: gracefully, now
    (Unread.YES, True): Closing.HALF_CLOSE,
    (Unread.YES, False): Closing.DISCARD,
}
"""How a connection closes once its protocol ended well and its answers are
out, while the peer may still send: a peer that closed its side has nothing
left to send (`Unread.NO`)."""
