# The server-wide allowance of echo bytes held in memory.
#
# A connection reserves bytes from the budget before it reads, so the bytes a
# read returns are always paid for, and gives them back once they are echoed.
# Reservations are exact: the budget is never exceeded, it only makes readers
# wait. Reads are sized by the reader (small while a connection is quiet,
# larger while it streams), so quiet connections hold little of the budget.
from __future__ import annotations

import trio

__all__ = ["MemoryBudget"]


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
