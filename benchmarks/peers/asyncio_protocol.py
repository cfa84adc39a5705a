"""The count protocol on asyncio's Protocol/Transport API (uvloop optional).

Flow control the asyncio way: the transport's write buffer has a high-water
mark of 64 MiB; above it asyncio calls pause_writing(), and the protocol
stops reading until resume_writing(). A count connection half-closes with
write_eof() once the payload is echoed, discards what follows, and closes
when the client does (or after a linger time).
"""

from __future__ import annotations

import asyncio

from _common import BUFFER_LIMIT, LINGER, announce, parse_args

from trio_echo import EchoProtocol, Mode, RemoteProtocolError


class EchoServerProtocol(asyncio.Protocol):
    def __init__(self, mode: str) -> None:
        self.protocol = EchoProtocol(Mode(mode))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=BUFFER_LIMIT)

    def data_received(self, data: bytes) -> None:
        if self.protocol.reading_done:
            return  # after a count message: discard
        try:
            pieces = self.protocol.receive_data(data)
        except RemoteProtocolError:
            self.transport.abort()
            return
        self.transport.writelines(pieces)
        if self.protocol.reading_done:  # a count message is complete
            if not self.protocol.trailing:
                self.transport.close()  # after the echo is written
                return
            self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER, self.transport.close)

    def eof_received(self) -> bool:
        if not self.protocol.reading_done:
            try:
                pieces = self.protocol.receive_data(b"")
            except RemoteProtocolError:
                self.transport.abort()
                return False
            self.transport.writelines(pieces)
        return False  # close once the buffered echo is written

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()


async def serve(host: str, port: int, mode: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EchoServerProtocol(mode), host, port, backlog=4096)
    announce(host, server.sockets[0].getsockname()[1], mode)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    if args.uvloop:
        import uvloop

        uvloop.run(serve(args.host, args.port, args.mode))
    else:
        asyncio.run(serve(args.host, args.port, args.mode))
