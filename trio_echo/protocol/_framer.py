# The count protocol's framer: bytes in, events out, no I/O.
#
#     message = length SP payload
#     length  = "0" / %x31-39 *DIGIT
#     payload = exactly `length` octets
#
# Complexity goal: the cost of framing is linear in the bytes received, however
# they are cut. Received chunks are queued as they came and consumed from the
# front with an offset, never joined; a payload piece is either a whole
# received chunk (no copy) or one slice of it (one copy). A length prefix is at
# most `len(str(max_message_size)) + 1` bytes, so the only buffer a peer can
# grow here is bounded by that; the queue of unread chunks grows only with
# what the caller itself feeds in before asking for events.
#
# The length text is checked byte by byte as it arrives, so a bad header is
# rejected at the first byte that makes it invalid, not when the space comes.
# Python's int() is only applied to text that already passed the check: on its
# own it accepts b" 5", b"+5", b"1_0" and b"-1".
from __future__ import annotations

from collections import deque

from ._errors import LocalProtocolError, Reason, RemoteProtocolError
from ._events import NEED_DATA, EndOfMessage, EndOfStream, Event, Header, Payload

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CountFramer",
    "encode_header",
    "encode_message",
]

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""The largest payload a framer accepts unless told otherwise: 64 MiB."""

_SP = 0x20
_ZERO = 0x30
_NINE = 0x39

_NO_CHUNKS: deque[bytes] = deque(maxlen=0)  # shared, always empty

_HEADER = "header"
_PAYLOAD = "payload"
_CLOSED = "closed"

# Events without fields are made once: they are immutable, and equal by value.
_END_OF_MESSAGE = EndOfMessage()
_END_OF_STREAM = EndOfStream()


def _check_max_message_size(max_message_size: int) -> int:
    if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
        raise TypeError(f"max_message_size must be an int, not {max_message_size!r}")
    if max_message_size < 0:
        raise ValueError(f"max_message_size must be >= 0, not {max_message_size}")
    return max_message_size


def encode_header(length: int) -> bytes:
    """Return the length prefix of a message of ``length`` payload bytes.

    Args:
        length: The payload's length in bytes.

    Returns:
        The ASCII digits of ``length`` followed by a space, e.g. ``b"5 "``.

    Raises:
        LocalProtocolError: If ``length`` is not a non-negative ``int``.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise LocalProtocolError(f"a length must be a non-negative int, not {length!r}")
    return b"%d " % length


def encode_message(payload: bytes) -> bytes:
    """Return a whole message: the length prefix followed by ``payload``.

    This copies ``payload``; to send a large payload, send
    ``encode_header(len(payload))`` and then the payload itself.

    Args:
        payload: The message's payload.

    Returns:
        ``length SP payload`` as one bytes object.
    """
    return encode_header(len(payload)) + bytes(payload)


class CountFramer:
    """Splits a byte stream into count-protocol messages.

    Feed it what arrives with `receive_data` (``b""`` for the end of the
    stream), then call `next_event` until it returns `NEED_DATA`. Each
    message comes out as a `Header`, its payload as `Payload` events as the
    bytes arrive, and an `EndOfMessage`; messages may follow each other on one
    stream. When the peer ends the stream between messages, `next_event`
    returns `EndOfStream` (and keeps returning it).

    Example::

        framer = CountFramer()
        framer.receive_data(b"5 hel")
        framer.next_event()  # Header(length=5)
        framer.next_event()  # Payload(data=b'hel')
        framer.next_event()  # NEED_DATA

    Args:
        max_message_size: The largest length accepted. Longer lengths, and
            lengths with more digits than this number has, are rejected as
            soon as the offending digit arrives.
    """

    __slots__ = (
        "_chunks",
        "_digits",
        "_eof",
        "_error",
        "_held",
        "_max_digits",
        "_max_message_size",
        "_offset",
        "_position",
        "_remaining",
        "_state",
    )

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._max_message_size = _check_max_message_size(max_message_size)
        self._max_digits = len(str(max_message_size))
        # Made when the first bytes come (see "What a connection holds" in
        # docs/discussion/connection.md).
        self._chunks: deque[bytes] = _NO_CHUNKS
        self._offset = 0  # into self._chunks[0]
        self._held = 0  # the size of the chunks in self._chunks, whole
        self._position = 0  # stream offset of the next byte not yet framed
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._state = _HEADER
        self._digits = b""  # the length text received so far
        self._remaining = 0  # payload bytes still to come

    @property
    def max_message_size(self) -> int:
        """The largest length this framer accepts."""
        return self._max_message_size

    @property
    def buffered(self) -> int:
        """Bytes received and not yet framed into events."""
        return sum(map(len, self._chunks)) - self._offset

    @property
    def held(self) -> int:
        """Bytes the framer keeps alive.

        Its received chunks, whole, and the digits of a length prefix in
        progress. A chunk is held whole until its last byte is framed, so this is what
        the framer costs in payload memory, not only what is left to frame.
        """
        return self._held + len(self._digits)

    @property
    def chunks(self) -> int:
        """How many received chunks the framer holds."""
        return len(self._chunks)

    @property
    def in_header(self) -> bool:
        """Whether part of a length prefix has arrived, and not its space."""
        return bool(self._digits)

    @property
    def in_message(self) -> bool:
        """Whether a message has begun (header or payload) and not ended."""
        return self._state == _PAYLOAD or bool(self._digits)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer.

        Args:
            data: The bytes, as received; ``b""`` means the peer ended the
                stream. A `bytes` object is kept as it is (not copied); other
                buffers are copied once, since the caller may reuse them.

        Raises:
            LocalProtocolError: If the framer already failed with a remote
                error, or if data comes after the end of the stream.
        """
        if self._error is not None:
            raise LocalProtocolError("the framer failed on bad input and takes no more data")
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data received after the end of the stream")
        if self._chunks is _NO_CHUNKS:
            self._chunks = deque()
        chunk = data if type(data) is bytes else bytes(data)
        self._chunks.append(chunk)
        self._held += len(chunk)

    def next_event(self) -> Event | type[NEED_DATA]:
        """Return the next event, or `NEED_DATA` if more bytes are needed.

        Raises:
            RemoteProtocolError: If the peer's bytes break the protocol. The
                framer then stays broken and raises the same error again on
                every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            if self._state == _PAYLOAD:
                return self._next_payload_event()
            if self._state == _HEADER:
                return self._next_header_event()
        except RemoteProtocolError as error:
            self._error = error
            self._chunks = _NO_CHUNKS
            self._held = 0
            raise
        return _END_OF_STREAM

    def _next_payload_event(self) -> Event | type[NEED_DATA]:
        remaining = self._remaining
        if remaining == 0:
            self._state = _HEADER
            return _END_OF_MESSAGE
        if not self._chunks:
            if self._eof:
                raise RemoteProtocolError(
                    Reason.EOF_IN_PAYLOAD,
                    f"the stream ended with {remaining} payload bytes still to come",
                    offset=self._position,
                )
            return self._need_data()
        chunk = self._chunks[0]
        offset = self._offset
        available = len(chunk) - offset
        if available <= remaining:
            data = chunk if offset == 0 else chunk[offset:]
            self._chunks.popleft()
            self._held -= len(chunk)
            self._offset = 0
            taken = available
        else:
            data = chunk[offset : offset + remaining]
            self._offset = offset + remaining
            taken = remaining
        self._remaining = remaining - taken
        self._position += taken
        return Payload(data)

    def _next_header_event(self) -> Event | type[NEED_DATA]:
        chunks = self._chunks
        while chunks:
            chunk = chunks[0]
            offset = self._offset
            # Never look further than a valid header could reach.
            digits = self._digits
            end = offset + self._max_digits + 1 - len(digits)
            space = chunk.find(b" ", offset, end)
            text = digits + chunk[offset : end if space < 0 else space]
            # The common case in one pass of C code; `_length_error` finds
            # the byte that is wrong.
            if not (
                text.isdigit()
                and (text[0] != _ZERO or len(text) == 1)
                and len(text) <= self._max_digits
                and (length := int(text)) <= self._max_message_size
            ):
                start = self._position - len(digits)
                raise _length_error(text, start, self._max_digits, self._max_message_size)
            if space < 0:
                self._digits = text
                self._advance(len(text) - len(digits))
                continue
            self._digits = b""
            self._advance(space + 1 - offset)
            self._state = _PAYLOAD
            self._remaining = length
            return Header(length)
        if not self._eof:
            return self._need_data()
        if self._digits:
            raise RemoteProtocolError(
                Reason.EOF_IN_HEADER,
                f"the stream ended inside the length prefix {self._digits!r}",
                offset=self._position,
            )
        self._state = _CLOSED
        return _END_OF_STREAM

    def _need_data(self) -> type[NEED_DATA]:
        # Every received byte is framed: the emptied queue goes, so that a
        # connection waiting for more holds none (see "What a connection
        # holds" in docs/discussion/connection.md).
        self._chunks = _NO_CHUNKS
        return NEED_DATA

    def _advance(self, count: int) -> None:
        self._position += count
        offset = self._offset + count
        if offset == len(self._chunks[0]):
            self._held -= len(self._chunks.popleft())
            offset = 0
        self._offset = offset


def _length_error(
    text: bytes, start: int, max_digits: int, max_message_size: int
) -> RemoteProtocolError:
    """The error of the first byte that makes the length ``text`` invalid.

    ``start`` is the stream offset of its first byte. An empty ``text`` is
    invalid too: a space came where a digit must be.
    """
    value = 0
    for index, byte in enumerate(text):
        if not _ZERO <= byte <= _NINE:
            return RemoteProtocolError(
                Reason.BAD_LENGTH,
                f"byte {bytes([byte])!r} in the length {text[: index + 1]!r} is not a digit",
                offset=start + index,
            )
        if index == 1 and text[0] == _ZERO:
            return RemoteProtocolError(
                Reason.BAD_LENGTH,
                "a length may not have a leading zero",
                offset=start + index,
            )
        if index == max_digits:
            return RemoteProtocolError(
                Reason.TOO_MANY_DIGITS,
                f"a length has at most {max_digits} digits",
                offset=start + index,
            )
        value = value * 10 + byte - _ZERO
        if value > max_message_size:
            return RemoteProtocolError(
                Reason.LENGTH_TOO_LARGE,
                f"the length exceeds the maximum message size {max_message_size}",
                offset=start + index,
            )
    # Every byte is fine, so the text is empty: a space came first.
    return RemoteProtocolError(Reason.BAD_LENGTH, "the length is empty", offset=start)
