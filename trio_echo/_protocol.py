# The echo server's side of one connection, without I/O: the rules of each
# mode, on top of the CountFramer.
#
#   count   read one `length SP payload` message, echo its payload as it
#           arrives, and stop reading at its end (the original's EchoCount);
#   echo    echo every byte until the peer ends the stream (the original's
#           Echo); no framing at all;
#   framed  answer each of any number of messages with the same framing,
#           until the peer ends the stream between two messages.
#
# A length prefix has the header timeout to arrive in full. In count mode it
# is due from the connection's start; in framed mode from the first byte of
# each prefix. The protocol does not read a clock: the caller passes the time
# with the bytes, and the protocol says since when a header has been due.
#
# The connection handler, and every benchmark peer that is not the original
# line for line, drive this one object, so the models compared differ only in
# how they move bytes.
from __future__ import annotations

import enum

from ._errors import LocalProtocolError
from ._events import NEED_DATA, EndOfMessage, Header, Payload
from ._framer import DEFAULT_MAX_MESSAGE_SIZE, CountFramer, encode_header
from ._report import Outcome

__all__ = ["Chunk", "EchoProtocol", "Mode"]

Chunk = bytes | bytearray | memoryview
"""A piece of bytes received or to send."""


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


class EchoProtocol:
    """What to echo for what a peer sends, in one `Mode`.

    Feed it each read with `receive_data` (``b""`` when the peer ends the
    stream); it returns the bytes to send back. Once `reading_done` is true,
    `outcome` says how the connection ended well, and no more bytes are
    taken.

    Example::

        protocol = EchoProtocol(Mode.COUNT)
        protocol.receive_data(b"5 hel")  # [b'hel']
        protocol.receive_data(b"lo")  # [b'lo']; reading_done is now True

    Args:
        mode: The mode to serve.
        max_message_size: The largest length a message may announce.
        now: The time the connection started, in the caller's clock: a count
            connection's header is due from then.
    """

    __slots__ = ("_framer", "header_since", "headers", "length", "messages", "mode", "outcome")

    def __init__(
        self,
        mode: Mode,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        now: float = 0.0,
    ) -> None:
        self.mode = Mode(mode)
        self._framer = (
            None if self.mode is Mode.ECHO else CountFramer(max_message_size=max_message_size)
        )
        self.headers = 0
        """Length prefixes received in full."""
        self.length: int | None = None
        """The length the last length prefix announced."""
        self.messages = 0
        """Messages received in full (count and framed modes)."""
        self.header_since: float | None = now if self.mode is Mode.COUNT else None
        """Since when a length prefix has been due, or None if none is."""
        self.outcome: Outcome | None = None
        """How reading ended, once it has: `Outcome.COMPLETE`,
        `Outcome.NO_MESSAGE` or `Outcome.CLOSED`."""

    @property
    def reading_done(self) -> bool:
        """Whether the protocol takes no more bytes (it has an outcome)."""
        return self.outcome is not None

    @property
    def trailing(self) -> bool:
        """Whether bytes came after a count message (they are not echoed)."""
        return self._framer is not None and self._framer.buffered > 0

    def receive_data(self, data: Chunk, now: float = 0.0) -> list[Chunk]:
        """Take the bytes of one read; return the bytes to echo, in order.

        Args:
            data: What the peer sent; ``b""`` when it ended the stream.
            now: The time of the read, in the caller's clock: a framed
                header that begins here is due from then.

        Returns:
            The pieces to send back (possibly none). Payload pieces are the
            received objects themselves or slices of them.

        Raises:
            RemoteProtocolError: If the bytes break the protocol.
            LocalProtocolError: If reading is already done.
        """
        if self.outcome is not None:
            raise LocalProtocolError("the protocol has ended reading and takes no more bytes")
        framer = self._framer
        if framer is None:
            if not data:
                self.outcome = Outcome.CLOSED
                return []
            return [data]
        framer.receive_data(data)
        echo: list[Chunk] = []
        while (event := framer.next_event()) is not NEED_DATA:
            if type(event) is Payload:
                echo.append(event.data)
            elif type(event) is Header:
                self.headers += 1
                self.length = event.length
                self.header_since = None
                if self.mode is Mode.FRAMED:
                    echo.append(encode_header(event.length))
            elif type(event) is EndOfMessage:
                self.messages += 1
                if self.mode is Mode.COUNT:
                    self.outcome = Outcome.COMPLETE
                    return echo
            else:  # EndOfStream
                self.outcome = Outcome.CLOSED if self.mode is Mode.FRAMED else Outcome.NO_MESSAGE
                return echo
        if self.headers == self.messages and self.header_since is None and framer.in_message:
            self.header_since = now  # a framed message's prefix has begun
        return echo
