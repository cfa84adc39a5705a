# Every bound on the echo bytes a server holds: a budget shared by all its
# connections, and a queue per connection within its own limit.
#
# A connection reserves bytes before it reads, so the bytes a read returns
# are always paid for, and gives them back once they are echoed.
# Reservations are exact: the bounds are never exceeded, they only make
# readers wait (and TCP then pushes back on the peer). Reads are sized by the
# reader (small while a connection is quiet, larger while it streams), so
# quiet connections hold little of the budget.
from __future__ import annotations

from collections import deque

import trio

from ._protocol import Chunk

__all__ = ["EchoQueue", "MemoryBudget"]

SEND_SIZE = 64 * 1024
"""Small queued echo pieces are joined up to this size for one send."""


class MemoryBudget:
    """A number of bytes shared by every connection of a server.

    Args:
        total: The bytes available in all; at least 1.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a memory budget needs at least one byte, not {total}")
        self._total = total
        self._used = 0
        self._waiters = trio.lowlevel.ParkingLot()

    @property
    def total(self) -> int:
        """The bytes available in all."""
        return self._total

    @property
    def used(self) -> int:
        """The bytes reserved now."""
        return self._used

    def try_reserve(self, wanted: int) -> int:
        """Reserve between 1 and ``wanted`` bytes if any is free, without waiting.

        Returns:
            How many bytes were reserved; 0 if none is free.
        """
        free = self._total - self._used
        if free <= 0:
            return 0
        granted = wanted if wanted <= free else free
        self._used += granted
        return granted

    async def reserve_up_to(self, wanted: int) -> int:
        """Reserve between 1 and ``wanted`` bytes, waiting while none is free.

        Args:
            wanted: The most bytes to reserve; at least 1.

        Returns:
            How many bytes were reserved: ``wanted``, or less if less is free.
        """
        while not (granted := self.try_reserve(wanted)):
            await self._waiters.park()
        return granted

    def take(self, count: int) -> None:
        """Charge ``count`` bytes at once, without waiting.

        For the few bytes a connection must hold beyond what it reserved (a
        framed answer's header, at most a length prefix's size); the budget
        may then be exceeded by that much until they are released.
        """
        self._used += count

    def release(self, count: int) -> None:
        """Give back ``count`` reserved bytes, and wake those waiting for them."""
        self._used -= count
        if self._waiters:
            self._waiters.unpark_all()


class EchoQueue:
    """One connection's bytes received and not yet echoed, within its bounds.

    The reader reserves room before each read (`reserve_nowait`, else
    `reserve`), queues the echo of what it read (`put`) and gives back the
    rest of its reservation (`end_read`). Whoever sends takes pieces from the
    front (`next_piece`, or `wait_piece` to wait for one) and reports them
    sent (`sent`).

    Args:
        limit: The most bytes this connection may hold.
        budget: The server's budget, which every byte held is charged to.
    """

    __slots__ = (
        "_budget",
        "_finished",
        "_held",
        "_limit",
        "_pieces",
        "_reader",
        "_reserved",
        "_writer",
    )

    def __init__(self, limit: int, budget: MemoryBudget) -> None:
        self._limit = limit
        self._budget = budget
        self._pieces: deque[Chunk] | None = None  # made with the first piece
        self._held = 0  # bytes queued or reserved, charged to the budget
        self._reserved = 0  # of those, reserved by the current read, not queued
        self._writer: trio.lowlevel.ParkingLot | None = None
        self._reader: trio.lowlevel.ParkingLot | None = None
        self._finished = False

    def __bool__(self) -> bool:
        """Whether echo bytes are waiting to be sent."""
        return bool(self._pieces)

    def reserve_nowait(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes for a read; 0 if none is free now."""
        room = self._limit - self._held
        if room <= 0:
            return 0
        granted = self._budget.try_reserve(min(wanted, room))
        self._held += granted
        self._reserved = granted
        return granted

    async def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes for a read, waiting for room."""
        while self._held >= self._limit:
            if self._reader is None:
                self._reader = trio.lowlevel.ParkingLot()
            await self._reader.park()
        granted = await self._budget.reserve_up_to(min(wanted, self._limit - self._held))
        self._held += granted
        self._reserved = granted
        return granted

    def put(self, piece: Chunk) -> None:
        """Queue ``piece`` to be echoed, out of the current read's reservation."""
        if self._pieces is None:
            self._pieces = deque()
        self._pieces.append(piece)
        self._reserved -= len(piece)

    def wake_writer(self) -> None:
        """Wake the task waiting in `wait_piece`, if one is."""
        if self._writer:
            self._writer.unpark()

    def end_read(self) -> None:
        """Give back what the read reserved and did not queue.

        A framed answer's header is echoed when its space arrives, which may
        be a read after its digits: then a read queues up to a header's
        length more than it reserved, and the difference is charged here.
        """
        reserved = self._reserved
        if reserved > 0:
            self._budget.release(reserved)
        elif reserved < 0:
            self._budget.take(-reserved)
        self._held -= reserved
        self._reserved = 0

    def next_piece(self) -> Chunk:
        """Remove and return the front of the queue, to send as one piece.

        That is one queued piece, or small ones joined up to `SEND_SIZE`.
        The queue must not be empty.
        """
        pieces = self._pieces
        assert pieces
        first = pieces.popleft()
        if not pieces or len(first) >= SEND_SIZE:
            return first
        joined, size = [first], len(first)
        while pieces and size + len(pieces[0]) <= SEND_SIZE:
            size += len(pieces[0])
            joined.append(pieces.popleft())
        return b"".join(joined)

    def put_back(self, rest: Chunk) -> None:
        """Return the unsent end of a piece to the front of the queue."""
        assert self._pieces is not None
        self._pieces.appendleft(rest)

    def finish(self) -> None:
        """Say that nothing more will be queued: `wait_piece` then ends."""
        self._finished = True
        self.wake_writer()

    async def wait_piece(self) -> Chunk | None:
        """Wait for a piece; remove and return it (`next_piece`).

        Returns:
            The piece, or None once the queue is empty and `finish` was
            called.
        """
        while not self._pieces:
            if self._finished:
                return None
            if self._writer is None:
                self._writer = trio.lowlevel.ParkingLot()
            await self._writer.park()
        return self.next_piece()

    def sent(self, count: int) -> None:
        """Report ``count`` bytes sent: they leave the bounds."""
        self._held -= count
        self._budget.release(count)
        if self._reader:
            self._reader.unpark()

    def discard(self) -> None:
        """Drop everything, and give the budget back."""
        self._pieces = None
        self._reserved = 0
        if self._held:
            self._budget.release(self._held)
            self._held = 0
