# The client side of the protocol, over any trio.abc.Stream.
#
# A client sends and receives in two tasks of one nursery: alternating
# send_all and receive_some deadlocks once a message outgrows the kernel's
# buffers, against any server that echoes while it reads.
#
# When the client half-closes depends on the mode:
# - count: never; the server closes once the payload is echoed (the length
#   says where the message ends);
# - echo: once the whole echo is back. A server built on Twisted's default
#   protocol (the original Echo among them) drops the echo bytes it has not
#   written yet when it reads an end of stream: a client that half-closes
#   right after sending loses its echo to it (seen here with a 1-byte
#   message). Waiting costs nothing, since the client knows what to expect;
#   the end of stream then only asks the server to close.
# - framed: right after the last message; the server finishes its answers,
#   then closes.
#
# TLS has no half-close. Over TLS, echo and framed exchanges end where the
# client would have half-closed, once the whole reply is in (the client
# knows its size: the echo is the message, each framed answer has its
# message's framing); the caller then closes the stream, which sends
# close_notify, and the server closes in turn. A count server closes with
# close_notify once the payload is echoed; one that closes without it after
# the whole echo came has lost nothing, and its close ends the exchange as
# an end of stream would (before then, it is a reset).
from __future__ import annotations

import contextlib
import ssl
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Sequence,
)

import attrs
import trio

from .._messages import Message
from .._ports import DEFAULT_PORT
from .._tls import certificate_failure
from ..protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    NEED_DATA,
    CountFramer,
    EndOfMessage,
    EndOfStream,
    Mode,
    Payload,
    encode_header,
)

__all__ = [
    "EchoCheck",
    "EchoMismatchError",
    "Endpoint",
    "FramedAnswers",
    "HandshakeError",
    "echo",
    "echo_count",
    "echo_framed",
    "echo_plain",
    "exchange",
]

RECEIVE_SIZE = 64 * 1024
SEND_SIZE = 256 * 1024

Sink = Callable[[bytes], None]


async def exchange(
    stream: trio.abc.Stream,
    outgoing: Iterable[bytes] | AsyncIterable[bytes],
    sink: Sink,
    *,
    half_close_after: int | None,
    reply_size: int | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> bool:
    """Send ``outgoing`` while passing every received chunk to ``sink``.

    Returns when the peer ends the stream, or, over a stream that cannot
    half-close, where it would have been asked to (see ``reply_size``). The
    stream is not closed.

    Args:
        stream: The connection.
        outgoing: The byte strings to send, in order: a sequence, or an
            (async) iterable that makes them as they are needed.
        sink: Called with each chunk received, in order.
        half_close_after: When to send an end of stream: None for never;
            N for once everything is sent and N bytes have been received
            (0: right after the last byte is sent). Unless None, ``stream``
            must be a `trio.abc.HalfCloseableStream`, or ``reply_size`` be
            given.
        reply_size: The bytes the reply should have, if known. Over a
            stream that cannot half-close (TLS), the exchange then ends,
            instead of sending an end of stream, once everything is sent
            and this many bytes have come back (reading nothing more: the
            caller closes the stream); and a TLS stream that the peer cuts
            without close_notify once they have come back ends as if the
            peer had closed it.
        on_sent: Called with the size of each piece once it is sent.

    Returns:
        True if everything was sent; False if the peer closed or reset the
        connection before all of it could be (what was received is still
        passed to ``sink``).

    Raises:
        trio.BrokenResourceError: If receiving failed (the connection was
            reset).
        TypeError: If an end of stream is asked for over a stream that
            cannot send one, without ``reply_size``.
    """
    half_closes = isinstance(stream, trio.abc.HalfCloseableStream)
    if half_close_after is not None and not half_closes and reply_size is None:
        raise TypeError("half-closing needs a trio.abc.HalfCloseableStream, or the reply's size")
    # Where a stream that cannot half-close stops reading: the end of the reply.
    stop_at = reply_size if half_close_after is not None and not half_closes else None
    sent_all = False
    received = 0
    enough_received = trio.Event()
    sending_ended = trio.Event()
    if half_close_after is not None and half_close_after <= 0:
        enough_received.set()

    async def send() -> None:
        nonlocal sent_all
        try:
            async with contextlib.aclosing(_pieces(outgoing)) as pieces:
                async for data in pieces:
                    view = memoryview(data)
                    for start in range(0, len(view), SEND_SIZE):
                        piece = view[start : start + SEND_SIZE]
                        await stream.send_all(piece)
                        if on_sent is not None:
                            on_sent(len(piece))
            sent_all = True
            if isinstance(stream, trio.abc.HalfCloseableStream) and half_close_after is not None:
                await enough_received.wait()
                await stream.send_eof()
        except trio.BrokenResourceError:
            pass  # the peer stopped reading; what it sent back tells the rest
        finally:
            sending_ended.set()

    # A failure while receiving is raised as itself, not inside the
    # nursery's exception group: callers catch BrokenResourceError.
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        try:
            while stop_at is None or received < stop_at:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data:
                    break
                received += len(data)
                sink(bytes(data))
                if half_close_after is not None and received >= half_close_after:
                    enough_received.set()
            else:
                # The whole reply is in: the exchange ends once the rest is sent.
                await sending_ended.wait()
        except trio.BrokenResourceError as error:
            if not cut_after_the_reply(error, received, reply_size):
                failure = error
        except Exception as error:
            failure = error
        # The peer is done (or gone): nothing more we send can matter.
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return sent_all


def cut_after_the_reply(
    error: trio.BrokenResourceError, received: int, reply_size: int | None
) -> bool:
    """Whether ``error`` is a TLS peer's close without close_notify, after the whole reply.

    Such a close loses nothing: the stream ends there, as with close_notify.
    Before the reply is complete, it is a reset.
    """
    return (
        isinstance(error.__cause__, ssl.SSLEOFError)
        and reply_size is not None
        and received >= reply_size
    )


class HandshakeError(Exception):
    """The TLS handshake failed; the message says why, the cause is the ssl library's error.

    A rejected certificate is named as `_tls.certificate_failure` names it.
    """


# Errors of the ssl library that come from a peer that speaks TLS (an alert
# it sent) name no hint; any other says what a server that does not speak
# TLS looks like from here.
_NOT_TLS_HINT = " (is the server speaking TLS?)"


def _handshake_words(cause: BaseException | None) -> str:
    """Say in a few words why a handshake failed, from the ssl library's error."""
    if cause is not None and (failure := certificate_failure(cause)):
        return str(failure)
    if isinstance(cause, ssl.SSLEOFError) or cause is None:
        return "the server closed the connection during the handshake" + _NOT_TLS_HINT
    if isinstance(cause, ssl.SSLError):
        reason = cause.reason or cause.strerror or str(cause)
        words = reason.lower().replace("_", " ")
        hint = "" if "ALERT" in reason else _NOT_TLS_HINT
        return f"the handshake failed: {words}{hint}"
    if isinstance(cause, OSError) and cause.strerror:
        return f"the connection was broken during the handshake ({cause.strerror.lower()})"
    return f"the handshake failed: {cause}"


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where a server listens, and how to reach it.

    Attributes:
        host: The server's host (unused with ``unix``).
        port: The server's port (unused with ``unix``).
        unix: The path of the server's unix socket, instead of a host and
            a port.
        tls: The context to speak TLS with (``_tls.client_context``), or
            None for none.
        server_name: The name the server's certificate must carry: by
            default the host, and over a unix socket ``localhost``.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix: str | None = None
    tls: ssl.SSLContext | None = None
    server_name: str | None = None

    def __str__(self) -> str:
        """``unix:PATH``, or ``host:port`` as the server prints it."""
        if self.unix is not None:
            return f"unix:{self.unix}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def tls_name(self) -> str:
        """The name the server's certificate is checked against."""
        if self.server_name is not None:
            return self.server_name
        return "localhost" if self.unix is not None else self.host

    async def connect(self) -> trio.abc.Stream:
        """Open a connection to the server, and over TLS, shake hands.

        Returns:
            A `trio.SocketStream` (which can half-close), or over TLS a
            `trio.SSLStream` (which cannot: closing it sends close_notify).

        Raises:
            OSError: If the connection failed (refused, host not found, no
                socket at the path).
            HandshakeError: If the TLS handshake failed.
        """
        stream: trio.abc.Stream
        if self.unix is not None:
            stream = await trio.open_unix_socket(self.unix)
        else:
            stream = await trio.open_tcp_stream(self.host, self.port)
        if self.tls is None:
            return stream
        tls_stream = trio.SSLStream(
            stream, self.tls, server_hostname=self.tls_name, https_compatible=False
        )
        try:
            await tls_stream.do_handshake()
        except trio.BrokenResourceError as error:
            await trio.aclose_forcefully(stream)
            cause = error.__cause__
            raise HandshakeError(_handshake_words(cause)) from cause
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return tls_stream


async def _pieces(
    outgoing: Iterable[bytes] | AsyncIterable[bytes],
) -> AsyncGenerator[bytes, None]:
    if isinstance(outgoing, AsyncGenerator):
        async with contextlib.aclosing(outgoing):
            async for data in outgoing:
                yield data
    elif isinstance(outgoing, AsyncIterable):
        async for data in outgoing:
            yield data
    else:
        for data in outgoing:
            yield data


async def message_pieces(message: Message, size: int = SEND_SIZE) -> AsyncGenerator[bytes, None]:
    """``message``'s bytes in pieces of ``size``, read as they are needed.

    From a file, each piece is read in a worker thread, so that a slow disk
    does not stall the loop.
    """
    for offset in range(0, message.size, size):
        if message.in_memory:
            yield message.read(offset, size)
        else:
            yield await trio.to_thread.run_sync(message.read, offset, size)


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


async def echo_count(stream: trio.abc.Stream, payload: bytes) -> bytes:
    """Send ``payload`` as one count message; return what the server echoed.

    Reads until the server closes. The stream is not closed.
    """
    received: list[bytes] = []
    await exchange(
        stream,
        [encode_header(len(payload)), payload],
        received.append,
        half_close_after=None,
        reply_size=len(payload),
    )
    return b"".join(received)


async def echo_plain(stream: trio.abc.Stream, payload: bytes) -> bytes:
    """Send ``payload`` to an echo-mode server; return what it echoed.

    Half-closes once as many bytes came back as were sent (at once for an
    empty payload), then reads until the server closes; over a stream that
    cannot half-close (TLS), returns once as many bytes came back as were
    sent. The stream is not closed (over TLS, closing it ends the exchange
    for the server).
    """
    received: list[bytes] = []
    await exchange(
        stream,
        [payload],
        received.append,
        half_close_after=len(payload),
        reply_size=len(payload),
    )
    return b"".join(received)


async def echo_framed(
    stream: trio.abc.Stream,
    payloads: Sequence[bytes],
    *,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> list[bytes]:
    """Pipeline ``payloads`` to a framed server; return its answers' payloads.

    Sends every message, half-closes, and parses the answers until the
    server closes; over a stream that cannot half-close (TLS), until every
    answer is in. The stream is not closed (over TLS, closing it ends the
    exchange for the server).

    Raises:
        RemoteProtocolError: If the answers break the framing, or end
            inside an answer.
    """
    outgoing: list[bytes] = []
    for payload in payloads:
        outgoing += [encode_header(len(payload)), payload]
    answers = FramedAnswers(max_message_size=max_message_size)
    reply_size = sum(len(part) for part in outgoing)  # each answer is framed as its message
    await exchange(stream, outgoing, answers, half_close_after=0, reply_size=reply_size)
    answers.end()
    return answers.answers


async def echo(stream: trio.abc.Stream, payload: bytes, mode: Mode | str = Mode.COUNT) -> bytes:
    """Send ``payload`` in ``mode`` and return the echoed payload.

    Args:
        stream: The connection; not closed on return.
        payload: The bytes to send.
        mode: ``count``, ``echo`` or ``framed`` (one message).

    Returns:
        The payload bytes that came back (in framed mode, the payloads of
        every answer, joined).
    """
    mode = Mode(mode)
    if mode is Mode.COUNT:
        return await echo_count(stream, payload)
    if mode is Mode.ECHO:
        return await echo_plain(stream, payload)
    return b"".join(await echo_framed(stream, [payload]))
