"""The count protocol on asyncio's Protocol/Transport API (uvloop optional).

Flow control the asyncio way: the transport's write buffer has a high-water
mark of 64 MiB; above it asyncio calls pause_writing(), and the protocol
stops reading until resume_writing(). Each callback feeds the protocol
object and does what it says, in a loop, until it says to read (the next
data_received) or to close; the transport orders write_eof() and close()
after the echo it buffers.

With ``--tls-cert``/``--tls-key`` it serves TLS (``ssl=`` on create_server,
asyncio's or uvloop's own TLS protocol underneath); a TLS transport cannot
half-close, which the protocol is told.
"""

from __future__ import annotations

import asyncio
import ssl

from _common import BUFFER_LIMIT, announce, parse_args, server_context, unread

from trio_echo import CHECK_UNREAD, CLOSE, SEND_EOF, EchoProtocol, Mode, Receive


class EchoServerProtocol(asyncio.Protocol):
    def __init__(self, mode: str, *, can_half_close: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.protocol = EchoProtocol(
            Mode(mode), now=self.loop.time(), can_half_close=can_half_close
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=BUFFER_LIMIT)

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data, self.loop.time())
        self.pump()

    def eof_received(self) -> bool:
        if self.transport.is_closing():
            return False  # TLS: asyncio's SSL protocol still says so after close()
        self.protocol.receive_data(b"", self.loop.time())
        self.pump()
        return True  # the pump closes

    def pump(self) -> None:
        """Do what the protocol says until it waits for the peer.

        On YIELD it loops on: a callback frames the one read the transport
        made, as asyncio protocols do.
        """
        protocol, transport = self.protocol, self.transport
        while True:
            now = self.loop.time()
            action = protocol.next_action(now)
            while (data := protocol.data_to_send()) is not None:
                transport.write(data)
                protocol.sent(len(data), now)  # buffered: the write buffer is the bound
            if type(action) is Receive:
                return  # the next data_received (or eof_received) brings it
            if action is CHECK_UNREAD:
                protocol.report_unread(unread(transport.get_extra_info("socket")))
            elif action is SEND_EOF:
                transport.write_eof()
                protocol.eof_sent(self.loop.time())
                self.loop.call_at(protocol.deadline.when, self.expire)
            elif action is CLOSE:
                if protocol.clean:
                    transport.close()  # after the echo is written
                else:
                    transport.abort()
                return

    def expire(self) -> None:
        self.protocol.expired(self.loop.time())
        self.pump()

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()


async def serve(host: str, port: int, mode: str, tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: EchoServerProtocol(mode, can_half_close=tls is None),
        host,
        port,
        backlog=4096,
        ssl=tls,
    )
    announce(host, server.sockets[0].getsockname()[1], mode)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.host, args.port, args.mode, server_context(args)))
    else:
        asyncio.run(serve(args.host, args.port, args.mode, server_context(args)))
