# A TCP stream that calls the socket first and waits only when it must.
#
# trio.SocketStream awaits the scheduler on every call, twice (a checkpoint
# before, and one inside the socket method), even when the kernel has data or
# buffer room at once: measured here, that and its wrapper layers halved the
# server's throughput. This stream tries the non-blocking call first and
# awaits wait_readable/wait_writable only on BlockingIOError.
#
# Besides the trio.abc.HalfCloseableStream methods it has three that never
# wait (receive_nowait, send_nowait, close_nowait): the connection handler
# uses them when a stream has them, to echo and close without a round trip
# through the scheduler.
#
# A read that returns less than it asked for has most likely emptied the
# socket: the next read waits for readiness first instead of paying for a
# read that fails with EAGAIN.
#
# Waiting can go through a Poller: one edge-triggered epoll, run by one task,
# in which a stream's socket is registered once, at its first wait, and stays
# until it is closed. trio's own wait_readable registers a socket for one
# event per wait (a system call each time) and stacks five coroutine frames
# on every waiting task; a poller's waiter parks in trio's
# wait_task_rescheduled directly, and readiness costs no system call per
# wait. Without a poller (or once it has stopped) the stream waits through
# trio.lowlevel.wait_readable/wait_writable, as before.
#
# It stays a well-behaved trio stream: every call checks for cancellation
# first (so a cancelled connection stops at its next call), and a stream
# whose calls do not have to wait yields to the scheduler anyway once it has
# had its turn: fair_share calls, or fewer once they have moved turn_bytes
# (received and sent, by any call), so a connection that always has data
# cannot starve the others, however big its reads and writes. That is the
# one way it differs from trio's streams, whose every call yields: with
# fair_share=1 it yields on every call too, and passes trio's own
# half-closeable stream conformance checks.
from __future__ import annotations

import contextlib
import errno
import select
import socket

import trio

__all__ = ["FAIR_SHARE", "FastSocketStream", "Poller"]

FAIR_SHARE = 16
"""Calls that complete without waiting before one yields to the scheduler."""

TURN_BYTES = 2 * 1024 * 1024
"""Bytes moved (in and out) after which a call yields, however few the calls.

About what 16 calls move when a connection reads 64 KiB and echoes it.
"""

DEFAULT_RECEIVE_SIZE = 64 * 1024


_READ_EVENTS = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLRDHUP", 0)
_ERROR_EVENTS = getattr(select, "EPOLLHUP", 0) | getattr(select, "EPOLLERR", 0)
_DEFAULT_TURN = (FAIR_SHARE, TURN_BYTES)  # shared by every stream that uses it

# Every call passes MSG_DONTWAIT, where there is one: the socket need not be
# made non-blocking, which saves a system call on every connection.
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)

# Where a stream has waited (bits of FastSocketStream._waits).
_WATCHED = 1  # registered with its poller
_WAITED_IN_TRIO = 2  # through trio's wait_readable/wait_writable

_HANG_UP_EVENTS = _ERROR_EVENTS | getattr(select, "EPOLLRDHUP", 0)


class Poller:
    """Readiness for many `FastSocketStream` objects, from one epoll.

    A stream made with ``poller=`` registers its socket here at its first
    wait, edge-triggered, for reading and writing at once, and stays
    registered until it is closed (closing the socket removes it from the
    epoll). `run` waits until the epoll has events and wakes the streams'
    waiting tasks; it must run for as long as its streams wait, typically in
    a nursery around theirs. Streams whose poller is not running wait through
    trio's own ``wait_readable``/``wait_writable``.

    While it runs, a trio instrument also takes the epoll's events right
    after each of trio's own I/O waits: the tasks it wakes then run in the
    same scheduler pass as those trio wakes, instead of one pass later,
    after the poller's task. The task remains what wakes trio when only
    the poller's sockets have events.

    Available where `select.epoll` is (Linux); `Poller.available` says.
    """

    available = hasattr(select, "epoll")
    """Whether this platform has epoll."""

    def __init__(self) -> None:
        if not self.available:
            raise RuntimeError("Poller needs epoll (Linux)")
        self._epoll = select.epoll()
        self._streams: dict[int, FastSocketStream] = {}
        self.running = False

    @property
    def watched(self) -> int:
        """How many streams are registered."""
        return len(self._streams)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver readiness until cancelled; then close the epoll.

        Streams still waiting when it stops are woken, and wait through trio
        from then on. A poller runs once.

        Args:
            task_status: Started once the poller delivers readiness.
        """
        if self._epoll.closed:
            raise RuntimeError("this poller has already run")
        epoll, streams = self._epoll, self._streams
        instrument = _DeliverAfterIOWait(self)
        trio.lowlevel.add_instrument(instrument)
        self.running = True
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll)
                self._deliver()
        finally:
            self.running = False
            with contextlib.suppress(KeyError):  # trio drops an instrument that raised
                trio.lowlevel.remove_instrument(instrument)
            for stream in streams.values():
                stream._ready(_ERROR_EVENTS)  # it waits through trio from now on
            streams.clear()
            epoll.close()

    def _deliver(self) -> None:
        """Take the events the epoll has now, and wake their streams."""
        streams = self._streams
        if not streams:
            return
        for fd, events in self._epoll.poll(0):
            stream = streams.get(fd)
            if stream is not None:
                stream._ready(events)

    def _watch(self, stream: FastSocketStream) -> bool:
        """Register ``stream``; return False if its socket cannot be."""
        fd = stream.socket.fileno()
        try:
            self._epoll.register(
                fd,
                _READ_EVENTS | select.EPOLLOUT | select.EPOLLET,
            )
        except OSError:
            return False
        self._streams[fd] = stream
        return True

    def _forget(self, fd: int) -> None:
        # The kernel drops the registration when the socket closes.
        self._streams.pop(fd, None)


class _DeliverAfterIOWait(trio.abc.Instrument):
    """Delivers a poller's events after each of trio's I/O waits."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller

    def after_io_wait(self, timeout: float) -> None:
        if self._poller.running:
            self._poller._deliver()


class FastSocketStream(trio.abc.HalfCloseableStream):
    """A `trio.abc.HalfCloseableStream` over a connected TCP socket.

    Args:
        sock: A connected stream socket (a standard library socket). It is
            made non-blocking and gets ``TCP_NODELAY``, as trio.SocketStream
            does; the stream owns it from then on.
        fair_share: Calls that complete without waiting before one yields
            to the scheduler; 1 makes every call yield, as trio's do.
        turn_bytes: Bytes moved, in and out, after which the next call
            yields even if fewer than ``fair_share`` calls were made.
        set_nodelay: Whether to set ``TCP_NODELAY``; a server whose
            listening socket has it can skip the call, as accepted sockets
            inherit it.
        set_nonblocking: Whether to make the socket non-blocking. The
            stream's own calls never block either way (they pass
            ``MSG_DONTWAIT``, where there is one): a server that hands a
            new socket straight to the stream can skip the system call.
        poller: The `Poller` to wait through, if any.
    """

    __slots__ = (
        "_closed",
        "_drained",
        "_eof_sent",
        "_hung_up",
        "_moved",
        "_poller",
        "_readable",
        "_reader",
        "_receiving",
        "_sending",
        "_sock",
        "_turn",
        "_unyielded",
        "_waits",
        "_writable",
        "_writer",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        fair_share: int = FAIR_SHARE,
        turn_bytes: int = TURN_BYTES,
        set_nodelay: bool = True,
        set_nonblocking: bool = True,
        poller: Poller | None = None,
    ) -> None:
        if fair_share < 1:
            raise ValueError("fair_share must be at least 1")
        if turn_bytes < 1:
            raise ValueError("turn_bytes must be at least 1")
        if sock.type != socket.SOCK_STREAM:
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
        self._drained = False
        self._eof_sent = False
        self._sending = False
        self._receiving = False
        # Calls and bytes since the last yield, and a turn's share of each.
        self._unyielded = self._moved = 0
        turn = (fair_share, turn_bytes)
        self._turn = _DEFAULT_TURN if turn == _DEFAULT_TURN else turn
        self._poller = poller
        self._waits = 0  # where it has waited: _WATCHED | _WAITED_IN_TRIO
        # Set when the poller reports an edge; cleared when a call finds the
        # socket empty (or full). A wait with it set need not park.
        self._readable = False
        self._writable = False
        # Set, for good, when the poller reports that the peer has closed
        # or reset. A short read does not consume an end of stream, and no
        # edge will come for it again: then reads must not wait for one.
        self._hung_up = False
        # The tasks parked on the poller.
        self._reader: trio.lowlevel.Task | None = None
        self._writer: trio.lowlevel.Task | None = None

    @property
    def socket(self) -> socket.socket:
        """The underlying socket."""
        return self._sock

    def _check_sender(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")

    async def _pace(self) -> None:
        """Check for cancellation, and yield once a turn is used up."""
        self._unyielded += 1
        calls, moved = self._turn
        if self._unyielded >= calls or self._moved >= moved:
            self._unyielded = self._moved = 0
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

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
            # After a read that emptied the socket, a read now would most
            # likely fail with EAGAIN: wait for data first.
            wait = self._drained
            if not wait:
                await self._pace()
            while True:
                if wait and not self._closed:
                    # _wait_writable's steps, for reading, written out here:
                    # a read is where an idle connection waits, and a call
                    # would keep one more coroutine frame alive on each.
                    self._unyielded = self._moved = 0
                    if not self._through_poller():
                        await trio.lowlevel.wait_readable(self._sock)
                    elif self._readable:
                        await trio.lowlevel.checkpoint()  # data came since: no need to park
                    else:
                        self._reader = trio.lowlevel.current_task()
                        await trio.lowlevel.wait_task_rescheduled(self._abort_read)
                data = self._receive_now(max_bytes)
                if data is not None:
                    if 0 < len(data) < max_bytes:
                        self._drained = True
                        self._readable = self._hung_up
                    else:
                        self._drained = False
                    return data
                self._readable = False
                wait = True
        finally:
            self._receiving = False

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
        """One receive call: what has arrived, None if nothing has.

        Its would-block exception is caught in this short-lived frame: caught
        in receive_some, which then waits, it would keep that frame's frame
        object alive, some 200 bytes on every waiting connection.
        """
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        try:
            data = self._sock.recv(max_bytes, _DONTWAIT)
        except BlockingIOError:
            return None
        except OSError as error:
            raise _translate(error, self._closed) from error
        self._moved += len(data)
        return data

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the kernel takes now, without waiting; return its length.

        Returns 0 when the send buffer is full. Not a checkpoint.

        Raises:
            trio.BusyResourceError: If a `send_all` is in progress.
            trio.ClosedResourceError: If this stream was closed.
            trio.BrokenResourceError: If the connection broke.
        """
        self._check_sender()
        if self._closed or self._eof_sent:
            raise trio.ClosedResourceError("this stream was closed for sending")
        try:
            sent = _send(self._sock, data)
        except OSError as error:
            raise _translate(error, self._closed) from error
        self._moved += sent
        return sent

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``, waiting for buffer room as needed.

        Raises:
            trio.BusyResourceError: If another task is sending.
            trio.ClosedResourceError: If this stream was closed.
            trio.BrokenResourceError: If the connection broke.
        """
        self._check_sender()
        self._sending = True
        try:
            await self._pace()
            with memoryview(data) as view:
                total = len(view)
                sent = 0
                while True:
                    if self._closed or self._eof_sent:
                        raise trio.ClosedResourceError("this stream was closed for sending")
                    try:
                        count = _send(self._sock, view[sent:] if sent else view)
                    except OSError as error:
                        raise _translate(error, self._closed) from error
                    sent += count
                    self._moved += count
                    if sent >= total:
                        return
                    self._writable = False
                    await self._wait_writable()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket has room to send."""
        self._check_sender()
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        self._sending = True
        try:
            await self._wait_writable()
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
        finally:
            self._sending = False

    async def _wait_writable(self) -> None:
        self._unyielded = self._moved = 0
        if not self._through_poller():
            await trio.lowlevel.wait_writable(self._sock)
        elif self._writable:
            await trio.lowlevel.checkpoint()
        else:
            self._writer = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort_write)

    def _through_poller(self) -> bool:
        """Whether to wait through the poller (registered with it first).

        If not, the caller waits through trio, and the stream notes it.
        """
        poller = self._poller
        if poller is not None and poller.running:
            if self._waits & _WATCHED:
                return True
            if poller._watch(self):
                self._waits |= _WATCHED
                return True
            self._poller = None  # it cannot be registered: trio from now on
        self._waits |= _WAITED_IN_TRIO
        return False

    def _ready(self, events: int) -> None:
        """Note readiness reported by the poller; wake the waiting tasks."""
        if events & _HANG_UP_EVENTS:
            self._hung_up = True
        if events & _READ_EVENTS or events & _ERROR_EVENTS:
            self._readable = True
            if self._reader is not None:
                trio.lowlevel.reschedule(self._reader)
                self._reader = None
        if events & ~_READ_EVENTS:  # EPOLLOUT, or an error or hang-up
            self._writable = True
            if self._writer is not None:
                trio.lowlevel.reschedule(self._writer)
                self._writer = None

    def _abort_read(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._reader = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _abort_write(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._writer = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def send_eof(self) -> None:
        """Half-close: send an end of stream after the bytes already sent."""
        self._check_sender()
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

    def close_nowait(self) -> None:
        """Close the socket at once (unsent bytes are the kernel's to send).

        Not a checkpoint, so it is safe in cleanup code that runs while
        cancelled. Tasks waiting on the stream are woken with
        ClosedResourceError.
        """
        if not self._closed:
            self._closed = True
            if self._waits & _WATCHED and self._poller is not None:
                self._poller._forget(self._sock.fileno())
                # Wake its waiters: they find the stream closed.
                self._ready(_ERROR_EVENTS)
            if self._waits & _WAITED_IN_TRIO:
                # Only then: for a socket trio never saw, notify_closing
                # costs a failing epoll_ctl and an exception.
                trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    async def aclose(self) -> None:
        """Close the socket (at once; unsent bytes are the kernel's to send)."""
        self.close_nowait()
        await trio.lowlevel.checkpoint()


def _send(sock: socket.socket, data: bytes | bytearray | memoryview) -> int:
    """Send what the kernel takes now; 0 if the call would block.

    The would-block case is caught here, in a frame that ends at once (see
    FastSocketStream._receive_now).
    """
    try:
        return sock.send(data, _DONTWAIT)
    except BlockingIOError:
        return 0


def _translate(error: OSError, closed: bool) -> Exception:
    """The stream error for a socket error: ours (closed) or the peer's."""
    if closed or error.errno == errno.EBADF:
        return trio.ClosedResourceError("this stream was closed")
    return trio.BrokenResourceError(str(error))
