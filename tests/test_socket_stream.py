"""FastSocketStream against trio's own stream conformance checks, and the
properties its fast path must keep: cancellation, fairness, errors; with and
without a Poller to wait through."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_echo._socket_stream import FAIR_SHARE, FastSocketStream, Poller


def socket_pair(
    fair_share: int = FAIR_SHARE, poller: Poller | None = None, *, set_nonblocking: bool = True
) -> tuple[FastSocketStream, FastSocketStream]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return (
        FastSocketStream(
            client, fair_share=fair_share, poller=poller, set_nonblocking=set_nonblocking
        ),
        FastSocketStream(
            server, fair_share=fair_share, poller=poller, set_nonblocking=set_nonblocking
        ),
    )


@pytest.fixture(params=["trio-wait", "poller"])
async def poller(
    request: pytest.FixtureRequest, nursery: trio.Nursery
) -> AsyncIterator[Poller | None]:
    """None (streams wait through trio), or a running Poller."""
    if request.param == "trio-wait":
        yield None
        return
    if not Poller.available:
        pytest.skip("no epoll here")
    running = Poller()
    await nursery.start(running.run)
    yield running


@pytest.mark.parametrize("set_nonblocking", [True, False], ids=["non-blocking", "blocking-socket"])
async def test_trio_half_closeable_stream_checks(
    poller: Poller | None, set_nonblocking: bool
) -> None:
    # trio's checks require every call to yield: fair_share=1 does. A socket
    # left blocking (set_nonblocking=False) must not make any call block.
    async def make_pair() -> tuple[FastSocketStream, FastSocketStream]:
        pair = socket_pair(fair_share=1, poller=poller, set_nonblocking=set_nonblocking)
        assert pair[0].socket.getblocking() is not set_nonblocking
        return pair

    async def make_clogged_pair() -> tuple[FastSocketStream, FastSocketStream]:
        left, right = socket_pair(fair_share=1, poller=poller, set_nonblocking=set_nonblocking)
        for stream in (left, right):
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        # Fill both send buffers, so that the first send_all call blocks.
        for stream in (left, right):
            try:
                while True:
                    stream.socket.send(b"x" * 10_000, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        return left, right

    await trio.testing.check_half_closeable_stream(make_pair, make_clogged_pair)
    if poller is not None:
        assert poller.watched == 0  # every stream the checks made was closed


async def test_end_of_stream_after_a_short_read(poller: Poller | None) -> None:
    # The data and the end of stream arrive together; the read that takes
    # the data leaves the end behind, and no edge will come for it again.
    left, right = socket_pair(poller=poller)
    received = []

    async def read() -> None:
        received.append(await right.receive_some(100))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        left.socket.send(b"abc")
        left.socket.shutdown(socket.SHUT_WR)
    assert received == [b"abc"]
    with trio.fail_after(5):
        assert await right.receive_some(100) == b""
    await left.aclose()
    await right.aclose()


async def test_close_wakes_a_waiting_reader_and_writer(poller: Poller | None) -> None:
    left, right = socket_pair(poller=poller)
    right.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    outcomes: list[str] = []

    async def expect_closed(call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except trio.ClosedResourceError:
            outcomes.append("closed")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(expect_closed, right.receive_some)
            nursery.start_soon(expect_closed, functools.partial(right.send_all, b"x" * 10_000_000))
            await trio.testing.wait_all_tasks_blocked()
            right.close_nowait()
    assert outcomes == ["closed", "closed"]
    if poller is not None:
        assert poller.watched == 0
    await left.aclose()


async def test_cancelling_a_waiting_reader(poller: Poller | None) -> None:
    left, right = socket_pair(poller=poller)
    with trio.move_on_after(0.05) as scope:
        await right.receive_some()
    assert scope.cancelled_caught
    await left.send_all(b"after")
    with trio.fail_after(5):
        assert await right.receive_some() == b"after"
    await left.aclose()
    await right.aclose()


class _PassRecorder(trio.abc.Instrument):
    """Numbers trio's scheduler passes, and records the pass of each step."""

    def __init__(self) -> None:
        self.passes = 0
        self.steps: list[tuple[int, trio.lowlevel.Task]] = []

    def after_io_wait(self, timeout: float) -> None:
        self.passes += 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps.append((self.passes, task))


async def test_the_poller_wakes_a_reader_in_trios_own_pass() -> None:
    # The poller's task wakes when its epoll has events, and could wake the
    # reader only in the pass after; the poller's instrument wakes it in the
    # same pass as the poller's task.
    if not Poller.available:
        pytest.skip("no epoll here")
    poller = Poller()
    recorder = _PassRecorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(poller.run)
        (poller_task,) = nursery.child_tasks
        left, right = socket_pair(poller=poller)
        reader_task = []

        async def read() -> None:
            reader_task.append(trio.lowlevel.current_task())
            assert await right.receive_some() == b"now"

        async with trio.open_nursery() as readers:
            readers.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.add_instrument(recorder)
            left.send_nowait(b"now")
        trio.lowlevel.remove_instrument(recorder)
        nursery.cancel_scope.cancel()
    passes = {task: number for number, task in reversed(recorder.steps)}  # first step
    assert passes[reader_task[0]] == passes[poller_task]
    await left.aclose()
    await right.aclose()


async def test_waiters_carry_on_through_trio_once_the_poller_stops() -> None:
    poller = Poller()
    left, right = socket_pair(poller=poller)
    received = []

    async def read() -> None:
        received.append(await right.receive_some())

    with trio.fail_after(5):
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as inner:
                await inner.start(poller.run)
                outer.start_soon(read)
                await trio.testing.wait_all_tasks_blocked()
                assert poller.watched == 1
                inner.cancel_scope.cancel()
            assert not poller.running
            await left.send_all(b"late")
    assert received == [b"late"]
    with pytest.raises(RuntimeError, match="already run"):
        await poller.run()
    await left.aclose()
    await right.aclose()


async def test_calls_that_need_no_wait_still_yield_now_and_then(poller: Poller | None) -> None:
    left, right = socket_pair(poller=poller)
    await left.send_all(b"x" * 100_000)
    others_ran = 0

    async def other_task() -> None:
        nonlocal others_ran
        while True:
            others_ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.lowlevel.checkpoint()  # let it start (it never blocks)
        before = others_ran
        for _ in range(FAIR_SHARE * 4):
            assert await right.receive_some(1)  # data is always there: no wait
        # It yielded about once per FAIR_SHARE calls: not never, not always.
        assert 3 <= others_ran - before <= 5
        nursery.cancel_scope.cancel()
    await left.aclose()
    await right.aclose()


class _StepCounter(trio.abc.Instrument):
    """Counts the steps of one task: a yield ends a step."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_bytes_moved_end_a_turn_before_its_calls_do(poller: Poller | None) -> None:
    # A turn of 16 calls or 100,000 bytes moved, whichever comes first.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        left = FastSocketStream(socket.create_connection(listener.getsockname()))
        right = FastSocketStream(listener.accept()[0], turn_bytes=100_000, poller=poller)
    counter = _StepCounter(trio.lowlevel.current_task())

    async def yields_during_a_receive() -> bool:
        left.send_nowait(b"z")  # on loopback, it has arrived when this returns
        before = counter.steps
        assert await right.receive_some(1) == b"z"
        return counter.steps > before

    trio.lowlevel.add_instrument(counter)
    try:
        # One small call is well within a turn: no yield.
        assert not await yields_during_a_receive()
        # Calls that are not checkpoints count the bytes they move too:
        # once 100,000 have gone (in and out), the next call ends the turn.
        assert left.send_nowait(b"x" * 60_000) == 60_000
        moved = 0
        while moved < 60_000:
            moved += len(right.receive_nowait(60_000) or b"")
        assert not await yields_during_a_receive()
        assert right.send_nowait(b"y" * 40_000) == 40_000
        assert await yields_during_a_receive()
    finally:
        trio.lowlevel.remove_instrument(counter)
    await left.aclose()
    await right.aclose()


async def test_cancellation_is_seen_even_without_waiting(poller: Poller | None) -> None:
    left, right = socket_pair(poller=poller)
    await left.send_all(b"data ready")
    with trio.CancelScope() as scope:
        scope.cancel()
        await right.receive_some()
        pytest.fail("receive_some did not check for cancellation")
    assert scope.cancelled_caught
    await left.aclose()
    await right.aclose()


async def test_send_nowait_and_reset(poller: Poller | None) -> None:
    left, right = socket_pair(poller=poller)
    assert left.send_nowait(b"abc") == 3
    assert await right.receive_some() == b"abc"
    right.socket.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    await right.aclose()
    await trio.sleep(0.05)
    with pytest.raises(trio.BrokenResourceError):
        await left.receive_some()

    def send_until_broken() -> None:
        for _ in range(100):
            left.send_nowait(b"x" * 1000)

    with pytest.raises(trio.BrokenResourceError):
        send_until_broken()
    await left.aclose()
    with pytest.raises(trio.ClosedResourceError):
        left.send_nowait(b"x")


def test_needs_a_stream_socket() -> None:
    with socket.socket(type=socket.SOCK_DGRAM) as sock, pytest.raises(ValueError, match="stream"):
        FastSocketStream(sock)
    with socket.socket() as sock, pytest.raises(ValueError, match="fair_share"):
        FastSocketStream(sock, fair_share=0)
    with socket.socket() as sock, pytest.raises(ValueError, match="turn_bytes"):
        FastSocketStream(sock, turn_bytes=0)
