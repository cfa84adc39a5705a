# How the pump drives each kind of stream: its transport.
#
# The pump (`Connection`) asks every connection the same questions: can it
# half-close, how much is one read worth, what can be read or sent now
# without waiting, would closing now reset the connection, and how to close
# it, gracefully or not. A transport answers them for one kind of stream:
#
# - `NowaitTransport`: a stream with the `NowaitStream` calls (the server's
#   `FastSocketStream`). It reads and sends what is ready without waiting,
#   half-closes, and asks the stream whether closing would reset.
# - `StreamTransport`: any `trio.abc.Stream`, through its async calls only:
#   nothing is ever ready without waiting, and a read waits while it reads.
# - `TLSTransport`: a `trio.SSLStream`. A handshake first, reads of one TLS
#   record at most, no half-close, and a graceful close that sends
#   close_notify. Over a `FastSocketStream` it can tell whether the peer's
#   bytes wait unread, and close at once.
#
# `transport_for` picks one from the stream's type, once per connection; with
# the per-chunk debug lines on, `TracingTransport` wraps it.
#
# A transport holds no connection's state: one serves every stream of its
# kind (a connection pays a reference for it), and the stream is passed to
# each call. The calls a nowait transport makes once or more per message are
# its stream type's own functions, not wrappers around them: a frame more per
# call would cost the pump some 2% per echoed message.
from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import trio

from ..protocol import (
    READ_SIZE_MAX,
    Chunk,
    EchoProtocol,
    Mode,
    Unread,
)
from ._socket_stream import (
    FastSocketStream,
    NowaitStream,
    has_nowait_calls,
    unacknowledged,
    unread_waiting,
)

__all__ = [
    "TLS_RECORD_SIZE",
    "NowaitTransport",
    "StreamTransport",
    "TLSSocketTransport",
    "TLSTransport",
    "TracingTransport",
    "Transport",
    "transport_for",
]

logger = logging.getLogger("trio_echo.server")

TLS_RECORD_SIZE = 16 * 1024
"""The most plaintext a TLS record carries: all one read of a TLS stream returns."""

StreamT_contra = TypeVar("StreamT_contra", bound=trio.abc.Stream, contravariant=True)
N = TypeVar("N", bound=NowaitStream)

# A transport's answer to CHECK_UNREAD, from a stream's: would closing now reset?
_UNREAD = {True: Unread.YES, False: Unread.NO, None: Unread.UNKNOWN}


SAYING_CLOSE = 1.0
"""Seconds a graceful close has at least, whatever the linger time: time for
a TLS stream's close_notify to go out (at once, unless the peer stopped
reading). The linger time bounds the wait for the peer, not these words."""


class Transport(Protocol[StreamT_contra]):
    """What the pump asks of a connection's stream, answered for its kind.

    Attributes:
        can_half_close: Whether it can send an end of stream and go on
            reading.
        max_read: The largest read worth asking for.
        handshake: Whether the connection begins with a (TLS) handshake.
    """

    can_half_close: bool
    max_read: int
    handshake: bool

    def drained(self, stream: StreamT_contra) -> bool:
        """Whether to `wait_receivable` before paying for the next read."""

    def wait_receivable(self, stream: StreamT_contra) -> Awaitable[None]:
        """Wait until a read would most likely find bytes; a checkpoint."""

    def wait_readable(self, stream: StreamT_contra) -> Awaitable[None]:
        """Wait until bytes (or the end) are there, if it can tell; else a checkpoint."""

    def receive_nowait(self, stream: StreamT_contra, max_bytes: int) -> bytes | None:
        """What has arrived (``b""`` at the end), without waiting; None if nothing has."""

    def receive(
        self, stream: StreamT_contra, max_bytes: int
    ) -> Coroutine[Any, Any, bytes | bytearray | None]:
        """Read once `receive_nowait` found nothing; None to wait for readiness.

        A stream that can wait only by reading reads here, waiting; one that
        can wait for readiness (`wait_receivable`) says None, and waits
        before its next read is paid for.
        """

    def send_nowait(self, stream: StreamT_contra, data: Chunk) -> int:
        """Send what can go now without waiting; return how many bytes that was."""

    def send_all(self, stream: StreamT_contra, data: Chunk) -> Coroutine[Any, Any, None]:
        """Send all of ``data``, waiting for the peer as needed."""

    def send_eof(self, stream: StreamT_contra) -> Coroutine[Any, Any, None]:
        """Half-close (asked only where `can_half_close`)."""

    def do_handshake(self, stream: StreamT_contra) -> Coroutine[Any, Any, None]:
        """Do the handshake (asked only where `handshake`)."""

    def would_reset(self, stream: StreamT_contra) -> Unread:
        """Whether closing now could reset the connection (CHECK_UNREAD)."""

    def queued(self, stream: StreamT_contra) -> int | None:
        """Bytes sent that the peer has not taken yet, in the kernel's buffers; None if unknown."""

    def close_nowait(self, stream: StreamT_contra) -> None:
        """Close forcefully at once, as far as the stream can without waiting.

        Where it cannot (any trio stream), this does nothing: such a stream
        is ended without waiting only by a bug, and `handle_connection`
        closes it then.
        """

    def aclose(self, stream: StreamT_contra, linger: float) -> Coroutine[Any, Any, None]:
        """Close gracefully, within ``linger`` seconds."""

    def aclose_forcefully(self, stream: StreamT_contra) -> Coroutine[Any, Any, None]:
        """Close at once; shielded from cancellation, and a no-op once closed."""


async def _nothing_yet(stream: object, max_bytes: int) -> None:
    """Nothing to read after all: wait for readiness before paying again."""


async def _closed_at_once(stream: NowaitStream, linger: float = 0.0) -> None:
    stream.close_nowait()  # unsent bytes are the kernel's to send


class NowaitTransport(Generic[N]):
    """A stream with the `NowaitStream` calls, of type ``stream_type``.

    Its calls are the type's own functions (`transport_for` makes one
    transport per type).
    """

    can_half_close = True
    max_read = READ_SIZE_MAX
    handshake = False

    def __init__(self, stream_type: type[N]) -> None:
        self.drained: Callable[[N], bool] = stream_type.drained
        self.wait_receivable: Callable[[N], Awaitable[None]] = stream_type.wait_receivable
        self.receive_nowait: Callable[[N, int], bytes | None] = stream_type.receive_nowait
        self.send_nowait: Callable[[N, Chunk], int] = stream_type.send_nowait
        self.close_nowait: Callable[[N], None] = stream_type.close_nowait

    receive = staticmethod(_nothing_yet)
    aclose = staticmethod(_closed_at_once)
    aclose_forcefully = staticmethod(_closed_at_once)

    @staticmethod
    async def send_all(stream: N, data: Chunk) -> None:
        await cast("trio.abc.Stream", stream).send_all(data)

    @staticmethod
    async def send_eof(stream: N) -> None:
        await cast("trio.abc.HalfCloseableStream", stream).send_eof()

    @staticmethod
    async def do_handshake(stream: N) -> None:
        raise AssertionError("a stream without TLS has no handshake")

    @staticmethod
    def wait_readable(stream: N) -> Awaitable[None]:
        return trio.lowlevel.wait_readable(cast("FastSocketStream", stream).socket)  # noqa: ASYNC105

    @staticmethod
    def would_reset(stream: N) -> Unread:
        return _UNREAD[stream.close_would_reset()]

    @staticmethod
    def queued(stream: N) -> int | None:
        return unacknowledged(cast("FastSocketStream", stream))


class StreamTransport:
    """Any `trio.abc.Stream`, through its async calls only.

    Args:
        can_half_close: Whether its streams are `trio.abc.HalfCloseableStream`.
    """

    max_read = READ_SIZE_MAX
    handshake = False

    def __init__(self, *, can_half_close: bool) -> None:
        self.can_half_close = can_half_close

    @staticmethod
    def drained(stream: trio.abc.Stream) -> bool:
        return False  # a read waits while it reads (with no reservation: see `_pump`)

    @staticmethod
    def wait_receivable(stream: trio.abc.Stream) -> Awaitable[None]:
        return trio.lowlevel.checkpoint()  # noqa: ASYNC105  (not asked: never drained)

    @staticmethod
    def wait_readable(stream: trio.abc.Stream) -> Awaitable[None]:
        return trio.lowlevel.checkpoint()  # noqa: ASYNC105  (it cannot tell without reading)

    @staticmethod
    def receive_nowait(stream: trio.abc.Stream, max_bytes: int) -> None:
        return None  # nothing is known to be there without waiting

    @staticmethod
    async def receive(stream: trio.abc.Stream, max_bytes: int) -> bytes | bytearray:
        return await stream.receive_some(max_bytes)

    @staticmethod
    def send_nowait(stream: trio.abc.Stream, data: Chunk) -> int:
        return 0  # every send may wait: the writer task sends

    @staticmethod
    async def send_all(stream: trio.abc.Stream, data: Chunk) -> None:
        await stream.send_all(data)

    @staticmethod
    async def send_eof(stream: trio.abc.Stream) -> None:
        await cast("trio.abc.HalfCloseableStream", stream).send_eof()

    @staticmethod
    async def do_handshake(stream: trio.abc.Stream) -> None:
        raise AssertionError("a stream without TLS has no handshake")

    @staticmethod
    def would_reset(stream: trio.abc.Stream) -> Unread:
        return Unread.UNKNOWN

    @staticmethod
    def queued(stream: trio.abc.Stream) -> int | None:
        return None

    @staticmethod
    def close_nowait(stream: trio.abc.Stream) -> None:
        pass  # it takes an await: `aclose_forcefully`

    @staticmethod
    async def aclose(stream: trio.abc.Stream, linger: float) -> None:
        # Say so gracefully (a TLS stream sends close_notify), within the
        # linger time, and never in less than SAYING_CLOSE; what is left is
        # closed forcefully.
        with trio.move_on_after(max(linger, SAYING_CLOSE)):
            await stream.aclose()

    @staticmethod
    async def aclose_forcefully(stream: trio.abc.Stream) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


class TLSTransport(StreamTransport):
    """A `trio.SSLStream` over any stream."""

    max_read = TLS_RECORD_SIZE
    handshake = True

    def __init__(self) -> None:
        super().__init__(can_half_close=False)

    @staticmethod
    async def do_handshake(stream: trio.abc.Stream) -> None:
        await cast("trio.SSLStream[trio.abc.Stream]", stream).do_handshake()


class TLSSocketTransport(TLSTransport):
    """A `trio.SSLStream` over a `FastSocketStream`: it can tell unread bytes, and close at once."""

    @staticmethod
    def would_reset(stream: trio.abc.Stream) -> Unread:
        # Only the socket's bytes known to wait count (see `EchoProtocol`):
        # the graceful close sends close_notify, after which the peer has
        # nothing more to say but its own.
        return _UNREAD[unread_waiting(_socket_of(stream))]

    @staticmethod
    def queued(stream: trio.abc.Stream) -> int | None:
        return unacknowledged(_socket_of(stream))

    @staticmethod
    def close_nowait(stream: trio.abc.Stream) -> None:
        _socket_of(stream).close_nowait()


def _socket_of(stream: trio.abc.Stream) -> FastSocketStream:
    return cast("trio.SSLStream[FastSocketStream]", stream).transport_stream


class TracingTransport(Generic[StreamT_contra]):
    """A transport that logs, at DEBUG, the lines the original printed per chunk.

    ``received`` and ``echoed`` for every read and send, and ``extracted``
    for a length prefix, once the protocol has framed it (told at the next
    call, before what it does).

    Args:
        inner: The connection's transport.
        protocol: The connection's state machine, for its counts.
        peer: The peer's address.
    """

    def __init__(self, inner: Transport[StreamT_contra], protocol: EchoProtocol, peer: str) -> None:
        self._inner = inner
        self._protocol = protocol
        self._peer = peer
        self._headers = protocol.headers
        self.can_half_close = inner.can_half_close
        self.max_read = inner.max_read
        self.handshake = inner.handshake

    def _framed(self) -> None:
        protocol = self._protocol
        if protocol.headers != self._headers:
            self._headers = protocol.headers
            logger.debug("%s: extracted content length=%d", self._peer, protocol.length)

    def _received(self, data: bytes | bytearray | None) -> None:
        if data is not None:
            total = self._protocol.bytes_in + len(data)
            logger.debug(
                "%s: received data with len %d (total received=%d)", self._peer, len(data), total
            )

    def _sent(self, count: int) -> int:
        if count:
            total = self._protocol.bytes_out + count
            logger.debug("%s: echoed data with len %d (total sent=%d)", self._peer, count, total)
        return count

    def drained(self, stream: StreamT_contra) -> bool:
        self._framed()
        return self._inner.drained(stream)

    def wait_receivable(self, stream: StreamT_contra) -> Awaitable[None]:
        self._framed()
        return self._inner.wait_receivable(stream)

    def wait_readable(self, stream: StreamT_contra) -> Awaitable[None]:
        return self._inner.wait_readable(stream)

    def receive_nowait(self, stream: StreamT_contra, max_bytes: int) -> bytes | None:
        self._framed()
        self._received(data := self._inner.receive_nowait(stream, max_bytes))
        return data

    async def receive(self, stream: StreamT_contra, max_bytes: int) -> bytes | bytearray | None:
        self._framed()
        self._received(data := await self._inner.receive(stream, max_bytes))
        return data

    def send_nowait(self, stream: StreamT_contra, data: Chunk) -> int:
        self._framed()
        return self._sent(self._inner.send_nowait(stream, data))

    async def send_all(self, stream: StreamT_contra, data: Chunk) -> None:
        self._framed()
        await self._inner.send_all(stream, data)
        self._sent(len(data))

    async def send_eof(self, stream: StreamT_contra) -> None:
        self._framed()
        await self._inner.send_eof(stream)

    async def do_handshake(self, stream: StreamT_contra) -> None:
        await self._inner.do_handshake(stream)

    def would_reset(self, stream: StreamT_contra) -> Unread:
        self._framed()
        return self._inner.would_reset(stream)

    def queued(self, stream: StreamT_contra) -> int | None:
        return self._inner.queued(stream)

    def close_nowait(self, stream: StreamT_contra) -> None:
        self._framed()
        self._inner.close_nowait(stream)

    async def aclose(self, stream: StreamT_contra, linger: float) -> None:
        self._framed()
        await self._inner.aclose(stream, linger)

    async def aclose_forcefully(self, stream: StreamT_contra) -> None:
        self._framed()
        await self._inner.aclose_forcefully(stream)


if TYPE_CHECKING:  # each is a Transport: checked, never run
    _: list[Transport[Any]] = [
        NowaitTransport(FastSocketStream),
        StreamTransport(can_half_close=True),
        TLSTransport(),
        TLSSocketTransport(),
        TracingTransport(TLSTransport(), EchoProtocol(Mode.ECHO), "peer"),
    ]


def transport_for(stream: trio.abc.Stream) -> Transport[trio.abc.Stream]:
    """The transport for ``stream``, chosen from its type (and, under TLS, its transport's).

    One transport serves every stream of a kind: they are made once a type.
    """
    if isinstance(stream, trio.SSLStream):
        return _TLS_TRANSPORTS[type(stream.transport_stream) is FastSocketStream]
    return _transport_of_type(type(stream))


_TLS_TRANSPORTS: dict[bool, Transport[trio.abc.Stream]] = {
    False: TLSTransport(),
    True: TLSSocketTransport(),
}


@functools.cache
def _transport_of_type(stream_type: type[trio.abc.Stream]) -> Transport[trio.abc.Stream]:
    if has_nowait_calls(stream_type) and issubclass(stream_type, trio.abc.HalfCloseableStream):
        nowait_type = cast("type[NowaitStream]", stream_type)
        return cast("Transport[trio.abc.Stream]", NowaitTransport(nowait_type))
    return StreamTransport(can_half_close=issubclass(stream_type, trio.abc.HalfCloseableStream))
