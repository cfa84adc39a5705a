"""The count protocol on AnyIO, on its asyncio backend or its trio backend
(--backend): create_tcp_listener, a task group per connection.

Each connection's task does what the protocol says, and sends the echo to a
writer task through a memory object stream of QUEUED_READS buffers (about
64 MiB): past it the reader waits (backpressure).
"""

from __future__ import annotations

import functools

import anyio
import anyio.abc
import anyio.lowlevel
from _common import QUEUED_READS, READ_SIZE, announce, parse_args, unread

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, YIELD, EchoProtocol, Mode, Receive


async def receive(client: anyio.abc.SocketStream, max_bytes: int) -> bytes:
    try:
        return await client.receive(max_bytes)
    except anyio.EndOfStream:
        return b""


async def handle(client: anyio.abc.SocketStream, mode: str) -> None:
    protocol = EchoProtocol(Mode(mode), now=anyio.current_time())
    to_writer, from_reader = anyio.create_memory_object_stream[bytes](QUEUED_READS)
    written = anyio.Event()

    async def write() -> None:
        async with from_reader:
            async for data in from_reader:
                await client.send(data)
        written.set()

    linger: float | None = None  # the protocol's deadline, once it has half-closed
    async with client:
        try:
            async with anyio.create_task_group() as group, to_writer:
                group.start_soon(write)
                while True:
                    now = anyio.current_time()
                    action = protocol.next_action(now)
                    while (data := protocol.data_to_send()) is not None:
                        await to_writer.send(data)
                        protocol.sent(len(data), now)  # handed over: the stream is the bound
                    if type(action) is Receive:
                        size = min(action.max_bytes, READ_SIZE)
                        if linger is None:  # no deadline: no cancel scope to open
                            data = await receive(client, size)
                        else:
                            with anyio.CancelScope(deadline=linger) as scope:
                                data = await receive(client, size)
                            if scope.cancelled_caught:
                                protocol.expired(anyio.current_time())
                                continue
                        protocol.receive_data(data, anyio.current_time())
                    elif action is YIELD:
                        await anyio.lowlevel.checkpoint()
                    elif action is CHECK_UNREAD:
                        socket = client.extra(anyio.abc.SocketAttribute.raw_socket)
                        protocol.report_unread(unread(socket))
                    elif action is SEND_EOF:
                        await to_writer.aclose()  # the echo goes out first
                        await written.wait()
                        await client.send_eof()
                        protocol.eof_sent(anyio.current_time())
                        linger = protocol.deadline.when
                    elif action is CLOSE:
                        if not protocol.clean:  # a protocol error: drop the rest
                            group.cancel_scope.cancel()
                        break
                    # PAUSED: what it waits for was handed to the writer above
        except* (anyio.BrokenResourceError, OSError):
            pass  # closing is all there is to do


async def main(host: str, port: int, mode: str) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port, backlog=4096)
    bound = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    announce(host, bound, mode)
    await listener.serve(functools.partial(handle, mode=mode))


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    anyio.run(main, args.host, args.port, args.mode, backend=args.backend)
