"""The count protocol as trio's tutorial writes its echo server: serve_tcp,
and one task per connection that reads, then sends.

The tutorial's handler is ``async for data in server_stream: await
server_stream.send_all(data)`` (trio tutorial, "An echo server"). This peer
keeps that shape around the protocol: it reads, hands the bytes to
EchoProtocol, and sends what the protocol answers before it reads again.
It is as short as trio gets, and it deadlocks with a client that sends a
whole large message before it reads any of the echo (both sides end up
blocked in a send once the kernel's buffers fill): the conforming trio peer,
trio_plain.py, adds a writer task for that case.
"""

from __future__ import annotations

import trio
from _common import READ_SIZE, parse_args, unread
from trio_plain import main

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, YIELD, EchoProtocol, Mode, Receive


async def handle(stream: trio.SocketStream, mode: str) -> None:
    protocol = EchoProtocol(Mode(mode), now=trio.current_time())
    linger: float | None = None  # the protocol's deadline, once it has half-closed
    async with stream:
        try:
            while True:
                now = trio.current_time()
                action = protocol.next_action(now)
                while (data := protocol.data_to_send()) is not None:
                    await stream.send_all(data)  # the reading waits meanwhile
                    protocol.sent(len(data), trio.current_time())
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
                    protocol.report_unread(unread(stream.socket))
                elif action is SEND_EOF:
                    await stream.send_eof()
                    protocol.eof_sent(trio.current_time())
                    linger = protocol.deadline.when
                elif action is CLOSE:
                    break
                # PAUSED: what it waits for was sent above
        except trio.BrokenResourceError:
            pass  # closing is all there is to do


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    trio.run(main, args.host, args.port, args.mode, handle)
