"""The count protocol on asyncio with structured concurrency: a TaskGroup per
connection (Python 3.11), a reader and a writer task in it.

The reader does what the protocol says, and puts the echo on an
asyncio.Queue of QUEUED_READS buffers (about 64 MiB); past it the reader
waits (backpressure), and the writer drains the transport after each write.
"""

from __future__ import annotations

import asyncio

from _common import QUEUED_READS, parse_args
from asyncio_streams import close, pump, serve

from trio_echo import EchoProtocol, Mode


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str) -> None:
    protocol = EchoProtocol(Mode(mode), now=asyncio.get_running_loop().time())
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_READS)

    async def write() -> None:
        while (data := await queue.get()) is not None:
            writer.write(data)
            await writer.drain()

    try:
        async with asyncio.TaskGroup() as group:
            writing = group.create_task(write())

            async def flush() -> None:
                await queue.put(None)
                await writing

            await pump(protocol, reader, writer, queue.put, flush)
            if protocol.clean:
                await flush()
            else:  # a protocol error: drop the rest
                writing.cancel()
                writer.transport.abort()
    except* ConnectionError:
        writer.transport.abort()
    finally:
        await close(writer)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    asyncio.run(serve(args.host, args.port, args.mode, handle))
