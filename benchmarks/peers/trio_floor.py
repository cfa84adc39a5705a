"""The lab floor: what trio itself costs to serve a connection, and nothing more.

A calibration for benchmarks/floor.py, not a conforming server, and not in
the comparison (benchmarks/servers.py): the least a trio program does to
serve count and echo. Raw non-blocking sockets and
``trio.lowlevel.wait_readable``/``wait_writable`` (no ``SocketStream``, no
``serve_tcp``); a task per connection in the server's nursery, which opens a
nursery of its own and serves the connection in a child task, as trio_echo
does; the count header found with ``bytes.find`` and read with ``int``;
each read sent back before the next read. No ``EchoProtocol``, no bounds, no
timeouts, no log, no half-close: the count connection closes once the
payload is echoed, and a malformed header just closes it.

It differs from the comparison's trio (tutorial) row, which reads then
sends too, but through ``serve_tcp`` and ``SocketStream`` and with the
shared protocol object.

Like trio's own socket calls, it does not run unboundedly without
yielding: a task that found its socket ready ``READY_BEFORE_CHECKPOINT``
times in a row (the accept loop likewise) passes a checkpoint, so a fast
stream cannot starve the other connections.

Known failure, on purpose: a client that sends a whole large message
before it reads any echo deadlocks it (the send waits for the client to
read, the client waits to finish sending), the conformance suite's
send-everything-then-read case; benchmarks/tests/test_harness.py pins it.

Run: ``python benchmarks/peers/trio_floor.py --port 0 --mode count``.
"""

from __future__ import annotations

import errno
import socket

import trio
from _common import READ_SIZE, announce, parse_args

READY_BEFORE_CHECKPOINT = 16
"""Socket calls that need not wait, in a row, before a task yields anyway."""

OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Send ``data``, waiting for room whenever the kernel takes no more."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]


async def serve(sock: socket.socket, mode: str) -> None:
    """Serve one connection: read, send the echo, read again."""
    counting = mode == "count"
    header = b""
    remaining = -1  # count: payload bytes still to echo, once the header is read
    ready = 0
    while True:
        try:
            data = sock.recv(READ_SIZE)
        except BlockingIOError:
            ready = 0
            await trio.lowlevel.wait_readable(sock)
            continue
        if not data:
            return
        ready += 1
        if ready >= READY_BEFORE_CHECKPOINT:
            ready = 0
            await trio.lowlevel.checkpoint()
        if counting:
            if remaining < 0:
                header += data
                space = header.find(b" ")
                if space < 0:
                    continue
                remaining = int(header[:space])  # ValueError: a malformed header
                data = header[space + 1 :]
            data = data[:remaining]
            remaining -= len(data)
        if data:
            await send_all(sock, data)
        if counting and remaining == 0:
            return


async def connection(sock: socket.socket, mode: str) -> None:
    """The connection's task: a nursery of its own, the connection served in it."""
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, sock, mode)
    except* (OSError, ValueError):
        pass  # a reset, or a malformed header: closing is all there is to do
    finally:
        sock.close()


async def main(host: str, port: int, mode: str) -> None:
    listener = socket.create_server((host, port), backlog=4096)
    listener.setblocking(False)
    announce(host, listener.getsockname()[1], mode)
    ready = 0
    async with trio.open_nursery() as nursery:
        while True:
            try:
                sock, _address = listener.accept()
            except BlockingIOError:
                ready = 0
                await trio.lowlevel.wait_readable(listener)
                continue
            except OSError as error:
                if error.errno not in OUT_OF_FILES:
                    raise
                await trio.sleep(0.1)  # as trio's serve_listeners does
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(connection, sock, mode)
            ready += 1
            if ready >= READY_BEFORE_CHECKPOINT:
                ready = 0
                await trio.lowlevel.checkpoint()


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], modes=("count", "echo"))
    trio.run(main, args.host, args.port, args.mode)
