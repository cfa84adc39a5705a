"""The line between the supervisor and a worker: its messages however they
are split, the certificate pair as a worker gets it, and the heartbeat,
on trio's mock clock."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from trio_echo.server._tls import CertificatePair
from trio_echo.server._worker_line import (
    PING,
    PINGS_PER_TIMEOUT,
    LineError,
    SupervisorEnd,
    WorkerEnd,
    encode_pair,
    next_message,
)

PAIRS = [
    CertificatePair(b"chain", b"key"),
    CertificatePair(b"chain\0with a nul", b"", b"authorities"),
]


def line() -> tuple[SupervisorEnd, WorkerEnd]:
    """Both ends of a line, as after a worker's start: the worker's end is
    its own (a copy here), and the supervisor holds only its own."""
    supervisor = SupervisorEnd()
    worker = WorkerEnd(supervisor.theirs.dup())
    supervisor.close_theirs()
    return supervisor, worker


def messages_in(stream: bytes, split: int) -> list[bytes | CertificatePair]:
    """The messages in ``stream``, fed in pieces of ``split`` bytes."""
    buffer = bytearray()
    found = []
    for start in range(0, len(stream), split):
        buffer += stream[start : start + split]
        while (message := next_message(buffer)) is not None:
            found.append(message)
    assert not buffer
    return found


@pytest.mark.parametrize("split", [1, 2, 3, 7, 1000])
def test_messages_come_out_whole_however_the_stream_is_split(split: int) -> None:
    stream = PING + encode_pair(PAIRS[0]) + PING + PING + encode_pair(PAIRS[1])
    assert messages_in(stream, split) == [PING, PAIRS[0], PING, PING, PAIRS[1]]


def test_an_unknown_message_is_an_error() -> None:
    with pytest.raises(LineError, match="unknown message"):
        next_message(bytearray(b"x"))


def test_a_worker_reads_its_pair_first() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(encode_pair(PAIRS[1]) + PING)
        assert WorkerEnd(theirs).receive_pair() == PAIRS[1]
        ours.close()
        with pytest.raises(LineError, match="ended the line"):
            WorkerEnd(theirs).receive_pair()


def test_a_worker_finds_its_line_in_the_environment() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        environ = {"TRIO_ECHO_SUPERVISOR_FD": str(theirs.detach())}
        end = WorkerEnd.inherited(environ)
        assert end is not None
        end.close()
        assert environ == {}  # so that nothing the worker starts takes it
        assert WorkerEnd.inherited({}) is None


async def test_a_worker_that_answers_is_never_silent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor, worker = line()
    used: list[CertificatePair] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.answer, used.append)
        with trio.move_on_after(3600) as waited:
            await supervisor.send_pair(PAIRS[0])
            await supervisor.wait_until_silent(5)
        assert waited.cancelled_caught  # an hour of answers, never silent
        assert used == [PAIRS[0]]
        nursery.cancel_scope.cancel()
    supervisor.close()
    worker.close()


async def test_a_worker_that_stops_answering_is_found_within_the_timeout_and_a_ping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor, worker = line()
    async with trio.open_nursery() as nursery:
        answering = trio.CancelScope()

        async def answer_for_a_minute() -> None:
            with answering:
                await worker.answer(lambda _pair: None)

        nursery.start_soon(answer_for_a_minute)
        async with trio.open_nursery() as watching:
            watching.start_soon(supervisor.wait_until_silent, 5)
            await trio.sleep(60)
            answering.cancel()  # as a stopped worker: its end open, silent
            stopped = trio.current_time()
        found = trio.current_time() - stopped
        assert 5 - 1 <= found <= 5 + 5 / PINGS_PER_TIMEOUT
    supervisor.close()
    worker.close()


async def test_a_worker_that_closes_its_end_is_left_to_its_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = SupervisorEnd()
    supervisor.close_theirs()  # as a worker that exited
    with trio.move_on_after(3600) as waited:
        await supervisor.wait_until_silent(5)
    assert waited.cancelled_caught
    supervisor.close()


async def test_a_worker_whose_supervisor_exits_stops_answering() -> None:
    supervisor, worker = line()
    supervisor.close()  # the supervisor's end: gone; so is the worker's copy here
    with trio.fail_after(10):
        await worker.answer(lambda _pair: None)
    worker.close()
