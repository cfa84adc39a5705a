"""The count protocol on asyncio streams (StreamReader/StreamWriter).

One coroutine per connection does what the protocol says: reads, writes the
echo and drains. The writer's high-water mark is 64 MiB, so drain() waits
only when that much echo is unsent: reading goes on ahead of a client that
sends a whole message before reading, and stops (backpressure) past the
bound.

With ``--tls-cert``/``--tls-key`` it serves TLS (``ssl=`` on start_server);
a TLS transport cannot half-close, which the protocol is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

from _common import BUFFER_LIMIT, READ_SIZE, announce, parse_args, server_context, unread

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, YIELD, EchoProtocol, Mode, Receive

Send = Callable[[bytes], Awaitable[None]]


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str) -> None:
    writer.transport.set_write_buffer_limits(high=BUFFER_LIMIT)
    protocol = EchoProtocol(
        Mode(mode), now=asyncio.get_running_loop().time(), can_half_close=writer.can_write_eof()
    )

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    try:
        await pump(protocol, reader, writer, send)
        if not protocol.clean:
            writer.transport.abort()
    except ConnectionError:
        writer.transport.abort()
    finally:
        await close(writer)


async def pump(
    protocol: EchoProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    send: Send,
    flush: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Do what the protocol says until it says CLOSE.

    ``send`` takes the echo (bytes it took count as sent); ``flush``, if
    given, waits until what it took is written, before the half-close.
    """
    loop = asyncio.get_running_loop()
    linger = None  # the protocol's deadline, once it has half-closed
    while True:
        now = loop.time()
        action = protocol.next_action(now)
        while (data := protocol.data_to_send()) is not None:
            await send(data)
            protocol.sent(len(data), now)
        if type(action) is Receive:
            size = min(action.max_bytes, READ_SIZE)
            if linger is None:  # no deadline: no timeout to arm
                data = await reader.read(size)
            else:
                try:
                    async with asyncio.timeout_at(linger):
                        data = await reader.read(size)
                except TimeoutError:
                    protocol.expired(loop.time())
                    continue
            protocol.receive_data(data, loop.time())
        elif action is YIELD:
            await asyncio.sleep(0)
        elif action is CHECK_UNREAD:
            protocol.report_unread(unread(writer.get_extra_info("socket")))
        elif action is SEND_EOF:
            if flush is not None:
                await flush()  # the echo goes out first
            writer.write_eof()
            protocol.eof_sent(loop.time())
            linger = protocol.deadline.when
        elif action is CLOSE:
            return
        # PAUSED: what it waits for was sent above


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


async def serve(
    host: str, port: int, mode: str, handler: Handler = handle, tls: ssl.SSLContext | None = None
) -> None:
    server = await asyncio.start_server(
        lambda r, w: handler(r, w, mode), host, port, backlog=4096, limit=READ_SIZE, ssl=tls
    )
    announce(host, server.sockets[0].getsockname()[1], mode)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port, args.mode, tls=server_context(args)))
