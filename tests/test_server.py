"""The server over real sockets on loopback (port 0): every mode, bad input
and resets that end one connection only, the connection cap, graceful
shutdown, and a plain blocking socket client."""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import socket
import struct
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.streams import start_server, wait_until
from trio_echo import (
    ALL_INTERFACES,
    EchoProtocol,
    EchoServer,
    Mode,
    ServerConfig,
    echo,
    echo_framed,
    encode_message,
    open_listeners,
)
from trio_echo.server import _server

MiB = 1024 * 1024


async def connect(port: int, host: str = "127.0.0.1") -> trio.SocketStream:
    return await trio.open_tcp_stream(host, port)


async def read_to_end(stream: trio.abc.ReceiveStream) -> bytes:
    received = bytearray()
    while data := await stream.receive_some():
        received += data
    return bytes(received)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("size", [0, 1, 3 * MiB])
async def test_each_mode_round_trips(nursery: trio.Nursery, mode: Mode, size: int) -> None:
    _server, port = await start_server(nursery, mode=mode)
    payload = random.Random(size).randbytes(size)
    async with await connect(port) as stream:
        assert await echo(stream, payload, mode) == payload


async def test_framed_mode_pipelines_many_messages(nursery: trio.Nursery) -> None:
    _server, port = await start_server(nursery, mode=Mode.FRAMED)
    payloads = [random.Random(i).randbytes(i * 97) for i in range(200)]
    async with await connect(port) as stream:
        assert await echo_framed(stream, payloads) == payloads


async def test_bad_length_ends_only_its_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    _server, port = await start_server(nursery)
    async with await connect(port) as steady:
        await steady.send_all(b"10 01234")  # a transfer in progress
        async with await connect(port) as bad:
            await bad.send_all(b"-1 x")
            assert await read_to_end(bad) == b""
        await steady.send_all(b"56789")
        assert await read_to_end(steady) == b"0123456789"
    # ...and the server still serves new connections.
    async with await connect(port) as later:
        assert await echo(later, b"still here") == b"still here"
    bad_lines = [r.getMessage() for r in caplog.records if "bad-length" in r.getMessage()]
    assert len(bad_lines) == 1
    assert "127.0.0.1:" in bad_lines[0]


async def test_reset_mid_transfer_ends_only_its_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    _server, port = await start_server(nursery)
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    await sock.send(b"1000 partial")
    assert await sock.recv(100) == b"partial"  # the server is in the middle of the message
    # SO_LINGER with a zero timeout: close() sends a reset, not an end of stream.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    async with await connect(port) as stream:
        assert await echo(stream, b"fine") == b"fine"
    await wait_until(lambda: any(" reset" in r.getMessage() for r in caplog.records))


async def test_connection_cap_pauses_accepting(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server, port = await start_server(nursery, max_connections=2)
    first = await connect(port)
    second = await connect(port)
    await wait_until(lambda: server.connections == 2)
    # Two more connect (the kernel queues them) but are not served yet.
    waiting = [await connect(port), await connect(port)]
    for stream in waiting:
        await stream.send_all(b"4 wait")
    # Everything the server could do with what has arrived, it has done (the
    # server runs in this trio run: no task is left that could run).
    await trio.testing.wait_all_tasks_blocked()
    assert server.connections == 2
    for stream in waiting:  # nothing came back: not served
        with (
            socket.socket(fileno=os.dup(stream.socket.fileno())) as sock,
            pytest.raises(BlockingIOError),
        ):
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    # As connections end, the waiting ones are served.
    echoes = []

    async def finish(stream: trio.SocketStream) -> None:
        async with stream:
            echoes.append(await read_to_end(stream))

    await first.aclose()
    async with trio.open_nursery() as inner:
        for stream in waiting:
            inner.start_soon(finish, stream)
        await second.aclose()
    assert echoes == [b"wait", b"wait"]
    await wait_until(lambda: server.connections == 0)
    # The server paused three times, and said so once.
    limit_lines = [r for r in caplog.records if "connection limit reached" in r.getMessage()]
    assert len(limit_lines) == 1


async def test_graceful_shutdown_lets_a_transfer_finish(nursery: trio.Nursery) -> None:
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0))
    done = trio.Event()

    async def serve() -> None:
        await server.serve()
        done.set()

    async with trio.open_nursery() as inner:
        port = (await inner.start(_started, server))[0].port
        inner.start_soon(serve)
        stream = await connect(port)
        await stream.send_all(b"6 abc")
        assert await stream.receive_some(3) == b"abc"  # it is being served
        server.shutdown(grace=10)
        await trio.testing.wait_all_tasks_blocked()  # the listeners are closed
        # No new connections...
        with pytest.raises(OSError, match=r"refused|failed"):
            await connect(port)
        # ...but the open one finishes.
        await stream.send_all(b"def")
        assert await read_to_end(stream) == b"def"
        await stream.aclose()
        with trio.fail_after(5):
            await done.wait()


async def _started(
    server: EchoServer, *, task_status: trio.TaskStatus[list[object]] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started(server.addresses)


async def test_shutdown_cuts_connections_after_the_grace_period(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = EchoServer(ServerConfig(), open_listeners("127.0.0.1", 0))
    async with trio.open_nursery() as inner:
        addresses = await inner.start(server.serve)
        stalled = await connect(addresses[0].port)
        await stalled.send_all(b"100 never finished")
        assert await stalled.receive_some(14) == b"never finished"  # it is being served
        start = trio.current_time()
        server.shutdown(grace=0.5)
    # serve() returned: the stalled connection was cut at the deadline.
    assert 0.5 <= trio.current_time() - start < 5
    assert await read_to_end(stalled) == b""
    await stalled.aclose()
    assert any("cancelled" in r.getMessage() for r in caplog.records)


async def test_send_everything_then_read_with_a_blocking_socket(nursery: trio.Nursery) -> None:
    # The original's client pattern, 64 MiB: sendall() the whole message,
    # then read. A server that does not read ahead deadlocks here.
    _server, port = await start_server(nursery)
    payload = random.Random(64).randbytes(64 * MiB)

    def blocking_client() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(encode_message(payload))
            chunks = []
            while data := sock.recv(1 << 20):
                chunks.append(data)
        return b"".join(chunks)

    echoed = await trio.to_thread.run_sync(blocking_client)
    assert len(echoed) == len(payload)
    assert echoed == payload


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6(nursery: trio.Nursery) -> None:
    _server, port = await start_server(nursery, host="::1")
    async with await connect(port, "::1") as stream:
        assert await echo(stream, b"over IPv6") == b"over IPv6"


def test_port_in_use_is_an_oserror() -> None:
    (first,) = open_listeners("127.0.0.1", 0)
    with first, pytest.raises(OSError, match=r"[Aa]ddress already in use") as caught:
        open_listeners("127.0.0.1", first.getsockname()[1])
    assert caught.value.errno == errno.EADDRINUSE


def test_all_interfaces_share_one_port() -> None:
    listeners = open_listeners(ALL_INTERFACES, 0)
    try:
        ports = {sock.getsockname()[1] for sock in listeners}
        hosts = {sock.getsockname()[0] for sock in listeners}
        assert len(ports) == 1
        assert "0.0.0.0" in hosts
    finally:
        for sock in listeners:
            sock.close()


def test_listening_sockets_get_nodelay_for_their_connections() -> None:
    # Set once on the listening socket; Linux copies it to every accepted one.
    listeners = open_listeners("127.0.0.1", 0)
    server = EchoServer(ServerConfig(), listeners)
    (listener,) = listeners
    with listener, socket.create_connection(listener.getsockname()):
        listener.setblocking(True)
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    del server


def test_a_server_needs_a_listener() -> None:
    with pytest.raises(ValueError, match="listening socket"):
        EchoServer(ServerConfig(), [])


@pytest.mark.parametrize("wait", [False, True], ids=["message-at-once", "message-after-a-wait"])
async def test_handler_bug_does_not_stop_the_server(
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    wait: bool,
) -> None:
    # A message there at once is served in the accepting task; one that
    # comes later, in the connection's own task: a bug must be absorbed in both.
    server, port = await start_server(nursery)
    original = EchoProtocol.receive_data
    calls = 0

    def receive_with_a_bug(self: EchoProtocol, data: bytes, now: float = 0.0) -> list[bytes]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in one connection")
        return original(self, data, now)  # type: ignore[return-value]

    monkeypatch.setattr(EchoProtocol, "receive_data", receive_with_a_bug)
    async with await connect(port) as victim:
        if wait:  # until the server accepted, and waits for the message in the connection's task
            await trio.testing.wait_all_tasks_blocked()
        await victim.send_all(b"3 abc")
        assert await read_to_end(victim) == b""
    async with await connect(port) as stream:
        assert await echo(stream, b"served") == b"served"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "internal-error" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    await wait_until(lambda: server.connections == 0)


def test_a_datagram_socket_is_refused_in_one_sentence(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "listener"))
        with pytest.raises(ValueError, match="trio_echo serves stream sockets only"):
            EchoServer(ServerConfig(), [sock])


async def test_accept_errors_are_logged_at_most_once_a_second_with_a_count(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Out of descriptors (EMFILE), the accept loop fails and retries every
    # tenth of a second: ten seconds of it are ten lines, not a hundred.
    attempts = 0

    def out_of_descriptors(_self: object) -> None:
        nonlocal attempts
        attempts += 1
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(_server.SocketListener, "accept_nowait", out_of_descriptors)
    (listener,) = open_listeners("127.0.0.1", 0)
    waiting = socket.create_connection(listener.getsockname())  # so that it is readable
    server = EchoServer(ServerConfig(), [listener])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        await trio.sleep(10 - 0.05)
        server.abort()
    waiting.close()
    counts = [
        int(re.search(r"\((\d+) time\(s\) since", record.getMessage())[1])  # type: ignore[index]
        for record in caplog.records
        if record.getMessage().startswith("cannot accept on ")
    ]
    assert attempts > 90
    assert 9 <= len(counts) <= 10  # one a second (the clock's tenths add up to a hair less)
    assert counts[0] == 1
    assert attempts - 11 <= sum(counts) <= attempts  # each failure counted once, the last unsaid
