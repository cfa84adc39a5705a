"""Servers on port 0, and reading what they send: over trio streams and over
blocking sockets."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
from collections.abc import Callable
from pathlib import Path

import trio

from trio_echo import EchoServer, ServerConfig, open_listeners


async def start_server(
    nursery: trio.Nursery, host: str = "127.0.0.1", **settings: object
) -> tuple[EchoServer, int]:
    """Start an EchoServer on a free port; return it and its port."""
    server = EchoServer(ServerConfig(**settings), open_listeners(host, 0))  # type: ignore[arg-type]
    addresses = await nursery.start(server.serve)
    return server, addresses[0].port


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` until it holds (state another process or socket changes)."""
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110  (nothing here to wait on but the state)
            await trio.sleep(0.01)


async def receive_all(stream: trio.abc.ReceiveStream, *, until_broken: bool = False) -> bytes:
    """Every byte ``stream`` receives, to its end.

    Args:
        stream: What to read.
        until_broken: A broken stream (a reset) ends it too, instead of raising
            `trio.BrokenResourceError`: for a peer that may close with unread
            bytes.
    """
    received = bytearray()
    try:
        while data := await stream.receive_some():
            received += data
    except trio.BrokenResourceError:
        if not until_broken:
            raise
    return bytes(received)


def connect(where: int | str | Path, timeout: float = 10) -> socket.socket:
    """A blocking socket connected to 127.0.0.1:PORT, or to a unix socket's path."""
    if isinstance(where, int):
        return socket.create_connection(("127.0.0.1", where), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(where))
    except BaseException:
        sock.close()
        raise
    return sock


def round_trip(where: int | str | Path, payload: bytes) -> bytes:
    """One count message over a blocking socket (TCP port or unix path); the echo back."""
    with connect(where) as sock:
        sock.sendall(b"%d " % len(payload) + payload)
        received = b""
        while data := sock.recv(65536):
            received += data
    return received


def wait_until_acknowledged(sock: socket.socket, seconds: float = 10.0) -> None:
    """Wait until the peer's kernel has acknowledged every byte ``sock`` sent:
    they are in its receive queue, whether or not the peer process runs."""
    deadline = time.monotonic() + seconds
    while struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0]:
        assert time.monotonic() < deadline, "the peer's kernel acknowledged nothing"
        time.sleep(0.001)


class OneWayStream(trio.abc.Stream):
    """A stream that cannot half-close; every call is a checkpoint.

    Args:
        received: What each `receive_some` returns (``b""``: the end).
        endless_close: Whether a graceful close never ends (a peer that
            never says goodbye).
    """

    def __init__(self, received: bytes = b"", *, endless_close: bool = False) -> None:
        self.received = received
        self.endless_close = endless_close
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.received

    async def aclose(self) -> None:
        try:
            if self.endless_close:
                await trio.sleep_forever()
            await trio.lowlevel.checkpoint()
        finally:
            self.closed = True


class _Pipe:
    """One direction of `buffered_stream_pair`: at most ``capacity`` bytes in flight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer = bytearray()
        self.ended = False  # the sender closed: the end of the stream
        self.broken = False  # the receiver closed: sending fails
        self.changed = trio.lowlevel.ParkingLot()


class _PipeSendStream(trio.abc.SendStream):
    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        pipe, view = self._pipe, memoryview(data)
        if pipe.ended:
            raise trio.ClosedResourceError
        await trio.lowlevel.checkpoint()
        while view:
            while len(pipe.buffer) >= pipe.capacity and not pipe.broken:
                await pipe.changed.park()
            if pipe.broken:
                raise trio.BrokenResourceError("the peer closed")
            room = pipe.capacity - len(pipe.buffer)
            pipe.buffer += view[:room]
            view = view[room:]
            pipe.changed.unpark_all()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._pipe.ended = True
        self._pipe.changed.unpark_all()
        await trio.lowlevel.checkpoint()


class _PipeReceiveStream(trio.abc.ReceiveStream):
    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        pipe = self._pipe
        await trio.lowlevel.checkpoint()
        while not pipe.buffer and not pipe.ended:
            await pipe.changed.park()
        size = len(pipe.buffer) if max_bytes is None else min(max_bytes, len(pipe.buffer))
        data = bytes(pipe.buffer[:size])
        del pipe.buffer[:size]
        pipe.changed.unpark_all()
        return data

    async def aclose(self) -> None:
        self._pipe.broken = True
        self._pipe.changed.unpark_all()
        await trio.lowlevel.checkpoint()


def buffered_stream_pair(capacity: int) -> tuple[trio.StapledStream, trio.StapledStream]:
    """Two connected streams, each direction holding at most ``capacity`` bytes in flight.

    Like a socket's buffers: a sender waits while its peer's are full. Each
    end can half-close (`send_eof`), as TCP can.
    """
    there, back = _Pipe(capacity), _Pipe(capacity)
    client = trio.StapledStream(_PipeSendStream(there), _PipeReceiveStream(back))
    server = trio.StapledStream(_PipeSendStream(back), _PipeReceiveStream(there))
    return client, server
