"""The transports: what each kind of stream answers the pump (half-close,
the largest read, what is ready now, whether closing would reset, how it
closes), the one chosen for each stream, and the debug tracing that wraps
any of them."""

from __future__ import annotations

import logging
import socket
import ssl

import pytest
import trio
import trio.testing
import trustme

from tests.support.streams import OneWayStream
from trio_echo import EchoProtocol, Mode, Unread
from trio_echo.protocol import (
    READ_SIZE_MAX,
)
from trio_echo.server._listeners import accepted_stream
from trio_echo.server._socket_stream import FastSocketStream
from trio_echo.server._transport import (
    TLS_RECORD_SIZE,
    NowaitTransport,
    StreamTransport,
    TLSSocketTransport,
    TLSTransport,
    TracingTransport,
    Transport,
    transport_for,
)


def socket_pair() -> tuple[FastSocketStream, FastSocketStream]:
    """A loopback TCP connection: the client's stream, and the server's as it builds it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return FastSocketStream(client), accepted_stream(server)


def tls_contexts(authority: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    return server_context, client_context


# -- Which transport ------------------------------------------------------------


async def test_each_kind_of_stream_gets_its_transport_once_per_type(
    tls_authority: trustme.CA,
) -> None:
    client, server = socket_pair()
    memory_client, memory_server = trio.testing.memory_stream_pair()
    server_context, _ = tls_contexts(tls_authority)
    assert type(transport_for(server)) is NowaitTransport
    assert transport_for(server) is transport_for(client)  # one serves every such stream
    assert type(transport_for(memory_server)) is StreamTransport
    assert type(transport_for(OneWayStream(b"x", endless_close=True))) is StreamTransport
    over_socket = trio.SSLStream(server, server_context, server_side=True)
    over_memory = trio.SSLStream(memory_server, server_context, server_side=True)
    assert type(transport_for(over_socket)) is TLSSocketTransport
    assert type(transport_for(over_memory)) is TLSTransport
    for stream in (client, server, memory_client, memory_server):
        await stream.aclose()


def test_a_socket_transports_calls_are_its_streams_own() -> None:
    # No wrapper between the pump and the socket's calls made per message.
    transport = NowaitTransport(FastSocketStream)
    assert transport.receive_nowait is FastSocketStream.receive_nowait
    assert transport.send_nowait is FastSocketStream.send_nowait
    assert transport.drained is FastSocketStream.drained
    assert transport.wait_receivable is FastSocketStream.wait_receivable


# -- What each answers ----------------------------------------------------------


def test_what_each_transport_says_of_its_kind(tls_authority: trustme.CA) -> None:
    transports: list[Transport[trio.abc.Stream]] = [
        NowaitTransport(FastSocketStream),
        StreamTransport(can_half_close=True),
        StreamTransport(can_half_close=False),
        TLSTransport(),
        TLSSocketTransport(),
    ]
    answers = [(t.can_half_close, t.max_read, t.handshake) for t in transports]
    assert answers == [
        (True, READ_SIZE_MAX, False),
        (True, READ_SIZE_MAX, False),
        (False, READ_SIZE_MAX, False),
        (False, TLS_RECORD_SIZE, True),  # one TLS record at most
        (False, TLS_RECORD_SIZE, True),
    ]
    assert transport_for(trio.testing.memory_stream_pair()[0]).can_half_close
    assert not transport_for(OneWayStream(b"x", endless_close=True)).can_half_close


async def test_a_socket_transport_reads_and_sends_what_is_ready_without_waiting() -> None:
    client, server = socket_pair()
    transport = transport_for(server)
    with trio.testing.assert_no_checkpoints():
        assert transport.receive_nowait(server, 100) is None  # nothing yet
        assert transport.drained(server)  # so the next read waits first
    await client.send_all(b"hello")
    await transport.wait_receivable(server)
    with trio.testing.assert_no_checkpoints():
        assert transport.receive_nowait(server, 100) == b"hello"
        assert transport.send_nowait(server, b"back") == 4
    assert await client.receive_some(100) == b"back"
    assert await transport.receive(server, 100) is None  # waits with wait_receivable instead
    await client.aclose()
    await server.aclose()


async def test_any_stream_is_read_and_sent_through_its_async_calls() -> None:
    client, server = trio.testing.memory_stream_pair()
    transport = transport_for(server)
    await client.send_all(b"hello")
    assert not transport.drained(server)  # a read waits while it reads
    assert transport.receive_nowait(server, 100) is None  # nothing known without waiting
    assert await transport.receive(server, 100) == b"hello"
    assert transport.send_nowait(server, b"back") == 0  # every send may wait
    await transport.send_all(server, b"back")
    assert await client.receive_some(100) == b"back"
    await transport.send_eof(server)
    assert await client.receive_some(100) == b""
    await client.aclose()
    await server.aclose()


async def test_a_socket_transport_says_when_closing_would_reset() -> None:
    client, server = socket_pair()
    transport = transport_for(server)
    assert transport.would_reset(server) is Unread.NO  # nothing unread, nothing in flight
    await client.send_all(b"more")
    await trio.lowlevel.wait_readable(server.socket)
    assert transport.would_reset(server) is Unread.YES  # the peer's bytes wait
    await client.aclose()
    await server.aclose()


async def test_a_tls_transport_over_the_socket_tells_unread_bytes(
    tls_authority: trustme.CA,
) -> None:
    server_context, client_context = tls_contexts(tls_authority)
    client_socket, server_socket = socket_pair()
    client = trio.SSLStream(client_socket, client_context, server_hostname="localhost")
    server = trio.SSLStream(server_socket, server_context, server_side=True)
    transport = transport_for(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        await transport.do_handshake(server)
    assert transport.would_reset(server) is Unread.UNKNOWN  # nothing waits, more may come
    await client.send_all(b"more")
    await trio.lowlevel.wait_readable(server_socket.socket)
    assert transport.would_reset(server) is Unread.YES
    await client.aclose()
    await server.aclose()


def test_a_stream_of_any_kind_cannot_tell_whether_closing_would_reset() -> None:
    _client, server = trio.testing.memory_stream_pair()
    assert transport_for(server).would_reset(server) is Unread.UNKNOWN


# -- How each closes --------------------------------------------------------------


async def test_a_socket_transport_closes_at_once_either_way() -> None:
    for close in ("close_nowait", "aclose", "aclose_forcefully"):
        client, server = socket_pair()
        transport = transport_for(server)
        with trio.testing.assert_no_checkpoints():
            if close == "close_nowait":
                transport.close_nowait(server)
            elif close == "aclose":
                await transport.aclose(server, 10.0)
            else:
                await transport.aclose_forcefully(server)
        assert server.socket.fileno() == -1
        assert await client.receive_some(10) == b""
        await client.aclose()


async def test_tls_closes_gracefully_with_close_notify_or_forcefully_without(
    tls_authority: trustme.CA,
) -> None:
    server_context, client_context = tls_contexts(tls_authority)
    for graceful in (True, False):
        client_socket, server_socket = socket_pair()
        client = trio.SSLStream(client_socket, client_context, server_hostname="localhost")
        server = trio.SSLStream(server_socket, server_context, server_side=True)
        transport = transport_for(server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.do_handshake)
            await transport.do_handshake(server)
        if graceful:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(transport.aclose, server, 10.0)
                assert await client.receive_some(10) == b""  # close_notify: a clean end
        else:
            transport.close_nowait(server)  # the socket, at once
            assert server_socket.socket.fileno() == -1
            with pytest.raises(trio.BrokenResourceError):  # no close_notify
                await client.receive_some(10)
        await client.aclose()


async def test_a_graceful_close_that_lingers_too_long_is_made_forceful(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream = OneWayStream(b"x", endless_close=True)
    transport = transport_for(stream)
    start = trio.current_time()
    await transport.aclose(stream, 5.0)
    assert trio.current_time() - start == pytest.approx(5.0)
    assert stream.closed
    transport.close_nowait(stream)  # nothing it can do without waiting
    with trio.CancelScope() as scope:
        scope.cancel()
        await transport.aclose_forcefully(stream)  # shielded: done even when cancelled
    assert not scope.cancelled_caught


# -- Tracing --------------------------------------------------------------------


async def test_tracing_logs_the_originals_lines_and_answers_as_its_transport(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_echo")
    client, server = socket_pair()
    protocol = EchoProtocol(Mode.COUNT)
    inner = transport_for(server)
    traced = TracingTransport(inner, protocol, "peer")
    assert (traced.can_half_close, traced.max_read, traced.handshake) == (
        True,
        READ_SIZE_MAX,
        False,
    )
    await client.send_all(b"5 hel")
    await traced.wait_receivable(server)
    data = traced.receive_nowait(server, 100)
    assert data == b"5 hel"
    protocol.receive_data(data, 0.0)
    protocol.next_action(0.0)  # frames the length prefix
    chunk = protocol.data_to_send()
    assert chunk is not None
    protocol.sent(traced.send_nowait(server, chunk), 0.0)
    assert traced.would_reset(server) is Unread.NO
    assert [r.getMessage() for r in caplog.records] == [
        "peer: received data with len 5 (total received=5)",
        "peer: extracted content length=5",  # told before what follows its framing
        "peer: echoed data with len 3 (total sent=3)",
    ]
    traced.close_nowait(server)
    assert server.socket.fileno() == -1
    await client.aclose()


async def test_tracing_logs_a_waiting_read_and_what_the_writer_sends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_echo")
    client, server = trio.testing.memory_stream_pair()
    protocol = EchoProtocol(Mode.ECHO)
    traced = TracingTransport(transport_for(server), protocol, "peer")
    assert traced.receive_nowait(server, 10) is None  # nothing read: nothing said
    await client.send_all(b"ab")
    assert await traced.receive(server, 10) == b"ab"
    await traced.send_all(server, b"ab")
    assert [r.getMessage() for r in caplog.records] == [
        "peer: received data with len 2 (total received=2)",
        "peer: echoed data with len 2 (total sent=2)",
    ]
