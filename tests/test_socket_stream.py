"""The server's socket stream, exactly as the server builds it, against trio's
own stream checks and contract: checkpoints, cancellation, notify_closing,
trio's view of who waits; and the reads that once stalled (a short read with
in-band data still queued behind it)."""

from __future__ import annotations

import array
import functools
import os
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_echo.server._listeners import accepted_stream
from trio_echo.server._socket_stream import FastSocketStream, unacknowledged


def tcp_socket_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def stream_pair() -> tuple[FastSocketStream, FastSocketStream]:
    """Two connected streams, each built as the server builds its streams."""
    client, server = tcp_socket_pair()
    return accepted_stream(client), accepted_stream(server)


async def test_trio_half_closeable_stream_checks() -> None:
    # The stream as the server configures it; its sockets are left
    # blocking, as accepted sockets are, and no call may block on that.
    async def make_pair() -> tuple[FastSocketStream, FastSocketStream]:
        pair = stream_pair()
        assert pair[0].socket.getblocking()
        return pair

    async def make_clogged_pair() -> tuple[FastSocketStream, FastSocketStream]:
        left, right = stream_pair()
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


async def test_every_async_call_is_a_checkpoint_even_when_it_need_not_wait() -> None:
    left, right = stream_pair()
    left.send_nowait(b"x" * 100)
    await trio.lowlevel.wait_readable(right.socket)  # arrived
    for call in (
        functools.partial(right.receive_some, 5),
        functools.partial(right.receive_some, 5),  # the read before was not short
        right.wait_receivable,
        functools.partial(right.send_all, b"y"),
        right.wait_send_all_might_not_block,
        right.send_eof,
        right.aclose,
    ):
        with trio.testing.assert_checkpoints():
            await call()
    await left.aclose()


async def test_the_nowait_calls_never_yield() -> None:
    left, right = stream_pair()
    with trio.testing.assert_no_checkpoints():
        assert right.receive_nowait(10) is None
        assert left.send_nowait(b"abc") == 3
        assert unacknowledged(left) in (0, 3, None)
    await right.wait_receivable()  # drained, so it waits until "abc" arrives
    with trio.testing.assert_no_checkpoints():
        assert right.receive_nowait(10) == b"abc"
        left.close_nowait()
        assert unacknowledged(left) is None  # closed: nothing to tell
    await right.aclose()


@pytest.mark.skipif(not hasattr(__import__("termios"), "TIOCOUTQ"), reason="needs TIOCOUTQ")
async def test_unacknowledged_counts_what_the_peer_has_not_taken() -> None:
    # The peer reads nothing, and its receive buffer is small: most of what
    # was sent stays unacknowledged in the kernel.
    client, server = tcp_socket_pair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stream = accepted_stream(server)
    sent = stream.send_nowait(b"u" * 300_000)
    assert sent > 100_000
    assert 0 < (unacknowledged(stream) or 0) <= sent
    client.close()
    await stream.aclose()


async def test_waiting_until_receivable_after_a_short_read() -> None:
    left, right = stream_pair()
    assert right.receive_nowait(10) is None  # empty: the next wait waits
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def wait() -> None:
            await right.wait_receivable()
            done.set()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        left.send_nowait(b"abc")
        await done.wait()
    assert right.receive_nowait(10) == b"abc"
    await left.aclose()
    await right.aclose()


async def test_drained_says_when_the_next_read_should_wait() -> None:
    left, right = stream_pair()
    assert not right.drained()  # nothing read yet: a read may find something
    assert right.receive_nowait(10) is None
    assert right.drained()
    left.send_nowait(b"x" * 20)
    await right.wait_receivable()  # drained: trio's wait, until the bytes are there
    assert right.receive_nowait(10) == b"x" * 10
    assert not right.drained()  # a full read: there may be more
    assert right.receive_nowait(100) == b"x" * 10
    assert right.drained()  # a short read
    left.send_nowait(b"y")
    with trio.testing.assert_checkpoints():
        await right.wait_receivable()
    async with trio.open_nursery() as nursery:
        assert right.receive_nowait(100) == b"y"
        nursery.start_soon(right.wait_receivable)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await right.wait_receivable()  # a second waiter
        left.send_nowait(b"z")  # the first wakes
    await right.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await right.wait_receivable()
    await left.aclose()


async def test_end_of_stream_after_a_short_read() -> None:
    left, right = stream_pair()
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


async def read_until(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    received = b""
    while len(received) < size:
        data = await stream.receive_some(100)
        assert data, "end of stream before every byte came"
        received += data
    return received


async def test_data_behind_tcp_urgent_data_is_read() -> None:
    # A read stops short at the urgent mark with in-band data still queued:
    # the next read must find that data, not wait for more to arrive.
    left, right = stream_pair()
    left.socket.send(b"abc")
    left.socket.send(b"d", socket.MSG_OOB)
    left.socket.send(b"efgh")
    await trio.lowlevel.wait_readable(right.socket)  # (loopback delivers each send at once)
    with trio.fail_after(5):
        assert await read_until(right, 7) == b"abcefgh"
    await left.aclose()
    await right.aclose()


async def test_data_behind_a_message_carrying_file_descriptors_is_read() -> None:
    # On a unix socket, a read stops after a message that carried file
    # descriptors, with more data queued behind it.
    left, right = socket.socketpair()
    stream = FastSocketStream(right)
    passed = os.dup(0)
    fds = array.array("i", [passed])
    left.sendmsg([b"abc"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    os.close(passed)
    left.sendall(b"defg")
    with trio.fail_after(5):
        assert await read_until(stream, 7) == b"abcdefg"
    left.close()
    await stream.aclose()


async def test_a_closed_stream_on_a_shared_file_stays_quiet() -> None:
    # A socket whose open file is shared (here by dup) is still readable
    # after the stream closes it. Nothing may keep reporting it: the
    # scheduler must be able to sleep, and a new stream on the same fd
    # number must not see the old socket's events.
    left, right = stream_pair()
    with trio.move_on_after(0.01):
        await right.receive_some()  # it has waited once
    shared = os.dup(right.socket.fileno())
    fd = right.socket.fileno()
    await right.aclose()
    left.send_nowait(b"for the shared file")
    passes = 0

    class CountPasses(trio.abc.Instrument):
        def after_io_wait(self, timeout: float) -> None:
            nonlocal passes
            passes += 1

    reuse, reuse_peer = socket.socketpair()
    counter = CountPasses()
    trio.lowlevel.add_instrument(counter)
    try:
        other = FastSocketStream(reuse)
        with trio.move_on_after(0.3) as waited:
            await other.receive_some()
        assert waited.cancelled_caught  # nothing stale was delivered
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert passes < 20, f"the scheduler woke {passes} times in 0.3 s with nothing to do"
    if reuse.fileno() == fd:
        reuse_peer.send(b"fresh")
        with trio.fail_after(5):
            assert await other.receive_some() == b"fresh"
    os.close(shared)
    await other.aclose()
    reuse_peer.close()
    await left.aclose()


async def test_notify_closing_wakes_a_waiting_reader() -> None:
    # trio's protocol for closing a socket that a task may wait on.
    left, right = stream_pair()
    outcome = []

    async def read() -> None:
        try:
            await right.receive_some()
        except trio.ClosedResourceError:
            outcome.append("closed")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.notify_closing(right.socket)
            right.socket.close()
    assert outcome == ["closed"]
    await left.aclose()


async def test_trio_sees_the_tasks_that_wait_on_the_stream() -> None:
    pairs = [stream_pair() for _ in range(10)]
    async with trio.open_nursery() as nursery:
        for _left, right in pairs:
            nursery.start_soon(right.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        statistics = trio.lowlevel.current_statistics().io_statistics
        assert statistics.tasks_waiting_read >= 10
        nursery.cancel_scope.cancel()
    for left, right in pairs:
        await left.aclose()
        await right.aclose()


async def test_close_wakes_a_waiting_reader_and_writer() -> None:
    left, right = stream_pair()
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
    await left.aclose()


async def test_cancelling_a_waiting_reader() -> None:
    left, right = stream_pair()
    with trio.move_on_after(0.05) as scope:
        await right.receive_some()
    assert scope.cancelled_caught
    await left.send_all(b"after")
    with trio.fail_after(5):
        assert await right.receive_some() == b"after"
    await left.aclose()
    await right.aclose()


async def test_cancellation_is_seen_even_without_waiting() -> None:
    left, right = stream_pair()
    await left.send_all(b"data ready")
    with trio.CancelScope() as scope:
        scope.cancel()
        await right.receive_some()
        pytest.fail("receive_some did not check for cancellation")
    assert scope.cancelled_caught
    assert right.receive_nowait() == b"data ready"  # nothing was taken
    await left.aclose()
    await right.aclose()


async def test_send_nowait_and_reset() -> None:
    left, right = stream_pair()
    assert left.send_nowait(b"abc") == 3
    assert await right.receive_some() == b"abc"
    right.socket.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    await right.aclose()
    await trio.lowlevel.wait_readable(left.socket)  # the reset arrived
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


async def test_send_eof_holds_the_send_side_across_its_checkpoint() -> None:
    # send_eof yields at its checkpoint before it half-closes; a send_all
    # started meanwhile must be told the stream is busy, as trio's own
    # SocketStream tells it, and the other way round. trio runs the two
    # tasks in either order, so the race is run many times: each time,
    # exactly one call is refused and the other goes through.
    for _ in range(20):
        left, right = stream_pair()
        results: list[str] = []

        async def call(method: Callable[[], Awaitable[None]], results: list[str]) -> None:
            try:
                await method()
            except trio.BusyResourceError:
                results.append("busy")
            else:
                results.append("done")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, left.send_eof, results)
            nursery.start_soon(call, functools.partial(left.send_all, b"payload"), results)
        assert sorted(results) == ["busy", "done"]
        await left.aclose()
        await right.aclose()


@pytest.mark.skipif(not hasattr(__import__("termios"), "TIOCOUTQ"), reason="needs TIOCOUTQ")
async def test_close_would_reset_says_when_a_close_could_destroy_echo() -> None:
    client, server = tcp_socket_pair()
    stream = accepted_stream(server)
    assert stream.close_would_reset() is False  # nothing unread, nothing in flight
    client.sendall(b"more")
    await trio.lowlevel.wait_readable(stream.socket)  # arrived
    assert stream.close_would_reset() is True  # a byte waits unread
    assert stream.receive_nowait(10) == b"more"  # and the check did not take it
    client.shutdown(socket.SHUT_WR)
    await stream.wait_receivable()  # drained: it waits for the end of stream
    assert stream.close_would_reset() is False  # the peer is done sending
    client.close()
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        stream.close_would_reset()
