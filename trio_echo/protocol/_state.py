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
from typing import TYPE_CHECKING

from ._actions import CHECK_UNREAD
from ._errors import Reason
from ._events import _SentinelBase

__all__ = [
    "CLEAN_OUTCOMES",
    "CLOSINGS",
    "DONE",
    "ENDING",
    "HANDSHAKING",
    "LINGERING",
    "READING",
    "STATE_FIELDS",
    "Closing",
    "Ending",
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
    """Nothing was received or sent for the idle timeout, or, while answers
    waited, the peer took none of them."""
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

    # Members are singletons, equal only to themselves: hashed by identity, in
    # C (`CLOSINGS` is looked up once a connection). Enum's own hash is Python.
    __hash__ = object.__hash__


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


STATE_FIELDS = ("_can_half_close", "_peer_closed", "_phase", "_unread", "detail", "outcome")
"""The slots of `EchoProtocol` that this part keeps."""


class Ending:
    """The phase, and how the connection ends: a part of `EchoProtocol`.

    Its fields are `STATE_FIELDS`, slots of the protocol, which starts them.
    """

    if not TYPE_CHECKING:  # its fields are the protocol's slots
        __slots__ = ()

    _can_half_close: bool  # whether the transport can half-close
    _peer_closed: bool  # the peer ended its stream
    _phase: Phase
    _unread: Unread | None  # asked for once a count message ends
    outcome: Outcome | Reason | None
    detail: str

    if TYPE_CHECKING:

        def _close(self) -> object: ...

    @property
    def clean(self) -> bool:
        """Whether the connection ended the way the protocol intends."""
        return self.outcome in CLEAN_OUTCOMES

    def report_unread(self, unread: Unread) -> None:
        """Answer `CHECK_UNREAD`: whether bytes wait unread (none came with it)."""
        if self._unread is None or unread is Unread.YES:
            self._unread = unread

    def _end(self, outcome: Outcome | Reason, detail: str = "") -> None:
        """Record how the connection ended, unless that is decided already."""
        if self.outcome is None:
            self.outcome = outcome
            self.detail = detail

    def abort(self, outcome: Outcome, detail: str = "") -> None:
        """Report that the connection cannot go on.

        Args:
            outcome: Why: the transport broke (`Outcome.RESET`; during a TLS
                handshake, `Outcome.TLS_HANDSHAKE`), the server cut the
                connection (`Outcome.CANCELLED`), or a bug
                (`Outcome.INTERNAL_ERROR`). An outcome already decided stays,
                except that a bug is always told.
            detail: What happened, in words.
        """
        if outcome is Outcome.INTERNAL_ERROR:
            self.outcome = None
        elif outcome is Outcome.RESET and self._phase is HANDSHAKING:
            outcome = Outcome.TLS_HANDSHAKE
        self._end(outcome, detail)
        self._close()

    def _closing(self) -> Closing | type[CHECK_UNREAD]:
        """How a connection that ended well closes, once its answers are out.

        `CHECK_UNREAD` first, if the transport has not said whether closing
        now could reset.
        """
        unread = Unread.NO if self._peer_closed else self._unread
        if unread is None:
            return CHECK_UNREAD
        return CLOSINGS[unread, self._can_half_close]
