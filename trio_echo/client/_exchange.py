# The exchange of bytes with a server, over any trio.abc.Stream.
#
# A client sends and receives in two tasks of one nursery: alternating
# send_all and receive_some deadlocks once a message outgrows the kernel's
# buffers, against any server that echoes while it reads.
#
# When the client half-closes is its mode's rule (`ModeRules.half_close_after`):
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
# knows its size: `ModeRules.reply_size`); the caller then closes the stream,
# which sends close_notify, and the server closes in turn. A count server
# closes with close_notify once the payload is echoed; one that closes
# without it after the whole echo came has lost nothing, and its close ends
# the exchange as an end of stream would (before then, it is a reset).
from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable

import trio

from .._messages import Message
from ._replies import Sink

__all__ = ["RECEIVE_SIZE", "SEND_SIZE", "cut_after_the_reply", "exchange", "message_pieces"]

RECEIVE_SIZE = 64 * 1024
SEND_SIZE = 256 * 1024


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
