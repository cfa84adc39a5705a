"""The connection handler: every mode, split and coalesced input, and bad
input, over memory streams and over the server's own socket stream (which
also takes the path that serves what is ready without waiting), on TCP, on a
unix socket and under TLS: one handler, any stream, the same behaviour.
Timeouts run on trio's MockClock, and flow control over a lockstep pair
(which buffers nothing at all)."""

from __future__ import annotations

import functools
import logging
import random
import socket
import ssl
from collections.abc import Callable, Sequence

import pytest
import trio
import trio.testing
import trustme

from tests.support.chunks import split
from tests.support.streams import receive_all
from trio_echo import (
    ConfigError,
    ConnectionReport,
    HandlerError,
    Limits,
    MemoryBudget,
    Mode,
    Outcome,
    Reason,
    ServerConfig,
    encode_message,
    handle_connection,
)
from trio_echo.protocol import BUFFER_OVERHEAD, READ_SIZE_MIN
from trio_echo.server._listeners import accepted_stream
from trio_echo.server._pump import Connection
from trio_echo.server._socket_stream import FastSocketStream

CHUNKINGS = ["whole", "bytewise", "random-1", "random-2", "random-3"]

MiB = 1024 * 1024


StreamPair = Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]


def socket_stream_pair() -> tuple[FastSocketStream, FastSocketStream]:
    """A TCP connection; the server's end is the stream the server builds."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return FastSocketStream(client), accepted_stream(server)


def unix_stream_pair() -> tuple[FastSocketStream, FastSocketStream]:
    """A unix socket connection; the server's end is the stream the server builds."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server.setblocking(False)  # as accepted from a non-blocking listener
    return FastSocketStream(client), accepted_stream(server)


def tls_stream_pair(authority: trustme.CA) -> StreamPair:
    """TLS over the server's socket stream, as the server wraps what it accepts."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    def pair() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        client, server = socket_stream_pair()
        return (
            trio.SSLStream(client, client_context, server_hostname="localhost"),
            trio.SSLStream(server, server_context, server_side=True),
        )

    pair.tls = True  # type: ignore[attr-defined]
    return pair


@pytest.fixture(params=["memory", "socket", "unix", "tls"])
def stream_pair(request: pytest.FixtureRequest, tls_authority: trustme.CA) -> StreamPair:
    """Memory streams, or the server's socket stream: over loopback TCP, over
    a unix socket, or wrapped in TLS."""
    if request.param == "memory":
        return trio.testing.memory_stream_pair
    if request.param == "unix":
        return unix_stream_pair
    if request.param == "tls":
        return tls_stream_pair(tls_authority)
    return socket_stream_pair


def sent_after_the_message(raw: bytes, chunks: list[bytes]) -> bool:
    """Whether bytes after a count message come in a chunk of their own, later."""
    header = raw.partition(b" ")[0]
    end = len(header) + 1 + int(header)
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent >= end:
            return sent == end and len(raw) > end
    return False


@pytest.fixture
def count_chunks(raw: bytes, how: str, stream_pair: StreamPair) -> list[bytes]:
    """``raw`` split as asked; a split that cannot apply to the transport is skipped."""
    chunks = split(raw, how)
    if getattr(stream_pair, "tls", False) and sent_after_the_message(raw, chunks):
        pytest.skip(TLS_SENDS_AFTER_THE_CLOSE)
    return chunks


TLS_SENDS_AFTER_THE_CLOSE = (
    "TLS cannot half-close: the server closes (close_notify) once the message is echoed"
    " and nothing is known to follow, so bytes sent later find the connection closed and"
    " draw a reset (over TCP the server half-closes and reads them)"
)


async def finish(client: trio.abc.Stream, expected: int = 0) -> bytes:
    """End the client's sending; return every byte received from now to the end.

    A stream that can half-close sends its end of stream and reads on until
    the server closes. TLS cannot: the client reads the ``expected`` bytes
    (it knows what it sent), then closes with close_notify, which is the end
    of stream the server sees.
    """
    if isinstance(client, trio.abc.HalfCloseableStream):
        await client.send_eof()
        return await receive_all(client, until_broken=True)
    received = bytearray()
    while len(received) < expected and (data := await client.receive_some()):
        received += data
    await client.aclose()
    return bytes(received)


async def converse(
    chunks: Sequence[bytes],
    config: ServerConfig,
    *,
    half_close: bool,
    stream_pair: StreamPair = trio.testing.memory_stream_pair,
    expected: int = 0,
) -> tuple[bytes, ConnectionReport]:
    """Send ``chunks`` one read at a time to a handler; return its echo and report.

    With ``half_close``, the client then ends its sending (see `finish`:
    under TLS, once ``expected`` bytes came back).

    Between chunks the test waits until every task is blocked, so the handler
    reads each chunk on its own: the split is exactly the one asked for. (On
    a socket, the bytes sent are readable at once, and trio polls for them
    before it finds every task blocked.)
    """
    client, server = stream_pair()
    reports: list[ConnectionReport] = []

    async def serve() -> None:
        reports.append(await handle_connection(server, config, peer="memory"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        try:
            for chunk in chunks:
                await client.send_all(chunk)
                await trio.testing.wait_all_tasks_blocked()
        except trio.BrokenResourceError:
            half_close = False  # the server closed while we sent: read what it said
        echo = (
            await finish(client, expected)
            if half_close
            else await receive_all(client, until_broken=True)
        )
        await client.aclose()
    return echo, reports[0]


@pytest.mark.parametrize("how", CHUNKINGS)
@pytest.mark.parametrize(
    ("raw", "echo"),
    [
        pytest.param(b"5 hello", b"hello", id="simple"),
        pytest.param(b"0 ", b"", id="zero-length"),
        pytest.param(b"5 helloEXTRA", b"hello", id="bytes-after-payload"),
        pytest.param(b"3 a b", b"a b", id="spaces-in-payload"),
        pytest.param(b"4 \x00\xff 9", b"\x00\xff 9", id="binary-payload"),
        pytest.param(b"2 ab3 xyz", b"ab", id="second-message-ignored"),
    ],
)
async def test_count_mode_echoes_the_payload_and_closes(
    raw: bytes, echo: bytes, count_chunks: list[bytes], stream_pair: StreamPair
) -> None:
    # The client never half-closes: the server must close by itself once
    # `length` bytes are echoed (the original missed this when a chunk ran
    # past the payload).
    received, report = await converse(
        count_chunks, ServerConfig(), half_close=False, stream_pair=stream_pair
    )
    assert received == echo
    assert report.outcome == Outcome.COMPLETE
    assert report.messages == 1
    assert report.bytes_out == len(echo)


async def test_count_mode_streams_the_echo_before_the_payload_ends(stream_pair: StreamPair) -> None:
    client, server = stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_connection, server, ServerConfig())
        await client.send_all(b"10 abc")
        with trio.fail_after(1):
            assert await client.receive_some() == b"abc"  # before the rest is sent
        await client.send_all(b"defghij")
        assert await receive_all(client) == b"defghij"
        await client.aclose()


async def test_count_mode_peer_closing_before_a_byte_is_clean(stream_pair: StreamPair) -> None:
    received, report = await converse([], ServerConfig(), half_close=True, stream_pair=stream_pair)
    assert received == b""
    assert report.outcome == Outcome.NO_MESSAGE


@pytest.mark.parametrize("how", CHUNKINGS)
async def test_echo_mode_echoes_everything_until_the_peer_closes(
    how: str, stream_pair: StreamPair
) -> None:
    raw = b"any bytes at all: 12 -1 \x00 and more"
    received, report = await converse(
        split(raw, how),
        ServerConfig(mode=Mode.ECHO),
        half_close=True,
        stream_pair=stream_pair,
        expected=len(raw),
    )
    assert received == raw
    assert report.outcome == Outcome.CLOSED
    assert (report.bytes_in, report.bytes_out) == (len(raw), len(raw))


@pytest.mark.parametrize("how", CHUNKINGS)
async def test_framed_mode_answers_each_message_in_order(how: str, stream_pair: StreamPair) -> None:
    payloads = [b"hello", b"", b"x", b"a b c", b"\x00" * 40]
    raw = b"".join(encode_message(p) for p in payloads)
    received, report = await converse(
        split(raw, how),
        ServerConfig(mode=Mode.FRAMED),
        half_close=True,
        stream_pair=stream_pair,
        expected=len(raw),
    )
    assert received == raw
    assert report.outcome == Outcome.CLOSED
    assert report.messages == len(payloads)


async def test_framed_mode_streams_each_answer(stream_pair: StreamPair) -> None:
    client, server = stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_connection, server, ServerConfig(mode=Mode.FRAMED))
        await client.send_all(b"6 abc")
        with trio.fail_after(1):
            assert await client.receive_some() == b"6 abc"
        await client.send_all(b"def1 z")
        assert await finish(client, 6) == b"def1 z"
        await client.aclose()


BAD_INPUT = [
    pytest.param(Mode.COUNT, b"-1 x", Reason.BAD_LENGTH, id="count-negative"),
    pytest.param(Mode.COUNT, b"+5 hello", Reason.BAD_LENGTH, id="count-plus"),
    pytest.param(Mode.COUNT, b" 5 hello", Reason.BAD_LENGTH, id="count-leading-space"),
    pytest.param(Mode.COUNT, b"1_0 0123456789", Reason.BAD_LENGTH, id="count-underscore"),
    pytest.param(Mode.COUNT, b"05 hello", Reason.BAD_LENGTH, id="count-leading-zero"),
    pytest.param(Mode.COUNT, b"hello", Reason.BAD_LENGTH, id="count-no-length"),
    pytest.param(Mode.COUNT, b"1" * 100, Reason.TOO_MANY_DIGITS, id="count-endless-digits"),
    pytest.param(Mode.COUNT, b"99999999 ", Reason.LENGTH_TOO_LARGE, id="count-too-large"),
    pytest.param(Mode.FRAMED, b"2 ab-1 x", Reason.BAD_LENGTH, id="framed-second-bad"),
]


@pytest.mark.parametrize(("mode", "raw", "reason"), BAD_INPUT)
async def test_bad_input_closes_with_one_log_line(
    mode: Mode,
    raw: bytes,
    reason: Reason,
    caplog: pytest.LogCaptureFixture,
    stream_pair: StreamPair,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_echo")
    # No half-close: the handler must close on its own.
    received, report = await converse(
        [raw], ServerConfig(mode=mode), half_close=False, stream_pair=stream_pair
    )
    assert report.outcome == reason
    # Nothing of the bad message is echoed; in framed mode, the answer to the
    # good one before it goes out before the close.
    assert received == (b"2 ab" if mode is Mode.FRAMED else b"")
    lines = [r for r in caplog.records if r.name == "trio_echo.server"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert "memory" in lines[0].getMessage()
    assert str(reason) in lines[0].getMessage()


@pytest.mark.parametrize(
    ("mode", "raw", "reason"),
    [
        pytest.param(Mode.COUNT, b"12", Reason.EOF_IN_HEADER, id="count-in-header"),
        pytest.param(Mode.COUNT, b"5 hel", Reason.EOF_IN_PAYLOAD, id="count-in-payload"),
        pytest.param(Mode.FRAMED, b"1 a2 b", Reason.EOF_IN_PAYLOAD, id="framed-in-payload"),
        pytest.param(Mode.FRAMED, b"1 a2", Reason.EOF_IN_HEADER, id="framed-in-header"),
    ],
)
async def test_stream_ending_inside_a_message(
    mode: Mode, raw: bytes, reason: Reason, stream_pair: StreamPair
) -> None:
    _received, report = await converse(
        [raw], ServerConfig(mode=mode), half_close=True, stream_pair=stream_pair
    )
    assert report.outcome == reason


async def test_a_slow_but_steady_reader_is_not_idle(autojump_clock: trio.testing.MockClock) -> None:
    # The echo goes out as the peer takes it, 4 KiB every half second: each
    # piece is progress, so the idle timeout (3 s) never passes, though the
    # whole 256 KiB takes 32 s.
    config = ServerConfig(limits=Limits(idle_timeout=3))
    client, server = trio.testing.lockstep_stream_pair()
    payload = bytes(range(256)) * 1024
    received = bytearray()

    async def slow_reader() -> None:
        await client.send_all(encode_message(payload))
        while data := await client.receive_some(4096):
            received.extend(data)
            await trio.sleep(0.5)
        await client.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        report = await handle_connection(server, config)
    assert (report.outcome, bytes(received)) == (Outcome.COMPLETE, payload)
    assert trio.current_time() > 30


async def test_count_header_timeout(
    autojump_clock: trio.testing.MockClock, stream_pair: StreamPair
) -> None:
    config = ServerConfig(limits=Limits(header_timeout=5, idle_timeout=100))
    client, server = stream_pair()
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(client.send_all, b"1")  # a slow peer: one byte, then nothing
        report = await handle_connection(server, config)
    assert report.outcome == Outcome.HEADER_TIMEOUT
    assert 5 <= trio.current_time() - start < 6
    await client.aclose()


async def test_count_header_timeout_counts_from_the_start(
    autojump_clock: trio.testing.MockClock, stream_pair: StreamPair
) -> None:
    # Trickling a byte every second does not extend the header's time.
    config = ServerConfig(limits=Limits(header_timeout=5, idle_timeout=100))
    client, server = stream_pair()

    async def trickle() -> None:
        for _ in range(8):
            try:
                await client.send_all(b"1")
            except trio.BrokenResourceError:
                return  # the server closed
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        report = await handle_connection(server, config)
        nursery.cancel_scope.cancel()
    assert report.outcome == Outcome.HEADER_TIMEOUT
    await client.aclose()


async def test_framed_header_timeout_starts_at_the_first_byte(
    autojump_clock: trio.testing.MockClock, stream_pair: StreamPair
) -> None:
    config = ServerConfig(mode=Mode.FRAMED, limits=Limits(header_timeout=5, idle_timeout=100))
    client, server = stream_pair()

    async def peer() -> None:
        await client.send_all(b"1 a")
        await trio.sleep(50)  # idle between messages: allowed (no header begun)
        await client.send_all(b"2")  # a header begins, and never ends

    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(peer)
        report = await handle_connection(server, config)
    assert report.outcome == Outcome.HEADER_TIMEOUT
    assert report.messages == 1
    assert 55 <= trio.current_time() - start < 56
    await client.aclose()


async def test_idle_timeout(
    autojump_clock: trio.testing.MockClock, stream_pair: StreamPair
) -> None:
    config = ServerConfig(mode=Mode.ECHO, limits=Limits(idle_timeout=30))
    client, server = stream_pair()

    async def peer() -> None:
        for _ in range(3):  # some progress, then silence
            await client.send_all(b"tick")
            await trio.sleep(20)

    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(peer)
        report = await handle_connection(server, config)
        nursery.cancel_scope.cancel()
    assert report.outcome == Outcome.IDLE_TIMEOUT
    assert report.bytes_out == 12
    # The last byte came at 40 s; 30 s of silence later the connection ended.
    assert 70 <= trio.current_time() - start < 71
    await client.aclose()


async def test_idle_timeout_covers_a_peer_that_never_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = ServerConfig(mode=Mode.ECHO, limits=Limits(idle_timeout=30))
    client, server = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"echo me, but I will not read")
        report = await handle_connection(server, config)
        nursery.cancel_scope.cancel()
    assert report.outcome == Outcome.IDLE_TIMEOUT
    assert report.bytes_out == 0


async def test_send_everything_then_read_completes_over_a_lockstep_pair() -> None:
    # No buffer anywhere between the peers: the server must read the whole
    # message ahead while the echo waits, or both sides block forever.
    payload = random.Random(1).randbytes(300_000)
    client, server = trio.testing.lockstep_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_connection, server, ServerConfig())
        with trio.fail_after(10):
            await client.send_all(encode_message(payload))
            assert await receive_all(client) == payload
        await client.aclose()


async def test_connection_buffer_stops_reading_when_full() -> None:
    limit = 10_000
    config = ServerConfig(mode=Mode.ECHO, limits=Limits(max_held=limit))
    budget = MemoryBudget(config.memory_budget)
    client, server = trio.testing.lockstep_stream_pair()
    sent = 0

    async def send_without_reading() -> None:
        nonlocal sent
        for _ in range(100):
            await client.send_all(b"x" * 1000)
            sent += 1000

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(handle_connection, server, config, budget=budget))
        nursery.start_soon(send_without_reading)
        await trio.testing.wait_all_tasks_blocked()
        # The server read as far as its buffer allows, and no further. What
        # it holds is charged at its real cost (a buffer's allocation and its
        # overhead), so it takes in a little less than the limit in bytes.
        assert limit * 3 // 4 <= sent <= limit
        assert budget.used <= limit
        # Reading the echo lets everything through.
        echoed = 0
        while echoed < 100_000:
            echoed += len(await client.receive_some())
        assert sent == 100_000
        await client.aclose()
    assert budget.used == 0


async def test_no_idle_connection_holds_budget_over_any_transport(stream_pair: StreamPair) -> None:
    # Waiting for its peer, before its first byte and after a stream of them,
    # a connection holds none of the budget: not even for its next read, on a
    # transport that cannot say whether bytes are there without reading (TLS).
    budget = MemoryBudget(MiB)
    config = ServerConfig(mode=Mode.ECHO, memory_budget=MiB)
    client, server = stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(handle_connection, server, config, budget=budget))
        if isinstance(client, trio.SSLStream):
            await client.do_handshake()
        await trio.testing.wait_all_tasks_blocked()
        assert budget.used == 0  # before its first byte
        blob = b"i" * (300 * 1024)
        async with trio.open_nursery() as exchange:
            exchange.start_soon(client.send_all, blob)
            received = 0
            while received < len(blob):
                received += len(await client.receive_some())
        await trio.testing.wait_all_tasks_blocked()
        assert budget.used == 0  # after a stream of them
        await client.aclose()
    assert budget.used == 0


async def test_memory_budget_is_shared_by_connections() -> None:
    budget = MemoryBudget(15_000)
    config = ServerConfig(mode=Mode.ECHO, memory_budget=15_000, limits=Limits(max_held=10_000))
    sent = [0, 0]
    pairs = [trio.testing.lockstep_stream_pair() for _ in range(2)]

    async def send_without_reading(index: int) -> None:
        for _ in range(20):
            await pairs[index][0].send_all(b"y" * 1000)
            sent[index] += 1000

    async with trio.open_nursery() as nursery:
        for index, (_client, server) in enumerate(pairs):
            nursery.start_soon(functools.partial(handle_connection, server, config, budget=budget))
            nursery.start_soon(send_without_reading, index)
        await trio.testing.wait_all_tasks_blocked()
        # A stream that cannot say whether bytes are there is read with no
        # reservation, and what comes is charged as it comes: one read past
        # the budget per connection, at most.
        assert budget.used <= 15_000 + 2 * (READ_SIZE_MIN + BUFFER_OVERHEAD)
        assert sum(sent) <= 15_000 + 2 * READ_SIZE_MIN
        assert all(count <= 10_000 for count in sent)
        nursery.cancel_scope.cancel()
    assert budget.used == 0


async def test_peer_resetting_mid_transfer_is_a_reset(caplog: pytest.LogCaptureFixture) -> None:
    client, server = trio.testing.memory_stream_pair()
    receive_some = server.receive_stream.receive_some
    reads = 0

    async def receive_then_reset(max_bytes: int | None = None) -> bytes | bytearray:
        nonlocal reads
        reads += 1
        if reads > 1:
            raise trio.BrokenResourceError from ConnectionResetError(104, "Connection reset")
        return await receive_some(max_bytes)

    server.receive_stream.receive_some = receive_then_reset  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"100 abc")
        report = await handle_connection(server, ServerConfig(), peer="memory")
    assert report.outcome == Outcome.RESET
    assert "Connection reset" in report.detail
    assert "memory" in caplog.records[-1].getMessage()


async def test_peer_that_stops_reading_and_closes_is_a_reset() -> None:
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"x" * 1000)
        await trio.testing.wait_all_tasks_blocked()
        await client.receive_stream.aclose()  # will read nothing more
        report = await handle_connection(server, ServerConfig(mode=Mode.ECHO))
    assert report.outcome == Outcome.RESET


async def test_cancelled_connection_is_closed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_echo")
    client, server = trio.testing.memory_stream_pair()
    with trio.move_on_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handle_connection, server, ServerConfig(mode=Mode.ECHO))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert [r.getMessage().split(": ")[1].split()[0] for r in caplog.records] == ["cancelled"]
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"anyone there?")


async def test_a_bug_is_logged_with_its_traceback_and_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _client, server = trio.testing.memory_stream_pair()

    async def explode(max_bytes: int | None = None) -> bytes:
        raise ZeroDivisionError("a bug")

    server.receive_stream.receive_some = explode  # type: ignore[method-assign]
    with pytest.raises(HandlerError, match="memory") as caught:
        await handle_connection(server, ServerConfig(), peer="memory")
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "internal-error" in record.getMessage()
    assert record.exc_info is not None


async def test_debug_log_has_the_originals_per_chunk_lines(
    caplog: pytest.LogCaptureFixture, stream_pair: StreamPair
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_echo")
    await converse([b"5 hel", b"lo"], ServerConfig(), half_close=False, stream_pair=stream_pair)
    messages = [r.getMessage() for r in caplog.records]
    assert "memory: received data with len 5 (total received=5)" in messages
    assert "memory: extracted content length=5" in messages
    assert "memory: received data with len 2 (total received=7)" in messages
    assert any(m.startswith("memory: echoed data with len") for m in messages)


def test_report_log_fields() -> None:
    report = ConnectionReport(peer="p", mode=Mode.FRAMED, outcome="closed", duration=0.1234567)
    fields = report.log_fields()
    assert fields["mode"] == "framed"
    assert fields["duration"] == 0.123457
    assert "detail" not in fields
    assert report.clean
    assert not ConnectionReport(peer="p", mode=Mode.COUNT, outcome="reset").clean


async def test_a_message_already_there_is_served_without_a_task() -> None:
    client, server = socket_stream_pair()
    client.send_nowait(b"5 hello")
    await trio.lowlevel.wait_readable(server.socket)  # arrived
    connection = Connection(server, ServerConfig(), MemoryBudget(1 << 20), "peer")
    with trio.testing.assert_no_checkpoints():
        assert connection.serve_ready()  # ended: closed and logged
    assert connection.report.outcome == Outcome.COMPLETE
    assert await receive_all(client) == b"hello"
    await client.aclose()


async def test_a_partial_message_is_served_on_in_the_connections_task() -> None:
    client, server = socket_stream_pair()
    client.send_nowait(b"10 hello")
    await trio.lowlevel.wait_readable(server.socket)
    connection = Connection(server, ServerConfig(), MemoryBudget(1 << 20), "peer")
    assert not connection.serve_ready()
    assert client.receive_nowait() == b"hello"  # the part that came is echoed already
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.serve)
        await client.send_all(b"world")
        assert await receive_all(client) == b"world"
    assert connection.report.outcome == Outcome.COMPLETE
    assert connection.report.bytes_out == 10
    await client.aclose()


async def test_bytes_after_a_message_make_it_linger_instead_of_resetting() -> None:
    client, server = socket_stream_pair()
    client.send_nowait(b"2 hiEXTRA")
    await trio.lowlevel.wait_readable(server.socket)
    connection = Connection(server, ServerConfig(), MemoryBudget(1 << 20), "peer")
    assert not connection.serve_ready()  # closing now would reset: it must linger
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.serve)
        assert await client.receive_some() == b"hi"
        assert await client.receive_some() == b""  # the server's end of stream
        await client.send_eof()
    assert connection.report.outcome == Outcome.COMPLETE
    await client.aclose()


async def test_a_stream_without_the_nowait_calls_is_served_in_its_task() -> None:
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"2 hi")
    connection = Connection(server, ServerConfig(), MemoryBudget(1 << 20), "peer")
    assert not connection.serve_ready()
    await connection.serve()
    assert connection.report.outcome == Outcome.COMPLETE


def test_config_owns_its_defaults() -> None:
    # Every combination a library user can give is valid, without the CLI.
    # The buffer holds a whole message and what holding it costs, within the budget.
    def buffer(**settings: int) -> int:
        return ServerConfig(limits=Limits(**settings)).limits.max_held

    assert ServerConfig(memory_budget=1 << 20).limits.max_held == 1 << 20
    assert buffer(max_message_size=1 << 30) == 1 << 28  # the budget
    assert buffer(max_message_size=10) == 10 + 64 * 1024
    assert buffer(max_message_size=1 << 20) == (17 << 16) + (1 << 16)
    with pytest.raises(ValueError, match="may not exceed"):
        ServerConfig(memory_budget=1, limits=Limits(max_held=2))


def test_a_config_error_names_its_settings_as_its_caller_does() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig(memory_budget=1, limits=Limits(max_held=2))
    error = caught.value
    assert str(error) == "max_held (2 bytes) may not exceed memory_budget (1 bytes)"
    assert error.describe(lambda name: f"--{name.replace('_', '-')}") == (
        "--max-held (2 bytes) may not exceed --memory-budget (1 bytes)"
    )
    with pytest.raises(ConfigError, match=r"^idle_timeout must be positive"):
        ServerConfig(limits=Limits(idle_timeout=0))


async def test_a_keyboard_interrupt_is_not_absorbed_as_a_bug() -> None:
    # Only bugs (Exceptions) end just their connection; an interrupt of the
    # whole program goes on up, after the connection is closed and logged.
    client, server = trio.testing.memory_stream_pair()

    async def interrupted(max_bytes: int | None = None) -> bytes:
        raise KeyboardInterrupt

    server.receive_stream.receive_some = interrupted  # type: ignore[method-assign]
    connection = Connection(server, ServerConfig(), MemoryBudget(1 << 20), "peer")
    with pytest.raises(BaseExceptionGroup) as caught:
        await connection.serve()
    assert caught.group_contains(KeyboardInterrupt)
    assert connection.report.outcome == Outcome.CANCELLED
    assert connection.failure is None
    await client.aclose()
