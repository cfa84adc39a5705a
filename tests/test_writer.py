"""The writer's watch: a send that waits on a peer that reads is not idleness.

Over TCP the kernel holds megabytes of answers, and a peer that reads
slowly frees room for the next send only now and then, less often than
the idle timeout. While a send waits, the writer looks at what the kernel
still holds before the deadline passes, and tells the protocol when the
peer took some. (The kernel's own timing is not the test's to drive: a
transport here says what the kernel would.)
"""

from __future__ import annotations

import trio
import trio.testing

from trio_echo import EchoProtocol, Limits, Mode
from trio_echo.server._budget import Account, MemoryBudget
from trio_echo.server._writer import Writer


class DrainingTransport:
    """A transport whose sends never end, and whose kernel buffer drains as told."""

    def __init__(self, queued: list[int]) -> None:
        self.queued_now = queued  # what each look finds, in turn; the last stays

    def queued(self, stream: object) -> int:
        return self.queued_now.pop(0) if len(self.queued_now) > 1 else self.queued_now[0]

    async def send_all(self, stream: object, data: object) -> None:
        await trio.sleep_forever()  # the peer's window stays shut for the writer


def a_connection_with_answers_to_send(size: int = 64 * 1024) -> EchoProtocol:
    protocol = EchoProtocol(Mode.ECHO, limits=Limits(idle_timeout=3), now=0.0)
    protocol.receive_data(b"x" * size, 0.0)
    protocol.next_action(0.0)
    return protocol


async def watch_until_the_deadline(protocol: EchoProtocol, transport: DrainingTransport) -> float:
    """Run the writer (it starts its watch) under the deadline; return when that passed."""
    with trio.CancelScope() as scope:

        def follow() -> None:
            scope.deadline = protocol.deadline.when

        follow()
        async with trio.open_nursery() as nursery:
            account = Account(MemoryBudget(1 << 20))
            writer = Writer(protocol, account, on_sent=follow, nursery=nursery)
            nursery.start_soon(writer.run, transport, None)
    return trio.current_time()


async def test_a_buffer_that_drains_keeps_the_connection_from_idling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The kernel's buffer shrinks at each of five looks, then not again.
    transport = DrainingTransport([4_000_000, 3_900_000, 3_800_000, 3_700_000, 3_600_000])
    protocol = a_connection_with_answers_to_send()
    passed = await watch_until_the_deadline(protocol, transport)
    assert passed > 4 * 3  # four more idle timeouts' worth of waiting
    assert protocol.bytes_out == 0  # not one send ended: the kernel's drain was the progress


async def test_a_buffer_that_never_drains_is_idle(autojump_clock: trio.testing.MockClock) -> None:
    transport = DrainingTransport([4_000_000])
    protocol = a_connection_with_answers_to_send()
    passed = await watch_until_the_deadline(protocol, transport)
    assert 3 <= passed <= 3 + protocol.limits.idle_granularity


async def test_a_short_answer_is_not_watched(autojump_clock: trio.testing.MockClock) -> None:
    # A piece or less never fills the kernel's buffers: no watch, no task.
    transport = DrainingTransport([4_000_000, 3_900_000, 3_800_000])
    protocol = a_connection_with_answers_to_send(1000)
    passed = await watch_until_the_deadline(protocol, transport)
    assert 3 <= passed <= 3 + protocol.limits.idle_granularity
