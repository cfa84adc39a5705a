# Errors split by whose fault they are, as in h11: RemoteProtocolError is the
# peer's (bad bytes on the wire), LocalProtocolError is ours (misusing the
# framer or the encoder). A remote error carries a machine-readable Reason so
# that a server can log it and a test can assert it exactly.
from __future__ import annotations

import enum

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "Reason",
    "RemoteProtocolError",
]


class Reason(enum.StrEnum):
    """Why a peer's byte stream broke the count protocol."""

    BAD_LENGTH = "bad-length"
    """The length text is not ``"0"`` or a digit 1-9 followed by digits: a
    sign, a space, a letter, an underscore, a leading zero, or an empty
    length before the space."""

    TOO_MANY_DIGITS = "too-many-digits"
    """The length has more digits than the largest allowed length."""

    LENGTH_TOO_LARGE = "length-too-large"
    """The length is larger than the configured maximum message size."""

    EOF_IN_HEADER = "eof-in-header"
    """The stream ended after part of a length prefix."""

    EOF_IN_PAYLOAD = "eof-in-payload"
    """The stream ended before the payload was complete."""


class ProtocolError(Exception):
    """Base class of the framer's errors."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the count protocol.

    After raising it, the framer stays broken: every later call to
    `CountFramer.next_event` raises the same error again.

    Attributes:
        reason: What was wrong, for logs and for programs.
        offset: How many bytes of the stream the framer had accepted
            before the offending one (so the offending byte is at this
            offset, counting from 0).
    """

    def __init__(self, reason: Reason, detail: str, *, offset: int) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.offset = offset


class LocalProtocolError(ProtocolError):
    """The framer or the encoder was used in a way the protocol forbids.

    For example: feeding data after the end of the stream or after a remote
    error, or encoding a negative length.
    """
