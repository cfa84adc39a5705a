"""The server's promises against a hostile peer: memory within its bounds
whatever the peer sends, bounded work between two checkpoints, no echo lost
to a reset, and an honest outcome when the server, not the peer, holds a
connection up.

Work is counted, not timed: a test-only trio Instrument counts the messages
framed and the bytes taken in by each task step. Time is trio's MockClock
where it matters.
"""

from __future__ import annotations

import functools
import select
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from tests.support.processes import ChildProcess
from tests.support.streams import receive_all
from trio_echo import (
    EchoProtocol,
    EchoServer,
    EndOfMessage,
    Limits,
    MemoryBudget,
    Mode,
    Outcome,
    ServerConfig,
    encode_message,
    handle_connection,
    open_listeners,
)
from trio_echo.protocol import (
    MAX_MESSAGES_PER_STEP,
    READ_SIZE_MAX,
    READ_SIZE_MIN,
    STEP_BYTES,
    CountFramer,
)
from trio_echo.server._listeners import accepted_stream
from trio_echo.server._pump import Connection
from trio_echo.server._socket_stream import FastSocketStream

MiB = 1024 * 1024


class MessagesPerStep(trio.abc.Instrument):
    """The most messages framed, and bytes taken in, in one step of any task."""

    def __init__(self) -> None:
        self.framed = 0  # messages framed so far, by anyone
        self.most = 0
        self.taken = 0  # bytes passed to a protocol so far, by anyone
        self.most_taken = 0
        self.reads = 0  # reads passed to a protocol so far, by anyone
        self.most_reads = 0
        self.steps = 0  # steps that took bytes in
        self._at_start: dict[trio.lowlevel.Task, tuple[int, int, int]] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._at_start[task] = (self.framed, self.taken, self.reads)

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        framed, taken, reads = self._at_start.pop(task, (self.framed, self.taken, self.reads))
        self.most = max(self.most, self.framed - framed)
        self.most_taken = max(self.most_taken, self.taken - taken)
        self.most_reads = max(self.most_reads, self.reads - reads)
        self.steps += self.taken > taken


@pytest.fixture
async def steps(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MessagesPerStep]:
    """Count every message any framer frames, per task step."""
    instrument = MessagesPerStep()
    next_event = CountFramer.next_event

    def counting(framer: CountFramer) -> object:
        event = next_event(framer)
        if type(event) is EndOfMessage:
            instrument.framed += 1
        return event

    monkeypatch.setattr(CountFramer, "next_event", counting)
    receive_data = EchoProtocol.receive_data

    def taking(protocol: EchoProtocol, data: bytes, now: float) -> None:
        instrument.taken += len(data)
        instrument.reads += 1
        receive_data(protocol, data, now)

    monkeypatch.setattr(EchoProtocol, "receive_data", taking)
    echoed = EchoProtocol.echoed

    def echoing(protocol: EchoProtocol, data: bytes, sent: int, now: float) -> int:
        if sent == len(data) and data:  # otherwise it passes them to receive_data
            instrument.taken += len(data)
            instrument.reads += 1
        return echoed(protocol, data, sent, now)

    monkeypatch.setattr(EchoProtocol, "echoed", echoing)
    trio.lowlevel.add_instrument(instrument)
    yield instrument
    trio.lowlevel.remove_instrument(instrument)


def tcp_pair(*, client_receive_buffer: int | None = None) -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        if client_receive_buffer is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, client_receive_buffer)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    return client, server


# -- Work between checkpoints ---------------------------------------------------


@pytest.mark.parametrize("transport", ["memory", "socket"])
async def test_a_connection_frames_a_bounded_number_of_messages_per_step(
    steps: MessagesPerStep, transport: str
) -> None:
    flood = b"0 " * (128 * 1024)  # 256 KiB of empty messages
    if transport == "memory":
        client, server = trio.testing.memory_stream_pair()
    else:
        left, right = tcp_pair()
        client, server = FastSocketStream(left), accepted_stream(right)
    config = ServerConfig(mode=Mode.FRAMED)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(handle_connection, server, config))

        async def send() -> None:
            await client.send_all(flood)
            await client.send_eof()

        nursery.start_soon(send)
        assert await receive_all(client) == flood
    await client.aclose()
    assert steps.framed == len(flood) // 2
    assert steps.most <= MAX_MESSAGES_PER_STEP


async def test_the_accepting_task_serves_a_bounded_amount_per_step(
    steps: MessagesPerStep,
) -> None:
    server = EchoServer(ServerConfig(mode=Mode.FRAMED), open_listeners("127.0.0.1", 0))
    clients: list[socket.socket] = []
    async with trio.open_nursery() as nursery:
        (address,) = await nursery.start(server.serve)
        # 64 clients connect and send 2,048 messages each before the
        # accepting task runs again: it finds them all at one wakeup.
        for _ in range(64):
            client = socket.create_connection((address.host, address.port))
            client.sendall(b"0 " * 2048)
            client.shutdown(socket.SHUT_WR)
            clients.append(client)
        await trio.testing.wait_all_tasks_blocked()
        for client in clients:
            assert await trio.to_thread.run_sync(receive_blocking, client) == b"0 " * 2048
        server.abort()
    assert steps.framed == 64 * 2048
    # It stops serving inline once a step's worth is framed: the last
    # connection it served may add one step more.
    assert steps.most <= 2 * MAX_MESSAGES_PER_STEP


class ReadyStream(trio.abc.HalfCloseableStream):
    """A stream whose peer's bytes are always there, and that takes every answer.

    It has the `NowaitStream` calls, never drained: a pump that read on for
    as long as bytes are there would never pass a checkpoint.
    """

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0
        self.echo = bytearray()

    def drained(self) -> bool:
        return False

    async def wait_receivable(self) -> None:
        await trio.lowlevel.checkpoint()

    def receive_nowait(self, max_bytes: int) -> bytes:
        chunk = self._data[self._offset : self._offset + max_bytes]
        self._offset += len(chunk)
        return bytes(chunk)

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        self.echo += data
        return len(data)

    def close_would_reset(self) -> bool:
        return False

    def close_nowait(self) -> None:
        pass

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        raise AssertionError("the pump uses receive_nowait")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        raise AssertionError("the pump uses send_nowait")

    async def wait_send_all_might_not_block(self) -> None:
        raise AssertionError("not used")

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("mode", "data"),
    [
        (Mode.ECHO, b"e" * (8 * MiB)),
        (Mode.COUNT, encode_message(b"c" * (8 * MiB))),
        (Mode.FRAMED, encode_message(b"f" * 10) * (8 * MiB // 13)),
    ],
    ids=["echo", "count", "framed"],
)
async def test_reading_on_while_bytes_are_there_is_bounded_per_step(
    steps: MessagesPerStep, mode: Mode, data: bytes
) -> None:
    # The pump reads again at once while the stream has bytes, without a
    # checkpoint per read: the protocol's steps bound what one task step takes.
    stream = ReadyStream(data)
    report = await handle_connection(stream, ServerConfig(mode=mode))
    assert report.bytes_in == len(data)
    assert len(stream.echo) == len(data) - (mode is Mode.COUNT) * len(b"8388608 ")
    assert steps.most_taken <= STEP_BYTES + READ_SIZE_MAX
    assert steps.steps >= len(data) // (STEP_BYTES + READ_SIZE_MAX)
    assert steps.most <= MAX_MESSAGES_PER_STEP


async def test_reading_on_in_small_reads_is_bounded_per_step(steps: MessagesPerStep) -> None:
    # A small connection buffer asks for reads of a few bytes, and a peer
    # that keeps the socket full fills every one: the step still ends after
    # STEP_BYTES / READ_SIZE_MIN reads, not after STEP_BYTES bytes.
    data = b"s" * (256 * 1024)
    stream = ReadyStream(data)
    report = await handle_connection(
        stream, ServerConfig(mode=Mode.ECHO, limits=Limits(max_held=200))
    )
    assert report.bytes_in == len(stream.echo) == len(data)
    assert steps.most_reads <= STEP_BYTES // READ_SIZE_MIN + 1
    assert steps.reads >= len(data) // 8  # reads of 8 bytes: the case this is about


def receive_blocking(client: socket.socket) -> bytes:
    received = bytearray()
    while data := client.recv(65536):
        received += data
    client.close()
    return bytes(received)


# -- No lost echo ----------------------------------------------------------------


async def test_bytes_after_a_count_message_never_reset_its_echo() -> None:
    # The message fills the first read exactly, more bytes follow at once,
    # and more later; the client's receive buffer is small, so most of the
    # echo is still on its way when the server decides how to end. Closing
    # then would reset the connection and destroy that echo.
    payload = b"a" * 4091  # "4091 " and the payload: exactly the first 4 KiB read
    client_socket, server_socket = tcp_pair(client_receive_buffer=1024)
    client_socket.sendall(encode_message(payload) + b"junk1")
    client = FastSocketStream(client_socket)
    budget = MemoryBudget(MiB)
    connection = Connection(accepted_stream(server_socket), ServerConfig(), budget, "peer")
    async with trio.open_nursery() as nursery:
        if not connection.serve_ready():
            nursery.start_soon(connection.serve)
        # The server has done all it can without the client.
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"junk2")  # the client is still sending
        assert await receive_all(client) == payload  # then the end of stream, no reset
        await client.aclose()
    assert connection.report is not None
    assert connection.report.outcome == Outcome.COMPLETE
    assert connection.report.bytes_in == len(encode_message(payload)) + 10  # every byte read
    assert budget.used == 0


async def test_a_byte_that_comes_while_the_echo_is_on_its_way_does_not_reset_it() -> None:
    # The whole echo is in the kernel, not yet read by the client (its
    # receive buffer is small), and nothing is unread: closing now would be
    # undone by the next byte the client sends, whose reset destroys the
    # echo still on its way. The server half-closes and lingers instead.
    payload = b"e" * 300_000
    client_socket, server_socket = tcp_pair(client_receive_buffer=4096)
    client = FastSocketStream(client_socket)
    connection = Connection(accepted_stream(server_socket), ServerConfig(), MemoryBudget(MiB), "p")
    async with trio.open_nursery() as nursery:
        if not connection.serve_ready():
            nursery.start_soon(connection.serve)
        await client.send_all(encode_message(payload))
        await trio.testing.wait_all_tasks_blocked()  # the echo is out; the server waits
        await client.send_all(b"x")  # a late byte
        assert await receive_all(client) == payload  # all of it, then the end of stream
        await client.aclose()
    assert connection.report is not None
    assert (connection.report.outcome, connection.report.bytes_in) == ("complete", 300_008)


async def test_a_quiet_connection_holds_no_budget() -> None:
    # Connections that streamed and went quiet wait for their next read
    # without a reservation: they cannot starve a fresh connection.
    config = ServerConfig(mode=Mode.ECHO, memory_budget=MiB, limits=Limits(max_held=512 * 1024))
    server = EchoServer(config, open_listeners("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        (address,) = await nursery.start(server.serve)
        streams = [await trio.open_tcp_stream(address.host, address.port) for _ in range(20)]
        blob = b"z" * (256 * 1024)
        for stream in streams:
            async with trio.open_nursery() as exchange:
                exchange.start_soon(stream.send_all, blob)
                received = 0
                while received < len(blob):
                    received += len(await stream.receive_some(len(blob)))
        await trio.testing.wait_all_tasks_blocked()
        assert server.connections == 20
        assert server._budget.used == 0  # twenty quiet connections hold none
        fresh = await trio.open_tcp_stream(address.host, address.port)
        await fresh.send_all(b"hello")
        assert await fresh.receive_some() == b"hello"
        for stream in [*streams, fresh]:
            await stream.aclose()
        server.abort()


async def test_what_a_lingering_connection_reads_is_not_kept() -> None:
    # Bytes after a count message are read, counted, and dropped: while the
    # connection lingers it holds nothing, and the budget says the same.
    length = 2 * MiB
    client_socket, server_socket = tcp_pair()
    client = FastSocketStream(client_socket)
    budget = MemoryBudget(256 * MiB)
    config = ServerConfig(limits=Limits(linger_timeout=60))
    connection = Connection(accepted_stream(server_socket), config, budget, "peer")
    async with trio.open_nursery() as nursery:
        if not connection.serve_ready():
            nursery.start_soon(connection.serve)
        message = encode_message(b"m" * length) + b"T" * (4 * MiB)
        nursery.start_soon(client.send_all, message)
        assert await receive_all(client) == b"m" * length  # and the server's end of stream
        await trio.testing.wait_all_tasks_blocked()
        assert connection._protocol.held == 0  # what the connection keeps
        assert budget.used == 0  # and its next read, not yet made, holds nothing
        await client.aclose()
    assert connection.report is not None
    assert connection.report.bytes_in == len(message)


# -- The server's limit is not the peer's fault ---------------------------------


async def test_waiting_for_the_budget_is_the_servers_limit(autojump_clock: object) -> None:
    budget = MemoryBudget(MiB)
    assert budget.try_reserve(MiB) == MiB  # another connection holds it all
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"5 hello")  # a whole, valid message
    config = ServerConfig(memory_budget=MiB, limits=Limits(header_timeout=2, idle_timeout=30))
    start = trio.current_time()
    report = await handle_connection(server, config, budget=budget, peer="innocent")
    assert report.outcome == Outcome.BUDGET_TIMEOUT  # not header-timeout: not its fault
    assert trio.current_time() - start >= 30  # the idle timeout, not the header's
    assert budget.used == MiB


async def test_a_connection_held_up_by_the_budget_completes_once_it_is_free(
    autojump_clock: object,
) -> None:
    budget = MemoryBudget(MiB)
    budget.try_reserve(MiB)
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"5 hello")
    config = ServerConfig(memory_budget=MiB, limits=Limits(header_timeout=2, idle_timeout=30))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(handle_connection, server, config, budget=budget))
        await trio.sleep(10)  # five header timeouts: the header timer does not run
        budget.release(MiB)
        assert await receive_all(client) == b"hello"
    assert budget.used == 0


# -- A peer that trickles ---------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.FRAMED])
async def test_a_trickling_payload_is_closed_as_too_slow(
    autojump_clock: object, mode: Mode
) -> None:
    # One byte every 4 s keeps the idle timeout away for ever; the minimum
    # data rate (240 bytes/s after 5 s) does not.
    client, server = trio.testing.memory_stream_pair()
    config = ServerConfig(
        mode=mode, limits=Limits(idle_timeout=60, min_data_rate=240, min_data_rate_grace=5)
    )

    async def trickle() -> None:
        await client.send_all(b"100 ")
        for _ in range(100):
            await trio.sleep(4)
            await client.send_all(b"x")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        with trio.fail_after(100):
            report = await handle_connection(server, config)
        nursery.cancel_scope.cancel()
    assert report.outcome == Outcome.TOO_SLOW
    assert 5 <= report.duration <= 10


async def test_echo_mode_has_the_idle_timeout_alone(autojump_clock: object) -> None:
    client, server = trio.testing.memory_stream_pair()
    config = ServerConfig(mode=Mode.ECHO, limits=Limits(idle_timeout=60))

    async def trickle() -> None:
        for _ in range(50):  # 200 s of a byte every 4 s
            await trio.sleep(4)
            await client.send_all(b"x")
        await client.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        report = await handle_connection(server, config)
    assert report.outcome == Outcome.CLOSED
    assert report.bytes_out == 50


@pytest.mark.parametrize("mode", [Mode.COUNT, Mode.FRAMED])
async def test_a_minimum_rate_of_zero_turns_the_check_off(
    autojump_clock: object, mode: Mode
) -> None:
    client, server = trio.testing.memory_stream_pair()
    config = ServerConfig(mode=mode, limits=Limits(idle_timeout=60, min_data_rate=0))

    async def trickle() -> None:
        await client.send_all(b"10 ")
        for _ in range(10):
            await trio.sleep(20)
            await client.send_all(b"x")
        await client.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        report = await handle_connection(server, config)
    assert report.clean
    assert report.duration >= 200


# -- Memory against a flood, as an operator sees it --------------------------------


FLOODS = [
    pytest.param(b"0 ", id="empty-frames"),
    pytest.param(b"1 x", id="one-byte-frames"),
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("frame", FLOODS)
def test_a_flood_of_tiny_frames_stays_within_the_budget(tmp_path: Path, frame: bytes) -> None:
    # A client pipelines tiny framed messages and never reads the answers.
    # It floods until its sends block with a budget's worth read by the
    # server (what it sent, less what the kernel still holds between the
    # two), however slow the server is, and only then compares the server's
    # resident memory with its bound: a flood too slow to fill the budget
    # fails, it cannot pass.
    budget = 4 * MiB
    server = ChildProcess(
        [
            sys.executable,
            "-m",
            "trio_echo",
            "server",
            "--port",
            "0",
            "--mode",
            "framed",
            "--connection-buffer",
            "4MiB",
            "--memory-budget",
            "4MiB",
            "--log-level",
            "warning",
        ],
        tmp_path,
    )
    try:
        port = server.wait_for_port()
        with socket.create_connection(("127.0.0.1", port)) as warm:  # a first connection
            warm.sendall(encode_message(b"w"))
            warm.shutdown(socket.SHUT_WR)
            assert warm.recv(16) == encode_message(b"w")
        baseline = server.rss()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        client.connect(("127.0.0.1", port))
        client.setblocking(False)
        block = memoryview(frame * (64 * 1024 // len(frame)))
        rest = block
        sent = 0
        client_port = client.getsockname()[1]
        deadline = time.monotonic() + 240
        with client:
            while True:
                try:
                    count = client.send(rest)
                    sent += count
                    rest = rest[count:] or block
                    continue
                except BlockingIOError:
                    pass
                in_kernel = queued(client_port, port, "tx") + queued(port, client_port, "rx")
                if sent - in_kernel >= budget:
                    break  # blocked, and the server read a budget's worth
                assert time.monotonic() < deadline, f"the server read {sent - in_kernel} bytes"
                select.select([], [client], [], 0.1)
            growth = server.rss() - baseline
            assert growth <= budget + MiB, f"{growth / MiB:.1f} MiB for a {budget // MiB} MiB bound"
    finally:
        server.stop()


def queued(local_port: int, remote_port: int, queue: str) -> int:
    """Bytes in a loopback TCP socket's send ("tx") or receive ("rx") queue.

    Read from /proc/net/tcp, where each socket has ``tx_queue:rx_queue``.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (local_port, remote_port):
            tx, rx = (int(value, 16) for value in fields[4].split(":"))
            return tx if queue == "tx" else rx
    raise AssertionError(f"no socket {local_port} -> {remote_port} in /proc/net/tcp")
