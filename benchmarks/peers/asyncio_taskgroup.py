"""The count protocol on asyncio with structured concurrency: a TaskGroup per
connection (Python 3.11), a reader and a writer task in it.

The reader puts the echo of each read on an asyncio.Queue of QUEUED_READS
reads (about 64 MiB); past it the reader waits (backpressure), and the
writer drains the transport after each write.
"""

from __future__ import annotations

import asyncio

from _common import QUEUED_READS, READ_SIZE, parse_args
from asyncio_streams import close, linger, serve

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
        if mode == "count" and protocol.trailing:
            await linger(reader, writer)
    except* (RemoteProtocolError, ConnectionError):
        writer.transport.abort()
    finally:
        await close(writer)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port, args.mode, handle))
