"""The count protocol on AnyIO, on its asyncio backend or its trio backend
(--backend): create_tcp_listener, a task group per connection.

The reader sends the echo of each read to a writer task through a memory
object stream of QUEUED_READS reads (about 64 MiB): past it the reader
waits (backpressure).
"""

from __future__ import annotations

import functools

import anyio
import anyio.abc
from _common import LINGER, QUEUED_READS, READ_SIZE, announce, parse_args

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


async def receive(client: anyio.abc.SocketStream) -> bytes:
    try:
        return await client.receive(READ_SIZE)
    except anyio.EndOfStream:
        return b""


async def handle(client: anyio.abc.SocketStream, mode: str) -> None:
    protocol = EchoProtocol(Mode(mode))
    to_writer, from_reader = anyio.create_memory_object_stream[list[bytes]](QUEUED_READS)

    async def write() -> None:
        async with from_reader:
            async for pieces in from_reader:
                for piece in pieces:
                    await client.send(piece)

    async with client:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(write)
                async with to_writer:
                    while not protocol.reading_done:
                        await to_writer.send(protocol.receive_data(await receive(client)))
            if mode == "count" and protocol.trailing:  # bytes came after it: linger
                await client.send_eof()
                with anyio.move_on_after(LINGER):
                    while await receive(client):
                        pass
        except* (RemoteProtocolError, anyio.BrokenResourceError, OSError):
            pass  # closing is all there is to do


async def main(host: str, port: int, mode: str) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, backlog=4096)
    bound = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    announce(host, bound, mode)
    await listener.serve(functools.partial(handle, mode=mode))


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    anyio.run(main, args.host, args.port, args.mode, backend=args.backend)
