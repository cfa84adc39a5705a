"""The count protocol on asyncio streams (StreamReader/StreamWriter).

One coroutine per connection reads, echoes and drains. The writer's
high-water mark is 64 MiB, so drain() waits only when that much echo is
unsent: reading goes on ahead of a client that sends a whole message before
reading, and stops (backpressure) past the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from _common import BUFFER_LIMIT, LINGER, READ_SIZE, announce, parse_args

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str) -> None:
    writer.transport.set_write_buffer_limits(high=BUFFER_LIMIT)
    protocol = EchoProtocol(Mode(mode))
    try:
        while True:
            data = await reader.read(READ_SIZE)
            pieces = protocol.receive_data(data)
            writer.writelines(pieces)
            await writer.drain()
            if protocol.reading_done:
                break
        if mode == "count" and protocol.trailing:
            await linger(reader, writer)
    except (RemoteProtocolError, ConnectionError):
        writer.transport.abort()
    finally:
        await close(writer)


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes came after a count message: half-close, and discard what comes."""
    writer.write_eof()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER):
            while await reader.read(READ_SIZE):
                pass


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str], Awaitable[None]]


async def serve(host: str, port: int, mode: str, handler: Handler = handle) -> None:
    server = await asyncio.start_server(
        lambda r, w: handler(r, w, mode), host, port, backlog=4096, limit=READ_SIZE
    )
    announce(host, server.sockets[0].getsockname()[1], mode)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port, args.mode))
