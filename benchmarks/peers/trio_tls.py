"""The count protocol over TLS as a trio user would write it: serve_tcp, and
each connection wrapped in trio.SSLStream, its handshake in its own task.

The pump is trio (plain)'s own `handle`: a nursery per connection, the echo
handed to a writer task through a memory channel of QUEUED_READS buffers.
TLS cannot half-close, which the protocol is told; closing sends
close_notify.

    python benchmarks/peers/trio_tls.py --tls-cert CHAIN --tls-key KEY [--mode count]

``--tls-stream=bio`` is the variant the TLS benchmark compares it with: the
same server over `BioTLSStream`, a TLS stream written on trio's public API
(a SocketStream, a StrictFIFOLock) and the standard library's ssl.MemoryBIO,
whose receive_some returns every record one read of the socket brought, as
asyncio's TLS protocol does, where SSLStream.receive_some returns one record
(at most 16 KiB) per call, each call a trip through trio's scheduler.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import sys

import trio
from _common import parse_args, server_context
from trio_plain import handle, main

TRANSPORT_READ = 256 * 1024
"""How much BioTLSStream reads from the socket at once (asyncio's TLS
protocol reads 256 KiB)."""


class BioTLSStream(trio.abc.Stream):
    """A server-side TLS stream on ssl.MemoryBIO that drains every record a
    socket read brought into one receive_some.

    One reader task and one writer task at a time (as `handle` uses it);
    bytes leave in the order the TLS object produced them (a strict FIFO
    lock around the socket's send_all, as SSLStream does).
    """

    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext) -> None:
        self.transport_stream = transport
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._send_lock = trio.StrictFIFOLock()

    async def _flush(self) -> None:
        if data := self._outgoing.read():
            async with self._send_lock:
                await self.transport_stream.send_all(data)

    async def _refill(self) -> None:
        data = await self.transport_stream.receive_some(TRANSPORT_READ)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def do_handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._refill()
            except ssl.SSLError as error:
                raise trio.BrokenResourceError from error
        await self._flush()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or TRANSPORT_READ
        pieces: list[bytes] = []
        size = 0
        while True:
            try:
                while size < limit:
                    piece = self._tls.read(limit - size)
                    if not piece:
                        break  # the end of the stream
                    pieces.append(piece)
                    size += len(piece)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                pass  # close_notify: the end of the stream
            except ssl.SSLError as error:
                raise trio.BrokenResourceError from error
            else:
                if not pieces:
                    await trio.lowlevel.checkpoint()
                    return b""
            if pieces:
                await trio.lowlevel.checkpoint()  # every receive_some is one
                return b"".join(pieces)
            if self._incoming.eof:
                await trio.lowlevel.checkpoint()
                return b""
            await self._refill()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._tls.write(data)
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        try:
            with trio.move_on_after(1):
                with contextlib.suppress(ssl.SSLError):  # it waits for the peer's: not needed
                    self._tls.unwrap()  # writes close_notify
                await self._flush()
        except trio.BrokenResourceError:
            pass
        finally:
            await self.transport_stream.aclose()


TLSStream = trio.SSLStream[trio.SocketStream] | BioTLSStream


async def serve_tls(
    transport: trio.SocketStream, mode: str, context: ssl.SSLContext, bio: bool
) -> None:
    """Serve one connection: the handshake, then the protocol, then close_notify."""
    stream: TLSStream = (
        BioTLSStream(transport, context)
        if bio
        else trio.SSLStream(transport, context, server_side=True)
    )
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError:
        await trio.aclose_forcefully(stream)  # the handshake failed: closing is all there is
        return
    await handle(stream, mode)  # trio (plain)'s, which closes it


if __name__ == "__main__":
    bio = "--tls-stream=bio" in sys.argv
    if bio:
        sys.argv.remove("--tls-stream=bio")
    args = parse_args(__doc__.splitlines()[0])
    context = server_context(args)
    if context is None:
        raise SystemExit("trio_tls.py: --tls-cert and --tls-key are required")
    handler = functools.partial(serve_tls, context=context, bio=bio)
    trio.run(main, args.host, args.port, args.mode, handler)
