"""The count protocol on asyncio with structured concurrency: a TaskGroup per
connection (Python 3.11), a reader and a writer task in it.

The reader puts the echo of each read on an asyncio.Queue of QUEUED_READS
reads (about 64 MiB); past it the reader waits (backpressure), and the
writer drains the transport after each write.
"""

from __future__ import annotations

import asyncio
import contextlib

from _common import LINGER, QUEUED_READS, READ_SIZE, announce, parse_args

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str) -> None:
    protocol = EchoProtocol(Mode(mode))
    queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(QUEUED_READS)

    async def write() -> None:
        while (pieces := await queue.get()) is not None:
            writer.writelines(pieces)
            await writer.drain()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(write())
            while not protocol.reading_done:
                data = await reader.read(READ_SIZE)
                await queue.put(protocol.receive_data(data))
            await queue.put(None)
        if mode == "count" and protocol.trailing:  # bytes came after it: linger
            writer.write_eof()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LINGER):
                    while await reader.read(READ_SIZE):
                        pass
    except* (RemoteProtocolError, ConnectionError):
        writer.transport.abort()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve(host: str, port: int, mode: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, mode), host, port, backlog=4096, limit=READ_SIZE
    )
    announce(host, server.sockets[0].getsockname()[1], mode)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port, args.mode))
