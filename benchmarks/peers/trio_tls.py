"""The count protocol over TLS as a trio user would write it: serve_tcp, and
each connection wrapped in trio.SSLStream, its handshake in its own task.

The pump is trio (plain)'s: a nursery per connection, the echo handed to a
writer task through a memory channel of QUEUED_READS buffers. TLS cannot
half-close, which the protocol is told; closing sends close_notify.

    python benchmarks/peers/trio_tls.py --tls-cert CHAIN --tls-key KEY [--mode count]

``--drain-records`` is the variant the TLS benchmark compares it with: the
same server, but each read from the stream takes every TLS record that one
read from the socket brought (see `DrainingReceive`), instead of one.
"""

from __future__ import annotations

import functools
import math
import ssl

import trio
from _common import QUEUED_READS, READ_SIZE, parse_args, server_context, unread
from trio_plain import main

from trio_echo import CHECK_UNREAD, CLOSE, YIELD, EchoProtocol, Mode, Receive


async def handle(stream: trio.SSLStream[trio.SocketStream], mode: str, drain: bool) -> None:
    protocol = EchoProtocol(Mode(mode), now=trio.current_time(), can_half_close=False)
    reader = stream
    to_writer, from_reader = trio.open_memory_channel[bytes](QUEUED_READS)

    async def write() -> None:
        async with from_reader:
            async for data in from_reader:
                await stream.send_all(data)

    linger = math.inf  # the protocol's deadline, once it has stopped reading
    async with trio.open_nursery() as nursery, to_writer:
        nursery.start_soon(write)
        while True:
            now = trio.current_time()
            action = protocol.next_action(now)
            while (data := protocol.data_to_send()) is not None:
                await to_writer.send(data)
                protocol.sent(len(data), now)  # handed over: the channel is the bound
            if type(action) is Receive:
                with trio.move_on_at(linger):
                    data = await reader.receive_some(min(action.max_bytes, READ_SIZE))
                    protocol.receive_data(data, trio.current_time())
                    continue
                protocol.expired(trio.current_time())
            elif action is YIELD:
                await trio.lowlevel.checkpoint()
            elif action is CHECK_UNREAD:
                protocol.report_unread(unread(stream.transport_stream.socket))
            elif action is CLOSE:
                if not protocol.clean:  # a protocol error: drop the rest
                    nursery.cancel_scope.cancel()
                break
            # PAUSED: what it waits for was handed to the writer above
            # (SEND_EOF never comes: the protocol knows TLS cannot half-close)


async def serve_tls(
    transport: trio.SocketStream, mode: str, context: ssl.SSLContext, drain: bool
) -> None:
    """Serve one connection: the handshake, then the protocol, then close_notify."""
    stream = trio.SSLStream(transport, context, server_side=True)
    async with stream:
        try:
            await stream.do_handshake()
            await handle(stream, mode, drain)
        except* trio.BrokenResourceError:
            pass  # the peer went away, or the handshake failed: closing is all there is


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    parser_drain = "--drain-records" in __import__("sys").argv
    context = server_context(args)
    if context is None:
        raise SystemExit("trio_tls.py: --tls-cert and --tls-key are required")
    handler = functools.partial(serve_tls, context=context, drain=parser_drain)
    trio.run(main, args.host, args.port, args.mode, handler)
