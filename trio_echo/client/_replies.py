# The checks of a reply: an echo compared, as it arrives, with what was sent,
# and a framed server's answers parsed. `ReplyCheck` puts them together for
# a mode: bare answers (count, echo) are one echo of the message; framed ones
# are parsed, and each is checked against its message.
from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from .._messages import Message
from ..protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    NEED_DATA,
    CountFramer,
    EndOfMessage,
    EndOfStream,
    ModeRules,
    Payload,
)

__all__ = [
    "BareAnswers",
    "EchoCheck",
    "EchoMismatchError",
    "FramedAnswers",
    "ReplyCheck",
    "Sink",
    "answers_of",
]

Sink = Callable[[bytes], None]


class EchoMismatchError(Exception):
    """An echo differs from what was sent; the message says where, and how."""


class EchoCheck:
    """Compares an echo, as it arrives, with what was sent.

    A difference is reported the moment its byte arrives: by raising
    `EchoMismatchError` from the call that receives it. An echo that is too
    short can only be known at its end: `problem` says so.

    Args:
        expected: The bytes the echo should be: in memory, or a `Message`
            (read again, piece by piece, as the echo arrives: from a file,
            those pieces come from the page cache, having just been sent).
        header: The length prefix sent before them, if one was (count
            mode): an echo that begins with it comes from a server in
            another mode, and the error says so.
    """

    def __init__(self, expected: bytes | Message, *, header: bytes = b"") -> None:
        self._expected = expected if isinstance(expected, Message) else Message(expected)
        self._header = header
        self._head = b""  # the first bytes received, as many as the header has
        self.received = 0

    def __call__(self, data: bytes) -> None:
        """Take the next chunk of the echo.

        Raises:
            EchoMismatchError: If a byte of ``data`` differs from the byte
                sent at its place, or comes after the last byte sent.
        """
        start = self.received
        self.received += len(data)
        if len(self._head) < len(self._header):
            self._head += data[: len(self._header) - len(self._head)]
        expected = self._expected.read(start, len(data))
        if expected == data:
            return
        for index, byte in enumerate(data):
            if index >= len(expected):
                raise EchoMismatchError(
                    f"the echo was long: more than the {self._expected.size} bytes sent came back"
                )
            if expected[index] != byte:
                raise EchoMismatchError(
                    f"the echo differs from what was sent at byte {start + index}" + self._hint()
                )

    def _hint(self) -> str:
        if self._header and self._head and self._header.startswith(self._head):
            return (
                " (it begins with the length prefix: the server seems to be in echo or framed mode)"
            )
        return ""

    def problem(self) -> str | None:
        """Return what is wrong with the echo, now that it has ended, or None."""
        sent = self._expected.size
        if self.received < sent:
            return f"the echo was short: {self.received} of {sent} bytes came back"
        return None


@attrs.define
class FramedAnswers:
    """Parses a framed server's answers with a CountFramer.

    Attributes:
        max_message_size: The largest length an answer may announce.
        answers: The payload of each complete answer, in order (if kept).
        on_payload: Called with each piece of an answer's payload.
        on_answer: Called at the end of each answer.
        keep: Whether to keep the answers in `answers` (a caller that checks
            them as they come through the callbacks need not).
        count: How many answers were complete.
    """

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    answers: list[bytes] = attrs.field(factory=list)
    on_payload: Sink | None = None
    on_answer: Callable[[], None] | None = None
    keep: bool = True
    count: int = 0
    _framer: CountFramer = attrs.field(init=False)
    _pieces: list[bytes] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self._framer = CountFramer(max_message_size=self.max_message_size)

    def __call__(self, data: bytes) -> None:
        """Take the next chunk of the answers.

        Raises:
            RemoteProtocolError: If the answers break the framing.
        """
        self._framer.receive_data(data)
        self._drain()

    def end(self) -> None:
        """Take the end of the stream.

        Raises:
            RemoteProtocolError: If the stream ended inside an answer.
        """
        self._framer.receive_data(b"")
        self._drain()

    def _drain(self) -> None:
        while True:
            event = self._framer.next_event()
            if event is NEED_DATA or isinstance(event, EndOfStream):
                return
            if isinstance(event, Payload):
                if self.keep:
                    self._pieces.append(event.data)
                if self.on_payload is not None:
                    self.on_payload(event.data)
            elif isinstance(event, EndOfMessage):
                self.count += 1
                if self.keep:
                    self.answers.append(b"".join(self._pieces))
                    self._pieces.clear()
                if self.on_answer is not None:
                    self.on_answer()


@attrs.define
class BareAnswers:
    """Collects a reply whose answers are bare bytes: the echo, as it came.

    It reads as `FramedAnswers` does, so that a caller reads either kind of
    reply alike.

    Attributes:
        answers: The echo, as one answer, once the stream has ended.
    """

    answers: list[bytes] = attrs.field(factory=list)
    _pieces: list[bytes] = attrs.field(init=False, factory=list)

    def __call__(self, data: bytes) -> None:
        """Take the next chunk of the echo."""
        self._pieces.append(data)

    def end(self) -> None:
        """Take the end of the stream: the echo is one answer."""
        self.answers.append(b"".join(self._pieces))
        self._pieces.clear()


def answers_of(rules: ModeRules, max_message_size: int) -> BareAnswers | FramedAnswers:
    """A reader of the answers of a server in the mode of ``rules``."""
    if rules.framed_answers:
        return FramedAnswers(max_message_size=max_message_size)
    return BareAnswers()


class ReplyCheck:
    """Checks a reply, as it arrives, against the messages sent in one mode.

    Bare answers are one echo of the one message sent, compared byte for
    byte (`EchoCheck`); framed answers are parsed (`FramedAnswers`), and
    each is compared with its message. A difference raises
    `EchoMismatchError` from the call that receives it; what can only be
    known at the end (a short echo, answers missing) `problem` says.

    Args:
        rules: The mode's rules.
        messages: What was sent, in order: bytes, or `Message`s.
        on_payload: Called with each piece of payload once it is checked.
        on_answer: Called at the end of each framed answer, once it is
            checked.
    """

    def __init__(
        self,
        rules: ModeRules,
        messages: Sequence[bytes | Message],
        *,
        on_payload: Sink | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        sent = [m if isinstance(m, Message) else Message(m) for m in messages]
        self._on_payload = on_payload
        self._on_answer = on_answer
        self._answers: FramedAnswers | None = None
        if rules.framed_answers:
            self._checks = [EchoCheck(message) for message in sent]
            self._answers = FramedAnswers(
                max_message_size=max(message.size for message in sent),
                on_payload=self._payload,
                on_answer=self._answer_ended,
                keep=False,
            )
        else:
            (message,) = sent  # a bare echo is of one message
            header = rules.request_prefix(message.size)
            self._checks = [EchoCheck(message, header=header)]

    def __call__(self, data: bytes) -> None:
        """Take the next chunk of the reply.

        Raises:
            EchoMismatchError: At the first byte that differs from what was
                sent, or at an answer that is short or one too many.
            RemoteProtocolError: If framed answers break the framing.
        """
        if self._answers is not None:
            self._answers(data)
        else:
            self._payload(data)

    def end(self) -> None:
        """Take the end of the stream.

        Raises:
            RemoteProtocolError: If the stream ended inside a framed answer.
        """
        if self._answers is not None:
            self._answers.end()

    def problem(self) -> str | None:
        """Return what is wrong with the reply so far, as a whole, or None."""
        if self._answers is None:
            return self._checks[0].problem()
        if self._answers.count != len(self._checks):
            return f"{self._answers.count} answers came back for {len(self._checks)} messages"
        return None

    def _check(self, index: int) -> EchoCheck:
        if index >= len(self._checks):
            raise EchoMismatchError(f"more answers came back than the {len(self._checks)} sent")
        return self._checks[index]

    def _payload(self, data: bytes) -> None:
        self._check(self._answers.count if self._answers is not None else 0)(data)
        if self._on_payload is not None:
            self._on_payload(data)

    def _answer_ended(self) -> None:
        assert self._answers is not None
        index = self._answers.count - 1
        if problem := self._check(index).problem():
            raise EchoMismatchError(f"answer {index + 1}: {problem}")
        if self._on_answer is not None:
            self._on_answer()
