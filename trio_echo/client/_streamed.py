# A message whose end is not known when it is sent (standard input from a
# pipe, a device): in a mode that needs no length first (echo), it is sent
# as it is read, and each piece is held until its echo has been checked.
# Nothing is copied to disk, and the input may go on for ever.
#
# What is held is bounded: the reader waits while `WINDOW` bytes are sent
# and not yet checked, so a server that stops echoing cannot make the
# client hold more. The echo is checked as any other (`EchoCheck` reads the
# message at the echo's offsets, and a read drops what comes before).
#
# The exchange follows echo mode's rule for the end: once everything is
# sent and has come back, the client half-closes (over TLS, which cannot,
# it stops reading and closes with close_notify). The size it waits for
# is known only once the input has ended.
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import AsyncGenerator, Callable

import trio

from .._messages import Message, MessageReadError
from ._exchange import RECEIVE_SIZE, SEND_SIZE, cut_after_the_reply
from ._replies import Sink

__all__ = ["WINDOW", "StreamedMessage", "exchange_streamed"]

WINDOW = 4 * 1024 * 1024
"""The most a streamed message holds: bytes sent whose echo is not checked yet."""


class StreamedMessage(Message):
    """A message read from a descriptor as it is sent; its size grows until it ends.

    Args:
        fd: Where to read it from.
        owned: Whether `close` closes ``fd``.
        window: The most it holds (`WINDOW`).

    Attributes:
        size: The bytes read so far: the message's size once `ended`.
        ended: Whether the input has ended.
    """

    def __init__(self, fd: int, *, owned: bool = False, window: int = WINDOW) -> None:
        super().__init__()
        self._source = fd
        self._source_owned = owned
        self._window = window
        self._held = bytearray()  # the bytes from `_first` on
        self._first = 0
        self._checked = trio.Event()
        self.ended = False

    @staticmethod
    def unsized(fd: int) -> bool:
        """Whether what ``fd`` holds has no size known in advance (it is not a regular file)."""
        status = os.fstat(fd)
        return not stat.S_ISREG(status.st_mode) or status.st_size == 0

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        """The message's bytes as they are read, each held until its echo is checked.

        Raises:
            MessageReadError: If the input cannot be read.
        """
        while True:
            while self.size - self._first >= self._window:
                self._checked = trio.Event()
                await self._checked.wait()
            try:
                data = await trio.to_thread.run_sync(
                    os.read, self._source, SEND_SIZE, abandon_on_cancel=True
                )
            except OSError as error:
                raise MessageReadError(error.strerror or str(error)) from error
            if not data:
                self.ended = True
                return
            self._held += data
            self.size += len(data)
            yield data

    def read(self, offset: int, count: int) -> bytes:
        """Up to ``count`` bytes from ``offset``, of those read so far.

        Reads go forward: what comes before ``offset`` is dropped.
        """
        if offset > self._first:
            del self._held[: offset - self._first]
            self._first = offset
            self._checked.set()
        start = offset - self._first
        return bytes(self._held[start : start + count])

    @property
    def in_memory(self) -> bool:
        """Whether reading it never touches a file: it holds what it read."""
        return True

    def close(self) -> None:
        """Close its descriptor, if it owns it."""
        if self._source_owned:
            os.close(self._source)
            self._source_owned = False


async def exchange_streamed(
    stream: trio.abc.Stream,
    message: StreamedMessage,
    sink: Sink,
    *,
    on_sent: Callable[[int], None] | None = None,
) -> bool:
    """Send ``message`` as it is read, while passing every received chunk to ``sink``.

    Once the input has ended and as many bytes came back as were sent, ends
    the stream (over a stream that cannot, stops reading). The stream is
    not closed.

    Returns:
        True if everything was sent; False if the peer closed or reset the
        connection before all of it could be.

    Raises:
        trio.BrokenResourceError: If receiving failed (the connection was
            reset).
        MessageReadError: If the input cannot be read.
    """
    half_closes = isinstance(stream, trio.abc.HalfCloseableStream)
    sent_all = False
    received = 0
    all_back = trio.Event()
    receiving = trio.CancelScope()

    async def send() -> None:
        nonlocal sent_all
        try:
            async with contextlib.aclosing(message.pieces()) as pieces:
                async for data in pieces:
                    await stream.send_all(data)
                    if on_sent is not None:
                        on_sent(len(data))
            sent_all = True
            if received >= message.size:
                all_back.set()
            await all_back.wait()
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            else:
                receiving.cancel()  # the whole echo is in; the caller closes
        except trio.BrokenResourceError:
            pass  # the peer stopped reading; what it sent back tells the rest

    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        try:
            with receiving:
                while data := await stream.receive_some(RECEIVE_SIZE):
                    received += len(data)
                    sink(bytes(data))
                    if sent_all and received >= message.size:
                        all_back.set()
                        if not half_closes:
                            break
        except trio.BrokenResourceError as error:
            if not (sent_all and cut_after_the_reply(error, received, message.size)):
                failure = error
        except Exception as error:
            failure = error
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return sent_all
