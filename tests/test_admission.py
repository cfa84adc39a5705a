"""The memory budget under connections that compete for it: no deadlock, by construction.

Each test runs on trio's `MockClock` with autojump: a deadlock would jump the
clock to a timeout, and end connections as `budget-timeout`, never hang.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Awaitable
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
import trio
import trio.testing

from tests.support.streams import buffered_stream_pair, receive_all
from trio_echo import (
    ConnectionReport,
    Limits,
    MemoryBudget,
    Mode,
    Outcome,
    ServerConfig,
    encode_message,
    handle_connection,
)
from trio_echo.protocol import BUFFER_OVERHEAD, CLEAN_OUTCOMES, READ_SIZE_MIN
from trio_echo.protocol._limits import default_max_held
from trio_echo.server._budget import ONE_READ, Account, reserve_of
from trio_echo.server._listeners import accepted_stream

KiB = 1024
MiB = 1024 * KiB


class CountingBudget(MemoryBudget):
    """A budget that keeps the peak of what it charged, and of what it charged as large.

    Besides, the peak of what large requests held just after one was
    granted: what the budget's grants alone decide (a connection's `take`
    may add for a moment what framing a read costs, one read at most).
    """

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.peak = self.large_peak = self.granted_large_peak = 0
        self.requests = 0  # calls to try_reserve

    def _look(self, granted_large: bool = False) -> None:
        self.peak = max(self.peak, self.used)
        self.large_peak = max(self.large_peak, self.large_used)
        if granted_large:
            self.granted_large_peak = max(self.granted_large_peak, self.large_used)

    def take(self, count: int, large: int = 0) -> None:
        super().take(count, large)
        self._look()

    def try_reserve(self, wanted: int, minimum: int = 1, large: bool = False) -> int:
        self.requests += 1
        granted = super().try_reserve(wanted, minimum, large)
        self._look(large and granted > 0)
        return granted

    def _serve(self) -> None:
        waiting = len(self._large)
        super()._serve()
        self._look(len(self._large) < waiting)


async def send_everything_then_read(
    stream: trio.abc.Stream, payload: bytes, prefix: bytes | None = None
) -> bytes:
    """The original's client: the whole message first, and only then the echo."""
    message = encode_message(payload) if prefix is None else prefix + payload
    await stream.send_all(message)
    echoed = await receive_all(stream)
    await stream.aclose()
    return echoed


async def serve(
    nursery: trio.Nursery,
    config: ServerConfig,
    budget: MemoryBudget,
    reports: list[ConnectionReport],
) -> trio.abc.Stream:
    """Start serving one connection; return the client's end.

    The streams hold 16 KiB in flight each way, as small socket buffers do.
    """
    client, server = buffered_stream_pair(16 * KiB)

    async def run() -> None:
        reports.append(await handle_connection(server, config, budget=budget))

    nursery.start_soon(run)
    return client


async def test_clients_that_send_everything_before_reading_all_complete_in_rounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Eight messages that need 700 KiB each, a budget that has room for four
    # of them less its reserve, and small buffers between the peers: each must
    # be held almost whole by the server before its client reads. The budget once gave
    # every one of them a part, none enough, and they all waited for the idle
    # timeout. Admitted whole, they complete four at a time.
    budget = CountingBudget(4 * MiB)
    config = ServerConfig(memory_budget=4 * MiB)
    payload = b"p" * (600 * KiB)
    need = default_max_held(len(payload))
    rounds = (budget.total - budget.kept) // need
    assert rounds == 4
    reports: list[ConnectionReport] = []
    echoes: list[bytes] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(8):
            client = await serve(nursery, config, budget, reports)

            async def run(client: trio.abc.Stream = client) -> None:
                echoes.append(await send_everything_then_read(client, payload))

            nursery.start_soon(run)
    assert echoes == [payload] * 8
    assert [report.outcome for report in reports] == [Outcome.COMPLETE] * 8
    assert trio.current_time() == start  # no timer ran out: nothing waited for one
    # In rounds, never all at once: what the budget grants large requests
    # never takes its reserve. A read's chunk may be held with its answers
    # for a moment besides, one read more per connection at most (docs/discussion/bounds.md).
    assert budget.granted_large_peak <= budget.total - budget.kept
    assert budget.peak <= budget.total + 8 * ONE_READ
    assert budget.used == 0


async def test_a_small_client_is_served_at_once_while_the_budget_is_full_of_large_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    budget = MemoryBudget(4 * MiB)
    config = ServerConfig(memory_budget=4 * MiB)
    payload = b"h" * (600 * KiB)
    reports: list[ConnectionReport] = []
    async with trio.open_nursery() as nursery:
        hogs = 0
        while not budget.waiting:  # large messages, none read, until one waits for room
            hog = await serve(nursery, config, budget, reports)
            nursery.start_soon(hog.send_all, encode_message(payload))
            await trio.testing.wait_all_tasks_blocked()
            hogs += 1
        assert hogs > 1
        assert budget.used > budget.total - budget.kept - default_max_held(len(payload))
        start = trio.current_time()
        small = await serve(nursery, config, budget, reports)
        await small.send_all(b"5 hello")
        assert await receive_all(small) == b"hello"
        assert trio.current_time() == start  # at once: the reserve was there for it
        nursery.cancel_scope.cancel()


async def test_a_peer_that_never_reads_is_closed_by_the_idle_timeout_as_its_own_fault(
    autojump_clock: trio.testing.MockClock,
) -> None:
    budget = MemoryBudget(4 * MiB)
    config = ServerConfig(memory_budget=4 * MiB, limits=Limits(idle_timeout=30))
    reports: list[ConnectionReport] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        hog = await serve(nursery, config, budget, reports)
        nursery.start_soon(hog.send_all, encode_message(b"n" * (600 * KiB)))
    (report,) = reports
    assert report.outcome == Outcome.IDLE_TIMEOUT  # it never read: not the server's limit
    assert trio.current_time() - start == pytest.approx(30, abs=1)
    assert budget.used == 0


async def test_a_peer_that_sends_now_and_then_but_never_reads_is_idle_all_the_same(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A framed message's answers fill the buffers between the peers, and the
    # peer reads none of them; a new message every 50 s once kept the idle
    # timer away for ever, and the answers held with it.
    budget = MemoryBudget(4 * MiB)
    config = ServerConfig(mode=Mode.FRAMED, memory_budget=4 * MiB, limits=Limits(idle_timeout=60))
    client, server = buffered_stream_pair(16 * KiB)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def trickle() -> None:
            await client.send_all(encode_message(b"f" * (100 * KiB)))
            with contextlib.suppress(trio.BrokenResourceError):
                for _ in range(20):
                    await trio.sleep(50)
                    await client.send_all(b"0 ")

        nursery.start_soon(trickle)
        await trio.testing.wait_all_tasks_blocked()
        report = await handle_connection(server, config, budget=budget)
        ended = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert report.outcome == Outcome.IDLE_TIMEOUT
    assert report.detail == "the peer took none of its answers for 60 s"
    assert ended == pytest.approx(60, abs=1)  # not at the 20th message's 1,000 s
    assert budget.used == 0


async def test_a_connection_whose_answers_wait_never_waits_for_the_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An echo connection whose peer does not read holds its answers; with
    # the budget full it waits for its peer to take them, not in the budget's
    # line, holding them: so nobody waits for room that a waiter holds.
    budget = MemoryBudget(2 * MiB)
    config = ServerConfig(mode=Mode.ECHO, memory_budget=2 * MiB, limits=Limits(idle_timeout=30))
    reports: list[ConnectionReport] = []
    async with trio.open_nursery() as nursery:
        client = await serve(nursery, config, budget, reports)
        sent = 0

        async def send() -> None:
            nonlocal sent
            while True:
                await client.send_all(b"e" * (64 * KiB))
                sent += 64 * KiB

        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.used <= budget.total - budget.kept + ONE_READ  # it grew only into free room
        assert budget.waiting == 0  # and it does not wait in the line
        held = budget.used
        # Its peer reads: it goes on.
        echoed = 0
        while echoed < held:
            echoed += len(await client.receive_some())
        await trio.testing.wait_all_tasks_blocked()
        assert sent > held
        nursery.cancel_scope.cancel()


async def test_a_waiting_connection_gives_back_a_length_prefix_it_holds() -> None:
    budget = MemoryBudget(64 * KiB)
    account = Account(budget)
    account.settle(7)  # "1234567": the digits of a length prefix split between reads
    assert budget.try_reserve(budget.total - 7) == budget.total - 7  # others hold the rest
    async with trio.open_nursery() as nursery:
        granted: list[int] = []

        async def read() -> None:
            granted.append(await account.reserve(4096))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.used == budget.total - 7  # it waits holding nothing
        budget.release(8192)
        await trio.testing.wait_all_tasks_blocked()
        assert granted == [4096]
        assert account.charged == 7 + 4096 + 64  # the digits are charged again with its read
    assert budget.waiting == 0


async def test_a_quiet_peer_waits_for_its_bytes_not_for_a_full_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # With the budget full, a connection whose peer sent nothing waits for
    # its bytes (under its header timer: its own fault), not in the budget's
    # line (under the server's). A socket can tell; a TLS stream cannot.
    budget = MemoryBudget(MiB)
    assert budget.try_reserve(MiB) == MiB  # others hold the whole budget
    client_socket, server_socket = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server_socket.setblocking(False)
    config = ServerConfig(memory_budget=MiB, limits=Limits(header_timeout=10, idle_timeout=60))
    start = trio.current_time()
    with client_socket:  # it never sends a byte
        async with trio.open_nursery() as nursery:
            reports: list[ConnectionReport] = []

            async def run() -> None:
                server = accepted_stream(server_socket)
                reports.append(await handle_connection(server, config, budget=budget))

            nursery.start_soon(run)
            await trio.testing.wait_all_tasks_blocked()
            assert budget.waiting == 0
    (report,) = reports
    assert report.outcome == Outcome.HEADER_TIMEOUT
    assert trio.current_time() - start == 10


async def test_a_stream_read_that_waits_for_its_peer_holds_no_room() -> None:
    # A peer that sent one digit of a length prefix and went quiet: the
    # connection holds the digit, and no room for the read that waits.
    budget = MemoryBudget(MiB)
    config = ServerConfig(mode=Mode.FRAMED, memory_budget=MiB)
    async with trio.open_nursery() as nursery:
        client = await serve(nursery, config, budget, [])
        await client.send_all(b"1")
        await trio.testing.wait_all_tasks_blocked()
        assert budget.used == 1
        nursery.cancel_scope.cancel()
    assert budget.used == 0


async def test_what_small_requests_hold_never_keeps_a_large_message_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A message as large as the budget less its reserve: the few bytes that
    # quiet connections hold come out of the reserve, not out of its room.
    budget = MemoryBudget(4 * MiB)
    config = ServerConfig(memory_budget=4 * MiB)
    framed = ServerConfig(mode=Mode.FRAMED, memory_budget=4 * MiB)
    payload = b"L" * (3 * MiB)
    async with trio.open_nursery() as nursery:
        for _ in range(8):  # each holds one digit of a length prefix
            quiet = await serve(nursery, framed, budget, [])
            await quiet.send_all(b"1")
        await trio.testing.wait_all_tasks_blocked()
        assert budget.used == 8
        start = trio.current_time()
        client = await serve(nursery, config, budget, [])
        echoed = bytearray()

        async def read() -> None:
            while data := await client.receive_some():
                echoed.extend(data)

        async with trio.open_nursery() as exchange:
            exchange.start_soon(read)
            await client.send_all(encode_message(payload))
        assert echoed == payload
        assert trio.current_time() == start  # it waited for nothing
        nursery.cancel_scope.cancel()


def test_the_reserve_is_the_larger_of_a_mebibyte_and_a_sixteenth() -> None:
    assert reserve_of(256 * MiB) == 16 * MiB
    assert reserve_of(8 * MiB) == MiB
    assert reserve_of(MiB) == MiB // 2  # never more than half
    assert MemoryBudget(256 * MiB).kept == 16 * MiB


# -- Any arrivals, any sizes: never a deadlock ----------------------------------------

_CLIENT = st.tuples(
    # The original's client is the one that needs the server to hold its
    # whole message: half of them are.
    st.sampled_from(["count-all-first"] * 3 + ["count-small", "framed", "echo"]),
    st.builds(  # the payload's size: up to 900 KiB, odd bytes included
        lambda hundreds, odd: hundreds * 100 * KiB + odd,
        st.integers(min_value=0, max_value=9),
        st.integers(min_value=0, max_value=99),
    ),
    st.integers(min_value=0, max_value=3),  # turns to wait before starting
)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.example(clients=[("count-all-first", 800 * KiB, 0)] * 6, budget_size=3 * MiB)
@hypothesis.given(
    clients=st.lists(_CLIENT, min_size=1, max_size=12),
    budget_size=st.sampled_from([2 * MiB, 3 * MiB, 5 * MiB]),
)
def test_whatever_arrives_every_client_that_reads_completes(
    clients: list[tuple[str, int, int]], budget_size: int
) -> None:
    # Clients of every kind, each reading its answers in time (the original's
    # client reads after sending its whole message): whatever the sizes and
    # the order, the budget never leaves them all waiting. A deadlock would
    # jump the mock clock to the idle timeout and end them as budget-timeout.
    async def main() -> None:
        budget = MemoryBudget(budget_size)
        reports: list[ConnectionReport] = []
        results: list[bool] = []
        limits = Limits(max_message_size=MiB, idle_timeout=600)
        async with trio.open_nursery() as nursery:
            for kind, size, delay in clients:
                mode = {"framed": Mode.FRAMED, "echo": Mode.ECHO}.get(kind, Mode.COUNT)
                config = ServerConfig(mode=mode, memory_budget=budget_size, limits=limits)
                client = await serve(nursery, config, budget, reports)
                payload = bytes([size % 251]) * (size if kind != "count-small" else size % 100)
                nursery.start_soon(
                    functools.partial(exchange, kind, client, payload, delay, results)
                )
        assert all(results)
        assert len(results) == len(clients)
        assert {report.outcome for report in reports} <= CLEAN_OUTCOMES  # no timer ran out
        assert budget.used == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def exchange(
    kind: str, client: trio.abc.Stream, payload: bytes, delay: int, results: list[bool]
) -> None:
    for _ in range(delay):
        await trio.lowlevel.checkpoint()
    if kind.startswith("count"):
        results.append(await send_everything_then_read(client, payload) == payload)
        return
    # Framed and echo clients read as they send: two messages, or the bytes, then the end.
    request = encode_message(payload) * 2 if kind == "framed" else payload
    expected = request
    got = bytearray()

    async def read() -> None:
        while chunk := await client.receive_some():
            got.extend(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await client.send_all(request)
        await client.send_eof()  # type: ignore[attr-defined]
    await client.aclose()
    results.append(bytes(got) == expected)


# -- Reads that go straight back ---------------------------------------------------


def unix_pair(receive_buffer: int | None = None) -> tuple[socket.socket, trio.abc.Stream]:
    """A client socket, blocking, and the server's stream of the other end."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if receive_buffer is not None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, receive_buffer)
    server.setblocking(False)
    return client, accepted_stream(server)


async def test_an_echo_that_goes_straight_back_reserves_nothing() -> None:
    budget = CountingBudget(MiB)
    config = ServerConfig(mode=Mode.ECHO, memory_budget=MiB)
    client, server = unix_pair()
    with client:
        async with trio.open_nursery() as nursery:
            reports: list[ConnectionReport] = []
            nursery.start_soon(_append, reports, handle_connection(server, config, budget=budget))
            await trio.testing.wait_all_tasks_blocked()
            first = budget.requests  # the look at what is there before the task waits
            for size in (1, 1000, 5000, 70_000):
                message = bytes(i % 256 for i in range(size))
                await trio.to_thread.run_sync(client.sendall, message)
                assert await read_back(client, size) == message
            client.shutdown(socket.SHUT_WR)
    assert [report.outcome for report in reports] == [Outcome.CLOSED]
    assert budget.requests == first  # no read was reserved
    assert budget.peak <= READ_SIZE_MIN + BUFFER_OVERHEAD  # that first look's, at most


async def _append(reports: list[ConnectionReport], serving: Awaitable[ConnectionReport]) -> None:
    reports.append(await serving)


async def read_back(client: socket.socket, size: int) -> bytes:
    """What comes back to ``client``, until ``size`` bytes have."""
    echoed = b""
    while len(echoed) < size:
        await trio.lowlevel.wait_readable(client)
        echoed += client.recv(1 << 20, socket.MSG_DONTWAIT)
    return echoed


async def test_what_did_not_go_straight_back_is_charged_exactly() -> None:
    # The client does not read: sends go short, and what is left is held,
    # charged, and sent by the writer once the client reads.
    budget = CountingBudget(4 * MiB)
    config = ServerConfig(mode=Mode.ECHO, memory_budget=4 * MiB)
    client, server = unix_pair(receive_buffer=8 * KiB)
    message = bytes(i % 253 for i in range(600 * KiB))
    with client:
        async with trio.open_nursery() as nursery:
            reports: list[ConnectionReport] = []
            nursery.start_soon(_append, reports, handle_connection(server, config, budget=budget))
            sent = 0
            while sent < len(message):  # as much as goes: then the server holds it
                await trio.testing.wait_all_tasks_blocked()
                try:
                    sent += client.send(message[sent : sent + 64 * KiB], socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
            await trio.testing.wait_all_tasks_blocked()
            assert budget.used > 0  # what waits is charged
            assert budget.peak <= budget.total
            assert await read_back(client, sent) == message[:sent]
            await trio.testing.wait_all_tasks_blocked()
            assert budget.used == 0  # all sent: nothing held, nothing charged
            client.shutdown(socket.SHUT_WR)
    assert [report.outcome for report in reports] == [Outcome.CLOSED]


async def test_an_echo_waits_for_room_it_might_need_before_it_reads() -> None:
    # Others hold the whole budget: the read that could go straight back
    # waits all the same, as a short send would leave it held.
    budget = MemoryBudget(MiB)
    assert budget.try_reserve(MiB) == MiB
    config = ServerConfig(mode=Mode.ECHO, memory_budget=MiB)
    client, server = unix_pair()
    with client:
        async with trio.open_nursery() as nursery:
            reports: list[ConnectionReport] = []
            nursery.start_soon(_append, reports, handle_connection(server, config, budget=budget))
            client.sendall(b"hello")
            await trio.testing.wait_all_tasks_blocked()
            assert budget.waiting == 1  # not read: it waits for room
            with pytest.raises(BlockingIOError):
                client.recv(10, socket.MSG_DONTWAIT)
            budget.release(MiB)
            await trio.lowlevel.wait_readable(client)
            assert client.recv(10) == b"hello"
            client.shutdown(socket.SHUT_WR)
    assert [report.outcome for report in reports] == [Outcome.CLOSED]


def bytes_in_frames(task: trio.lowlevel.Task) -> list[str]:
    """The large bytes objects the frames of ``task``'s coroutine chain hold."""
    found = []
    coroutine: Any = task.coro
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None)
        for name, value in (frame.f_locals if frame is not None else {}).items():
            if isinstance(value, bytes | bytearray | memoryview) and len(value) > 1024:
                found.append(f"{frame.f_code.co_name}: {name}")  # type: ignore[union-attr]
        coroutine = getattr(coroutine, "cr_await", None)
    return found


async def test_a_connection_waiting_between_echoes_holds_no_read() -> None:
    # Each full read doubles the next; the last is short, and the connection
    # then waits for its peer: none of what it read may stay alive, uncharged.
    budget = MemoryBudget(MiB)
    config = ServerConfig(mode=Mode.ECHO, memory_budget=MiB)
    client, server = unix_pair()
    with client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(handle_connection, server, config, budget=budget))
            await trio.testing.wait_all_tasks_blocked()
            (task,) = nursery.child_tasks
            for size in (4096, 8192, 16384, 32768, 120 * KiB):
                await trio.to_thread.run_sync(client.sendall, b"r" * size)
                await read_back(client, size)
            await trio.testing.wait_all_tasks_blocked()
            assert bytes_in_frames(task) == []
            assert budget.used == 0
            client.shutdown(socket.SHUT_WR)


async def test_a_read_whose_echo_cannot_be_sent_is_counted_in_the_line() -> None:
    config = ServerConfig(mode=Mode.ECHO)
    client, server = unix_pair()
    reports: list[ConnectionReport] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_append, reports, handle_connection(server, config))
        client.sendall(b"a")
        await trio.lowlevel.wait_readable(client)
        assert client.recv(10) == b"a"  # it echoes reads straight back now
        await trio.testing.wait_all_tasks_blocked()
        client.sendall(b"b" * 1100)
        client.close()  # its bytes wait to be read; their echo has nowhere to go
    (report,) = reports
    assert report.outcome == Outcome.RESET
    assert (report.bytes_in, report.bytes_out) == (1101, 1)
