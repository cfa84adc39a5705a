"""FastSocketStream against trio's own stream conformance checks, and the
properties its fast path must keep: cancellation, fairness, errors."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_echo._socket_stream import FAIR_SHARE, FastSocketStream


def socket_pair(fair_share: int = FAIR_SHARE) -> tuple[FastSocketStream, FastSocketStream]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return (
        FastSocketStream(client, fair_share=fair_share),
        FastSocketStream(server, fair_share=fair_share),
    )


# trio's checks require every call to yield: fair_share=1 does.
async def make_pair() -> tuple[FastSocketStream, FastSocketStream]:
    return socket_pair(fair_share=1)


async def make_clogged_pair() -> tuple[FastSocketStream, FastSocketStream]:
    left, right = socket_pair(fair_share=1)
    for stream in (left, right):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    # Fill both send buffers, so that the first send_all call blocks either way.
    for stream in (left, right):
        try:
            while True:
                stream.socket.send(b"x" * 10_000)
        except BlockingIOError:
            pass
    return left, right


async def test_trio_half_closeable_stream_checks() -> None:
    await trio.testing.check_half_closeable_stream(make_pair, make_clogged_pair)


async def test_calls_that_need_no_wait_still_yield_now_and_then() -> None:
    left, right = socket_pair()
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


async def test_cancellation_is_seen_even_without_waiting() -> None:
    left, right = socket_pair()
    await left.send_all(b"data ready")
    with trio.CancelScope() as scope:
        scope.cancel()
        await right.receive_some()
        pytest.fail("receive_some did not check for cancellation")
    assert scope.cancelled_caught
    await left.aclose()
    await right.aclose()


async def test_send_nowait_and_reset() -> None:
    left, right = socket_pair()
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
