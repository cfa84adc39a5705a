# The TCP stream the server serves connections on.
#
# It keeps trio.SocketStream's contract: every async call is a checkpoint
# (a cancel point and a schedule point), waiting goes through trio's own
# wait_readable/wait_writable, and closing tells trio (notify_closing), so a
# task waiting on the socket wakes with ClosedResourceError. It differs in
# what it does around the system call: it calls the socket first and waits
# only when the kernel says it would block, and it has three synchronous
# calls that never wait (`NowaitStream`), with which the connection handler
# serves whatever is ready without a round trip through the scheduler.
#
# A read that returns less than it asked for has most likely emptied the
# socket, so the next read waits for readiness first instead of paying for
# a call that fails with EAGAIN. Waiting is level-triggered (trio registers
# the socket for one wakeup per wait), so data still queued behind a short
# read (after TCP urgent data, say) is reported at once.
from __future__ import annotations

import _socket
import contextlib
import errno
import fcntl
import functools
import socket
import struct
import termios
from collections.abc import Awaitable
from typing import Protocol, runtime_checkable

import trio

__all__ = [
    "DEFAULT_RECEIVE_SIZE",
    "FastSocketStream",
    "NowaitStream",
    "has_nowait_calls",
    "unacknowledged",
    "unread_waiting",
]

DEFAULT_RECEIVE_SIZE = 64 * 1024

# Every call passes MSG_DONTWAIT, where there is one: the socket need not be
# made non-blocking, which saves a system call on every connection.
_DONTWAIT: int = int(getattr(socket, "MSG_DONTWAIT", 0))  # a number: flags as enums cost calls
_PEEK: int = int(socket.MSG_PEEK) | _DONTWAIT

# Bytes sent and not yet acknowledged by the peer (Linux's SIOCOUTQ), where
# the platform can tell.
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None) if hasattr(fcntl, "ioctl") else None


def _socket_kind(sock: socket.SocketType) -> int:
    """Return ``sock.type`` as a number.

    The property makes an enum of it in Python each time: most of a
    microsecond, on every connection.
    """
    kind: int = _socket.socket.type.__get__(sock)
    return kind


@runtime_checkable
class NowaitStream(Protocol):
    """The synchronous calls of a stream that can move bytes without waiting.

    A connection handler checks for them once per connection: with them it
    echoes and closes inline; without them (a memory stream, a TLS stream)
    it goes through the `trio.abc.Stream` calls only. `wait_receivable` is
    a checkpoint, as every async call is; the others are plain functions,
    and return at once. A reader need wait only when the stream is
    `drained`; one that reads on without waiting must pass a checkpoint of
    its own now and then.
    """

    def drained(self) -> bool:
        """Whether the last read most likely emptied the stream: wait before the next."""

    def wait_receivable(self) -> Awaitable[None]:
        """Wait until `receive_nowait` has something to say (maybe, at once)."""

    def receive_nowait(self, max_bytes: int) -> bytes | None:
        """Return what has arrived (``b""`` at its end); None if nothing has."""

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the kernel takes now; return how many bytes that was."""

    def close_would_reset(self) -> bool | None:
        """Whether closing now could reset the connection; None if unknown here."""

    def close_nowait(self) -> None:
        """Close at once; bytes already sent are the kernel's to deliver."""


@functools.cache
def has_nowait_calls(stream_type: type) -> bool:
    """Whether streams of ``stream_type`` have the `NowaitStream` calls (asked once a type)."""
    return issubclass(stream_type, NowaitStream)


class FastSocketStream(trio.abc.HalfCloseableStream):
    """A `trio.abc.HalfCloseableStream` over a connected stream socket.

    Besides the stream's calls it has `receive_nowait`, `send_nowait` and
    `close_nowait` (the `NowaitStream` calls), which never wait and are not
    checkpoints. Every async call is a checkpoint, as trio's own are.

    Args:
        sock: A connected stream socket: a `socket.socket`, or the C type
            it extends, `socket.SocketType` (which a server's accepted
            sockets are: its calls are the same, without the Python-level
            ``__init__`` and ``close``). The stream owns it from then on.
        set_nodelay: Whether to set ``TCP_NODELAY`` (TCP sockets only); a
            server whose listening socket has it can skip the call, as
            accepted sockets inherit it.
        set_nonblocking: Whether to make the socket non-blocking. The
            stream's own calls never block either way (they pass
            ``MSG_DONTWAIT``, where there is one): a server that hands a
            new socket straight to the stream can skip the system call.
    """

    __slots__ = ("_closed", "_drained", "_eof_sent", "_receiving", "_sending", "_sock", "_waited")

    def __init__(
        self, sock: socket.SocketType, *, set_nodelay: bool = True, set_nonblocking: bool = True
    ) -> None:
        if _socket_kind(sock) != socket.SOCK_STREAM:
            raise ValueError("FastSocketStream needs a stream socket")
        if set_nonblocking or not _DONTWAIT or sock.gettimeout():
            # A socket with a timeout would wait in the call, MSG_DONTWAIT
            # or not; a blocking one (a new accepted socket) would not.
            sock.setblocking(False)
        if set_nodelay and sock.family in (socket.AF_INET, socket.AF_INET6):
            # The peer may already be gone: then the first call will say so.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._closed = False
        self._eof_sent = False
        self._sending = False
        self._receiving = False
        self._drained = False  # the last read was short: wait before the next
        self._waited = False  # trio's I/O manager has seen the socket

    @property
    def socket(self) -> socket.SocketType:
        """The underlying socket."""
        return self._sock

    def drained(self) -> bool:
        """Whether the last read most likely emptied the socket (not a checkpoint).

        True after a read that found nothing, or less than it asked for: the
        next should wait for readiness first (`wait_receivable`).
        """
        return self._drained

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Receive up to ``max_bytes`` (64 KiB if None); ``b""`` at the end.

        Raises:
            trio.BusyResourceError: If another task is receiving.
            trio.ClosedResourceError: If this stream was closed.
            trio.BrokenResourceError: If the connection broke (reset).
        """
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            # After a short read, a read now would most likely fail with
            # EAGAIN: wait first. (Waiting is a checkpoint too.)
            wait = self._drained
            if not wait:
                await trio.lowlevel.checkpoint()
            while True:
                if wait:
                    self._check_open()
                    self._waited = True
                    await trio.lowlevel.wait_readable(self._sock)
                if (data := self._receive_now(max_bytes)) is not None:
                    return data
                wait = True
        finally:
            self._receiving = False

    def wait_receivable(self) -> Awaitable[None]:
        """Wait until a receive would most likely not block.

        Used as ``await stream.wait_receivable()``, by a reader that pays for
        its read before it makes it (so that a connection with nothing to
        read holds nothing). After a short read this is trio's own
        `trio.lowlevel.wait_readable`, returned as it is (a waiting
        connection holds no frame of the stream's); otherwise a checkpoint.
        `receive_nowait` may still find nothing. While it waits, the stream
        does not count as receiving (trio refuses a second waiter).

        Raises:
            trio.BusyResourceError: If another task is receiving (when
                awaited: trio's wait says so).
            trio.ClosedResourceError: If this stream was closed.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._check_open()
        # Returned to be awaited by the caller (see above): no frame between.
        if self._drained:
            self._waited = True
            return trio.lowlevel.wait_readable(self._sock)  # noqa: ASYNC105
        return trio.lowlevel.checkpoint()  # noqa: ASYNC105

    def receive_nowait(self, max_bytes: int = DEFAULT_RECEIVE_SIZE) -> bytes | None:
        """Receive what has arrived, without waiting; None if nothing has.

        Returns ``b""`` at the end of the stream. Not a checkpoint.

        Raises:
            trio.BusyResourceError: If another task is receiving.
            trio.ClosedResourceError: If this stream was closed.
            trio.BrokenResourceError: If the connection broke.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        return self._receive_now(max_bytes)

    def _receive_now(self, max_bytes: int) -> bytes | None:
        """One receive call: what has arrived, None if nothing has."""
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        try:
            data = self._sock.recv(max_bytes, _DONTWAIT)
        except BlockingIOError:
            self._drained = True
            return None
        except OSError as error:
            raise _translate(error, self._closed) from error
        self._drained = 0 < len(data) < max_bytes
        return data

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the kernel takes now, without waiting; return its length.

        Returns 0 when the send buffer is full. Not a checkpoint.

        Raises:
            trio.BusyResourceError: If a `send_all` is in progress.
            trio.ClosedResourceError: If this stream was closed.
            trio.BrokenResourceError: If the connection broke.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        return self._send_now(data)

    def close_would_reset(self) -> bool | None:
        """Whether closing now could reset the connection, asked without reading.

        It could if the peer's bytes wait unread, or if bytes sent are not
        yet acknowledged (a byte the peer sends after the close would then
        draw a reset that destroys them). Not a checkpoint.

        Returns:
            True or False; None where the platform cannot tell what is
            acknowledged.

        Raises:
            trio.ClosedResourceError: If the stream was closed.
            trio.BrokenResourceError: If the connection broke.
        """
        if (waiting := unread_waiting(self)) is not None:
            return waiting
        count = unacknowledged(self)
        return None if count is None else count > 0

    def _send_now(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed or self._eof_sent:
            raise trio.ClosedResourceError("this stream was closed for sending")
        try:
            return self._sock.send(data, _DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError as error:
            raise _translate(error, self._closed) from error

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting for buffer room as needed.

        Raises:
            trio.BusyResourceError: If another task is sending.
            trio.ClosedResourceError: If this stream was closed.
            trio.BrokenResourceError: If the connection broke.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            with memoryview(data) as view:
                sent = self._send_now(view)
                while sent < len(view):
                    await self._wait_writable()
                    sent += self._send_now(view[sent:])
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket has room to send."""
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        self._sending = True
        try:
            await self._wait_writable()
        finally:
            self._sending = False

    async def _wait_writable(self) -> None:
        self._check_open()
        self._waited = True
        await trio.lowlevel.wait_writable(self._sock)

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")

    async def send_eof(self) -> None:
        """Half-close: send an end of stream after the bytes already sent.

        Like `send_all`, it holds the send side for its whole call: a
        `send_all` started meanwhile raises `trio.BusyResourceError`.
        """
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
            if self._eof_sent:
                return
            self._eof_sent = True
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError as error:
                if error.errno != errno.ENOTCONN:  # the peer reset first: nothing to end
                    raise trio.BrokenResourceError(str(error)) from error
        finally:
            self._sending = False

    def close_nowait(self) -> None:
        """Close the socket at once (unsent bytes are the kernel's to send).

        Not a checkpoint, so it is safe in cleanup code that runs while
        cancelled. Tasks waiting on the stream are woken with
        ClosedResourceError.
        """
        if not self._closed:
            self._closed = True
            if self._waited:
                # For a socket trio never waited on, there is nothing to tell.
                trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    async def aclose(self) -> None:
        """Close the socket (at once; unsent bytes are the kernel's to send)."""
        self.close_nowait()
        await trio.lowlevel.checkpoint()


def unread_waiting(stream: FastSocketStream) -> bool | None:
    """Whether the peer's bytes wait unread on ``stream``, asked without reading.

    Not a checkpoint.

    Returns:
        True if they do; False if the peer has closed and nothing waits;
        None if nothing waits and more may come.

    Raises:
        trio.ClosedResourceError: If the stream was closed.
        trio.BrokenResourceError: If the connection broke.
    """
    sock = stream._sock
    if sock.fileno() == -1:
        raise trio.ClosedResourceError("this stream was closed")
    try:
        waiting = sock.recv(1, _PEEK)
    except BlockingIOError:
        return None
    except OSError as error:
        raise _translate(error, closed=False) from error
    return bool(waiting)  # b"": the peer has closed, nothing more can come


def unacknowledged(stream: FastSocketStream) -> int | None:
    """Bytes sent on ``stream`` that the peer has not acknowledged yet; None if unknown.

    Not a checkpoint. Known where the platform has ``TIOCOUTQ`` (Linux), on
    an open stream.
    """
    if _OUTQ is None or (fd := stream._sock.fileno()) == -1:
        return None
    try:
        answer = fcntl.ioctl(fd, _OUTQ, b"\0\0\0\0")
    except OSError:
        return None
    return int(struct.unpack("i", answer)[0])


def _translate(error: OSError, closed: bool) -> Exception:
    """The stream error for a socket error: ours (closed) or the peer's."""
    if closed or error.errno == errno.EBADF:
        return trio.ClosedResourceError("this stream was closed")
    return trio.BrokenResourceError(str(error))
