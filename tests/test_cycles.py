"""A connection's ending leaves no reference cycle of the server's.

A connection that ends in an exception (a reset; a failed TLS handshake)
must be freed by reference counting as soon as it ends: what waits for the
cyclic collector waits for its next full collection, outside the memory
budget. Each test ends connections with the collector off, then collects
and looks at what only the collector would have freed.
"""

from __future__ import annotations

import gc
import socket
import struct
import types
from collections.abc import Iterator

import pytest
import trio

from tests.support.streams import wait_until
from tests.support.tls import TLSFiles
from trio_echo import EchoServer, ServerConfig, ServerTLS, TLSFiles as ServerFiles, open_listeners

CONNECTIONS = 100

TLS_RECORD_HEADER = bytes.fromhex("1603010200")
"""The first bytes of a TLS handshake record, whose body never comes."""


@pytest.fixture
def collector_off() -> Iterator[list[object]]:
    """Turn the cyclic collector off; yield what it finds afterwards."""
    gc.collect()
    gc.disable()
    found: list[object] = []
    try:
        yield found
    finally:
        gc.enable()
        gc.garbage.clear()


def collect_garbage(found: list[object]) -> None:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def the_servers(garbage: list[object]) -> list[object]:
    """What of ``garbage`` is the server's: its objects, frames, exceptions."""
    return [
        thing
        for thing in garbage
        if type(thing).__module__.startswith("trio_echo")
        or isinstance(thing, types.FrameType | BaseException)
    ]


async def end_each_with_a_reset(server: EchoServer, port: int, first: bytes) -> None:
    """Connect, send ``first``, and reset once the server serves it; one at a time."""
    for _ in range(CONNECTIONS):
        client = trio.socket.socket()
        await client.connect(("127.0.0.1", port))
        await client.send(first)
        await wait_until(lambda: server.connections == 1)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset: the server's next read fails
        await wait_until(lambda: server.connections == 0)


async def test_a_reset_mid_message_leaves_nothing_for_the_collector(
    collector_off: list[object],
) -> None:
    async with trio.open_nursery() as nursery:
        server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0))
        [address] = await nursery.start(server.serve)
        await end_each_with_a_reset(server, address.port, b"100 abc")
        server.abort()
    collect_garbage(collector_off)
    assert the_servers(collector_off) == []


async def end_tls_handshakes_with_a_reset(tls_files: TLSFiles, found: list[object]) -> None:
    tls = ServerTLS(ServerFiles(tls_files.cert, tls_files.key))
    async with trio.open_nursery() as nursery:
        server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0), tls=tls)
        [address] = await nursery.start(server.serve)
        await end_each_with_a_reset(server, address.port, TLS_RECORD_HEADER)
        server.abort()
    collect_garbage(found)


async def test_a_failed_handshake_leaves_no_frame_or_exception_for_the_collector(
    collector_off: list[object], tls_files: TLSFiles
) -> None:
    await end_tls_handshakes_with_a_reset(tls_files, collector_off)
    assert [
        thing for thing in collector_off if isinstance(thing, types.FrameType | BaseException)
    ] == []


@pytest.mark.xfail(
    strict=True,
    reason="trio's SSLStream holds itself (its handshake runs through a callable bound to it,"
    " trio/_ssl.py: self._handshook = _Once(self._do_handshake)), and with it the stream it"
    " wraps: every TLS connection waits for the cyclic collector, which trio_echo cannot change"
    " without reaching into trio's internals",
)
async def test_a_failed_handshake_leaves_nothing_of_the_servers_for_the_collector(
    collector_off: list[object], tls_files: TLSFiles
) -> None:
    await end_tls_handshakes_with_a_reset(tls_files, collector_off)
    assert the_servers(collector_off) == []
