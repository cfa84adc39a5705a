# A connection's writer task: what the transport would not take at once goes
# out from here, as the peer takes it.
#
# The pump sends inline while the transport takes its answers; most
# connections never need more. Once an answer has to wait for the peer, the
# pump starts a writer (in the connection's nursery) and wakes it whenever
# there is more to send. While the writer sends, the pump sends nothing
# inline: the bytes in flight are the protocol's first answer, and a pump
# sends from one place at a time. A pump the protocol PAUSED (its answers
# hold too much) waits until the writer has sent some.
from __future__ import annotations

from collections.abc import Callable

import trio

from ..protocol import EchoProtocol
from ._budget import Account
from ._transport import Transport

__all__ = ["Writer"]

SEND_PIECE = 16 * 1024
"""The most one send of the writer's takes, so that a slow but steady peer
shows progress (and is not idle) at least every 16 KiB it reads."""


class Writer:
    """The writer of one connection; `run` is its task.

    Args:
        protocol: The connection's state machine: what to send, told what was.
        account: The connection's charge on the memory budget.
        on_sent: Called after each send (the pump moves its deadline).
        nursery: Where `run` starts `watch`, once more than a piece waits to
            be sent (a short answer never fills the kernel's buffers); None
            if the caller starts it.
    """

    __slots__ = (
        "_account",
        "_has_sent",
        "_nursery",
        "_on_sent",
        "_protocol",
        "_wake",
        "_watching",
        "sending",
    )

    def __init__(
        self,
        protocol: EchoProtocol,
        account: Account,
        *,
        on_sent: Callable[[], None],
        nursery: trio.Nursery | None = None,
    ) -> None:
        self._protocol = protocol
        self._nursery = nursery
        self._watching = False
        self._account = account
        self._on_sent = on_sent
        self._wake = trio.lowlevel.ParkingLot()
        self._has_sent: trio.lowlevel.ParkingLot | None = None  # made for a PAUSED pump
        self.sending = False
        """Whether a send is in progress: the pump may not send inline meanwhile."""

    def wake(self) -> None:
        """There is more to send."""
        self._wake.unpark()

    async def wait_sent(self) -> None:
        """Wait until the writer has sent some."""
        if self._has_sent is None:
            self._has_sent = trio.lowlevel.ParkingLot()
        await self._has_sent.park()

    async def watch(self, transport: Transport[trio.abc.Stream], stream: trio.abc.Stream) -> None:
        """Tell the protocol when the peer takes bytes while a send waits (a task).

        A send waits until the kernel's buffer has room again, and a peer that
        reads slowly frees it slowly: before the deadline passes, see whether
        the buffer drained at all since the last look. Only where the
        transport can tell (`Transport.queued`).
        """
        protocol = self._protocol
        ahead = protocol.limits.idle_granularity  # progress then moves the idle deadline
        last, out = transport.queued(stream), protocol.bytes_out
        while last is not None:
            await trio.sleep_until(protocol.deadline.when - ahead)
            queued = transport.queued(stream)
            if queued is not None and queued < last + protocol.bytes_out - out:
                protocol.peer_took(trio.current_time())
                self._on_sent()
            else:
                await trio.sleep_until(protocol.deadline.when)  # it passes, or moved
            last, out = queued, protocol.bytes_out

    async def run(self, transport: Transport[trio.abc.Stream], stream: trio.abc.Stream) -> None:
        """Send the protocol's answers on ``stream``, as the peer takes them (the task)."""
        protocol, account = self._protocol, self._account
        while True:
            if (data := protocol.data_to_send()) is None:
                await self._wake.park()
                continue
            if not self._watching and protocol.held > SEND_PIECE and self._nursery is not None:
                # Enough waits to fill the kernel's buffers: watch them drain.
                self._watching = True
                self._nursery.start_soon(self.watch, transport, stream)
            if len(data) > SEND_PIECE:  # progress is told piece by piece
                data = memoryview(data)[:SEND_PIECE]
            self.sending = True
            await transport.send_all(stream, data)
            self.sending = False
            protocol.sent(len(data), trio.current_time())
            account.settle(protocol.held)
            self._on_sent()
            if self._has_sent is not None:
                self._has_sent.unpark()
