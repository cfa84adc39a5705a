# The modes, one class each, with both sides of their rules: what the server
# does with the peer's bytes, and what a client sends, when it half-closes
# and how big the reply is.
#
# To add a mode, add its name to `Mode` and write its class: a subclass of
# `ModeRules` (or of one of the classes here) whose `mode` is the new name.
# Its server side is `take` (the bytes of a read) and, for a mode whose
# requests are count messages, `frame` (one step of framing them); its
# client side is the prefixes of requests and answers, and when to
# half-close. `EchoProtocol`, the server and the client find it by its name.
from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from ._errors import RemoteProtocolError
from ._events import NEED_DATA, EndOfMessage, Header, Payload
from ._framer import CountFramer, encode_header
from ._limits import Limits
from ._outbox import COALESCE_LIMIT
from ._state import Outcome
from ._steps import MAX_MESSAGES_PER_STEP

if TYPE_CHECKING:
    from ._outbox import Chunk
    from ._protocol import EchoProtocol

__all__ = ["Mode", "ModeRules", "rules_of"]

_P = TypeVar("_P")


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


_RULES: dict[str, ModeRules] = {}


def rules_of(mode: Mode | str) -> ModeRules:
    """Return the rules of ``mode`` (a `Mode`, or its name).

    Raises:
        ValueError: If no mode has that name.
    """
    rules = _RULES.get(mode)  # a Mode is its name: one lookup serves both
    return rules if rules is not None else _RULES[Mode(mode)]


class ModeRules:
    """The rules of one mode, for the server and for a client.

    One object per mode, shared by every connection in it: what a
    connection keeps lives in its `EchoProtocol`.
    """

    __slots__ = ()

    mode: ClassVar[Mode]
    """The mode's name."""

    framed_requests: ClassVar[bool] = False
    """Whether the peer's bytes are count messages (``length SP payload``)."""

    framed_answers: ClassVar[bool] = False
    """Whether each answer is framed as its message, not bare bytes."""

    one_message: ClassVar[bool] = False
    """Whether a connection carries one message, after which the server
    closes (the client need not half-close)."""

    header_from_start: ClassVar[bool] = False
    """Whether a length prefix is due from the connection's start, not from
    its first byte."""

    pipelines: ClassVar[bool] = False
    """Whether a client may send many messages in one exchange."""

    answers_itself: ClassVar[bool] = False
    """Whether the bytes of a read are their own answer, whatever they are
    (`Receive.echo`)."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "mode" in cls.__dict__:
            _RULES[cls.mode] = cls()

    # -- The server's side --------------------------------------------------

    def new_framer(self, limits: Limits) -> CountFramer | None:
        """Return the framer of a new connection's requests, if they are framed."""
        if not self.framed_requests:
            return None
        return CountFramer(max_message_size=limits.max_message_size)

    def take(self, protocol: EchoProtocol, data: Chunk) -> None:
        """Take the bytes of one read (``b""`` at the end of the stream)."""
        raise NotImplementedError

    def frame(self, protocol: EchoProtocol, now: float) -> bool:
        """Frame one step of what `take` took; return whether work is left."""
        raise NotImplementedError

    def ending(self, messages: int) -> Outcome:
        """Return how a connection that ended well, with ``messages`` framed, ended."""
        return Outcome.CLOSED

    # -- The client's side --------------------------------------------------

    def request_prefix(self, size: int) -> bytes:
        """Return what a client sends before a payload of ``size`` bytes."""
        return encode_header(size) if self.framed_requests else b""

    def requests(self, payloads: Iterable[_P], size: Callable[[_P], int]) -> list[bytes | _P]:
        """Return what a client sends for ``payloads``, in order, on one connection.

        Each payload comes after its prefix, if it has one.

        Args:
            payloads: The payloads: bytes, or anything else that the
                client sends (a message read from a file, say).
            size: How many bytes a payload has.
        """
        pieces: list[bytes | _P] = []
        for payload in payloads:
            if prefix := self.request_prefix(size(payload)):
                pieces.append(prefix)
            pieces.append(payload)
        return pieces

    def answer_prefix(self, size: int) -> bytes:
        """Return what comes back before the answer to a payload of ``size`` bytes."""
        return encode_header(size) if self.framed_answers else b""

    def reply_size(self, sizes: Sequence[int]) -> int:
        """Return how many bytes come back for payloads of these sizes, sent on one connection."""
        return sum(len(self.answer_prefix(size)) + size for size in sizes)

    def half_close_after(self, reply_size: int) -> int | None:
        """Return after how many reply bytes a client half-closes; None for never.

        Args:
            reply_size: The bytes that come back in all (`reply_size`).
        """
        return 0


class Echo(ModeRules):
    """Echo mode: every byte comes back as it came, until the peer closes."""

    __slots__ = ()
    mode = Mode.ECHO
    answers_itself = True

    def take(self, protocol: EchoProtocol, data: Chunk) -> None:
        """Answer the bytes with themselves; the end of the stream ends reading."""
        if data:
            # The caller may reuse a buffer that is not bytes: copy it.
            protocol._append(data if type(data) is bytes else bytes(data))
        else:
            protocol._end_reading()

    def half_close_after(self, reply_size: int) -> int | None:
        """Half-close once everything sent came back: the server echoes until then."""
        return reply_size


class Framed(ModeRules):
    """Framed mode: each message is answered with the same framing.

    Until the peer ends the stream between two messages.
    """

    __slots__ = ()
    mode = Mode.FRAMED
    framed_requests = True
    framed_answers = True
    pipelines = True

    def take(self, protocol: EchoProtocol, data: Chunk) -> None:
        """Hand the bytes to the framer; `frame` frames them."""
        framer = protocol._framer
        assert framer is not None
        framer.receive_data(data)
        protocol._work = True

    def frame(self, protocol: EchoProtocol, now: float) -> bool:
        """Frame messages until the bytes run out or the step's bound is met."""
        framer = protocol._framer
        assert framer is not None
        framed = self.framed_answers
        one = self.one_message
        messages = protocol._step_messages
        small: list[bytes] = []  # this step's small answers, joined at its end
        work = True
        faulted = False
        event: object = NEED_DATA
        try:
            while (event := framer.next_event()) is not NEED_DATA:
                if type(event) is Payload:
                    data = event.data
                    protocol._payload_bytes += len(data)
                    if len(data) < COALESCE_LIMIT:
                        small.append(data)
                    else:
                        if small:
                            protocol._append(b"".join(small))
                            small.clear()
                        protocol._append(data)
                elif type(event) is Header:
                    protocol.headers += 1
                    protocol.length = event.length
                    protocol._header_due = None
                    protocol._payload_since = now
                    protocol._payload_bytes = 0
                    if framed:
                        small.append(b"%d " % event.length)
                elif type(event) is EndOfMessage:
                    protocol.messages += 1
                    protocol._payload_since = None
                    messages += 1
                    if one or messages == MAX_MESSAGES_PER_STEP:
                        break
                else:  # EndOfStream
                    break
            else:  # NEED_DATA: every byte received is framed
                work = False
        except RemoteProtocolError as error:
            # Reading is over; what was answered before the fault still
            # goes out, and then the connection closes.
            protocol._end(error.reason, error.detail)
            faulted = True
        protocol._step_messages = messages
        if small:
            protocol._append(small[0] if len(small) == 1 else b"".join(small))
        if faulted or (work and (one or type(event) is not EndOfMessage)):
            protocol._end_reading()  # a fault, a count message, or the end of the stream
            return False
        protocol._framing_timers(now, header_begun=framer.in_header)
        return work


class Count(Framed):
    """Count mode: one message, whose payload comes back bare; then the close."""

    __slots__ = ()
    mode = Mode.COUNT
    framed_answers = False
    one_message = True
    header_from_start = True
    pipelines = False

    def ending(self, messages: int) -> Outcome:
        """A message echoed in full, or none sent."""
        return Outcome.COMPLETE if messages else Outcome.NO_MESSAGE

    def half_close_after(self, reply_size: int) -> int | None:
        """Never: the server closes once the payload is echoed."""
        return None
