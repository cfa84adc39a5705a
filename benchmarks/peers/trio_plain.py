"""The count protocol as a trio user would write it: serve_tcp, SocketStream,
and a nursery per connection.

Each connection's task reads and sends the echo of each read to a writer
task through a memory channel of QUEUED_READS reads (about 64 MiB): past it
the reader waits, which is backpressure in trio's idiom. Nothing of
trio_echo's own server is used, only its protocol object.
"""

from __future__ import annotations

import functools

import trio
from _common import LINGER, QUEUED_READS, READ_SIZE, announce, parse_args

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


async def handle(stream: trio.SocketStream, mode: str) -> None:
    protocol = EchoProtocol(Mode(mode))
    to_writer, from_reader = trio.open_memory_channel[list[bytes]](QUEUED_READS)

    async def write() -> None:
        async with from_reader:
            async for pieces in from_reader:
                for piece in pieces:
                    await stream.send_all(piece)

    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write)
                async with to_writer:
                    while not protocol.reading_done:
                        data = await stream.receive_some(READ_SIZE)
                        await to_writer.send(protocol.receive_data(data))
            if mode == "count" and protocol.trailing:  # bytes came after it: linger
                await stream.send_eof()
                with trio.move_on_after(LINGER):
                    while await stream.receive_some(READ_SIZE):
                        pass
        except* (RemoteProtocolError, trio.BrokenResourceError):
            pass  # closing is all there is to do


async def main(host: str, port: int, mode: str) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(
                trio.serve_tcp, functools.partial(handle, mode=mode), port, host=host, backlog=4096
            )
        )
        announce(host, listeners[0].socket.getsockname()[1], mode)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    trio.run(main, args.host, args.port, args.mode)
