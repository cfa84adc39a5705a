"""The count protocol as a trio user would write it: serve_tcp, SocketStream,
and a nursery per connection.

Each connection's task does what the protocol says, and sends the echo to a
writer task through a memory channel of QUEUED_READS buffers (about 64 MiB):
past it the reader waits, which is backpressure in trio's idiom. Nothing of
trio_echo's own server is used, only its protocol object.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import trio
from _common import QUEUED_READS, READ_SIZE, announce, parse_args, unread

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, YIELD, EchoProtocol, Mode, Receive


async def handle(stream: trio.abc.Stream, mode: str) -> None:
    # Over TLS (trio_tls.py): no half-close, and its socket is the transport's.
    half_closeable = isinstance(stream, trio.abc.HalfCloseableStream)
    sock = (
        stream.socket if isinstance(stream, trio.SocketStream) else stream.transport_stream.socket
    )
    protocol = EchoProtocol(Mode(mode), now=trio.current_time(), can_half_close=half_closeable)
    to_writer, from_reader = trio.open_memory_channel[bytes](QUEUED_READS)
    written = trio.Event()

    async def write() -> None:
        async with from_reader:
            async for data in from_reader:
                await stream.send_all(data)
        written.set()

    linger: float | None = None  # the protocol's deadline, once it has half-closed
    async with stream:
        try:
            async with trio.open_nursery() as nursery, to_writer:
                nursery.start_soon(write)
                while True:
                    now = trio.current_time()
                    action = protocol.next_action(now)
                    while (data := protocol.data_to_send()) is not None:
                        await to_writer.send(data)
                        protocol.sent(len(data), now)  # handed over: the channel is the bound
                    if type(action) is Receive:
                        size = min(action.max_bytes, READ_SIZE)
                        if linger is None:  # no deadline: no cancel scope to open
                            data = await stream.receive_some(size)
                        else:
                            with trio.move_on_at(linger) as scope:
                                data = await stream.receive_some(size)
                            if scope.cancelled_caught:
                                protocol.expired(trio.current_time())
                                continue
                        protocol.receive_data(data, trio.current_time())
                    elif action is YIELD:
                        await trio.lowlevel.checkpoint()
                    elif action is CHECK_UNREAD:
                        protocol.report_unread(unread(sock))
                    elif action is SEND_EOF:
                        assert isinstance(stream, trio.abc.HalfCloseableStream)
                        await to_writer.aclose()  # the echo goes out first
                        await written.wait()
                        await stream.send_eof()
                        protocol.eof_sent(trio.current_time())
                        linger = protocol.deadline.when
                    elif action is CLOSE:
                        if not protocol.clean:  # a protocol error: drop the rest
                            nursery.cancel_scope.cancel()
                        break
                    # PAUSED: what it waits for was handed to the writer above
        except* trio.BrokenResourceError:
            pass  # closing is all there is to do


async def main(
    host: str,
    port: int,
    mode: str,
    handler: Callable[[trio.SocketStream, str], Awaitable[None]] = handle,
) -> None:
    """Serve ``handler`` (this file's, or the tutorial peer's) with serve_tcp."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(
                trio.serve_tcp, functools.partial(handler, mode=mode), port, host=host, backlog=4096
            )
        )
        announce(host, listeners[0].socket.getsockname()[1], mode)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    trio.run(main, args.host, args.port, args.mode)
